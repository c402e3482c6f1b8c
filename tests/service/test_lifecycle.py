"""A served swarm's life: kill -9 and restart lose nothing, SIGTERM drains, hosts are checked."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarmperf.core.errors import SwarmNotRunning
from swarmperf.service import registry
from tests.serving import TWO_AGENTS, Service, service

pytestmark = pytest.mark.slow


def served(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> Service:
    return service(tmp_path, "svc", *extra, spec=TWO_AGENTS, env=env)


def serve_again(svc: Service, *extra: str) -> subprocess.CompletedProcess[str]:
    """A second `serve` of the same spec and data dir, run to its end."""
    command = [sys.executable, "-m", "swarmperf", "serve", str(svc.spec)]
    command += ["--data-dir", str(svc.data_dir), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_kill_9_then_restart_runs_every_accepted_task_and_records_each_once(
    tmp_path: Path,
) -> None:
    svc = served(tmp_path).start()
    tasks = [{"kind": "sleep", "payload": 0.02, "idempotency_key": f"k{i}"} for i in range(200)]
    with svc.client() as client:
        answer = client.post("/v1/tasks/batch", json={"tasks": tasks}).json()
        accepted = {t["id"] for t in answer["tasks"]}
        time.sleep(0.3)  # some finish, some run, most wait
        finished_before = client.get("/v1/status").json()["finished"]
    svc.kill()  # SIGKILL: no drain, no goodbye
    assert 0 < finished_before < len(tasks)
    with pytest.raises(SwarmNotRunning, match="no longer running"):
        registry.find(svc.data_dir, "svc")  # the stale entry is noticed, not trusted
    svc.start()
    try:
        with svc.client() as client:
            # The client retries its batch after the crash: nothing is accepted twice.
            retry = client.post("/v1/tasks/batch", json={"tasks": tasks}).json()
            assert retry["accepted"] == 0
            assert {t["id"] for t in retry["tasks"]} == accepted
            for task_id in accepted:
                body = client.get(f"/v1/tasks/{task_id}", params={"wait": 30}).json()
                assert body["status"] == "succeeded", body
            recovered = client.get("/v1/status").json()["recovered"]
            # Tasks went on finishing between the status and the kill.
            assert 0 < recovered <= len(tasks) - finished_before
    finally:
        assert svc.close() == 0
    with sqlite3.connect(svc.data_dir / "swarmperf.db") as db:
        per_task = db.execute("SELECT task_id, count(*) FROM task_results GROUP BY task_id")
        counts = dict(per_task.fetchall())
        runs = db.execute("SELECT count(*) FROM runs WHERE swarm_id = 'svc'").fetchone()[0]
    assert set(counts) == accepted
    assert set(counts.values()) == {1}  # recorded once, across both runs
    assert runs == 2


def test_sigterm_drains_records_the_run_and_leaves_the_registry(tmp_path: Path) -> None:
    svc = served(tmp_path).start()
    with svc.client() as client:
        tasks = [{"kind": "sleep", "payload": 0.2} for _ in range(8)]
        answer = client.post("/v1/tasks/batch", json={"tasks": tasks}).json()
        ids = [t["id"] for t in answer["tasks"]]
    time.sleep(0.1)
    assert svc.close(signal.SIGTERM) == 0
    with pytest.raises(SwarmNotRunning, match="No service is serving it"):
        registry.find(svc.data_dir, "svc")
    with sqlite3.connect(svc.data_dir / "swarmperf.db") as db:
        statuses = dict(db.execute("SELECT task_id, status FROM intake").fetchall())
        run = db.execute("SELECT status FROM runs").fetchone()
    assert {statuses[i] for i in ids} == {"succeeded"}  # 0.8 s of work within a 10 s drain
    assert run[0] == "completed"


def test_a_stop_request_past_its_deadline_cancels_with_a_reason(tmp_path: Path) -> None:
    svc = served(tmp_path).start()
    with svc.client() as client:
        tasks = [{"kind": "sleep", "payload": 5} for _ in range(6)]
        answer = client.post("/v1/tasks/batch", json={"tasks": tasks}).json()
        ids = [t["id"] for t in answer["tasks"]]
        time.sleep(0.2)
        assert client.post("/v1/stop", json={"deadline_s": 0.2}).json()["state"] == "stopping"
    assert svc.process is not None
    assert svc.process.wait(30) == 0
    with sqlite3.connect(svc.data_dir / "swarmperf.db") as db:
        rows = db.execute("SELECT task_id, status, result FROM intake").fetchall()
    assert {task_id for task_id, _, _ in rows} == set(ids)
    assert {status for _, status, _ in rows} == {"cancelled"}
    assert all("stopped" in result for _, _, result in rows)


def test_serving_beyond_loopback_needs_the_token(tmp_path: Path) -> None:
    refused = serve_again(served(tmp_path), "--host", "0.0.0.0", "--no-token")
    assert refused.returncode == 2
    assert "--host" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_second_service_for_a_running_swarm_is_refused(tmp_path: Path) -> None:
    svc = served(tmp_path).start()
    try:
        second = serve_again(svc)
        assert second.returncode == 2
        assert f"pid {svc.pid}" in second.stderr
    finally:
        svc.close()


def test_handlers_come_from_the_operators_registry(tmp_path: Path) -> None:
    (tmp_path / "myhandlers.py").write_text(
        "def double(payload, agent):\n    return payload * 2\n\nHANDLERS = {'double': double}\n"
    )
    paths = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    svc = served(tmp_path, "--handlers", "myhandlers:HANDLERS", env={"PYTHONPATH": paths})
    svc.start()
    try:
        with svc.client() as client:
            task_id = client.post("/v1/tasks", json={"kind": "double", "payload": 21}).json()["id"]
            body = client.get(f"/v1/tasks/{task_id}", params={"wait": 10}).json()
            assert body["result"]["value"] == 42
    finally:
        svc.close()
    bad = serve_again(svc, "--handlers", "no_such_module_here:HANDLERS")
    assert bad.returncode == 2
    assert "--handlers" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("backend", ["process", "ray"])
def test_any_real_backend_can_be_served(tmp_path: Path, backend: str) -> None:
    svc = served(tmp_path, "--backend", backend).start(ready_within=120)
    try:
        with svc.client() as client:
            tasks = [{"kind": "echo", "payload": i} for i in range(40)]
            answer = client.post("/v1/tasks/batch", json={"tasks": tasks}).json()
            values = [
                client.get(f"/v1/tasks/{t['id']}", params={"wait": 60}).json()["result"]["value"]
                for t in answer["tasks"]
            ]
            assert values == list(range(40))
            assert client.get("/v1/status").json()["backend"] == backend
    finally:
        assert svc.close(timeout=120) == 0


def test_serving_beyond_loopback_warns_about_tls(tmp_path: Path) -> None:
    svc = served(tmp_path, "--host", "0.0.0.0").start()
    try:
        assert svc.url.startswith("http://127.0.0.1:")  # where local clients reach it
    finally:
        svc.close()
    assert "TLS proxy" in svc.output()


def test_a_port_in_use_is_a_clear_error_and_starts_nothing(tmp_path: Path) -> None:
    import socket

    svc = served(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = serve_again(svc, "--port", str(taken.getsockname()[1]))
    assert result.returncode == 2
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (svc.data_dir / "swarmperf.db").exists()  # no run was recorded


def test_a_finished_task_is_forgotten_after_the_retention(tmp_path: Path) -> None:
    svc = served(tmp_path, "--retain", "1s").start()
    try:
        with svc.client() as client:
            task = {"kind": "noop", "idempotency_key": "once"}
            first = client.post("/v1/tasks", json=task).json()
            client.get(f"/v1/tasks/{first['id']}", params={"wait": 10})
            assert client.post("/v1/tasks", json=task).json()["duplicate"] is True
            deadline = time.monotonic() + 15
            while client.get(f"/v1/tasks/{first['id']}").status_code != 404:
                assert time.monotonic() < deadline, "the task was never forgotten"
                time.sleep(0.2)
            assert client.post("/v1/tasks", json=task).json()["duplicate"] is False
    finally:
        svc.close()

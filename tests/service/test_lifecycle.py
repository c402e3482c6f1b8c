"""A served swarm's life: kill -9 and restart lose nothing, SIGTERM drains, hosts are checked."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from swarmperf.core.errors import SwarmNotRunning
from swarmperf.service import registry
from tests.service.served import log_of, start, stop, wait_ready, write_spec

pytestmark = pytest.mark.slow


def _client(entry: registry.SwarmEntry) -> httpx.Client:
    headers = {"Authorization": f"Bearer {entry.token()}"}
    return httpx.Client(base_url=entry.url, headers=headers, timeout=30)


def test_kill_9_then_restart_runs_every_accepted_task_and_records_each_once(
    tmp_path: Path,
) -> None:
    spec, data = write_spec(tmp_path), tmp_path / "data"
    proc = start(spec, data)
    entry = wait_ready(proc, data)
    tasks = [{"kind": "sleep", "payload": 0.02, "idempotency_key": f"k{i}"} for i in range(200)]
    with _client(entry) as client:
        answer = client.post("/v1/tasks/batch", json={"tasks": tasks}).json()
        accepted = {t["id"] for t in answer["tasks"]}
        time.sleep(0.3)  # some finish, some run, most wait
        finished_before = client.get("/v1/status").json()["finished"]
    proc.kill()  # SIGKILL: no drain, no goodbye
    proc.wait()
    assert 0 < finished_before < len(tasks)
    with pytest.raises(SwarmNotRunning, match="no longer running"):
        registry.find(data, "svc")  # the stale entry is noticed, not trusted
    again = start(spec, data)
    try:
        entry = wait_ready(again, data)
        with _client(entry) as client:
            # The client retries its batch after the crash: nothing is accepted twice.
            retry = client.post("/v1/tasks/batch", json={"tasks": tasks}).json()
            assert retry["accepted"] == 0
            assert {t["id"] for t in retry["tasks"]} == accepted
            for task_id in accepted:
                body = client.get(f"/v1/tasks/{task_id}", params={"wait": 30}).json()
                assert body["status"] == "succeeded", body
            assert client.get("/v1/status").json()["recovered"] == len(tasks) - finished_before
    finally:
        assert stop(again) == 0
    with sqlite3.connect(data / "swarmperf.db") as db:
        per_task = db.execute(
            "SELECT task_id, count(*) FROM task_results GROUP BY task_id"
        ).fetchall()
        runs = db.execute("SELECT count(*) FROM runs WHERE swarm_id = 'svc'").fetchone()[0]
    assert {task_id for task_id, _ in per_task} == accepted
    assert all(count == 1 for _, count in per_task)  # recorded once, across both runs
    assert runs == 2


def test_sigterm_drains_records_the_run_and_leaves_the_registry(tmp_path: Path) -> None:
    spec, data = write_spec(tmp_path), tmp_path / "data"
    proc = start(spec, data)
    entry = wait_ready(proc, data)
    with _client(entry) as client:
        tasks = [{"kind": "sleep", "payload": 0.2} for _ in range(8)]
        ids = [
            t["id"] for t in client.post("/v1/tasks/batch", json={"tasks": tasks}).json()["tasks"]
        ]
    time.sleep(0.1)
    assert stop(proc, signal.SIGTERM) == 0
    with pytest.raises(SwarmNotRunning, match="No service is serving it"):
        registry.find(data, "svc")
    with sqlite3.connect(data / "swarmperf.db") as db:
        statuses = dict(db.execute("SELECT task_id, status FROM intake").fetchall())
        run = db.execute("SELECT status, report FROM runs").fetchone()
    assert {statuses[i] for i in ids} == {"succeeded"}  # 1.6 s of work within a 10 s drain
    assert run[0] == "completed"


def test_a_stop_request_past_its_deadline_cancels_with_a_reason(tmp_path: Path) -> None:
    spec, data = write_spec(tmp_path), tmp_path / "data"
    proc = start(spec, data)
    entry = wait_ready(proc, data)
    with _client(entry) as client:
        tasks = [{"kind": "sleep", "payload": 5} for _ in range(6)]
        ids = [
            t["id"] for t in client.post("/v1/tasks/batch", json={"tasks": tasks}).json()["tasks"]
        ]
        time.sleep(0.2)
        assert client.post("/v1/stop", json={"deadline_s": 0.2}).json()["state"] == "stopping"
    proc.wait(30)
    with sqlite3.connect(data / "swarmperf.db") as db:
        rows = db.execute("SELECT task_id, status, result FROM intake").fetchall()
    assert {task_id for task_id, _, _ in rows} == set(ids)
    assert {status for _, status, _ in rows} == {"cancelled"}
    assert all("stopped" in result for _, _, result in rows)


def test_serving_beyond_loopback_needs_the_token(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarmperf",
            "serve",
            str(spec),
            "--data-dir",
            str(tmp_path / "data"),
            "--host",
            "0.0.0.0",
            "--no-token",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "--host" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_second_service_for_a_running_swarm_is_refused(tmp_path: Path) -> None:
    spec, data = write_spec(tmp_path), tmp_path / "data"
    proc = start(spec, data)
    try:
        wait_ready(proc, data)
        second = subprocess.run(
            [sys.executable, "-m", "swarmperf", "serve", str(spec), "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert f"pid {proc.pid}" in second.stderr
    finally:
        stop(proc)


def test_handlers_come_from_the_operators_registry(tmp_path: Path) -> None:
    (tmp_path / "myhandlers.py").write_text(
        "def double(payload, agent):\n    return payload * 2\n\nHANDLERS = {'double': double}\n"
    )
    spec, data = write_spec(tmp_path), tmp_path / "data"
    paths = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    proc = start(
        spec,
        data,
        "svc",
        "--handlers",
        "myhandlers:HANDLERS",
        env={**os.environ, "PYTHONPATH": paths},
    )
    try:
        entry = wait_ready(proc, data)
        with _client(entry) as client:
            task_id = client.post("/v1/tasks", json={"kind": "double", "payload": 21}).json()["id"]
            body = client.get(f"/v1/tasks/{task_id}", params={"wait": 10}).json()
            assert body["result"]["value"] == 42
    finally:
        stop(proc)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarmperf",
            "serve",
            str(spec),
            "--data-dir",
            str(data),
            "--handlers",
            "no_such_module_here:HANDLERS",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "--handlers" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("backend", ["process", "ray"])
def test_any_real_backend_can_be_served(tmp_path: Path, backend: str) -> None:
    spec, data = write_spec(tmp_path), tmp_path / "data"
    proc = start(spec, data, "svc", "--backend", backend)
    try:
        entry = wait_ready(proc, data, timeout=120)
        with _client(entry) as client:
            tasks = [{"kind": "echo", "payload": i} for i in range(40)]
            answer = client.post("/v1/tasks/batch", json={"tasks": tasks}).json()
            values = [
                client.get(f"/v1/tasks/{t['id']}", params={"wait": 60}).json()["result"]["value"]
                for t in answer["tasks"]
            ]
            assert values == list(range(40))
            assert client.get("/v1/status").json()["backend"] == backend
    finally:
        assert stop(proc, timeout=120) == 0


def test_serving_beyond_loopback_warns_about_tls(tmp_path: Path) -> None:
    spec, data = write_spec(tmp_path), tmp_path / "data"
    proc = start(spec, data, "svc", "--host", "0.0.0.0")
    try:
        entry = wait_ready(proc, data)
        assert entry.url.startswith("http://127.0.0.1:")  # where local clients reach it
    finally:
        stop(proc)
    assert "TLS proxy" in log_of(proc)

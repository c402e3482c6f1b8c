"""Runs that end honestly: signals drain and record the end, killed runs read as aborted,
and neither `duration` nor a task that never returns keeps a run alive."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from swarmperf.app.run import run_spec
from swarmperf.core.model import TaskStatus
from swarmperf.spec import parse_spec
from swarmperf.store import RUN_ABORTED, RUN_INTERRUPTED, Store

SPEC = """\
swarm_id: ends
agents:
  - id: a
    count: 2
    concurrency: 2
workload:
  tasks: {tasks}
  kind: sleep
  size: {size}
  arrival: {{process: batch}}
monitor: {{enabled: false}}
timeouts: {{drain: {drain}}}
"""


def _start(tmp_path: Path, *, tasks: int, size: str, drain: str = "10s") -> subprocess.Popen[str]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(tasks=tasks, size=size, drain=drain))
    return subprocess.Popen(
        [sys.executable, "-m", "swarmperf", "run", str(spec), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_results(tmp_path: Path, proc: subprocess.Popen[str], at_least: int) -> None:
    """Until the run has stored `at_least` results (it is well under way), by events."""
    db = tmp_path / "swarmperf.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    rows = conn.execute("SELECT count(*) FROM task_results").fetchone()[0]
            except sqlite3.OperationalError:  # not created yet
                rows = 0
            if rows >= at_least:
                return
        time.sleep(0.05)
    pytest.fail("the run stored no results in 120 s")


def _wait_for_run(tmp_path: Path, proc: subprocess.Popen[str]) -> None:
    db = tmp_path / "swarmperf.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    if conn.execute("SELECT count(*) FROM runs").fetchone()[0]:
                        return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    pytest.fail("the run was not recorded in 120 s")


def _one_result_each(store: Store, run_id: int, tasks: int) -> Counter[str]:
    results = list(store.iter_results(run_id))
    ids = Counter(r.task_id for r in results)
    assert len(ids) == tasks, f"{tasks - len(ids)} tasks have no result"
    assert max(ids.values()) == 1, "a task has more than one result"
    for r in results:
        if r.status is TaskStatus.CANCELLED:
            assert r.error, "a cancelled task must say why"
    return Counter(r.status.value for r in results)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_drains_the_run_and_records_its_end(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    proc = _start(tmp_path, tasks=400, size="500ms")
    _wait_for_results(tmp_path, proc, 4)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"interrupted by {sig.name}" in err
    assert "Traceback" not in err
    with Store.open(tmp_path / "swarmperf.db") as store:
        (run,) = store.list_runs()
        assert run.status == RUN_INTERRUPTED
        assert run.finished_at is not None
        assert run.report is not None
        assert sig.name in run.report["interrupted"]
        statuses = _one_result_each(store, run.id, 400)
    # The drain let the running tasks finish (500 ms, well inside 10 s); the rest were
    # cancelled before they started.
    assert statuses["succeeded"] >= 4
    assert statuses["cancelled"] > 0
    assert run.report["tasks_cancelled"] == statuses["cancelled"]


@pytest.mark.slow
def test_a_second_signal_cuts_the_drain_short(tmp_path: Path) -> None:
    proc = _start(tmp_path, tasks=20, size="1h", drain="10m")
    _wait_for_run(tmp_path, proc)
    time.sleep(0.5)  # the agents pick up their hour-long tasks
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    # Order by events: the second signal goes once the run says it is draining.
    for line in proc.stderr:
        if "draining" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert time.monotonic() - started < 60  # not the 10 minutes of drain, nor an hour
    with Store.open(tmp_path / "swarmperf.db") as store:
        (run,) = store.list_runs()
        assert run.status == RUN_INTERRUPTED
        statuses = _one_result_each(store, run.id, 20)
        assert statuses == {"cancelled": 20}
        reasons = {r.error for r in store.iter_results(run.id)}
    assert any("signal ended the drain" in (r or "") for r in reasons)


@pytest.mark.slow
def test_a_killed_run_reads_as_aborted_everywhere(tmp_path: Path) -> None:
    proc = _start(tmp_path, tasks=400, size="200ms")
    _wait_for_results(tmp_path, proc, 4)
    proc.kill()
    proc.communicate(timeout=60)
    with Store.open(tmp_path / "swarmperf.db") as store:
        (run,) = store.list_runs()
        assert run.status == RUN_ABORTED
        assert run.stored_status == "running"
        assert run.finished_at is None
        assert store.get_run(run.id) == run
    env = {**os.environ, "COLUMNS": "200"}
    monitor = subprocess.run(
        [sys.executable, "-m", "swarmperf", "swarm-monitor", "--swarm-id", "ends", "--count", "1",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert monitor.returncode == 0, monitor.stderr
    assert "aborted" in monitor.stdout
    report = subprocess.run(
        [sys.executable, "-m", "swarmperf", "performance-report", "--swarm-id", "ends",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "partial data" in report.stdout
    assert "aborted" in report.stdout


def _spec(**extra: Any) -> Any:
    data: dict[str, Any] = {
        "swarm_id": "t",
        "agents": [{"id": "a", "count": 2, "concurrency": 2}],
        "workload": {"tasks": 40, "kind": "sleep", "size": "1h", "arrival": {"process": "batch"}},
        "monitor": {"enabled": False},
    }
    data.update(extra)
    return parse_spec(data)


def test_duration_cancels_tasks_still_running_after_the_grace(tmp_path: Path) -> None:
    spec = _spec(duration="300ms", timeouts={"grace": "200ms"})
    started = time.monotonic()
    with Store.open(tmp_path / "s.db") as store:
        outcome = asyncio.run(run_spec(spec, store=store, handle_signals=False))
        took = time.monotonic() - started
        assert outcome.run_id is not None
        run = store.get_run(outcome.run_id)
        assert run is not None
        assert run.status == "completed"
        statuses = _one_result_each(store, outcome.run_id, 40)
        errors = Counter(r.error for r in store.iter_results(outcome.run_id))
    assert took < 0.3 + 0.2 + 20  # not an hour
    assert statuses == {"cancelled": 40}
    assert errors["the run's duration of 0.3s was up and it was still running 0.2s later"] == 4
    assert errors["the run's duration of 0.3s was up before it started"] == 36


@pytest.mark.parametrize("backend", ["local", "process"])
def test_a_task_past_its_timeout_fails_and_the_run_goes_on(backend: str) -> None:
    # Hour-long tasks of either kind (await on local, a busy CPU loop in a worker
    # process) with a 300 ms bound; quick ones beside them are unaffected.
    kind = "sleep" if backend == "local" else "spin"
    spec = _spec(
        backend=backend,
        agents=[{"id": "a", "count": 2}],
        workload={"tasks": 2, "kind": kind, "size": "1h", "arrival": {"process": "batch"}},
        timeouts={"default": "1h", "kinds": {kind: "300ms"}},
        resilience={"retry": None},
    )
    started = time.monotonic()
    outcome = asyncio.run(run_spec(spec, handle_signals=False))
    assert time.monotonic() - started < 60
    assert [r.status for r in outcome.results] == [TaskStatus.FAILED] * 2
    assert all(r.error == "TimeoutError: timed out after 0.3s" for r in outcome.results)

"""Which stored runs are still going: `aborted` is derived on read, never written."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from swarmperf.store import RUN_ABORTED, RUN_RUNNING, Store
from swarmperf.store.migrations import MIGRATIONS, migrate
from swarmperf.store.records import HEARTBEAT_STALE, pid_alive, run_status


def _status(**changes: object) -> str:
    args: dict[str, object] = {
        "pid": 10,
        "host": "here",
        "heartbeat_at": 100.0,
        "started_at": 50.0,
        "clock": lambda: 110.0,
        "this_host": "here",
        "alive": lambda pid: True,
    }
    args.update(changes)
    return run_status(RUN_RUNNING, **args)  # type: ignore[arg-type]


def test_a_run_on_this_host_is_as_alive_as_its_process() -> None:
    assert _status() == RUN_RUNNING
    assert _status(alive=lambda pid: False) == RUN_ABORTED
    # Its process is the authority here, however old the heartbeat.
    assert _status(clock=lambda: 100.0 + 10 * HEARTBEAT_STALE) == RUN_RUNNING


def test_a_run_elsewhere_is_as_alive_as_its_heartbeat() -> None:
    def never(pid: int) -> bool:
        raise AssertionError("another host's pid means nothing here")

    fresh = _status(host="there", alive=never)
    stale = _status(host="there", alive=never, clock=lambda: 100.0 + HEARTBEAT_STALE + 1)
    assert (fresh, stale) == (RUN_RUNNING, RUN_ABORTED)


def test_ended_runs_keep_their_status() -> None:
    status = run_status(
        "completed",
        pid=10,
        host="here",
        heartbeat_at=None,
        started_at=0.0,
        clock=lambda: 1e9,
        this_host="here",
        alive=lambda pid: False,
    )
    assert status == "completed"


def test_pid_alive_knows_a_reaped_process_from_a_live_one() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert pid_alive(os.getpid())
    assert not pid_alive(child.pid)


def test_an_older_store_is_upgraded_and_its_running_runs_read_by_heartbeat(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, MIGRATIONS[:3])
    conn.execute(
        "INSERT INTO runs (swarm_id, started_at, status, backend, strategy, spec)"
        " VALUES ('s', 1000.0, 'running', 'local', 'round-robin', '{}')"
    )
    conn.close()
    with Store.open(path, clock=lambda: 1000.0 + HEARTBEAT_STALE + 1) as store:
        (run,) = store.list_runs()
        # No pid, no heartbeat: silent since it started, longer than the bound.
        assert (run.pid, run.status, run.stored_status) == (None, RUN_ABORTED, RUN_RUNNING)
        new = store.start_run("s", {}, "local", "round-robin")
        fresh = store.get_run(new)
        assert fresh is not None
        assert fresh.status == RUN_RUNNING
        assert fresh.pid == os.getpid()

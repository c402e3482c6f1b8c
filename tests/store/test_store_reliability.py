"""The store under contention and damage: writers wait for the lock, nothing is lost, runs
are never recorded complete without their results, and a damaged or unwritable file gets a
clear error."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from swarmperf.app.run import Progress, run_spec
from swarmperf.core.errors import StoreError
from swarmperf.core.model import TaskResult, TaskStatus
from swarmperf.spec import SwarmSpec, parse_spec
from swarmperf.store import Store

# Takes the database's write lock, says so, and keeps it until told (or for argv[2] seconds).
LOCK_HOLDER = """
import sqlite3, sys, select
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
select.select([sys.stdin], [], [], float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


@contextmanager
def write_lock_held(path: Path, seconds: float = 60.0) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the store's write lock inside the block (or for `seconds`)."""
    with subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(path), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        try:
            assert holder.stdout.readline().strip() == "locked"
            yield holder
        finally:
            if holder.poll() is None:
                with contextlib.suppress(BrokenPipeError):
                    holder.stdin.write("go\n")
                    holder.stdin.flush()
                holder.wait(timeout=60)


def results(*task_ids: str) -> list[TaskResult]:
    return [TaskResult(t, TaskStatus.SUCCEEDED, "a1", 1, 0.0, 0.1, 0.2) for t in task_ids]


def release_after(holder: subprocess.Popen[str], seconds: float) -> threading.Timer:
    def release() -> None:
        assert holder.stdin is not None
        with contextlib.suppress(BrokenPipeError, ValueError):
            holder.stdin.write("go\n")
            holder.stdin.flush()

    timer = threading.Timer(seconds, release)
    timer.start()
    return timer


# -- waiting for the write lock ---------------------------------------------------------------


def test_a_writer_waits_past_the_busy_timeout_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "swarmperf.db"
    with Store.open(path, busy_timeout=0.2) as store:
        run_id = store.start_run("s", {}, "local", "round-robin")
        with write_lock_held(path) as holder:
            timer = release_after(holder, 1.5)  # far longer than the busy timeout
            with caplog.at_level(logging.WARNING, logger="swarmperf.store"):
                store.record_results(run_id, results("t1", "t2"))
            timer.join()
        assert store.count_results(run_id) == 2
        stats = store.write_stats()
    assert stats.waits >= 1
    assert stats.max_wait_s >= 1.0
    assert any("waiting for the store's write lock" in r.getMessage() for r in caplog.records)


def test_a_writer_gives_up_after_the_write_timeout_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "swarmperf.db"
    with Store.open(path, busy_timeout=0.1, write_timeout=0.5) as store:
        run_id = store.start_run("s", {}, "local", "round-robin")
        with write_lock_held(path), pytest.raises(StoreError, match="held its write lock"):
            store.record_results(run_id, results("t1"))
        assert store.count_results(run_id) == 0  # all or nothing
        store.record_results(run_id, results("t1"))  # and the store still works
        assert store.count_results(run_id) == 1


def test_opening_waits_for_the_lock_to_migrate(tmp_path: Path) -> None:
    path = tmp_path / "swarmperf.db"
    # A new WAL database with no schema yet: opening it must migrate, under the write lock.
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    con.close()
    with write_lock_held(path) as holder:
        timer = release_after(holder, 1.0)
        with Store.open(path, busy_timeout=0.1) as store:
            assert store.list_runs() == []
        timer.join()


# -- a run whose results meet a locked store ---------------------------------------------------


def spec_for(tmp_path: Path, tasks: int) -> SwarmSpec:
    return parse_spec(
        {
            "swarm_id": "locked",
            "agents": [{"id": "w", "count": 4}],
            "workload": {"kind": "sleep", "tasks": tasks, "size": 0.001},
            "monitor": {"enabled": False},
            "seed": 1,
        },
        "test",
    )


def test_a_run_that_ends_while_another_process_holds_the_lock_stores_every_result(
    tmp_path: Path,
) -> None:
    path = tmp_path / "swarmperf.db"
    spec = spec_for(tmp_path, 4000)
    with Store.open(path, busy_timeout=0.2) as store, contextlib.ExitStack() as stack:
        holders: list[subprocess.Popen[str]] = []

        def lock_once_running(progress: Progress) -> None:
            # Another process takes the lock mid-run, for longer than the rest of the run:
            # the periodic flushes wait and fail their first attempts, and the run ends
            # while the lock is still held.
            if progress.finished > 0 and not holders:
                holders.append(stack.enter_context(write_lock_held(path, seconds=2.0)))

        outcome = asyncio.run(
            run_spec(spec, store=store, progress_every=0.05, on_progress=lock_once_running)
        )
        assert holders, "the lock was never taken: the run ended before its first progress"
        assert outcome.run_id is not None
        record = store.get_run(outcome.run_id)
        assert record is not None
        assert record.status == "completed"
        assert store.count_results(outcome.run_id) == 4000
        assert record.report is not None
        assert record.report["tasks_total"] == 4000
        assert store.write_stats().max_wait_s > 0.2


def test_a_run_whose_results_cannot_be_stored_is_not_recorded_completed(tmp_path: Path) -> None:
    path = tmp_path / "swarmperf.db"
    spec = spec_for(tmp_path, 4000)
    with Store.open(path, busy_timeout=0.1, write_timeout=0.5) as store:
        with contextlib.ExitStack() as stack:
            holders: list[subprocess.Popen[str]] = []

            def lock_once_running(progress: Progress) -> None:
                if progress.finished > 0 and not holders:  # held until the run has failed
                    holders.append(stack.enter_context(write_lock_held(path)))

            with pytest.raises(StoreError, match="could not be stored"):
                asyncio.run(
                    run_spec(spec, store=store, progress_every=0.05, on_progress=lock_once_running)
                )
            assert holders
        runs = store.list_runs("locked")
        assert len(runs) == 1
        # Its end could not be recorded while the lock was held: it is not `completed`.
        assert runs[0].status != "completed"
        assert store.count_results(runs[0].id) < 4000


# -- permissions ---------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_dir_and_database_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = data / "swarmperf.db"
    old = os.umask(0o022)
    try:
        with Store.open(path) as store:
            store.start_run("s", {}, "local", "round-robin")
            assert mode(data) == 0o700
            assert mode(path) == 0o600
            for side in ("-wal", "-shm"):
                side_file = path.with_name(path.name + side)
                if side_file.exists():
                    assert mode(side_file) == 0o600
    finally:
        os.umask(old)


def test_an_existing_database_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "swarmperf.db"
    Store.open(path).close()
    path.chmod(0o640)
    Store.open(path).close()
    assert mode(path) == 0o640


# -- damaged and read-only stores ----------------------------------------------------------------


def populated(path: Path, runs: int = 30) -> None:
    with Store.open(path) as store:
        for i in range(runs):
            run_id = store.start_run(f"swarm-{i}", {"pad": "x" * 2000}, "local", "round-robin")
            store.record_results(run_id, results(*(f"t{j}" for j in range(50))))
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def read_everything(path: Path) -> None:
    with Store.open(path) as store:
        for run in store.list_runs(limit=1000):
            store.count_results(run.id)


def test_damaged_pages_give_a_store_error_that_says_how_to_recover(tmp_path: Path) -> None:
    path = tmp_path / "swarmperf.db"
    populated(path)
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data), page):  # every b-tree page after the schema's
        data[offset : offset + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"damaged.*\.recover"):
        read_everything(path)


def test_a_truncated_store_gives_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "swarmperf.db"
    populated(path)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 3)
    with pytest.raises(StoreError, match="damaged"):
        read_everything(path)


def test_a_read_only_store_cannot_be_written_but_reads(tmp_path: Path) -> None:
    path = tmp_path / "swarmperf.db"
    populated(path, runs=2)
    with Store.open(path, read_only=True) as store:
        assert len(store.list_runs()) == 2
        with pytest.raises(StoreError, match="read-only"):
            store.start_run("s", {}, "local", "round-robin")


def test_a_read_only_open_of_a_missing_store_reads_empty_and_creates_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nowhere" / "swarmperf.db"
    with Store.open(path, read_only=True) as store:
        assert store.list_runs() == []
        assert store.latest_metrics("s") is None
    assert not path.parent.exists()


# A user who may read the store but not write it (another user's data directory).
AS_OTHER_USER = """
import json, sys
from swarmperf.core.errors import StoreError
from swarmperf.store import Store
try:
    Store.open(sys.argv[1]).close()
except StoreError as exc:
    write = str(exc)
with Store.open(sys.argv[1], read_only=True) as store:
    print(json.dumps({"write": write, "runs": len(store.list_runs())}))
"""


def without_write_permission() -> list[str]:
    """A command prefix under which the permission bits bind this user, root included."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")  # util-linux, on every Debian
    if setpriv is None:
        pytest.skip("root ignores permission bits, and setpriv (util-linux) is not installed")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def test_a_user_who_may_only_read_gets_a_clear_error_to_write_and_can_read(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    path = data / "swarmperf.db"
    populated(path, runs=3)
    path.chmod(0o444)
    data.chmod(0o555)
    try:
        child = subprocess.run(
            [*without_write_permission(), sys.executable, "-c", AS_OTHER_USER, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        data.chmod(0o755)
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout)
    assert seen["runs"] == 3
    assert "may not write it" in seen["write"]


@pytest.mark.parametrize("command", ["performance-report", "run"])
def test_the_cli_on_a_damaged_store_exits_2_without_a_traceback(
    tmp_path: Path, command: str
) -> None:
    data = tmp_path / "data"
    path = data / "swarmperf.db"
    populated(path)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 3)
    args = {
        "performance-report": ["performance-report", "--swarm-id", "swarm-1"],
        "run": ["run", "--duration", "1s"],
    }[command]
    child = subprocess.run(
        [sys.executable, "-m", "swarmperf", *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 2, child.stderr
    assert "Traceback" not in child.stderr
    assert "damaged" in child.stderr
    assert ".recover" in child.stderr

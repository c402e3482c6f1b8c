"""Another process reads the store while this one has it open and writes to it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from swarmperf.core.model import TaskResult, TaskStatus
from swarmperf.store import Store

# Opens the store the way a monitoring process would, and prints what it sees of one run.
READER = """
import json, sys
from swarmperf.store import Store

with Store.open(sys.argv[1], busy_timeout=0.5) as store:
    run_id = int(sys.argv[2])
    task_ids = [r.task_id for r in store.iter_results(run_id)]
    print(json.dumps([store.count_results(run_id), task_ids]))
"""

# Holds one read transaction open across a write by the parent, one line per step.
SNAPSHOT_READER = """
import sqlite3, sys

conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0.5)
count = "SELECT count(*) FROM task_results"
conn.execute("BEGIN")
print(conn.execute(count).fetchone()[0], flush=True)
sys.stdin.readline()
print(conn.execute(count).fetchone()[0], flush=True)
conn.execute("COMMIT")
print(conn.execute(count).fetchone()[0], flush=True)
"""


def results(*task_ids: str) -> list[TaskResult]:
    return [TaskResult(t, TaskStatus.SUCCEEDED, "a1", 1, 0.0, 0.1, 0.2) for t in task_ids]


def test_other_process_reads_committed_rows_while_a_write_is_in_progress(
    tmp_path: Path,
) -> None:
    path = tmp_path / "swarmperf.db"
    with Store.open(path) as store:
        run_id = store.start_run("s", {}, "local", "round-robin")
        store.record_results(run_id, results("t1", "t2"))
        with store.transaction():
            # Uncommitted, and this process holds the write lock while the reader runs.
            store.record_results(run_id, results("t3"))
            reader = subprocess.run(
                [sys.executable, "-c", READER, str(path), str(run_id)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        assert reader.returncode == 0, reader.stderr
        assert json.loads(reader.stdout) == [2, ["t1", "t2"]]
        assert store.count_results(run_id) == 3


def test_writer_commits_while_other_process_holds_a_read_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "swarmperf.db"
    # A short busy timeout: without WAL the commit below would wait for the reader, then fail.
    with Store.open(path, busy_timeout=0.5) as store:
        run_id = store.start_run("s", {}, "local", "round-robin")
        store.record_results(run_id, results("t1", "t2", "t3"))
        with subprocess.Popen(
            [sys.executable, "-c", SNAPSHOT_READER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as reader:
            assert reader.stdin is not None
            assert reader.stdout is not None
            try:
                assert reader.stdout.readline().strip() == "3"
                store.record_results(run_id, results("t4", "t5"))
                out, err = reader.communicate("continue\n", timeout=60)
            finally:
                if reader.poll() is None:
                    reader.kill()
    assert reader.returncode == 0, err
    # The open snapshot still sees 3 rows; a fresh read sees the committed 5.
    assert out.split() == ["3", "5"]

"""Store contention: concurrent runs share one data directory while another process seizes
the store's write lock for 8 s at random moments. Nothing may be lost or misreported.

Four runs of 50,000 tasks each (`--quick`: 10,000) start at once, each in its own process,
on one data directory, with the monitor on (so metric snapshots compete for the lock too). A
fifth process takes the write lock (`BEGIN IMMEDIATE`) for 8 s, longer than a writer's busy
timeout of 5 s, first within a second of the start and then at random moments until the runs
end. Afterwards the store is read back:

- `results_expected`: tasks of the runs; `results_stored`: their rows in `task_results`;
  `lost` = expected - stored.
- `runs_misreported`: runs whose status or report disagrees with their rows (a `completed`
  run whose report does not count every stored row, or rows missing from one).
- `max_write_wait_s`: the longest any run's writer waited for the lock, measured by the
  store itself.

Goal: lost 0 and runs_misreported 0. The benchmark has no peer: it checks an invariant.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, parse_args, python_version
from swarmperf.store import Store

RUNS = 4
HOLD_S = 8.0

# One run, as `swarmperf run` does it: the spec's swarm, the store under the data directory.
RUNNER = """
import asyncio, json, sys
from swarmperf.app.run import run_spec
from swarmperf.spec import parse_spec
from swarmperf.store import Store

swarm_id, tasks, db = sys.argv[1], int(sys.argv[2]), sys.argv[3]
spec = parse_spec({
    "swarm_id": swarm_id,
    "agents": [{"id": "w", "count": 4, "concurrency": 4}],
    "workload": {"kind": "sleep", "tasks": tasks, "size": 0.0002},
    "monitor": {"interval": "200ms"},
    "seed": 7,
}, "benchmark")
with Store.open(db) as store:
    try:
        outcome = asyncio.run(run_spec(spec, store=store))
        error = None
    except Exception as exc:
        outcome, error = None, f"{type(exc).__name__}: {exc}"
    stats = store.write_stats()
print(json.dumps({
    "run_id": None if outcome is None else outcome.run_id,
    "error": error,
    "max_write_wait_s": stats.max_wait_s,
    "write_waits": stats.waits,
    "transactions": stats.transactions,
}))
"""

# Takes the write lock for argv[2] seconds whenever told to on stdin; says when it has it.
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=120)
hold = float(sys.argv[2])
for line in sys.stdin:
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(hold)
    conn.execute("COMMIT")
    print("released", flush=True)
"""


def _runs(db: Path, tasks: int) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, f"contention-{i}", str(tasks), str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(RUNS)
    ]


def _seize_until_done(db: Path, runs: list[subprocess.Popen[str]], rng: random.Random) -> int:
    """Take the lock for HOLD_S at random moments while any run goes; return how often."""
    holds = 0
    with subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db), str(HOLD_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as locker:
        assert locker.stdin is not None
        assert locker.stdout is not None
        pause = rng.uniform(0.2, 1.0)  # the first hold lands early, while every run goes
        while any(r.poll() is None for r in runs):
            time.sleep(pause)
            if all(r.poll() is not None for r in runs):
                break
            locker.stdin.write("go\n")
            locker.stdin.flush()
            assert locker.stdout.readline().strip() == "locked"
            holds += 1
            log(f"  lock seized ({holds}) for {HOLD_S:g} s")
            assert locker.stdout.readline().strip() == "released"
            pause = rng.uniform(0.5, 4.0)
        locker.stdin.close()
        locker.wait(timeout=60)
    return holds


def _check(db: Path, outputs: list[dict[str, Any]], tasks: int) -> dict[str, Any]:
    stored = 0
    misreported: list[dict[str, Any]] = []
    with Store.open(db, read_only=True) as store:
        runs = store.list_runs(limit=1000)
        for run in runs:
            rows = store.count_results(run.id)
            stored += rows
            reported = None if run.report is None else run.report.get("tasks_total")
            honest = (run.status == "completed" and reported == rows == tasks) or (
                run.status != "completed" and run.status != "running"
            )
            if not honest:
                misreported.append(
                    {"run": run.id, "status": run.status, "rows": rows, "reported": reported}
                )
    failed = [o for o in outputs if o.get("error")]
    return {
        "runs_recorded": len(runs),
        "results_stored": stored,
        "runs_misreported": len(misreported),
        "misreported": misreported,
        "runs_failed": len(failed),
        "failures": [o["error"] for o in failed],
    }


def main() -> None:
    settings = parse_args(__doc__ or "", n=50_000, repeats=1, quick_n=10_000, quick_repeats=1)
    rng = random.Random(20261206)
    with tempfile.TemporaryDirectory(prefix="swarmperf-contention-") as tmp:
        db = Path(tmp) / "swarmperf.db"
        Store.open(db).close()  # made and migrated before the runs race to do it
        log(f"{RUNS} runs of {settings.n:,} tasks on {db}, lock seized for {HOLD_S:g} s at times")
        started = time.perf_counter()
        runs = _runs(db, settings.n)
        holds = _seize_until_done(db, runs, rng)
        outputs: list[dict[str, Any]] = []
        for proc in runs:
            out, err = proc.communicate(timeout=1800)
            last = out.strip().splitlines()[-1] if out.strip() else "{}"
            data = json.loads(last)
            data["exit_code"] = proc.returncode
            if proc.returncode != 0:
                data["error"] = data.get("error") or err.strip().splitlines()[-1:]
            outputs.append(data)
        wall = time.perf_counter() - started
        checked = _check(db, outputs, settings.n)
    expected = RUNS * settings.n
    figures: dict[str, Any] = {
        "benchmark": "store_contention",
        "results_expected": expected,
        "results_stored": checked["results_stored"],
        "lost": expected - checked["results_stored"],
        "runs_misreported": checked["runs_misreported"],
        "max_write_wait_s": round(max(o.get("max_write_wait_s", 0.0) for o in outputs), 3),
        "goals_met": expected == checked["results_stored"] and checked["runs_misreported"] == 0,
        "runs": RUNS,
        "tasks_per_run": settings.n,
        "lock_holds": holds,
        "hold_s": HOLD_S,
        "runs_failed": checked["runs_failed"],
        "failures": checked["failures"],
        "misreported": checked["misreported"],
        "write_waits": [o.get("write_waits") for o in outputs],
        "runs_recorded": checked["runs_recorded"],
        "wall_seconds": round(wall, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "quick": settings.quick,
        "python": python_version(),
    }
    emit(figures)


if __name__ == "__main__":
    main()

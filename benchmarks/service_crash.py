"""Service crash: tasks submitted to `swarmperf serve` while it is `kill -9`ed twice and
restarted with the same swarm id and data directory. Nothing accepted may be lost, and no
task may have two results.

20,000 tasks (`--quick`: 4,000) go in batches of 200 through `SyncSwarmClient.submit_many`,
which gives each task an idempotency key before sending and retries on connection errors
(re-reading the registry, where a restarted service gives its new port and token), so the
submitter keeps going across restarts. Each task is a `logged-sleep` of 1 ms: a handler
served with `--handlers _service_peers:CRASH_HANDLERS` that appends the task's number to a
run log (one O_APPEND write, which survives `kill -9`) before it sleeps, so that a task
run twice is seen. Meanwhile the service is killed with SIGKILL twice, at moments drawn
from a seeded RNG: first once a random share (20-60 %) of the tasks has been acknowledged,
then, after the restart has recorded a result, once a random share (50-85 %) has results;
each time a few random milliseconds later. Each kill is followed at once by a restart.

Afterwards, once every accepted task has a result (or a time limit passed), the service is
stopped (SIGTERM) and the store (`DIR/swarmperf.db`) is read directly:

- `accepted`: tasks whose submission was acknowledged (a receipt came back).
- `lost`: accepted tasks with no recorded result in the end (in the intake or under any run).
- `duplicated_results`: task ids with more than one row in `task_results` across the
  swarm's runs.
- `reruns`: tasks that started more than once (at-least-once is allowed; reported).
- `recovery_s`: from the restart command to the first result recorded after it, median of
  the two restarts.

Goal: lost 0 and duplicated_results 0. The benchmark has no peer: it checks an invariant.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RunSettings, emit, log, median, parse_args, python_version
from _service_peers import RUN_LOG_ENV, ServedSwarm, tail, write_spec

SWARM_ID = "crash"
AGENTS = ({"id": "a1", "concurrency": 4}, {"id": "a2", "concurrency": 4})
STRATEGY = "capacity-aware"  # the spec's default
BATCH = 200
SLEEP_S = 0.001
KILLS = 2
SEED = 1515
CLIENT_RETRIES = 30  # backoff capped at 5 s: far longer than a restart takes
FINISH_WAIT_S = 180.0  # after the last submission and kill, for every result to come
RECOVERY_WAIT_S = 60.0


@dataclass
class Submitter:
    """Submits every task in batches from a thread; counts what was acknowledged."""

    data_dir: Path
    n: int
    acknowledged: dict[str, int] = field(default_factory=dict)  # task id -> task number
    keys: dict[str, str] = field(default_factory=dict)  # task id -> idempotency key
    duplicate_receipts: int = 0  # retried after a lost reply: the service had it already
    failures: list[str] = field(default_factory=list)  # submit_many gave up on a batch
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    finished_at: float | None = None

    @property
    def count(self) -> int:
        return len(self.acknowledged)

    def run(self) -> None:
        from swarmperf.client import SyncSwarmClient

        try:
            client = SyncSwarmClient(
                SWARM_ID, data_dir=self.data_dir, retries=CLIENT_RETRIES, timeout=30.0
            )
            for first in range(0, self.n, BATCH):
                numbers = range(first, min(self.n, first + BATCH))
                tasks = [
                    {"kind": "logged-sleep", "payload": {"key": i, "s": SLEEP_S}} for i in numbers
                ]
                while True:
                    try:
                        receipts = client.submit_many(tasks, batch=BATCH)
                        break
                    except Exception as exc:  # retries spent: say so, send the batch again
                        self.failures.append(f"batch at {first}: {type(exc).__name__}: {exc}")
                        log(f"  submit_many gave up on the batch at {first}: {exc}")
                        time.sleep(0.5)
                for number, receipt in zip(numbers, receipts, strict=True):
                    self.acknowledged[receipt.id] = number
                    self.keys[receipt.id] = receipt.idempotency_key
                    self.duplicate_receipts += receipt.duplicate
            client.close()
        except BaseException as exc:
            self.error = exc
            traceback.print_exc()
        finally:
            self.finished_at = time.time()
            self.done.set()


class StoreReader:
    """Reads the service's store directly, read-only, while it runs and after."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._conn: sqlite3.Connection | None = None

    def conn(self) -> sqlite3.Connection | None:
        if self._conn is None and self.db.exists():
            self._conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _scalar(self, sql: str, params: tuple[Any, ...]) -> Any:
        conn = self.conn()
        if conn is None:
            return None
        try:
            return conn.execute(sql, params).fetchone()[0]
        except sqlite3.OperationalError:  # the table is not made yet, or a moment's lock
            return None

    def recorded(self) -> int:
        found = self._scalar("SELECT count(done_seq) FROM intake WHERE swarm_id = ?", (SWARM_ID,))
        return int(found or 0)

    def unfinished(self) -> int | None:
        found = self._scalar(
            "SELECT count(*) FROM intake WHERE swarm_id = ? AND done_seq IS NULL", (SWARM_ID,)
        )
        return None if found is None else int(found)

    def first_result_after(self, moment: float) -> float | None:
        found = self._scalar(
            "SELECT min(finished_at) FROM intake WHERE swarm_id = ? AND finished_at >= ?",
            (SWARM_ID, moment),
        )
        return None if found is None else float(found)


@dataclass
class Kill:
    at: float  # UNIX time of the SIGKILL
    trigger: str
    acknowledged: int
    recorded: int
    restart_issued: float = 0.0
    ready_s: float | None = None
    recovery_s: float | None = None

    def figures(self, started: float) -> dict[str, Any]:
        return {
            "at_s": round(self.at - started, 3),
            "trigger": self.trigger,
            "acknowledged_then": self.acknowledged,
            "recorded_then": self.recorded,
            "ready_s": None if self.ready_s is None else round(self.ready_s, 3),
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 3),
        }


def _wait_for(condition: Any, timeout: float, what: str, poll: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting {timeout:g} s for {what}")
        time.sleep(poll)


def _kill_and_restart(served: ServedSwarm, store: StoreReader, kill: Kill) -> None:
    """SIGKILL, then restart at once with the same id and data dir; wait for a result."""
    served.kill9()
    kill.restart_issued = served.launch()
    served.wait_ready()
    kill.ready_s = time.time() - kill.restart_issued
    first: list[float] = []

    def new_result() -> bool:
        found = store.first_result_after(kill.restart_issued)
        if found is not None:
            first.append(found)
        return found is not None

    _wait_for(new_result, RECOVERY_WAIT_S, "a result after the restart", poll=0.01)
    kill.recovery_s = first[0] - kill.restart_issued


def _chaos(
    served: ServedSwarm, store: StoreReader, submitter: Submitter, n: int, rng: random.Random
) -> list[Kill]:
    kills: list[Kill] = []
    # First kill: while tasks are still being submitted, once a random share is accepted.
    share = rng.uniform(0.2, 0.6)
    _wait_for(
        lambda: submitter.count >= share * n or submitter.done.is_set(),
        FINISH_WAIT_S,
        "submissions",
    )
    time.sleep(rng.uniform(0.0, 0.05))
    kills.append(Kill(time.time(), f"{share:.0%} acknowledged", submitter.count, store.recorded()))
    log(f"  kill -9 #1 at {kills[-1].acknowledged:,} acknowledged")
    _kill_and_restart(served, store, kills[-1])
    # Second kill: while results are still coming, once a random share has them.
    share = rng.uniform(0.5, 0.85)
    _wait_for(lambda: store.recorded() >= share * n, FINISH_WAIT_S, "results", poll=0.01)
    time.sleep(rng.uniform(0.0, 0.05))
    kills.append(Kill(time.time(), f"{share:.0%} with results", submitter.count, store.recorded()))
    log(f"  kill -9 #2 at {kills[-1].recorded:,} results recorded")
    _kill_and_restart(served, store, kills[-1])
    return kills


def _run_log(path: Path) -> Counter[int]:
    starts: Counter[int] = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                starts[int(line)] += 1
    return starts


def _check(db: Path, submitter: Submitter, starts: Counter[int]) -> dict[str, Any]:
    """Read the store after the service stopped: what became of every accepted task."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        intake = {
            task_id: (done_seq, status)
            for task_id, done_seq, status in conn.execute(
                "SELECT task_id, done_seq, status FROM intake WHERE swarm_id = ?", (SWARM_ID,)
            )
        }
        rows = Counter(
            task_id
            for (task_id,) in conn.execute(
                "SELECT r.task_id FROM task_results r JOIN runs ON runs.id = r.run_id"
                " WHERE runs.swarm_id = ?",
                (SWARM_ID,),
            )
        )
        runs = conn.execute(
            "SELECT id, status FROM runs WHERE swarm_id = ? ORDER BY id", (SWARM_ID,)
        ).fetchall()
    finally:
        conn.close()
    accepted = set(submitter.acknowledged)
    not_stored = [t for t in accepted if t not in intake]
    no_result = [t for t in accepted if t in intake and (intake[t][0] is None or rows[t] == 0)]
    duplicated = [t for t, count in rows.items() if count > 1]
    statuses = Counter(intake[t][1] or "none" for t in accepted if t in intake)
    numbers = set(submitter.acknowledged.values())
    return {
        "accepted": len(accepted),
        "lost": len(not_stored) + len(no_result),
        "duplicated_results": len(duplicated),
        "reruns": sum(1 for number in numbers if starts[number] > 1),
        "lost_never_stored": len(not_stored),
        "lost_without_result": len(no_result),
        "extra_runs": sum(max(0, starts[number] - 1) for number in numbers),
        "never_started": sum(1 for number in numbers if starts[number] == 0),
        "stored_not_acknowledged": len(set(intake) - accepted),
        "result_statuses": dict(statuses),
        "duplicated_examples": duplicated[:5],
        "lost_examples": (not_stored + no_result)[:5],
        "runs": [{"id": run_id, "stored_status": status} for run_id, status in runs],
    }


def _measure(settings: RunSettings, seed: int, workdir: Path) -> dict[str, Any]:
    n = settings.n
    rng = random.Random(seed)
    data_dir = workdir / "data"
    data_dir.mkdir()
    run_log = workdir / "runs.log"
    spec = write_spec(workdir / "swarm.yaml", SWARM_ID, STRATEGY, AGENTS)
    served = ServedSwarm(
        spec,
        SWARM_ID,
        data_dir,
        handlers="_service_peers:CRASH_HANDLERS",
        env={RUN_LOG_ENV: str(run_log)},
    )
    store = StoreReader(data_dir / "swarmperf.db")
    submitter = Submitter(data_dir, n)
    started = time.time()
    served.start()
    log(f"swarmperf serve ready at {served.url}; submitting {n:,} tasks in batches of {BATCH}")
    thread = threading.Thread(target=submitter.run, name="submitter", daemon=True)
    finished_s: float | None = None
    try:
        thread.start()
        kills = _chaos(served, store, submitter, n, rng)
        thread.join(timeout=FINISH_WAIT_S)
        if thread.is_alive():
            raise RuntimeError(f"the submitter did not finish within {FINISH_WAIT_S:g} s")
        if submitter.error is not None:
            raise RuntimeError(f"the submitter failed: {submitter.error!r}")
        log(f"  all {submitter.count:,} acknowledged; waiting for every result")
        try:
            _wait_for(lambda: store.unfinished() == 0, FINISH_WAIT_S, "every result", poll=0.05)
            finished_s = time.time() - started
        except RuntimeError as exc:  # what is missing then is counted as lost below
            log(f"  {exc}")
    finally:
        store.close()
        died = served.proc is not None and served.proc.poll() is not None
        serve_exit = served.stop()
        if died or serve_exit not in (0, None):
            log(f"swarmperf serve exited with {serve_exit}:\n{tail(served.log_path, 40)}")
    starts = _run_log(run_log)
    checked = _check(data_dir / "swarmperf.db", submitter, starts)
    recoveries = [k.recovery_s for k in kills if k.recovery_s is not None]
    return {
        **{k: checked[k] for k in ("accepted", "lost", "duplicated_results", "reruns")},
        "recovery_s": round(median(recoveries), 3) if recoveries else None,
        "goals_met": checked["lost"] == 0
        and checked["duplicated_results"] == 0
        and checked["accepted"] == n,
        "submitted": n,
        "kills": [k.figures(started) for k in kills],
        "all_results_s": None if finished_s is None else round(finished_s, 2),
        "submit_failures": submitter.failures,
        "duplicate_receipts": submitter.duplicate_receipts,
        "serve_exit_code": serve_exit,
        "detail": {
            k: checked[k]
            for k in checked
            if k not in ("accepted", "lost", "duplicated_results", "reruns")
        },
    }


def main() -> None:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--seed", type=int, default=SEED)
    known, rest = extra.parse_known_args()
    settings = parse_args(
        (__doc__ or "") + f"\n--seed N: the kill moments' RNG seed (default {SEED})",
        n=20_000,
        repeats=1,
        quick_n=4_000,
        quick_repeats=1,
        argv=rest,
    )
    started = time.perf_counter()
    figures: dict[str, Any] = {"benchmark": "service_crash"}
    exit_code = 0
    try:
        with tempfile.TemporaryDirectory(prefix="swarmperf-crash-") as tmp:
            figures.update(_measure(settings, known.seed, Path(tmp)))
    except Exception as exc:  # still end with the JSON line, saying what broke
        traceback.print_exc()
        figures.update(
            {
                "accepted": None,
                "lost": None,
                "duplicated_results": None,
                "reruns": None,
                "recovery_s": None,
                "goals_met": False,
                "error": f"{type(exc).__name__}: {exc}",
            }
        )
        exit_code = 1
    else:
        log(
            f"\naccepted {figures['accepted']:,}, lost {figures['lost']}, duplicated results "
            f"{figures['duplicated_results']}, reruns {figures['reruns']}, recovery "
            f"{figures['recovery_s']} s; goal lost 0 and duplicated 0: "
            f"{'MET' if figures['goals_met'] else 'NOT MET'}"
        )
    try:
        from swarmperf.runtime import compiled

        is_compiled: bool | None = bool(compiled())
    except ImportError:
        is_compiled = None
    figures.update(
        {
            "settings": {
                "n_tasks": settings.n,
                "quick": settings.quick,
                "batch": BATCH,
                "kills": KILLS,
                "seed": known.seed,
                "task": f"logged-sleep {SLEEP_S * 1000:g} ms",
                "agents": [dict(a) for a in AGENTS],
                "strategy": STRATEGY,
                "client": "SyncSwarmClient.submit_many, idempotency keys given by the client, "
                f"retries {CLIENT_RETRIES}",
                "kill_moments": "1: a random 20-60 % acknowledged; 2: a random 50-85 % with "
                "results, after restart 1 recorded one; each + 0-50 ms",
            },
            "compiled": is_compiled,
            "python": python_version(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "wall_s": round(time.perf_counter() - started, 1),
        }
    )
    emit(figures)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()

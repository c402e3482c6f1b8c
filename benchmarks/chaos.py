"""Chaos: tasks on the `process` backend while agents are killed, fail and slow down;
then an overload far past capacity. Nothing may be lost, run into two results, or refused
without a reason.

Part 1, on 10 worker processes: 10,000 tasks (`sleep`, 2 ms). Mid-run, 20% of the agents
are killed with SIGKILL, 20% start failing half their calls, and one becomes 10x slower.
The same tasks also run without chaos, for the p99 latency ratio. The swarm uses the
default resilience: breakers per agent, retries of agent trouble on another agent, restart
of killed workers with backoff.

Part 2, on the `local` backend: tasks offered at 10x the swarm's capacity for 60 s
(`--quick`: 10 s), with a bounded queue. Every task offered either finishes, is shed with
a reason, or is refused at submission with `Backpressure` (whose message is the reason).
Peak RSS of the whole process tree is sampled throughout.

Part 3, signals: a real `swarmperf run` (process backend, 4 workers, 2,000 tasks of
`sleep` 200 ms) on a fresh data directory gets SIGTERM once it is under way, and another
SIGINT. Then the store must hold exactly one result per task (succeeded, failed, or
cancelled with a reason) and the run's recorded end; `drain_s` is measured from the signal
to the process's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, parse_args, python_version
from swarmperf import AgentSpec, QueueSettings, Swarm, Task, TaskResult, TaskStatus
from swarmperf.core.errors import Backpressure
from swarmperf.core.model import Fault
from swarmperf.resilience.breaker import BreakerSettings
from swarmperf.resilience.guard import SUGGESTED_SHED_AT, ResilienceGuard, ResilienceSettings
from swarmperf.resilience.restart import RestartPolicy
from swarmperf.resilience.retry import RetryPolicies, RetryPolicy
from swarmperf.runtime.process import ProcessBackend
from swarmperf.store import Store

AGENTS = 10
TASK_SECONDS = 0.002
CHAOS_AT = 0.6  # seconds into the run


def _guard() -> ResilienceGuard:
    return ResilienceGuard(
        ResilienceSettings(
            breaker=BreakerSettings(
                failure_threshold=5,
                window="count",
                window_size=50,
                minimum_calls=20,
                open_for=0.5,
                half_open_calls=1,
                success_threshold=3,
            ),
            retry=RetryPolicies(
                RetryPolicy(
                    max_attempts=6,
                    base_delay=0.005,
                    retry_on=("InjectedFault", "AgentCrashed", "TimeoutError"),
                )
            ),
            retry_budget=None,
        )
    )


def _agents(chaos: bool) -> list[AgentSpec]:
    agents = []
    for i in range(AGENTS):
        faults: tuple[Fault, ...] = ()
        if chaos and i in (2, 3):  # 20% fail half their calls
            faults = (Fault(start=CHAOS_AT, error_rate=0.5),)
        elif chaos and i == 4:  # one becomes 10x slower
            faults = (Fault(start=CHAOS_AT, slowdown=10.0),)
        agents.append(AgentSpec(f"agent-{i}", prefetch=2, faults=faults))
    return agents


async def _chaos_run(n_tasks: int, chaos: bool) -> dict[str, Any]:
    backend = ProcessBackend()
    swarm = Swarm(
        _agents(chaos),
        strategy="least-loaded",
        backend=backend,
        guard=_guard(),
        restart=RestartPolicy(base_delay=0.2),
    )
    tasks = [Task("sleep", payload=TASK_SECONDS, cost=TASK_SECONDS) for _ in range(n_tasks)]
    killed: list[str] = []
    async with swarm:
        started = time.perf_counter()

        async def strike() -> None:
            await asyncio.sleep(CHAOS_AT)
            for agent_id in ("agent-0", "agent-1"):  # 20% killed
                os.kill(backend.pid(agent_id), signal.SIGKILL)
                killed.append(agent_id)

        striker = asyncio.create_task(strike()) if chaos else None
        results = await swarm.run(tasks)
        if striker is not None:
            await striker
        wall = time.perf_counter() - started
        events = list(swarm.events)
    ids = [r.task_id for r in results]
    unique = set(ids)
    latencies = sorted(r.latency for r in results if r.ok and r.latency is not None)
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else None
    failed = [r for r in results if r.status is TaskStatus.FAILED]
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
    return {
        "submitted": len(tasks),
        "lost": len({t.id for t in tasks} - unique),
        "duplicated_results": len(ids) - len(unique),
        "completed": sum(r.ok for r in results),
        "failed_with_reason": sum(bool(r.error) for r in failed),
        "failed_without_reason": sum(not r.error for r in failed),
        "p99_latency_s": p99,
        "wall_s": wall,
        "killed": killed,
        "events": kinds,
    }


def _tree_rss() -> float:
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a child may exit while we look
            total += child.memory_info().rss
    return float(total) / 2**20


async def _overload(seconds: float) -> dict[str, Any]:
    agents = [AgentSpec(f"agent-{i}") for i in range(4)]
    capacity = len(agents) / 0.005  # tasks per second at 5 ms each
    offered_rate = 10 * capacity
    counts = {
        "succeeded": 0,
        "failed": 0,
        "cancelled_with_reason": 0,
        "shed_with_reason": 0,
        "rejected_without_reason": 0,
    }
    refused_with_reason = 0
    offered = 0

    def count(result: TaskResult) -> None:
        if result.status is TaskStatus.REJECTED or result.status is TaskStatus.CANCELLED:
            if not result.error:
                counts["rejected_without_reason"] += 1
            elif result.status is TaskStatus.REJECTED:
                counts["shed_with_reason"] += 1
            else:
                counts["cancelled_with_reason"] += 1
        else:
            counts["succeeded" if result.ok else "failed"] += 1

    guard = ResilienceGuard(
        ResilienceSettings(breaker=None, retry=None, retry_budget=None, shed_at=SUGGESTED_SHED_AT)
    )
    swarm = Swarm(
        agents,
        strategy="least-loaded",
        guard=guard,
        queue=QueueSettings(max_queued=10_000),
        keep_results=False,
    )
    swarm.on_result(count)
    peak = _tree_rss()
    async with swarm:
        start = time.perf_counter()
        tick = 0.01
        next_tick = start
        while (now := time.perf_counter()) - start < seconds:
            due = int((now - start) * offered_rate) - offered
            for _ in range(due):
                offered += 1
                try:
                    swarm.submit(Task("sleep", payload=0.005, cost=0.005))
                except Backpressure as exc:
                    if str(exc):
                        refused_with_reason += 1
                    else:
                        counts["rejected_without_reason"] += 1
            if offered % 2000 < due or due > 2000:
                peak = max(peak, _tree_rss())
            next_tick += tick
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
        swarm.cancel_pending("the overload test is over")
        await swarm.drain()
        peak = max(peak, _tree_rss())
    accounted = sum(counts.values()) + refused_with_reason
    return {
        "seconds": seconds,
        "offered": offered,
        "offered_per_s": round(offered / seconds),
        "capacity_per_s": round(capacity),
        "succeeded": counts["succeeded"],
        "failed": counts["failed"],
        "cancelled_with_reason": counts["cancelled_with_reason"],
        "shed_with_reason": counts["shed_with_reason"],
        "refused_with_reason": refused_with_reason,
        "rejected_without_reason": counts["rejected_without_reason"],
        "unaccounted": offered - accounted,
        "peak_rss_mb": round(peak, 1),
    }


_SIGNAL_SPEC = """\
swarm_id: chaos-signal
backend: process
agents:
  - id: w
    count: 4
workload:
  tasks: {tasks}
  kind: sleep
  size: 200ms
  arrival: {{process: batch}}
monitor: {{enabled: false}}
timeouts: {{drain: 10s}}
"""


def _signalled_run(sig: signal.Signals, tasks: int) -> dict[str, Any]:
    """A real `swarmperf run`, `sig` once it has stored results, then what the store says."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        spec = data / "spec.yaml"
        spec.write_text(_SIGNAL_SPEC.format(tasks=tasks))
        proc = subprocess.Popen(
            [sys.executable, "-m", "swarmperf", "run", str(spec), "--data-dir", str(data)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        db = data / "swarmperf.db"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(sqlite3.Error):
                if db.exists():
                    with contextlib.closing(sqlite3.connect(db)) as conn:
                        if conn.execute("SELECT count(*) FROM task_results").fetchone()[0] >= 20:
                            break
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
        drain_s = time.monotonic() - sent
        with Store.open(db) as store:
            (run,) = store.list_runs()
            results = list(store.iter_results(run.id))
    ids: dict[str, int] = {}
    for result in results:
        ids[result.task_id] = ids.get(result.task_id, 0) + 1
    by_status: dict[str, int] = {}
    for result in results:
        by_status[result.status.value] = by_status.get(result.status.value, 0) + 1
    return {
        "tasks": tasks,
        "results": len(results),
        "missing": tasks - len(ids),
        "duplicated": sum(n - 1 for n in ids.values()),
        "cancelled_without_reason": sum(
            1 for r in results if r.status is TaskStatus.CANCELLED and not r.error
        ),
        "by_status": by_status,
        "run_status": run.status,
        "ended": run.finished_at is not None,
        "exit_code": proc.returncode,
        "drain_s": round(drain_s, 3),
        "said": err.strip().splitlines()[-1] if err.strip() else "",
    }


def main() -> None:
    settings = parse_args(
        __doc__.splitlines()[0], n=10_000, repeats=1, quick_n=4_000, quick_repeats=1
    )
    overload_seconds = 10.0 if settings.quick else 60.0
    log(f"calm run: {settings.n} tasks on {AGENTS} worker processes")
    calm = asyncio.run(_chaos_run(settings.n, chaos=False))
    log(f"  p99 {calm['p99_latency_s']}, wall {calm['wall_s']:.2f}s")
    log("chaos run: kill 2, 2 fail half their calls, 1 ten times slower, at 0.6 s")
    chaos = asyncio.run(_chaos_run(settings.n, chaos=True))
    log(f"  {chaos}")
    log(f"overload: 10x capacity for {overload_seconds:g}s")
    overload = asyncio.run(_overload(overload_seconds))
    log(f"  {overload}")
    signalled: dict[str, dict[str, Any]] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        log(f"{sig.name} mid-run: a real `swarmperf run` of 2,000 tasks on 4 worker processes")
        signalled[sig.name.lower()] = _signalled_run(sig, 2_000)
        log(f"  {signalled[sig.name.lower()]}")
    signals_ok = all(
        part["missing"] == 0
        and part["duplicated"] == 0
        and part["cancelled_without_reason"] == 0
        and part["ended"]
        and part["run_status"] == "interrupted"
        for part in signalled.values()
    )
    ratio = (
        chaos["p99_latency_s"] / calm["p99_latency_s"]
        if chaos["p99_latency_s"] and calm["p99_latency_s"]
        else None
    )
    emit(
        {
            "benchmark": "chaos",
            "lost": chaos["lost"],
            "duplicated_results": chaos["duplicated_results"],
            "completed": chaos["completed"],
            "failed_with_reason": chaos["failed_with_reason"],
            "failed_without_reason": chaos["failed_without_reason"],
            "p99_latency_ratio": None if ratio is None else round(ratio, 3),
            "p99_latency_s": {"calm": calm["p99_latency_s"], "chaos": chaos["p99_latency_s"]},
            "chaos_events": chaos["events"],
            "peak_rss_mb": overload["peak_rss_mb"],
            "rejected_without_reason": overload["rejected_without_reason"],
            "overload": overload,
            "sigterm": signalled["sigterm"],
            "sigint": signalled["sigint"],
            "goals_met": signals_ok
            and chaos["lost"] == 0
            and chaos["duplicated_results"] == 0
            and overload["rejected_without_reason"] == 0
            and overload["unaccounted"] == 0,
            "tasks": settings.n,
            "agents": AGENTS,
            "python": python_version(),
            "median_wall_s": statistics.median([calm["wall_s"], chaos["wall_s"]]),
        }
    )


if __name__ == "__main__":
    main()

"""Chaos on Ray: half the actors are killed mid-run; count lost and duplicated results."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

from _common import emit, log, parse_args, python_version
from swarmperf import AgentSpec, Swarm, Task, TaskResult
from swarmperf.resilience.restart import RestartPolicy
from swarmperf.runtime.ray_backend import RayBackend

AGENTS = 4
CPUS = 2
PREFETCH = 8
TASK_SECONDS = 0.002  # each task sleeps this long on its actor
KILL_AT = 0.3  # kill when this share of the tasks has finished
STRATEGY = "least-loaded"
# Summed over the runs; each run's own figures are listed too.
TOTALS = ("results", "lost", "duplicated_results", "failed", "killed_actors", "restarts")


async def chaos(ray: Any, n: int) -> dict[str, Any]:
    specs = [AgentSpec(f"agent-{i}", concurrency=2, prefetch=PREFETCH) for i in range(AGENTS)]
    victims = [spec.id for spec in specs[: AGENTS // 2]]
    backend = RayBackend()
    restart = RestartPolicy(base_delay=0.05, max_delay=1.0)
    swarm = Swarm(specs, strategy=STRATEGY, backend=backend, restart=restart)
    results: list[TaskResult] = []
    killed: list[str] = []
    pids_before: dict[str, int] = {}

    def on_result(result: TaskResult) -> None:
        results.append(result)
        if not killed and len(results) >= KILL_AT * n:
            for agent_id in victims:
                pids_before[agent_id] = backend.placement(agent_id).pid
                ray.kill(backend.actor(agent_id))
                killed.append(agent_id)
            log(f"  killed {', '.join(killed)} after {len(results):,} results")

    swarm.on_result(on_result)
    tasks = [Task("sleep", TASK_SECONDS) for _ in range(n)]
    async with swarm:
        started = time.perf_counter()
        await swarm.run(tasks)
        elapsed = time.perf_counter() - started
        # Restarts run in the background; give them a moment to show in the events.
        deadline = time.perf_counter() + 10.0
        while (
            swarm.event_counts["agent-restarted"] < len(killed) and time.perf_counter() < deadline
        ):
            await asyncio.sleep(0.05)
        replaced = sum(
            1
            for agent_id in killed
            if agent_id in backend.placements()
            and backend.placement(agent_id).pid != pids_before[agent_id]
        )
    counts = Counter(r.task_id for r in results)
    submitted = {t.id for t in tasks}
    return {
        "tasks": n,
        "results": len(results),
        "lost": len(submitted - set(counts)),
        "duplicated_results": sum(c - 1 for c in counts.values() if c > 1),
        "failed": sum(1 for r in results if not r.ok),
        "killed_actors": len(killed),
        "agents_lost": len(swarm.lost_agents),
        "actors_replaced": replaced,
        "restarts": swarm.event_counts["agent-restarted"],
        "tasks_run_more_than_once": sum(1 for r in results if r.attempts > 1),
        "elapsed_s": round(elapsed, 3),
    }


def main() -> None:
    settings = parse_args(__doc__ or "", n=5_000, repeats=3, quick_n=5_000, quick_repeats=1)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray

    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
    log(f"Ray {ray.__version__}, {CPUS} CPUs; {AGENTS} agents, {settings.n:,} tasks")
    try:
        runs = [asyncio.run(chaos(ray, settings.n)) for _ in range(settings.repeats)]
    finally:
        ray.shutdown()
    totals = {key: sum(run[key] for run in runs) for key in TOTALS}
    emit(
        {
            "benchmark": "ray_chaos",
            "quick": settings.quick,
            "repeats": settings.repeats,
            "tasks_per_run": settings.n,
            **totals,
            "lost_goal": 0,
            "duplicated_results_goal": 0,
            "goal_met": totals["lost"] == 0 and totals["duplicated_results"] == 0,
            "runs": runs,
            "ray": ray.__version__,
            "python": python_version(),
        }
    )


if __name__ == "__main__":
    main()

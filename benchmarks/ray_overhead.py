"""Dispatch overhead per no-op task on the ray backend, against plain Ray actor calls.

Three settings of the agents' prefetch, each against plain Ray on the same actors (256
calls in flight before each `ray.get`): `PREFETCH` (32), none (0: every task is its own
actor call, one in flight per agent; also against plain Ray kept to one call in flight per
actor) and unset (the backend's `default_prefetch`, what a spec without `prefetch` gets).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

from _common import emit, log, median, parse_args, python_version, spread
from swarmperf import AgentSpec, Swarm, Task
from swarmperf.runtime.ray_backend import RayBackend

AGENTS = 2
CPUS = 2
PREFETCH = 32  # tasks handed to an agent ahead of time: they travel as one actor call
BATCH = 256  # plain Ray: calls in flight before each ray.get
RATIO_GOAL = 1.2
STRATEGY = "round-robin"


def plain_ray_us_per_task(ray: Any, actors: list[Any], n: int) -> float:
    """Round-robin `call("noop")` over the same actors, `ray.get` on batches of calls."""
    gc.collect()
    started = time.perf_counter()
    for first in range(0, n, BATCH):
        refs = [
            actors[i % len(actors)].call.remote("noop", None)
            for i in range(first, min(n, first + BATCH))
        ]
        ray.get(refs)
    return (time.perf_counter() - started) / n * 1e6


async def one_in_flight_us_per_task(actors: list[Any], n: int) -> float:
    """Plain Ray as an agent without prefetch calls: one call in flight per actor, the
    next sent when the last has come back."""

    async def one_actor(actor: Any, calls: int) -> None:
        for _ in range(calls):
            await actor.call.remote("noop", None)

    share, extra = divmod(n, len(actors))
    gc.collect()
    started = time.perf_counter()
    await asyncio.gather(*(one_actor(a, share + (i < extra)) for i, a in enumerate(actors)))
    return (time.perf_counter() - started) / n * 1e6


async def swarm_us_per_task(swarm: Swarm, n: int) -> float:
    tasks = [Task("noop") for _ in range(n)]
    gc.collect()
    started = time.perf_counter()
    # Every result read within the timing: results are kept as columns until read, and
    # `ray.get` on the other side makes its values too.
    results = list(await swarm.run(tasks))
    elapsed = time.perf_counter() - started
    failed = sum(1 for r in results if not r.ok)
    if len(results) != n or failed:  # a fast run that lost tasks would be a wrong number
        raise RuntimeError(f"{len(results)} results for {n} tasks, {failed} failed")
    return elapsed / n * 1e6


async def measure(
    ray: Any, prefetch: int | None, n: int, repeats: int
) -> tuple[list[float], list[float], list[float]]:
    """Alternate swarm runs and plain Ray runs on the same actors, `repeats` times each
    (`prefetch` None: the backend's default); at prefetch 0 also plain Ray with one call
    in flight per actor, the like-for-like peer."""
    specs = [AgentSpec(f"agent-{i}", prefetch=prefetch) for i in range(AGENTS)]
    backend = RayBackend()
    ours: list[float] = []
    plain: list[float] = []
    lone: list[float] = []
    async with Swarm(specs, strategy=STRATEGY, backend=backend) as swarm:
        actors = [backend.actor(spec.id) for spec in specs]
        await swarm_us_per_task(swarm, min(n, 200))  # warm-up: imports, first calls
        plain_ray_us_per_task(ray, actors, min(n, 200))
        for _ in range(repeats):
            ours.append(await swarm_us_per_task(swarm, n))
            plain.append(plain_ray_us_per_task(ray, actors, n))
            if prefetch == 0:
                lone.append(await one_in_flight_us_per_task(actors, n))
            log(
                f"  prefetch {label(prefetch)}: ray backend {ours[-1]:8.1f} µs/task, "
                f"plain Ray {plain[-1]:8.1f} µs/task"
                + (f", one call in flight per actor {lone[-1]:8.1f} µs/task" if lone else "")
            )
    return ours, plain, lone


def label(prefetch: int | None) -> str:
    return f"{RayBackend.default_prefetch:>2} (default)" if prefetch is None else f"{prefetch:>2}"


def main() -> None:
    settings = parse_args(__doc__ or "", n=5_000, repeats=3, quick_n=1_000, quick_repeats=1)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
    log(
        f"Ray {ray.__version__} started in {time.perf_counter() - started:.1f}s "
        f"({CPUS} CPUs); {AGENTS} agents, {settings.n:,} no-op tasks per run"
    )
    try:
        ours, plain, _ = asyncio.run(measure(ray, PREFETCH, settings.n, settings.repeats))
        ours0, plain0, lone = asyncio.run(measure(ray, 0, settings.n, settings.repeats))
        ours_d, plain_d, _ = asyncio.run(measure(ray, None, settings.n, settings.repeats))
    finally:
        ray.shutdown()
    for prefetch, mine, peer in (
        (PREFETCH, ours, plain),
        (0, ours0, plain0),
        (None, ours_d, plain_d),
    ):
        log(
            f"prefetch {label(prefetch)}: ray backend {spread(mine)}  "
            f"plain Ray {spread(peer)} µs/task"
        )
    log(f"prefetch  0: plain Ray, one call in flight per actor {spread(lone)} µs/task")
    ratio = median(ours) / median(plain)
    ratio_default = median(ours_d) / median(plain_d)
    emit(
        {
            "benchmark": "ray_overhead",
            "quick": settings.quick,
            "tasks": settings.n,
            "repeats": settings.repeats,
            "agents": AGENTS,
            "ray_cpus": CPUS,
            "prefetch": PREFETCH,
            "us_per_task": round(median(ours), 2),
            "ray_us_per_task": round(median(plain), 2),
            "ratio": round(ratio, 3),
            "ratio_goal": RATIO_GOAL,
            "goal_met": ratio <= RATIO_GOAL,
            # Without prefetch every task is its own actor call, one in flight per agent.
            "us_per_task_prefetch0": round(median(ours0), 2),
            "ray_us_per_task_prefetch0": round(median(plain0), 2),
            "ratio_prefetch0": round(median(ours0) / median(plain0), 3),
            # Against plain Ray kept to one call in flight per actor, as such an agent is:
            # what is left is the swarm's own cost, the round trip being paid by both.
            "ray_us_per_task_one_in_flight": round(median(lone), 2),
            "ratio_prefetch0_one_in_flight": round(median(ours0) / median(lone), 3),
            # What an agent whose spec leaves prefetch unset gets: the backend's default.
            "default_prefetch": RayBackend.default_prefetch,
            "us_per_task_default": round(median(ours_d), 2),
            "ray_us_per_task_default": round(median(plain_d), 2),
            "ratio_default": round(ratio_default, 3),
            "default_goal_met": ratio_default <= RATIO_GOAL,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "ray": ray.__version__,
            "python": python_version(),
        }
    )


if __name__ == "__main__":
    main()

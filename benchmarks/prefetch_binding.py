"""What binding tasks early costs: makespan over its bound by agents' prefetch, simulated.

The workload of `balance_quality` (8 agents, one 4x slower without saying so; Pareto(1.5)
sizes with mean 5 ms, all submitted at once) in the simulator, where a hand-off costs
nothing: prefetch has nothing to hide there, so what it changes is only the price of
binding tasks before an agent is free. Its gain on Ray (a round trip per actor call spread
over 1 + prefetch tasks) is `ray_overhead`'s. Each point is the median over the seeds of
makespan / (total work / total capacity); the peer is the same swarm with prefetch 0.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, parse_args, python_version
from swarmperf import AgentSpec, Task
from swarmperf.app.workload import draw_sizes
from swarmperf.runtime.ray_backend import RayBackend
from swarmperf.sim import Simulation
from swarmperf.spec import ParetoSize

AGENTS = 8
SLOWDOWN = 4.0
MEAN = 0.005
ALPHA = 1.5
PREFETCHES = (0, 1, 2, 4, 8, 16, 32)
# The strategies whose decisions prefetch can change: those that look at agents' load
# (prefetched tasks count as in flight) and work stealing (it steals only from backlogs).
STRATEGIES = ("least-loaded", "capacity-aware", "power-of-two", "work-stealing")


def makespan_ratio(strategy: str, prefetch: int, seed: int, n_tasks: int) -> float:
    sizes = draw_sizes(ParetoSize(mean=MEAN, alpha=ALPHA), n_tasks, np.random.default_rng(seed))
    slowdowns = [SLOWDOWN if i == AGENTS - 1 else 1.0 for i in range(AGENTS)]
    agents = [
        AgentSpec(f"agent-{i}", slowdown=s, prefetch=prefetch) for i, s in enumerate(slowdowns)
    ]
    tasks = [Task("sleep", payload=float(x), cost=float(x)) for x in sizes]
    sim = Simulation(agents, strategy=strategy, seed=seed)
    sim.run(tasks)
    makespan = max(r.finished_at or 0.0 for r in sim.results)
    return makespan / (float(sizes.sum()) / sum(1.0 / s for s in slowdowns))


def main() -> None:
    settings = parse_args(
        __doc__.splitlines()[0], n=2000, repeats=20, quick_n=1000, quick_repeats=5
    )
    seeds = range(settings.repeats)
    started = time.perf_counter()
    medians: dict[str, dict[str, float]] = {}
    for strategy in STRATEGIES:
        row = medians.setdefault(strategy, {})
        for prefetch in PREFETCHES:
            ratios = [makespan_ratio(strategy, prefetch, s, settings.n) for s in seeds]
            row[str(prefetch)] = round(statistics.median(ratios), 3)
        log(f"  {strategy:<15} " + "  ".join(f"{p:>2}: {row[str(p)]:.3f}" for p in PREFETCHES))
    default = str(RayBackend.default_prefetch)
    # Relative to prefetch 0 on the same seeds: what the default's early binding costs.
    cost = {s: round(row[default] / row["0"], 3) for s, row in medians.items()}
    emit(
        {
            "benchmark": "prefetch_binding",
            "quick": settings.quick,
            "tasks": settings.n,
            "seeds": settings.repeats,
            "agents": AGENTS,
            "makespan_ratio": medians,
            "ray_default_prefetch": RayBackend.default_prefetch,
            "default_vs_prefetch0": cost,
            "worst_default_vs_prefetch0": max(cost.values()),
            "seconds": round(time.perf_counter() - started, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "python": python_version(),
        }
    )


if __name__ == "__main__":
    main()

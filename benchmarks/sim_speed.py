"""Simulation speed: a million tasks over ten thousand agents in virtual time, beside SimPy.

The model: agents that serve one task at a time, one in ten of them 2x slower (their weight
does not say so; the strategy must measure it); task sizes exponential with mean 1 s;
Poisson arrivals at 90% of the swarm's capacity. Full run: 1,000,000 tasks over 10,000
agents; `--quick`: 100,000 over 1,000 (agents are always tasks / 100).

Ours: `swarmperf.sim.Simulation` with `least-loaded`, the same coordinator, queue and
strategy a real swarm runs, as installed: compiled with mypyc by a regular install, pure
Python in an editable one (the line says which, as `compiled`). The timed part starts
from the drawn sizes and offsets, so it includes making the `Task` objects (with the
public constructor), the run, and every `TaskResult`.

SimPy, written plainly: one process per task. The arrival process sleeps until the next
offset and starts the task's process; the task takes an agent from a `PriorityStore` of
idle agents keyed by (slowdown, index), which hands out the fastest idle agent and queues
tasks first come, first served while none is idle; it holds the agent for size x slowdown,
then puts it back. That is least-loaded with late binding for single-slot agents (every
idle agent has load 0, and ties go to the fastest), except that SimPy is told the
slowdowns, where ours learns them. The choice costs O(log agents), as ours does; a scan
of all agents per task (`min(agents, key=load)`) would be O(agents) and hopeless here.

Events are counted the same way on both sides, in the model: one arrival, one start and
one completion per task (3 per task), not the engines' internal events. Both sides also
report their mean latency, which should agree: they are the same model. Both run with
Python's cyclic garbage collector paused over the whole timed part (`Simulation` pauses it
for its run; both sides get the same here around everything timed, so that making our
million `Task` objects is not charged collector passes that SimPy's million processes are
spared), so that the figures compare the engines, not a collector setting.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import simpy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, parse_args, python_version
from swarmperf import AgentSpec, Task, compiled
from swarmperf.sim import PoissonArrivals, Simulation

STRATEGY = "least-loaded"
SLOW_EVERY = 10  # one agent in ten is slow
SLOWDOWN = 2.0
MEAN_SIZE = 1.0  # seconds of work per task
UTILISATION = 0.9
SEED = 1


@dataclass(frozen=True, slots=True)
class Workload:
    offsets: list[float]
    sizes: list[float]
    slowdowns: list[float]


@dataclass(frozen=True, slots=True)
class Measured:
    wall: float  # seconds
    events: int
    mean_latency: float  # virtual seconds
    virtual_seconds: float


def draw(n_tasks: int, n_agents: int) -> Workload:
    slowdowns = [SLOWDOWN if i % SLOW_EVERY == 0 else 1.0 for i in range(n_agents)]
    capacity = sum(1.0 / s for s in slowdowns) / MEAN_SIZE  # tasks per second
    offsets = PoissonArrivals(UTILISATION * capacity, seed=SEED).offsets(n_tasks)
    sizes = np.random.default_rng(SEED).exponential(MEAN_SIZE, n_tasks).tolist()
    return Workload(offsets, sizes, slowdowns)


def run_ours(w: Workload) -> Measured:
    agents = [AgentSpec(f"agent-{i}", slowdown=s) for i, s in enumerate(w.slowdowns)]
    gc.disable()  # over the whole timed part, as for SimPy
    try:
        began = time.perf_counter()
        tasks = [Task("sleep", size, cost=size) for size in w.sizes]
        outcome = Simulation(agents, strategy=STRATEGY, seed=SEED).run(tasks, w.offsets)
        wall = time.perf_counter() - began
    finally:
        gc.enable()
    latency = statistics.fmean(r.latency or 0.0 for r in outcome.results)
    return Measured(wall, outcome.model_events, latency, outcome.finished)


def run_simpy(w: Workload) -> Measured:
    gc.disable()
    try:
        return _run_simpy(w)
    finally:
        gc.enable()


def _run_simpy(w: Workload) -> Measured:
    began = time.perf_counter()
    env = simpy.Environment()
    idle = simpy.PriorityStore(env)
    for i, slowdown in enumerate(w.slowdowns):
        idle.put(simpy.PriorityItem((slowdown, i), i))
    slowdowns = w.slowdowns
    counts = [0, 0, 0]  # arrivals, starts, completions
    latencies: list[float] = []

    def task(size: float, arrived: float) -> Generator[simpy.Event, Any, None]:
        agent = yield idle.get()
        counts[1] += 1
        yield env.timeout(size * slowdowns[agent.item])
        counts[2] += 1
        latencies.append(env.now - arrived)
        yield idle.put(agent)

    def source() -> Generator[simpy.Event, Any, None]:
        last = 0.0
        for offset, size in zip(w.offsets, w.sizes, strict=True):
            yield env.timeout(offset - last)
            last = offset
            counts[0] += 1
            env.process(task(size, offset))

    env.process(source())
    env.run()
    wall = time.perf_counter() - began
    return Measured(wall, sum(counts), statistics.fmean(latencies), float(env.now))


def main() -> None:
    settings = parse_args(
        __doc__.splitlines()[0], n=1_000_000, repeats=1, quick_n=100_000, quick_repeats=5
    )
    n_tasks = settings.n
    n_agents = max(n_tasks // 100, 1)
    workload = draw(n_tasks, n_agents)
    ours: list[Measured] = []
    peer: list[Measured] = []
    for i in range(settings.repeats):
        # Interleaved, so that both sides share whatever else the machine is doing.
        ours.append(run_ours(workload))
        peer.append(run_simpy(workload))
        log(
            f"repeat {i + 1}/{settings.repeats}: ours {ours[-1].wall:.2f} s "
            f"({ours[-1].events / ours[-1].wall:,.0f} events/s), "
            f"SimPy {peer[-1].wall:.2f} s ({peer[-1].events / peer[-1].wall:,.0f} events/s)"
        )
    wall = statistics.median(m.wall for m in ours)
    simpy_wall = statistics.median(m.wall for m in peer)
    events = ours[0].events
    simpy_events = peer[0].events
    eps = events / wall
    simpy_eps = simpy_events / simpy_wall
    ratio = eps / simpy_eps
    log(
        f"{n_tasks:,} tasks over {n_agents:,} agents: ours {eps:,.0f} events/s, "
        f"SimPy {simpy_eps:,.0f} events/s, ratio {ratio:.2f} (goal >= 3); "
        f"wall {wall:.1f} s; mean latency {ours[0].mean_latency:.3f} s vs "
        f"{peer[0].mean_latency:.3f} s"
    )
    emit(
        {
            "benchmark": "sim_speed",
            "events_per_second": round(eps),
            "simpy_events_per_second": round(simpy_eps),
            "ratio": round(ratio, 3),
            "wall_seconds": round(wall, 3),
            "simpy_wall_seconds": round(simpy_wall, 3),
            "ratio_goal_met": ratio >= 3.0,
            "wall_goal_met": wall <= 60.0 if n_tasks >= 1_000_000 else None,
            "events": events,
            "simpy_events": simpy_events,
            "mean_latency": round(ours[0].mean_latency, 4),
            "simpy_mean_latency": round(peer[0].mean_latency, 4),
            "virtual_seconds": round(ours[0].virtual_seconds, 3),
            "tasks": n_tasks,
            "agents": n_agents,
            "strategy": STRATEGY,
            "utilisation": UTILISATION,
            "repeats": settings.repeats,
            "quick": settings.quick,
            # Whether the core ran compiled (a regular install) or as pure Python (an
            # editable one): the figures differ about twofold.
            "compiled": compiled(),
            "simpy": version("simpy"),
            "python": python_version(),
        }
    )


if __name__ == "__main__":
    main()

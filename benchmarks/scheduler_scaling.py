"""Decision cost per task of every strategy on the bare Coordinator, from 10 to 10,000 agents."""

from __future__ import annotations

import gc
import os
import random
import time
from collections import deque
from typing import Any

from _common import RunSettings, emit, log, median, parse_args, python_version
from swarmperf import STRATEGIES, AgentSpec, AgentState, Coordinator, Task
from swarmperf.balancing import get_strategy

SIZES = (10, 100, 1_000, 10_000)
SCALING_GOAL = 2.0
SEED = 0
MEAN_COST = 1.0  # seconds of work on an agent of weight 1
# Early-binding strategies keep queues at the agents: give each agent this many waiting
# tasks, so that binding, backlogs and stealing are all exercised.
BACKLOG_PER_AGENT = 1
# Each point's timed cycles are timed in this many stretches, and the sizes take turns by
# stretch: 10, 100, 1,000, 10,000 agents, then back down, and so on. This machine is shared,
# and a neighbour's spell of memory traffic slows everything for seconds at a time, the big
# sizes (whose agents live in the shared cache) most. Measured back to back, one size can
# fall in such a spell and the other not, and the ratio of two sizes swings by more than
# the decisions differ; taking turns puts both sizes of a ratio in the same second or so.
ROUNDS = 10


class FakeClock:
    """A clock the loop advances by hand, so time-dependent decisions are reproducible."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_tasks(count: int, rng: random.Random) -> list[Task]:
    # Exponential costs: strategies that weigh by cost see big and small tasks.
    return [Task("noop", cost=rng.expovariate(1.0 / MEAN_COST)) for _ in range(count)]


class Point:
    """One strategy at one size: a coordinator at constant load, timed a stretch at a time."""

    def __init__(self, strategy: str, n_agents: int, steps: int, repeat: int) -> None:
        rng = random.Random(f"{SEED}-{strategy}-{n_agents}-{repeat}")
        self.clock = clock = FakeClock()
        self.coordinator = coordinator = Coordinator(get_strategy(strategy, seed=SEED), clock=clock)
        for i in range(n_agents):
            coordinator.add_agent(AgentSpec(f"agent-{i}"))
        backlog = 0 if coordinator.strategy.late_binding else BACKLOG_PER_AGENT * n_agents
        warmup = max(n_agents, 1_000)
        tasks = make_tasks(n_agents + backlog + warmup + steps, rng)
        # With n agents each running one task, the oldest has run about n steps: this step
        # makes the mean service time equal the mean cost at every size. Tasks finish oldest
        # first whatever their cost, so measured speeds scatter around 1, as they do when
        # cost estimates are rough; that is what exercises the strategies that weigh speeds.
        self.dt = MEAN_COST / n_agents
        self.running: deque[tuple[AgentState, Task, float]] = deque()
        self.fill = fill = n_agents + backlog
        for task in tasks[:fill]:
            coordinator.submit(task)
        self.running.extend((agent, task, 0.0) for agent, task in coordinator.take_starts())
        cycle(coordinator, clock, self.running, tasks[fill : fill + warmup], dt=self.dt)
        self.timed = tasks[fill + warmup :]
        self.done = 0
        self.label = f"{strategy} at {n_agents} agents"

    def stretch(self, steps: int) -> float:
        """Run the next `steps` cycles; ns per cycle, in CPU time of this process.

        CPU time rather than wall time: on a shared machine, wall time also counts the
        slices other processes run in.
        """
        part = self.timed[self.done : self.done + steps]
        self.done += len(part)
        started = time.process_time_ns()
        cycle(self.coordinator, self.clock, self.running, part, self.dt)
        return (time.process_time_ns() - started) / len(part)

    def end(self) -> dict[str, int]:
        """The tasks running and waiting at the end: their sum is constant, how it splits
        shows how the strategy left the swarm."""
        stats = self.coordinator.statistics()
        if stats.pending + stats.running != self.fill:
            raise RuntimeError(f"{self.label}: load drifted to {stats.pending + stats.running}")
        return {"running": stats.running, "waiting": stats.pending}


def measure_strategy(
    strategy: str, steps: int, repeat: int
) -> tuple[dict[int, list[float]], list[float], dict[int, dict[str, int]]]:
    """Time `steps` cycles of submit, take_starts, finish-the-oldest at every size, the
    sizes taking turns by stretch.

    Returns ns per cycle of every stretch by size, the ratio of the largest size to the
    smallest in each round (two stretches a fraction of a second apart), and each size's
    state at the end.
    """
    points = {n: Point(strategy, n, steps, repeat) for n in SIZES}
    per_stretch = max(steps // ROUNDS, 1)
    stretches: dict[int, list[float]] = {n: [] for n in SIZES}
    ratios: list[float] = []
    gc.collect()
    # As timeit does: a collection triggered by the harness's own objects is not a decision.
    gc.disable()
    try:
        for r in range(-(-steps // per_stretch)):
            took = {
                n: points[n].stretch(per_stretch) for n in (SIZES if r % 2 == 0 else SIZES[::-1])
            }
            for n in SIZES:
                stretches[n].append(took[n])
            ratios.append(took[SIZES[-1]] / took[SIZES[0]])
    finally:
        gc.enable()
    return stretches, ratios, {n: point.end() for n, point in points.items()}


def cycle(
    coordinator: Coordinator,
    clock: FakeClock,
    running: deque[tuple[AgentState, Task, float]],
    tasks: list[Task],
    dt: float,
) -> None:
    """For each task: submit it, start what can start, finish the oldest running task."""
    submit = coordinator.submit
    take_starts = coordinator.take_starts
    finish_many = coordinator.finish_many
    push = running.append
    pop = running.popleft
    for task in tasks:
        clock.now = now = clock.now + dt
        submit(task)
        for agent, started_task in take_starts():
            push((agent, started_task, now))
        if running:
            agent, done, started = pop()
            finish_many(agent.id, ((done, started, now, None, None),))


def measure(settings: RunSettings) -> dict[str, Any]:
    stretches: dict[str, dict[int, list[float]]] = {
        name: {n: [] for n in SIZES} for name in STRATEGIES
    }
    ratios: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    ends: dict[str, dict[int, dict[str, int]]] = {}
    for r in range(settings.repeats):
        for name in STRATEGIES:
            by_n, paired, ends[name] = measure_strategy(name, settings.n, r)
            for n, samples in by_n.items():
                stretches[name][n].extend(samples)
            ratios[name].extend(paired)
            log(f"repeat {r + 1}/{settings.repeats}: {name} done")

    medians = {name: {n: median(s) for n, s in by_n.items()} for name, by_n in stretches.items()}
    # The headline: the median over rounds of the ratio within a round. Beside it, the
    # ratio of each size's median over all its stretches, which pairs nothing.
    scaling = {name: median(paired) for name, paired in ratios.items()}
    of_medians = {name: by_n[SIZES[-1]] / by_n[SIZES[0]] for name, by_n in medians.items()}
    _table(medians, scaling, ends)
    worst = max(scaling, key=scaling.__getitem__)
    met = scaling[worst] <= SCALING_GOAL
    log(
        f"\nmax scaling ratio (ns per task at {SIZES[-1]:,} / at {SIZES[0]} agents): "
        f"{scaling[worst]:.2f} ({worst}); goal <= {SCALING_GOAL}: {'MET' if met else 'NOT MET'}"
    )
    return {
        "ns_per_task": {
            name: {str(n): round(v) for n, v in by_n.items()} for name, by_n in medians.items()
        },
        "scaling_ratio": {name: round(v, 3) for name, v in scaling.items()},
        "max_scaling_ratio": round(scaling[worst], 3),
        "scaling_ratio_of_medians": {name: round(v, 3) for name, v in of_medians.items()},
        "max_scaling_ratio_of_medians": round(max(of_medians.values()), 3),
        "worst_strategy": worst,
        "scaling_goal": SCALING_GOAL,
        "scaling_goal_met": met,
        "state_at_end": {
            name: {str(n): end for n, end in by_n.items()} for name, by_n in ends.items()
        },
    }


def _table(
    medians: dict[str, dict[int, float]],
    scaling: dict[str, float],
    ends: dict[str, dict[int, dict[str, int]]],
) -> None:
    head = "".join(f"{n:>10,}" for n in SIZES)
    log(f"\nns per task (median), by number of agents\n  {'strategy':<24}{head}   scaling")
    for name, by_n in medians.items():
        cells = "".join(f"{by_n[n]:>10,.0f}" for n in SIZES)
        end = ends[name][SIZES[-1]]
        state = f"at {SIZES[-1]:,}: {end['running']} running, {end['waiting']} waiting"
        log(f"  {name:<24}{cells}   x{scaling[name]:.2f}   ({state})")


def main() -> None:
    settings = parse_args(__doc__ or "", n=200_000, repeats=3, quick_n=100_000, quick_repeats=1)
    log(
        f"{settings.n:,} timed cycles per point, {len(STRATEGIES)} strategies x sizes "
        f"{SIZES}, {settings.repeats} repeat(s), {python_version()}"
    )
    started = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    figures = measure(settings)
    figures["settings"] = {
        "tasks_per_point": settings.n,
        "agents": list(SIZES),
        "agent_weight": 1.0,
        "concurrency": 1,
        "prefetch": 0,
        "backlog_per_agent_early_binding": BACKLOG_PER_AGENT,
        "task_cost": f"exponential, mean {MEAN_COST} s, seed {SEED}",
        "clock": "fake, advanced mean_cost / agents per cycle",
        "repeats": settings.repeats,
        "quick": settings.quick,
        "gc": "disabled while timing",
        "stretches_per_point": ROUNDS,
        "timing": "sizes take turns by stretch; ratio = median over rounds of the ratio within one",
        "timer": "CPU time of the process (time.process_time_ns)",
        "load_average_before": load_before,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": python_version(),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    emit(figures)


if __name__ == "__main__":
    main()

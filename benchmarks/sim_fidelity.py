"""Simulator fidelity: the balance-quality workload run for real, then in calibrated simulation.

The workload is balance_quality.py's: 8 agents on the `local` backend, one 4x slower
that declares weight 1 like the others; 2,000 `sleep` tasks with Pareto(1.5) sizes of
mean 5 ms, cost = size, all submitted at once. Each seed's real run is calibrated
(`swarmperf.sim.calibrate`) and simulated with the same strategy and seed; the error of
a figure is |simulated − real| / real. The headline figures are, for each figure, the
worse of the strategies' medians over seeds (goal: <= 0.10).

Beside them, for context: `uncalibrated_*`, the simulator without calibration (each task
takes its size × the agent's slowdown), and `holdout_*`, seed s's calibration run on the
tasks of seed s + 1 (other sizes, in another order) against that seed's real run, which
shows whether the model learnt the agents rather than the one recording.

Why medians: a run's makespan can turn on where one of the few very large tasks lands.
`least-loaded` hands it to whichever agent is free, so now and then the slow agent gets
it near the end and the run takes a third longer; the simulation does the same about as
often, but not necessarily on the same seed, so a single seed's makespan error can be
large while the model is right. `capacity-aware` holds such tasks back from the slow
agent, and its runs are reproduced seed by seed.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, parse_args, python_version
from swarmperf import AgentSpec, Swarm, Task
from swarmperf.app.workload import draw_sizes
from swarmperf.core.model import TaskResult
from swarmperf.sim import Simulation
from swarmperf.sim.calibrate import Calibration, RunFigures, calibrate, run_figures
from swarmperf.spec import ParetoSize

AGENTS = 8
SLOWDOWN = 4.0
MEAN = 0.005
ALPHA = 1.5
STRATEGIES = ("capacity-aware", "least-loaded")
GOAL = 0.10
FIGURES = ("makespan", "latency_p50", "latency_p99")


@dataclass(frozen=True, slots=True)
class Trial:
    """One seed of one strategy: the real run, its calibration and the errors."""

    strategy: str
    seed: int
    tasks: list[Task]
    real: RunFigures
    calibration: Calibration
    errors: dict[str, float]
    uncalibrated: dict[str, float]


def swarm_agents() -> list[AgentSpec]:
    return [
        AgentSpec(f"agent-{i}", slowdown=SLOWDOWN if i == AGENTS - 1 else 1.0)
        for i in range(AGENTS)
    ]


def workload(seed: int, n_tasks: int) -> list[Task]:
    sizes = draw_sizes(ParetoSize(mean=MEAN, alpha=ALPHA), n_tasks, np.random.default_rng(seed))
    return [Task("sleep", payload=float(x), cost=float(x)) for x in sizes]


async def real_run(
    agents: list[AgentSpec], tasks: list[Task], strategy: str, seed: int
) -> tuple[list[TaskResult], float]:
    async with Swarm(agents, strategy=strategy, seed=seed) as swarm:
        started = time.perf_counter()
        results = list(await swarm.run(tasks))
    return results, started


def uncalibrated(
    agents: list[AgentSpec], tasks: list[Task], strategy: str, seed: int
) -> RunFigures:
    fresh = [Task(t.kind, t.payload, t.id, cost=t.cost) for t in tasks]
    outcome = Simulation(agents, strategy=strategy, seed=seed).run(fresh)
    return run_figures(outcome.results, outcome.started)


def trial(strategy: str, seed: int, n_tasks: int) -> Trial:
    agents = swarm_agents()
    tasks = workload(seed, n_tasks)
    results, started = asyncio.run(real_run(agents, tasks, strategy, seed))
    calibration = calibrate(results, agents, tasks=tasks, started=started)
    real = run_figures(results, started)
    outcome = calibration.simulate(strategy, seed=seed)
    naive = uncalibrated(agents, tasks, strategy, seed)
    return Trial(
        strategy, seed, tasks, real, calibration, calibration.errors(outcome), real.errors(naive)
    )


def holdout(trials: list[Trial]) -> list[dict[str, float]]:
    """Each seed's calibration on the next seed's tasks, against that seed's real run."""
    out = []
    for i, trial in enumerate(trials):
        other = trials[(i + 1) % len(trials)]
        outcome = trial.calibration.simulate(trial.strategy, seed=other.seed, tasks=other.tasks)
        out.append(other.real.errors(run_figures(outcome.results, outcome.started)))
    return out


def medians(errors: list[dict[str, float]]) -> dict[str, float]:
    return {f: round(statistics.median(e[f] for e in errors), 4) for f in FIGURES}


def summary(trials: list[Trial]) -> dict[str, object]:
    errors = [t.errors for t in trials]
    return {
        "median": medians(errors),
        "max": {f: round(max(e[f] for e in errors), 4) for f in FIGURES},
        "per_seed": {f: [round(e[f], 4) for e in errors] for f in FIGURES},
        "real_makespan_s": [round(t.real.makespan, 4) for t in trials],
        "uncalibrated_median": medians([t.uncalibrated for t in trials]),
        "holdout_median": (medians(holdout(trials)) if len(trials) > 1 else None),
        "notes": sorted({note for t in trials for note in t.calibration.notes}),
    }


def worst(by_strategy: dict[str, dict[str, object]], key: str, figure: str) -> float | None:
    """The largest of the strategies' `key` medians for `figure` (None: none has one)."""
    values = []
    for figures in by_strategy.values():
        table = figures[key]
        if isinstance(table, dict):
            values.append(float(table[figure]))
    return max(values, default=None)


def main() -> None:
    settings = parse_args(
        __doc__.splitlines()[0], n=2000, repeats=10, quick_n=2000, quick_repeats=3
    )
    seeds = list(range(settings.repeats))
    by_strategy: dict[str, dict[str, object]] = {}
    for strategy in STRATEGIES:
        trials = []
        for seed in seeds:
            t = trial(strategy, seed, settings.n)
            trials.append(t)
            log(
                f"{strategy:15s} seed {seed:2d}: real makespan {t.real.makespan:.3f} s; error "
                + "  ".join(f"{f} {t.errors[f]:.3f}" for f in FIGURES)
                + f"  (uncalibrated makespan {t.uncalibrated['makespan']:.3f})"
            )
        by_strategy[strategy] = summary(trials)
    makespan_error = worst(by_strategy, "median", "makespan") or 0.0
    p99_error = worst(by_strategy, "median", "latency_p99") or 0.0
    p50_error = worst(by_strategy, "median", "latency_p50") or 0.0
    goals_met = makespan_error <= GOAL and p99_error <= GOAL
    log(
        f"makespan_error {makespan_error:.4f}  p99_error {p99_error:.4f}  "
        f"p50_error {p50_error:.4f}  (goal <= {GOAL}) met: {goals_met}"
    )
    emit(
        {
            "benchmark": "sim_fidelity",
            "makespan_error": makespan_error,
            "p99_error": p99_error,
            "p50_error": p50_error,
            "goals_met": goals_met,
            "goal": GOAL,
            "uncalibrated_makespan_error": worst(by_strategy, "uncalibrated_median", "makespan"),
            "uncalibrated_p99_error": worst(by_strategy, "uncalibrated_median", "latency_p99"),
            "holdout_makespan_error": worst(by_strategy, "holdout_median", "makespan"),
            "holdout_p99_error": worst(by_strategy, "holdout_median", "latency_p99"),
            "strategies": by_strategy,
            "seeds": len(seeds),
            "tasks": settings.n,
            "agents": AGENTS,
            "slowdown": SLOWDOWN,
            "size": f"pareto(mean={MEAN}, alpha={ALPHA})",
            "python": python_version(),
        }
    )


if __name__ == "__main__":
    main()

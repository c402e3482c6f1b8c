"""Confirming an allocation in the simulator: the swarm it describes, run in virtual time.

Each pool becomes its agents (`<pool>-<n>`, with the pool's concurrency) whose service times
per kind are log-normal with the pool's mean and spread for that kind (measured from the
store where it had data, so the simulator is calibrated to the swarm); Poisson arrivals
of the mix go through the real coordinator and strategy. The figures are measured after a
warm-up, from the tasks' own queue-to-finish times.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from swarmperf.core.model import AgentSpec, Task, TaskStatus
from swarmperf.sim.models import AgentModel, Lognormal, PoissonArrivals
from swarmperf.sim.simulation import Simulation

WARM_UP = 0.1  # share of the tasks left out of the figures: the queue starts empty


@dataclass(frozen=True, slots=True)
class KindService:
    """Service times that depend on the task's kind: log-normal per kind (a `TaskServiceModel`)."""

    times: Mapping[str, Lognormal]
    typical: Lognormal

    @property
    def mean(self) -> float:
        return self.typical.mean

    def sample(self, rng: random.Random) -> float:
        return self.typical.sample(rng)

    def sample_task(self, task: Task, rng: random.Random) -> float:
        return self.times.get(task.kind, self.typical).sample(rng)


@dataclass(frozen=True, slots=True)
class SimFigures:
    """What the simulator measured for one allocation (seconds)."""

    p99: float
    p99_kind: dict[str, float]
    utilisation: float
    tasks: int
    failed: int

    def to_data(self) -> dict[str, Any]:
        return {
            "p99_s": self.p99,
            "p99_kind_s": dict(self.p99_kind),
            "utilisation": self.utilisation,
            "tasks": self.tasks,
            "failed": self.failed,
        }


def _never(payload: Any, ctx: Any) -> None:  # pragma: no cover - the sim never calls it
    raise RuntimeError("simulated kinds are timed by their service model")


def simulate(
    pools: Sequence[str],
    counts: Sequence[int],
    concurrency: Sequence[int],
    service: Sequence[Mapping[str, float]],
    cv: Sequence[float],
    rate: float,
    mix: Mapping[str, float],
    *,
    tasks: int = 20_000,
    seed: int = 0,
    strategy: str = "capacity-aware",
) -> SimFigures:
    """Run `tasks` Poisson arrivals of `mix` at `rate` on `counts[p]` agents of each pool."""
    agents: list[AgentSpec] = []
    models: dict[str, AgentModel] = {}
    for p, pool in enumerate(pools):
        sigma = math.sqrt(math.log1p(cv[p] ** 2))
        times = {kind: Lognormal(mean, sigma) for kind, mean in service[p].items()}
        typical = Lognormal(sum(service[p][k] * w for k, w in mix.items()), sigma)
        model = AgentModel(service=KindService(times, typical))
        # The declared speed, as a live swarm's spec would give it: strategies that weigh
        # agents send more to the faster ones until they have measured them.
        weight = 1.0 / typical.mean
        for i in range(counts[p]):
            spec = AgentSpec(id=f"{pool}-{i}", concurrency=concurrency[p], weight=weight)
            agents.append(spec)
            models[spec.id] = model
    kinds = list(mix)
    rng = np.random.default_rng(seed)
    drawn = rng.choice(len(kinds), size=tasks, p=np.asarray([mix[k] for k in kinds]))
    work = [Task(kinds[int(i)], id=f"t{n}") for n, i in enumerate(drawn)]
    offsets = PoissonArrivals(rate, seed=seed).offsets(tasks)
    sim = Simulation(
        agents,
        strategy=strategy,
        models=models,
        handlers=dict.fromkeys(kinds, _never),
        seed=seed,
    )
    outcome = sim.run(work, offsets)
    skip = int(tasks * WARM_UP)
    latencies: dict[str, list[float]] = {k: [] for k in kinds}
    every: list[float] = []
    failed = 0
    busy = 0.0
    for result in outcome.results:
        if result.started_at is not None and result.finished_at is not None:
            busy += result.finished_at - result.started_at
        if result.status is not TaskStatus.SUCCEEDED or result.finished_at is None:
            failed += 1
            continue
        if int(result.task_id[1:]) < skip:
            continue
        took = result.finished_at - result.queued_at
        latencies[result.kind].append(took)
        every.append(took)
    # Over the arrivals' span: the drain after the last arrival would lower it.
    span = max(offsets[-1] if offsets else 0.0, 1e-9)
    slots = sum(c * n for c, n in zip(concurrency, counts, strict=True))
    return SimFigures(
        p99=float(np.quantile(every, 0.99)) if every else math.inf,
        p99_kind={k: float(np.quantile(v, 0.99)) if v else math.inf for k, v in latencies.items()},
        utilisation=busy / (span * slots) if slots else math.inf,
        tasks=len(outcome.results),
        failed=failed,
    )

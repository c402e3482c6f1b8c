"""Synthetic workloads: tasks drawn from a `WorkloadSpec`, and a feeder that submits them."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from swarmperf.core.model import Priority, Task
from swarmperf.spec import (
    ArrivalSpec,
    BatchArrival,
    ConstantArrival,
    ConstantSize,
    ExponentialSize,
    LognormalSize,
    ParetoSize,
    PoissonArrival,
    SizeSpec,
    WorkloadSpec,
)

FAIL_KIND = "fail"

K = TypeVar("K")
Floats = npt.NDArray[np.float64]
TimedTask = tuple[float, Task]  # (seconds after the start of the feed, task)


def generate_tasks(workload: WorkloadSpec, seed: int) -> list[TimedTask]:
    """Draw `workload.tasks` tasks with their arrival offsets, sorted by offset.

    The same `seed` gives the same offsets, sizes, kinds, priorities, tenants and deadlines
    (task ids differ: they are unique in the process). Sizes, failures, priorities, tenants
    and arrivals each draw from their own stream, so changing the arrival process leaves
    the sizes as they were and runs that differ in one setting stay comparable.

    A task's size is its payload (seconds of work for `sleep` and `spin`) and, with
    `cost_estimates`, its `cost`. Failing tasks have kind `fail`, no payload and cost 0:
    they do no work. A critical task's `deadline` is `workload.deadline` after its offset,
    relative to the start of the feed; `feed` moves it onto the swarm's clock.
    """
    rng = np.random.default_rng(seed)
    size_rng, fail_rng, priority_rng, tenant_rng, arrival_rng = rng.spawn(5)
    n = workload.tasks
    sizes = draw_sizes(workload.size, n, size_rng)
    failing = fail_rng.random(n) < workload.failure_rate
    priorities = _draw_names(workload.priorities, n, priority_rng)
    tenants = _draw_names(workload.tenants, n, tenant_rng)
    offsets = arrival_offsets(workload.arrival, n, arrival_rng)
    levels = {name: Priority.parse(name) for name in workload.priorities}
    timed: list[TimedTask] = []
    for i in range(n):
        offset = float(offsets[i])
        priority = levels[priorities[i]]
        deadline = None
        if priority is Priority.CRITICAL and workload.deadline is not None:
            deadline = offset + workload.deadline
        size = float(sizes[i])
        fails = bool(failing[i])
        task = Task(
            kind=FAIL_KIND if fails else workload.kind,
            payload=None if fails else size,
            priority=priority,
            deadline=deadline,
            cost=(0.0 if fails else size) if workload.cost_estimates else None,
            tenant=tenants[i],
        )
        timed.append((offset, task))
    return timed


def draw_sizes(size: SizeSpec, n: int, rng: np.random.Generator) -> Floats:
    """`n` task sizes in seconds."""
    match size:
        case ConstantSize(value=value):
            return np.full(n, value)
        case ExponentialSize(mean=mean):
            return rng.exponential(mean, n)
        case ParetoSize():
            # numpy's `pareto` is Lomax (Pareto shifted to start at 0): shift it back.
            return (rng.pareto(size.alpha, n) + 1.0) * size.scale
        case LognormalSize(mean=mean, sigma=sigma):
            # E[X] = exp(mu + sigma²/2), so this mu gives the requested mean.
            return rng.lognormal(math.log(mean) - sigma * sigma / 2, sigma, n)
    raise TypeError(f"Unknown size distribution: {size!r}")


def arrival_offsets(arrival: ArrivalSpec, n: int, rng: np.random.Generator) -> Floats:
    """When each of `n` tasks arrives, in seconds after the start, in order."""
    match arrival:
        case BatchArrival():
            return np.zeros(n)
        case ConstantArrival(rate=rate):
            return np.arange(n) / rate
        case PoissonArrival(rate=rate):
            return np.cumsum(rng.exponential(1.0 / rate, n))
    raise TypeError(f"Unknown arrival process: {arrival!r}")


def _draw_names(shares: Mapping[K, float], n: int, rng: np.random.Generator) -> list[K]:
    names = list(shares)
    weights = np.array([shares[name] for name in names], dtype=float)
    picks = rng.choice(len(names), size=n, p=weights / weights.sum())
    return [names[i] for i in picks]


class TaskSink(Protocol):
    """What `feed` submits to: a `Swarm`, or a test double."""

    async def submit_all(self, tasks: Iterable[Task]) -> int: ...


@dataclass(frozen=True, slots=True)
class FeedStatistics:
    """How the feed went, measured.

    A task's lag is the time from when it was due until the submit call that carried it
    returned; `max_lag` is the largest (seconds). `seconds` is the whole feed.
    """

    submitted: int
    max_lag: float
    seconds: float


async def feed(
    swarm: TaskSink,
    timed_tasks: Sequence[TimedTask],
    clock: Callable[[], float],
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> FeedStatistics:
    """Submit each task at its offset after now and report how far behind schedule it fell.

    Tasks already due go in one `submit_all` call (a batch workload: all of them at once;
    a paced one that has fallen behind: the few it owes), which waits for room when the
    queue is full. Between due times it sleeps. `clock` must be the swarm's clock: task
    deadlines, relative to the start until now, are moved onto it here.
    """
    start = clock()
    pending = sorted(timed_tasks, key=lambda timed: timed[0])
    for _, task in pending:
        if task.deadline is not None:
            task.deadline += start
    done = 0
    max_lag = 0.0
    while done < len(pending):
        now = clock() - start
        due = done
        while due < len(pending) and pending[due][0] <= now:
            due += 1
        if due == done:
            await sleep(pending[done][0] - now)
            continue
        await swarm.submit_all(task for _, task in pending[done:due])
        max_lag = max(max_lag, clock() - start - pending[done][0])
        done = due
    return FeedStatistics(submitted=done, max_lag=max_lag, seconds=clock() - start)

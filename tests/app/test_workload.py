"""Synthetic workloads: determinism, the distributions' means, and a feeder that keeps time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

from swarmperf.app.workload import FeedStatistics, TimedTask, draw_sizes, feed, generate_tasks
from swarmperf.core.model import Priority, Task
from swarmperf.runtime import Swarm
from swarmperf.spec import WorkloadSpec, parse_spec


def workload(**fields: Any) -> WorkloadSpec:
    return parse_spec({"agents": [{"id": "a"}], "workload": fields}).workload


def fingerprint(timed: list[TimedTask]) -> list[tuple[Any, ...]]:
    """Everything a seed decides (ids are unique per process, so they are left out)."""
    return [
        (offset, t.kind, t.payload, t.cost, t.priority, t.tenant, t.deadline) for offset, t in timed
    ]


MIXED = {
    "tasks": 500,
    "kind": "sleep",
    "size": {"distribution": "exponential", "mean": "5ms"},
    "arrival": {"process": "poisson", "rate": "100/s"},
    "failure_rate": 0.1,
    "priorities": {"critical": 0.25, "normal": 0.75},
    "tenants": {"a": 0.5, "b": 0.5},
    "deadline": "2s",
}


def sizes(spec: WorkloadSpec, seed: int = 7) -> np.ndarray[Any, np.dtype[np.float64]]:
    # Straight from the distribution: building 100,000 Task objects would slow the suite.
    return draw_sizes(spec.size, spec.tasks, np.random.default_rng(seed))


# -- generation ---------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_tasks() -> None:
    spec = workload(**MIXED)
    assert fingerprint(generate_tasks(spec, 3)) == fingerprint(generate_tasks(spec, 3))
    assert fingerprint(generate_tasks(spec, 3)) != fingerprint(generate_tasks(spec, 4))


def test_changing_the_arrivals_leaves_the_sizes_alone() -> None:
    poisson = workload(**MIXED)
    batch = workload(**{**MIXED, "arrival": {"process": "batch"}})
    assert [t.payload for _, t in generate_tasks(poisson, 5)] == [
        t.payload for _, t in generate_tasks(batch, 5)
    ]


def test_sizes_are_the_payloads_and_costs() -> None:
    spec = workload(tasks=10, kind="spin", size="5ms")
    assert {(t.kind, t.payload, t.cost) for _, t in generate_tasks(spec, 0)} == {
        ("spin", 0.005, 0.005)
    }


def test_exponential_mean() -> None:
    drawn = sizes(workload(tasks=50_000, size={"distribution": "exponential", "mean": "5ms"}))
    assert drawn.mean() == pytest.approx(0.005, rel=0.03)


def test_pareto_with_a_finite_variance_has_the_mean_asked_for() -> None:
    spec = workload(tasks=50_000, size={"distribution": "pareto", "mean": "6ms", "alpha": 3})
    drawn = sizes(spec)
    # Pareto, not Lomax: nothing is smaller than the scale, mean * (alpha - 1) / alpha.
    assert drawn.min() >= 0.004
    assert drawn.min() == pytest.approx(0.004, rel=1e-3)
    assert drawn.mean() == pytest.approx(0.006, rel=0.03)


def test_heavy_tailed_pareto_median_and_mean() -> None:
    spec = workload(tasks=100_000, size={"distribution": "pareto", "mean": "5ms", "alpha": 1.5})
    drawn = sizes(spec)
    scale = 0.005 / 3
    assert np.median(drawn) == pytest.approx(scale * 2 ** (1 / 1.5), rel=0.02)
    # With infinite variance the sample mean converges slowly; the bounds are loose.
    assert 0.004 < drawn.mean() < 0.0065


def test_lognormal_mean() -> None:
    spec = workload(tasks=50_000, size={"distribution": "lognormal", "mean": "5ms", "sigma": 0.5})
    assert sizes(spec).mean() == pytest.approx(0.005, rel=0.03)


def test_failing_tasks_are_fail_tasks_at_the_rate_asked_for() -> None:
    timed = generate_tasks(workload(**{**MIXED, "tasks": 20_000}), 11)
    failing = [t for _, t in timed if t.kind == "fail"]
    assert len(failing) / len(timed) == pytest.approx(0.1, abs=0.01)
    assert all(t.payload is None and t.cost == 0.0 for t in failing)
    working = [t for _, t in timed if t.kind == "sleep"]
    assert all(t.cost == t.payload and t.payload > 0 for t in working)


def test_without_cost_estimates_tasks_carry_no_cost() -> None:
    timed = generate_tasks(workload(**{**MIXED, "cost_estimates": False}), 1)
    assert {t.cost for _, t in timed} == {None}


def test_priority_and_tenant_mix() -> None:
    timed = generate_tasks(workload(**{**MIXED, "tasks": 20_000}), 2)
    critical = sum(t.priority is Priority.CRITICAL for _, t in timed) / len(timed)
    assert critical == pytest.approx(0.25, abs=0.02)
    assert {t.priority for _, t in timed} == {Priority.CRITICAL, Priority.NORMAL}
    share_a = sum(t.tenant == "a" for _, t in timed) / len(timed)
    assert share_a == pytest.approx(0.5, abs=0.02)


def test_only_critical_tasks_get_a_deadline_after_their_arrival() -> None:
    for offset, task in generate_tasks(workload(**MIXED), 9):
        if task.priority is Priority.CRITICAL:
            assert task.deadline == pytest.approx(offset + 2.0)
        else:
            assert task.deadline is None


def test_batch_arrives_at_once() -> None:
    assert {offset for offset, _ in generate_tasks(workload(tasks=20), 0)} == {0.0}


def test_constant_arrivals_are_evenly_spaced() -> None:
    timed = generate_tasks(workload(tasks=5, arrival={"process": "constant", "rate": "4/s"}), 0)
    assert [offset for offset, _ in timed] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_poisson_arrivals_have_the_rate_asked_for() -> None:
    spec = workload(tasks=20_000, arrival={"process": "poisson", "rate": "500/s"})
    offsets = np.array([offset for offset, _ in generate_tasks(spec, 0)])
    gaps = np.diff(offsets)
    assert (gaps >= 0).all()
    assert gaps.mean() == pytest.approx(1 / 500, rel=0.03)
    assert gaps.std() == pytest.approx(1 / 500, rel=0.05)  # exponential: std == mean


# -- feeding ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RecordingSink:
    """Records each submit_all call with the clock at its start; each call costs `cost` s."""

    def __init__(self, clock: FakeClock, cost: float = 0.0) -> None:
        self.clock = clock
        self.cost = cost
        self.calls: list[tuple[float, list[Task]]] = []

    async def submit_all(self, tasks: Iterable[Task]) -> int:
        batch = list(tasks)
        self.calls.append((self.clock.now, batch))
        self.clock.now += self.cost
        return len(batch)


def timed_noops(offsets: list[float]) -> list[TimedTask]:
    return [(offset, Task("noop")) for offset in offsets]


def test_a_batch_goes_in_one_call_and_its_lag_is_the_time_that_call_took() -> None:
    clock = FakeClock()
    sink = RecordingSink(clock, cost=0.003)
    stats = asyncio.run(feed(sink, timed_noops([0.0] * 50), clock, sleep=clock.sleep))
    assert [len(batch) for _, batch in sink.calls] == [50]
    assert clock.sleeps == []
    assert stats.submitted == 50
    assert stats.max_lag == pytest.approx(0.003)
    assert stats.seconds == pytest.approx(0.003)


def test_paced_tasks_are_submitted_when_due() -> None:
    clock = FakeClock()
    sink = RecordingSink(clock)
    stats = asyncio.run(feed(sink, timed_noops([0.0, 0.5, 1.25]), clock, sleep=clock.sleep))
    assert [(at - 100.0, len(batch)) for at, batch in sink.calls] == [
        (0.0, 1),
        (0.5, 1),
        (1.25, 1),
    ]
    assert stats.max_lag == 0.0
    assert stats.submitted == 3


def test_when_behind_it_catches_up_in_groups_and_reports_the_lag() -> None:
    clock = FakeClock()
    sink = RecordingSink(clock, cost=0.25)  # each call takes longer than the gaps
    offsets = [0.0, 0.1, 0.2, 0.3, 1.0]
    stats = asyncio.run(feed(sink, timed_noops(offsets), clock, sleep=clock.sleep))
    assert [(at - 100.0, len(batch)) for at, batch in sink.calls] == [
        (0.0, 1),
        (0.25, 2),  # 0.1 and 0.2 were both due by then
        (0.5, 1),
        (pytest.approx(1.0), 1),  # back on time: it slept until the task was due
    ]
    # The task due at 0.3 went in the call that started at 0.5 and returned at 0.75.
    assert stats.max_lag == pytest.approx(0.45)


def test_feed_moves_deadlines_onto_the_clock() -> None:
    clock = FakeClock(now=50.0)
    task = Task("noop", priority=Priority.CRITICAL, deadline=2.0)
    asyncio.run(feed(RecordingSink(clock), [(0.0, task)], clock, sleep=clock.sleep))
    assert task.deadline == 52.0


def test_feeding_a_real_swarm_runs_every_task() -> None:
    spec = workload(tasks=40, arrival={"process": "constant", "rate": "4000/s"}, failure_rate=0.2)

    async def run() -> tuple[FeedStatistics, int, int]:
        async with Swarm([parse_spec({"agents": [{"id": "a"}]}).agent_specs()[0]]) as swarm:
            stats = await feed(swarm, generate_tasks(spec, 1), swarm.clock)
        failed = sum(not r.ok for r in swarm.results)
        return stats, len(swarm.results), failed

    stats, finished, failed = asyncio.run(run())
    assert stats.submitted == finished == 40
    assert failed == sum(t.kind == "fail" for _, t in generate_tasks(spec, 1))
    assert stats.max_lag >= 0
    assert stats.seconds >= 39 / 4000

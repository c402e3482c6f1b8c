"""SwarmMetrics against real local swarms: its figures agree with the swarm's own results."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from swarmperf.core.events import Event
from swarmperf.core.model import AgentSpec, Fault, Task, TaskResult, TaskStatus
from swarmperf.monitor.swarm_metrics import SwarmMetrics
from swarmperf.resilience import BreakerSettings, ResilienceGuard, ResilienceSettings
from swarmperf.runtime.swarm import Swarm
from tests.conftest import FakeClock

ALPHA = 0.005


def _lower(values: list[float], q: float) -> float:
    return float(np.quantile(np.array(values), q, method="lower"))


def _close(estimate: float | None, exact: float) -> bool:
    return estimate is not None and abs(estimate - exact) <= ALPHA * abs(exact) * (1 + 1e-9)


def test_figures_agree_with_the_results_of_a_swarm_with_a_slow_agent() -> None:
    async def main() -> tuple[list[TaskResult], SwarmMetrics, float]:
        swarm = Swarm(
            [AgentSpec("fast", concurrency=2), AgentSpec("slow", slowdown=4.0)],
            strategy="round-robin",
        )
        metrics = SwarmMetrics("s", window=60.0, clock=swarm.clock)
        metrics.attach(swarm)
        async with swarm:
            tasks = [Task("sleep", 0.004) for _ in range(45)] + [Task("fail") for _ in range(5)]
            results = list(await swarm.run(tasks))
            now = swarm.clock()
        return results, metrics, now

    results, metrics, now = asyncio.run(main())
    figures = metrics.figures(now)
    ran = [r for r in results if r.status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)]
    assert figures.completed == len(ran) == 50
    assert figures.failed == 5
    assert figures.error_rate == pytest.approx(5 / 50)
    assert figures.availability == 1.0
    start = now - figures.window_s
    assert figures.throughput_per_s == pytest.approx(50 / figures.window_s)

    latencies = [r.latency for r in ran if r.latency is not None]
    for q, got in ((0.5, figures.latency.p50), (0.9, figures.latency.p90),
                   (0.99, figures.latency.p99)):  # fmt: skip
        assert _close(got, _lower(latencies, q))
    assert figures.latency.max == max(latencies)
    waits = [r.started_at - r.queued_at for r in ran if r.started_at is not None]
    assert _close(figures.wait.p95, _lower(waits, 0.95))

    for agent_id, slots in (("fast", 2), ("slow", 1)):
        mine = [r for r in ran if r.agent == agent_id]
        busy = sum(
            min(r.finished_at, now) - max(r.started_at, start)
            for r in mine
            if r.started_at is not None and r.finished_at is not None
        )
        agent = figures.agents[agent_id]
        assert agent.completed == len(mine)
        assert agent.slots == slots
        assert agent.utilization == pytest.approx(busy / (slots * figures.window_s), rel=1e-9)
        services = [r.service_time for r in mine if r.service_time is not None]
        assert _close(agent.service.p50, _lower(services, 0.5))
        assert agent.alive
        assert agent.breaker is None
        assert agent.in_flight == 0
    # The slow agent works four times slower: its sleeps take far longer than the fast one's.
    slow_p90, fast_p90 = figures.agents["slow"].service.p90, figures.agents["fast"].service.p90
    assert slow_p90 is not None
    assert fast_p90 is not None
    assert slow_p90 > 2 * fast_p90
    utils = [a.utilization for a in figures.agents.values() if a.utilization is not None]
    mean = sum(utils) / len(utils)
    cv = float(np.std(utils)) / mean
    assert figures.balance_cv == pytest.approx(cv)
    assert figures.queue_depth == 0
    assert set(figures.queue_depth_by_priority) == {"critical", "high", "normal", "low"}
    assert figures.reasons == {}
    # Counters since attach, per (agent, status), as Prometheus will show them.
    counted = {k: s.value for k, s in metrics.tasks.series()}
    assert sum(counted.values()) == 50
    assert counted[("slow", "failed")] + counted.get(("fast", "failed"), 0) == 5


def _result(
    agent: str | None,
    started: float | None,
    finished: float | None,
    status: TaskStatus = TaskStatus.SUCCEEDED,
    queued: float = 0.0,
) -> TaskResult:
    return TaskResult("t", status, agent, 1, queued, started, finished)


def test_busy_time_is_split_over_the_slices_a_task_spans(clock: FakeClock) -> None:
    async def main() -> None:
        async with Swarm([AgentSpec("a")]) as swarm:
            metrics = SwarmMetrics("s", window=10.0, slices=10, clock=clock)
            metrics.attach(swarm)
            metrics.observe_result(_result("a", 2.5, 4.5, queued=2.0))
            clock.now = 5.0
            early = metrics.figures()
            assert early.window_s == 5.0
            assert early.agents["a"].utilization == pytest.approx(2.0 / 5.0)
            # At 13.2 the window starts at 4.0: only the last half second of the task is in.
            late = metrics.figures(13.2)
            assert late.window_s == pytest.approx(9.2)
            assert late.agents["a"].utilization == pytest.approx(0.5 / 9.2)
            assert late.completed == 1  # it finished at 4.5, in the slice that began at 4
            gone = metrics.figures(14.1)
            assert gone.completed == 0
            assert gone.agents["a"].utilization == 0.0

    asyncio.run(main())


def test_rejections_lower_availability_and_every_none_has_a_reason(clock: FakeClock) -> None:
    metrics = SwarmMetrics("s", clock=clock)
    empty = metrics.figures()
    for name in ("throughput_per_s", "error_rate", "availability", "latency", "balance_cv"):
        assert name in empty.reasons
    clock.now = 1.0
    metrics.observe_result(_result("a", 0.2, 0.4))
    metrics.observe_result(_result(None, None, None, TaskStatus.REJECTED))
    metrics.observe_result(_result(None, None, None, TaskStatus.REJECTED))
    metrics.observe_result(_result("a", 0.3, 0.9, TaskStatus.FAILED))
    figures = metrics.figures(2.0)
    assert figures.availability == pytest.approx(1 - 2 / 4)
    assert figures.error_rate == pytest.approx(1 / 2)
    # No swarm attached: the agent's slots are unknown, and the figures say so.
    assert figures.agents["a"].utilization is None
    assert "agent.a.utilization" in figures.reasons


def test_breaker_states_follow_a_real_breaker() -> None:
    async def main() -> tuple[SwarmMetrics, list[Event]]:
        settings = ResilienceSettings(
            breaker=BreakerSettings(failure_threshold=2, open_for=30.0), retry=None
        )
        swarm = Swarm(
            [AgentSpec("good"), AgentSpec("bad", faults=(Fault(error_rate=1.0),))],
            strategy="round-robin",
            guard=ResilienceGuard(settings),
        )
        metrics = SwarmMetrics("s", clock=swarm.clock)
        metrics.attach(swarm)
        async with swarm:
            await swarm.run([Task("sleep", 0.001) for _ in range(20)])
        return metrics, list(swarm.events)

    metrics, events = asyncio.run(main())
    assert any(e.kind == "breaker-open" and e.subject == "bad" for e in events)
    figures = metrics.figures()
    assert figures.agents["bad"].breaker == "open"
    assert figures.agents["good"].breaker == "closed"
    metrics.observe_event(Event(0.0, "breaker-half-open", "bad"))
    assert metrics.figures().agents["bad"].breaker == "half_open"


def test_a_lost_agent_is_down_until_it_restarts(clock: FakeClock) -> None:
    metrics = SwarmMetrics("s", clock=clock)
    metrics.observe_event(Event(0.0, "agent-lost", "w1", {"reason": "crash"}))
    assert metrics.agent_states() == [("w1", 0, 1, False)]
    metrics.observe_event(Event(1.0, "agent-restarted", "w1"))
    assert metrics.agent_states() == []


def test_a_lost_agent_that_never_returns_is_forgotten_after_a_while(clock: FakeClock) -> None:
    metrics = SwarmMetrics("s", clock=clock, forget_lost_after=60.0)
    for i in range(100):  # churn: a hundred agents lost one after another
        metrics.observe_event(Event(clock(), "agent-lost", f"w{i}", {"reason": "crash"}))
        clock.advance(1.0)
    # Only those lost in the last minute are still shown down.
    down = sorted(agent for agent, _, _, up in metrics.agent_states() if not up)
    assert down == sorted(f"w{i}" for i in range(40, 100))
    clock.advance(61.0)
    assert metrics.agent_states() == []

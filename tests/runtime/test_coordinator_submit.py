"""`Coordinator.submit_and_bind` decides exactly as `submit` then `take_starts` do."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf import STRATEGIES, AgentSpec, QueueSettings, Task
from swarmperf.balancing.strategies import get_strategy
from swarmperf.core.errors import Backpressure
from swarmperf.core.model import Priority, TaskResult
from swarmperf.runtime.coordinator import Coordinator


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _row(r: TaskResult | None) -> tuple[Any, ...] | None:
    if r is None:
        return None
    return (r.task_id, r.agent, r.attempts, r.queued_at, r.started_at, r.finished_at)


# An arrival: (cost, priority, tenant); a completion: the index of a running task.
Arrival = tuple[float | None, int, str]
Step = tuple[float, Arrival | int]


def _run(
    strategy: str,
    agents: list[tuple[int, int, float]],
    steps: list[Step],
    max_wait: float,
    bypass: bool,
) -> list[Any]:
    clock = _Clock()
    queue = QueueSettings(max_queued=60, max_wait=max_wait, tenant_weights={"x": 2.0})
    c = Coordinator(get_strategy(strategy, seed=1), queue, clock=clock)
    for i, (concurrency, prefetch, weight) in enumerate(agents):
        c.add_agent(AgentSpec(f"a{i}", concurrency=concurrency, prefetch=prefetch, weight=weight))
    trace: list[Any] = []
    running: list[tuple[str, Task, float]] = []
    for n, (wait, what) in enumerate(steps):
        clock.now += wait
        if isinstance(what, tuple):
            cost, priority, tenant = what
            task = Task("sleep", cost=cost, priority=Priority(priority), tenant=tenant, id=f"t{n}")
            try:
                if bypass:
                    c.submit_and_bind(task)
                else:
                    c.submit(task)
            except Backpressure:
                trace.append(("refused", task.id))
        elif running:
            agent_id, task, started = running.pop(what % len(running))
            trace.append(_row(c.finish(agent_id, task, started, clock.now)))
        for agent, task in c.take_starts():
            running.append((agent.id, task, clock.now))
            trace.append(("start", agent.id, task.id, task.enqueued_at))
        trace.append((c.statistics(), c.horizon, c.queue.counts()))
    # A burst that finds every agent busy: the order it comes out in follows from the
    # queue's accounting of everything before it (tenants' and levels' turns).
    for n in range(12):
        c.submit(Task("sleep", cost=1.0, priority=Priority(2 + n % 2), tenant="xy"[n % 3 % 2]))
    trace.append([(task.tenant, task.priority) for task in c.queue.drain()])
    return trace


arrivals = st.tuples(
    st.one_of(st.none(), st.floats(0.0, 3.0), st.floats(5.0, 50.0)),
    st.sampled_from([2, 2, 2, 3, 1, 0]),
    st.sampled_from(["x", "y"]),
)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@settings(max_examples=40, deadline=None)
@given(
    agents=st.lists(
        st.tuples(st.integers(1, 3), st.integers(0, 2), st.sampled_from([0.25, 1.0, 4.0])),
        min_size=1,
        max_size=4,
    ),
    steps=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.0, 0.1, 0.7]),
            st.one_of(arrivals, arrivals, st.integers(0, 99)),
        ),
        min_size=1,
        max_size=80,
    ),
    max_wait=st.sampled_from([0.05, 0.5, 30.0]),
)
def test_binding_at_submission_matches_queueing_then_binding(
    strategy: str,
    agents: list[tuple[int, int, float]],
    steps: list[Step],
    max_wait: float,
) -> None:
    queued = _run(strategy, agents, steps, max_wait, bypass=False)
    bound = _run(strategy, agents, steps, max_wait, bypass=True)
    assert bound == queued


def test_a_task_the_strategy_keeps_waiting_is_offered_once_as_in_the_queue() -> None:
    # The fast agent is busy; the slow one is free, but the big task would finish sooner
    # on the fast one: capacity-aware keeps it waiting, with nothing else queued.
    agents = [(1, 0, 4.0), (1, 0, 0.25)]
    steps: list[Step] = [(0.0, (1.0, 2, "x")), (0.0, (50.0, 2, "y")), (0.1, (1.0, 3, "x"))]
    queued = _run("capacity-aware", agents, steps, 30.0, bypass=False)
    bound = _run("capacity-aware", agents, steps, 30.0, bypass=True)
    assert bound == queued
    assert ("start", "a1", "t1", 0.0) not in queued  # it was kept waiting

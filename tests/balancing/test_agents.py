"""An agent's state: measurements stay finite, and its waiting and running tasks are kept
exactly as a deque and a dict by task id would keep them."""

from __future__ import annotations

import math
from collections import deque

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from swarmperf.balancing.agents import AgentState
from swarmperf.core.model import AgentSpec, Task


@given(
    st.lists(
        st.tuples(
            st.floats(0, 1e6, allow_nan=False),
            st.floats(0, 1e6, allow_nan=False, allow_subnormal=True),
        ),
        max_size=50,
    )
)
def test_speed_stays_finite_for_any_measured_service_time(
    samples: list[tuple[float, float]],
) -> None:
    agent = AgentState(AgentSpec("a"), 0)
    for work, service_time in samples:
        agent.observe(work, service_time)
    assert math.isfinite(agent.speed)
    assert agent.mean_service is None or math.isfinite(agent.mean_service)


def test_a_denormal_service_time_is_not_a_measurement() -> None:
    agent = AgentState(AgentSpec("a"), 0)
    agent.observe(1.0, 5e-324)
    assert agent.speed == 1.0
    assert agent.mean_service is None


class AgentTasksMachine(RuleBasedStateMachine):
    """The agent keeps its first two waiting tasks and its first running task in its own
    fields and the rest in a deque and a dict: every answer must be the one the plain deque
    of waiting tasks and dict of expected ends by task id give."""

    def __init__(self) -> None:
        super().__init__()
        self.agent = AgentState(AgentSpec("a", concurrency=3), 0)
        self.waiting: deque[Task] = deque()
        self.waiting_work = 0.0
        self.ends: dict[str, float] = {}
        self.running: list[Task] = []
        self.finished: list[Task] = []

    @rule(cost=st.floats(0, 100, allow_nan=False))
    def enqueue(self, cost: float) -> None:
        task = Task("k", cost=cost)
        task.est_cost = cost
        self.agent.enqueue(task)
        self.waiting.append(task)
        self.waiting_work += cost

    @precondition(lambda self: self.waiting)
    @rule()
    def dequeue(self) -> None:
        task = self.agent.dequeue()
        expected = self.waiting.popleft()
        self.waiting_work -= expected.est_cost
        assert task is expected

    @precondition(lambda self: self.waiting)
    @rule()
    def dequeue_last(self) -> None:
        assert self.agent.last_waiting() is self.waiting[-1]
        task = self.agent.dequeue_last()
        expected = self.waiting.pop()
        self.waiting_work -= expected.est_cost
        assert task is expected

    @rule()
    def take_backlog(self) -> None:
        assert self.agent.take_backlog() == list(self.waiting)
        self.waiting.clear()
        self.waiting_work = 0.0

    @rule(end=st.floats(0, 1e6, allow_nan=False))
    def start(self, end: float) -> None:
        task = Task("k", cost=1.0)
        self.agent.running_started(task, end)
        self.agent.in_flight += 1
        self.ends[task.id] = end
        self.running.append(task)

    @precondition(lambda self: self.running)
    @rule(i=st.integers(0, 10), same_object=st.booleans())
    def stop(self, i: int, same_object: bool) -> None:
        task = self.running.pop(i % len(self.running))
        # A report may carry an equal task rather than the one started (rebuilt from its
        # id): it is the same task.
        report = task if same_object else Task("k", id=task.id, cost=1.0)
        assert self.agent.running_stopped(report)
        self.agent.in_flight -= 1
        del self.ends[task.id]
        self.finished.append(task)

    @precondition(lambda self: self.finished)
    @rule(i=st.integers(0, 10))
    def stop_again(self, i: int) -> None:
        # A duplicate report, or one for a task given up on: not running here.
        task = self.finished[i % len(self.finished)]
        assert not self.agent.running_stopped(task)

    @rule(now=st.floats(0, 1e6, allow_nan=False))
    def free_at(self, now: float) -> None:
        busy = self.agent.in_flight >= self.agent.slots
        expected = max(now, min(self.ends.values())) if busy and self.ends else now
        assert self.agent.free_at(now) == expected

    @invariant()
    def waiting_tasks_agree(self) -> None:
        assert self.agent.backlog == list(self.waiting)
        assert self.agent.backlog_size == len(self.waiting)
        # The same additions and subtractions in the same order: equal, not just close.
        assert self.agent.backlog_work == self.waiting_work


TestAgentTasksMachine = AgentTasksMachine.TestCase

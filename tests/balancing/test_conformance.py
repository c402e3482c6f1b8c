"""Every registered strategy must pass these; a new strategy gets them for free."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from swarmperf.balancing import STRATEGIES, get_strategy
from swarmperf.core.errors import UnknownName
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.coordinator import Coordinator
from tests.conftest import FakeClock


def test_unknown_strategy_lists_the_choices() -> None:
    with pytest.raises(UnknownName, match="least-loaded") as info:
        get_strategy("fastest")
    assert "'fastest'" in str(info.value)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_names_are_kebab_case_and_round_trip(name: str) -> None:
    assert name == name.lower()
    assert " " not in name
    assert "_" not in name
    assert get_strategy(name).name == name


class ChurnMachine(RuleBasedStateMachine):
    """Tasks come and go while agents join, leave and crash; no task is lost or run twice."""

    strategy_name = ""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.coordinator = Coordinator(get_strategy(self.strategy_name, seed=1), clock=self.clock)
        self.next_agent = 0
        self.running: dict[str, tuple[str, Task, float]] = {}  # task id -> (agent, task, t0)
        self.submitted: set[str] = set()
        self.finished: set[str] = set()
        self.removed: set[str] = set()
        self.rng = random.Random(0)
        self.most_agents = 0  # the most live agents there were at once
        for _ in range(2):
            self._add(1.0, 1, 0)

    def _add(self, weight: float, concurrency: int, prefetch: int) -> None:
        agent_id = f"a{self.next_agent}"
        self.next_agent += 1
        self.coordinator.add_agent(
            AgentSpec(agent_id, weight=weight, concurrency=concurrency, prefetch=prefetch)
        )
        self.most_agents = max(self.most_agents, len(self.coordinator.agents))

    def _pump(self) -> None:
        for agent, task in self.coordinator.take_starts():
            assert agent.alive, f"{self.strategy_name} chose removed agent {agent.id}"
            assert agent.id not in self.removed
            assert agent.in_flight <= agent.slots, "chose an agent without a free slot"
            assert task.id not in self.running, "task started twice"
            assert task.id not in self.finished, "finished task started again"
            self.running[task.id] = (agent.id, task, self.clock.now)

    @rule(
        weight=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
        concurrency=st.integers(1, 3),
        prefetch=st.integers(0, 2),
    )
    def add_agent(self, weight: float, concurrency: int, prefetch: int) -> None:
        self._add(weight, concurrency, prefetch)
        self._pump()

    @precondition(lambda self: len(self.coordinator.agents) > 1)
    @rule(data=st.data())
    def remove_agent(self, data: st.DataObject) -> None:
        agent_id = data.draw(st.sampled_from(sorted(self.coordinator.agents)))
        self.coordinator.remove_agent(agent_id)
        self.removed.add(agent_id)
        self._pump()

    @precondition(lambda self: len(self.coordinator.agents) > 1)
    @rule(data=st.data())
    def crash_agent(self, data: st.DataObject) -> None:
        agent_id = data.draw(st.sampled_from(sorted(self.coordinator.agents)))
        lost = [t for a, t, _ in self.running.values() if a == agent_id]
        self.coordinator.agent_lost(agent_id, lost, "killed")
        for task in lost:
            del self.running[task.id]
        self.removed.add(agent_id)
        self._pump()

    @rule(
        n=st.integers(1, 8),
        cost=st.one_of(st.none(), st.floats(0.001, 1.0)),
        tenant=st.sampled_from(["a", "b"]),
    )
    def submit(self, n: int, cost: float | None, tenant: str) -> None:
        for _ in range(n):
            # Ids of this machine's own: drawn by position in a sorted list, ids from the
            # process-wide counter would differ when Hypothesis replays a case.
            task = Task("noop", cost=cost, tenant=tenant, id=f"t{len(self.submitted):05d}")
            self.coordinator.submit(task)
            self.submitted.add(task.id)
        self._pump()

    @precondition(lambda self: bool(self.running))
    @rule(data=st.data(), dt=st.floats(0.0, 0.5), fail=st.booleans())
    def finish(self, data: st.DataObject, dt: float, fail: bool) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.running)))
        agent_id, task, t0 = self.running.pop(task_id)
        self.clock.advance(dt)
        self.coordinator.finish(agent_id, task, t0, self.clock.now, "boom" if fail else None)
        assert task_id not in self.finished
        self.finished.add(task_id)
        self._pump()

    @precondition(
        lambda self: (
            len(self.coordinator.agents) > 1
            and any(a in self.coordinator.agents for a, _, _ in self.running.values())
        )
    )
    @rule(data=st.data(), crash=st.booleans())
    def finish_then_leave(self, data: st.DataObject, crash: bool) -> None:
        # An agent reports a task done, which starts its next one, and it leaves (or dies)
        # before that start is handed out: the start must go to another agent, since its
        # own backend would refuse it.
        live = self.coordinator.agents
        task_id = data.draw(
            st.sampled_from(sorted(t for t, (a, _, _) in self.running.items() if a in live))
        )
        agent_id, task, t0 = self.running.pop(task_id)
        self.clock.advance(0.1)
        self.coordinator.finish(agent_id, task, t0, self.clock.now)
        self.finished.add(task_id)
        if crash:
            lost = [t for a, t, _ in self.running.values() if a == agent_id]
            self.coordinator.agent_lost(agent_id, lost, "killed")
            for t in lost:
                del self.running[t.id]
        else:
            self.coordinator.remove_agent(agent_id)
        self.removed.add(agent_id)
        self._pump()

    @invariant()
    def every_task_is_somewhere(self) -> None:
        c = self.coordinator
        queued = len(c.queue)
        backlogged = sum(len(a.backlog) for a in c.agents.values())
        assert c.pending == queued + backlogged
        assert c.running == len(self.running)
        assert len(self.submitted) == queued + backlogged + len(self.running) + len(self.finished)

    @invariant()
    def agent_numbers_are_reused(self) -> None:
        # Strategies keep arrays by agent number: the numbers of live agents differ, and
        # stay below the most agents there were at once however many came and went.
        numbers = [a.index for a in self.coordinator.agents.values()]
        assert len(set(numbers)) == len(numbers)
        assert all(0 <= n < self.most_agents for n in numbers)

    @invariant()
    def backlog_only_when_slots_are_full(self) -> None:
        for agent in self.coordinator.agents.values():
            if agent.backlog:
                assert agent.in_flight == agent.slots
                assert not self.coordinator.strategy.late_binding

    @invariant()
    def free_slots_are_used(self) -> None:
        # Work-conserving: nothing waits in the queue while an agent sits idle, unless the
        # strategy deliberately holds a task for a faster agent.
        c = self.coordinator
        if len(c.queue) and c.strategy.name != "capacity-aware":
            assert all(a.in_flight >= a.slots for a in c.agents.values())

    def teardown(self) -> None:
        # Drain: everything submitted finishes exactly once.
        for _ in range(10_000):
            if not self.running:
                break
            task_id = next(iter(self.running))
            agent_id, task, t0 = self.running.pop(task_id)
            self.clock.advance(0.01)
            self.coordinator.finish(agent_id, task, t0, self.clock.now)
            self.finished.add(task_id)
            self._pump()
        assert self.finished == self.submitted
        assert self.coordinator.idle


for _name in sorted(STRATEGIES):
    _cls: type[ChurnMachine] = type(
        f"TestChurn_{_name.replace('-', '_')}",
        (ChurnMachine,),
        {"strategy_name": _name},
    )
    _cls.TestCase.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)
    globals()[f"TestChurn_{_name.replace('-', '_')}"] = _cls.TestCase


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@given(weights=st.lists(st.sampled_from([0.5, 1.0, 3.0]), min_size=1, max_size=6))
@settings(max_examples=25, deadline=None)
def test_choice_is_a_live_agent_with_room(name: str, weights: list[float]) -> None:
    clock = FakeClock()
    c = Coordinator(get_strategy(name, seed=3), clock=clock)
    for i, w in enumerate(weights):
        c.add_agent(AgentSpec(f"a{i}", weight=w))
    for _ in range(3 * len(weights)):
        c.submit(Task("noop", cost=0.01))
    starts = c.take_starts()
    assert starts, "free agents and queued tasks, yet nothing started"
    for agent, _ in starts:
        assert agent.alive
        assert agent.in_flight <= agent.slots


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_an_agent_that_leaves_and_comes_back_under_its_id_is_chosen_again(name: str) -> None:
    from swarmperf.sim import Simulation

    sim = Simulation([AgentSpec("a0")], strategy=name, seed=1)
    sim.crash_agent_at(0.1, "a0", repair_after=0.5)
    outcome = sim.run([Task("sleep", payload=0.0, cost=0.0, id="t0")], [1.0])
    assert [r.ok for r in outcome.results] == [True]


def test_a_newcomer_with_the_number_of_an_agent_that_left_is_not_taken_for_it() -> None:
    """The newcomer takes the number the fast agent left free; least-loaded's heap still
    holds the fast agent's entry, the least of all, under that number. The newcomer is the
    slowest agent of the three, so the next task goes to the other one."""
    c = Coordinator(get_strategy("least-loaded"), clock=FakeClock())
    fast = c.add_agent(AgentSpec("fast", weight=4.0))
    c.add_agent(AgentSpec("steady", weight=1.0))
    c.remove_agent("fast")
    slow = c.add_agent(AgentSpec("slow", weight=0.5))
    assert slow.index == fast.index
    c.submit(Task("noop", cost=1.0))
    assert [agent.id for agent, _ in c.take_starts()] == ["steady"]

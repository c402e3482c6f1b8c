"""Switching strategies and pausing a running swarm: no task is lost, none runs twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from swarmperf import STRATEGIES, AgentSpec, Swarm, Task
from swarmperf.balancing.strategies import get_strategy
from swarmperf.core.errors import UnknownName
from swarmperf.core.events import STRATEGY_CHANGED
from swarmperf.runtime.coordinator import Coordinator
from tests.conftest import FakeClock

NAMES = sorted(STRATEGIES)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- the coordinator, step by step ------------------------------------------------------


class SwitchMachine(RuleBasedStateMachine):
    """Strategies change and the swarm is held and released at any moment while tasks
    come, run and finish, and agents join, leave and crash."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.coordinator = Coordinator(get_strategy("round-robin", seed=1), clock=self.clock)
        self.next_agent = 0
        self.running: dict[str, tuple[str, Task, float]] = {}  # task id -> (agent, task, t0)
        self.submitted: set[str] = set()
        self.finished: set[str] = set()
        self.switches = 0

    @initialize(name=st.sampled_from(NAMES), agents=st.integers(1, 3))
    def start(self, name: str, agents: int) -> None:
        self.coordinator = Coordinator(get_strategy(name, seed=1), clock=self.clock)
        for _ in range(agents):
            self._add(1.0, 1, 0)

    def _add(self, weight: float, concurrency: int, prefetch: int) -> None:
        agent_id = f"a{self.next_agent}"
        self.next_agent += 1
        self.coordinator.add_agent(
            AgentSpec(agent_id, weight=weight, concurrency=concurrency, prefetch=prefetch)
        )

    def _pump(self) -> None:
        for agent, task in self.coordinator.take_starts():
            assert not self.coordinator.held, "a task started while the swarm was held"
            assert agent.alive
            assert not agent.paused
            assert agent.in_flight <= agent.slots
            assert task.id not in self.running, "task started twice"
            assert task.id not in self.finished, "finished task started again"
            self.running[task.id] = (agent.id, task, self.clock.now)

    @rule(name=st.sampled_from(NAMES))
    def switch(self, name: str) -> None:
        before = self.coordinator.strategy.name
        assert self.coordinator.replace_strategy(get_strategy(name, seed=2)) == before
        assert self.coordinator.strategy.name == name
        self.switches += 1
        self._pump()

    @rule()
    def hold(self) -> None:
        self.coordinator.hold("test")
        self._pump()

    @rule()
    def release(self) -> None:
        self.coordinator.release("test")
        self._pump()

    @rule(
        weight=st.sampled_from([0.5, 1.0, 2.0]),
        concurrency=st.integers(1, 2),
        prefetch=st.integers(0, 1),
    )
    def add_agent(self, weight: float, concurrency: int, prefetch: int) -> None:
        self._add(weight, concurrency, prefetch)
        self._pump()

    @precondition(lambda self: len(self.coordinator.agents) > 1)
    @rule(data=st.data())
    def remove_agent(self, data: st.DataObject) -> None:
        agent_id = data.draw(st.sampled_from(sorted(self.coordinator.agents)))
        self.coordinator.remove_agent(agent_id)
        self._pump()

    @precondition(lambda self: len(self.coordinator.agents) > 1)
    @rule(data=st.data())
    def crash_agent(self, data: st.DataObject) -> None:
        agent_id = data.draw(st.sampled_from(sorted(self.coordinator.agents)))
        lost = [t for a, t, _ in self.running.values() if a == agent_id]
        self.coordinator.agent_lost(agent_id, lost, "killed")
        for task in lost:
            del self.running[task.id]
        self._pump()

    @rule(n=st.integers(1, 6), cost=st.one_of(st.none(), st.floats(0.001, 1.0)))
    def submit(self, n: int, cost: float | None) -> None:
        for _ in range(n):
            # Ids of this machine's own: drawn by position in a sorted list, ids from the
            # process-wide counter would differ when Hypothesis replays a case.
            task = Task("noop", cost=cost, id=f"t{len(self.submitted):05d}")
            self.coordinator.submit(task)
            self.submitted.add(task.id)
        self._pump()

    @precondition(lambda self: bool(self.running))
    # Whole milliseconds: a service time of a few denormal seconds measures an endless
    # speed, which no strategy is asked to survive here.
    @rule(data=st.data(), dt=st.integers(0, 500).map(lambda ms: ms / 1000), fail=st.booleans())
    def finish(self, data: st.DataObject, dt: float, fail: bool) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.running)))
        agent_id, task, t0 = self.running.pop(task_id)
        self.clock.advance(dt)
        # `finish` takes a short path for one task when the strategy allows it.
        result = self.coordinator.finish(
            agent_id, task, t0, self.clock.now, "boom" if fail else None
        )
        assert result is not None
        assert result.task_id == task_id
        self.finished.add(task_id)
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
    def free_slots_are_used(self) -> None:
        # Work-conserving under every strategy it switched to: nothing waits in the queue
        # while an agent that may work sits idle (capacity-aware may hold a task back).
        c = self.coordinator
        if len(c.queue) and c.strategy.name != "capacity-aware":
            assert all(a.in_flight >= a.slots for a in c.agents.values() if not a.paused)

    @invariant()
    def early_binding_leaves_nothing_in_the_central_queue(self) -> None:
        # No agent has a queue limit here: an early-binding strategy binds every task at
        # once to an agent that may take work, if there is one.
        c = self.coordinator
        if not c.strategy.late_binding and any(not a.paused for a in c.agents.values()):
            assert len(c.queue) == 0

    @invariant()
    def late_binding_leaves_nothing_in_agents_queues(self) -> None:
        if self.coordinator.strategy.late_binding:
            assert all(not a.backlog for a in self.coordinator.agents.values())

    def teardown(self) -> None:
        if not self.submitted and not self.running:
            return
        c = self.coordinator
        c.release("teardown")
        self._pump()
        for _ in range(10_000):
            if not self.running:
                break
            task_id = next(iter(self.running))
            agent_id, task, t0 = self.running.pop(task_id)
            self.clock.advance(0.01)
            c.finish_many(agent_id, [(task, t0, self.clock.now, None, None)])
            self.finished.add(task_id)
            self._pump()
        assert self.finished == self.submitted
        assert c.idle


SwitchMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
TestSwitchMachine = SwitchMachine.TestCase


# -- a running swarm --------------------------------------------------------------------

_action = st.one_of(
    st.tuples(st.just("submit"), st.integers(1, 12), st.sampled_from([0.0, 0.0005, 0.002])),
    st.tuples(st.just("switch"), st.sampled_from(NAMES), st.just(0.0)),
    st.tuples(st.just("wait"), st.just(0), st.sampled_from([0.0, 0.001, 0.003])),
    st.tuples(st.just("pause"), st.just(0), st.just(0.0)),
    st.tuples(st.just("resume"), st.just(0), st.just(0.0)),
)


@given(
    first=st.sampled_from(NAMES),
    agents=st.lists(st.tuples(st.integers(1, 2), st.integers(0, 1)), min_size=2, max_size=4),
    actions=st.lists(_action, min_size=1, max_size=14),
)
@settings(max_examples=30, deadline=None)
def test_switching_at_random_moments_loses_and_repeats_no_task(
    first: str, agents: list[tuple[int, int]], actions: list[tuple[str, Any, float]]
) -> None:
    async def main() -> None:
        specs = [
            AgentSpec(f"a{i}", concurrency=c, prefetch=p, weight=1.0 + i)
            for i, (c, p) in enumerate(agents)
        ]
        submitted: list[Task] = []
        switches: list[str] = []
        async with Swarm(specs, strategy=first, seed=3) as swarm:
            for action, arg, seconds in actions:
                if action == "submit":
                    for _ in range(arg):
                        kind = "noop" if seconds == 0 else "sleep"
                        task = Task(kind, payload=seconds or None, cost=seconds or 0.0001)
                        swarm.submit(task)
                        submitted.append(task)
                elif action == "switch":
                    previous = swarm.strategy.name
                    assert swarm.set_strategy(arg) == previous
                    switches.append(arg)
                    assert swarm.strategy.name == arg
                elif action == "wait":
                    await asyncio.sleep(seconds)
                elif action == "pause":
                    swarm.pause()
                    assert swarm.paused
                else:
                    swarm.resume()
                    assert not swarm.paused
            swarm.resume()
            await asyncio.wait_for(swarm.drain(), 5.0)
            assert swarm.coordinator.idle
            results = list(swarm.results)
            events = list(swarm.events)
        assert sorted(r.task_id for r in results) == sorted(t.id for t in submitted)
        assert all(r.ok for r in results)
        changes = [e for e in events if e.kind == STRATEGY_CHANGED]
        assert [e.detail["name"] for e in changes] == switches
        assert [e.detail["previous"] for e in changes] == [first, *switches][: len(switches)]
        assert swarm.event_counts["duplicate-result-ignored"] == 0

    run(main())


def test_an_idle_agent_steals_at_once_after_a_switch_to_work_stealing() -> None:
    async def main() -> None:
        async with Swarm([AgentSpec("loaded")], strategy="round-robin", seed=1) as swarm:
            tasks = [Task("sleep", payload=0.01, cost=0.05) for _ in range(10)]
            for task in tasks:
                swarm.submit(task)
            # Round robin bound all ten to "loaded": one runs, nine wait in its queue.
            await swarm.add_agent(AgentSpec("idle"))
            await asyncio.sleep(0.015)
            assert swarm.coordinator.agent("idle").in_flight == 0
            assert not any(r.agent == "idle" for r in swarm.results)
            assert swarm.set_strategy("work-stealing") == "round-robin"
            # Taken at once, not when "loaded" next finishes something.
            assert swarm.coordinator.statistics().stolen == 1
            assert swarm.coordinator.agent("idle").in_flight == 1
            await swarm.drain()
            results = list(swarm.results)
        assert sorted(r.task_id for r in results) == sorted(t.id for t in tasks)
        on_idle = [r for r in results if r.agent == "idle"]
        assert len(on_idle) == swarm.coordinator.statistics().stolen >= 3

    run(main())


def test_a_switch_to_late_binding_frees_tasks_waiting_in_an_agents_queue() -> None:
    clock = FakeClock()
    c = Coordinator(get_strategy("round-robin"), clock=clock)
    c.add_agent(AgentSpec("loaded"))
    tasks = [Task("sleep", cost=1.0) for _ in range(4)]
    for task in tasks:
        c.submit(task)
    assert [t.id for _, t in c.take_starts()] == [tasks[0].id]
    c.add_agent(AgentSpec("idle"))
    assert c.take_starts() == []  # round robin never moves what it bound
    assert c.replace_strategy(get_strategy("least-loaded")) == "round-robin"
    # The oldest waiting task goes to the idle agent; the rest wait for a free slot.
    assert [(a.id, t.id) for a, t in c.take_starts()] == [("idle", tasks[1].id)]
    assert len(c.queue) == 2
    assert c.statistics().stolen == 0


def test_a_switch_to_early_binding_binds_what_waits_in_the_central_queue() -> None:
    c = Coordinator(get_strategy("least-loaded"), clock=FakeClock())
    c.add_agent(AgentSpec("a"))
    c.add_agent(AgentSpec("b"))
    for _ in range(6):
        c.submit(Task("sleep", cost=1.0))
    assert len(c.take_starts()) == 2
    assert len(c.queue) == 4  # late binding: the rest wait for a free slot
    c.replace_strategy(get_strategy("round-robin"))
    assert c.take_starts() == []
    assert len(c.queue) == 0
    assert [len(c.agent(name).backlog) for name in ("a", "b")] == [2, 2]


def test_a_thief_keeps_stealing_as_it_finishes_after_a_switch() -> None:
    clock = FakeClock()
    c = Coordinator(get_strategy("round-robin"), clock=clock)
    c.add_agent(AgentSpec("loaded"))
    for _ in range(10):
        c.submit(Task("sleep", cost=1.0))
    c.take_starts()
    c.add_agent(AgentSpec("idle"))
    c.replace_strategy(get_strategy("work-stealing"))
    for steals in range(1, 4):
        [(thief, task)] = c.take_starts()
        assert thief.id == "idle"
        assert c.statistics().stolen == steals
        clock.advance(1.0)
        c.finish("idle", task, clock.now - 1.0, clock.now)  # the one-task path
    assert c.statistics().stolen == 4  # the last finish took a fourth
    assert len(c.agent("loaded").backlog) == 5


def test_a_switch_is_recorded_and_an_unknown_name_changes_nothing() -> None:
    async def main() -> None:
        async with Swarm([AgentSpec("a")], strategy="least-loaded", seed=5) as swarm:
            with pytest.raises(UnknownName, match="work-stealing"):
                swarm.set_strategy("fastest")
            assert swarm.strategy.name == "least-loaded"
            assert swarm.coordinator.strategy is swarm.strategy
            assert swarm.set_strategy("power-of-two") == "least-loaded"
            assert swarm.coordinator.strategy is swarm.strategy
            assert swarm.strategy.seed == 5  # type: ignore[attr-defined]
            assert swarm.set_strategy(swarm.strategy) == "power-of-two"  # the same: no change
            results = await swarm.run([Task("noop") for _ in range(5)])
        changes = [e for e in swarm.events if e.kind == STRATEGY_CHANGED]
        assert [(e.subject, dict(e.detail)) for e in changes] == [
            ("power-of-two", {"previous": "least-loaded", "name": "power-of-two", "requeued": 0})
        ]
        assert len(results) == 5

    run(main())


# -- pause and resume -------------------------------------------------------------------


async def _results(swarm: Swarm, n: int) -> None:
    while len(swarm.results) < n:
        await asyncio.sleep(0.002)


def test_a_paused_swarm_finishes_what_runs_and_starts_nothing_until_resumed() -> None:
    async def main() -> None:
        agents = [AgentSpec("a"), AgentSpec("b")]
        async with Swarm(agents, strategy="least-loaded", seed=1) as swarm:
            tasks = [Task("sleep", payload=0.01, cost=0.01) for _ in range(6)]
            for task in tasks[:4]:
                swarm.submit(task)
            states = [swarm.paused]
            swarm.pause("maintenance")
            states.append(swarm.paused)
            for task in tasks[4:]:
                swarm.submit(task)  # intake goes on
            await asyncio.wait_for(_results(swarm, 2), 5.0)
            # The two that were running finished; nothing else started when they did.
            assert sorted(r.task_id for r in swarm.results) == sorted(t.id for t in tasks[:2])
            assert swarm.coordinator.running == 0
            assert swarm.coordinator.pending == 4
            swarm.resume("done")
            states.append(swarm.paused)
            assert states == [False, True, False]
            await asyncio.wait_for(swarm.drain(), 5.0)
            results = list(swarm.results)
        assert sorted(r.task_id for r in results) == sorted(t.id for t in tasks)
        paused = [e for e in swarm.events if e.kind == "agent-paused"]
        assert {e.subject for e in paused} == {"a", "b"}
        assert {e.detail["reason"] for e in paused} == {"maintenance"}

    run(main())


def test_agents_added_while_paused_start_paused() -> None:
    async def main() -> None:
        swarm = Swarm([AgentSpec("a")], strategy="work-stealing", seed=1)
        swarm.pause()  # before it starts: its agents start paused too
        async with swarm:
            await swarm.add_agent(AgentSpec("late", concurrency=2))
            tasks = [Task("noop") for _ in range(5)]
            for task in tasks:
                swarm.submit(task)
            await asyncio.sleep(0.01)
            assert swarm.results == []
            assert all(a.paused for a in swarm.coordinator.agents.values())
            swarm.resume()
            await asyncio.wait_for(swarm.drain(), 5.0)
        assert sorted(r.task_id for r in swarm.results) == sorted(t.id for t in tasks)
        assert {r.agent for r in swarm.results} <= {"a", "late"}

    run(main())


def test_a_switch_while_paused_starts_nothing() -> None:
    async def main() -> None:
        async with Swarm([AgentSpec("a"), AgentSpec("b")], strategy="round-robin") as swarm:
            swarm.pause()
            for _ in range(4):
                swarm.submit(Task("noop"))
            for name in NAMES:
                swarm.set_strategy(name)
            await asyncio.sleep(0.01)
            assert swarm.results == []
            assert swarm.coordinator.running == 0
            swarm.resume()
            await asyncio.wait_for(swarm.drain(), 5.0)
        assert len(swarm.results) == 4

    run(main())


def test_an_agents_own_pause_outlasts_or_ends_with_the_hold() -> None:
    clock = FakeClock()
    c = Coordinator(get_strategy("least-loaded"), clock=clock)
    for name in ("throttled", "broken", "fine"):
        c.add_agent(AgentSpec(name))
    c.suspend("throttled", 1.0, "rate limit")  # resumes by itself at t=1
    c.suspend("broken", None, "breaker open")  # until resumed
    c.hold("operator")
    c.submit(Task("noop"))
    clock.now = 2.0
    assert c.take_starts() == []  # the rate limit is over, the hold is not
    c.release("operator")
    agents = {a.id: a.paused for a in c.agents.values()}
    assert agents == {"throttled": False, "broken": True, "fine": False}
    assert [a.id for a, _ in c.take_starts()] in (["throttled"], ["fine"])
    # A pause of its own that starts during the hold outlasts it.
    c.hold("operator")
    c.suspend("fine", None, "breaker open")
    c.release("operator")
    assert c.agent("fine").paused
    assert not c.agent("throttled").paused

"""Work stealing: idle agents take queued tasks from loaded ones, only when the move pays."""

from __future__ import annotations

import heapq
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.balancing import get_strategy
from swarmperf.balancing.agents import AgentState
from swarmperf.balancing.strategies import RoundRobin, _LazyHeap, _victim_key
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.coordinator import Coordinator
from swarmperf.sim.simulation import Simulation
from tests.conftest import FakeClock


def _coordinator(transfer_cost: float = 0.0) -> tuple[Coordinator, FakeClock]:
    clock = FakeClock()
    strategy = get_strategy("work-stealing", seed=1, transfer_cost=transfer_cost)
    return Coordinator(strategy, clock=clock), clock


def test_an_idle_agent_takes_the_last_queued_task_of_a_loaded_one() -> None:
    coordinator, _ = _coordinator()
    coordinator.add_agent(AgentSpec("busy"))
    tasks = [Task("sleep", cost=1.0) for _ in range(6)]
    for task in tasks:
        coordinator.submit(task)
    assert [(a.id, t.id) for a, t in coordinator.take_starts()] == [("busy", tasks[0].id)]
    coordinator.add_agent(AgentSpec("idle"))
    # Five seconds of queue on "busy": its last task is done a lot sooner on "idle".
    assert [(a.id, t.id) for a, t in coordinator.take_starts()] == [("idle", tasks[-1].id)]
    assert coordinator.statistics().stolen == 1
    assert len(coordinator.agent("busy").backlog) == 4


def test_steals_keep_both_agents_busy_and_every_task_runs_once() -> None:
    coordinator, clock = _coordinator()
    coordinator.add_agent(AgentSpec("busy"))
    tasks = [Task("sleep", cost=1.0) for _ in range(20)]
    for task in tasks:
        coordinator.submit(task)
    running: list[tuple[float, str, str, Task]] = []  # (end, task id, agent, task)
    ran: dict[str, str] = {}

    def start() -> None:
        for agent, task in coordinator.take_starts():
            assert task.id not in ran, "a task started twice"
            ran[task.id] = agent.id
            heapq.heappush(running, (clock.now + task.est_cost, task.id, agent.id, task))

    start()  # all twenty bound to "busy", the first one started
    coordinator.add_agent(AgentSpec("idle"))
    start()
    while running:
        end, _, agent_id, task = heapq.heappop(running)
        started = clock.now
        clock.now = end
        coordinator.finish(agent_id, task, started, end)
        start()
    assert sorted(ran) == sorted(t.id for t in tasks)
    on_idle = sum(agent == "idle" for agent in ran.values())
    # Everything "idle" ran, it stole: round robin gave it nothing, it joined afterwards.
    assert on_idle == coordinator.statistics().stolen
    assert 8 <= on_idle <= 12  # the two agents share the work about evenly
    assert clock.now == pytest.approx(10.0, abs=1.0)


def test_nothing_is_stolen_when_no_agent_has_a_queue() -> None:
    coordinator, _ = _coordinator()
    coordinator.add_agent(AgentSpec("a", concurrency=2))
    coordinator.submit(Task("sleep", cost=1.0))
    coordinator.add_agent(AgentSpec("b"))
    assert [a.id for a, _ in coordinator.take_starts()] == ["a"]
    assert coordinator.take_starts() == []
    assert coordinator.statistics().stolen == 0


def test_a_costly_transfer_keeps_the_task_where_it_is() -> None:
    # The task would be done in 1 s + 3 s of transfer on the thief; on its own agent it
    # starts in 2 s and is done in 3 s. Stealing would make it later: it stays.
    coordinator, _ = _coordinator(transfer_cost=3.0)
    coordinator.add_agent(AgentSpec("busy"))
    for _ in range(3):
        coordinator.submit(Task("sleep", cost=1.0))
    coordinator.take_starts()
    coordinator.add_agent(AgentSpec("idle"))
    assert coordinator.take_starts() == []
    assert coordinator.statistics().stolen == 0


WEIGHTS = st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0])


@settings(max_examples=300, deadline=None)
@given(
    weights=st.lists(WEIGHTS, min_size=1, max_size=5),
    costs=st.lists(st.floats(0.01, 10.0), max_size=30),
    thief_weight=WEIGHTS,
    transfer_cost=st.one_of(st.just(0.0), st.floats(0.0, 5.0)),
)
def test_a_task_is_stolen_exactly_when_the_move_pays(
    weights: list[float], costs: list[float], thief_weight: float, transfer_cost: float
) -> None:
    """The rule: an idle agent takes the last task queued on the agent whose queue takes
    longest to drain, if it would finish that task (at its own speed, plus the transfer)
    before that queue would have drained; else it takes nothing."""
    coordinator, _ = _coordinator(transfer_cost)
    for i, weight in enumerate(weights):
        coordinator.add_agent(AgentSpec(f"a{i}", weight=weight))
    tasks = [Task("sleep", cost=c) for c in costs]
    for task in tasks:
        coordinator.submit(task)
    coordinator.take_starts()
    queues = {
        a.id: (sum(t.est_cost for t in a.backlog) / a.weight, list(a.backlog))
        for a in coordinator.live_agents()
    }
    longest = max((drain for drain, queue in queues.values() if queue), default=None)
    victims = [i for i, (drain, queue) in queues.items() if queue and drain == longest]

    def pays(victim: str) -> bool:
        drain, queue = queues[victim]
        return queue[-1].est_cost / thief_weight + transfer_cost < drain

    coordinator.add_agent(AgentSpec("thief", weight=thief_weight))
    starts = coordinator.take_starts()
    if starts:
        ((agent, task),) = starts
        assert agent.id == "thief"
        (victim,) = [v for v in victims if queues[v][1][-1] is task]
        assert pays(victim)
        assert coordinator.statistics().stolen == 1
        assert list(coordinator.agent(victim).backlog) == queues[victim][1][:-1]
    else:
        assert coordinator.statistics().stolen == 0
        assert not victims or not all(pays(v) for v in victims)


def test_a_simulated_run_counts_its_steals_in_the_report() -> None:
    agents = [AgentSpec("fast", weight=4.0), AgentSpec("slow", weight=1.0, slowdown=4.0)]
    sim = Simulation(agents, strategy="work-stealing", seed=3)
    outcome = sim.run([Task("sleep", payload=0.01, cost=0.01) for _ in range(400)])
    stolen = outcome.statistics.stolen
    # Round robin queues half the tasks on the slow agent; the fast one takes some of them.
    assert stolen > 0
    assert outcome.statistics.failed == 0
    report = outcome.report()
    assert report.stolen == stolen
    assert report.to_dict()["stolen"] == stolen


class _LazyVictims:
    """Work stealing as it was written first: round robin, and its victims in a
    `_LazyHeap` pushed (and compacted) by the heap itself at every change."""

    name: ClassVar[str] = "work-stealing"
    late_binding: ClassVar[bool] = False
    steals: ClassVar[bool] = True

    def __init__(self, transfer_cost: float) -> None:
        self.transfer_cost = transfer_cost
        self.ring = RoundRobin()
        self.victims = _LazyHeap(_victim_key)
        self.agents: dict[str, AgentState] = {}

    def attach(self, swarm: Any) -> None:
        self.ring.attach(swarm)

    def add(self, agent: AgentState, now: float) -> None:
        self.ring.add(agent, now)
        self.agents[agent.id] = agent

    def remove(self, agent: AgentState) -> None:
        self.ring.remove(agent)
        self.agents.pop(agent.id, None)

    def choose(self, task: Task, now: float) -> AgentState | None:
        return self.ring.choose(task, now)

    def refused_from(self, now: float) -> float:
        return float("inf")

    def assigned(self, agent: AgentState, task: Task) -> None:
        pass

    def changed(self, agent: AgentState, now: float) -> None:
        self.ring.changed(agent, now)
        if agent.alive and agent.backlog:
            self.victims.push(agent)
            self.victims.compact(self.agents)

    def steal_from(self, thief: AgentState, now: float) -> AgentState | None:
        victim = self.victims.top_with_backlog()
        if victim is None or victim is thief:
            return None
        task = victim.backlog[-1]
        thief_done = task.est_cost / thief.speed + self.transfer_cost
        return victim if thief_done < victim.backlog_work / victim.speed else None


_ws_ops = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.integers(1, 40), st.sampled_from([None, 1.0, 1.0, 2.0])),
        # Mostly one agent finishing: it runs ahead, and steals from the others.
        st.tuples(st.just("finish"), st.sampled_from([0, 0, 0, *range(8)]), st.integers(1, 12)),
        st.tuples(st.just("add"), st.integers(0, 7), st.sampled_from([1.0, 1.0, 1.0, 2.0])),
        st.tuples(st.just("remove"), st.integers(0, 7), st.just(None)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops=_ws_ops, transfer_cost=st.sampled_from([0.0, 0.5]))
def test_victims_are_chosen_as_by_a_heap_pushed_at_every_change(
    ops: list[tuple[str, int, Any]], transfer_cost: float
) -> None:
    """The strategy numbers its victims' entries itself and compacts them itself: every
    start, steal and count comes out as with the heap's own push and compaction, over
    runs long enough to compact many times, with ties (equal costs, equal weights)."""

    def starts(c: Coordinator, running: dict[str, Any], seen: list[Any], now: float) -> None:
        for agent, task in c.take_starts():
            running[agent.id].append((task, now))
            seen.append((agent.id, task.id))

    def drive(strategy: Any) -> list[Any]:
        clock = FakeClock()
        c = Coordinator(strategy, clock=clock)
        running: dict[str, list[tuple[Task, float]]] = {}
        seen: list[Any] = []
        n = 0
        # Four agents alike to start with: their queues tie until one of them finishes.
        for i in range(4):
            c.add_agent(AgentSpec(f"a{i}"))
            running[f"a{i}"] = []
        for op, x, y in ops:
            clock.now += 0.125
            if op == "submit":
                for _ in range(x):
                    n += 1
                    c.submit(Task("k", id=f"t{n}", cost=y))
            elif op == "add" and f"a{x}" not in running:
                c.add_agent(AgentSpec(f"a{x}", weight=y, prefetch=x % 3))
                running.setdefault(f"a{x}", [])
            elif op == "remove" and f"a{x}" in c.agents:
                c.remove_agent(f"a{x}")
            elif op == "finish":
                # The agent finishes everything it runs, `y` times over: one that runs
                # ahead of the others empties its queue, and steals.
                for _ in range(y):
                    batch, running[f"a{x}"] = running.get(f"a{x}", []), []
                    if not batch:
                        break
                    # Service times from the costs: equal costs take equal times (ties).
                    done = [(t, s, s + (t.cost or 1.0) / 2, None, None) for t, s in batch]
                    c.finish_many(f"a{x}", done)
                    starts(c, running, seen, clock.now)
            starts(c, running, seen, clock.now)
            seen.append(c.statistics())
        return seen

    assert drive(get_strategy("work-stealing", transfer_cost=transfer_cost)) == drive(
        _LazyVictims(transfer_cost)
    )

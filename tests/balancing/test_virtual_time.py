"""The virtual-time strategies decide exactly as a plain reference that keeps each agent's
virtual time in a dict keyed by id and tells a stale heap entry by its key, on random
workloads where agents fill up, regain room, pause, leave, join, and come back under an
old id."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any, ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.balancing.agents import AgentState
from swarmperf.balancing.strategies import LoadBalancer, SwarmLoad, get_strategy
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.coordinator import Coordinator
from tests.conftest import FakeClock

_CHARGES: dict[str, Callable[[AgentState, Task], float]] = {
    "weighted-round-robin": lambda agent, task: 1.0 / agent.weight,
    "cfs": lambda agent, task: 1000.0 / agent.weight,
    "weighted-fair-queuing": lambda agent, task: task.est_cost / agent.weight,
}


class _Reference:
    """The virtual-time rule written plainly: a dict of virtual times, a heap of
    (virtual time, order pushed, agent id) tuples, stale entries told by their key."""

    name: ClassVar[str] = "reference"
    late_binding: ClassVar[bool] = False
    steals: ClassVar[bool] = False

    def __init__(self, name: str) -> None:
        self.charge = _CHARGES[name]
        self.transfer_cost = 0.0
        self.agents: dict[str, AgentState] = {}
        self.vtime: dict[str, float] = {}
        self.heap: list[tuple[float, int, str]] = []
        self.seq = itertools.count()
        self.full: set[str] = set()
        self.now_v = 0.0

    def attach(self, swarm: SwarmLoad) -> None:
        pass

    def add(self, agent: AgentState, now: float) -> None:
        self.agents[agent.id] = agent
        self.vtime[agent.id] = self.now_v
        heapq.heappush(self.heap, (self.now_v, next(self.seq), agent.id))

    def remove(self, agent: AgentState) -> None:
        self.agents.pop(agent.id, None)
        self.vtime.pop(agent.id, None)
        self.full.discard(agent.id)
        # Its entries go with it: one left behind would stand for an agent that comes back
        # under the same id at the same virtual time.
        self.heap = [e for e in self.heap if e[2] != agent.id]
        heapq.heapify(self.heap)

    def choose(self, task: Task, now: float) -> AgentState | None:
        while self.heap:
            key, _, agent_id = self.heap[0]
            agent = self.agents.get(agent_id)
            if agent is None or not agent.alive or self.vtime.get(agent_id) != key:
                heapq.heappop(self.heap)
            elif not agent.has_room:
                heapq.heappop(self.heap)
                self.full.add(agent_id)
            else:
                return agent
        return None

    def refused_from(self, now: float) -> float:
        return float("inf")

    def assigned(self, agent: AgentState, task: Task) -> None:
        v = max(self.vtime.get(agent.id, self.now_v), self.now_v)
        self.now_v = v
        self.vtime[agent.id] = v + self.charge(agent, task)
        heapq.heappush(self.heap, (self.vtime[agent.id], next(self.seq), agent.id))

    def changed(self, agent: AgentState, now: float) -> None:
        if agent.id in self.full and agent.alive and agent.has_room:
            self.full.discard(agent.id)
            v = max(self.vtime[agent.id], self.now_v)
            self.vtime[agent.id] = v
            heapq.heappush(self.heap, (v, next(self.seq), agent.id))

    def steal_from(self, thief: AgentState, now: float) -> AgentState | None:
        return None


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from([0.1, 1.0, 3.0, None]), st.integers(1, 5)),
        st.tuples(st.just("finish"), st.integers(0, 7)),
        st.tuples(st.just("pause"), st.integers(0, 7)),
        st.tuples(st.just("resume"), st.integers(0, 7)),
        st.tuples(st.just("remove"), st.integers(0, 7)),
        st.tuples(st.just("add"), st.sampled_from([0.5, 1.0, 2.0]), st.sampled_from([None, 0, 1])),
        st.tuples(st.just("readd"), st.sampled_from([0.5, 1.0, 2.0])),
    ),
    max_size=80,
)


def _run(strategy: LoadBalancer, agents: list[tuple[float, int | None]], ops: list[Any]) -> Any:
    clock = FakeClock()
    c = Coordinator(strategy, clock=clock)
    names = itertools.count()
    for weight, limit in agents:
        c.add_agent(AgentSpec(f"a{next(names)}", weight=weight, queue_limit=limit))
    log: list[Any] = []
    running: list[tuple[str, Task, float]] = []
    removed: list[str] = []
    n = 0
    for op in ops:
        clock.now += 0.1
        live = sorted(c.agents)
        if op[0] == "submit":
            for _ in range(op[2]):
                n += 1
                try:
                    c.submit(Task("k", id=f"t{n}", cost=op[1]))
                except Exception as exc:  # the same refusal must come on both sides
                    log.append(("refused", type(exc).__name__))
        elif op[0] == "finish" and running:
            agent_id, task, started = running.pop(op[1] % len(running))
            c.finish(agent_id, task, started, clock.now)
        elif op[0] in ("pause", "resume", "remove") and live:
            agent_id = live[op[1] % len(live)]
            if op[0] == "pause":
                c.suspend(agent_id, None, "test")
            elif op[0] == "resume":
                c.resume(agent_id, "test")
            elif len(live) > 1:
                c.remove_agent(agent_id)
                removed.append(agent_id)
        elif op[0] == "add":
            c.add_agent(AgentSpec(f"a{next(names)}", weight=op[1], queue_limit=op[2]))
        elif op[0] == "readd" and removed:
            # Back under its old id: a new state, which the old one's entries must not
            # stand for.
            try:
                c.add_agent(AgentSpec(removed.pop(), weight=op[1]))
            except Exception as exc:
                log.append(("refused", type(exc).__name__))
        for agent, task in c.take_starts():
            running.append((agent.id, task, clock.now))
            log.append(("start", task.id, agent.id))
        log.append({a.id: [t.id for t in a.backlog] for a in c.agents.values()})
    return log


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(_CHARGES)),
    agents=st.lists(
        st.tuples(st.sampled_from([0.5, 1.0, 3.0]), st.sampled_from([None, 0, 1, 2])),
        min_size=1,
        max_size=5,
    ),
    ops=_ops,
)
def test_decides_as_the_reference(
    name: str, agents: list[tuple[float, int | None]], ops: list[Any]
) -> None:
    assert _run(get_strategy(name), agents, ops) == _run(_Reference(name), agents, ops)

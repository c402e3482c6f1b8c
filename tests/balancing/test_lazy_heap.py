"""The strategies' lazy heap answers as a plain one: a list of (key, order, version, agent)
tuples, searched whole, with agents that change, die, and leave their number to a newcomer."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from swarmperf.balancing.agents import AgentState
from swarmperf.balancing.strategies import _is_full, _LazyHeap
from swarmperf.core.model import AgentSpec

N = 5  # agent numbers in use at once
KEYS = st.sampled_from([-2.0, -1.0, 0.0, 0.0, 0.5, 1.0, 3.0])  # ties on purpose


class _Plain:
    """The lazy heap's rule, searched whole: the least (key, order) entry that is current
    (its agent alive and of the version pushed) and accepted; the ones before it go."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, int, int, AgentState]] = []
        self.seq = 0

    def push(self, key: float, agent: AgentState) -> None:
        self.entries.append((key, self.seq, agent.version, agent))
        self.seq += 1

    def top(self, accept: str) -> AgentState | None:
        while self.entries:
            least = min(self.entries, key=lambda e: (e[0], e[1]))
            agent = least[3]
            if agent.alive and least[2] == agent.version and _accepts(accept, agent):
                return agent
            self.entries.remove(least)
        return None

    def rebuild(self, agents: dict[str, AgentState]) -> None:
        self.entries = []
        for a in agents.values():
            if a.alive:
                self.push(_key(a), a)


def _key(agent: AgentState) -> float:
    return -agent.speed


def _accepts(accept: str, agent: AgentState) -> bool:
    if accept == "free slot":
        return agent.in_flight < agent.slots and not agent.paused
    if accept == "backlog":
        return agent.backlog_size > 0
    return _is_full(agent)


class LazyHeapMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.heap = _LazyHeap(_key)
        self.plain = _Plain()
        self.names = 0
        self.floor = 0  # as the coordinator: above every version an agent that left had
        self.agents: list[AgentState] = [self._new(i) for i in range(N)]

    def _new(self, index: int) -> AgentState:
        self.names += 1
        agent = AgentState(AgentSpec(f"a{self.names}", concurrency=2), index)
        agent.version = self.floor
        return agent

    def _live(self) -> dict[str, AgentState]:
        return {a.id: a for a in self.agents if a.alive}

    @rule(i=st.integers(0, N - 1), key=KEYS)
    def push(self, i: int, key: float) -> None:
        agent = self.agents[i]
        self.heap.push_key(key, agent)
        self.plain.push(key, agent)

    @rule(i=st.integers(0, N - 1), speed=st.sampled_from([0.5, 1.0, 2.0]))
    def push_by_its_key(self, i: int, speed: float) -> None:
        agent = self.agents[i]
        agent.speed = speed
        self.heap.push(agent)
        self.plain.push(_key(agent), agent)

    @rule(i=st.integers(0, N - 1), in_flight=st.integers(0, 2), waiting=st.integers(0, 1))
    def change(self, i: int, in_flight: int, waiting: int) -> None:
        agent = self.agents[i]
        agent.in_flight = in_flight
        agent.backlog_size = waiting
        agent.version += 1

    @rule(i=st.integers(0, N - 1), paused=st.booleans())
    def pause_unannounced(self, i: int, paused: bool) -> None:
        # No new version: the heap must read the pause from the agent itself.
        self.agents[i].paused = paused

    @rule(i=st.integers(0, N - 1))
    def leave_and_be_replaced(self, i: int) -> None:
        # The newcomer takes the number: the old agent's entries must not stand for it.
        old = self.agents[i]
        old.alive = False
        self.floor = max(self.floor, old.version + 1)
        self.agents[i] = self._new(i)

    @rule(accept=st.sampled_from(["free slot", "backlog", "full"]))
    def top(self, accept: str) -> None:
        if accept == "free slot":
            got = self.heap.top_with_free_slot()
        elif accept == "backlog":
            got = self.heap.top_with_backlog()
        else:
            got = self.heap.top(_is_full)
        assert got is self.plain.top(accept)

    @precondition(lambda self: len(self.heap) > 0)
    @rule()
    def rebuild(self) -> None:
        live = self._live()
        self.heap.rebuild(live)
        self.plain.rebuild(live)

    @invariant()
    def same_size(self) -> None:
        assert len(self.heap) == len(self.plain.entries)


TestLazyHeap = LazyHeapMachine.TestCase

"""The message bus as a state machine: whatever agents join, leave, die or fail and however
often the topology changes, every message sent ends exactly once, at its receiver."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from swarmperf.core.model import Task
from swarmperf.routing import TOPOLOGIES, TopologySettings
from swarmperf.runtime.messaging import RELAY, Delivery, MessageBus

NAMES = [f"a{i}" for i in range(8)]


class BusMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.given: list[tuple[str, Task]] = []  # hops handed to agents, not yet reported
        self.members: list[str] = []
        self.ended: dict[int, Delivery] = {}
        self.bus = MessageBus(self._run, lambda: 0.0, TopologySettings("ring"))
        self.bus.on_delivery(self._ended)
        for name in NAMES[:4]:
            self._join(name)

    def _run(self, starts: Sequence[tuple[str, Task]]) -> None:
        for agent, task in starts:
            assert agent in self.members, "a hop goes only to an agent of the swarm"
            if task.kind != RELAY:
                assert agent == task.payload[1], "the last hop is to the receiver"
            self.given.append((agent, task))

    def _ended(self, delivery: Delivery) -> None:
        assert delivery.message_id not in self.ended, "a message ends once"
        self.ended[delivery.message_id] = delivery

    def _join(self, name: str) -> None:
        self.members.append(name)
        self.bus.join(name)

    @rule(sender=st.sampled_from(NAMES), receiver=st.sampled_from([*NAMES, "nobody"]))
    def send(self, sender: str, receiver: str) -> None:
        self.bus.post(sender, receiver, "keep", (self.bus.sent, receiver))

    @precondition(lambda self: self.given)
    @rule(data=st.data(), fails=st.booleans())
    def finish_a_hop(self, data: st.DataObject, fails: bool) -> None:
        agent, task = self.given.pop(data.draw(st.integers(0, len(self.given) - 1)))
        error = "ValueError: no" if fails else None
        rest = self.bus.take_done(agent, [(task, 0.0, 0.0, error, None if fails else task.payload)])
        assert rest == []

    @rule(kind=st.sampled_from(TOPOLOGIES), fanout=st.integers(1, 3), size=st.integers(1, 3))
    def switch(self, kind: str, fanout: int, size: int) -> None:
        self.bus.set_topology(TopologySettings(kind, fanout=fanout, cluster_size=size))

    @precondition(lambda self: len(self.members) > 1)
    @rule(data=st.data())
    def lose_an_agent(self, data: st.DataObject) -> None:
        agent = data.draw(st.sampled_from(self.members))
        self.members.remove(agent)
        self.bus.leave(agent)
        held = [task for a, task in self.given if a == agent]
        self.given = [(a, task) for a, task in self.given if a != agent]
        assert self.bus.take_lost(agent, held) == []

    @precondition(lambda self: len(self.members) < len(NAMES))
    @rule(data=st.data())
    def add_an_agent(self, data: st.DataObject) -> None:
        self._join(data.draw(st.sampled_from([n for n in NAMES if n not in self.members])))

    @invariant()
    def every_message_is_somewhere_once(self) -> None:
        stats = self.bus.statistics()
        assert stats.in_flight == len(self.given)
        assert stats.sent == stats.delivered + stats.failed + stats.dropped + stats.in_flight
        assert len(self.ended) == stats.delivered + stats.failed + stats.dropped

    @invariant()
    def delivered_means_at_its_receiver(self) -> None:
        for delivery in self.ended.values():
            if delivery.error is None:
                assert delivery.value[1] == delivery.receiver

    def teardown(self) -> None:
        # With no more failures, what is on its way all arrives.
        while self.given:
            agent, task = self.given.pop(0)
            self.bus.take_done(agent, [(task, 0.0, 0.0, None, task.payload)])
        stats = self.bus.statistics()
        assert stats.in_flight == 0
        assert stats.sent == len(self.ended)


TestBusMachine = BusMachine.TestCase

"""Messages in virtual time: each hop adds its modelled latency, each relay its work, and
each arrival the receiving agent's work."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError
from swarmperf.core.handlers import AgentContext
from swarmperf.core.model import AgentSpec, Task
from swarmperf.routing import TOPOLOGIES, Routes, TopologySettings
from swarmperf.runtime.messaging import Delivery, Send
from swarmperf.sim import Simulation
from swarmperf.sim.messaging import LinkModel


def _kept(payload: object, agent: AgentContext) -> object:
    return payload


HANDLERS = {"go": _kept, "keep": _kept, "stage": _kept}


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(TOPOLOGIES),
    n=st.integers(1, 12),
    to=st.integers(0, 11),
    latency=st.floats(0.0, 0.5),
    relay_cost=st.floats(0.0, 0.5),
    receive_cost=st.sampled_from([0.0, 0.001, 0.25]),
    size=st.integers(0, 10_000),
    bandwidth=st.one_of(st.none(), st.floats(1e3, 1e6)),
)
def test_a_message_pays_each_hop_its_latency_each_relay_its_work_and_each_arrival_its_work(
    kind: str,
    n: int,
    to: int,
    latency: float,
    relay_cost: float,
    receive_cost: float,
    size: int,
    bandwidth: float | None,
) -> None:
    topology = TopologySettings(kind, fanout=2, cluster_size=3)
    receiver = f"a{to % n}"

    def traffic(agent_id: str, task: Task, delivered: bool) -> Iterable[Send]:
        return [Send(receiver, "keep", None, size)] if task.kind == "go" else []

    links = LinkModel(latency, bandwidth, relay_cost, receive_cost)
    sim = Simulation(
        [AgentSpec(f"a{i}") for i in range(n)],
        handlers=HANDLERS,
        traffic=traffic,
        topology=topology,
        links=links,
    )
    assert sim.messages is not None
    ended: list[Delivery] = []
    sim.messages.on_delivery(ended.append)
    outcome = sim.run([Task("go", cost=1.0)])
    (delivery,) = ended
    sender = outcome.results[0].agent or ""
    hops = Routes(topology, [f"a{i}" for i in range(n)]).hops(sender, receiver)
    expected = (
        hops * (links.delay(sender, receiver, size) + receive_cost) + max(hops - 1, 0) * relay_cost
    )
    assert delivery.error is None
    assert delivery.hops == hops
    assert math.isclose(delivery.latency, expected, abs_tol=1e-9)
    # The run ends once the message has arrived, not when the task that sent it did.
    assert math.isclose(outcome.finished - outcome.started, 1.0 + expected, abs_tol=1e-9)


def test_a_pipeline_passes_each_item_through_every_stage() -> None:
    stages = [f"a{i}" for i in range(5)]

    def traffic(agent_id: str, task: Task, delivered: bool) -> Iterable[Send]:
        if task.kind == "go":
            return [Send(stages[0], "stage", (task.payload, 0), 100, 0.01)]
        item, step = task.payload
        if step + 1 < len(stages):
            return [Send(stages[step + 1], "stage", (item, step + 1), 100, 0.01)]
        return []

    sim = Simulation(
        [AgentSpec(a) for a in stages],
        handlers=HANDLERS,
        traffic=traffic,
        topology=TopologySettings("ring"),
        links=LinkModel(latency=0.002),
    )
    assert sim.messages is not None
    sim.run([Task("go", i, cost=0.01) for i in range(20)])
    stats, matrix = sim.messages.statistics(), sim.messages.matrix()
    assert stats.sent == stats.delivered == 20 * 5
    index = {a: i for i, a in enumerate(matrix.agents)}
    for a, b in itertools.pairwise(stages):
        assert matrix.messages[index[a], index[b]] == 20


@pytest.mark.parametrize("receive_cost", [0.0, 0.01])
def test_messages_at_a_crashed_relay_go_round_it(receive_cost: float) -> None:
    names = [f"a{i}" for i in range(6)]

    def traffic(agent_id: str, task: Task, delivered: bool) -> Iterable[Send]:
        return [Send("a3", "keep", i, 10) for i in range(30)] if task.kind == "go" else []

    sim = Simulation(
        [AgentSpec(a) for a in names],
        handlers=HANDLERS,
        traffic=traffic,
        topology=TopologySettings("ring", bidirectional=False),
        links=LinkModel(latency=0.01, relay_cost=0.01, receive_cost=receive_cost),
    )
    assert sim.messages is not None
    delivered: list[int] = []
    sim.messages.on_delivery(lambda d: delivered.append(d.message_id if d.error is None else -1))
    for relay in ("a1", "a2", "a4", "a5", "a0"):
        sim.crash_agent_at(1.05, relay)
    sim.run([Task("go", cost=1.0)])
    stats = sim.messages.statistics()
    # The sender may have crashed too: what it had sent still arrives, once each.
    assert sorted(delivered) == list(range(1, 31))
    assert (stats.delivered, stats.in_flight) == (30, 0)
    assert stats.relayed < 30 * 2, "fewer relays than the ring's route: some went round"


def test_bad_link_models_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"links\.latency"):
        LinkModel(latency=-1.0)
    with pytest.raises(ConfigError, match=r"links\.bandwidth"):
        LinkModel(bandwidth=0.0)
    with pytest.raises(ConfigError, match=r"links\.receive_cost"):
        LinkModel(receive_cost=math.nan)


def test_an_arrival_is_work_of_the_agent_it_reaches_in_turn_with_its_other_work() -> None:
    """a0's tasks each send a message to a1, whose receive work runs in turn with a1's
    own tasks: the run holds the tasks' 4 s and every arrival's work on two agents."""

    def traffic(agent_id: str, task: Task, delivered: bool) -> Iterable[Send]:
        return [Send("a1", "keep", None, 10)] if task.kind == "go" and agent_id == "a0" else []

    def run(receive_cost: float) -> tuple[float, int]:
        sim = Simulation(
            [AgentSpec("a0"), AgentSpec("a1")],
            handlers=HANDLERS,
            traffic=traffic,
            topology=TopologySettings("mesh"),
            links=LinkModel(receive_cost=receive_cost),
        )
        outcome = sim.run([Task("go", cost=0.1) for _ in range(40)])
        assert sim.messages is not None
        stats = sim.messages.statistics()
        assert (stats.delivered, stats.in_flight) == (stats.sent, 0)
        return outcome.finished - outcome.started, stats.sent

    free, _ = run(0.0)
    charged, sent = run(0.05)
    assert sent > 0
    assert free == pytest.approx(2.0)
    assert charged >= (4.0 + 0.05 * sent) / 2 - 1e-9
    assert charged <= free + 0.05 * sent + 1e-9


def test_a_relay_that_leaves_while_it_receives_loses_no_message() -> None:
    """a1 leaves while messages wait in its receive work: each arrives once, whether a1
    finished receiving it or it went on from the agent that held it before."""
    names = [f"a{i}" for i in range(5)]

    def traffic(agent_id: str, task: Task, delivered: bool) -> Iterable[Send]:
        return [Send("a2", "keep", i, 10) for i in range(20)] if task.kind == "go" else []

    sim = Simulation(
        [AgentSpec(a) for a in names],
        handlers=HANDLERS,
        traffic=traffic,
        topology=TopologySettings("ring", bidirectional=False),
        links=LinkModel(latency=0.001, receive_cost=0.01),
        strategy="round-robin",
    )
    assert sim.messages is not None
    delivered: list[int] = []
    sim.messages.on_delivery(lambda d: delivered.append(d.message_id if d.error is None else -1))
    sim.remove_agent_at(0.005, "a1")
    sim.run([Task("go", cost=0.0)])
    stats = sim.messages.statistics()
    assert sorted(delivered) == list(range(1, 21))
    assert (stats.delivered, stats.in_flight, stats.dropped) == (20, 0, 0)

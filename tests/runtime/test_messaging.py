"""Messages between agents on real backends: counted as sent, routed as the topology says,
none lost or delivered twice when the topology changes while they travel."""

from __future__ import annotations

import asyncio
import itertools
import pickle
from collections import Counter
from collections.abc import Coroutine
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarmperf.core.errors import BackendError
from swarmperf.core.handlers import AgentContext
from swarmperf.core.model import AgentSpec, Task
from swarmperf.routing import TOPOLOGIES, Routes, TopologySettings
from swarmperf.runtime.backend import Backend
from swarmperf.runtime.local import LocalBackend
from swarmperf.runtime.messaging import Delivery
from swarmperf.runtime.process import ProcessBackend
from swarmperf.runtime.swarm import Swarm

# -- handlers the workers import from this module ---------------------------------------


def scatter(payload: list[tuple[str, Any]], agent: AgentContext) -> list[tuple[str, str]]:
    """Send each (receiver, body) of `payload`; return what was sent, as (sender, receiver)."""
    for receiver, body in payload:
        agent.send(receiver, "keep", body)
    return [(agent.id, receiver) for receiver, _ in payload]


def keep(payload: Any, agent: AgentContext) -> Any:
    return payload


def call(payload: tuple[str, int], agent: AgentContext) -> None:
    """Request/reply: ask `payload[0]` to answer, with this agent's id to reply to."""
    agent.send(payload[0], "answer", (agent.id, payload[1]))


def answer(payload: tuple[str, int], agent: AgentContext) -> None:
    agent.send(payload[0], "keep", (agent.id, payload[1] * 10))


SWITCHES = [TopologySettings(kind, fanout=2, cluster_size=2) for kind in TOPOLOGIES]
HANDLERS = {"scatter": scatter, "keep": keep, "call": call, "answer": answer}


def agents(n: int) -> list[AgentSpec]:
    return [AgentSpec(f"a{i}") for i in range(n)]


def run(test: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(test, 60.0))


# -- counts -------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 7),
    kind=st.sampled_from(TOPOLOGIES),
    sends=st.lists(
        st.lists(st.tuples(st.integers(0, 6), st.binary(max_size=64)), max_size=6), max_size=8
    ),
)
def test_the_matrix_counts_what_handlers_sent_and_the_hops_their_routes_take(
    n: int, kind: str, sends: list[list[tuple[int, bytes]]]
) -> None:
    topology = TopologySettings(kind, fanout=2, cluster_size=3)
    tasks = [Task("scatter", [(f"a{r % n}", body) for r, body in batch]) for batch in sends]

    async def test() -> None:
        async with Swarm(agents(n), handlers=HANDLERS, topology=topology) as swarm:
            results = await swarm.run(tasks)
            matrix, stats = swarm.messages.matrix(), swarm.messages.statistics()
        assert all(r.ok for r in results)
        sent = Counter(pair for result in results for pair in result.value)
        expected_bytes: Counter[tuple[str, str]] = Counter()
        for result, task in zip(results, tasks, strict=True):
            for receiver, body in task.payload:
                expected_bytes[result.agent or "", receiver] += len(pickle.dumps(body, 5))
        index = {agent: i for i, agent in enumerate(matrix.agents)}
        for (sender, receiver), count in sent.items():
            assert matrix.messages[index[sender], index[receiver]] == count
            assert matrix.bytes[index[sender], index[receiver]] == expected_bytes[sender, receiver]
        assert matrix.messages.sum() == stats.sent == stats.delivered == sum(sent.values())
        # Each message took its route's hops, and its route's interior relayed it.
        routes = Routes(topology, [f"a{i}" for i in range(n)])
        relayed = np.zeros(n, dtype=np.int64)
        for (sender, receiver), count in sent.items():
            for relay in routes.relays(sender, receiver):
                relayed[index[relay]] += count
        hops = sum(count * routes.hops(s, r) for (s, r), count in sent.items())
        assert matrix.links.sum() == stats.hops == hops
        assert list(matrix.relayed[:n]) == list(relayed)
        assert stats.in_flight == 0

    run(test())


def test_request_and_reply_cross_the_star_through_its_hub() -> None:
    async def test() -> None:
        replies: list[Delivery] = []
        topology = TopologySettings("star", hub="a0")
        async with Swarm(agents(4), handlers=HANDLERS, topology=topology) as swarm:
            swarm.messages.on_delivery(replies.append)
            await swarm.run([Task("call", ("a3", 7))])
            stats = swarm.messages.statistics()
        reply = next(d for d in replies if d.kind == "keep")
        assert reply.value == ("a3", 70)
        assert stats.sent == stats.delivered == 2
        assert stats.connections == 3
        # A call from a0 (the hub) is one hop each way; from another agent, two.
        caller = next(d for d in replies if d.kind == "answer").sender
        assert reply.hops == (1 if caller == "a0" else 2)

    run(test())


def test_a_message_to_no_such_agent_is_dropped_and_counted() -> None:
    async def test() -> None:
        ended: list[Delivery] = []
        async with Swarm(agents(2), handlers=HANDLERS) as swarm:
            swarm.messages.on_delivery(ended.append)
            await swarm.run([Task("scatter", [("nobody", b"x"), ("a1", b"y")])])
            stats = swarm.messages.statistics()
        assert (stats.sent, stats.delivered, stats.dropped) == (2, 1, 1)
        assert [d.error for d in ended if d.receiver == "nobody"] == [
            "dropped: the receiver is not an agent of the swarm"
        ]

    run(test())


def test_a_failing_receiver_fails_the_message_not_the_sender() -> None:
    async def test() -> None:
        ended: list[Delivery] = []
        async with Swarm(agents(3), handlers=HANDLERS) as swarm:
            swarm.messages.on_delivery(ended.append)
            (result,) = await swarm.run([Task("scatter", [("a1", b"x")])])
            swarm.handlers.register("keep", _refuse)
            await swarm.run([Task("scatter", [("a2", b"y")])])
        assert result.ok
        assert [d.error for d in ended] == [None, "ValueError: refused"]
        assert swarm.messages.statistics().failed == 1

    run(test())


def _refuse(payload: Any, agent: AgentContext) -> None:
    raise ValueError("refused")


def test_an_agent_without_a_message_layer_says_so() -> None:
    context = AgentContext("a")
    with pytest.raises(BackendError, match="cannot send messages"):
        context.send("b", "keep", 1)


# -- live topology switches ---------------------------------------------------------------


async def _switching(backend: Backend, n_agents: int, n_messages: int) -> None:
    """Send `n_messages` at once, switch topology after every few deliveries, and check
    that each arrives exactly once, and that some were on their way at a switch."""
    delivered: list[Any] = []
    topologies = itertools.cycle(SWITCHES)
    names = [f"a{i}" for i in range(n_agents)]
    # Each task sends to every agent, so whichever agent runs it, some messages need relays.
    batch = [(names[i % n_agents], i) for i in range(n_messages)]
    size = n_messages // n_agents
    tasks = [Task("scatter", batch[k : k + size]) for k in range(0, n_messages, size)]
    async with Swarm(
        agents(n_agents), backend=backend, handlers=HANDLERS, topology=next(topologies)
    ) as swarm:

        def on_delivery(delivery: Delivery) -> None:
            delivered.append(delivery.value)
            if len(delivered) % 5 == 0:
                swarm.set_topology(next(topologies))

        swarm.messages.on_delivery(on_delivery)
        await swarm.run(tasks)
        stats = swarm.messages.statistics()
    assert sorted(delivered) == list(range(n_messages)), "each message exactly once"
    assert stats.sent == stats.delivered == n_messages
    assert (stats.failed, stats.dropped, stats.in_flight) == (0, 0, 0)
    assert stats.rerouted > 0, "some messages were on their way when the topology changed"


def test_no_message_is_lost_or_doubled_across_live_switches_locally() -> None:
    run(_switching(LocalBackend(), 8, 400))


def test_no_message_is_lost_or_doubled_across_live_switches_between_processes() -> None:
    run(_switching(ProcessBackend(), 4, 120))


def test_messages_at_a_removed_relay_go_on_without_it() -> None:
    async def test() -> None:
        delivered: list[Any] = []
        topology = TopologySettings("ring", bidirectional=False)
        async with Swarm(agents(5), handlers=HANDLERS, topology=topology) as swarm:

            def on_delivery(delivery: Delivery) -> None:
                delivered.append(delivery.value)

            swarm.messages.on_delivery(on_delivery)
            swarm.submit(Task("scatter", [("a4", i) for i in range(50)]))
            await asyncio.sleep(0)  # the first hops are on their way
            await swarm.remove_agent("a2")
            await swarm.drain()
            stats = swarm.messages.statistics()
        assert sorted(delivered) == list(range(50))
        assert stats.delivered == 50

    run(test())


def test_actors_message_each_other_on_ray(ray_local: Any) -> None:
    from swarmperf.runtime.ray_backend import RayBackend

    async def test() -> None:
        ended: list[Delivery] = []
        topology = TopologySettings("ring")
        async with Swarm(
            agents(4), backend=RayBackend(), handlers=HANDLERS, topology=topology
        ) as swarm:
            swarm.messages.on_delivery(ended.append)
            await swarm.run([Task("call", ("a2", i)) for i in range(6)])
            stats, matrix = swarm.messages.statistics(), swarm.messages.matrix()
        replies = sorted(d.value[1] for d in ended if d.kind == "keep")
        assert replies == [i * 10 for i in range(6)]
        assert stats.sent == stats.delivered == 12
        routes = Routes(topology, [f"a{i}" for i in range(4)])
        hops = sum(
            int(count) * routes.hops(matrix.agents[i], matrix.agents[j])
            for (i, j), count in np.ndenumerate(matrix.messages)
        )
        assert stats.hops == hops

    run(test())


def test_a_large_swarms_summary_keeps_its_busiest_pairs() -> None:
    from swarmperf.runtime.messaging import DENSE_AGENTS, MessageBus

    bus = MessageBus(lambda starts: None, lambda: 0.0)
    n = DENSE_AGENTS + 4
    for i in range(n):
        bus.join(f"a{i}")
    for i in range(n):
        for _ in range(i % 3):
            bus.post(f"a{i}", "a0", "keep", b"x")
    matrix = bus.summary()["matrix"]
    assert "messages" not in matrix
    counts = [count for _, _, count, _ in matrix["pairs"]]
    assert counts == sorted(counts, reverse=True)
    assert sum(counts) == bus.statistics().sent
    assert matrix["pairs_total"] == len(matrix["pairs"])

"""An agent's unset prefetch: the backend's default in a swarm, 0 for a coordinator alone."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, ClassVar

from hypothesis import given
from hypothesis import strategies as st

from swarmperf import AgentContext, AgentSpec, Swarm, Task
from swarmperf.balancing import get_strategy
from swarmperf.runtime.backend import with_prefetch
from swarmperf.runtime.coordinator import Coordinator
from swarmperf.runtime.local import LocalBackend


class PrefetchingLocal(LocalBackend):
    """The local backend with a default prefetch, as a backend with costly calls has."""

    default_prefetch: ClassVar[int] = 3


class NoDefault:
    """A backend that says nothing about prefetch."""


async def hold(gate: asyncio.Event, agent: AgentContext) -> None:
    await gate.wait()


@given(
    prefetch=st.none() | st.integers(0, 64),
    default=st.none() | st.integers(0, 64),
    concurrency=st.integers(1, 8),
)
def test_only_an_unset_prefetch_takes_the_backend_default(
    prefetch: int | None, default: int | None, concurrency: int
) -> None:
    spec = AgentSpec("a", concurrency=concurrency, prefetch=prefetch, weight=2.0)
    backend: Any = NoDefault()
    if default is not None:
        backend.default_prefetch = default
    resolved = with_prefetch(spec, backend)
    expected = prefetch if prefetch is not None else (default or 0)
    assert resolved.prefetch == expected
    assert resolved.slots == concurrency + expected
    assert dataclasses.replace(resolved, prefetch=prefetch) == spec  # nothing else changed


def test_a_coordinator_alone_counts_an_unset_prefetch_as_0() -> None:
    coordinator = Coordinator(get_strategy("least-loaded"))
    coordinator.add_agent(AgentSpec("a", concurrency=2))
    assert coordinator.agent("a").slots == 2
    coordinator.limit_slots("a", 1)
    coordinator.limit_slots("a", None)  # back to its own number
    assert coordinator.agent("a").slots == 2


async def bound_at_once(backend: LocalBackend, agents: list[AgentSpec]) -> dict[str, Any]:
    """How many held tasks each agent is given at once, and its spec as the swarm keeps it."""
    gate = asyncio.Event()
    swarm = Swarm(agents, strategy="least-loaded", backend=backend, handlers={"hold": hold})
    async with swarm:
        tasks = [Task("hold", gate) for _ in range(40)]
        for task in tasks:
            swarm.submit(task)
        held = {a.id: swarm.coordinator.agent(a.id).in_flight for a in agents}
        specs = {a.id: swarm.agent_spec(a.id) for a in agents}
        gate.set()
        await swarm.drain()
        results = swarm.results
    assert sorted(r.task_id for r in results) == sorted(t.id for t in tasks)
    assert all(r.ok for r in results)
    return {"held": held, "specs": specs}


def test_a_swarm_gives_unset_prefetch_the_backend_default_and_keeps_set_ones() -> None:
    agents = [AgentSpec("unset"), AgentSpec("none", prefetch=0), AgentSpec("two", prefetch=2)]
    seen = asyncio.run(bound_at_once(PrefetchingLocal(), agents))
    assert seen["held"] == {"unset": 1 + 3, "none": 1, "two": 1 + 2}
    assert [seen["specs"][a.id].prefetch for a in agents] == [3, 0, 2]


def test_the_local_backend_keeps_binding_late_by_default() -> None:
    agents = [AgentSpec("a"), AgentSpec("b", concurrency=2)]
    seen = asyncio.run(bound_at_once(LocalBackend(), agents))
    assert seen["held"] == {"a": 1, "b": 2}
    assert [seen["specs"][a.id].prefetch for a in agents] == [0, 0]

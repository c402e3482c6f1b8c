"""A swarm's restarts, without Ray: a backend whose agents may refuse to start (as a Ray
actor pinned to a lost node does) shows that a restarted agent gets no task until it is
up, that each attempt is counted once, and that nothing is tried after giving up."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import ClassVar

from swarmperf.core.errors import AgentCrashed, ConfigError
from swarmperf.core.events import (
    AGENT_GIVEN_UP,
    AGENT_LOST,
    AGENT_RESTART_FAILED,
    AGENT_RESTARTED,
)
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.core.model import AgentSpec, Task
from swarmperf.resilience.restart import RestartPolicy
from swarmperf.runtime.backend import CompletionSink
from swarmperf.runtime.swarm import Swarm


class FlakyBackend:
    """Agents that hold their tasks until `finish`, die on `kill`, and refuse to start while
    their id is in `refuse` (reporting the loss first, as the Ray backend does). Every task
    given to an agent that is not up is recorded in `misdirected`."""

    name: ClassVar[str] = "flaky"

    def __init__(self) -> None:
        self.transfer_cost = 0.0
        self.refuse: set[str] = set()
        self.up: set[str] = set()
        self.held: dict[str, list[Task]] = {}
        self.misdirected: list[tuple[str, str]] = []
        self.starts: Counter[str] = Counter()
        self.sink: CompletionSink | None = None

    async def start(self, sink: CompletionSink, handlers: HandlerRegistry) -> None:
        self.sink = sink

    async def stop(self) -> None:
        self.up.clear()

    def begin(self, epoch: float) -> None:
        pass

    async def add_agent(self, spec: AgentSpec) -> None:
        if spec.id in self.up:
            raise ConfigError("agent.id", spec.id, "unique")
        self.starts[spec.id] += 1
        await asyncio.sleep(0.001)  # starting takes a while: the swarm goes on meanwhile
        if spec.id in self.refuse:
            assert self.sink is not None
            self.sink.agent_lost(spec.id, [], "could not be placed")
            raise AgentCrashed(spec.id, "could not be placed")
        self.up.add(spec.id)

    async def remove_agent(self, agent_id: str) -> None:
        self.up.discard(agent_id)

    def run(self, starts: Sequence[tuple[str, Task]]) -> None:
        for agent_id, task in starts:
            if agent_id not in self.up:
                self.misdirected.append((agent_id, task.id))
            self.held.setdefault(agent_id, []).append(task)

    def finish(self) -> None:
        assert self.sink is not None
        now = time.perf_counter()
        for agent_id in list(self.held):
            tasks = self.held.pop(agent_id)
            if agent_id in self.up and tasks:
                self.sink.tasks_done(agent_id, [(t, now, now, None, None) for t in tasks])

    def kill(self, agent_id: str) -> None:
        assert self.sink is not None
        self.up.discard(agent_id)
        self.sink.agent_lost(agent_id, self.held.pop(agent_id, []), "killed")


async def until(condition: Callable[[], bool], backend: FlakyBackend) -> None:
    """Finish what the agents hold until `condition` holds (ordered by events, not time)."""
    for _ in range(10_000):
        if condition():
            return
        backend.finish()
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


def kinds_for(swarm: Swarm, agent: str) -> list[str]:
    return [e.kind for e in swarm.events if e.subject == agent and e.kind.startswith("agent-")]


def test_an_agent_that_cannot_start_again_is_tried_once_per_attempt_then_given_up() -> None:
    async def test() -> None:
        backend = FlakyBackend()
        policy = RestartPolicy(max_restarts=3, base_delay=0.0, max_delay=0.0)
        swarm = Swarm(
            [AgentSpec("a", prefetch=4), AgentSpec("b", prefetch=4)],
            strategy="round-robin",
            backend=backend,
            restart=policy,
        )
        async with swarm:
            tasks = [Task("noop") for _ in range(40)]
            for task in tasks[:20]:
                swarm.submit(task)
            backend.refuse.add("a")
            backend.kill("a")
            for task in tasks[20:]:
                swarm.submit(task)
            await until(lambda: AGENT_GIVEN_UP in kinds_for(swarm, "a"), backend)
            await until(lambda: swarm.coordinator.idle, backend)
        assert backend.misdirected == []  # no task went to an agent that was not up
        assert sorted(r.task_id for r in swarm.results) == sorted(t.id for t in tasks)
        assert kinds_for(swarm, "a") == [
            AGENT_LOST,
            AGENT_RESTART_FAILED,
            AGENT_RESTART_FAILED,
            AGENT_RESTART_FAILED,
            AGENT_GIVEN_UP,
        ]
        failed = [e.detail["attempt"] for e in swarm.events if e.kind == AGENT_RESTART_FAILED]
        assert failed == [1, 2, 3]
        assert backend.starts["a"] == 1 + 3  # the first start, then one per attempt
        assert swarm.lost_agents == [("a", "killed")]

    asyncio.run(asyncio.wait_for(test(), 30.0))


def test_a_restart_that_works_at_the_second_attempt_counts_two() -> None:
    async def test() -> None:
        backend = FlakyBackend()
        policy = RestartPolicy(max_restarts=5, base_delay=0.0, max_delay=0.0)
        swarm = Swarm(
            [AgentSpec("a"), AgentSpec("b")],
            backend=backend,
            restart=policy,
            strategy="round-robin",
        )
        async with swarm:
            backend.refuse.add("a")
            backend.kill("a")
            await until(lambda: AGENT_RESTART_FAILED in kinds_for(swarm, "a"), backend)
            backend.refuse.clear()
            await until(lambda: AGENT_RESTARTED in kinds_for(swarm, "a"), backend)
            tasks = [Task("noop") for _ in range(10)]
            for task in tasks:
                swarm.submit(task)
            await until(lambda: swarm.coordinator.idle, backend)
        assert kinds_for(swarm, "a") == [AGENT_LOST, AGENT_RESTART_FAILED, AGENT_RESTARTED]
        restarted = [e for e in swarm.events if e.kind == AGENT_RESTARTED]
        assert restarted[0].detail["attempt"] == 2
        assert {r.agent for r in swarm.results} == {"a", "b"}  # back at work once up
        assert backend.misdirected == []

    asyncio.run(asyncio.wait_for(test(), 30.0))


def test_a_swarm_whose_agents_all_give_up_stops_waiting() -> None:
    async def test() -> None:
        backend = FlakyBackend()
        swarm = Swarm(
            [AgentSpec("a")], backend=backend, restart=RestartPolicy(max_restarts=1, base_delay=0)
        )
        async with swarm:
            swarm.submit(Task("noop"))
            backend.refuse.add("a")
            backend.kill("a")
            waiting = asyncio.create_task(swarm.drain())
            await until(lambda: waiting.done(), backend)
            assert waiting.exception() is not None  # NoAgents: nobody left to run it
            swarm.cancel_pending("no agents")

    asyncio.run(asyncio.wait_for(test(), 30.0))

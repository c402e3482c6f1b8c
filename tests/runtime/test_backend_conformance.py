"""What every registered backend promises: agents join, leave and crash under load, a
drain waits for all that was submitted, and every task gets exactly one result.

Each test runs over every name in the backend registry, so a new backend is covered as
soon as it is registered. Real-time backends run in a `Swarm`; a virtual-time one runs in
a `Simulation`, with the same agents, tasks and changes at the same points of the run
(after the n-th result). Ray runs on the session's local Ray (skipped without Ray, failed
in CI), and its cases stay small: an actor takes about a second to start.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from swarmperf.app.backends import BACKENDS, backend_entry, make_backend
from swarmperf.core.errors import ConfigError
from swarmperf.core.events import AGENT_RESTARTED
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.core.model import AgentSpec, Task, TaskResult, TaskStatus
from swarmperf.resilience.restart import RestartPolicy
from swarmperf.runtime.backend import Backend
from swarmperf.runtime.swarm import Swarm
from swarmperf.sim.backend import SimBackend
from swarmperf.sim.simulation import Simulation
from tests.runtime.test_process import HANDLERS, RecordingSink

RESTART_DELAY = 0.05


@pytest.fixture(params=sorted(BACKENDS))
def name(request: pytest.FixtureRequest) -> str:
    """A registered backend's name; for ray, once the session's local Ray is up."""
    if request.param == "ray":
        request.getfixturevalue("ray_local")
    return str(request.param)


# -- crashing one agent, the way each backend can ------------------------------------------


def _kill_worker(backend: Backend, agent_id: str) -> None:
    from swarmperf.runtime.process import ProcessBackend

    assert isinstance(backend, ProcessBackend)
    os.kill(backend.pid(agent_id), signal.SIGKILL)


def _kill_actor(backend: Backend, agent_id: str) -> None:
    import ray

    from swarmperf.runtime.ray_backend import RayBackend

    assert isinstance(backend, RayBackend)
    ray.kill(backend.actor(agent_id))


def _crash_sim(backend: Backend, agent_id: str) -> None:
    assert isinstance(backend, SimBackend)
    backend.kill(agent_id, "crashed (simulated)")


# name -> (crash one agent now, a word its loss is reported with). Local agents are
# coroutines of this process: there is no way to crash one alone.
CRASHES: dict[str, tuple[Callable[[Backend, str], None], str]] = {
    "process": (_kill_worker, "SIGKILL"),
    "ray": (_kill_actor, "ray.kill"),
    "sim": (_crash_sim, "crashed (simulated)"),
}


def crash_of(name: str) -> tuple[Callable[[Backend, str], None], str]:
    if name not in CRASHES:
        pytest.skip(f"the {name} backend has no way to crash one agent alone")
    return CRASHES[name]


def test_every_registered_backend_has_a_way_to_crash_or_says_why_not() -> None:
    assert set(CRASHES) == set(BACKENDS) - {"local"}


# -- a run with changes along the way, on any backend ---------------------------------------


@dataclass
class Change:
    """After the `after`-th result: add `agent`, remove or crash `agent_id`."""

    after: int
    what: str  # "add", "remove" or "crash"
    agent: AgentSpec | None = None
    agent_id: str = ""


@dataclass
class Outcome:
    phases: list[list[TaskResult]]
    lost_agents: list[tuple[str, str]]
    events: Counter[str] = field(default_factory=Counter)

    @property
    def results(self) -> list[TaskResult]:
        return [r for phase in self.phases for r in phase]


def sleeps(n: int, seconds: float = 0.01) -> list[Task]:
    return [Task("sleep", seconds) for _ in range(n)]


def run_phases(
    name: str,
    agents: Sequence[AgentSpec],
    phases: Sequence[Sequence[Task]],
    changes: Sequence[Change] = (),
    *,
    restart: bool = False,
) -> Outcome:
    """Run each phase's tasks to the end, one phase after the other, making `changes` as
    results come in. A change's agent work (joining, leaving) is done before the next phase."""
    if backend_entry(name).virtual_time:
        return _simulated(agents, phases, changes, restart=restart)
    return asyncio.run(asyncio.wait_for(_real(name, agents, phases, changes, restart), 60.0))


async def _real(
    name: str,
    agents: Sequence[AgentSpec],
    phases: Sequence[Sequence[Task]],
    changes: Sequence[Change],
    restart: bool,
) -> Outcome:
    backend = make_backend(name)
    swarm = Swarm(
        agents,
        backend=backend,
        strategy="round-robin",
        handlers=HANDLERS,
        restart=RestartPolicy(base_delay=RESTART_DELAY) if restart else None,
    )
    jobs: list[asyncio.Task[None]] = []
    seen = 0
    restarted = asyncio.Event()

    def on_result(_: TaskResult) -> None:
        nonlocal seen
        seen += 1
        for change in changes:
            if change.after != seen:
                continue
            if change.what == "add":
                assert change.agent is not None
                jobs.append(asyncio.create_task(swarm.add_agent(change.agent)))
            elif change.what == "remove":
                jobs.append(asyncio.create_task(swarm.remove_agent(change.agent_id)))
            else:
                crash_of(name)[0](backend, change.agent_id)

    swarm.on_result(on_result)
    swarm.on_event(lambda e: restarted.set() if e.kind == AGENT_RESTARTED else None)
    done: list[list[TaskResult]] = []
    async with swarm:
        for tasks in phases:
            done.append(list(await swarm.run(tasks)))
            await asyncio.gather(*jobs)
            if swarm.lost_agents and restart:
                async with asyncio.timeout(20):
                    await restarted.wait()
        assert swarm.coordinator.pending == swarm.coordinator.running == 0
    return Outcome(done, list(swarm.lost_agents), Counter(swarm.event_counts))


def _simulated(
    agents: Sequence[AgentSpec],
    phases: Sequence[Sequence[Task]],
    changes: Sequence[Change],
    restart: bool,
) -> Outcome:
    # Each phase arrives long after the one before has finished, in virtual seconds.
    gap = 1_000.0
    sim = Simulation(agents, strategy="round-robin", handlers=HANDLERS)
    seen = 0

    def on_result(_: TaskResult) -> None:
        nonlocal seen
        seen += 1
        now = sim.clock.now
        for change in changes:
            if change.after != seen:
                continue
            if change.what == "add":
                assert change.agent is not None
                sim.add_agent_at(now, change.agent)
            elif change.what == "remove":
                sim.remove_agent_at(now, change.agent_id)
            else:
                sim.crash_agent_at(
                    now, change.agent_id, repair_after=RESTART_DELAY if restart else None
                )

    sim.on_result(on_result)
    tasks = [task for phase in phases for task in phase]
    offsets = [i * gap for i, phase in enumerate(phases) for _ in phase]
    outcome = sim.run(tasks, offsets)
    assert sim.coordinator.pending == sim.coordinator.running == 0
    by_id = {r.task_id: r for r in outcome.results}
    assert len(by_id) == len(outcome.results)  # none twice, so `by_id` keeps them all
    return Outcome(
        [[by_id[t.id] for t in phase if t.id in by_id] for phase in phases],
        list(outcome.lost_agents),
        Counter(outcome.event_counts),
    )


def exactly_once(results: Sequence[TaskResult], tasks: Sequence[Task]) -> None:
    assert sorted(r.task_id for r in results) == sorted(t.id for t in tasks)


# -- the promises ------------------------------------------------------------------------


def test_a_drain_waits_until_every_task_has_exactly_one_result(name: str) -> None:
    agents = [AgentSpec("a", prefetch=2), AgentSpec("b", concurrency=2)]
    first, second = sleeps(30), sleeps(10, 0.0)
    outcome = run_phases(name, agents, [first, second])
    exactly_once(outcome.phases[0], first)
    exactly_once(outcome.phases[1], second)
    assert all(r.ok for r in outcome.results)
    assert {r.agent for r in outcome.results} == {"a", "b"}
    assert outcome.lost_agents == []


def test_a_failed_handler_leaves_no_value_sync_or_async(name: str) -> None:
    if backend_entry(name).virtual_time:
        pytest.skip(f"the {name} backend runs no handlers")
    tasks = [Task(kind, payload="no luck") for kind in ("refuse", "refuse_later") * 2]
    outcome = run_phases(name, [AgentSpec("a", concurrency=2)], [tasks])
    exactly_once(outcome.results, tasks)
    for result in outcome.results:
        assert result.status is TaskStatus.FAILED
        assert result.error is not None
        assert "ValueError: no luck" in result.error
        assert result.value is None


def test_agents_join_and_leave_under_load(name: str) -> None:
    agents = [AgentSpec("a"), AgentSpec("b", concurrency=2)]
    load, after = sleeps(60), sleeps(12)
    changes = [
        Change(5, "add", agent=AgentSpec("c")),
        Change(10, "remove", agent_id="a"),
    ]
    outcome = run_phases(name, agents, [load, after], changes)
    exactly_once(outcome.results, load + after)
    assert all(r.ok for r in outcome.results)
    assert outcome.lost_agents == []  # leaving is not crashing: nothing was handed back
    assert "a" in {r.agent for r in outcome.phases[0]}
    # Once they had happened, the removed agent ran nothing more and the new one took work.
    assert {r.agent for r in outcome.phases[1]} == {"b", "c"}


def test_a_crashed_agent_loses_no_task_and_comes_back(name: str) -> None:
    _, word = crash_of(name)
    agents = [AgentSpec("a", prefetch=3), AgentSpec("b", prefetch=3)]
    load, after = sleeps(40), sleeps(8)
    outcome = run_phases(
        name, agents, [load, after], [Change(3, "crash", agent_id="a")], restart=True
    )
    exactly_once(outcome.results, load + after)
    assert all(r.ok for r in outcome.results)  # the crashed agent's tasks ran elsewhere
    [(agent_id, reason)] = outcome.lost_agents
    assert agent_id == "a"
    assert word in reason
    assert outcome.events[AGENT_RESTARTED] == 1
    assert "a" in {r.agent for r in outcome.phases[1]}  # the restarted agent works again


# -- the backend on its own: what a crash hands back ----------------------------------------


class Driver:
    """One backend, started with a recording sink, and a way to let it make progress."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.backend = make_backend(name)
        self.sink = RecordingSink()

    async def start(self, *agents: AgentSpec) -> None:
        await self.backend.start(self.sink, HandlerRegistry(HANDLERS))
        for agent in agents:
            await self.backend.add_agent(agent)

    async def until(self, condition: Callable[[], bool]) -> None:
        if isinstance(self.backend, SimBackend):
            # Virtual time moves only when its engine runs: one instant at a time.
            engine = self.backend.engine
            while not condition():
                when = engine.next_time()
                assert when is not None, "nothing left to happen, and the condition is false"
                engine.run(until=when)
        else:
            await self.sink.until(condition, timeout=30.0)

    async def run_out(self) -> None:
        """In virtual time, let everything still scheduled happen (a dead agent's too)."""
        if isinstance(self.backend, SimBackend):
            self.backend.engine.run()


def test_a_crashed_agent_hands_back_exactly_the_tasks_it_had_not_reported(name: str) -> None:
    crash, word = crash_of(name)

    async def test() -> None:
        driver = Driver(name)
        backend, sink = driver.backend, driver.sink
        await driver.start(AgentSpec("a"), AgentSpec("b"))
        try:
            first = [Task("echo", i) for i in range(3)]
            backend.run([("a", t) for t in first])
            await driver.until(lambda: len(sink.done["a"]) == 3)
            stuck = [Task("sleep", 60.0), Task("echo", 3)]
            later = [Task("echo", 4)]
            backend.run([("a", t) for t in stuck])
            backend.run([("a", t) for t in later])
            crash(backend, "a")
            await driver.until(lambda: bool(sink.lost))

            assert sink.tasks("a") == first
            [(agent_id, in_flight, reason)] = sink.lost
            assert agent_id == "a"
            assert in_flight == stuck + later  # all of them, in the order they were given
            assert word in reason
            if name in ("process", "ray"):  # these check every start before sending any
                with pytest.raises(ConfigError, match="'a'"):
                    backend.run([("a", Task("noop"))])
            backend.run([("b", Task("echo", 5))])
            await driver.until(lambda: len(sink.done["b"]) == 1)
            assert sink.done["b"][0][3:] == (None, 5)
            await driver.run_out()
            assert len(sink.done["a"]) == 3  # nothing was reported twice
        finally:
            await backend.stop()

    asyncio.run(asyncio.wait_for(test(), 60.0))


# -- the registry ------------------------------------------------------------------------


def test_each_backend_is_made_under_its_registered_name(name: str) -> None:
    backend: Any = make_backend(name)
    assert backend.name == name
    assert backend.transfer_cost >= 0

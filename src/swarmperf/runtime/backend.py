"""The `Backend` protocol: where and how agents execute the tasks the coordinator binds.

The contract is free of any event loop's details: methods are awaitables or plain calls,
and completions flow back through a `CompletionSink`. Implementations: `local` (async
callables in this process), `process` (worker processes); others plug in the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Protocol, TypeVar

from swarmperf.balancing.agents import EWMA_ALPHA
from swarmperf.core.errors import ConfigError
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.core.model import AgentSpec, Task

# One finished task: (task, started, finished, error or None, value). Times are seconds on
# the swarm's clock (time.perf_counter: CLOCK_MONOTONIC, the same in every process here).
Done = tuple[Task, float, float, str | None, Any]


class CompletionSink(Protocol):
    """Receives what backends report. Called on the swarm's own thread and loop."""

    def tasks_done(self, agent_id: str, done: Sequence[Done]) -> None:
        """Tasks that `agent_id` finished, in the order it finished them."""
        ...

    def agent_lost(self, agent_id: str, in_flight: list[Task], reason: str) -> None:
        """`agent_id` died; `in_flight` are the tasks it had not finished."""
        ...


class Backend(Protocol):
    """Where agents run. A backend may also have `default_prefetch` (an int, 0 if absent):
    the prefetch a swarm gives its agents whose spec leaves it unset (`with_prefetch`)."""

    name: ClassVar[str]
    # Seconds it takes to move one task to another agent; work stealing weighs it.
    transfer_cost: float

    async def start(self, sink: CompletionSink, handlers: HandlerRegistry) -> None: ...

    async def stop(self) -> None:
        """Stop every agent. Callers drain first; tasks still running are abandoned."""
        ...

    async def add_agent(self, spec: AgentSpec) -> None: ...

    def begin(self, epoch: float) -> None:
        """The run begins at `epoch` on the swarm's clock, once its first agents have all
        started: fault windows count from it on every agent, now and added later. Called
        before any task."""
        ...

    async def remove_agent(self, agent_id: str) -> None:
        """Retire `agent_id` once the tasks already given to it have finished."""
        ...

    def run(self, starts: Sequence[tuple[str, Task]]) -> None:
        """Start each task on its agent. Must not block; results come to the sink."""
        ...


def with_prefetch(spec: AgentSpec, backend: object) -> AgentSpec:
    """`spec` as a swarm on `backend` runs it: an unset `prefetch` becomes the backend's
    `default_prefetch` (0 for a backend without one); a prefetch the spec sets is kept."""
    if spec.prefetch is not None:
        return spec
    default: int = getattr(backend, "default_prefetch", 0)
    return replace(spec, prefetch=default)


class RemoteAgent(Protocol):
    """What `batches` needs of a backend's record of one agent."""

    @property
    def id(self) -> str: ...

    @property
    def closing(self) -> bool: ...


A = TypeVar("A", bound=RemoteAgent)


def timeout_for(timeouts: Mapping[str, float], kind: str) -> float | None:
    """A task kind's bound in seconds from per-kind `timeouts` (`""`: every other kind)."""
    return timeouts.get(kind, timeouts.get(""))


def watch_interval(timeouts: Mapping[str, float]) -> float:
    """How often a watchdog looks for tasks past their bound: a tenth of the shortest one,
    between 10 ms and 0.5 s, so a task overruns by at most about a tenth."""
    return min(max(min(timeouts.values()) / 10, 0.01), 0.5)


def timeout_error(limit: float) -> str:
    """The error of a task that ran past its bound, the same on every backend."""
    return f"TimeoutError: timed out after {limit:g}s"


class Watchdog:
    """Runs `check` on the loop every `watch_interval(timeouts)` from `start` until `stop`:
    how a backend finds the tasks that ran past their bound."""

    def __init__(self, timeouts: Mapping[str, float], check: Callable[[], None]) -> None:
        self._every = watch_interval(timeouts)
        self._check = check
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle = loop.call_later(self._every, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        self._check()
        if self._handle is not None and self._loop is not None:
            self._handle = self._loop.call_later(self._every, self._tick)


def group_starts(starts: Sequence[tuple[str, Task]]) -> dict[str, list[Task]]:
    """The coordinator's starts by agent, each agent's tasks in start order (one batch each)."""
    groups: dict[str, list[Task]] = {}
    for agent_id, task in starts:
        tasks = groups.get(agent_id)
        if tasks is None:
            groups[agent_id] = [task]
        else:
            tasks.append(task)
    return groups


def batches(
    starts: Sequence[tuple[str, Task]], agents: Mapping[str, A]
) -> list[tuple[A, list[Task]]]:
    """The starts as one batch per agent, every agent checked before anything is sent: a
    start for an unknown agent, or one being removed, raises `ConfigError` and sends none."""
    groups = group_starts(starts)
    found: list[tuple[A, list[Task]]] = []
    for agent_id, tasks in groups.items():
        agent = agents.get(agent_id)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No live agent is called {agent_id!r}.")
        if agent.closing:
            raise ConfigError("agent", agent.id, "The agent is being removed.")
        found.append((agent, tasks))
    return found


class MeasuredTransfer:
    """`transfer_cost` for backends that measure it: the first sample, then an EWMA."""

    transfer_cost: float
    _measured: bool = False

    def _observe_transfer(self, sample: float) -> None:
        if self._measured:
            self.transfer_cost += EWMA_ALPHA * (sample - self.transfer_cost)
        else:
            self.transfer_cost, self._measured = sample, True

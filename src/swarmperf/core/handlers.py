"""Task handlers: named functions that agents run. Tasks name them; no code travels.

A handler takes `(payload, agent)` where `agent` is an `AgentContext`, and returns a value
or an awaitable. Handlers for the `process` backend must be importable module-level
functions, since worker processes look them up by name in their own registry.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from swarmperf.core.errors import BackendError, InjectedFault, TaskFailure, UnknownName
from swarmperf.core.model import AgentSpec, Fault

# Where an agent's messages go: (sender, receiver, kind, payload), given by its backend.
Outbox = Callable[[str, str, str, Any], None]


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What a handler may know about the agent running it.

    `slowdown` and `faults` shape the built-in work handlers of synthetic agents; `epoch`
    is when the swarm's run began, every agent started (time.perf_counter), which fault
    windows count from on every backend. `outbox` carries its messages (`send`).
    """

    id: str
    slowdown: float = 1.0
    faults: tuple[Fault, ...] = ()
    epoch: float = 0.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    outbox: Outbox | None = field(default=None, compare=False, repr=False)

    @classmethod
    def for_agent(cls, spec: AgentSpec, epoch: float, outbox: Outbox | None = None) -> AgentContext:
        # Seeded by the agent's id: the same agent fails on the same draws every run.
        seed = zlib.crc32(spec.id.encode())
        return cls(spec.id, spec.slowdown, spec.faults, epoch, random.Random(seed), outbox)

    def send(self, to: str, kind: str, payload: Any = None) -> None:
        """Send `payload` to agent `to`, where the handler `kind` runs with it as a
        follow-up task. The swarm's topology routes it (relays forward it on the way); the
        swarm counts it by sender, receiver and bytes. A message to an agent the swarm does
        not have is dropped, and counted. Payloads travel pickled between processes."""
        if self.outbox is None:
            raise BackendError(
                f"agent {self.id!r} cannot send messages: its backend carries none "
                "(local and process do)"
            )
        self.outbox(self.id, to, kind, payload)

    def work_factor(self) -> float:
        """How many times longer work takes now; raises `InjectedFault` when a fault
        window's error rate says this call fails."""
        factor = self.slowdown
        if self.faults:
            elapsed = time.perf_counter() - self.epoch
            for fault in self.faults:
                if fault.active(elapsed):
                    if fault.error_rate and self.rng.random() < fault.error_rate:
                        raise InjectedFault(
                            f"agent {self.id!r} fails {fault.error_rate:.0%} of its calls "
                            f"from {fault.start:g}s"
                        )
                    factor *= fault.slowdown
        return factor


Handler = Callable[[Any, AgentContext], Any]


def noop(payload: Any, agent: AgentContext) -> None:
    """Nothing at all, not even fault injection: the floor for overhead measurements."""


def echo(payload: Any, agent: AgentContext) -> Any:
    if agent.faults:
        agent.work_factor()
    return payload


async def sleep(payload: Any, agent: AgentContext) -> None:
    """Wait `payload` seconds (times the agent's slowdown): I/O-bound work, e.g. an API call."""
    await asyncio.sleep(float(payload) * agent.work_factor())


def spin(payload: Any, agent: AgentContext) -> int:
    """Burn CPU for `payload` seconds (times the agent's slowdown): CPU-bound work."""
    end = time.perf_counter() + float(payload) * agent.work_factor()
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def relay(payload: Any, agent: AgentContext) -> Any:
    """Forward a message: what a relay agent runs for each message it passes on (as `echo`,
    faults included, so a faulty relay delays or loses what goes through it)."""
    if agent.faults:
        agent.work_factor()
    return payload


def fail(payload: Any, agent: AgentContext) -> None:
    raise TaskFailure(str(payload) if payload is not None else "task failed on purpose")


BUILTIN_HANDLERS: dict[str, Handler] = {
    "noop": noop,
    "echo": echo,
    "sleep": sleep,
    "spin": spin,
    "fail": fail,
    "relay": relay,
}


class HandlerRegistry(Mapping[str, Handler]):
    """Handlers by name, with whether each is a coroutine function (checked once, here)."""

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = dict(BUILTIN_HANDLERS)
        self._is_async: dict[str, bool] = {}
        for name, fn in (handlers or {}).items():
            self.register(name, fn)
        for name, fn in BUILTIN_HANDLERS.items():
            self._is_async[name] = inspect.iscoroutinefunction(fn)

    def register(self, name: str, fn: Handler) -> None:
        self._handlers[name] = fn
        self._is_async[name] = inspect.iscoroutinefunction(fn)

    def resolve(self, name: str) -> tuple[Handler, bool]:
        try:
            return self._handlers[name], self._is_async[name]
        except KeyError:
            raise UnknownName("task kind", name, self._handlers) from None

    def __getitem__(self, name: str) -> Handler:
        return self.resolve(name)[0]

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)

"""Exceptions raised by swarmperf.

SwarmError
├── ConfigError            bad spec, option or argument (CLI exit code 2)
│   └── UnknownName        a registry lookup missed; lists the choices
├── DispatchError
│   ├── Backpressure       admission control refused a task (queue full)
│   │   ├── QuotaExceeded  a tenant's quota is used up
│   │   └── BulkheadFull   a task kind's bulkhead is full (runtime.bulkheads)
│   ├── NoAgents           nothing to run tasks on
│   ├── TaskLost           a task could not be delivered or re-queued
│   ├── CircuitOpen        a breaker refuses calls for now (resilience.breaker)
│   └── RateLimited        a provider throttled a call (resilience.ratelimit)
├── BackendError
│   └── AgentCrashed       a worker died; its in-flight tasks were re-queued
└── StoreError             the store cannot be read or written (damaged, read-only, locked)
"""

from __future__ import annotations

import itertools
import reprlib
from collections.abc import Iterable

PREVIEW_CHARS = 80


class _Preview(reprlib.Repr):
    """`repr` that stops early: a few items, a few levels, short strings and numbers."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxtuple = self.maxlist = self.maxarray = self.maxdeque = 6
        self.maxdict = self.maxset = self.maxfrozenset = 6
        self.maxstring = PREVIEW_CHARS
        self.maxlong = 40
        self.maxother = PREVIEW_CHARS

    def repr_dict(self, x: dict[object, object], level: int) -> str:
        # In the order written, like `repr`, not sorted as reprlib does.
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [
            f"{self.repr1(key, level - 1)}: {self.repr1(x[key], level - 1)}"
            for key in itertools.islice(x, self.maxdict)
        ]
        if len(x) > self.maxdict:
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"

    def repr_int(self, x: int, level: int) -> str:
        # `repr` of an integer of thousands of digits is slow, then refused by Python.
        if x.bit_length() > 128:
            return f"<a number of about {int(x.bit_length() * 0.30103) + 1} digits>"
        return super().repr_int(x, level)


_PREVIEW = _Preview()


def preview(value: object, limit: int = PREVIEW_CHARS) -> str:
    """A `repr` of `value` for a message, at most `limit` characters, however big the value.

    Built from a bounded look at the value (reprlib), never from its full `repr`, which for
    an expanded YAML alias bomb or a huge number would take minutes or fail.
    """
    try:
        text = _PREVIEW.repr(value)
    except Exception:  # a broken __repr__ must not hide the message it belongs to
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SwarmError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(SwarmError, ValueError):
    """A setting is invalid. The message names the field, the bad value and the fix."""

    def __init__(self, field: str, value: object, fix: str) -> None:
        super().__init__(f"{field}: {preview(value)} is not valid. {fix}")
        self.field = field
        self.value = value
        self.fix = fix


class UnknownName(ConfigError, LookupError):
    """A name is not in a registry."""

    def __init__(self, what: str, name: object, choices: Iterable[str]) -> None:
        listed = ", ".join(sorted(choices))
        super().__init__(what, name, f"Choose one of: {listed}.")
        self.choices = sorted(choices)


class DispatchError(SwarmError):
    pass


class Backpressure(DispatchError):
    """The queue is full: the caller should slow down or retry later."""

    def __init__(self, task_id: str, queued: int, limit: int) -> None:
        super().__init__(
            f"Task {task_id!r} rejected: {queued} tasks are queued and the limit is {limit}. "
            "Submit more slowly, add agents, or raise queue.max_queued."
        )
        self.task_id = task_id
        self.queued = queued
        self.limit = limit


class QuotaExceeded(Backpressure):
    def __init__(self, task_id: str, tenant: str, queued: int, quota: int) -> None:
        DispatchError.__init__(
            self,
            f"Task {task_id!r} rejected: tenant {tenant!r} has {queued} tasks queued and its "
            f"quota is {quota}. Wait for some to finish or raise queue.tenant_quotas[{tenant!r}].",
        )
        self.task_id = task_id
        self.queued = queued
        self.limit = quota
        self.tenant = tenant


class NoAgents(DispatchError):
    def __init__(self) -> None:
        super().__init__("The swarm has no agents. Add at least one agent before submitting.")


class TaskLost(DispatchError):
    pass


class BackendError(SwarmError):
    pass


class AgentCrashed(BackendError):
    def __init__(self, agent: str, reason: str) -> None:
        super().__init__(f"Agent {agent!r} crashed: {reason}")
        self.agent = agent
        self.reason = reason


class StoreError(SwarmError):
    """The store cannot be used as asked. The message names the file, the problem and the fix."""

    def __init__(self, path: object, problem: str, fix: str) -> None:
        super().__init__(f"store {path}: {problem}. {fix}")
        self.path = path
        self.problem = problem
        self.fix = fix

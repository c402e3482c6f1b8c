"""Exceptions raised by swarmperf: the whole tree, and where each class is defined.

Classes without a module named are defined here. The few defined elsewhere sit in the layer
that raises them, which the core must not import; `tests/core/test_errors.py` holds every
exception class of the package to this tree.

SwarmError
├── ConfigError            bad spec, option or argument (CLI exit code 2)
│   ├── UnknownName        a registry lookup missed; lists the choices
│   ├── SpecError          a swarm spec is invalid; lists every problem (spec.loading)
│   ├── SlaError           an alerting file or SLA rule is invalid (alerting.sla)
│   ├── SuiteError         a benchmark suite file is invalid (bench.scenarios)
│   ├── ThresholdError     a pass/fail threshold expression is invalid (bench.thresholds)
│   ├── ResourcesError     a resources file is invalid; lists every problem (allocation.resources)
│   └── SwarmNotRunning    no live swarm has that id; names those that run
├── YamlProblem            text is not YAML that will be read: where and why (core.safe_yaml)
├── UserError              a mistake in what was asked (a command line or a tool call)
├── DispatchError
│   ├── Backpressure       admission control refused a task (queue full)
│   │   ├── QuotaExceeded  a tenant's quota is used up
│   │   └── BulkheadFull   a task kind's bulkhead is full
│   ├── NoAgents           nothing to run tasks on
│   ├── TaskLost           a task could not be delivered or re-queued
│   ├── CircuitOpen        a breaker refuses calls for now
│   ├── RateLimited        a provider throttled a call; raised by handlers
│   └── Refused            a live swarm takes no tasks now: draining, stopping (service.live)
├── TaskFailure            a handler failed its task on purpose (the `fail` handler)
│   └── InjectedFault      a failure from a synthetic agent's fault plan
├── BackendError
│   └── AgentCrashed       a worker died; its in-flight tasks were re-queued
├── StoreError             the store cannot be read or written (damaged, read-only, locked)
└── ServiceError           a live swarm's service refused a request or gave an error
    └── ServiceUnavailable the service cannot be reached (stopped, crashed, wrong address)
"""

from __future__ import annotations

import itertools
import reprlib
from collections.abc import Iterable, Sequence
from typing import Protocol

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


class Problem(Protocol):
    """One mistake in a file: where, the bad value and the fix."""

    @property
    def path(self) -> str: ...

    @property
    def value(self) -> object: ...

    @property
    def fix(self) -> str: ...


class ConfigError(SwarmError, ValueError):
    """A setting is invalid. The message names the field, the bad value and the fix."""

    def __init__(self, field: str, value: object, fix: str) -> None:
        super().__init__(f"{field}: {preview(value)} is not valid. {fix}")
        self.field = field
        self.value = value
        self.fix = fix

    def _list(self, heading: str, problems: Sequence[Problem], limit: int) -> None:
        """For an error about a whole file: the message is `heading`, the count and one
        line per problem (at most `limit`); field, value and fix are the first's."""
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        lines = [f"{heading} ({count}):", *(f"  - {p}" for p in problems[:limit])]
        if len(problems) > limit:
            # A file of thousands of mistakes is likely not of that kind at all: the first
            # ones say so.
            lines.append(f"  … and {len(problems) - limit} more")
        # The one-problem wording does not fit a list.
        Exception.__init__(self, "\n".join(lines))
        first = problems[0]
        self.field = first.path
        self.value = first.value
        self.fix = first.fix


class UnknownName(ConfigError, LookupError):
    """A name is not in a registry."""

    def __init__(self, what: str, name: object, choices: Iterable[str]) -> None:
        listed = ", ".join(sorted(choices))
        super().__init__(what, name, f"Choose one of: {listed}.")
        self.choices = sorted(choices)


class UserError(SwarmError):
    """A mistake in what the user asked for: reported without a traceback (CLI exit code 2)."""


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


class BulkheadFull(Backpressure):
    """A task kind's bulkhead holds as many waiting tasks as it may."""

    def __init__(self, task_id: str, kind: str, queued: int, limit: int) -> None:
        DispatchError.__init__(
            self,
            f"Task {task_id!r} rejected: the bulkhead for kind {kind!r} has {queued} tasks "
            f"waiting and holds at most {limit}. Slow down, or raise "
            f"bulkheads[{kind!r}].max_queued or max_concurrent.",
        )
        self.task_id = task_id
        self.queued = queued
        self.limit = limit
        self.kind = kind


class NoAgents(DispatchError):
    def __init__(self) -> None:
        super().__init__("The swarm has no agents. Add at least one agent before submitting.")


class TaskLost(DispatchError):
    pass


class CircuitOpen(DispatchError):
    """A breaker refused a call. `retry_after` is the wait in seconds before a trial call."""

    def __init__(self, name: str, retry_after: float) -> None:
        if retry_after > 0:
            when = f"a trial call may go through in {retry_after:.1f}s"
        else:
            when = "its trial calls are all in flight; retry when one of them finishes"
        super().__init__(f"Circuit {name!r} is open: {when}. Meanwhile, send calls elsewhere.")
        self.name = name
        self.retry_after = retry_after


class RateLimited(DispatchError):
    """What a handler raises when a provider throttles it (e.g. HTTP 429 with Retry-After)."""

    def __init__(self, retry_after: float | None = None, provider: str | None = None) -> None:
        who = f"Provider {provider!r}" if provider else "The provider"
        when = (
            f"it asks to retry in {retry_after:g}s"
            if retry_after is not None
            else "it gave no retry time"
        )
        limit = f"rate_limits.{provider}" if provider else "the provider's rate_limits entry"
        super().__init__(
            f"{who} throttled the request; {when}. Lower requests_per_minute or "
            f"tokens_per_minute in {limit}, or send fewer tasks to it."
        )
        self.retry_after = retry_after
        self.provider = provider

    def __reduce__(self) -> tuple[type[RateLimited], tuple[float | None, str | None]]:
        # Rebuild from the fields, not the message, so it survives pickling to another process.
        return (RateLimited, (self.retry_after, self.provider))


class TaskFailure(SwarmError):
    """Raised by the `fail` handler, and by handlers that want a plain, expected failure."""


class InjectedFault(TaskFailure):
    """A failure from a synthetic agent's fault plan."""


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


class SwarmNotRunning(ConfigError):
    """No live swarm is registered under an id (or its entry is stale). The fix names the
    swarms that are running and how to start one."""

    def __init__(self, swarm_id: str, fix: str) -> None:
        super().__init__("--swarm-id", swarm_id, fix)
        self.swarm_id = swarm_id


class ServiceError(SwarmError):
    """A live swarm's service answered with an error (RFC 9457 problem details)."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(f"{title} (HTTP {status})" + (f": {detail}" if detail else ""))
        self.status = status
        self.title = title
        self.detail = detail


class ServiceUnavailable(ServiceError):
    """The service cannot be reached at its address."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(503, f"the swarm's service at {url} cannot be reached", reason)
        self.url = url

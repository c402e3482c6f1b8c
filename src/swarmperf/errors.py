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
└── BackendError
    └── AgentCrashed       a worker died; its in-flight tasks were re-queued
"""

from __future__ import annotations

from collections.abc import Iterable


class SwarmError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(SwarmError, ValueError):
    """A setting is invalid. The message names the field, the bad value and the fix."""

    def __init__(self, field: str, value: object, fix: str) -> None:
        super().__init__(f"{field}: {value!r} is not valid. {fix}")
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

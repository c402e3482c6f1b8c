"""The domain model: agents, tasks and task results."""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from typing import Any

from swarmperf.core.errors import ConfigError


class Priority(enum.IntEnum):
    """The four queue levels; lower values are served first when urgent."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3

    @classmethod
    def parse(cls, value: str | int | Priority) -> Priority:
        if isinstance(value, Priority):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                pass
        elif value in (0, 1, 2, 3):
            return cls(value)
        raise ConfigError("priority", value, "Use one of: critical, high, normal, low.")


class TaskStatus(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Fault:
    """A synthetic fault, for demos and chaos tests: from `start` to `end` seconds after
    the swarm started (None: for good), the agent's built-in work handlers fail with
    probability `error_rate` and take `slowdown` times longer."""

    start: float = 0.0
    end: float | None = None
    error_rate: float = 0.0
    slowdown: float = 1.0

    def __post_init__(self) -> None:
        if self.start < 0:
            raise ConfigError("faults.start", self.start, "Use a duration >= 0, e.g. 2s.")
        if self.end is not None and self.end <= self.start:
            raise ConfigError("faults.end", self.end, "Use a time after faults.start.")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ConfigError("faults.error_rate", self.error_rate, "Use a number in [0, 1].")
        if not self.slowdown > 0:
            raise ConfigError("faults.slowdown", self.slowdown, "Use a number > 0.")

    def active(self, elapsed: float) -> bool:
        return self.start <= elapsed and (self.end is None or elapsed < self.end)

    def __reduce__(self) -> tuple[type[Fault], tuple[float, float | None, float, float]]:
        # Pickled by its fields: compiled, a frozen class cannot be rebuilt attribute by
        # attribute. Processes and Ray actors receive their agents' specs this way.
        return Fault, (self.start, self.end, self.error_rate, self.slowdown)


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """What an agent is: its identity and its declared capacity.

    `weight` is the agent's relative capacity (speed); strategies that weigh agents use it
    until they have measured the agent. `concurrency` is how many tasks it runs at once.
    `queue_limit` bounds the tasks bound to it but not yet started (None: no bound).
    `prefetch` is how many tasks beyond `concurrency` are handed to the agent ahead of time,
    so that very short tasks flow in batches (as with a message broker's prefetch); 0 keeps
    every binding decision as late as possible. None leaves it to the backend: a swarm
    gives the agent its backend's `default_prefetch` (0 where a call costs little, more on
    Ray), and a coordinator used alone counts it as 0.
    `slowdown` is for synthetic agents: the built-in work handlers (`sleep`, `spin`) take
    this many times longer on it, which models slower hardware the agent does not declare.
    """

    id: str
    weight: float = 1.0
    concurrency: int = 1
    tags: frozenset[str] = field(default_factory=frozenset)
    queue_limit: int | None = None
    prefetch: int | None = None
    slowdown: float = 1.0
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            raise ConfigError("agent.id", self.id, "Give every agent a non-empty id.")
        if not self.weight > 0:
            raise ConfigError(f"agents[{self.id}].weight", self.weight, "Use a number > 0.")
        if self.concurrency < 1:
            raise ConfigError(
                f"agents[{self.id}].concurrency", self.concurrency, "Use an integer >= 1."
            )
        if self.prefetch is not None and self.prefetch < 0:
            raise ConfigError(f"agents[{self.id}].prefetch", self.prefetch, "Use an integer >= 0.")
        if not self.slowdown > 0:
            raise ConfigError(f"agents[{self.id}].slowdown", self.slowdown, "Use a number > 0.")
        if self.queue_limit is not None and self.queue_limit < 0:
            raise ConfigError(
                f"agents[{self.id}].queue_limit", self.queue_limit, "Use an integer >= 0 or null."
            )

    @property
    def slots(self) -> int:
        """Tasks the agent may hold at once: `concurrency` running plus its prefetch."""
        return self.concurrency + (self.prefetch or 0)

    def __reduce__(self) -> tuple[type[AgentSpec], tuple[Any, ...]]:
        # As `Fault.__reduce__`: by its fields.
        return AgentSpec, (
            self.id,
            self.weight,
            self.concurrency,
            self.tags,
            self.queue_limit,
            self.prefetch,
            self.slowdown,
            self.faults,
        )


_task_ids = itertools.count()


def next_task_id() -> str:
    return f"t{next(_task_ids)}"


# `__init__` is written out (`init=False`): a compiled class then builds its objects in C,
# where the generated one would run as Python, once per task and per result.
@dataclass(slots=True, eq=False, init=False)
class Task:
    """One unit of work. `kind` names a registered handler; no code travels with a task.

    `cost` is the caller's estimate of the work in seconds on an agent of weight 1 (None:
    unknown, strategies then use what they have measured). `deadline` is absolute, on the
    swarm's clock. `rank` orders tasks within the high level (larger first). `tokens` is
    what the task will spend against token rate limits (e.g. an LLM call's tokens).
    """

    kind: str
    payload: Any = None
    id: str = field(default_factory=next_task_id)
    priority: Priority = Priority.NORMAL
    rank: int = 0
    deadline: float | None = None
    cost: float | None = None
    tenant: str = "default"
    idempotency_key: str | None = None
    tokens: float = 0.0
    # Filled in by the swarm, never given:
    enqueued_at: float = field(default=0.0, init=False)
    attempts: int = field(default=0, init=False)
    # The cost units the coordinator charged for this task.
    est_cost: float = field(default=0.0, init=False)
    # Position in the central queue while queued, else -1.
    seq: int = field(default=-1, init=False)
    # An agent to skip if another can take it (retries).
    avoid: str | None = field(default=None, init=False)
    # The kind it had before degrading to a fallback.
    fallback_from: str | None = field(default=None, init=False)
    # The bulkhead whose place it holds, if any.
    bulkhead: str | None = field(default=None, init=False)

    def __init__(
        self,
        kind: str,
        payload: Any = None,
        id: str | None = None,
        priority: Priority = Priority.NORMAL,
        rank: int = 0,
        deadline: float | None = None,
        cost: float | None = None,
        tenant: str = "default",
        idempotency_key: str | None = None,
        tokens: float = 0.0,
    ) -> None:
        self.kind = kind
        self.payload = payload
        self.id = next_task_id() if id is None else id
        self.priority = priority
        self.rank = rank
        self.deadline = deadline
        self.cost = cost
        self.tenant = tenant
        self.idempotency_key = idempotency_key
        self.tokens = tokens
        self.enqueued_at = 0.0
        self.attempts = 0
        self.est_cost = 0.0
        self.seq = -1
        self.avoid = None
        self.fallback_from = None
        self.bulkhead = None


@dataclass(slots=True, eq=False, init=False)  # as `Task`
class TaskResult:
    """What happened to a task. Times are on the swarm's clock, in seconds."""

    task_id: str
    status: TaskStatus
    agent: str | None
    attempts: int
    queued_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None = None
    value: Any = None
    kind: str = ""
    tenant: str = "default"
    cost: float | None = None
    fallback_from: str | None = None  # set when a fallback handler produced this result

    def __init__(
        self,
        task_id: str,
        status: TaskStatus,
        agent: str | None,
        attempts: int,
        queued_at: float,
        started_at: float | None,
        finished_at: float | None,
        error: str | None = None,
        value: Any = None,
        kind: str = "",
        tenant: str = "default",
        cost: float | None = None,
        fallback_from: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.status = status
        self.agent = agent
        self.attempts = attempts
        self.queued_at = queued_at
        self.started_at = started_at
        self.finished_at = finished_at
        self.error = error
        self.value = value
        self.kind = kind
        self.tenant = tenant
        self.cost = cost
        self.fallback_from = fallback_from

    @property
    def ok(self) -> bool:
        return self.status is TaskStatus.SUCCEEDED

    @property
    def latency(self) -> float | None:
        """Queued to finished, in seconds."""
        return None if self.finished_at is None else self.finished_at - self.queued_at

    @property
    def service_time(self) -> float | None:
        if self.finished_at is None or self.started_at is None:
            return None
        return self.finished_at - self.started_at

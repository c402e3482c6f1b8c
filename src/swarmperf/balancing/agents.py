"""The coordinator's mutable view of one agent, shared with the strategies."""

from __future__ import annotations

from collections import deque
from typing import Final

from swarmperf.core.model import AgentSpec, Task

# Smoothing for measured speed and service time: about the last 10 tasks dominate.
EWMA_ALPHA: Final = 0.2


MIN_SERVICE_TIME = 1e-9  # seconds: shorter measured service times say nothing of speed


class AgentState:
    """Load and measurements of one agent. Owned by the coordinator; strategies read it.

    Work is counted in cost units: seconds on an agent of weight 1. `speed` is measured cost
    units per second (it starts at the agent's weight), so `work / speed` is seconds.
    """

    __slots__ = (
        "_mean_service",
        "alive",
        "backlog",
        "backlog_work",
        "busy_time",
        "completed",
        "concurrency",
        "failed",
        "id",
        "in_flight",
        "index",
        "paused",
        "queue_limit",
        "running_ends",
        "running_work",
        "slots",
        "spec",
        "speed",
        "version",
        "weight",
    )

    def __init__(self, spec: AgentSpec, index: int) -> None:
        self.spec = spec
        self.id = spec.id
        self.weight = spec.weight
        self.concurrency = spec.concurrency
        # Tasks the backend may hold at once: running plus prefetched.
        self.slots = spec.slots
        self.queue_limit = spec.queue_limit
        self.index = index
        self.alive = True
        # Paused agents (an open breaker, a rate limit) take no new work until resumed.
        self.paused = False
        self.in_flight = 0
        self.backlog: deque[Task] = deque()
        self.backlog_work = 0.0
        self.running_work = 0.0
        # task id -> expected end time on the coordinator's clock
        self.running_ends: dict[str, float] = {}
        self.speed = spec.weight
        # Negative until measured. A float field rather than `float | None`: compiled, it
        # is kept unboxed, so a measurement allocates nothing.
        self._mean_service = -1.0
        self.completed = 0
        self.failed = 0
        self.busy_time = 0.0
        # Bumped on every load change; strategies use it to drop stale index entries.
        self.version = 0

    @property
    def free_slots(self) -> int:
        return self.slots - self.in_flight

    @property
    def has_free_slot(self) -> bool:
        """Whether a late-binding strategy may start one more task on this agent now."""
        return self.in_flight < self.slots and not self.paused

    @property
    def has_room(self) -> bool:
        """Whether an early-binding strategy may give this agent one more task."""
        if self.paused:
            return False
        if self.in_flight < self.slots:
            return True
        return self.queue_limit is None or len(self.backlog) < self.queue_limit

    @property
    def outstanding_work(self) -> float:
        return self.backlog_work + self.running_work

    @property
    def drain_time(self) -> float:
        """Seconds until everything bound to this agent is done, at its measured speed."""
        return (self.backlog_work + self.running_work) / self.speed

    def free_at(self, now: float) -> float:
        """When the agent's next slot is expected to free up."""
        if self.in_flight < self.slots:
            return now
        ends = self.running_ends
        return max(now, min(ends.values())) if ends else now

    def observe(self, work: float, service_time: float) -> None:
        # Below a nanosecond no clock resolves a service time, and dividing by a denormal
        # one would make the speed infinite, then NaN, for good.
        if service_time >= MIN_SERVICE_TIME:
            self.speed += EWMA_ALPHA * (work / service_time - self.speed)
            if self._mean_service < 0:
                self._mean_service = service_time
            else:
                self._mean_service += EWMA_ALPHA * (service_time - self._mean_service)

    @property
    def mean_service(self) -> float | None:
        """Smoothed seconds per task (EWMA), None until a service time was measured."""
        return self._mean_service if self._mean_service >= 0 else None

    def __repr__(self) -> str:
        return (
            f"AgentState({self.id!r}, in_flight={self.in_flight}, backlog={len(self.backlog)}, "
            f"speed={self.speed:.3g}, alive={self.alive})"
        )

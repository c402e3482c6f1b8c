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
        "_later",
        "_mean_service",
        "_more_ends",
        "_next",
        "_run_end",
        "_run_task",
        "_second",
        "alive",
        "backlog_size",
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
        "running_work",
        "slots",
        "spec",
        "speed",
        "version",
        "weight",
    )

    def __init__(self, spec: AgentSpec, index: int) -> None:
        # Compiled, the fields lie in the object in the order they are first set here. The
        # ones a strategy reads to choose the agent and those binding a task writes come
        # first, then those of a task finishing, then the rest: in a swarm of thousands,
        # each agent a task touches is a cache miss per line of it that the task reads.
        self.alive = True
        # Paused agents (an open breaker, a rate limit) take no new work until resumed.
        self.paused = False
        self.in_flight = 0
        # Tasks the backend may hold at once: running plus prefetched.
        self.slots = spec.slots
        self.queue_limit = spec.queue_limit
        self.weight = spec.weight
        # Bumped on every load change; strategies use it to drop stale index entries.
        self.version = 0
        # Tasks bound here that wait for a slot, in order: the first two in `_next` and
        # `_second`, the others in a deque made when a third one waits. Like the running
        # tasks below, so that binding a task to one agent of ten thousand reads only the
        # agent. (Two: an early-binding strategy that spreads tasks by share, not by load,
        # leaves one or two waiting at many agents.)
        self._next: Task | None = None
        self._second: Task | None = None
        self._later: deque[Task] | None = None
        self.backlog_size = 0
        self.backlog_work = 0.0
        # The running tasks and their expected ends on the coordinator's clock. The first
        # is kept in the agent's own fields, and the others by id in a dict made when a
        # second one runs: an agent of one slot then has no dict, and a task started or
        # finished there reads no memory beyond the agent and the task.
        self._run_task: Task | None = None
        self._run_end = 0.0
        self._more_ends: dict[str, float] | None = None
        self.running_work = 0.0
        self.speed = spec.weight
        # Negative until measured. A float field rather than `float | None`: compiled, it
        # is kept unboxed, so a measurement allocates nothing.
        self._mean_service = -1.0
        self.busy_time = 0.0
        self.completed = 0
        self.failed = 0
        self.concurrency = spec.concurrency
        self.id = spec.id
        self.spec = spec
        # Its number among the coordinator's agents: given again once it has left, so
        # that the numbers stay below the number of agents, and strategies may keep
        # arrays by it.
        self.index = index

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
        return self.queue_limit is None or self.backlog_size < self.queue_limit

    @property
    def outstanding_work(self) -> float:
        return self.backlog_work + self.running_work

    @property
    def drain_time(self) -> float:
        """Seconds until everything bound to this agent is done, at its measured speed."""
        return (self.backlog_work + self.running_work) / self.speed

    @property
    def backlog(self) -> list[Task]:
        """The tasks bound here that wait for a slot, first to start first (a copy)."""
        first = self._next
        if first is None:
            return []
        second = self._second
        if second is None:
            return [first]
        tasks = [first, second]
        if self._later:
            tasks.extend(self._later)
        return tasks

    def enqueue(self, task: Task) -> None:
        """Bind `task` here to wait for a slot, after those waiting already."""
        size = self.backlog_size
        if size == 0:
            self._next = task
        elif size == 1:
            self._second = task
        else:
            later = self._later
            if later is None:
                self._later = later = deque()
            later.append(task)
        self.backlog_size += 1
        self.backlog_work += task.est_cost

    def dequeue(self) -> Task:
        """Take out the first waiting task (there is one)."""
        task = self._next
        assert task is not None
        self._next = self._second
        later = self._later
        self._second = later.popleft() if later else None
        self.backlog_size -= 1
        self.backlog_work -= task.est_cost
        return task

    def last_waiting(self) -> Task:
        """The last waiting task (there is one): the one a thief takes."""
        later = self._later
        if later:
            return later[-1]
        task = self._next if self._second is None else self._second
        assert task is not None
        return task

    def dequeue_last(self) -> Task:
        """Take out the last waiting task (there is one)."""
        later = self._later
        if later:
            task = later.pop()
        elif self._second is not None:
            task, self._second = self._second, None
        else:
            first = self._next
            assert first is not None
            task, self._next = first, None
        self.backlog_size -= 1
        self.backlog_work -= task.est_cost
        return task

    def take_backlog(self) -> list[Task]:
        """Take out every waiting task, first to start first."""
        tasks = self.backlog
        self._next = None
        self._second = None
        if self._later is not None:
            self._later.clear()
        self.backlog_size = 0
        self.backlog_work = 0.0
        return tasks

    def free_at(self, now: float) -> float:
        """When the agent's next slot is expected to free up."""
        if self.in_flight < self.slots:
            return now
        more = self._more_ends
        if self._run_task is not None:
            soonest = self._run_end
            if more:
                soonest = min(soonest, min(more.values()))
        elif more:
            soonest = min(more.values())
        else:
            return now
        return max(now, soonest)

    def running_started(self, task: Task, end: float) -> None:
        """`task` began here and is expected to end at `end`."""
        if self._run_task is None:
            self._run_task = task
            self._run_end = end
            return
        more = self._more_ends
        if more is None:
            self._more_ends = more = {}
        more[task.id] = end

    def running_stopped(self, task: Task) -> bool:
        """`task` stopped running here: False if it was not running here (a duplicate
        report, or a task given up on before)."""
        first = self._run_task
        # By identity first: the backends report the task objects they were given, and
        # reading the id would be one more cache miss per task.
        if first is task:
            self._run_task = None
            return True
        more = self._more_ends
        if more is not None and more.get(task.id) is not None:
            del more[task.id]
            return True
        if first is not None and first.id == task.id:
            self._run_task = None
            return True
        return False

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
            f"AgentState({self.id!r}, in_flight={self.in_flight}, backlog={self.backlog_size}, "
            f"speed={self.speed:.3g}, alive={self.alive})"
        )

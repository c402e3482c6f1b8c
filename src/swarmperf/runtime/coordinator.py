"""The coordinator: an I/O-free state machine that binds queued tasks to agents.

Events in (`submit`, `finish_many`, `add_agent`, `remove_agent`, `agent_lost`,
`replace_strategy`, `hold` and `release`, time passing), instructions out (`take_starts`:
which task to start on which agent now; results; recorded events; `next_wakeup`: when to
call again). The async, process, Ray and simulated shells all drive this same object, so a
strategy behaves identically under each. The clock is injected; nothing here sleeps or
does I/O.

Every submitted task is in exactly one place: the central queue, an agent's backlog, a
bulkhead's waiting line, the retry timers, running, or finished with one result.

Invariant: an agent only has a backlog while all its slots are busy, so a free slot is
always filled at once from the agent's own backlog, by stealing, or from the queue.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from swarmperf.balancing.agents import EWMA_ALPHA, AgentState
from swarmperf.balancing.strategies import LoadBalancer, direct
from swarmperf.core.errors import Backpressure, ConfigError, QuotaExceeded
from swarmperf.core.events import (
    AGENT_LOST,
    AGENT_PAUSED,
    AGENT_RESUMED,
    DUPLICATE_RESULT_IGNORED,
    DUPLICATE_SUBMISSION,
    FALLBACK,
    RETRY,
    STRATEGY_CHANGED,
    Event,
)
from swarmperf.core.model import AgentSpec, Task, TaskResult, TaskStatus
from swarmperf.core.queueing import QueueSettings, TaskQueue
from swarmperf.resilience.bulkheads import Bulkheads, BulkheadSettings
from swarmperf.resilience.policy import Fallback, Guard, Retry

Clock = Callable[[], float]
# `Final`: compiled, these are constants, not a module lookup per use.
SUCCEEDED: Final = TaskStatus.SUCCEEDED
FAILED: Final = TaskStatus.FAILED

# Timer kinds
_RESUME: Final = 0
_RETRY: Final = 1
_GUARD: Final = 2
# Fewest and most tasks `take_starts` binds in one run from the queue's line.
_FIRST_RUN: Final = 8
_RUN: Final = 1024


@dataclass(frozen=True, slots=True)
class CoordinatorStatistics:
    queued: int
    pending: int
    running: int
    agents: int
    paused: int
    draining: int
    submitted: int
    completed: int
    failed: int
    rejected: int
    requeued: int
    retried: int
    stolen: int


def _queued_at(task: Task) -> float:
    return task.enqueued_at


def unrun_result(task: Task, status: TaskStatus, reason: str, now: float) -> TaskResult:
    """A result for a task that did not run (rejected or cancelled)."""
    return TaskResult(
        task.id,
        status,
        None,
        task.attempts,
        task.enqueued_at or now,
        None,
        None,
        reason,
        None,
        task.kind,
        task.tenant,
        task.cost,
        task.fallback_from,
    )


class ResultColumns:
    """Results of finished tasks kept as columns, made into `TaskResult`s only when read.

    A row is a task an agent finished (the task, and what its run gave), or a result made
    already (a rejection, a cancellation). A `TaskResult` per task, kept, is most of the
    cost of a no-op task's result at scale: the garbage collector walks every kept object
    at each full collection, and a run of 100,000 tasks makes several. A row adds no
    object the collector walks: its values are the task and the times and strings the
    agent reported. A row read is made into a new `TaskResult` at each read, which dies
    with its reader unless kept.
    """

    __slots__ = (
        "agents",
        "attempts",
        "errors",
        "fallbacks",
        "finished",
        "kinds",
        "queued",
        "rows",
        "started",
        "values",
    )

    def __init__(self) -> None:
        # The task, or its result once made. What the swarm may change on a task that is
        # submitted again (attempts, time queued, kind) is copied; the rest is read from
        # the task when the result is made.
        self.rows: list[Task | TaskResult] = []
        self.agents: list[str | None] = []
        self.attempts: list[int] = []
        self.queued: list[float] = []
        self.started: list[float] = []
        self.finished: list[float] = []
        self.errors: list[str | None] = []
        self.values: list[Any] = []
        self.kinds: list[str] = []
        self.fallbacks: list[str | None] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(
        self,
        task: Task,
        agent: str,
        started: float,
        finished: float,
        error: str | None,
        value: Any,
    ) -> None:
        """Record that `agent` ran `task` (succeeded if `error` is None, else failed)."""
        self.rows.append(task)
        self.agents.append(agent)
        self.attempts.append(task.attempts)
        self.queued.append(task.enqueued_at)
        self.started.append(started)
        self.finished.append(finished)
        self.errors.append(error)
        self.values.append(value)
        self.kinds.append(task.kind)
        self.fallbacks.append(task.fallback_from)

    def add_result(self, result: TaskResult) -> None:
        """Record a result made already."""
        self.rows.append(result)
        self.agents.append(None)
        self.attempts.append(0)
        self.queued.append(0.0)
        self.started.append(0.0)
        self.finished.append(0.0)
        self.errors.append(None)
        self.values.append(None)
        self.kinds.append("")
        self.fallbacks.append(None)

    def result(self, i: int) -> TaskResult:
        """Row `i` as a `TaskResult`, made anew (unless it was recorded as one)."""
        row = self.rows[i]
        if isinstance(row, TaskResult):
            return row
        error = self.errors[i]
        return TaskResult(
            row.id,
            SUCCEEDED if error is None else FAILED,
            self.agents[i],
            self.attempts[i],
            self.queued[i],
            self.started[i],
            self.finished[i],
            error,
            self.values[i],
            self.kinds[i],
            row.tenant,
            row.cost,
            self.fallbacks[i],
        )

    def results(self, rows: Iterable[int]) -> list[TaskResult]:
        return [self.result(i) for i in rows]

    def iterate(self, rows: list[int]) -> Iterator[TaskResult]:
        """The rows' results one at a time: a reader that keeps none makes the garbage
        collector no work."""
        for i in rows:
            yield self.result(i)

    def task_id(self, i: int) -> str:
        row = self.rows[i]
        return row.task_id if isinstance(row, TaskResult) else row.id

    def in_order(self, tasks: list[Task], start: int) -> list[int]:
        """The rows from `start` on, in the order of `tasks`; rows of other tasks (or a
        second row of one) after them, in the order recorded. A slot per task rather than
        a sort: half the cost. Here rather than beside `Swarm.run`, its caller, so that it
        is compiled.

        For none of `tasks` queued (as after a drain), each is found by its place in
        `tasks`, kept for this call in its `seq` (-1, for a task not queued): a row that
        is one of `tasks` itself then costs no look-up by id. Any other row (a result
        made already, a task of another run) is found by id, as is every row when one of
        `tasks` is queued or given twice.
        """
        rows = self.rows
        n = len(tasks)
        slots = [-1] * n
        rest: list[int] = []
        marked = 0
        for task in tasks:
            if task.seq != -1:
                break
            task.seq = marked
            marked += 1
        position: dict[str, int] | None = None
        found = 0  # tasks found by their mark, which is then taken off at once
        try:
            for i in range(start, len(rows)):
                row = rows[i]
                if marked == n and isinstance(row, Task):
                    p = row.seq
                    if 0 <= p < n and tasks[p] is row:
                        row.seq = -1
                        found += 1
                        if slots[p] < 0:
                            slots[p] = i
                        else:
                            rest.append(i)
                        continue
                if position is None:
                    position = {task.id: j for j, task in enumerate(tasks)}
                p = position.get(self.task_id(i), -1)
                if p < 0 or slots[p] >= 0:
                    rest.append(i)
                else:
                    slots[p] = i
        finally:
            if found < marked:
                for j in range(marked):
                    tasks[j].seq = -1
        if not rest and len(rows) - start == n:
            return slots  # a row for each task, none besides: every slot is filled
        ordered = [i for i in slots if i >= 0]
        ordered += rest
        return ordered


class Coordinator:
    """Binds tasks to agents with a `LoadBalancer`, keeps every task accounted for."""

    def __init__(
        self,
        strategy: LoadBalancer,
        queue: QueueSettings | None = None,
        *,
        clock: Clock = time.perf_counter,
        lookahead: int = 8,
        guard: Guard | None = None,
        bulkheads: Mapping[str, BulkheadSettings] | None = None,
    ) -> None:
        if lookahead < 0:
            raise ConfigError("lookahead", lookahead, "Use an integer >= 0.")
        self.strategy = strategy
        # The same strategy, called per task: compiled, a direct call (`direct`).
        self._direct = direct(strategy)
        # How many queued tasks to look past when the strategy holds the first one back.
        self.lookahead = lookahead
        self.queue = TaskQueue(queue)
        self.settings = self.queue.settings
        self.clock = clock
        self.guard = guard
        self.bulkheads = Bulkheads(bulkheads or {})
        # Bulkheads are fixed at construction; most swarms have none, and the hot paths
        # then skip them with one test.
        self._bulkheads_on = bool(self.bulkheads)
        self.agents: dict[str, AgentState] = {}
        self._draining: dict[str, AgentState] = {}
        # Agent numbers (`AgentState.index`) that agents which left have freed: a number
        # is given again, so that they stay below the number of agents there are.
        self._free_indexes: list[int] = []
        self._next_index = 0
        # Above every version an agent that left had: a newcomer that takes its number
        # starts here, so that a strategy cannot take an entry it kept for the one that
        # left for one of the newcomer's.
        self._version_floor = 0
        self._free_slots = 0  # free slots on live, unpaused agents
        self._pending = 0  # submitted, not yet started (queue, backlogs, parked, timers)
        # Tasks pending per tenant, kept only to enforce tenant quotas.
        self._tenant_pending: dict[str, int] = {}
        self._quotas = bool(self.settings.tenant_quotas)
        # The tasks to start and their agents, in order (two lists: no pair per task).
        self._start_agents: list[AgentState] = []
        self._start_tasks: list[Task] = []
        self._offered = False  # see `submit_and_bind`
        # Idle agents whose last attempt to steal found nothing worth taking; they try
        # again whenever the coordinator binds, since the others' queues keep changing.
        self._thieves: dict[str, AgentState] = {}
        self._late = strategy.late_binding
        self._steals = strategy.steals
        # Look past held tasks in place (`TaskQueue.line`) where the queue allows it; off,
        # they are popped and pushed back. The decisions are the same either way.
        self.in_place = True
        # `finish` for one task takes a short path when nothing but the strategy decides.
        self._plain = guard is None and not self._bulkheads_on and not strategy.steals
        # Estimated cost of a task that brings none: the mean measured work per task.
        self.unknown_cost = 1.0
        self._cost_measured = False
        self._timers: list[tuple[float, int, int, Any]] = []
        self._timer_seq = itertools.count()
        self._pause_tokens: dict[str, int] = {}
        # A hold (`hold`): no agent gets new work until `release`. `_released` are the
        # agents to resume then: those the hold paused, and those that something else (a
        # breaker, a rate limit) paused and would have resumed meanwhile.
        self._held = False
        self._hold_reason = ""
        self._released: set[str] = set()
        self._guard_due = float("inf")
        self._side_results: list[TaskResult] = []
        # Idempotency: key -> the id of the first task that carried it.
        self._keys: dict[str, str] = {}
        self.events: list[Event] = []
        self.submitted = 0
        self.completed = 0
        self.failed = 0
        self.rejected = 0
        self.requeued = 0
        self.retried = 0
        self.stolen = 0
        self.running = 0
        # Estimated work not yet started, and running, in cost units; total measured speed.
        self._pending_work = 0.0
        self._running_work = 0.0
        self._total_speed = 0.0
        strategy.attach(self)
        if guard is not None:
            guard.attach(self)

    # -- agents -------------------------------------------------------------------------

    def add_agent(self, spec: AgentSpec) -> AgentState:
        if spec.id in self.agents or spec.id in self._draining:
            raise ConfigError("agent.id", spec.id, "Agent ids must be unique in a swarm.")
        if self._free_indexes:
            index = self._free_indexes.pop()
        else:
            index = self._next_index
            self._next_index += 1
        agent = AgentState(spec, index)
        agent.version = self._version_floor
        self.agents[spec.id] = agent
        self._free_slots += agent.slots
        self._total_speed += agent.speed * agent.concurrency
        now = self.clock()
        self.strategy.add(agent, now)
        if self.strategy.steals:
            self._thieves[agent.id] = agent
        if self.guard is not None:
            self.guard.agent_added(agent, now)
        if self._held:
            self.suspend(agent.id, None, self._hold_reason)
            self._released.add(agent.id)
        return agent

    def remove_agent(self, agent_id: str) -> list[Task]:
        """Stop giving `agent_id` work. Its queued tasks go back to the front of the queue;
        tasks it is running may still complete. Returns the re-queued tasks."""
        agent = self.agents.pop(agent_id, None)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No live agent is called {agent_id!r}.")
        withdrawn = self._withdraw_starts(agent)
        if not agent.paused:
            self._free_slots -= max(agent.free_slots, 0)
        self._released.discard(agent_id)
        agent.alive = False
        self._total_speed -= agent.speed * agent.concurrency
        self.strategy.remove(agent)
        # The strategy has forgotten it: its number is free (and its versions stale).
        self._free_indexes.append(agent.index)
        self._version_floor = max(self._version_floor, agent.version + 1)
        if self.guard is not None:
            self.guard.agent_removed(agent)
        now = self.clock()
        requeued = self._return_backlog(agent, now)
        # In front of the backlog, where they stood before they were started.
        for task in reversed(withdrawn):
            self._to_queue_front(task, now)
        if agent.in_flight:
            self._draining[agent_id] = agent
        return withdrawn + requeued

    def agent_lost(self, agent_id: str, in_flight: list[Task], reason: str) -> list[Task]:
        """The agent died with `in_flight` unfinished: they are queued again, first in line.

        A task that already has a result is not queued again: never run a task twice
        after it is known to have finished.
        """
        agent = self.agents.get(agent_id) or self._draining.get(agent_id)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No agent is called {agent_id!r}.")
        requeued = self.remove_agent(agent_id) if agent.alive else []
        self._draining.pop(agent_id, None)
        now = self.clock()
        for task in reversed(in_flight):
            if not agent.running_stopped(task):
                continue
            agent.in_flight -= 1
            self.running -= 1
            self._pending += 1
            if self._quotas:
                self._tenant_pending[task.tenant] = self._tenant_pending.get(task.tenant, 0) + 1
            self.requeued += 1
            self._pending_work += task.est_cost
            self._running_work -= task.est_cost
            self._to_queue_front(task, now)
            requeued.append(task)
        agent.running_work = 0.0
        if self.guard is not None:
            self.guard.agent_lost(agent_id, now)
        self.emit(AGENT_LOST, agent_id, reason=reason, requeued=len(requeued))
        return requeued

    def suspend(self, agent_id: str, until: float | None, reason: str) -> None:
        """Give `agent_id` no new work (until `until`, or until `resume`); its queued tasks
        go to others. Running tasks finish."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        if self._held:
            # Paused for its own reason now: it resumes when that is over, not at release.
            self._released.discard(agent_id)
        token = self._pause_tokens.get(agent_id, 0) + 1
        self._pause_tokens[agent_id] = token
        if until is not None:
            self._schedule(until, _RESUME, (agent_id, token))
        if agent.paused:
            return
        self._free_slots -= max(agent.free_slots, 0)
        agent.paused = True
        now = self.clock()
        self._return_backlog(agent, now)
        self._thieves.pop(agent_id, None)
        agent.version += 1
        self._direct.changed(agent, now)
        self.emit(AGENT_PAUSED, agent_id, reason=reason, until=until)

    def resume(self, agent_id: str, reason: str) -> None:
        agent = self.agents.get(agent_id)
        if agent is None or not agent.paused:
            return
        self._pause_tokens[agent_id] = self._pause_tokens.get(agent_id, 0) + 1
        if self._held:
            # Its own pause is over, but the hold is not: it resumes at `release`.
            self._released.add(agent_id)
            return
        agent.paused = False
        self._free_slots += max(agent.free_slots, 0)
        now = self.clock()
        if self.strategy.steals:
            self._thieves[agent_id] = agent
        agent.version += 1
        self._direct.changed(agent, now)
        self.emit(AGENT_RESUMED, agent_id, reason=reason)

    def hold(self, reason: str) -> None:
        """Give no agent new work until `release`: every agent is suspended, its queued
        tasks go back to the central queue, and its running tasks finish. Tasks are still
        admitted; they wait in the queue. Agents added meanwhile start suspended.

        A pause of an agent's own (an open breaker, a rate limit) is kept apart: one that
        ends during the hold ends at `release`; one still on then goes on as before.
        """
        if self._held:
            return
        self._held = True
        self._hold_reason = reason
        for agent in list(self.agents.values()):
            if not agent.paused:
                self.suspend(agent.id, None, reason)
                self._released.add(agent.id)

    def release(self, reason: str) -> None:
        """End a `hold`: the agents it kept from work take tasks again."""
        if not self._held:
            return
        self._held = False
        released = self._released
        self._released = set()
        for agent in list(self.agents.values()):
            if agent.id in released:
                self.resume(agent.id, reason)

    @property
    def held(self) -> bool:
        """Whether a `hold` is on."""
        return self._held

    def replace_strategy(self, strategy: LoadBalancer) -> str:
        """Balance with `strategy` from now on; return the name of the strategy replaced.

        Every live agent joins `strategy`, paused ones too (they stay paused); agents that
        were removed and still run tasks are no strategy's concern and finish as before.
        What the coordinator measures of an agent (its speed, its load) carries over; what
        the old strategy kept of its own (ring positions, virtual times, idle timers, its
        random draws) does not: `strategy` starts its own records fresh.

        No task is lost or run twice. Tasks bound to an agent's own queue stay there under
        an early-binding strategy and run on that agent, unless a stealing strategy moves
        them: every idle agent may steal at the next `take_starts`. A late-binding strategy
        binds only to free slots, so under one they go back to the front of the central
        queue, oldest first, and are bound afresh. Passing the strategy in use does nothing.
        """
        old = self.strategy
        if strategy is old:
            return old.name
        now = self.clock()
        requeued: list[Task] = []
        if strategy.late_binding:
            for agent in self.agents.values():
                requeued.extend(agent.take_backlog())
            requeued.sort(key=_queued_at)
            for task in reversed(requeued):
                self._to_queue_front(task, now)
        strategy.attach(self)
        self.strategy = strategy
        self._direct = direct(strategy)
        self._late = strategy.late_binding
        self._steals = strategy.steals
        self._plain = self.guard is None and not self._bulkheads_on and not strategy.steals
        # A task held back by the old strategy is offered to the new one.
        self._offered = False
        self._thieves = {}
        agents = list(self.agents.values())
        for agent in agents:
            strategy.add(agent, now)
        for agent in agents:
            # Announced as changed too: a strategy indexes some state (backlogs to steal
            # from, say) only on a change.
            agent.version += 1
            strategy.changed(agent, now)
            if strategy.steals and not agent.paused:
                self._thieves[agent.id] = agent
        self.emit(
            STRATEGY_CHANGED,
            strategy.name,
            previous=old.name,
            name=strategy.name,
            requeued=len(requeued),
        )
        return old.name

    def limit_slots(self, agent_id: str, slots: int | None) -> None:
        """Cap `agent_id` at `slots` tasks at once (None: its own number again)."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        own = agent.spec.slots
        new = own if slots is None else max(0, min(slots, own))
        if new == agent.slots:
            return
        before = 0 if agent.paused else max(agent.free_slots, 0)
        agent.slots = new
        after = 0 if agent.paused else max(agent.free_slots, 0)
        self._free_slots += after - before
        now = self.clock()
        if agent.backlog_size and agent.in_flight < agent.slots:
            self._refill(agent, now)
        agent.version += 1
        self._direct.changed(agent, now)

    def live_agents(self) -> list[AgentState]:
        return list(self.agents.values())

    def agent(self, agent_id: str) -> AgentState:
        agent = self.agents.get(agent_id) or self._draining.get(agent_id)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No agent is called {agent_id!r}.")
        return agent

    def all_agents(self) -> Iterator[AgentState]:
        yield from self.agents.values()
        yield from self._draining.values()

    # -- tasks --------------------------------------------------------------------------

    def submit(self, task: Task) -> None:
        """Admit `task` or raise `Backpressure` (nothing is queued then).

        A guard may shed the task instead (overload, an open circuit): it then finishes at
        once as REJECTED, with the reason, among `take_results()`.
        """
        if self._admit(task):
            self.queue.push(task, self.clock())

    def submit_and_bind(self, task: Task) -> None:
        """`submit(task)`, then the binding of it that the next `take_starts` would do,
        with the same effect: for a driver that calls `take_starts` right after submitting
        (the simulation does, for each arrival).

        When the queue is empty and the task can be bound at once, it does not go through
        the queue: the queue only accounts for it (`TaskQueue.pass_through`). This is what
        most tasks of a swarm that keeps up do. Call `take_starts` before anything else:
        when the strategy keeps the task waiting, that call does not offer it again, as
        `take_starts` offers a task once per call.
        """
        if (
            self._timers
            or self.guard is not None
            or self._bulkheads_on
            or self.queue._len
            or (self._late and self._free_slots <= 0)
        ):
            self.submit(task)
            return
        self._admit(task)  # no guard: it cannot shed the task
        now = self.clock()
        if not self.queue.pass_through(task, now):
            self.queue.push(task, now)
            return
        # As `take_starts` does with the task it pops (a new task avoids no agent).
        agent = self._direct.choose(task, now)
        if agent is None:
            self._backfill(task, now)  # nothing to look past: it goes back in the queue
            self._offered = True
            return
        self._bind(agent, task, now)

    def _admit(self, task: Task) -> bool:
        """Everything `submit` does but queueing; False when the guard shed the task."""
        settings = self.settings
        if self._pending >= settings.max_queued:
            raise Backpressure(task.id, self._pending, settings.max_queued)
        tenant = task.tenant
        tenant_pending = 0
        if self._quotas:
            tenant_pending = self._tenant_pending.get(tenant, 0)
            quota = settings.tenant_quotas.get(tenant)
            if quota is not None and tenant_pending >= quota:
                raise QuotaExceeded(task.id, tenant, tenant_pending, quota)
        guard = self.guard
        if guard is not None:
            reason = guard.admit(task, self.clock())
            if reason is not None:
                self.reject(task, reason)
                return False
        if self._bulkheads_on:
            self.bulkheads.admit(task)
        if self._quotas:
            self._tenant_pending[tenant] = tenant_pending + 1
        cost = task.cost
        task.est_cost = est = self.unknown_cost if cost is None else cost
        self._pending_work += est
        self._pending += 1
        self.submitted += 1
        return True

    def repeats_key(self, task: Task) -> bool:
        """Whether `task` repeats an idempotency key seen before (then it must not be
        queued: the first task's result is the one that counts). Records new keys.

        The first task itself, offered again after the queue refused it, is no repeat.
        """
        key = task.idempotency_key
        if key is None:
            return False
        first = self._keys.get(key)
        if first is None:
            self._keys[key] = task.id
            return False
        if first == task.id:
            return False
        self.emit(DUPLICATE_SUBMISSION, task.id, key=key, first=first)
        return True

    def without_repeats(self, tasks: Iterable[Task]) -> list[Task]:
        """`tasks` but those that repeat an idempotency key (`repeats_key`), in order."""
        return [t for t in tasks if t.idempotency_key is None or not self.repeats_key(t)]

    def forget_key(self, task: Task) -> None:
        """Forget `task`'s idempotency key because `task` was refused: a later task with
        the same key is then the first, not a duplicate of work that never ran."""
        key = task.idempotency_key
        if key is not None and self._keys.get(key) == task.id:
            del self._keys[key]

    def first_with_key(self, key: str) -> str | None:
        """The id of the first task submitted with idempotency key `key`, if any."""
        return self._keys.get(key)

    def submit_many(self, tasks: list[Task]) -> int:
        """Admit tasks in order until one is refused; return how many were admitted.

        The same rules as `submit`, in one loop: the batch path for large workloads.
        """
        if self.guard is not None or self._bulkheads_on or self.settings.tenant_quotas:
            n = 0
            for task in tasks:
                try:
                    self.submit(task)
                except Backpressure:
                    break
                n += 1
            return n
        # Without a guard, bulkheads or quotas only the queue's bound can refuse a task:
        # admit as many as fit, all at once, exactly as `submit` would one by one.
        room = self.settings.max_queued - self._pending
        if room <= 0:
            return 0
        batch = tasks if len(tasks) <= room else tasks[:room]
        unknown_cost = self.unknown_cost
        # Summed in the same order as one by one, so the float comes out the same.
        pending_work = self._pending_work
        for task in batch:  # (no quotas: see above)
            cost = task.cost
            task.est_cost = est = unknown_cost if cost is None else cost
            pending_work += est
        # One batch, one instant: the queue takes it in one call.
        self.queue.push_many(batch, self.clock())
        n = len(batch)
        self._pending_work = pending_work
        self._pending += n
        self.submitted += n
        return n

    def reject(self, task: Task, reason: str) -> None:
        """Finish a task that was never admitted as REJECTED, with `reason`."""
        self.rejected += 1
        self.submitted += 1
        self._side_results.append(unrun_result(task, TaskStatus.REJECTED, reason, self.clock()))

    def take_results(self) -> list[TaskResult]:
        """Results that did not come from an agent: rejected and cancelled tasks."""
        results = self._side_results
        self._side_results = []
        return results

    def take_events(self) -> list[Event]:
        events = self.events
        self.events = []
        return events

    def emit(self, event: str, subject: str, /, **detail: Any) -> None:
        self.events.append(Event(self.clock(), event, subject, detail))

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def max_queued(self) -> int:
        return self.settings.max_queued

    @property
    def horizon(self) -> float:
        """Seconds to finish all known work at the measured speeds, perfectly balanced."""
        if self._total_speed <= 0:
            return 0.0
        return max(self._pending_work + self._running_work, 0.0) / self._total_speed

    @property
    def idle(self) -> bool:
        """Nothing queued, bound, waiting or running."""
        return self._pending == 0 and self.running == 0

    def next_wakeup(self) -> float | None:
        """When something is due (a paused agent resumes, a retry, the guard): call
        `take_starts` then. None: nothing is scheduled."""
        return self._timers[0][0] if self._timers else None

    def take_starts(self) -> list[tuple[AgentState, Task]]:
        """Bind what can be bound now and return the tasks to start, in order."""
        agents, tasks = self._take_starts()
        return [(agents[i], tasks[i]) for i in range(len(tasks))]

    def take_starts_by_id(self) -> list[tuple[str, Task]]:
        """`take_starts`, each agent given by its id: what `Backend.run` takes."""
        agents, tasks = self._take_starts()
        return [(agents[i].id, tasks[i]) for i in range(len(tasks))]

    def _take_starts(self) -> tuple[list[AgentState], list[Task]]:
        """`take_starts` but for the pairs: the agents and the tasks, two lists in step."""
        if self._timers:
            now = self.clock()
            if self._timers[0][0] <= now:
                self._run_timers(now)
        queue = self.queue
        late = self._late
        if self._offered:
            # `submit_and_bind` offered the only queued task a moment ago, and the strategy
            # kept it waiting: this call has done its binding.
            self._offered = False
        elif queue._len and (self._free_slots > 0 or not late):
            now = self.clock()
            strategy = self._direct
            bulkheads = self.bulkheads if self._bulkheads_on else None
            runs = self.in_place and self.guard is None and bulkheads is None
            # The first task of a call, and the first after one held, goes the one-task
            # way: a strategy that holds the head of the queue (capacity-aware in a big
            # swarm) then pays for one task per call, not for a run it does not bind.
            in_run = False
            # Runs start short and double while they are bound whole, so that a run the
            # strategy stops short costs little to have looked at.
            run = _FIRST_RUN
            while queue._len:
                if late and self._free_slots <= 0:
                    break
                if in_run:
                    line = queue.line(min(self._free_slots, run) if late else run)
                    if line:
                        held = self._bind_line(line, now)
                        if held is None:
                            run = min(2 * run, _RUN)
                            continue
                        in_run = False
                        run = _FIRST_RUN
                        if not self._backfill(held, now):
                            break
                        continue
                task = queue.pop(now)
                if task is None:
                    break
                if task.avoid is None:
                    agent = strategy.choose(task, now)
                else:
                    agent = self._choose_avoiding(task, now)
                if agent is None:
                    if not self._backfill(task, now):
                        break
                    continue
                if bulkheads is not None and not bulkheads.try_enter(task):
                    bulkheads.park(task)
                    continue
                # `_bind`, written out: it runs for every task.
                strategy.assigned(agent, task)
                if agent.in_flight < agent.slots:
                    self._start(agent, task, now)
                else:
                    agent.enqueue(task)
                agent.version += 1
                strategy.changed(agent, now)
                in_run = runs
        if self._thieves:
            self._retry_steals()
        agents = self._start_agents
        tasks = self._start_tasks
        if tasks:
            self._start_agents = []
            self._start_tasks = []
        return agents, tasks

    def _bind_line(self, line: list[Task], now: float) -> Task | None:
        """`take_starts` over a run of tasks that stand in one line (`TaskQueue.line`):
        bind them in order where they stand and take the bound ones out in one call, as
        popping and binding each would. Returns the task the strategy kept waiting, taken
        out as `pop` takes it, or None when every task of the run was bound."""
        strategy = self._direct
        late = self._late
        queue = self.queue
        held: Task | None = None
        bound = 0
        try:
            for task in line:
                if late and self._free_slots <= 0:
                    break
                agent = strategy.choose(task, now)
                if agent is None:
                    held = task
                    break
                strategy.assigned(agent, task)
                if agent.in_flight < agent.slots:
                    self._start(agent, task, now)
                else:
                    agent.enqueue(task)
                agent.version += 1
                strategy.changed(agent, now)
                bound += 1
        finally:
            queue.take_first(line, bound, now)
        if held is not None and queue.pop(now) is not held:
            raise RuntimeError("the queue's line and its pop disagree")
        return held

    def cancel_pending(self, reason: str) -> list[TaskResult]:
        """Withdraw every task not yet started (queued, bound to an agent's queue, parked
        or waiting to be retried).

        Each comes back as a CANCELLED result carrying `reason`; running tasks are left to
        finish. Nothing is dropped without a result.
        """
        now = self.clock()
        withdrawn = self.queue.drain()
        for agent in self.agents.values():
            withdrawn.extend(agent.take_backlog())
            agent.version += 1
            self._direct.changed(agent, now)
        withdrawn.extend(self.bulkheads.drain_parked())
        timers = []
        for entry in self._timers:
            if entry[2] == _RETRY:
                withdrawn.append(entry[3])
            else:
                timers.append(entry)
        heapq.heapify(timers)
        self._timers = timers
        for task in withdrawn:
            self.bulkheads.leave(task, done=True)
        self._pending = 0
        self._pending_work = 0.0
        self._tenant_pending.clear()
        return [unrun_result(task, TaskStatus.CANCELLED, reason, now) for task in withdrawn]

    def cancel_running(self, agent_id: str, tasks: Iterable[Task], reason: str) -> list[TaskResult]:
        """Give up on tasks `agent_id` is running (its backend abandons them): each comes
        back as a CANCELLED result carrying `reason`, and a later report of one is ignored
        as a duplicate. Tasks that are not running there are skipped."""
        agent = self.agents.get(agent_id) or self._draining.get(agent_id)
        if agent is None:
            return []
        now = self.clock()
        results: list[TaskResult] = []
        paused = agent.paused
        free_before = 0 if paused else max(agent.slots - agent.in_flight, 0)
        for task in tasks:
            if not agent.running_stopped(task):
                continue
            est = task.est_cost
            agent.in_flight -= 1
            agent.running_work -= est
            self._running_work -= est
            self.running -= 1
            if self._bulkheads_on:
                freed = self.bulkheads.leave(task, done=True)
                if freed is not None:
                    self.queue.push(freed, now, front=True)
            results.append(unrun_result(task, TaskStatus.CANCELLED, reason, now))
        if not results:
            return results
        if agent.alive:
            if not paused:
                self._free_slots += max(agent.slots - agent.in_flight, 0) - free_before
            agent.version += 1
            self._direct.changed(agent, now)
        elif agent.in_flight == 0:
            self._draining.pop(agent_id, None)
        return results

    # -- internals ----------------------------------------------------------------------

    def _to_queue_front(self, task: Task, now: float) -> None:
        """Put a task that had been taken out back at the head of the queue."""
        freed = self.bulkheads.leave(task, done=False) if self.bulkheads else None
        self.queue.push(task, now, front=True)
        if freed is not None:
            self.queue.push(freed, now, front=True)

    def _withdraw_starts(self, agent: AgentState) -> list[Task]:
        """Take back the starts on `agent` that `take_starts` has not handed out yet, as if
        never made: it is leaving, and its backend, which has not heard of them, would
        refuse them. (A finished task refills its agent's slot at once, and the agent may
        be removed or lost before the next `take_starts`.)"""
        if not any(a is agent for a in self._start_agents):
            return []
        withdrawn: list[Task] = []
        agents: list[AgentState] = []
        tasks: list[Task] = []
        for a, task in zip(self._start_agents, self._start_tasks, strict=True):
            if a is agent:
                withdrawn.append(task)
            else:
                agents.append(a)
                tasks.append(task)
        self._start_agents = agents
        self._start_tasks = tasks
        free_before = 0 if agent.paused else max(agent.free_slots, 0)
        for task in withdrawn:
            agent.running_stopped(task)
            est = task.est_cost
            agent.in_flight -= 1
            agent.running_work -= est
            self._running_work -= est
            self._pending_work += est
            self.running -= 1
            self._pending += 1
            if self._quotas:
                self._tenant_pending[task.tenant] = self._tenant_pending.get(task.tenant, 0) + 1
            task.attempts -= 1
        if not agent.paused:
            self._free_slots += max(agent.free_slots, 0) - free_before
        return withdrawn

    def _return_backlog(self, agent: AgentState, now: float) -> list[Task]:
        requeued = agent.take_backlog()
        for task in reversed(requeued):
            self._to_queue_front(task, now)
        return requeued

    def _schedule(self, when: float, kind: int, payload: Any) -> None:
        heapq.heappush(self._timers, (when, next(self._timer_seq), kind, payload))

    def wake_at(self, when: float) -> None:
        """Call the guard's `tick` at `when` (the guard asks; the earliest ask wins)."""
        if when < self._guard_due:
            self._guard_due = when
            self._schedule(when, _GUARD, None)

    def _run_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, kind, payload = heapq.heappop(timers)
            if kind == _RETRY:
                task: Task = payload
                self.queue.push(task, now, front=True)
            elif kind == _RESUME:
                agent_id, token = payload
                if self._pause_tokens.get(agent_id) == token:
                    self.resume(agent_id, "pause over")
            elif self.guard is not None and payload is None and self._guard_due <= now:
                self._guard_due = float("inf")
                due = self.guard.tick(now)
                if due is not None:
                    self.wake_at(due)

    def _choose_avoiding(self, task: Task, now: float) -> AgentState | None:
        """Choose as usual, but not `task.avoid` unless nobody else can take it."""
        avoided = self.agents.get(task.avoid or "")
        task.avoid = None
        if avoided is None or avoided.paused or len(self.agents) < 2:
            return self._direct.choose(task, now)
        avoided.paused = True
        try:
            agent = self._direct.choose(task, now)
        finally:
            avoided.paused = False
            avoided.version += 1
            self._direct.changed(avoided, now)
        return agent if agent is not None else self._direct.choose(task, now)

    def _retry_steals(self) -> None:
        now = self.clock()
        for agent in list(self._thieves.values()):
            while agent.alive and agent.has_free_slot and not agent.backlog_size:
                if not self._steal(agent, now):
                    break
            if not agent.alive or agent.paused or agent.in_flight >= agent.slots:
                del self._thieves[agent.id]

    def _backfill(self, held: Task, now: float) -> bool:
        """The strategy keeps `held` waiting for a better agent: look a few tasks further
        for one that an agent can take now, so that a free slot is not left idle behind a
        task that is too big for it. Everything not taken goes back in its place."""
        if self.in_place and self.guard is None and not self._bulkheads_on:
            line = self.queue.line(self.lookahead)
            if line is not None:
                return self._backfill_in_place(held, line, now)
        waiting = [held]
        bound = False
        for _ in range(self.lookahead):
            task = self.queue.pop(now)
            if task is None:
                break
            agent = self._direct.choose(task, now)
            if agent is not None and (not self.bulkheads or self.bulkheads.try_enter(task)):
                self._bind(agent, task, now)
                bound = True
                break
            waiting.append(task)
        for task in reversed(waiting):
            self.queue.push(task, now, front=True)
        return bound

    def _backfill_in_place(self, held: Task, line: list[Task], now: float) -> bool:
        """`_backfill` when the queue's order is one line: decide on the tasks behind
        `held` where they stand, skip those the strategy would keep waiting too, and take
        out only the one bound; the queue charges the turns the pops would have."""
        strategy = self._direct
        limit = strategy.refused_from(now)
        bound = False
        for i in range(len(line)):
            task = line[i]
            if task.est_cost >= limit:
                continue  # `choose` would keep it waiting too, having changed nothing
            agent = strategy.choose(task, now)
            if agent is not None:
                self._bind(agent, self.queue.take(line, i, now), now)
                bound = True
                break
            limit = strategy.refused_from(now)
        if not bound:
            self.queue.looked(line, len(line), now)
        self.queue.push(held, now, front=True)
        return bound

    def _bind(self, agent: AgentState, task: Task, now: float) -> None:
        strategy = self._direct
        strategy.assigned(agent, task)
        if agent.in_flight < agent.slots:
            self._start(agent, task, now)
        else:
            agent.enqueue(task)
        agent.version += 1
        strategy.changed(agent, now)

    def _start(self, agent: AgentState, task: Task, now: float) -> bool:
        """Start `task` on `agent`, unless the guard makes the agent wait (then the task
        goes back to the queue, and the agent is paused)."""
        if self.guard is not None:
            wait = self.guard.before_start(agent, task, now)
            if wait > 0:
                self._to_queue_front(task, now)
                self.suspend(agent.id, now + wait, "must wait before its next task")
                return False
        est = task.est_cost
        self._pending_work -= est
        self._running_work += est
        agent.in_flight += 1
        agent.running_work += est
        agent.running_started(task, now + est / agent.speed)
        task.attempts += 1
        self._free_slots -= 1
        self._pending -= 1
        if self._quotas:
            self._tenant_pending[task.tenant] -= 1
        self.running += 1
        self._start_agents.append(agent)
        self._start_tasks.append(task)
        return True

    def _refill(self, agent: AgentState, now: float) -> None:
        while agent.backlog_size and agent.in_flight < agent.slots and not agent.paused:
            nxt = agent.dequeue()
            if not self._start(agent, nxt, now):
                break

    def finish(
        self,
        agent_id: str,
        task: Task,
        started: float,
        finished: float,
        error: str | None = None,
        value: Any = None,
    ) -> TaskResult | None:
        """Record that `task` ran on `agent_id`; refill the agent's freed slot.

        Returns its result, or None when the guard sends it round again (a retry).
        """
        cost = task.cost
        if error is not None or cost is None or not self._plain:
            results = self.finish_many(agent_id, ((task, started, finished, error, value),))
            return results[0] if results else None
        # `finish_many` for one successful task of known cost, with no guard, bulkheads or
        # stealing to consult: the per-task path of a simulation. Every figure comes out
        # exactly as `finish_many` makes it.
        agent = self.agents.get(agent_id) or self._draining.get(agent_id)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No agent is called {agent_id!r}.")
        if not agent.running_stopped(task):
            self.emit(DUPLICATE_RESULT_IGNORED, task.id, agent=agent_id)
            return None
        service = finished - started
        est = task.est_cost
        result = TaskResult(
            task.id,
            SUCCEEDED,
            agent_id,
            task.attempts,
            task.enqueued_at,
            started,
            finished,
            None,
            value,
            task.kind,
            task.tenant,
            cost,
            task.fallback_from,
        )
        paused = agent.paused
        slots = agent.slots
        in_flight = agent.in_flight
        free_before = 0 if paused or in_flight > slots else slots - in_flight
        agent.in_flight = in_flight = in_flight - 1
        agent.running_work -= est
        self._running_work -= est
        speed_before = agent.speed
        agent.busy_time += service
        agent.completed += 1
        self.running -= 1
        self.completed += 1
        if cost > 0 and service > 0:
            agent.observe(cost, service)
        if agent.alive:
            self._total_speed += (agent.speed - speed_before) * agent.concurrency
            if not paused:
                self._free_slots += (slots - in_flight if slots > in_flight else 0) - free_before
                if agent.backlog_size and not agent.paused and in_flight < agent.slots:
                    self._start(agent, agent.dequeue(), finished)
            agent.version += 1
            self._direct.changed(agent, finished)
        elif in_flight == 0:
            self._draining.pop(agent_id, None)
        return result

    def finish_many(
        self,
        agent_id: str,
        done: Iterable[tuple[Task, float, float, str | None, Any]],
        into: ResultColumns | None = None,
    ) -> list[TaskResult]:
        """Record tasks that `agent_id` finished, in order; refill its freed slots.

        Per-agent figures are updated once per batch: a batch of quick tasks costs little
        more than its results. A task that the guard retries or degrades gets no result
        yet; it goes round again. The results are returned, or with `into` recorded there
        as rows (and none returned).
        """
        agent = self.agents.get(agent_id) or self._draining.get(agent_id)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No agent is called {agent_id!r}.")
        guard = self.guard
        bulkheads = self.bulkheads if self._bulkheads_on else None
        results: list[TaskResult] = []
        append = results.append
        n = n_errors = n_failed = n_unknown = n_results = 0
        busy = est = known_work = known_busy = unknown_busy = 0.0
        last = 0.0
        for task, started, finished, error, value in done:
            if not agent.running_stopped(task):
                # A report for a task already re-queued after its agent was declared
                # lost: the other run's result is the one that counts.
                self.emit(DUPLICATE_RESULT_IGNORED, task.id, agent=agent_id)
                continue
            service = finished - started
            busy += service
            est += task.est_cost
            cost = task.cost
            n += 1
            last = finished
            if error is not None:
                n_errors += 1
            # Speeds are learnt from successful work only: a failure or a zero-cost
            # task says nothing about how fast the agent works.
            elif cost is None:
                unknown_busy += service
                n_unknown += 1
            elif cost > 0:
                known_work += cost
                known_busy += service
            if guard is not None:
                verdict = guard.after_finish(agent, task, started, finished, error)
                if verdict is not None:
                    self._go_round_again(task, verdict, finished)
                    continue
            if bulkheads is not None:
                freed = bulkheads.leave(task, done=True)
                if freed is not None:
                    self.queue.push(freed, finished, front=True)
            if error is not None:
                n_failed += 1
            if into is not None:
                into.add(task, agent_id, started, finished, error, value)
                n_results += 1
                continue
            append(
                TaskResult(
                    task.id,
                    SUCCEEDED if error is None else FAILED,
                    agent_id,
                    task.attempts,
                    task.enqueued_at,
                    started,
                    finished,
                    error,
                    value,
                    task.kind,
                    task.tenant,
                    cost,
                    task.fallback_from,
                )
            )
        if n == 0:
            return results
        paused = agent.paused
        slots = agent.slots
        free_before = 0 if paused else max(slots - agent.in_flight, 0)
        agent.in_flight -= n
        agent.running_work -= est
        self._running_work -= est
        speed_before = agent.speed
        agent.busy_time += busy
        agent.completed += n - n_errors
        agent.failed += n_errors
        self.running -= n
        self.completed += len(results) + n_results - n_failed
        self.failed += n_failed
        if unknown_busy > 0:
            # Work of tasks that came without a cost: their time at the agent's speed.
            sample = unknown_busy * agent.speed
            per_task = sample / n_unknown
            if self._cost_measured:
                self.unknown_cost += EWMA_ALPHA * (per_task - self.unknown_cost)
            else:
                self.unknown_cost, self._cost_measured = per_task, True
            agent.observe(sample, unknown_busy)
        if known_busy > 0:
            agent.observe(known_work, known_busy)
        if agent.alive:
            self._total_speed += (agent.speed - speed_before) * agent.concurrency
            if not paused:
                self._free_slots += max(slots - agent.in_flight, 0) - free_before
                steals = self._steals
                for _ in range(n):
                    if agent.paused or agent.in_flight >= agent.slots:
                        break
                    if agent.backlog_size:
                        self._start(agent, agent.dequeue(), last)
                    elif not steals or not self._steal(agent, last):
                        break
            agent.version += 1
            self._direct.changed(agent, last)
        elif agent.in_flight == 0:
            self._draining.pop(agent_id, None)
        return results

    def _go_round_again(self, task: Task, verdict: Retry | Fallback, now: float) -> None:
        """A finished attempt that does not end the task: queue it again."""
        if self.bulkheads:
            freed = self.bulkheads.leave(task, done=False)
            if freed is not None:
                self.queue.push(freed, now, front=True)
        self._pending += 1
        if self._quotas:
            self._tenant_pending[task.tenant] = self._tenant_pending.get(task.tenant, 0) + 1
        self._pending_work += task.est_cost
        if isinstance(verdict, Retry):
            self.retried += 1
            task.avoid = verdict.avoid
            self.emit(
                RETRY,
                task.id,
                kind=task.kind,
                attempt=task.attempts,
                delay=verdict.delay,
                reason=verdict.reason,
            )
            if verdict.delay > 0:
                self._schedule(now + verdict.delay, _RETRY, task)
                return
        else:
            self.emit(FALLBACK, task.id, kind=task.kind, to=verdict.kind, reason=verdict.reason)
            task.fallback_from = task.fallback_from or task.kind
            task.kind = verdict.kind
        self.queue.push(task, now, front=True)

    def _steal(self, thief: AgentState, now: float) -> bool:
        if not self._steals or thief.paused:
            return False
        victim = self._direct.steal_from(thief, now)
        if victim is None or not victim.backlog_size:
            self._thieves[thief.id] = thief
            return False
        task = victim.dequeue_last()
        victim.version += 1
        self._direct.changed(victim, now)
        self._direct.assigned(thief, task)
        self.stolen += 1
        return self._start(thief, task, now)

    def statistics(self) -> CoordinatorStatistics:
        return CoordinatorStatistics(
            queued=len(self.queue),
            pending=self._pending,
            running=self.running,
            agents=len(self.agents),
            paused=sum(a.paused for a in self.agents.values()),
            draining=len(self._draining),
            submitted=self.submitted,
            completed=self.completed,
            failed=self.failed,
            rejected=self.rejected,
            requeued=self.requeued,
            retried=self.retried,
            stolen=self.stolen,
        )

"""The coordinator: an I/O-free state machine that binds queued tasks to agents.

Events in (`submit`, `completed`, `add_agent`, `remove_agent`, `agent_lost`), instructions
out (`take_starts`: which task to start on which agent now). The async, process, Ray and
simulated shells all drive this same object, so a strategy behaves identically under each.
The clock is injected; nothing here sleeps or does I/O.

Invariant: an agent only has a backlog while all its slots are busy, so a free slot is
always filled at once from the agent's own backlog, by stealing, or from the queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from swarmperf.balancing.agents import EWMA_ALPHA, AgentState
from swarmperf.balancing.strategies import LoadBalancer
from swarmperf.errors import Backpressure, ConfigError, QuotaExceeded
from swarmperf.model import AgentSpec, Task, TaskResult, TaskStatus
from swarmperf.queueing import QueueSettings, TaskQueue

Clock = Callable[[], float]
SUCCEEDED = TaskStatus.SUCCEEDED
FAILED = TaskStatus.FAILED


@dataclass(frozen=True, slots=True)
class CoordinatorStatistics:
    queued: int
    pending: int
    running: int
    agents: int
    draining: int
    submitted: int
    completed: int
    failed: int
    requeued: int
    stolen: int


class Coordinator:
    """Binds tasks to agents with a `LoadBalancer`, keeps every task accounted for."""

    def __init__(
        self,
        strategy: LoadBalancer,
        queue: QueueSettings | None = None,
        *,
        clock: Clock = time.perf_counter,
        lookahead: int = 8,
    ) -> None:
        if lookahead < 0:
            raise ConfigError("lookahead", lookahead, "Use an integer >= 0.")
        self.strategy = strategy
        # How many queued tasks to look past when the strategy holds the first one back.
        self.lookahead = lookahead
        self.queue = TaskQueue(queue)
        self.settings = self.queue.settings
        self.clock = clock
        self.agents: dict[str, AgentState] = {}
        self._draining: dict[str, AgentState] = {}
        self._next_index = 0
        self._free_slots = 0
        self._pending = 0  # submitted, not yet started: the queue and every backlog
        self._tenant_pending: dict[str, int] = {}
        self._starts: list[tuple[AgentState, Task]] = []
        # Idle agents whose last attempt to steal found nothing worth taking; they try
        # again whenever the coordinator binds, since the others' queues keep changing.
        self._thieves: dict[str, AgentState] = {}
        self._late = strategy.late_binding
        # Estimated cost of a task that brings none: the mean measured work per task.
        self.unknown_cost = 1.0
        self._cost_measured = False
        self.submitted = 0
        self.completed = 0
        self.failed = 0
        self.requeued = 0
        self.stolen = 0
        self.running = 0
        # Estimated work not yet started, and running, in cost units; total measured speed.
        self._pending_work = 0.0
        self._running_work = 0.0
        self._total_speed = 0.0
        strategy.attach(self)

    # -- agents -------------------------------------------------------------------------

    def add_agent(self, spec: AgentSpec) -> AgentState:
        if spec.id in self.agents or spec.id in self._draining:
            raise ConfigError("agent.id", spec.id, "Agent ids must be unique in a swarm.")
        agent = AgentState(spec, self._next_index)
        self._next_index += 1
        self.agents[spec.id] = agent
        self._free_slots += agent.slots
        self._total_speed += agent.speed * agent.concurrency
        self.strategy.add(agent, self.clock())
        if self.strategy.steals:
            self._thieves[agent.id] = agent
        return agent

    def remove_agent(self, agent_id: str) -> list[Task]:
        """Stop giving `agent_id` work. Its queued tasks go back to the front of the queue;
        tasks it is running may still complete. Returns the re-queued tasks."""
        agent = self.agents.pop(agent_id, None)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No live agent is called {agent_id!r}.")
        agent.alive = False
        self._total_speed -= agent.speed * agent.concurrency
        self._pending_work -= agent.backlog_work
        self.strategy.remove(agent)
        self._free_slots -= max(agent.free_slots, 0)
        requeued = list(agent.backlog)
        agent.backlog.clear()
        agent.backlog_work = 0.0
        now = self.clock()
        for task in reversed(requeued):
            self.queue.push(task, now, front=True)
            self._pending_work += task.est_cost
        if agent.in_flight:
            self._draining[agent_id] = agent
        return requeued

    def agent_lost(self, agent_id: str, in_flight: list[Task], reason: str) -> list[Task]:
        """The agent died with `in_flight` unfinished: they are queued again, first in line."""
        agent = self.agents.get(agent_id) or self._draining.get(agent_id)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No agent is called {agent_id!r}.")
        requeued = self.remove_agent(agent_id) if agent.alive else []
        self._draining.pop(agent_id, None)
        now = self.clock()
        for task in reversed(in_flight):
            if agent.running_ends.pop(task.id, None) is None:
                continue  # already completed: never run a task twice
            agent.in_flight -= 1
            self.running -= 1
            self._pending += 1
            self._tenant_pending[task.tenant] = self._tenant_pending.get(task.tenant, 0) + 1
            self.requeued += 1
            self._pending_work += task.est_cost
            self._running_work -= task.est_cost
            self.queue.push(task, now, front=True)
            requeued.append(task)
        agent.running_work = 0.0
        return requeued

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
        """Admit `task` or raise `Backpressure` (nothing is queued then)."""
        settings = self.settings
        if self._pending >= settings.max_queued:
            raise Backpressure(task.id, self._pending, settings.max_queued)
        tenant = task.tenant
        tenant_pending = self._tenant_pending.get(tenant, 0)
        if settings.tenant_quotas:
            quota = settings.tenant_quotas.get(tenant)
            if quota is not None and tenant_pending >= quota:
                raise QuotaExceeded(task.id, tenant, tenant_pending, quota)
        self._tenant_pending[tenant] = tenant_pending + 1
        task.est_cost = est = self.unknown_cost if task.cost is None else task.cost
        self._pending_work += est
        self._pending += 1
        self.submitted += 1
        self.queue.push(task, self.clock())

    def submit_many(self, tasks: list[Task]) -> int:
        """Admit tasks in order until one is refused; return how many were admitted.

        The same rules as `submit`, in one loop: the batch path for large workloads.
        """
        n = 0
        for task in tasks:
            try:
                self.submit(task)
            except Backpressure:
                break
            n += 1
        return n

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def horizon(self) -> float:
        """Seconds to finish all known work at the measured speeds, perfectly balanced."""
        if self._total_speed <= 0:
            return 0.0
        return max(self._pending_work + self._running_work, 0.0) / self._total_speed

    @property
    def idle(self) -> bool:
        """Nothing queued, bound or running."""
        return self._pending == 0 and self.running == 0

    def take_starts(self) -> list[tuple[AgentState, Task]]:
        """Bind what can be bound now and return the tasks to start, in order."""
        queue = self.queue
        if queue._len and (self._free_slots > 0 or not self._late):
            now = self.clock()
            choose = self.strategy.choose
            while queue._len:
                if self._late and self._free_slots <= 0:
                    break
                task = queue.pop(now)
                if task is None:
                    break
                agent = choose(task, now)
                if agent is None:
                    if not self._backfill(task, now):
                        break
                    continue
                self._bind(agent, task, now)
        if self._thieves:
            self._retry_steals()
        starts = self._starts
        self._starts = []
        return starts

    def cancel_pending(self, reason: str) -> list[TaskResult]:
        """Withdraw every task not yet started (queued or bound to an agent's queue).

        Each comes back as a CANCELLED result carrying `reason`; running tasks are left to
        finish. Nothing is dropped without a result.
        """
        now = self.clock()
        withdrawn = self.queue.drain()
        for agent in self.agents.values():
            withdrawn.extend(agent.backlog)
            agent.backlog.clear()
            agent.backlog_work = 0.0
            agent.version += 1
            self.strategy.changed(agent, now)
        self._pending = 0
        self._pending_work = 0.0
        self._tenant_pending.clear()
        return [
            TaskResult(
                task.id,
                TaskStatus.CANCELLED,
                None,
                task.attempts,
                task.enqueued_at,
                None,
                None,
                reason,
                None,
                task.kind,
                task.tenant,
                task.cost,
            )
            for task in withdrawn
        ]

    def _retry_steals(self) -> None:
        now = self.clock()
        for agent in list(self._thieves.values()):
            while agent.alive and agent.in_flight < agent.slots and not agent.backlog:
                if not self._steal(agent, now):
                    break
            if not agent.alive or agent.in_flight >= agent.slots:
                del self._thieves[agent.id]

    def _backfill(self, held: Task, now: float) -> bool:
        """The strategy keeps `held` waiting for a better agent: look a few tasks further
        for one that an agent can take now, so that a free slot is not left idle behind a
        task that is too big for it. Everything not taken goes back in its place."""
        waiting = [held]
        bound = False
        for _ in range(self.lookahead):
            task = self.queue.pop(now)
            if task is None:
                break
            agent = self.strategy.choose(task, now)
            if agent is not None:
                self._bind(agent, task, now)
                bound = True
                break
            waiting.append(task)
        for task in reversed(waiting):
            self.queue.push(task, now, front=True)
        return bound

    def _bind(self, agent: AgentState, task: Task, now: float) -> None:
        self.strategy.assigned(agent, task)
        if agent.in_flight < agent.slots:
            self._start(agent, task, now)
        else:
            agent.backlog.append(task)
            agent.backlog_work += task.est_cost
        agent.version += 1
        self.strategy.changed(agent, now)

    def _start(self, agent: AgentState, task: Task, now: float) -> None:
        est = task.est_cost
        self._pending_work -= est
        self._running_work += est
        agent.in_flight += 1
        agent.running_work += est
        agent.running_ends[task.id] = now + task.est_cost / agent.speed
        task.attempts += 1
        self._free_slots -= 1
        self._pending -= 1
        self._tenant_pending[task.tenant] -= 1
        self.running += 1
        self._starts.append((agent, task))

    def finish(
        self,
        agent_id: str,
        task: Task,
        started: float,
        finished: float,
        error: str | None = None,
        value: Any = None,
    ) -> TaskResult:
        """Record that `task` ran on `agent_id`; refill the agent's freed slot."""
        return self.finish_many(agent_id, ((task, started, finished, error, value),))[0]

    def finish_many(
        self, agent_id: str, done: Iterable[tuple[Task, float, float, str | None, Any]]
    ) -> list[TaskResult]:
        """Record tasks that `agent_id` finished, in order; refill its freed slots.

        Per-agent figures are updated once per batch: a batch of quick tasks costs little
        more than its results.
        """
        agent = self.agents.get(agent_id) or self._draining.get(agent_id)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No agent is called {agent_id!r}.")
        ends = agent.running_ends
        results: list[TaskResult] = []
        append = results.append
        succeeded = SUCCEEDED
        failed_status = FAILED
        n = n_failed = n_unknown = 0
        busy = est = known_work = known_busy = unknown_busy = 0.0
        last = 0.0
        for task, started, finished, error, value in done:
            if ends.pop(task.id, None) is None:
                raise ConfigError("task", task.id, f"Task was not running on {agent_id!r}.")
            service = finished - started
            busy += service
            est += task.est_cost
            cost = task.cost
            n += 1
            if error is None:
                status = succeeded
                # Speeds are learnt from successful work only: a failure or a zero-cost
                # task says nothing about how fast the agent works.
                if cost is None:
                    unknown_busy += service
                    n_unknown += 1
                elif cost > 0:
                    known_work += cost
                    known_busy += service
            else:
                status = failed_status
                n_failed += 1
            last = finished
            append(
                TaskResult(
                    task.id,
                    status,
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
                )
            )
        if n == 0:
            return results
        agent.in_flight -= n
        agent.running_work -= est
        self._running_work -= est
        speed_before = agent.speed
        agent.busy_time += busy
        agent.completed += n - n_failed
        agent.failed += n_failed
        self.running -= n
        self.completed += n - n_failed
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
            self._free_slots += n
            backlog = agent.backlog
            for _ in range(n):
                if backlog:
                    nxt = backlog.popleft()
                    agent.backlog_work -= nxt.est_cost
                    self._start(agent, nxt, last)
                elif not self._steal(agent, last):
                    break
            agent.version += 1
            self.strategy.changed(agent, last)
        elif agent.in_flight == 0:
            self._draining.pop(agent_id, None)
        return results

    def _steal(self, thief: AgentState, now: float) -> bool:
        if not self.strategy.steals:
            return False
        victim = self.strategy.steal_from(thief, now)
        if victim is None or not victim.backlog:
            self._thieves[thief.id] = thief
            return False
        task = victim.backlog.pop()
        victim.backlog_work -= task.est_cost
        victim.version += 1
        self.strategy.changed(victim, now)
        self.strategy.assigned(thief, task)
        self.stolen += 1
        self._start(thief, task, now)
        return True

    def statistics(self) -> CoordinatorStatistics:
        return CoordinatorStatistics(
            queued=len(self.queue),
            pending=self._pending,
            running=self.running,
            agents=len(self.agents),
            draining=len(self._draining),
            submitted=self.submitted,
            completed=self.completed,
            failed=self.failed,
            requeued=self.requeued,
            stolen=self.stolen,
        )

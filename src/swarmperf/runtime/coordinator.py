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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from swarmperf.balancing.agents import EWMA_ALPHA, AgentState
from swarmperf.balancing.strategies import LoadBalancer
from swarmperf.errors import Backpressure, ConfigError, QuotaExceeded
from swarmperf.model import AgentSpec, Task, TaskResult, TaskStatus
from swarmperf.queueing import QueueSettings, TaskQueue

Clock = Callable[[], float]


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
    ) -> None:
        self.strategy = strategy
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

    # -- agents -------------------------------------------------------------------------

    def add_agent(self, spec: AgentSpec) -> AgentState:
        if spec.id in self.agents or spec.id in self._draining:
            raise ConfigError("agent.id", spec.id, "Agent ids must be unique in a swarm.")
        agent = AgentState(spec, self._next_index)
        self._next_index += 1
        self.agents[spec.id] = agent
        self._free_slots += agent.concurrency
        self.strategy.add(agent, self.clock())
        return agent

    def remove_agent(self, agent_id: str) -> list[Task]:
        """Stop giving `agent_id` work. Its queued tasks go back to the front of the queue;
        tasks it is running may still complete. Returns the re-queued tasks."""
        agent = self.agents.pop(agent_id, None)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No live agent is called {agent_id!r}.")
        agent.alive = False
        self.strategy.remove(agent)
        self._free_slots -= max(agent.free_slots, 0)
        requeued = list(agent.backlog)
        agent.backlog.clear()
        agent.backlog_work = 0.0
        now = self.clock()
        for task in reversed(requeued):
            self.queue.push(task, now, front=True)
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
        task.est_cost = self.unknown_cost if task.cost is None else task.cost
        self._pending += 1
        self.submitted += 1
        self.queue.push(task, self.clock())

    @property
    def pending(self) -> int:
        return self._pending

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
                    queue.push(task, now, front=True)
                    break
                self._bind(agent, task, now)
        starts = self._starts
        self._starts = []
        return starts

    def _bind(self, agent: AgentState, task: Task, now: float) -> None:
        self.strategy.assigned(agent, task)
        if agent.in_flight < agent.concurrency:
            self._start(agent, task, now)
        else:
            agent.backlog.append(task)
            agent.backlog_work += task.est_cost
        agent.version += 1
        self.strategy.changed(agent, now)

    def _start(self, agent: AgentState, task: Task, now: float) -> None:
        agent.in_flight += 1
        agent.running_work += task.est_cost
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
        agent = self.agents.get(agent_id) or self._draining[agent_id]
        if agent.running_ends.pop(task.id, None) is None:
            raise ConfigError("task", task.id, f"Task was not running on agent {agent_id!r}.")
        agent.in_flight -= 1
        agent.running_work -= task.est_cost
        self.running -= 1
        service = finished - started
        agent.busy_time += service
        work = task.cost
        if work is None:
            work = self.unknown_cost
            # Measured work of a cost-less task: its time at the agent's measured speed.
            sample = service * agent.speed
            if self._cost_measured:
                self.unknown_cost += EWMA_ALPHA * (sample - self.unknown_cost)
            elif sample > 0:
                self.unknown_cost, self._cost_measured = sample, True
        agent.observe(work, service)
        if error is None:
            agent.completed += 1
            self.completed += 1
            status = TaskStatus.SUCCEEDED
        else:
            agent.failed += 1
            self.failed += 1
            status = TaskStatus.FAILED
        result = TaskResult(
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
            task.cost,
        )
        if agent.alive:
            self._free_slots += 1
            now = finished
            if agent.backlog:
                nxt = agent.backlog.popleft()
                agent.backlog_work -= nxt.est_cost
                self._start(agent, nxt, now)
            else:
                self._steal(agent, now)
            agent.version += 1
            self.strategy.changed(agent, now)
        elif agent.in_flight == 0:
            self._draining.pop(agent_id, None)
        return result

    def _steal(self, thief: AgentState, now: float) -> None:
        victim = self.strategy.steal_from(thief, now)
        if victim is None or not victim.backlog:
            return
        task = victim.backlog.pop()
        victim.backlog_work -= task.est_cost
        victim.version += 1
        self.strategy.changed(victim, now)
        self.strategy.assigned(thief, task)
        self.stolen += 1
        self._start(thief, task, now)

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

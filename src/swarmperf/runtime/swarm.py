"""The async shell around the coordinator: a swarm you submit tasks to and await."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import overload

from swarmperf.balancing.strategies import LoadBalancer, get_strategy
from swarmperf.core.errors import AgentCrashed, ConfigError, NoAgents
from swarmperf.core.events import (
    AGENT_GIVEN_UP,
    AGENT_PLACED,
    AGENT_RESTART_FAILED,
    AGENT_RESTARTED,
    DUPLICATE_SUBMISSION,
    Event,
)
from swarmperf.core.handlers import Handler, HandlerRegistry
from swarmperf.core.model import AgentSpec, Task, TaskResult, TaskStatus
from swarmperf.core.queueing import QueueSettings
from swarmperf.resilience.bulkheads import BulkheadSettings
from swarmperf.resilience.policy import Guard
from swarmperf.resilience.restart import RestartPolicy, Restarts
from swarmperf.routing import TopologySettings
from swarmperf.runtime.backend import Backend, Done, with_prefetch
from swarmperf.runtime.coordinator import Coordinator, ResultColumns, unrun_result
from swarmperf.runtime.messaging import MessageBus, Traffic

EVENTS_KEPT = 10_000
ResultListener = Callable[[TaskResult], None]
EventListener = Callable[[Event], None]
_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(TaskResult))


def _fields(result: TaskResult) -> tuple[object, ...]:
    return tuple(getattr(result, name) for name in _RESULT_FIELDS)


def _same(result: TaskResult, other: object) -> bool:
    """Whether `other` is `result` or a result with the same fields (`Results` makes a
    new object at each read, so identity alone would not do)."""
    return result is other or (isinstance(other, TaskResult) and _fields(result) == _fields(other))


class Results(Sequence[TaskResult]):
    """Results of a `Swarm.run`, in order, made into `TaskResult`s as they are read.

    The swarm keeps results as columns (`ResultColumns`); a run of many quick tasks then
    makes no object per task while it runs, and a reader that looks at each result and
    keeps none (counting failures, summing latencies) makes the garbage collector no work.
    Each read makes a new `TaskResult`: compare results by their fields, as `==` between
    two `Results`, or a `Results` and a list, does.
    """

    __slots__ = ("_columns", "_rows")

    def __init__(self, columns: ResultColumns, rows: list[int]) -> None:
        self._columns = columns
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> TaskResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[TaskResult]: ...

    def __getitem__(self, index: int | slice) -> TaskResult | list[TaskResult]:
        if isinstance(index, slice):
            return self._columns.results(self._rows[index])
        return self._columns.result(self._rows[index])

    def __iter__(self) -> Iterator[TaskResult]:
        return self._columns.iterate(self._rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Results | list | tuple):
            return len(self) == len(other) and all(
                _same(a, b) for a, b in zip(self, other, strict=True)
            )
        return NotImplemented

    def __contains__(self, value: object) -> bool:
        return any(_same(result, value) for result in self)

    def index(self, value: object, start: int = 0, stop: int | None = None) -> int:
        for i in range(len(self))[start:stop]:
            if _same(self[i], value):
                return i
        raise ValueError(f"{value!r} is not among these results")

    def count(self, value: object) -> int:
        return sum(1 for result in self if _same(result, value))

    __hash__ = None  # type: ignore[assignment]  # (mutable contents, as a list's)

    def __repr__(self) -> str:
        return f"Results({list(self)!r})"


class Swarm:
    """A set of agents behind one queue and one load-balancing strategy.

    Use as `async with Swarm(agents) as swarm: results = await swarm.run(tasks)`.
    Nothing starts before `__aenter__`; `__aexit__` drains what was submitted, then stops.
    Agents' handlers message each other with `agent.send`, routed by `topology`;
    `messages` counts them (`swarmperf.runtime.messaging`).
    """

    def __init__(
        self,
        agents: Sequence[AgentSpec],
        *,
        strategy: str | LoadBalancer = "capacity-aware",
        backend: Backend | None = None,
        queue: QueueSettings | None = None,
        handlers: Mapping[str, Handler] | HandlerRegistry | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        guard: Guard | None = None,
        bulkheads: Mapping[str, BulkheadSettings] | None = None,
        restart: RestartPolicy | None = None,
        keep_results: bool = True,
        topology: TopologySettings | None = None,
        traffic: Traffic | None = None,
    ) -> None:
        if backend is None:
            from swarmperf.runtime.local import LocalBackend

            backend = LocalBackend()
        if isinstance(strategy, str):
            strategy = get_strategy(strategy, seed=seed, transfer_cost=backend.transfer_cost)
        self.strategy = strategy
        # Kept for strategies made later by name (`set_strategy`).
        self.seed = seed
        self.backend = backend
        self.handlers = (
            handlers if isinstance(handlers, HandlerRegistry) else HandlerRegistry(handlers)
        )
        self.coordinator = Coordinator(
            strategy, queue, clock=clock, guard=guard, bulkheads=bulkheads
        )
        self.clock = clock
        # Agents' messages to each other, routed by `topology` (mesh: direct); `traffic`
        # adds what each finished task sends beside what its handler sent.
        self.messages = MessageBus(backend.run, clock, topology, traffic=traffic)
        # Kept results, as columns until read (`results`); how many of them `results` shows.
        self._columns = ResultColumns()
        self._results: list[TaskResult] = []
        self._shown = 0
        self.lost_agents: list[tuple[str, str]] = []
        self._initial_agents = list(agents)
        self._listeners: list[ResultListener] = []
        self._event_listeners: list[EventListener] = []
        # The latest events, and how many of each kind there have been: bounded, so that
        # a long overload (an event per shed task) does not grow memory without end.
        self.events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self.event_counts: Counter[str] = Counter()
        self._wakeup_at = float("inf")
        self._wakeup_handle: asyncio.TimerHandle | None = None
        self._futures: dict[str, asyncio.Future[TaskResult]] = {}
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._progress_waiters: list[asyncio.Future[None]] = []
        self._started = False
        self.started_at: float | None = None
        self.restart = restart
        # Long or endless runs: results go to listeners only, so memory stays flat.
        self.keep_results = keep_results
        self._specs: dict[str, AgentSpec] = {}
        self._restarts = Restarts(restart) if restart is not None else None
        # One restart job per lost agent: it makes every attempt until one works or the
        # policy gives up, so a failed attempt is counted once and never starts a second job.
        self._restarting: dict[str, asyncio.Task[None]] = {}
        # Agents whose backend is starting them: the coordinator gets them once they are up.
        # A loss reported meanwhile is kept (agent -> reason): that start failed.
        self._starting: dict[str, str | None] = {}
        # Where each agent ran, in order (a restart may move it), for backends that place
        # agents on nodes (`node_of`): agent -> node ids.
        self.nodes: dict[str, list[str]] = {}

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Swarm:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self.drain()
        finally:
            await self.stop()

    async def start(self) -> None:
        attach_outbox = getattr(self.backend, "attach_outbox", None)
        if attach_outbox is not None:  # a backend whose handlers can send messages
            attach_outbox(self.messages.post)
        await self.backend.start(self, self.handlers)
        self._started = True
        self.started_at = self.clock()
        try:
            for spec in self._initial_agents:
                await self.add_agent(spec)
            # The run begins once every agent is up, on every backend alike: fault windows
            # count from here, not from a backend's start-up (seconds for worker processes).
            self.backend.begin(self.clock())
        except BaseException:
            # A swarm that could not start leaves nothing running: the agents already
            # started (worker processes, actors) stop with the backend.
            await self.stop()
            raise

    async def stop(self) -> None:
        self._started = False
        for job in list(self._restarting.values()):
            job.cancel()
        if self._wakeup_handle is not None:
            self._wakeup_handle.cancel()
            self._wakeup_handle = None
        await self.backend.stop()
        for fut in self._idle_waiters + self._progress_waiters:
            if not fut.done():
                fut.cancel()

    @property
    def results(self) -> list[TaskResult]:
        """Every result kept (`keep_results`), in the order recorded."""
        columns = self._columns
        if self._shown < len(columns):
            self._results += columns.results(range(self._shown, len(columns)))
            self._shown = len(columns)
        return self._results

    def on_result(self, listener: ResultListener) -> None:
        """Call `listener` with every result as it is recorded."""
        self._listeners.append(listener)

    def on_event(self, listener: EventListener) -> None:
        """Call `listener` with every event (breaker trips, retries, sheds...)."""
        self._event_listeners.append(listener)

    # -- agents -------------------------------------------------------------------------

    def emit(self, kind: str, subject: str, /, **detail: object) -> None:
        """Record an event from outside the coordinator (the monitor's findings, say) now,
        so that listeners and the event log have it even while the swarm is idle."""
        self.coordinator.emit(kind, subject, **detail)
        self._settle()

    async def add_agent(self, spec: AgentSpec) -> None:
        """Start `spec` on the backend, then give it work: no task is bound to an agent
        before it is up (a Ray actor may wait for room in the cluster, or never get it).
        A spec that leaves `prefetch` unset gets the backend's default (`with_prefetch`)."""
        coordinator = self.coordinator
        if spec.id in self._starting or spec.id in coordinator.agents:
            raise ConfigError("agent.id", spec.id, "Agent ids must be unique in a swarm.")
        spec = with_prefetch(spec, self.backend)
        self._specs[spec.id] = spec
        self._starting[spec.id] = None
        try:
            await self.backend.add_agent(spec)
        finally:
            lost = self._starting.pop(spec.id, None)
        if lost is not None:  # up, and gone again before it was given anything
            await self.backend.remove_agent(spec.id)
            raise AgentCrashed(spec.id, lost)
        try:
            coordinator.add_agent(spec)
        except BaseException:
            await self.backend.remove_agent(spec.id)
            raise
        self.messages.join(spec.id)
        node_of = getattr(self.backend, "node_of", None)
        where: tuple[str, str] | None = node_of(spec.id) if node_of is not None else None
        if where is not None:
            node, address = where
            ran_on = self.nodes.setdefault(spec.id, [])
            detail: dict[str, object] = {"node": node, "address": address}
            if ran_on:
                detail["previous"] = ran_on[-1]
            ran_on.append(node)
            coordinator.emit(AGENT_PLACED, spec.id, **detail)
        # Backends measure how long a hand-over takes; work stealing weighs it.
        self.strategy.transfer_cost = self.backend.transfer_cost
        self._pump()

    def agent_spec(self, agent_id: str) -> AgentSpec | None:
        """The spec `agent_id` was added with (None if it is not in the swarm), so that a
        removed agent can be added back as it was."""
        return self._specs.get(agent_id)

    async def remove_agent(self, agent_id: str) -> None:
        """Stop giving `agent_id` work; its queued tasks go to others; its running ones finish."""
        self._specs.pop(agent_id, None)
        self.messages.leave(agent_id)
        self.coordinator.remove_agent(agent_id)
        self._pump()
        await self.backend.remove_agent(agent_id)

    # -- control ------------------------------------------------------------------------

    def set_strategy(self, strategy: str | LoadBalancer) -> str:
        """Balance with `strategy` (a name in `STRATEGIES`, or a strategy) from now on,
        while tasks run; return the name of the strategy replaced.

        A name is made as `__init__` makes it: with the swarm's seed and the backend's
        transfer cost. No task is lost or run twice (`Coordinator.replace_strategy` says
        what happens to tasks waiting in agents' queues). An unknown name raises
        `UnknownName` and changes nothing.
        """
        if isinstance(strategy, str):
            strategy = get_strategy(
                strategy, seed=self.seed, transfer_cost=self.backend.transfer_cost
            )
        previous = self.coordinator.replace_strategy(strategy)
        self.strategy = strategy
        self._refresh()
        return previous

    def set_topology(self, topology: TopologySettings) -> TopologySettings:
        """Route agents' messages by `topology` from now on, while they travel: each
        message on its way goes on from the agent it is at by the new rule, so none is
        lost or delivered twice. Return the topology replaced."""
        previous = self.messages.set_topology(topology)
        self._settle()
        return previous

    def pause(self, reason: str = "swarm paused") -> None:
        """Give no agent new work until `resume`: running tasks finish, tasks waiting in an
        agent's queue go back to the central one, and submitted tasks wait there. Agents
        added meanwhile start paused. `drain` waits for the resume."""
        self.coordinator.hold(reason)
        self._settle()

    def resume(self, reason: str = "swarm resumed") -> None:
        """Undo `pause`: the agents take queued tasks again."""
        self.coordinator.release(reason)
        self._refresh()

    @property
    def paused(self) -> bool:
        """Whether the swarm is paused (`pause`)."""
        return self.coordinator.held

    def _refresh(self) -> None:
        """Start what a change of the rules allows now; a swarm not running starts
        nothing (its backend has no agents to run it on)."""
        if self._started:
            self._pump()
        else:
            self._settle()

    # -- tasks --------------------------------------------------------------------------

    def submit(self, task: Task) -> None:
        """Queue `task` now or raise `Backpressure`. The result arrives in `results`.

        A task whose `idempotency_key` was seen before is not queued again: the first
        task's result is the one recorded, exactly once.
        """
        if not self.coordinator.agents:
            raise NoAgents()
        if self.coordinator.repeats_key(task):
            return
        try:
            self.coordinator.submit(task)
        except BaseException:
            self.coordinator.forget_key(task)
            raise
        self._pump()

    async def execute(self, task: Task) -> TaskResult:
        """Submit `task` and wait for its result (the first one's, for a repeated
        idempotency key)."""
        key = task.idempotency_key
        first = None if key is None else self.coordinator.first_with_key(key)
        if key is not None and first is not None:
            for result in reversed(self.results):
                if result.task_id == first:
                    return result
            pending = self._futures.get(first)
            if pending is None:
                pending = asyncio.get_running_loop().create_future()
                self._futures[first] = pending
            self.coordinator.emit(DUPLICATE_SUBMISSION, task.id, key=key, first=first)
            return await asyncio.shield(pending)
        fut: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        self._futures[task.id] = fut
        try:
            self.submit(task)
        except BaseException:
            del self._futures[task.id]
            raise
        return await fut

    async def submit_all(self, tasks: Iterable[Task]) -> int:
        """Submit every task, waiting for room whenever the queue is full. Loses nothing."""
        if not self.coordinator.agents:
            raise NoAgents()
        submit_many = self.coordinator.submit_many
        pending = self.coordinator.without_repeats(tasks)
        total = len(pending)
        i = 0
        while i < total:
            # Chunks keep the first tasks flowing while the rest are still being queued.
            chunk = pending[i : i + 1024]
            admitted = submit_many(chunk)
            i += admitted
            self._pump()
            if admitted < len(chunk):
                await self._progress()
        return total

    async def run(self, tasks: Iterable[Task], *, ordered: bool = True) -> Results:
        """Submit every task, wait until all have finished, and return their results in
        the order the tasks were given (`results` and `on_result` have them as they finish).

        A task whose `idempotency_key` repeats an earlier one's has no result of its own;
        results of tasks submitted elsewhere meanwhile come last, as they finished.
        `ordered=False` returns them as they finished, sparing the reordering (at most
        about 0.2 µs a task, measured with results in random order: it matters only for
        no-op tasks by the million).
        Each result is made as it is read (`Results`); with `keep_results=False` there
        are none to return."""
        tasks = list(tasks)
        columns = self._columns
        first = len(columns)
        await self.submit_all(tasks)
        await self.drain()
        rows = columns.in_order(tasks, first) if ordered else list(range(first, len(columns)))
        return Results(columns, rows)

    def cancel_pending(self, reason: str) -> list[TaskResult]:
        """Withdraw every task that has not started; each gets a CANCELLED result."""
        cancelled = self.coordinator.cancel_pending(reason)
        self._record(cancelled)
        self._settle()
        return cancelled

    def cancel_running(self, reason: str) -> list[TaskResult]:
        """Give up on every task the agents are running: each gets a CANCELLED result with
        `reason` now, and its backend abandons it when the swarm stops (a late result is
        ignored). For the end of a run that cannot wait any longer; call `cancel_pending`
        first, or the agents start the next tasks."""
        running = getattr(self.backend, "running_tasks", None)
        if running is None:  # a backend that cannot say what it runs: let them finish
            return []
        cancelled: list[TaskResult] = []
        tasks: dict[str, list[Task]] = running()
        for agent_id, given in tasks.items():
            cancelled += self.coordinator.cancel_running(agent_id, given, reason)
        self._record(cancelled)
        self._settle()
        return cancelled

    def cancel_unsubmitted(self, tasks: Iterable[Task], reason: str) -> list[TaskResult]:
        """Give each of `tasks` that never reached the swarm (no result, nothing pending) a
        CANCELLED result with `reason`: for a workload cut short before all of it was
        due. Needs `keep_results`, and an idle swarm (after `cancel_pending` and
        `cancel_running`); otherwise it does nothing."""
        if not self.keep_results or not self.coordinator.idle:
            return []
        seen = {result.task_id for result in self.results}
        now = self.clock()
        cancelled = [
            unrun_result(task, TaskStatus.CANCELLED, reason, now)
            for task in tasks
            if task.id not in seen
        ]
        self._record(cancelled)
        return cancelled

    async def drain(self) -> None:
        """Wait until nothing is queued, waiting to be retried, or running, and no
        message is on its way."""
        while not self.coordinator.idle or not self.messages.idle:
            c = self.coordinator
            if not c.agents and not c.running and not self._restarting and not self._starting:
                raise NoAgents()
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(fut)
            await fut

    async def _progress(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._progress_waiters.append(fut)
        await fut

    def _pump(self) -> None:
        starts = self.coordinator.take_starts_by_id()
        if starts:
            self.backend.run(starts)
        self._settle()

    def _record(self, results: list[TaskResult]) -> None:
        if not results:
            return
        if self.keep_results:
            add = self._columns.add_result
            for result in results:
                add(result)
        for listener in self._listeners:
            for result in results:
                listener(result)
        futures = self._futures
        if futures:
            for result in results:
                fut = futures.pop(result.task_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(result)

    def _settle(self) -> None:
        """After any change: results that need no agent, events, timers, waiters."""
        coordinator = self.coordinator
        if coordinator._side_results:
            self._record(coordinator.take_results())
        if coordinator.events:
            events = coordinator.take_events()
            self.events.extend(events)
            self.event_counts.update(event.kind for event in events)
            for event_listener in self._event_listeners:
                for event in events:
                    event_listener(event)
        if coordinator._timers:
            self._arm_wakeup()
        if self._progress_waiters:
            self._wake(self._progress_waiters)
        if self._idle_waiters and (
            (coordinator.idle and self.messages.idle) or not coordinator.agents
        ):
            self._wake(self._idle_waiters)

    def _arm_wakeup(self) -> None:
        when = self.coordinator.next_wakeup()
        if when is None or when >= self._wakeup_at or not self._started:
            return
        if self._wakeup_handle is not None:
            self._wakeup_handle.cancel()
        self._wakeup_at = when
        delay = max(when - self.clock(), 0.0)
        self._wakeup_handle = asyncio.get_running_loop().call_later(delay, self._on_wakeup)

    def _on_wakeup(self) -> None:
        self._wakeup_handle = None
        self._wakeup_at = float("inf")
        if self._started:
            self._pump()

    # -- CompletionSink -----------------------------------------------------------------

    def tasks_done(self, agent_id: str, done: Sequence[Done]) -> None:
        messages = self.messages
        if messages.pending:  # some of these may be messages' hops
            done = messages.take_done(agent_id, done)
        if messages.traffic is not None:
            for entry in done:
                if entry[3] is None:
                    messages.handled(agent_id, entry[0])
        coordinator = self.coordinator
        if self.keep_results and not self._listeners and not self._futures:
            # Nobody waits for these results one by one: kept as columns until read.
            coordinator.finish_many(agent_id, done, self._columns)
        else:
            self._record(coordinator.finish_many(agent_id, done))
        starts = coordinator.take_starts_by_id()
        if starts:
            self.backend.run(starts)
        self._settle()

    def agent_lost(self, agent_id: str, in_flight: list[Task], reason: str) -> None:
        if agent_id in self._starting and agent_id not in self.coordinator.agents:
            # It was given nothing, and its start fails in `add_agent`, which says so (a
            # restart attempt counts it there, once).
            self._starting[agent_id] = reason
            return
        self.lost_agents.append((agent_id, reason))
        self.messages.leave(agent_id)
        if self.messages.pending:
            in_flight = self.messages.take_lost(agent_id, in_flight)
        self.coordinator.agent_lost(agent_id, in_flight, reason)
        spec = self._specs.get(agent_id)
        if self._restarts is not None and spec is not None and self._started:
            self._schedule_restart(spec)
        self._pump()

    def _schedule_restart(self, spec: AgentSpec) -> None:
        """Restart `spec` under the policy: one job per agent makes every attempt."""
        restarts = self._restarts
        assert restarts is not None
        if spec.id in self._restarting or restarts.given_up(spec.id):
            return
        decision = restarts.lost(spec.id, self.clock())

        async def restart(decision: tuple[int, float] | None) -> None:
            while decision is not None:
                attempt, delay = decision
                await asyncio.sleep(delay)
                if not self._started or self._specs.get(spec.id) is not spec:
                    return  # stopped, or removed meanwhile
                if spec.id in self.coordinator.agents:
                    return  # added again by someone else
                try:
                    await self.add_agent(spec)
                except Exception as exc:  # a failed attempt: counted once, tried again
                    self.coordinator.emit(
                        AGENT_RESTART_FAILED, spec.id, attempt=attempt, error=repr(exc)
                    )
                    self._settle()
                    decision = restarts.failed(spec.id, self.clock())
                    continue
                restarts.started(spec.id, self.clock())
                self.coordinator.emit(AGENT_RESTARTED, spec.id, attempt=attempt, delay=delay)
                self._settle()
                return
            self.coordinator.emit(AGENT_GIVEN_UP, spec.id, restarts=restarts.attempts(spec.id))
            self._settle()

        job = asyncio.get_running_loop().create_task(restart(decision))
        self._restarting[spec.id] = job

        def finished(_: asyncio.Task[None]) -> None:
            if self._restarting.get(spec.id) is job:
                del self._restarting[spec.id]
            self._settle()  # a drain waiting on this restart may now end (no agents left)

        job.add_done_callback(finished)

    @staticmethod
    def _wake(waiters: list[asyncio.Future[None]]) -> None:
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        waiters.clear()

"""Runs a swarm in virtual time, to completion, as fast as the coordinator can decide.

`Simulation` drives the same `Coordinator`, strategies, queue and guard that a real `Swarm`
drives, with the `sim` backend and a virtual clock in place of the event loop: arrivals,
completions, agents crashing and coming back, and the coordinator's own timers (retries,
paused agents, breakers) are events on one `Engine`, and time jumps from one to the next.
Arrivals, already in time order, are a stream merged with the engine's heap rather than
entries in it; an arrival and a scheduled event due at the same instant run in the order
they were scheduled, as if both were in the heap.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swarmperf.balancing.strategies import LoadBalancer, get_strategy
from swarmperf.core.errors import Backpressure, ConfigError, NoAgents, TaskLost
from swarmperf.core.events import AGENT_RESTARTED, Event
from swarmperf.core.handlers import Handler, HandlerRegistry
from swarmperf.core.model import AgentSpec, Task, TaskResult
from swarmperf.core.queueing import QueueSettings
from swarmperf.resilience.bulkheads import BulkheadSettings
from swarmperf.resilience.policy import Guard
from swarmperf.routing import TopologySettings
from swarmperf.runtime.backend import Done
from swarmperf.runtime.coordinator import Coordinator, CoordinatorStatistics
from swarmperf.runtime.messaging import MessageBus, Traffic
from swarmperf.runtime.report import RunReport, build_report
from swarmperf.runtime.swarm import EVENTS_KEPT
from swarmperf.sim.backend import CompletionEntry, SimBackend
from swarmperf.sim.engine import Engine, VirtualClock
from swarmperf.sim.messaging import LinkModel
from swarmperf.sim.models import AgentModel, check_offsets

_BUILTIN_KINDS = frozenset({"noop", "echo", "sleep", "spin", "fail"})


@dataclass(frozen=True, slots=True)
class SimProgress:
    """A snapshot for progress displays."""

    total: int  # tasks to feed
    finished: int  # tasks with a result
    failed: int
    now: float  # virtual seconds since the start
    wall: float  # real seconds since the run began


@dataclass(frozen=True, slots=True)
class SimOutcome:
    """What a simulated run did. Times are virtual seconds, except `wall_seconds`."""

    strategy: str
    results: list[TaskResult]
    events: list[Event]  # the latest `EVENTS_KEPT`
    event_counts: dict[str, int]  # how many of each kind there were, all told
    agents: tuple[AgentSpec, ...]  # every agent that was part of the run
    lost_agents: tuple[tuple[str, str], ...]  # (agent, reason) for each crash
    started: float
    finished: float
    arrivals: int  # tasks fed to the swarm
    starts: int  # attempts that began service
    completions: int  # attempts that finished
    engine_events: int  # actions the engine ran
    wall_seconds: float
    statistics: CoordinatorStatistics
    # Agents' messages (`MessageBus.summary`), for a run with traffic; else None.
    messages: dict[str, Any] | None = None

    @property
    def model_events(self) -> int:
        """One per arrival, start and completion: the events of the model being simulated."""
        return self.arrivals + self.starts + self.completions

    def report(self, *, swarm_id: str = "default", lower_bound: float | None = None) -> RunReport:
        """The same report as `swarmperf run` gives, over virtual time."""
        return build_report(
            self.results,
            self.agents,
            self.started,
            self.finished,
            strategy=self.strategy,
            backend=SimBackend.name,
            swarm_id=swarm_id,
            lower_bound=lower_bound,
            events=self.event_counts,
            stolen=self.statistics.stolen,
            messages=self.messages,
        )


ProgressListener = Callable[[SimProgress], None]
ResultListener = Callable[[TaskResult], None]
EventListener = Callable[[Event], None]


class Simulation:
    """One swarm in virtual time. Build it, schedule agent changes if any, `run` it once.

    A guard that reads a clock must read this simulation's: make a `VirtualClock`, build
    the guard with it, and pass both. `models` and `default_model` shape the agents (see
    `AgentModel`); `seed` seeds the strategy, the agents' draws and their outages.
    Tasks carry state (attempts, queue times): give each run its own. With `pause_gc`,
    Python's cyclic garbage collector is off while the run goes and back on after it.
    With `traffic`, each finished task sends the messages it says, routed by `topology`
    (mesh: direct), each hop costing what `links` says; `messages` then counts them.
    """

    def __init__(
        self,
        agents: Sequence[AgentSpec],
        *,
        strategy: str | LoadBalancer = "capacity-aware",
        queue: QueueSettings | None = None,
        guard: Guard | None = None,
        bulkheads: Mapping[str, BulkheadSettings] | None = None,
        models: Mapping[str, AgentModel] | None = None,
        default_model: AgentModel | None = None,
        handlers: Mapping[str, Handler] | HandlerRegistry | None = None,
        seed: int = 0,
        clock: VirtualClock | None = None,
        keep_results: bool = True,
        pause_gc: bool = True,
        traffic: Traffic | None = None,
        topology: TopologySettings | None = None,
        links: LinkModel | None = None,
    ) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        self.engine = Engine(self.clock)
        self.backend = SimBackend(self.engine, models=models, default=default_model, seed=seed)
        if isinstance(strategy, str):
            strategy = get_strategy(strategy, seed=seed, transfer_cost=self.backend.transfer_cost)
        self.strategy = strategy
        # The clock's bound `__call__` reads it in half the time of calling the clock.
        self.coordinator = Coordinator(
            strategy, queue, clock=self.clock.__call__, guard=guard, bulkheads=bulkheads
        )
        self._guarded = guard is not None
        self._run_bound = self.backend.run_bound
        self.handlers = (
            handlers if isinstance(handlers, HandlerRegistry) else HandlerRegistry(handlers)
        )
        self.seed = seed
        # Long runs: results go to listeners only, so memory stays flat.
        self.keep_results = keep_results
        # A run makes millions of long-lived objects and no reference cycles; the cyclic
        # collector's full passes over them would cost up to a quarter of the run.
        self.pause_gc = pause_gc
        self.results: list[TaskResult] = []
        # The latest events, and how many of each kind, as a `Swarm` keeps them: a long
        # overload (an event per shed task) must not grow memory without end.
        self.events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self.event_counts: Counter[str] = Counter()
        self._event_listeners: list[EventListener] = []
        self.lost_agents: list[tuple[str, str]] = []
        self._initial = list(agents)
        self._specs: dict[str, AgentSpec] = {}
        self._listeners: list[ResultListener] = []
        self._outage_rngs: dict[str, random.Random] = {}
        self._tasks: list[Task] = []
        self._offsets: list[float] = []
        self._next = 0  # index of the next task to feed
        self._fed_all = False
        self._blocked = False  # the queue refused a task: feed again on progress
        self._armed = math.inf  # the earliest coordinator wakeup already scheduled
        # The next feed of arrivals, as (time, engine sequence number): arrivals come in
        # time order, so they are a stream merged with the engine's heap, not entries in it.
        self._arrival: tuple[float, int] | None = None
        self._finished = 0
        self._done = False
        self._ran = False
        self._running = False  # the initial agents have joined
        self._progress: ProgressListener | None = None
        self._progress_every = 0
        self._next_progress = 0
        self._wall_start = 0.0
        self.traffic = traffic
        self.messages: MessageBus | None = None
        if traffic is not None:
            links = links if links is not None else LinkModel()
            self.messages = MessageBus(
                self.backend.run,
                self.clock.__call__,
                topology,
                delay=links.delay,
                later=self._later,
                relay_cost=links.relay_cost,
                receive_cost=links.receive_cost,
                traffic=traffic,
            )

    # -- setting up -----------------------------------------------------------------------

    def on_result(self, listener: ResultListener) -> None:
        """Call `listener` with every result as it is recorded."""
        self._listeners.append(listener)

    def on_event(self, listener: EventListener) -> None:
        """Call `listener` with every event (breaker trips, retries, crashes...)."""
        self._event_listeners.append(listener)

    def add_agent_at(self, when: float, spec: AgentSpec) -> None:
        """`spec` joins the swarm at virtual time `when`."""
        self.engine.at(when, self._join, spec)

    def remove_agent_at(self, when: float, agent_id: str) -> None:
        """`agent_id` leaves at `when`: its queued tasks go to others, its running ones
        finish."""
        self.engine.at(when, self._leave, agent_id)

    def crash_agent_at(
        self, when: float, agent_id: str, *, repair_after: float | None = None
    ) -> None:
        """`agent_id` crashes at `when` (its unfinished tasks are queued again) and, with
        `repair_after`, comes back that many seconds later."""
        if repair_after is not None and not (repair_after >= 0 and math.isfinite(repair_after)):
            raise ConfigError("repair_after", repair_after, "Use seconds >= 0, or None.")
        self.engine.at(when, self._crash, (agent_id, repair_after))

    # -- running --------------------------------------------------------------------------

    def run(
        self,
        tasks: Sequence[Task],
        offsets: Sequence[float] | None = None,
        *,
        until: float | None = None,
        on_progress: ProgressListener | None = None,
        progress_every: int = 10_000,
    ) -> SimOutcome:
        """Feed `tasks` at their `offsets` (seconds after the start; None: all at once)
        and run until every one has a result.

        With `until` (seconds after the start), tasks not started by then are cancelled
        and those not yet fed are dropped, as `swarmperf run` does at the end of a spec's
        `duration`; tasks running then finish.
        """
        if self._ran:
            raise RuntimeError("A Simulation runs once; make a new one for another run.")
        n = len(tasks)
        self._offsets = [0.0] * n if offsets is None else check_offsets(offsets, n)
        if until is not None and not until >= 0:
            raise ConfigError("until", until, "Use seconds >= 0 after the start.")
        if progress_every < 1:
            raise ConfigError("progress_every", progress_every, "Use an integer >= 1.")
        self._check_kinds(tasks)
        self._ran = True
        self._tasks = tasks if isinstance(tasks, list) else list(tasks)
        self._progress, self._progress_every = on_progress, progress_every
        self._next_progress = progress_every
        self._wall_start = time.perf_counter()
        started = self.clock.now
        if started:
            # Offsets count from the start; the engine wants times on the clock.
            self._offsets = [started + x for x in self._offsets]
        self.backend.attach(self, self.handlers)
        self._run_bound = self.backend.run_bound
        for spec in self._initial:
            self._join(spec)
        self._running = True
        if n:
            self._arrive_at(self._offsets[0])
        else:
            self._fed_all = True
            self._step()
        if until is not None:
            self.engine.at(started + until, self._cut, until)
        paused = self.pause_gc and gc.isenabled()
        if paused:
            gc.disable()
        try:
            self._loop()
        finally:
            if paused:
                gc.enable()
        if not self._done:
            self._stalled()
        self.backend.detach()
        if self._progress is not None:
            self._progress(self._snapshot())
        return SimOutcome(
            strategy=self.strategy.name,
            results=self.results,
            events=list(self.events),
            event_counts=dict(self.event_counts),
            agents=tuple(self._specs.values()),
            lost_agents=tuple(self.lost_agents),
            started=started,
            finished=self.clock.now,
            arrivals=self._next,
            starts=self.backend.started,
            completions=self.backend.completed,
            engine_events=self.engine.processed,
            wall_seconds=time.perf_counter() - self._wall_start,
            statistics=self.coordinator.statistics(),
            messages=self.messages.summary() if self.messages is not None else None,
        )

    def run_timed(
        self,
        timed: Sequence[tuple[float, Task]],
        *,
        until: float | None = None,
        on_progress: ProgressListener | None = None,
        progress_every: int = 10_000,
    ) -> SimOutcome:
        """`run` for (offset, task) pairs, as `swarmperf.app.workload.generate_tasks` draws them."""
        ordered = sorted(timed, key=lambda pair: pair[0])
        return self.run(
            [task for _, task in ordered],
            [offset for offset, _ in ordered],
            until=until,
            on_progress=on_progress,
            progress_every=progress_every,
        )

    # -- CompletionSink -------------------------------------------------------------------

    def tasks_done(self, agent_id: str, done: Sequence[Done]) -> None:
        results = self.coordinator.finish_many(agent_id, done)
        if results:
            self._record(results)
        self._step()

    def task_done(
        self,
        agent_id: str,
        task: Task,
        started: float,
        finished: float,
        error: str | None,
        value: Any,
    ) -> None:
        """`tasks_done` for one task: what the backend calls on every completion."""
        if self.messages is not None:
            self._message_done(agent_id, task, started, finished, error, value)
            return
        result = self.coordinator.finish(agent_id, task, started, finished, error, value)
        if result is not None:
            self._finished += 1
            if self.keep_results:
                self.results.append(result)
            if self._listeners or self._progress is not None:
                self._notify([result])
        self._step()

    def agent_lost(self, agent_id: str, in_flight: list[Task], reason: str) -> None:
        self.lost_agents.append((agent_id, reason))
        if self.messages is not None:
            self.messages.leave(agent_id)
            in_flight = self.messages.take_lost(agent_id, in_flight)
        self.coordinator.agent_lost(agent_id, in_flight, reason)
        self._step()

    # -- internals ------------------------------------------------------------------------

    def _step(self) -> None:
        """After anything happened: feed what waited for room, start what can start,
        collect events, arm the next coordinator timer, and stop once all is done."""
        coordinator = self.coordinator
        if self._blocked:
            self._unblock()
        starts = coordinator.take_starts()
        if starts:
            self._run_bound(starts)
        if coordinator.events:
            self._collect(coordinator.take_events())
        if self._guarded:
            self._arm()
        if (
            self._fed_all
            and coordinator.running == 0
            and coordinator.idle
            and (self.messages is None or self.messages.idle)
        ):
            self._done = True
            self.engine.stop()

    def _message_done(
        self,
        agent_id: str,
        task: Task,
        started: float,
        finished: float,
        error: str | None,
        value: Any,
    ) -> None:
        """A completion in a run with messages: a hop of one (the bus forwards it, or
        delivers it and sends what the traffic says), or a task of the coordinator's."""
        messages = self.messages
        assert messages is not None
        if not messages.task_done(agent_id, task, finished, error, value):
            result = self.coordinator.finish(agent_id, task, started, finished, error, value)
            if result is not None:
                self._finished += 1
                if self.keep_results:
                    self.results.append(result)
                if self._listeners or self._progress is not None:
                    self._notify([result])
                if result.ok:
                    messages.handled(agent_id, task)
        self._step()

    def _later(self, seconds: float, action: Callable[[], None]) -> None:
        self.engine.after(seconds, _call, action)

    def _collect(self, events: list[Event]) -> None:
        self.events.extend(events)
        self.event_counts.update(event.kind for event in events)
        for listener in self._event_listeners:
            for event in events:
                listener(event)

    def _arm(self) -> None:
        """Schedule a wakeup for the coordinator's next timer (retries, pauses, breakers
        come from the guard, so only a guarded run has any)."""
        when = self.coordinator.next_wakeup()
        if when is not None and when < self._armed:
            self._armed = when
            self.engine.at(max(when, self.clock.now), self._wake)

    def _wake(self, _: object) -> None:
        if self.clock.now >= self._armed:
            self._armed = math.inf
        self._step()

    def _unblock(self) -> None:
        self._blocked = False
        self._feed()
        if not self._blocked and not self._fed_all:
            self._arrive_at(max(self._offsets[self._next], self.clock.now))

    def _arrive_at(self, when: float) -> None:
        """Feed arrivals at `when`, after what the engine already holds for that time (as
        if it were scheduled there now)."""
        key = (when, next(self.engine._seq))
        if self._arrival is None or key < self._arrival:
            self._arrival = key

    def _loop(self) -> None:
        """`Engine.run`, with the stream of arrivals merged in."""
        engine = self.engine
        heap = engine._heap
        clock = self.clock
        pop = heapq.heappop
        arrive = self._arrive
        backend = self.backend
        # Most events are completions: called directly, they skip a generic call.
        complete = backend._complete_one
        engine._stopped = False
        n = 0
        while not engine._stopped:
            due = self._arrival
            if due is not None:
                if heap:
                    top = heap[0]
                    when = due[0]
                    first = when < top.when or (when == top.when and due[1] < top.seq)
                else:
                    first = True
                if first:
                    self._arrival = None
                    clock.now = due[0]
                    arrive()
                    n += 1
                    continue
            if not heap:
                break
            event = pop(heap)
            when = event.when
            clock.now = when
            if event.action is complete:
                # `backend._complete`, with this simulation as the sink it tells.
                entry: CompletionEntry = event.arg
                if backend.release(entry):
                    agent, task, started, error, value = entry
                    self.task_done(agent.id, task, started, when, error, value)
            else:
                event.action(event.arg)
            n += 1
        engine.processed += n

    def _arrive(self) -> None:
        if self._fed_all:
            return  # the run's time was up first: nothing more is fed
        clock = self.clock
        offsets = self._offsets
        heap = self.engine._heap
        step = self._step
        tasks = self._tasks
        last = len(tasks) - 1
        submit = self.coordinator.submit_and_bind
        while True:
            i = self._next
            if (
                (i == last or offsets[i + 1] > clock.now)
                and not self._guarded
                and tasks[i].idempotency_key is None
            ):
                # One task is due (the usual case with arrivals over time): `_feed`, short,
                # and the task bound at once when it can be (`step` would bind it next).
                try:
                    submit(tasks[i])
                except Backpressure:
                    self._blocked = True
                else:
                    self._next = i + 1
                    if i == last:
                        self._fed_all = True
            else:
                self._feed()
            step()
            if self._fed_all or self._blocked or self._done:
                return
            # Arrivals before the next scheduled event are fed here, in a loop: only a
            # jump of the clock separates them.
            due = offsets[self._next]
            if heap and heap[0].when <= due:
                self._arrive_at(due)
                return
            clock.now = due

    def _feed(self) -> None:
        """Submit every task that is due, until the queue refuses one."""
        offsets = self._offsets
        tasks = self._tasks
        i = self._next
        due = bisect.bisect_right(offsets, self.clock.now, i)
        coordinator = self.coordinator
        submit = coordinator.submit
        while i < due and not self._blocked:
            # No more than the queue has room for: the rest would only be refused.
            room = coordinator.max_queued - coordinator.pending
            batch = tasks[i : min(due, i + max(room, 1))]
            if len(batch) > 1 and all(task.idempotency_key is None for task in batch):
                # Tasks due together go in as one batch, on the same terms as one by one.
                admitted = coordinator.submit_many(batch)
                i += admitted
                if admitted < len(batch):
                    self._blocked = True
                continue
            for task in batch:
                if task.idempotency_key is None or not self.coordinator.repeats_key(task):
                    try:
                        submit(task)
                    except Backpressure:
                        self._blocked = True
                        break
                i += 1
        self._next = i
        if i == len(tasks):
            self._fed_all = True
        if self._guarded:
            # Tasks the guard shed finish at once, without an agent.
            side = self.coordinator.take_results()
            if side:
                self._record(side)

    def _record(self, results: list[TaskResult]) -> None:
        self._finished += len(results)
        if self.keep_results:
            self.results.extend(results)
        if self._listeners or self._progress is not None:
            self._notify(results)

    def _notify(self, results: list[TaskResult]) -> None:
        for listener in self._listeners:
            for result in results:
                listener(result)
        if self._progress is not None and self._finished >= self._next_progress:
            self._next_progress = self._finished + self._progress_every
            self._progress(self._snapshot())

    def _snapshot(self) -> SimProgress:
        return SimProgress(
            total=len(self._tasks),
            finished=self._finished,
            failed=self.coordinator.failed,
            now=self.clock.now,
            wall=time.perf_counter() - self._wall_start,
        )

    def _cut(self, until: float) -> None:
        """The run's time is up: nothing more is fed, nothing queued starts."""
        if self._done:
            return
        self._fed_all = True
        self._blocked = False
        self._record(
            self.coordinator.cancel_pending(
                f"the run's duration of {until:g}s was up before it started"
            )
        )
        self._step()

    def _join(self, spec: AgentSpec) -> None:
        self._specs[spec.id] = spec
        self.coordinator.add_agent(spec)
        self.backend.add_agent_now(spec)
        if self.messages is not None:
            self.messages.join(spec.id)
        outages = self.backend.model_for(spec.id).outages
        if outages is not None:
            rng = self._outage_rng(spec.id)
            self.engine.after(outages.uptime(rng), self._outage, spec.id)
        if self._running:
            self._step()

    def _leave(self, agent_id: str) -> None:
        if agent_id not in self.coordinator.agents:
            return
        if self.messages is not None:
            self.messages.leave(agent_id)
        self.coordinator.remove_agent(agent_id)
        self.backend.remove_agent_now(agent_id)
        self._step()

    def _crash(self, args: tuple[str, float | None]) -> None:
        agent_id, repair_after = args
        if self._done or agent_id not in self.coordinator.agents:
            return
        self.backend.kill(agent_id, "crashed (simulated)")
        if repair_after is not None:
            self.engine.after(repair_after, self._restore, self._specs[agent_id])

    def _outage(self, agent_id: str) -> None:
        outages = self.backend.model_for(agent_id).outages
        if outages is None:
            return
        self._crash((agent_id, outages.repair(self._outage_rng(agent_id))))

    def _restore(self, spec: AgentSpec) -> None:
        if self._done or spec.id in self.coordinator.agents:
            return
        self.coordinator.emit(AGENT_RESTARTED, spec.id)
        self._join(spec)

    def _outage_rng(self, agent_id: str) -> random.Random:
        rng = self._outage_rngs.get(agent_id)
        if rng is None:
            rng = self._outage_rngs[agent_id] = random.Random(f"{self.seed}/outages/{agent_id}")
        return rng

    def _check_kinds(self, tasks: Sequence[Task]) -> None:
        """A task kind that has no time in simulation is a setup error, not a failure."""
        kinds = {task.kind for task in tasks} - _BUILTIN_KINDS
        if not kinds:
            return
        untimed = [a.id for a in self._initial if self.backend.model_for(a.id).service is None]
        for kind in sorted(kinds):
            if (
                kind in self.handlers
                and untimed
                and any(t.kind == kind and t.cost is None for t in tasks)
            ):
                raise ConfigError(
                    "task.kind",
                    kind,
                    "A handler's real time cannot be simulated: give these tasks a cost "
                    "(seconds of work), or give the agents a service model "
                    f"(AgentModel(service=...)); agents without one: {', '.join(untimed[:3])}.",
                )

    def _stalled(self) -> None:
        coordinator = self.coordinator
        if not coordinator.agents:
            raise NoAgents()
        raise TaskLost(
            f"The simulation stalled at {self.clock.now:g}s: {coordinator.pending} tasks "
            f"waiting, {coordinator.running} running, {len(self._tasks) - self._next} not "
            "yet fed, and nothing left to happen. Check that some agent can take them."
        )


def _call(action: Callable[[], None]) -> None:
    """An engine action that runs a callable (a message's hop reaching its agent)."""
    action()

"""A swarm that keeps running: durable intake in, recorded results out, and live control.

`LiveSwarm` owns one `Swarm` of any real-time backend, its run in the store, its monitor and
its intake. Web requests call it; it never imports the web stack, so the same object serves
tests, the HTTP API and, later, other front-ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from swarmperf.alerting.alerts import AlertObserver
from swarmperf.app.build import build_swarm, load_alerting
from swarmperf.app.run import anomaly_events, on_wall_clock
from swarmperf.core.errors import Backpressure, ConfigError, DispatchError, QuotaExceeded
from swarmperf.core.events import SHED, Event
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.core.model import AgentSpec, Priority, Task, TaskResult, TaskStatus
from swarmperf.core.trial import TrialRule
from swarmperf.monitor.monitor import Monitor
from swarmperf.monitor.names import SWARM_LABEL
from swarmperf.monitor.snapshot import SwarmFigures, SystemFigures, flatten
from swarmperf.monitor.swarm_metrics import SwarmMetrics
from swarmperf.routing import TopologySettings
from swarmperf.runtime.swarm import Swarm
from swarmperf.service.autoscaler import DECISION_KIND, Autoscaler
from swarmperf.service.feed import Feed
from swarmperf.service.journal import Journal
from swarmperf.service.pools import resize as resize_pools
from swarmperf.service.pools import undo as undo_resize
from swarmperf.service.topology import (
    DEFAULT_MIN_GAIN,
    LIVE_FIGURES,
    MessageWindow,
    Strategy,
    check_min_gain,
    check_objective,
    check_traffic,
    chosen,
    live_plan,
    measured_traffic,
    measured_workload,
    settings_of,
    trial_rule,
)
from swarmperf.service.trial import TOPOLOGY_OBJECTIVES, Trial, check_rule
from swarmperf.spec import AUTO, AutoscaleSpec, SwarmSpec
from swarmperf.store import RUN_INTERRUPTED, Store
from swarmperf.store.intake import Accepted, Intake, IntakeRecord
from swarmperf.store.records import HEARTBEAT_EVERY

log = logging.getLogger("swarmperf.service")

RUNNING, PAUSED, DRAINING, STOPPING, STOPPED = (
    "running",
    "paused",
    "draining",
    "stopping",
    "stopped",
)
PENDING = "pending"
NOT_APPLIED = "not-applied"  # a topology change the plan did not predict enough from
MAX_VALUE_BYTES = 1_000_000  # a result's value larger than this, as JSON, is not kept
DEFAULT_OBSERVE = 30.0
FEED_NUMBERS_PER_RUN = 10**9  # a run's feed numbers start at run id x this (a JS-safe integer)
EVENTS_PER_INTERVAL = 50  # events sent to dashboards one by one per interval; the rest counted
DEFAULT_RETAIN = 7 * 24 * 3600.0  # a week
CACHE_MIB = 64  # page cache of each store connection: indexes of a busy intake stay hot


@dataclass(frozen=True, slots=True)
class TaskIn:
    """A task as a client submits it, checked (the API's models check the shapes)."""

    kind: str
    payload: Any = None
    priority: str = "normal"
    rank: int = 0
    deadline_s: float | None = None
    cost: float | None = None
    tenant: str = "default"
    idempotency_key: str | None = None
    tokens: float = 0.0

    def to_json(self) -> str:
        return _compact(
            {
                "kind": self.kind,
                "payload": self.payload,
                "priority": self.priority,
                "rank": self.rank,
                "deadline_s": self.deadline_s,
                "cost": self.cost,
                "tenant": self.tenant,
                "tokens": self.tokens,
            }
        )


# One encoder made once: `json.dumps` with options builds a new one at every call.
_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class Refused(DispatchError):
    """The service will not take tasks now (draining, stopping, full): retry after."""

    def __init__(self, title: str, detail: str, retry_after: float, status: int = 503) -> None:
        super().__init__(f"{title}: {detail}")
        self.title = title
        self.detail = detail
        self.retry_after = retry_after
        self.status = status


def figures_dict(figures: SwarmFigures) -> dict[str, Any]:
    """The figures a decision or a status shows, as plain data; None where not measured."""
    latency = figures.latency
    return {
        "window_s": round(figures.window_s, 3),
        "completed": figures.completed,
        "throughput_per_s": figures.throughput_per_s,
        "error_rate": figures.error_rate,
        "latency_p50_s": latency.p50,
        "latency_p95_s": latency.p95,
        "latency_p99_s": latency.p99,
        "latency_mean_s": latency.mean,
        "queue_depth": figures.queue_depth,
        "balance_cv": figures.balance_cv,
        "agents": len(figures.agents),
        "reasons": dict(figures.reasons),
    }


class LiveSwarm:
    """One served swarm. Use `await start()`, then the methods, then `await stop()`."""

    def __init__(
        self,
        spec: SwarmSpec,
        data_dir: Path,
        handlers: HandlerRegistry | None = None,
        *,
        max_pending: int | None = None,
        retain: float = DEFAULT_RETAIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if spec.strategy == AUTO:
            raise ConfigError(
                "strategy",
                AUTO,
                "A live swarm runs one strategy at a time: name one (swarmperf strategies "
                "lists them); switch later with swarmperf load-balance --swarm-id.",
            )
        self.spec = spec
        self.swarm_id = spec.swarm_id
        self.data_dir = data_dir
        self.handlers = handlers or HandlerRegistry()
        self.max_pending = max_pending if max_pending is not None else spec.queue.max_queued
        if self.max_pending < 1:
            raise ConfigError("--max-pending", self.max_pending, "Use an integer >= 1.")
        if not retain > 0:
            raise ConfigError("--retain", retain, "Use a duration > 0, e.g. 168h.")
        # How long a finished task (its result, its idempotency key) is kept: bounded, so
        # that the intake does not grow for as long as the service lives.
        self.retain = retain
        self.clock = clock
        self.state = STOPPED
        self.swarm: Swarm = build_swarm(spec, self.handlers, keep_results=False)
        self.metrics = SwarmMetrics(spec.swarm_id, clock=self.swarm.clock)
        self.metrics.attach(self.swarm)
        self.run_id: int | None = None
        self.started_at: float | None = None
        self.stop_requested = asyncio.Event()
        self.stop_deadline: float | None = None
        self._store: Store | None = None
        self._reader: Store | None = None
        self._journal: Journal | None = None
        self._monitor: Monitor | None = None
        self._feeding: asyncio.Queue[list[Task]] = asyncio.Queue()
        self._background: set[asyncio.Task[Any]] = set()
        self._pending = 0  # accepted here (or recovered), not yet recorded
        self._unfed = 0  # accepted, not yet handed to the swarm (waiting all the same)
        self._tenant_pending: Counter[str] = Counter()
        self._tenant_of: dict[str, str] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._results_waiters: list[asyncio.Future[None]] = []
        self.last_done = 0
        self.accepted = 0  # tasks accepted by this process (duplicates not counted)
        self.recovered = 0  # accepted earlier, without a result, run again by this process
        self.recorded = 0  # results recorded by this process
        self._agent_seq = 0
        self._id_prefix = os.urandom(6).hex() + "-"
        self._ids = 0
        self._stopped = asyncio.Event()
        self._cut = asyncio.Event()  # set: the drain ends now (a second signal)
        self._stopping = False
        self._closed = False
        # Metrics over the time since a change, one per decision being observed.
        self._probes: list[SwarmMetrics] = []
        # What dashboards see (`/v1/live`): figures each interval, events, decisions.
        self.feed = Feed()  # numbered on from above earlier runs' once the run is known
        self._alerts: AlertObserver | None = None
        self._collector: Any = None  # the /metrics collector, made at the first interval
        self._last_system: SystemFigures | None = None
        self._events_this_interval = 0
        self._events_dropped = 0
        self._profiling = False  # a profile's window is running
        self._on_trial: int | None = None  # the decision whose change is on trial
        # The messages delivered lately: a topology's trial compares windows of them.
        self.deliveries = MessageWindow()
        self.swarm.messages.on_delivery(self.deliveries)
        self.autoscaler = Autoscaler(
            self.swarm,
            (spec.autoscale or AutoscaleSpec(enabled=False)).for_swarm(len(spec.agent_specs())),
            add_agent=self.add_agent,
            record=self._record_autoscale,
            unfed=lambda: self._unfed,
        )

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        assert self._store is not None, "start() first"
        return self._store

    @property
    def intake(self) -> Intake:
        """For reads from the loop: its own connection, so it never waits for the writer."""
        assert self._reader is not None, "start() first"
        return Intake(self._reader, self.swarm_id)

    async def start(self) -> None:
        from swarmperf.store.paths import database_path

        path = database_path(self.data_dir)
        self._store = Store.open(path)
        self._reader = Store.open(path)
        for store in (self._store, self._reader):
            store.set_cache(CACHE_MIB)
        loop = asyncio.get_running_loop()
        # Stored without a workload: a served swarm's work is what clients submit.
        spec_data = self.spec.to_data()
        spec_data.pop("workload", None)
        self.run_id = self.store.start_run(
            self.swarm_id, spec_data, self.spec.backend, self.spec.strategy
        )
        # A restarted service numbers its feed on from above its predecessors', so that a
        # page's cursor (the last number it saw) stays good across the restart.
        self.feed = Feed(first=self.run_id * FEED_NUMBERS_PER_RUN + 1)
        self._journal = Journal(
            Intake(self.store, self.swarm_id), self.run_id, loop, self._recorded
        )
        self.last_done = self._journal.next_done - 1
        self._journal.start()
        self.swarm.on_result(self._on_result)
        self.swarm.on_event(self._on_event)
        began = self.swarm.clock()
        await self.swarm.start()
        self.started_at = self.clock()
        # The first agents' start is the start-up measured until the autoscaler times one.
        self.autoscaler.attach(self.swarm.clock() - began, len(self.swarm.coordinator.agents))
        if self.spec.monitor.enabled:
            # Its snapshots are stored through the journal, the store's one writer here.
            self._monitor = Monitor(self.metrics, interval=self.spec.monitor.interval)
            journal = self._journal

            def store_snapshot(swarm: SwarmFigures, system: SystemFigures | None) -> None:
                journal.record_metrics(swarm.ts, flatten(swarm, system))

            self._monitor.add_observer(store_snapshot)
            alerting = load_alerting(self.spec)
            if alerting is not None:
                from swarmperf.alerting.sinks import build_observer

                # In the background: a slow or failing receiver must never stall the swarm.
                self._alerts = build_observer(
                    alerting,
                    store=self.store,
                    swarm_id=self.swarm_id,
                    seed=self.spec.seed,
                    background=True,
                )
                self._monitor.add_observer(self._alerts)
            if self.spec.monitor.anomalies:
                self._monitor.add_observer(anomaly_events(self.swarm))
            self._monitor.add_observer(self._publish_figures)
            await self._monitor.start()
        self.state = RUNNING
        if self.spec.autoscale is not None and self.spec.autoscale.enabled:
            self.autoscaler.enable()
        self._spawn(self._feed())
        self._spawn(self._heartbeats())
        self._spawn(self._pruning())
        await self._recover()

    async def _recover(self) -> None:
        """Run again every task accepted earlier that has no recorded result: its service
        died (kill -9, a crash, a power cut) before recording one. At least once."""
        batch: list[Task] = []
        for item in await asyncio.to_thread(lambda: list(self.intake.unfinished())):
            task = self._task(item.task_id, TaskIn(**_task_fields(item.task)), item.accepted_at)
            self._count_in(task)
            self.recovered += 1
            batch.append(task)
            if len(batch) >= 1000:
                self._feeding.put_nowait(batch)
                batch = []
        if batch:
            self._feeding.put_nowait(batch)
        if self.recovered:
            log.warning(
                "swarm %r: %d accepted tasks had no result; running them again",
                self.swarm_id,
                self.recovered,
            )

    async def stop(
        self, deadline: float | None = None, reason: str = "the service stopped"
    ) -> None:
        """Refuse new tasks; let what runs finish for up to `deadline` seconds (the spec's
        `timeouts.drain` by default); cancel the rest with `reason`; record every result
        and the run's end. Idempotent."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self.state = STOPPING
        limit = self.spec.timeouts.drain if deadline is None else deadline
        swarm = self.swarm
        try:
            await self.autoscaler.stop()
            if swarm.paused:
                swarm.resume("the service is stopping: what was accepted runs or is cancelled")
            idle = asyncio.create_task(self._idle())
            cut = asyncio.create_task(self._cut.wait())
            try:
                await asyncio.wait({idle, cut}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
            finally:
                idle.cancel()
                cut.cancel()
            why = f"{reason} before it ran (the {limit:g}s drain was over)"
            cancelled = self._cancel_unfed(why)
            cancelled += len(swarm.cancel_pending(why))
            cancelled += len(swarm.cancel_running(f"{reason} while it ran (after {limit:g}s)"))
            if cancelled:
                log.warning("swarm %r: %d tasks cancelled at stop", self.swarm_id, cancelled)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(swarm.drain(), 5.0)
        finally:
            for job in list(self._background):
                job.cancel()
            for job in list(self._background):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job
            if self._monitor is not None:
                with contextlib.suppress(Exception):
                    await self._monitor.stop()
            with contextlib.suppress(Exception):
                await swarm.stop()
            journal = self._journal
            if journal is not None:
                await asyncio.to_thread(journal.close)
            if self.run_id is not None:
                status = "completed" if reason == "the service stopped" else RUN_INTERRUPTED
                try:
                    self.store.finish_run(self.run_id, self.report(), status)
                except Exception as exc:
                    log.warning("run %s: its end was not recorded (%s)", self.run_id, exc)
            self.state = STOPPED
            self.feed.end(reason)
            if self._alerts is not None:
                self._alerts.close()
            self._wake_all()
            self._stopped.set()

    def close(self) -> None:
        """Close the store; after `stop`, once nothing reads results any more (the server
        has finished its requests: a stream open at the stop reads its last results)."""
        self._closed = True
        for store in (self._reader, self._store):
            if store is not None:
                store.close()

    async def _idle(self) -> None:
        while self._pending > 0 or not self._feeding.empty():
            await self._wait_results()

    def _cancel_unfed(self, reason: str) -> int:
        """Tasks accepted but not yet handed to the swarm get a CANCELLED result too."""
        n = 0
        now = self.swarm.clock()
        while not self._feeding.empty():
            for task in self._feeding.get_nowait():
                self._on_result(
                    TaskResult(
                        task.id,
                        TaskStatus.CANCELLED,
                        None,
                        0,
                        now,
                        None,
                        now,
                        reason,
                        kind=task.kind,
                        tenant=task.tenant,
                    )
                )
                n += 1
        return n

    def request_stop(self, deadline: float | None) -> None:
        """Ask the server to stop (it calls `stop`): from an API request or a signal."""
        self.stop_deadline = deadline
        if self.state in (RUNNING, PAUSED, DRAINING):
            self.state = STOPPING
        self.stop_requested.set()

    def cut_drain(self) -> None:
        """End the drain now: what still runs is cancelled."""
        self._cut.set()

    # -- intake ---------------------------------------------------------------------------

    async def submit(self, tasks: Sequence[TaskIn]) -> list[Accepted]:
        """Store `tasks` durably, then queue them; answers once they are committed."""
        self._admit(tasks)
        rows = []
        for task_in in tasks:
            task_id = self._next_id()
            key = task_in.idempotency_key if task_in.idempotency_key is not None else task_id
            rows.append((task_id, key, task_in.to_json()))
        assert self._journal is not None
        accepted = await self._journal.accept(rows)
        now = self.clock()
        fresh: list[Task] = []
        for task_in, answer in zip(tasks, accepted, strict=True):
            if answer.duplicate:
                continue
            task = self._task(answer.task_id, task_in, now)
            self._count_in(task)
            fresh.append(task)
        self.accepted += len(fresh)
        if fresh:
            self._feeding.put_nowait(fresh)
        return accepted

    def _next_id(self) -> str:
        """A task id unique to this swarm: a random prefix per process, then a count (a
        system call for randomness per task would cost more than the rest of its intake)."""
        self._ids += 1
        return f"{self._id_prefix}{self._ids:x}"

    def _admit(self, tasks: Sequence[TaskIn]) -> None:
        if self.state == DRAINING:
            raise Refused("draining", "the swarm takes no new tasks until resumed", 5.0)
        if self.state in (STOPPING, STOPPED):
            raise Refused("stopping", "the swarm is stopping and takes no new tasks", 5.0)
        if self._pending + len(tasks) > self.max_pending:
            raise Backpressure(f"{len(tasks)} tasks", self._pending, self.max_pending)
        quotas = self.swarm.coordinator.settings.tenant_quotas
        if quotas:
            asked = Counter(task.tenant for task in tasks)
            for tenant, n in asked.items():
                quota = quotas.get(tenant)
                if quota is not None and self._tenant_pending[tenant] + n > quota:
                    raise QuotaExceeded(f"{n} tasks", tenant, self._tenant_pending[tenant], quota)

    def retry_after(self) -> float:
        """Seconds until the backlog has room again at the current pace (1 to 60)."""
        rate = self.metrics.figures().throughput_per_s or 0.0
        if rate <= 0:
            return 5.0
        return float(min(max(math.ceil(self._pending / rate / 2), 1), 60))

    def _task(self, task_id: str, task_in: TaskIn, accepted_at: float) -> Task:
        deadline = None
        if task_in.deadline_s is not None:
            left = accepted_at + task_in.deadline_s - self.clock()
            deadline = self.swarm.clock() + left
        return Task(
            task_in.kind,
            task_in.payload,
            id=task_id,
            priority=Priority.parse(task_in.priority),
            rank=task_in.rank,
            deadline=deadline,
            cost=task_in.cost,
            tenant=task_in.tenant,
            tokens=task_in.tokens,
        )

    def _count_in(self, task: Task) -> None:
        self._pending += 1
        self._unfed += 1
        if self.swarm.coordinator.settings.tenant_quotas:
            self._tenant_pending[task.tenant] += 1
            self._tenant_of[task.id] = task.tenant

    async def _feed(self) -> None:
        """Hand accepted tasks to the swarm in order, waiting for room: nothing accepted
        is refused later for a full queue."""
        while True:
            tasks = await self._feeding.get()
            await self.swarm.submit_all(tasks)
            self._unfed -= len(tasks)

    def _on_result(self, result: TaskResult) -> None:
        assert self._journal is not None
        self._journal.record(result, _result_json(result))
        for probe in self._probes:
            probe.observe_result(result)

    def _recorded(self, recorded: list[tuple[TaskResult, int]]) -> None:
        """On the loop, once results are committed: wake whoever waits for them."""
        for result, done in recorded:
            self._pending -= 1
            tenant = self._tenant_of.pop(result.task_id, None)
            if tenant is not None:
                self._tenant_pending[tenant] -= 1
            waiters = self._waiters.pop(result.task_id, None)
            if waiters:
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)
            self.last_done = done
        self.recorded += len(recorded)
        self._wake_results()

    # -- results --------------------------------------------------------------------------

    async def task(self, task_id: str, wait: float = 0.0) -> IntakeRecord | None:
        if self._closed:
            return None
        record = self.intake.get(task_id)
        if record is None or record.done_seq is not None or wait <= 0:
            return record
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(fut)
        record = self.intake.get(task_id)  # recorded meanwhile?
        if record is not None and record.done_seq is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), wait)
            record = None if self._closed else self.intake.get(task_id)
        waiting = self._waiters.get(task_id)
        if waiting is not None and fut in waiting:
            waiting.remove(fut)
            if not waiting:
                del self._waiters[task_id]
        return record

    async def results(self, after: int, limit: int, wait: float = 0.0) -> list[IntakeRecord]:
        if self._closed:
            return []
        found = self.intake.results(after, limit)
        if found or wait <= 0:
            return found
        deadline = time.monotonic() + wait
        while self.last_done <= after and self.state != STOPPED:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_results(), left)
        return [] if self._closed else self.intake.results(after, limit)

    async def _wait_results(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._results_waiters.append(fut)
        try:
            await fut
        finally:
            if fut in self._results_waiters:
                self._results_waiters.remove(fut)

    def _wake_results(self) -> None:
        waiters, self._results_waiters = self._results_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _wake_all(self) -> None:
        self._wake_results()
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        self._waiters.clear()

    # -- control --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        figures = self.metrics.figures()
        depth, by_priority = self.metrics.queue_depths()
        return {
            "swarm_id": self.swarm_id,
            "run_id": self.run_id,
            "state": self.state,
            "backend": self.spec.backend,
            "strategy": self.swarm.strategy.name,
            "uptime_s": None if self.started_at is None else self.clock() - self.started_at,
            "accepted": self.accepted,
            "recovered": self.recovered,
            "finished": self.recorded,
            "pending": self._pending,
            "max_pending": self.max_pending,
            "queue": {"depth": depth, "by_priority": dict(by_priority)},
            "agents": self.agents(),
            "figures": figures_dict(figures),
            "autoscale": self.autoscaler.status(),
        }

    def agents(self) -> list[dict[str, Any]]:
        figures = self.metrics.figures().agents
        rows = []
        for agent in self.swarm.coordinator.all_agents():
            mine = figures.get(agent.id)
            rows.append(
                {
                    "id": agent.id,
                    "weight": agent.weight,
                    "concurrency": agent.concurrency,
                    "in_flight": agent.in_flight,
                    "completed": agent.completed,
                    "failed": agent.failed,
                    "utilization": None if mine is None else mine.utilization,
                    "alive": agent.alive,
                    "paused": agent.paused,
                }
            )
        return rows

    async def add_agent(self, spec: AgentSpec | None = None, **fields: Any) -> AgentSpec:
        if spec is None:
            spec = self._new_agent_spec(**fields)
        if spec.id in self.swarm.coordinator.agents:
            raise ConfigError("id", spec.id, "An agent has that id already: choose another.")
        await self.swarm.add_agent(spec)
        return spec

    def _new_agent_spec(self, **fields: Any) -> AgentSpec:
        """An agent like the spec's last one (its capacity, its faults none), under a new id."""
        template = self.spec.agent_specs()[-1]
        agent_id = fields.pop("id", None)
        if agent_id is None:
            existing = set(self.swarm.coordinator.agents)
            while True:
                self._agent_seq += 1
                agent_id = f"live-{self._agent_seq}"
                if agent_id not in existing:
                    break
        weight, concurrency, prefetch = (
            fields.get(k) for k in ("weight", "concurrency", "prefetch")
        )
        return AgentSpec(
            id=str(agent_id),
            weight=template.weight if weight is None else float(weight),
            concurrency=template.concurrency if concurrency is None else int(concurrency),
            tags=template.tags,
            queue_limit=template.queue_limit,
            prefetch=template.prefetch if prefetch is None else int(prefetch),
        )

    async def remove_agent(self, agent_id: str) -> None:
        coordinator = self.swarm.coordinator
        if agent_id not in coordinator.agents:
            raise ConfigError(
                "agent",
                agent_id,
                f"No agent is called that. Agents: {', '.join(coordinator.agents)}.",
            )
        if len(coordinator.agents) == 1:
            raise ConfigError(
                "agent", agent_id, "It is the swarm's last agent: add another before removing it."
            )
        await self.swarm.remove_agent(agent_id)

    async def scale(self, target: int, observe: float = DEFAULT_OBSERVE) -> dict[str, Any]:
        """Add or remove agents until there are `target`; newest removed first."""
        if target < 1:
            raise ConfigError("target_size", target, "Use an integer >= 1.")
        autoscale_off = self.autoscaler.disable()  # a size set by hand ends autoscaling
        before_figures = figures_dict(self.metrics.figures())
        live = list(self.swarm.coordinator.agents)
        added: list[str] = []
        removed: list[str] = []
        while len(live) + len(added) < target:
            spec = await self.add_agent()
            added.append(spec.id)
        surplus = len(live) - target
        for agent_id in reversed(live[len(live) - surplus :] if surplus > 0 else []):
            await self.swarm.remove_agent(agent_id)
            removed.append(agent_id)
        after = len(self.swarm.coordinator.agents)
        decision = {
            "before": before_figures,
            "after": None,
            "agents_before": len(live),
            "agents_after": after,
            "added": added,
            "removed": removed,
            "observe_s": observe,
            "autoscale_turned_off": autoscale_off,
        }
        decision_id = self._decide(
            "scale", decision, f"asked to run {target} agents (from {len(live)})", observe
        )
        return {
            "before": len(live),
            "after": after,
            "added": added,
            "removed": removed,
            "decision_id": decision_id,
            "figures_before": before_figures,
            "autoscale_turned_off": autoscale_off,
        }

    def scale_plan(self, target: int) -> dict[str, Any]:
        """What `scale(target)` would do now, done to nothing: a dry run."""
        if target < 1:
            raise ConfigError("target_size", target, "Use an integer >= 1.")
        live = list(self.swarm.coordinator.agents)
        surplus = len(live) - target
        removed = list(reversed(live[len(live) - surplus :])) if surplus > 0 else []
        return {
            "dry_run": True,
            "before": len(live),
            "after": target,
            "adds": max(target - len(live), 0),
            "removed": removed,
            "autoscale_on": self.autoscaler.on,
        }

    async def autoscale(self, policy: str | None, dry_run: bool = False) -> dict[str, Any]:
        """Turn the autoscaler on with `policy` (the spec's by default), recorded as a
        decision; with `dry_run`, only the policy's recommendation now, with its inputs."""
        if self.state in (STOPPING, STOPPED):
            raise Refused("stopping", "the swarm is stopping and scales no more", 5.0)
        if dry_run:
            return {
                "dry_run": True,
                "recommendation": await self.autoscaler.preview(policy),
                "autoscale": self.autoscaler.status(),
            }
        status = self.autoscaler.enable(policy)
        decision_id = await self._record_autoscale(
            {"turned_on": status}, f"autoscaling on with {status['policy']}"
        )
        return {"dry_run": False, "autoscale": status, "decision_id": decision_id}

    async def _record_autoscale(self, decision: dict[str, Any], reason: str) -> int:
        created = time.time()
        decision_id = await asyncio.to_thread(
            self.store.record_decision, self.swarm_id, DECISION_KIND, decision, reason
        )
        self._publish_decision(decision_id, DECISION_KIND, reason, decision, created)
        return decision_id

    def strategy(self) -> str:
        return self.swarm.strategy.name

    def set_strategy(self, name: str, observe: float = DEFAULT_OBSERVE) -> dict[str, Any]:
        before_figures = figures_dict(self.metrics.figures())
        previous = self.swarm.set_strategy(name)
        decision = {
            "previous": previous,
            "strategy": name,
            "before": before_figures,
            "after": None,
            "observe_s": observe,
        }
        decision_id = self._decide(
            "strategy", decision, f"switched from {previous} to {name}", observe
        )
        return {
            "previous": previous,
            "name": name,
            "decision_id": decision_id,
            "figures_before": before_figures,
        }

    def _decide(
        self,
        kind: str,
        decision: dict[str, Any],
        reason: str,
        observe: float,
        settle: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
        more_after: Callable[[], Mapping[str, Any]] | None = None,
    ) -> int:
        """Record the decision now, with the figures of the monitor's window before it; then
        measure `observe` seconds after it, from results finished in that time only, and add
        those figures (and `more_after`'s) to the record (with what `settle`, a trial's
        verdict, adds to it)."""
        created = time.time()
        decision_id = self.store.record_decision(self.swarm_id, kind, decision, reason)
        self._publish_decision(decision_id, kind, reason, decision, created)
        if observe <= 0:
            return decision_id
        probe = SwarmMetrics(self.swarm_id, window=observe, clock=self.swarm.clock)
        self._probes.append(probe)

        async def measure_after() -> None:
            try:
                await asyncio.sleep(observe)
            finally:
                self._probes.remove(probe)
            figures = figures_dict(probe.figures())
            now = self.metrics.figures()
            figures["queue_depth"] = now.queue_depth
            figures["agents"] = len(now.agents)
            if more_after is not None:
                figures.update(more_after())
            observed = {**decision, "after": figures}
            if settle is not None:
                observed.update(await settle(observed))
            await asyncio.to_thread(self.store.update_decision, decision_id, observed)
            self._publish_decision(decision_id, kind, reason, observed, created)

        self._spawn(measure_after())
        return decision_id

    async def scale_pools(
        self,
        counts: Mapping[str, int],
        *,
        concurrency: Mapping[str, int] | None = None,
        observe: float = DEFAULT_OBSERVE,
        rule: TrialRule | None = None,
        reason: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Resize pools (agents `<pool>-<n>`) to `counts`, new agents with their pool's
        `concurrency`; a decision, and with `rule` a trial: rolled back after `observe`
        seconds unless the figures of that window meet the rule."""
        if rule is not None:
            check_rule(rule, observe)
            self._claim_trial()
        sizes = dict(concurrency or {})
        # Pools sized by hand end autoscaling, as a size does: the autoscaler would otherwise
        # undo the change, or confound a trial's verdict.
        autoscale_off = self.autoscaler.disable()
        before_figures = figures_dict(self.metrics.figures())
        try:
            done = await resize_pools(
                self.swarm,
                counts,
                lambda pool, agent_id: self._new_agent_spec(
                    id=agent_id, concurrency=sizes.get(pool)
                ),
            )
        except BaseException:
            if rule is not None:
                self._on_trial = None
            raise
        decision = {
            **done.to_data(),
            "inputs": dict(inputs or {}),
            "before": before_figures,
            "after": None,
            "observe_s": observe,
            "autoscale_turned_off": autoscale_off,
        }
        settle = None
        if rule is not None:
            trial = Trial(rule, lambda: undo_resize(self.swarm, done))
            decision["trial"] = trial.opening()

            async def settle(observed: dict[str, Any]) -> dict[str, Any]:
                try:
                    return await trial.settle(observed)
                finally:
                    self._on_trial = None

        why = reason or f"asked to resize pools {done.before} to {done.after}"
        decision_id = self._decide("pools", decision, why, observe, settle)
        if rule is not None:
            self._on_trial = decision_id
        return {**done.to_data(), "decision_id": decision_id, "figures_before": before_figures}

    def _claim_trial(self) -> None:
        if self._on_trial is not None:
            # Two changes in one window: neither verdict would say which one it judged.
            raise ConfigError(
                "trial",
                f"decision {self._on_trial}" if self._on_trial else "a change being made",
                "One change is on trial at a time: wait for its verdict.",
            )
        self._on_trial = 0  # claimed before the first await

    def topology(self) -> dict[str, Any]:
        """The topology messages are routed by now, and what they did (counts, no matrix)."""
        settings = self.swarm.messages.topology
        return {
            "topology": settings.describe(),
            "settings": {
                "kind": settings.kind,
                "hub": settings.hub,
                "fanout": settings.fanout,
                "bidirectional": settings.bidirectional,
                "cluster_size": settings.cluster_size,
            },
            "messages": asdict(self.swarm.messages.statistics()),
            "on_trial": self._on_trial or None,
        }

    def _message_figures(self, start: float, end: float) -> dict[str, Any]:
        return self.deliveries.figures(start, end)

    async def set_topology(
        self,
        topology: TopologySettings,
        *,
        observe: float = DEFAULT_OBSERVE,
        rule: TrialRule | None = None,
        reason: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Route messages by `topology` from now on (those on their way re-routed, none
        lost); a decision with the figures before (the messages' over the last `observe`
        seconds) and after, and with `rule` a trial: switched back to the topology before
        unless the window after meets the rule."""
        if rule is not None:
            check_rule(rule, observe, objectives=TOPOLOGY_OBJECTIVES)
            self._claim_trial()
        try:
            now = self.swarm.clock()
            before_figures = {
                **figures_dict(self.metrics.figures()),
                **self._message_figures(now - observe, now),
            }
            previous = self.swarm.set_topology(topology)
        except BaseException:
            if rule is not None:
                self._on_trial = None
            raise
        switched = self.swarm.clock()
        decision = {
            "previous": previous.describe(),
            "topology": topology.describe(),
            "inputs": dict(inputs or {}),
            "before": before_figures,
            "after": None,
            "observe_s": observe,
        }
        settle = None
        if rule is not None:

            async def revert() -> dict[str, Any]:
                self.swarm.set_topology(previous)
                return {"topology": previous.describe()}

            trial = Trial(rule, revert)
            decision["trial"] = trial.opening()

            async def settle(observed: dict[str, Any]) -> dict[str, Any]:
                try:
                    return await trial.settle(observed)
                finally:
                    self._on_trial = None

        why = reason or f"switched the topology from {previous.describe()} to {topology.describe()}"
        decision_id = self._decide(
            "topology",
            decision,
            why,
            observe,
            settle,
            more_after=lambda: self._message_figures(switched, self.swarm.clock()),
        )
        if rule is not None:
            self._on_trial = decision_id
        return {
            "previous": previous.describe(),
            "topology": topology.describe(),
            "decision_id": decision_id,
            "figures_before": before_figures,
        }

    async def optimize_topology(
        self,
        strategy: str = "adaptive",
        objective: str = "p99",
        *,
        min_gain: float = DEFAULT_MIN_GAIN,
        observe: float = DEFAULT_OBSERVE,
        dry_run: bool = False,
        min_samples: int = 20,
    ) -> dict[str, Any]:
        """Plan the topology from the swarm's measured workload (each simulated) and, unless
        `dry_run`, switch to the one `strategy` picks on trial: only if the plan predicts a
        gain of at least `min_gain` on `objective`, kept only if the measured figure over
        the `observe` seconds after gains as much too."""
        picked = Strategy.parse(strategy)
        check_objective(objective)
        check_min_gain(min_gain)
        rule = trial_rule(objective, min_gain, min_samples)
        if not dry_run:
            check_rule(rule, observe, objectives=TOPOLOGY_OBJECTIVES)
        if self.state in (STOPPING, STOPPED):
            raise Refused("stopping", "the swarm is stopping and changes no more", 5.0)
        if not dry_run and self._on_trial is not None:
            self._claim_trial()  # refused now, not after seconds of planning
        check_traffic(self.spec)
        current = self.swarm.messages.topology
        figures = self.metrics.figures()
        workload = measured_workload(figures)
        measured = measured_traffic(
            self.swarm.messages.matrix(),
            {agent.id: agent.completed for agent in self.swarm.coordinator.all_agents()},
            [agent.id for agent in self.spec.agent_specs()],
        )
        plan = await asyncio.to_thread(live_plan, self.spec, current, workload, objective, measured)
        target, gain = chosen(plan, picked)
        # Which traffic the plan simulated: the matrix the swarm measured, or (before any
        # message) the pattern its spec declares.
        traffic = "declared" if measured is None else "measured"
        answer: dict[str, Any] = {
            "strategy": str(picked),
            "objective": objective,
            "traffic": traffic,
            "live_figure": LIVE_FIGURES[objective],
            "min_gain": min_gain,
            "current": plan.current,
            "target": target,
            "predicted_gain": gain,
            "workload": workload,
            "plan": plan.to_dict(),
            "dry_run": dry_run,
            "applied": False,
            "decision_id": None,
        }
        if target == plan.current:
            answer["why"] = f"{target} is in force already: nothing to change"
        elif gain is None or gain < min_gain:
            shown = "no figure" if gain is None else f"{gain:.1%}"
            answer["why"] = (
                f"the plan predicts {shown} on {objective} for {target} over {plan.current}, "
                f"less than the {min_gain:.0%} asked for"
            )
        elif dry_run:
            answer["why"] = f"dry run: {target} would be tried ({gain:.1%} predicted)"
        if dry_run or "why" in answer:
            if not dry_run:  # an attempt all the same: recorded, with why nothing changed
                answer["decision_id"] = self._decide(
                    "topology",
                    {
                        "previous": plan.current,
                        "topology": plan.current,
                        "inputs": {
                            "strategy": str(picked),
                            "objective": objective,
                            "min_gain": min_gain,
                            "workload": workload,
                            "traffic": traffic,
                            "prediction": {"topology": target, "gain": gain},
                        },
                        "trial": {"verdict": NOT_APPLIED, "why": answer["why"]},
                    },
                    f"topology-optimize {picked}: {answer['why']}",
                    0.0,
                )
        else:
            matrix = self.swarm.messages.matrix()
            inputs = {
                "strategy": str(picked),
                "objective": objective,
                "min_gain": min_gain,
                "workload": workload,
                "traffic": traffic,
                "communication": {
                    "agents": list(matrix.agents),
                    "messages": int(matrix.messages.sum()),
                    "bytes": int(matrix.bytes.sum()),
                    "hops": int(matrix.links.sum()),
                },
                "prediction": {"topology": target, "gain": gain, "plan": plan.to_dict()},
            }
            change = await self.set_topology(
                settings_of(target, self.spec, current),
                observe=observe,
                rule=rule,
                reason=(
                    f"topology-optimize {picked}: {target} predicted {gain:.1%} better than "
                    f"{plan.current} on {objective}"
                ),
                inputs=inputs,
            )
            answer.update(
                applied=True,
                decision_id=change["decision_id"],
                figures_before=change["figures_before"],
                rule=rule.to_data(),
                observe_s=observe,
                why=f"switched to {target} on trial for {observe:g} s",
            )
        return answer

    def pause(self) -> str:
        self.swarm.pause("paused through the service")
        self.state = PAUSED
        return self.state

    def resume(self) -> str:
        if self.state in (STOPPING, STOPPED):
            return self.state
        if self.swarm.paused:
            self.swarm.resume("resumed through the service")
        self.state = RUNNING
        return self.state

    def drain(self) -> str:
        if self.state in (RUNNING, PAUSED):
            self.state = DRAINING
        return self.state

    async def profile(
        self,
        duration: float,
        rate: float,
        components: str = "all",
        memory: bool = False,
        awaiting: bool = True,
    ) -> dict[str, Any]:
        """Sample this process's stacks (and process-backend workers' with py-spy) for
        `duration` seconds at `rate` Hz: the folded stacks of `components` (all,
        coordinator, agents or an agent's id), by agent and handler, as plain data;
        `awaiting` adds handlers suspended in an await (see `swarmperf.profiling`)."""
        from swarmperf.profiling.stacks import check_components
        from swarmperf.profiling.window import check_window, profile_window

        check_window(duration, rate)
        check_components(components, self.swarm.coordinator.agents, "components")
        if self._profiling:
            raise ConfigError(
                "profile", "running", "One profile runs at a time here: wait for it to end."
            )
        self._profiling = True
        try:
            pid_of = getattr(self.swarm.backend, "pid", None)
            workers = {}
            if callable(pid_of):
                workers = {a: int(pid_of(a)) for a in self.swarm.coordinator.agents}
                workers = {a: pid for a, pid in workers.items() if pid > 0}
            if components not in ("all", "agents"):
                workers = {a: pid for a, pid in workers.items() if a == components}
            handlers = {kind: self.handlers[kind] for kind in self.handlers}
            found = await profile_window(
                duration,
                rate,
                memory=memory,
                awaiting=awaiting,
                workers=workers,
                handlers=handlers,
            )
        finally:
            self._profiling = False
        return found.select(components).to_data()

    def report(self) -> dict[str, Any]:
        """What the run did, measured: for the store at the end of the run."""
        c = self.swarm.coordinator
        total = self.metrics.latency_total
        return {
            "served": True,
            "accepted": self.accepted,
            "recovered": self.recovered,
            "recorded": self.recorded,
            "submitted": c.submitted,
            "completed": c.completed,
            "failed": c.failed,
            "rejected": c.rejected,
            "uptime_s": None if self.started_at is None else self.clock() - self.started_at,
            "latency_mean_s": total.sum / total.count if total.count else None,
            "strategy": self.swarm.strategy.name,
            "agents": len(c.agents),
            "messages": self.swarm.messages.summary(),  # who talked to whom
        }

    # -- the live feed -------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        """What a dashboard is told first."""
        return {
            "type": "hello",
            "swarm_id": self.swarm_id,
            "live": True,
            "state": self.state,
            "interval_s": self.spec.monitor.interval if self.spec.monitor.enabled else None,
            "seq": self.feed.seq,
            "strategy": self.swarm.strategy.name,
            "backend": self.spec.backend,
            "started_at": self.started_at,
            "run_id": self.run_id,
        }

    def _publish_figures(self, figures: SwarmFigures, system: SystemFigures | None) -> None:
        """Each monitor interval: the figures, by the names the store keeps them under."""
        if self._events_dropped:
            self.feed.publish(
                {
                    "type": "event",
                    "kind": "events-dropped",
                    "subject": "feed",
                    "detail": {"count": self._events_dropped},
                }
            )
        self._events_this_interval = self._events_dropped = 0
        c = self.swarm.coordinator
        depth, by_priority = self.metrics.queue_depths()
        counts = self.swarm.event_counts
        agents = []
        for agent in c.all_agents():
            mine = figures.agents.get(agent.id)
            agents.append(
                {
                    "id": agent.id,
                    "utilization": None if mine is None else mine.utilization,
                    "speed": agent.speed,
                    "weight": agent.weight,
                    "in_flight": agent.in_flight,
                    "slots": agent.slots,
                    "completed": agent.completed,
                    "failed": agent.failed,
                    "breaker": self.metrics.breaker_of(agent.id),
                    "alive": agent.alive,
                    "paused": agent.paused,
                }
            )
        self.feed.publish(
            {
                "type": "metrics",
                "ts": figures.ts,
                "window_s": figures.window_s,
                "state": self.state,
                "strategy": self.swarm.strategy.name,
                "metrics": flatten(figures, system),
                "queue": {"depth": depth, "by_priority": dict(by_priority)},
                "totals": {
                    "rejected": c.rejected,
                    "shed": counts.get(SHED, 0),
                    "retried": c.retried,
                    "completed": c.completed,
                    "failed": c.failed,
                },
                "agents": agents,
                "alerts": self._alert_list(),
                "prometheus": self._exposition(system),
            }
        )

    def _exposition(self, system: SystemFigures | None) -> dict[str, float]:
        """The same figures as `/metrics` exposes them: series name (with its labels but
        the swarm's) -> value, so that a dashboard and a Prometheus query say alike."""
        from swarmperf.monitor.exposition import SwarmCollector

        if self._collector is None:
            self._collector = SwarmCollector(self.metrics, system=lambda: self._last_system)
        self._last_system = system
        series: dict[str, float] = {}
        for family in self._collector.collect():
            for sample in family.samples:
                labels = ",".join(
                    f'{key}="{value}"'
                    for key, value in sorted(sample.labels.items())
                    if key != SWARM_LABEL
                )
                name = f"{sample.name}{{{labels}}}" if labels else sample.name
                if math.isfinite(sample.value):
                    series[name] = sample.value
        return series

    def _alert_list(self) -> list[dict[str, Any]]:
        if self._alerts is None:
            return []
        try:  # the alert manager runs on a worker thread: read a copy
            alerts = list(self._alerts.manager.alerts.values())
        except RuntimeError:
            return []
        shown = []
        for alert in alerts:
            if alert.status == "inactive":
                continue
            labels = alert.labels
            shown.append(
                {
                    "name": labels.get("alertname", ""),
                    "severity": labels.get("severity", ""),
                    "status": alert.status,
                    "summary": alert.annotations.get("summary", ""),
                    "value": alert.value,
                }
            )
        return shown

    def _on_event(self, event: Event) -> None:
        """Stored and shown with the wall-clock time it happened: the swarm's clock, which
        stamps it, means nothing outside this process."""
        event = on_wall_clock(self.swarm, event)
        assert self._journal is not None
        self._journal.record_event(event)
        self._event_to_feed(event)

    def _event_to_feed(self, event: Event) -> None:
        """An event, as it happens; beyond a bound per interval only counted (an overload
        sheds a task at a time, and a page needs the count, not each one)."""
        if self._events_this_interval >= EVENTS_PER_INTERVAL:
            self._events_dropped += 1
            return
        self._events_this_interval += 1
        self.feed.publish(
            {
                "type": "event",
                "ts": event.ts,
                "kind": event.kind,
                "subject": event.subject,
                "detail": dict(event.detail),
            }
        )

    def _publish_decision(
        self, decision_id: int, kind: str, reason: str, decision: dict[str, Any], created: float
    ) -> None:
        self.feed.publish(
            {
                "type": "decision",
                "id": decision_id,
                "kind": kind,
                "reason": reason,
                "created_at": created,
                "decision": decision,
            }
        )

    # -- background -----------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        job = asyncio.get_running_loop().create_task(coro)
        self._background.add(job)
        job.add_done_callback(self._done)

    def _done(self, job: asyncio.Task[Any]) -> None:
        self._background.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.error("swarm %r: background job failed: %r", self.swarm_id, job.exception())

    async def _pruning(self) -> None:
        """Forget tasks finished longer ago than `retain`, now and then every hour (or
        every `retain`, if shorter)."""
        while True:
            if self._journal is not None:
                self._journal.prune(self.clock() - self.retain)
            await asyncio.sleep(min(self.retain, 3600.0))

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            if self._journal is not None:
                self._journal.heartbeat()


def _task_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    names = ("kind", "payload", "priority", "rank", "deadline_s", "cost", "tenant", "tokens")
    return {name: data[name] for name in names if name in data}


def _result_json(result: TaskResult) -> str:
    """The result as stored for clients: its value only if it is JSON, and not too big."""
    data: dict[str, Any] = {
        "value": None,
        "error": result.error,
        "agent": result.agent,
        "attempts": result.attempts,
        "latency_s": result.latency,
    }
    if result.fallback_from is not None:
        data["fallback_from"] = result.fallback_from
    value = result.value
    if value is not None:
        try:
            text = _compact(value)
        except (TypeError, ValueError):
            data["value_dropped"] = f"the handler returned a {type(value).__name__}, not JSON"
        else:
            if len(text) > MAX_VALUE_BYTES:
                data["value_dropped"] = f"the value is {len(text):,} bytes as JSON (limit 1 MB)"
            else:
                data["value"] = value
    return _compact(data)

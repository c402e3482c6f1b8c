"""Runs a swarm spec end to end: start the swarm, feed its workload, report, store."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from swarmperf.errors import ConfigError
from swarmperf.handlers import HandlerRegistry
from swarmperf.model import TaskResult
from swarmperf.monitor.monitor import Monitor
from swarmperf.monitor.swarm_metrics import SwarmMetrics
from swarmperf.report import RunReport, build_report, work_lower_bound
from swarmperf.runtime.backends import make_backend
from swarmperf.runtime.guard import Event
from swarmperf.runtime.swarm import Swarm
from swarmperf.spec import BatchArrival, SwarmSpec
from swarmperf.store import Store
from swarmperf.workload import TimedTask, feed, generate_tasks

if TYPE_CHECKING:
    from swarmperf.monitor.exposition import MetricsServer
    from swarmperf.monitor.sinks import AlertingFile
    from swarmperf.monitor.snapshot import SwarmFigures, SystemFigures


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for progress displays."""

    total: int
    finished: int
    failed: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class RunOutcome:
    report: RunReport
    results: list[TaskResult]
    run_id: int | None  # the stored run, when a store was given
    max_feed_lag: float  # seconds the workload feed fell behind its schedule, measured


ProgressListener = Callable[[Progress], None]
# Told of the run's monitor (and its /metrics server, if the spec asks for one) once it runs.
MonitorListener = Callable[[Monitor, "MetricsServer | None"], None]


def check_runnable(spec: SwarmSpec, handlers: HandlerRegistry) -> None:
    """What the spec cannot tell by itself: does its task kind exist here?"""
    if spec.workload.kind not in handlers:
        choices = ", ".join(sorted(handlers))
        raise ConfigError(
            "workload.kind", spec.workload.kind, f"Use a registered handler: {choices}."
        )
    if spec.strategy == "auto":
        raise ConfigError(
            "strategy", "auto", "Name one strategy to run; 'auto' is for `load-balance`."
        )


def build_swarm(
    spec: SwarmSpec, handlers: HandlerRegistry | None = None, *, keep_results: bool = True
) -> Swarm:
    """The spec's swarm, not yet started: agents, strategy, backend, queue and resilience."""
    clock = time.perf_counter
    return Swarm(
        spec.agent_specs(),
        strategy=spec.strategy,
        backend=make_backend(spec.backend, spec),
        queue=spec.queue_settings(),
        handlers=handlers,
        seed=spec.seed,
        clock=clock,
        guard=spec.guard(clock),
        bulkheads=spec.resilience.bulkhead_settings(),
        restart=spec.resilience.restart_policy(),
        keep_results=keep_results,
    )


async def run_spec(
    spec: SwarmSpec,
    *,
    store: Store | None = None,
    on_progress: ProgressListener | None = None,
    progress_every: float = 0.2,
    handlers: HandlerRegistry | None = None,
    on_monitor: MonitorListener | None = None,
) -> RunOutcome:
    """Run `spec` once. With a `duration`, tasks not started by then are cancelled.

    Unless the spec turns it off, a `Monitor` samples the swarm every `monitor.interval`
    and stores the snapshots under the run; `monitor.metrics_port` also serves /metrics.

    The `sim` backend runs the same swarm in virtual time (see `swarmperf.sim`).
    """
    handlers = handlers or HandlerRegistry()
    check_runnable(spec, handlers)
    if spec.backend == "sim":
        return _simulate(spec, store, on_progress, handlers)
    timed = generate_tasks(spec.workload, spec.seed)
    total = len(timed)
    swarm = build_swarm(spec, handlers)
    run_id = (
        store.start_run(spec.swarm_id, spec.to_data(), spec.backend, spec.strategy)
        if store is not None
        else None
    )
    status = "failed"
    unsaved: list[TaskResult] = []
    unsaved_events: list[Event] = []
    if store is not None:
        swarm.on_result(unsaved.append)
        swarm.on_event(unsaved_events.append)
    try:
        async with swarm, _monitoring(spec, swarm, store, run_id, on_monitor):
            started = swarm.clock()
            ticker = asyncio.create_task(
                _tick(
                    swarm,
                    total,
                    started,
                    on_progress,
                    progress_every,
                    _Saver(store, run_id, spec.swarm_id, unsaved, unsaved_events),
                )
            )
            try:
                lag = await _feed_and_drain(swarm, timed, spec.duration)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            finished = swarm.clock()
            if on_progress is not None:
                on_progress(_snapshot(swarm, total, started))
            agents = list(swarm.coordinator.all_agents())
        results = swarm.results
        bound = None
        if isinstance(spec.workload.arrival, BatchArrival):
            bound = work_lower_bound(results, agents)
        report = build_report(
            results,
            agents,
            started,
            finished,
            strategy=spec.strategy,
            backend=spec.backend,
            swarm_id=spec.swarm_id,
            lower_bound=bound,
            events=swarm.event_counts,
        )
        if not isinstance(spec.workload.arrival, BatchArrival):
            report.missing["makespan_ratio"] = (
                "tasks arrive over time, so total work / capacity bounds nothing"
            )
        status = "completed"
        if store is not None and run_id is not None:
            with store.transaction():
                _Saver(store, run_id, spec.swarm_id, unsaved, unsaved_events).save()
                store.finish_run(run_id, report.to_dict(), status)
        return RunOutcome(report, results, run_id, lag)
    finally:
        if store is not None and run_id is not None and status != "completed":
            store.finish_run(run_id, {}, status)


@contextlib.asynccontextmanager
async def _monitoring(
    spec: SwarmSpec,
    swarm: Swarm,
    store: Store | None,
    run_id: int | None,
    listener: MonitorListener | None,
) -> AsyncIterator[Monitor | None]:
    """The spec's monitor (and /metrics server) for as long as the swarm runs."""
    if not spec.monitor.enabled:
        yield None
        return
    metrics = SwarmMetrics(spec.swarm_id, clock=swarm.clock)
    metrics.attach(swarm)
    monitor = Monitor(metrics, interval=spec.monitor.interval, store=store, run_id=run_id)
    alerts = load_alerting(spec)
    observer = None
    if alerts is not None:
        from swarmperf.monitor.sinks import build_observer

        # In the background: a slow or failing receiver must never stall the swarm's loop.
        observer = build_observer(
            alerts, store=store, swarm_id=spec.swarm_id, seed=spec.seed or 0, background=True
        )
        monitor.add_observer(observer)
    if spec.monitor.anomalies:
        monitor.add_observer(_anomaly_events(swarm))
    server: MetricsServer | None = None
    await monitor.start()
    try:
        if spec.monitor.metrics_port is not None:
            from swarmperf.monitor.exposition import SwarmCollector, make_registry, serve

            def system() -> SystemFigures | None:
                latest = monitor.latest
                return latest.system if latest is not None else None

            collector = SwarmCollector(metrics, system=system)
            try:
                server = serve(spec.monitor.metrics_port, registry=make_registry(collector))
            except ConfigError as exc:  # name the spec's field, not the function's argument
                raise ConfigError("monitor.metrics_port", exc.value, exc.fix) from exc
        if listener is not None:
            listener(monitor, server)
        yield monitor
    finally:
        try:
            await monitor.stop()  # one last snapshot, covering the end of the run
        finally:
            if observer is not None:
                observer.close()
            if server is not None:
                server.close()


def _anomaly_events(
    swarm: Swarm,
) -> Callable[[SwarmFigures, SystemFigures | None], None]:
    """A monitor observer that runs the anomaly ensemble on the swarm's key figures and
    records each anomalous one as an `anomaly` event of the run."""
    from swarmperf.monitor.anomaly.feed import MetricAnomalies

    detect = MetricAnomalies()

    def observe(figures: SwarmFigures, system: SystemFigures | None) -> None:
        for finding in detect(figures, system):
            swarm.emit(
                "anomaly",
                finding["metric"],
                value=finding["value"],
                score=round(finding["score"], 4),
            )

    return observe


def load_alerting(spec: SwarmSpec) -> AlertingFile | None:
    """The spec's alerting file, read and checked; None when the spec names none."""
    path = spec.monitor.alerting
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError(
            "monitor.alerting",
            str(path),
            "No such file. Give the path of an alerting file (start from `swarmperf "
            "sla-defaults`), relative to the working directory, or leave the field out.",
        )
    from swarmperf.monitor.sinks import AlertingFile

    return AlertingFile.load(path)


async def _feed_and_drain(swarm: Swarm, timed: list[TimedTask], duration: float | None) -> float:
    async def work() -> float:
        stats = await feed(swarm, timed, swarm.clock)
        await swarm.drain()
        return stats.max_lag

    job = asyncio.create_task(work())
    if duration is None:
        return await job
    done, _ = await asyncio.wait({job}, timeout=duration)
    if job in done:
        return job.result()
    job.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await job
    swarm.cancel_pending(f"the run's duration of {duration:g}s was up before it started")
    await swarm.drain()
    return float("nan")


def _simulate(
    spec: SwarmSpec,
    store: Store | None,
    on_progress: ProgressListener | None,
    handlers: HandlerRegistry,
) -> RunOutcome:
    from swarmperf.sim import SimProgress, simulate_spec

    def progress(p: SimProgress) -> None:
        if on_progress is not None:
            on_progress(Progress(p.total, p.finished, p.failed, p.wall))

    run_id = (
        store.start_run(spec.swarm_id, spec.to_data(), spec.backend, spec.strategy)
        if store is not None
        else None
    )
    try:
        outcome, report = simulate_spec(spec, handlers=handlers, on_progress=progress)
    except BaseException:
        if store is not None and run_id is not None:
            store.finish_run(run_id, {}, "failed")
        raise
    if store is not None and run_id is not None:
        with store.transaction():
            _Saver(store, run_id, spec.swarm_id, list(outcome.results), list(outcome.events)).save()
            store.finish_run(run_id, report.to_dict(), "completed")
    return RunOutcome(report, outcome.results, run_id, 0.0)


def _snapshot(swarm: Swarm, total: int, started: float) -> Progress:
    c = swarm.coordinator
    return Progress(total, c.completed + c.failed, c.failed, time.perf_counter() - started)


@dataclass(slots=True)
class _Saver:
    """Moves finished results and events into the store as the run goes."""

    store: Store | None
    run_id: int | None
    swarm_id: str
    results: list[TaskResult]
    events: list[Event]

    def take(self) -> tuple[list[TaskResult], list[Event]]:
        """What is waiting to be saved; call on the swarm's loop, which appends to it."""
        results, events = self.results[:], self.events[:]
        self.results.clear()
        self.events.clear()
        return results, events

    def save(self) -> None:
        self.write(*self.take())

    def write(self, results: list[TaskResult], events: list[Event]) -> None:
        if self.store is None or self.run_id is None:
            return
        if results:
            self.store.record_results(self.run_id, results)
        for event in events:
            self.store.record_event(
                self.swarm_id, self.run_id, event.ts, event.kind, event.subject, dict(event.detail)
            )


async def _tick(
    swarm: Swarm,
    total: int,
    started: float,
    listener: ProgressListener | None,
    every: float,
    saver: _Saver,
) -> None:
    """Report progress, and save finished results and events as they come, so that other
    processes can follow a running swarm in the store."""
    while True:
        if listener is not None:
            listener(_snapshot(swarm, total, started))
        if saver.results or saver.events:
            await asyncio.to_thread(saver.write, *saver.take())
        await asyncio.sleep(every)


async def compare_strategies(
    spec: SwarmSpec,
    names: list[str],
    *,
    store: Store | None = None,
    on_start: Callable[[str], None] | None = None,
    on_progress: ProgressListener | None = None,
) -> dict[str, RunOutcome]:
    """Run the same workload (same seed) under each strategy, one after the other."""
    outcomes: dict[str, RunOutcome] = {}
    for name in names:
        if on_start is not None:
            on_start(name)
        variant = spec.model_copy(update={"strategy": name})
        outcomes[name] = await run_spec(variant, store=store, on_progress=on_progress)
    return outcomes

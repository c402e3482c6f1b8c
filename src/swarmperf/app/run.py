"""Runs a swarm spec end to end: start the swarm, feed its workload, report, store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from swarmperf.app.backends import backend_entry
from swarmperf.app.build import build_swarm, check_runnable, load_alerting
from swarmperf.app.workload import TimedTask, feed, generate_tasks
from swarmperf.core.errors import ConfigError, StoreError
from swarmperf.core.events import ANOMALY, Event
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.core.model import TaskResult
from swarmperf.monitor.monitor import Monitor
from swarmperf.monitor.swarm_metrics import SwarmMetrics
from swarmperf.runtime.report import RunReport, build_report, work_lower_bound
from swarmperf.runtime.swarm import Swarm
from swarmperf.spec import BatchArrival, SwarmSpec, TimeoutsSpec
from swarmperf.store import RUN_INTERRUPTED, Store
from swarmperf.store.records import HEARTBEAT_EVERY, RUN_SIMULATED

if TYPE_CHECKING:
    from swarmperf.monitor.exposition import MetricsServer
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
    # What a signal (SIGTERM, SIGINT) did to the run, when one cut it short; else None.
    interrupted: Interruption | None = None


@dataclass(frozen=True, slots=True)
class Interruption:
    """A run cut short by a signal: it drained, then cancelled what was left."""

    signal: signal.Signals
    drain_seconds: float  # from the signal to the end of the drain, measured
    cancelled_running: int  # tasks still running at the end of the drain, cancelled
    cancelled_waiting: int  # tasks not started (or not yet due), cancelled

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 SIGINT, 143 SIGTERM)."""
        return 128 + int(self.signal)

    def describe(self) -> str:
        return (
            f"interrupted by {self.signal.name}: drained for {self.drain_seconds:.1f}s, then "
            f"cancelled {self.cancelled_running} running and {self.cancelled_waiting} waiting "
            "tasks; the figures cover only what ran before"
        )


log = logging.getLogger("swarmperf.app.run")

ProgressListener = Callable[[Progress], None]
# Told of the run's monitor (and its /metrics server, if the spec asks for one) once it runs.
MonitorListener = Callable[[Monitor, "MetricsServer | None"], None]


async def run_spec(
    spec: SwarmSpec,
    *,
    store: Store | None = None,
    on_progress: ProgressListener | None = None,
    progress_every: float = 0.2,
    handlers: HandlerRegistry | None = None,
    on_monitor: MonitorListener | None = None,
    handle_signals: bool = True,
) -> RunOutcome:
    """Run `spec` once. When its `duration` is up, tasks not started are cancelled, and
    tasks still running `timeouts.grace` later too; every task gets exactly one result.

    With `handle_signals` (and on the main thread), SIGTERM and SIGINT end the run early:
    tasks not started are cancelled, running ones get `timeouts.drain` to finish (a second
    signal cuts that short), the rest are cancelled, and the run is recorded `interrupted`
    with its report; `RunOutcome.interrupted` says what happened. A third signal while the
    end is being recorded gives up on that and acts as the signal normally would.

    Unless the spec turns it off, a `Monitor` samples the swarm every `monitor.interval`
    and stores the snapshots under the run; `monitor.metrics_port` also serves /metrics.
    A stored run refreshes its heartbeat every few seconds while it goes.

    A virtual-time backend (`sim`) runs the same swarm in virtual time (see `swarmperf.sim`),
    with no signal handling: nothing there waits on the wall clock.
    """
    signals = handle_signals and not backend_entry(spec.backend).virtual_time
    with _Stop.installed(signals) as stop:
        return await _run_spec(spec, store, on_progress, progress_every, handlers, on_monitor, stop)


async def _run_spec(
    spec: SwarmSpec,
    store: Store | None,
    on_progress: ProgressListener | None,
    progress_every: float,
    handlers: HandlerRegistry | None,
    on_monitor: MonitorListener | None,
    stop: _Stop,
) -> RunOutcome:
    handlers = handlers or HandlerRegistry()
    check_runnable(spec, handlers)
    if backend_entry(spec.backend).virtual_time:
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
    saver = _Saver(store, run_id, spec.swarm_id, [], [])
    if store is not None:
        swarm.on_result(saver.results.append)
        swarm.on_event(lambda event: saver.events.append(on_wall_clock(swarm, event)))
    try:
        async with (
            _heartbeats(store, run_id),
            swarm,
            _monitoring(spec, swarm, store, run_id, on_monitor),
        ):
            started = swarm.clock()
            stop_ticker = asyncio.Event()
            ticker = asyncio.create_task(
                _tick(swarm, total, started, on_progress, progress_every, saver, stop_ticker)
            )
            try:
                lag = await _feed_and_drain(swarm, timed, spec.duration, spec.timeouts, stop)
            finally:
                stop_ticker.set()
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
            stolen=swarm.coordinator.statistics().stolen,
            nodes=swarm.nodes,
            messages=swarm.messages.summary(),
        )
        if not isinstance(spec.workload.arrival, BatchArrival):
            report.missing["makespan_ratio"] = (
                "tasks arrive over time, so total work / capacity bounds nothing"
            )
        interruption = stop.interruption
        if interruption is not None:
            report = replace(report, interrupted=interruption.describe())
        if store is not None and run_id is not None:
            _save_and_finish(
                store,
                run_id,
                saver,
                len(results),
                report,
                status="completed" if interruption is None else RUN_INTERRUPTED,
            )
        status = "completed"
        return RunOutcome(report, results, run_id, lag, interruption)
    finally:
        if store is not None and run_id is not None and status != "completed":
            _mark_ended(store, run_id, status)


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
        from swarmperf.alerting.sinks import build_observer

        # In the background: a slow or failing receiver must never stall the swarm's loop.
        observer = build_observer(
            alerts, store=store, swarm_id=spec.swarm_id, seed=spec.seed or 0, background=True
        )
        monitor.add_observer(observer)
    if spec.monitor.anomalies:
        monitor.add_observer(anomaly_events(swarm))
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


def anomaly_events(
    swarm: Swarm,
) -> Callable[[SwarmFigures, SystemFigures | None], None]:
    """A monitor observer that runs the anomaly ensemble on the swarm's key figures and
    records each anomalous one as an `anomaly` event of the run."""
    from swarmperf.analysis.anomaly.feed import MetricAnomalies

    detect = MetricAnomalies()

    def observe(figures: SwarmFigures, system: SystemFigures | None) -> None:
        for finding in detect(figures, system):
            swarm.emit(
                ANOMALY,
                finding["metric"],
                value=finding["value"],
                score=round(finding["score"], 4),
            )

    return observe


async def _feed_and_drain(
    swarm: Swarm,
    timed: list[TimedTask],
    duration: float | None,
    timeouts: TimeoutsSpec,
    stop: _Stop,
) -> float:
    """Feed the workload and wait for it, until its end, the end of `duration`, or a
    signal. Cut short, every task still gets its one result: not started (or not yet
    due), it is cancelled at once; running, it gets `grace` (after `duration`) or `drain`
    (after a signal) to finish, and is cancelled then."""

    async def work() -> float:
        stats = await feed(swarm, timed, swarm.clock)
        await swarm.drain()
        return stats.max_lag

    job = asyncio.create_task(work())
    signalled = asyncio.create_task(stop.first.wait())
    try:
        done, _ = await asyncio.wait(
            {job, signalled}, timeout=duration, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        signalled.cancel()
    if job in done:
        return job.result()
    job.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await job
    if stop.signal is None:
        why = f"the run's duration of {duration:g}s was up"
        limit, cut = timeouts.grace, stop.first  # a signal ends the grace at once
        late = f"{why} and it was still running {limit:g}s later"
    else:
        why = f"the run was interrupted by {stop.signal.name}"
        limit, cut = timeouts.drain, stop.again
        late = f"{why} and it was still running at the end of the {limit:g}s drain"
    began = swarm.clock()
    waiting = len(swarm.cancel_pending(f"{why} before it started"))
    running = 0
    if not await _drain_within(swarm, limit, cut):
        if cut.is_set():
            late = f"{why} and it was still running when a signal ended the drain"
        waiting += len(swarm.cancel_pending(f"{why} before it started"))  # retries meanwhile
        running = len(swarm.cancel_running(late))
    unsubmitted = [task for _, task in timed]
    waiting += len(swarm.cancel_unsubmitted(unsubmitted, f"{why} before it was due"))
    await swarm.drain()
    if stop.signal is not None:
        stop.interruption = Interruption(stop.signal, swarm.clock() - began, running, waiting)
    return float("nan")


async def _drain_within(swarm: Swarm, limit: float, cut: asyncio.Event) -> bool:
    """Wait up to `limit` seconds for the swarm to finish what it runs; False if it did
    not (or `cut` was set first)."""
    drained = asyncio.create_task(swarm.drain())
    cutter = asyncio.create_task(cut.wait())
    try:
        await asyncio.wait({drained, cutter}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    finally:
        cutter.cancel()
        if not drained.done():
            drained.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drained
    return not drained.cancelled() and drained.exception() is None


class _Stop:
    """SIGTERM and SIGINT while a run goes: the first starts the drain (`first`), the
    second cuts it short (`again`), a third restores the signal's own handling and
    delivers it again, for a run stuck recording its end."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self.first = asyncio.Event()
        self.again = asyncio.Event()
        self.interruption: Interruption | None = None
        self._count = 0
        self._previous: dict[signal.Signals, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    @contextlib.contextmanager
    def installed(cls, enabled: bool) -> Iterator[_Stop]:
        stop = cls()
        if enabled:
            stop._install()
        try:
            yield stop
        finally:
            stop._remove()

    def _install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (ValueError, RuntimeError, NotImplementedError):
                continue  # not the main thread, or no signals here: nothing to drain on
            self._previous[sig] = previous
        self._loop = loop

    def _remove(self) -> None:
        loop, previous, self._previous = self._loop, self._previous, {}
        for sig, handler in previous.items():
            if loop is not None:
                loop.remove_signal_handler(sig)
            # Back to what was there (asyncio.run's own SIGINT handler, say).
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._count += 1
        if self._count == 1:
            self.signal = sig
            log.warning("%s: draining the run, then recording its end", sig.name)
            self.first.set()
        elif self._count == 2:
            log.warning("%s again: cancelling the tasks still running", sig.name)
            self.again.set()
        else:
            self._remove()
            signal.raise_signal(sig)


@contextlib.asynccontextmanager
async def _heartbeats(store: Store | None, run_id: int | None) -> AsyncIterator[None]:
    """Refresh the run's heartbeat every few seconds while the block runs, so that readers
    can tell it from a run whose process died (see `swarmperf.store.records.run_status`)."""
    if store is None or run_id is None:
        yield
        return
    done = asyncio.Event()

    async def beat() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), HEARTBEAT_EVERY)
            if done.is_set():
                return
            try:
                await asyncio.to_thread(store.heartbeat, run_id)
            except Exception as exc:  # a busy store must not end the run; the next one may
                log.warning("run %s: heartbeat not recorded (%s)", run_id, exc)

    # Stopped, never cancelled: a cancelled write would go on in its thread unawaited.
    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        done.set()
        await beating


def _simulate(
    spec: SwarmSpec,
    store: Store | None,
    on_progress: ProgressListener | None,
    handlers: HandlerRegistry,
) -> RunOutcome:
    from swarmperf.app.simulate import simulate_spec
    from swarmperf.sim import SimProgress

    def progress(p: SimProgress) -> None:
        if on_progress is not None:
            on_progress(Progress(p.total, p.finished, p.failed, p.wall))

    # Stored as simulated: its virtual agents and tasks stay out of the swarm's real history.
    run_id = (
        store.start_run(
            spec.swarm_id, spec.to_data(), spec.backend, spec.strategy, kind=RUN_SIMULATED
        )
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
        # Events on UNIX time, as the store keeps them: virtual seconds from the run's start.
        began = store.get_run(run_id)
        at = began.started_at if began is not None else time.time()
        events = [Event(at + e.ts, e.kind, e.subject, e.detail) for e in outcome.events]
        saver = _Saver(store, run_id, spec.swarm_id, list(outcome.results), events)
        try:
            _save_and_finish(store, run_id, saver, len(outcome.results), report)
        except BaseException:
            _mark_ended(store, run_id, "failed")
            raise
    return RunOutcome(report, outcome.results, run_id, 0.0)


def _mark_ended(store: Store, run_id: int, status: str) -> None:
    """Record the end of a run that did not complete, without hiding the error that ended
    it: if the store cannot take even this, readers see the run as aborted."""
    try:
        store.finish_run(run_id, {}, status)
    except Exception as exc:
        log.warning("run %s: its end could not be recorded in the store (%s)", run_id, exc)


def _save_and_finish(
    store: Store,
    run_id: int,
    saver: _Saver,
    expected: int,
    report: RunReport,
    *,
    status: str = "completed",
) -> None:
    """Store what is left and mark the run completed, in one transaction, so that no run is
    ever `completed` without all its results."""
    counts = len(saver.results), len(saver.events)
    if saver.stored + counts[0] != expected:  # a bug, never a user's mistake: refuse to misreport
        raise RuntimeError(
            f"Run {run_id}: {saver.stored + counts[0]} results to store where {expected} finished."
        )
    try:
        with store.transaction():
            saver.write(*counts)
            store.finish_run(run_id, report.to_dict(), status)
    except Exception as exc:
        raise StoreError(
            store.path,
            f"the run finished, but {expected - saver.stored:,} of its {expected:,} results "
            f"could not be stored ({exc})",
            "Free the store (another process may hold it) and run again.",
        ) from exc
    saver.committed(*counts)


def on_wall_clock(swarm: Swarm, event: Event) -> Event:
    """`event` stamped with UNIX time, as the store keeps events, rather than the swarm's
    clock, which means nothing outside this process."""
    wall = time.time() - (swarm.clock() - event.ts)
    return Event(wall, event.kind, event.subject, event.detail)


def _snapshot(swarm: Swarm, total: int, started: float) -> Progress:
    c = swarm.coordinator
    return Progress(total, c.completed + c.failed, c.failed, time.perf_counter() - started)


@dataclass(slots=True)
class _Saver:
    """Moves finished results and events into the store as the run goes.

    The swarm appends to `results` and `events` on its loop. A write takes the first n of
    each, and they leave the lists only once their transaction has committed: a write that
    fails (or is still waiting for the lock when the run ends) loses nothing, and the next
    write, or the final one, stores them. `stored` counts the results committed.
    """

    store: Store | None
    run_id: int | None
    swarm_id: str
    results: list[TaskResult]
    events: list[Event]
    stored: int = 0
    error: BaseException | None = None  # the last failed write's error, until one succeeds

    def pending(self) -> bool:
        return bool(self.results or self.events)

    def write(self, n_results: int, n_events: int) -> None:
        """Store the first n results and events in one transaction; safe off the loop,
        because it only reads those items, which nothing else changes until `committed`."""
        if self.store is None or self.run_id is None:
            return
        results, events = self.results[:n_results], self.events[:n_events]
        with self.store.transaction():
            if results:
                self.store.record_results(self.run_id, results)
            for event in events:
                self.store.record_event(
                    self.swarm_id,
                    self.run_id,
                    event.ts,
                    event.kind,
                    event.subject,
                    dict(event.detail),
                )

    def committed(self, n_results: int, n_events: int) -> None:
        """Forget what `write` stored; call on the swarm's loop, which appends to the lists."""
        del self.results[:n_results]
        del self.events[:n_events]
        self.stored += n_results
        self.error = None

    async def flush(self) -> None:
        """Store what is waiting, off the loop, so that the swarm goes on meanwhile."""
        counts = len(self.results), len(self.events)
        await asyncio.to_thread(self.write, *counts)
        self.committed(*counts)


async def _tick(
    swarm: Swarm,
    total: int,
    started: float,
    listener: ProgressListener | None,
    every: float,
    saver: _Saver,
    stop: asyncio.Event,
) -> None:
    """Report progress, and save finished results and events as they come, so that other
    processes can follow a running swarm in the store, until `stop` is set.

    It is stopped, never cancelled: a cancelled write would go on in its thread while the
    run ended without knowing whether it committed. A failed write is retried at the next
    tick, waiting longer after each failure (up to 5 s); the final save tries once more.
    """
    failures = 0
    while not stop.is_set():
        if listener is not None:
            listener(_snapshot(swarm, total, started))
        if saver.pending():
            try:
                await saver.flush()
                failures = 0
            except Exception as exc:  # kept, retried, and raised by the final save if it lasts
                saver.error = exc
                failures += 1
        pause = min(every * 2**failures, max(every, 5.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)


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

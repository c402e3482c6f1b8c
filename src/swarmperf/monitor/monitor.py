"""The Monitor loop: every interval, sample the swarm and the machine, store, and notify.

Each tick takes `SwarmMetrics.figures()` and (unless turned off) a `SystemCollector` sample,
writes their `flatten(...)` rows to the store under the run, keeps the latest `history`
snapshots in memory, and calls the observers (bottleneck, anomaly and SLA engines). An
observer that raises is recorded as a `monitor-observer-failed` event and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from swarmperf.core.errors import ConfigError
from swarmperf.core.events import (
    MONITOR_OBSERVER_FAILED,
    MONITOR_STORE_FAILED,
    MONITOR_TICK_FAILED,
    Event,
)
from swarmperf.monitor.snapshot import SwarmFigures, SystemFigures, flatten
from swarmperf.monitor.swarm_metrics import SwarmMetrics
from swarmperf.store import Store

Observer = Callable[[SwarmFigures, SystemFigures | None], None]
log = logging.getLogger(__name__)
EVENTS_KEPT = 1000


class SystemSampler(Protocol):
    def sample(self, now: float | None = None) -> SystemFigures: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    swarm: SwarmFigures
    system: SystemFigures | None


class Monitor:
    """Samples `metrics` every `interval` seconds between `start()` and `stop()`.

    `system`: True for a `SystemCollector`, False for none, or any sampler with the same
    `sample()`. With a `store`, every snapshot is written as metric rows under `run_id`.
    """

    def __init__(
        self,
        metrics: SwarmMetrics,
        *,
        interval: float = 1.0,
        store: Store | None = None,
        run_id: int | None = None,
        system: bool | SystemSampler = True,
        history: int = 3600,
    ) -> None:
        if not (interval > 0 and math.isfinite(interval)):
            raise ConfigError("monitor.interval", interval, "Use a duration > 0, e.g. 1s.")
        if history < 1:
            raise ConfigError("monitor.history", history, "Use a whole number >= 1.")
        self.metrics = metrics
        self.interval = float(interval)
        self.store = store
        self.run_id = run_id
        if system is True:
            from swarmperf.monitor.collectors import SystemCollector

            self.system: SystemSampler | None = SystemCollector(clock=metrics.wall)
        elif system is False:
            self.system = None
        else:
            self.system = system
        self.history: deque[Snapshot] = deque(maxlen=history)
        self.events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self.samples = 0
        self._observers: list[Observer] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def add_observer(self, observer: Observer) -> None:
        """Call `observer(swarm_figures, system_figures)` after every sample."""
        self._observers.append(observer)

    @property
    def latest(self) -> Snapshot | None:
        return self.history[-1] if self.history else None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start sampling on the running event loop (the first sample after one interval)."""
        if self.running:
            return
        if self.system is not None:
            # Rates need a previous reading: take it now, so the first tick has them.
            self.system.sample()
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self, *, final: bool = True) -> None:
        """Stop the loop; with `final`, take one last sample covering the end of the run.

        A tick under way finishes first, so no snapshot is kept without its rows stored.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves: no final sample
        if final:
            await self.tick()

    async def __aenter__(self) -> Monitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.interval
        stopping = self._stopping
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), max(next_at - loop.time(), 0.0))
                return
            try:
                await self.tick()
            except Exception as exc:  # one bad sample must not end the monitoring
                self._emit(MONITOR_TICK_FAILED, "monitor", self.metrics.wall(), error=repr(exc))
            next_at += self.interval
            now = loop.time()
            if next_at < now:  # fell behind (a long store write): skip, do not burst
                next_at = now + self.interval

    # -- one sample ---------------------------------------------------------------------

    def sample(self) -> Snapshot:
        """Take one snapshot, keep it and notify observers (no store I/O)."""
        swarm = self.metrics.figures()
        system = self.system.sample(swarm.ts) if self.system is not None else None
        return self._keep(swarm, system)

    def _keep(self, swarm: SwarmFigures, system: SystemFigures | None) -> Snapshot:
        snapshot = Snapshot(swarm, system)
        self.history.append(snapshot)
        self.samples += 1
        for observer in list(self._observers):
            try:
                observer(swarm, system)
            except Exception as exc:  # an observer's bug must not stop the monitoring
                self._record_failure(observer, exc, swarm.ts)
        return snapshot

    async def tick(self) -> Snapshot:
        """`sample()`, with the machine read and the store written off the event loop."""
        swarm = self.metrics.figures()
        system = None
        if self.system is not None:
            # psutil reads /proc: done on a thread, the swarm's loop keeps dispatching.
            system = await asyncio.to_thread(self.system.sample, swarm.ts)
        snapshot = self._keep(swarm, system)
        if self.store is not None:
            rows = flatten(snapshot.swarm, snapshot.system)
            try:
                await asyncio.to_thread(
                    self.store.record_metrics,
                    self.metrics.swarm_id,
                    self.run_id,
                    snapshot.swarm.ts,
                    rows,
                )
            except Exception as exc:  # a busy or full disk loses a sample, not the run
                self._emit(MONITOR_STORE_FAILED, "store", snapshot.swarm.ts, error=repr(exc))
        return snapshot

    def _record_failure(self, observer: Observer, exc: Exception, ts: float) -> None:
        name = getattr(observer, "__qualname__", None) or type(observer).__qualname__
        self._emit(MONITOR_OBSERVER_FAILED, name, ts, error=repr(exc))

    def _emit(self, kind: str, subject: str, ts: float, **detail: str) -> None:
        log.warning("%s: %s %s", kind, subject, detail)
        self.events.append(Event(ts, kind, subject, detail))
        swarm = self.metrics.swarm
        if swarm is not None:
            # Through the swarm, so the run's event log (and the store) has it.
            swarm.emit(kind, subject, **detail)
        elif self.store is not None:
            self.store.record_event(self.metrics.swarm_id, self.run_id, ts, kind, subject, detail)

"""Group commit for a live swarm's intake: one thread writes accepted tasks and results, in bulk.

Each request that submits tasks, and each result, would cost a transaction of its own; the
writer instead takes everything that arrived while the previous transaction committed and
commits it together. Under load a transaction carries hundreds of requests; when idle, one
request waits for one commit and no more (no timer batches it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from swarmperf.core.events import Event
from swarmperf.core.model import TaskResult
from swarmperf.store.intake import Accepted, Intake

log = logging.getLogger("swarmperf.service.journal")

Recorded = Callable[[list[tuple[TaskResult, int]]], None]
_RETRY_MAX = 5.0  # seconds between attempts to store results while the store refuses


@dataclass(slots=True)
class _Batch:
    rows: Sequence[tuple[str, str, str]]
    accepted_at: float
    done: asyncio.Future[list[Accepted]]


@dataclass(slots=True)
class _Pending:
    accepts: list[_Batch] = field(default_factory=list)
    results: list[tuple[TaskResult, str]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    flushes: list[asyncio.Future[None]] = field(default_factory=list)
    prune_before: float | None = None  # forget tasks recorded before this UNIX time
    metrics: list[tuple[float, dict[str, float | None]]] = field(default_factory=list)
    heartbeat: bool = False

    def empty(self) -> bool:
        return not (
            self.accepts
            or self.results
            or self.events
            or self.flushes
            or self.metrics
            or self.heartbeat
            or self.prune_before is not None
        )


class Journal:
    """Writes `intake` from one thread. Accepted batches are answered once committed;
    results are recorded in order and exactly once, and `on_recorded` hears of them (on
    the event loop) once committed. A failed write of results is retried, never dropped;
    a failed accept is the request's error (nothing of it was stored)."""

    def __init__(
        self,
        intake: Intake,
        run_id: int,
        loop: asyncio.AbstractEventLoop,
        on_recorded: Recorded,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.intake = intake
        self.run_id = run_id
        self.loop = loop
        self.on_recorded = on_recorded
        self.clock = clock
        self.next_done = intake.last_done() + 1
        self.commits = 0  # transactions committed, for the service's own figures
        self.error: BaseException | None = None  # the last failed write's, until one works
        self._pending = _Pending()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="swarmperf-journal", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def accept(self, rows: Sequence[tuple[str, str, str]]) -> asyncio.Future[list[Accepted]]:
        """Store `(task_id, key, task_json)` rows; the future resolves once they are
        committed (call on the loop)."""
        done: asyncio.Future[list[Accepted]] = self.loop.create_future()
        with self._cond:
            if self._closing:
                raise RuntimeError("the journal is closed")
            self._pending.accepts.append(_Batch(rows, self.clock(), done))
            self._cond.notify()
        return done

    def record(self, result: TaskResult, text: str) -> None:
        with self._cond:
            self._pending.results.append((result, text))
            self._cond.notify()

    def record_event(self, event: Event) -> None:
        with self._cond:
            self._pending.events.append(event)
            self._cond.notify()

    def record_metrics(self, ts: float, rows: dict[str, float | None]) -> None:
        """A monitor snapshot's rows, stored with the next commit: written by this thread
        like everything else, a snapshot never holds the store while requests wait."""
        with self._cond:
            self._pending.metrics.append((ts, rows))
            self._cond.notify()

    def heartbeat(self) -> None:
        """Record that the run is alive, with the next commit."""
        with self._cond:
            self._pending.heartbeat = True
            self._cond.notify()

    def prune(self, before: float) -> None:
        """Forget the tasks whose result was recorded before `before` (UNIX time)."""
        with self._cond:
            self._pending.prune_before = before
            self._cond.notify()

    def flush(self) -> asyncio.Future[None]:
        """Resolves once everything handed over before it is committed."""
        done: asyncio.Future[None] = self.loop.create_future()
        with self._cond:
            self._pending.flushes.append(done)
            self._cond.notify()
        return done

    def close(self) -> None:
        """Commit what is waiting, then stop the thread (blocks until it has)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    # -- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                while self._pending.empty() and not self._closing:
                    self._cond.wait()
                if self._pending.empty():
                    return
                work, self._pending = self._pending, _Pending()
            try:
                answers, recorded = self._write(work)
            except Exception as exc:
                failures += 1
                self.error = exc
                self._failed(work, exc, failures)
                continue
            failures = 0
            self.error = None
            self.commits += 1
            self.loop.call_soon_threadsafe(self._deliver, work, answers, recorded)
            if work.prune_before is not None:
                self._prune(work.prune_before)

    def _write(self, work: _Pending) -> tuple[list[list[Accepted]], list[tuple[TaskResult, int]]]:
        intake = self.intake
        store = intake.store
        with store.transaction():
            # Every request waiting is one statement: per-request statements would cost
            # more than the rows when many requests of one task each come at once.
            answers: list[list[Accepted]] = []
            if work.accepts:
                rows = [row for batch in work.accepts for row in batch.rows]
                first = min(batch.accepted_at for batch in work.accepts)
                every = intake.accept(rows, first, self.run_id)
                start = 0
                for batch in work.accepts:
                    answers.append(every[start : start + len(batch.rows)])
                    start += len(batch.rows)
            recorded = (
                intake.record(self.run_id, work.results, self.next_done, self.clock())
                if work.results
                else []
            )
            for ts, snapshot in work.metrics:
                store.record_metrics(intake.swarm_id, self.run_id, ts, snapshot)
            if work.heartbeat:
                store.heartbeat(self.run_id)
            for event in work.events:
                store.record_event(
                    intake.swarm_id,
                    self.run_id,
                    event.ts,
                    event.kind,
                    event.subject,
                    dict(event.detail),
                )
        self.next_done += len(recorded)
        return answers, recorded

    def _prune(self, before: float) -> None:
        """After the commit, in chunks of their own: requests wait for one chunk at most."""
        try:
            gone = self.intake.prune(before)
        except Exception as exc:  # tried again at the next pruning
            log.warning("intake: old tasks not pruned (%s)", exc)
            return
        if gone:
            log.info("intake: forgot %d tasks recorded before %.0f", gone, before)

    def _failed(self, work: _Pending, exc: BaseException, failures: int) -> None:
        """Accepts fail (their requests get the error); results, events and flushes wait
        for the next attempt, first in line, after a pause that grows with each failure."""
        log.warning("intake: write failed (%s); results kept and retried", exc)
        batches = work.accepts

        def fail_accepts() -> None:
            for batch in batches:
                if not batch.done.done():
                    batch.done.set_exception(exc)

        self.loop.call_soon_threadsafe(fail_accepts)
        with self._cond:
            later = self._pending
            self._pending = _Pending(
                accepts=later.accepts,
                results=work.results + later.results,
                events=work.events + later.events,
                flushes=work.flushes + later.flushes,
                prune_before=later.prune_before,
                metrics=work.metrics + later.metrics,
                heartbeat=work.heartbeat or later.heartbeat,
            )
            self._cond.wait(min(0.05 * 2**failures, _RETRY_MAX))

    def _deliver(
        self,
        work: _Pending,
        answers: list[list[Accepted]],
        recorded: list[tuple[TaskResult, int]],
    ) -> None:
        for batch, accepted in zip(work.accepts, answers, strict=True):
            if not batch.done.done():
                batch.done.set_result(accepted)
        if recorded:
            self.on_recorded(recorded)
        for done in work.flushes:
            if not done.done():
                done.set_result(None)

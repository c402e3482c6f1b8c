"""The `process` backend: each agent is a worker process, for CPU-bound handlers.

Tasks travel in batches: `run` sends each agent one frame per call holding the kinds and
payloads of its new tasks (never the `Task` objects, which stay in the parent). Both sides
number an agent's tasks 0, 1, 2, ... in send order, and a frame of results names its tasks
by those numbers, so the parent always knows exactly which tasks a worker had been sent and
not yet reported. When a worker dies, those are handed back, in send order, through
`CompletionSink.agent_lost`.

A worker with concurrency 1 runs its tasks one at a time, in the order received, and its
results keep that order: a frame names only its first task. A worker with concurrency `c`
runs up to `c` at once and reports each as it finishes, in any order.

A frame is a 16-byte header (opcode, task count, body length) and a pickled body, written
with one `writev` on a socket pair. The parent never blocks on a worker: it reads and
writes non-blocking from the event loop's own selector (`add_reader`/`add_writer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, ClassVar, cast

from swarmperf.core.errors import AgentCrashed, BackendError, ConfigError
from swarmperf.core.handlers import AgentContext, Handler, HandlerRegistry
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.backend import CompletionSink, Done, MeasuredTransfer, batches

_now = time.perf_counter  # CLOCK_MONOTONIC: worker timestamps are on the parent's clock

_HEADER = struct.Struct("<IIQ")  # opcode, task count, body length in bytes
_PICKLE = pickle.HIGHEST_PROTOCOL
_READ_SIZE = 1 << 18

# Parent to worker.
_BATCH, _PING, _STOP = 1, 2, 3
# Worker to parent.
_READY, _RESULTS, _PONG = 11, 12, 13

START_METHODS = ("forkserver", "spawn")
# A local socket round trip, used until the first agent's readiness ping measures one.
_DEFAULT_TRANSFER_COST = 100e-6
_PINGS = 3

_HANDLER_FIX = (
    "Worker processes import every handler by name, so a handler for the process backend "
    "must be a function defined with `def` at the top level of an importable module (not a "
    "lambda, closure, functools.partial or bound method). Move it to module level."
)


# -- framing (both sides) ---------------------------------------------------------------


class _FrameReader:
    """Cuts a byte stream into (opcode, count, body) frames; keeps a partial frame."""

    __slots__ = ("_chunks", "_have", "_need")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 0

    def feed(self, data: bytes) -> list[tuple[int, int, memoryview]]:
        if self._chunks:
            # Join only once the frame is complete, so a large frame costs linear time.
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks = []
        frames: list[tuple[int, int, memoryview]] = []
        view = memoryview(data)
        end = len(data)
        off = 0
        size = _HEADER.size
        need = size
        while end - off >= size:
            op, count, length = _HEADER.unpack_from(data, off)
            stop = off + size + length
            if stop > end:
                need = size + length
                break
            frames.append((op, count, view[off + size : stop]))
            off = stop
        if off < end:
            self._chunks = [data[off:]]
            self._have = end - off
            self._need = need
        return frames


def _write_all(fd: int, header: bytes, body: bytes) -> None:
    """Blocking write of one frame (worker side)."""
    n = os.writev(fd, (header, body))
    if n < len(header) + len(body):
        rest = memoryview(header + body)[n:]
        while rest:
            rest = rest[os.write(fd, rest) :]


def _import_ref(ref: str) -> Any:
    module, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# -- the worker process ---------------------------------------------------------------


def _worker_main(
    conn: Connection,
    spec: AgentSpec,
    epoch: float,
    refs: dict[str, str],
    flush: float,
    concurrency: int,
) -> None:
    """Entry point of a worker process: load the handlers, report ready, serve batches."""
    # Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = conn.fileno()
    try:
        handlers: dict[str, Handler] = {name: _import_ref(ref) for name, ref in refs.items()}
        registry = HandlerRegistry(handlers)
    except Exception as exc:  # reported to the parent, which fails add_agent with it
        body = pickle.dumps((os.getpid(), _error(exc)), _PICKLE)
        _write_all(fd, _HEADER.pack(_READY, 0, len(body)), body)
        return
    # perf_counter is CLOCK_MONOTONIC here, the same in every process: fault windows
    # count from the parent's start.
    context = AgentContext.for_agent(spec, epoch)
    worker: _Worker = (
        _SerialWorker(fd, registry, context, flush)
        if concurrency == 1
        else _ConcurrentWorker(fd, registry, context, flush, concurrency)
    )
    worker.send(_READY, 0, pickle.dumps((os.getpid(), None), _PICKLE))
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        worker.serve()  # those two mean the parent is gone: nobody is left to report to


class _Worker:
    """What both kinds of worker share: the handlers, the socket and the result frames.

    Both number the tasks they receive 0, 1, 2, ... in arrival order, as the parent numbers
    them in send order, so a result names its task by that number alone.
    """

    def __init__(
        self, fd: int, registry: HandlerRegistry, context: AgentContext, flush: float
    ) -> None:
        self._fd = fd
        self._registry = registry
        self._table = {name: registry.resolve(name) for name in registry}
        self._context = context
        self._flush_interval = flush
        self._reader = _FrameReader()
        self._received = 0  # tasks received so far: the next task's number
        self._lock = threading.Lock()  # one frame at a time on the socket

    def serve(self) -> None:
        raise NotImplementedError

    def send(self, op: int, count: int, body: bytes) -> None:
        with self._lock:
            _write_all(self._fd, _HEADER.pack(op, count, len(body)), body)

    def _write_results(
        self,
        seqs: int | tuple[int, ...],
        starts: tuple[float, ...],
        finishes: tuple[float, ...],
        errors: tuple[str | None, ...],
        values: tuple[Any, ...],
    ) -> None:
        """One results frame; `seqs` is the first task's number when they are consecutive."""
        n = len(starts)
        sent_at = _now()
        try:
            body = pickle.dumps(
                (
                    sent_at,
                    seqs,
                    starts,
                    finishes,
                    None if errors.count(None) == n else errors,
                    values,
                ),
                _PICKLE,
            )
        except Exception:
            body = _dumps_each(sent_at, seqs, starts, finishes, errors, values)
        _write_all(self._fd, _HEADER.pack(_RESULTS, n, len(body)), body)


class _SerialWorker(_Worker):
    """Runs one task at a time, in order; a helper thread flushes results of long batches early.

    Results leave in the order the tasks arrived, so a frame names only its first task.
    """

    def __init__(
        self, fd: int, registry: HandlerRegistry, context: AgentContext, flush: float
    ) -> None:
        super().__init__(fd, registry, context, flush)
        # (started, finished, error, value) of tasks run but not yet sent. Only the main
        # thread appends; senders take a prefix under `_lock`. Under the GIL `append`,
        # slicing and `del` are atomic, so the hot loop needs no lock.
        self._results: list[tuple[float, float, str | None, Any]] = []
        self._reported = 0  # the number of the first task in `_results`
        self._busy = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def serve(self) -> None:
        threading.Thread(target=self._flush_while_busy, daemon=True).start()
        try:
            self._serve()
        finally:
            if self._loop is not None:
                self._loop.close()

    def _serve(self) -> None:
        reader = self._reader
        frames: deque[tuple[int, int, memoryview]] = deque()
        fd = self._fd
        while True:
            while not frames:
                data = os.read(fd, _READ_SIZE)
                if not data:
                    return
                frames.extend(reader.feed(data))
            op, count, body = frames.popleft()
            if op == _BATCH:
                self._run_batch(count, body)
            elif op == _PING:
                self.send(_PONG, 0, b"")
            elif op == _STOP:
                return

    def _run_batch(self, count: int, body: memoryview) -> None:
        self._received += count
        append = self._results.append
        try:
            kinds, payloads = pickle.loads(body)
        except Exception as exc:  # e.g. a payload class the worker cannot import
            now = _now()
            error = f"{_error(exc)} (while unpickling a batch of {count} tasks)"
            self._results.extend([(now, now, error, None)] * count)
            self._flush()
            return
        table = self._table
        context = self._context
        self._busy.set()
        for kind, payload in zip(kinds, payloads, strict=True):
            started = _now()
            try:
                entry = table.get(kind)
                handler, is_async = entry if entry is not None else self._registry.resolve(kind)
                value = handler(payload, context)
                if is_async:
                    value = self._await(value)
            except Exception as exc:  # a failing handler fails its task, not the worker
                append((started, _now(), _error(exc), None))
                continue
            append((started, _now(), None, value))
        self._busy.clear()
        self._flush()

    def _await(self, awaitable: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(awaitable)

    def _flush_while_busy(self) -> None:
        # Without this, the results of quick tasks would wait for a slow task after them.
        interval = self._flush_interval
        try:
            while True:
                self._busy.wait()
                time.sleep(interval)
                if self._results:
                    self._flush()
        except OSError:
            return  # the parent is gone; the main thread finds out on its next write

    def _flush(self) -> None:
        with self._lock:
            results = self._results
            n = len(results)
            if not n:
                return
            taken = results[:n]
            del results[:n]
            first = self._reported
            self._reported = first + n
            starts, finishes, errors, values = zip(*taken, strict=True)
            self._write_results(first, starts, finishes, errors, values)


# (number, started, finished, error, value) of one task a concurrent worker has run.
_Finished = tuple[int, float, float, str | None, Any]


class _ConcurrentWorker(_Worker):
    """Runs up to `concurrency` tasks at once, starting them in arrival order.

    Async handlers run as tasks on this process's event loop; sync handlers run on a pool of
    `concurrency` threads, started on first use. Threads help handlers that release the GIL
    (blocking I/O, sleeps, most C extensions), not CPU-bound Python code.

    A finished result leaves at once if the worker has a free slot (the parent's answer is
    what fills it); while every slot is busy and tasks wait for one, results are gathered
    for up to `flush_interval`, so that a stream of quick tasks costs few frames.
    """

    def __init__(
        self,
        fd: int,
        registry: HandlerRegistry,
        context: AgentContext,
        flush: float,
        concurrency: int,
    ) -> None:
        super().__init__(fd, registry, context, flush)
        self._limit = concurrency
        self._waiting: deque[tuple[int, str, Any]] = deque()  # received, no free slot yet
        self._running = 0
        self._finished: list[_Finished] = []  # run, not yet sent
        self._flush_handle: asyncio.Handle | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()  # the async handlers running
        self._jobs: queue.SimpleQueue[tuple[int, Handler, Any]] | None = None
        # Filled by the pool's threads; `_woken` spares a loop wake-up per result.
        self._from_threads: deque[_Finished] = deque()
        self._woken = False
        # Made by `serve`, before any callback that uses them can run.
        self._loop: asyncio.AbstractEventLoop
        self._end: asyncio.Future[None]

    def serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._on_fault)
        self._end = loop.create_future()
        loop.add_reader(self._fd, self._on_readable)
        try:
            loop.run_until_complete(self._end)
        finally:
            loop.remove_reader(self._fd)
            running = [task for task in self._tasks if not task.done()]
            for task in running:
                task.cancel()
            if running:  # or closing the loop would warn about each of them
                loop.run_until_complete(asyncio.gather(*running, return_exceptions=True))
            loop.close()

    def _on_fault(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # A fault in the worker itself (handlers' errors fail their tasks instead) ends it,
        # as it would end a serial worker, so that the parent hands its tasks on rather
        # than wait for results that will never come.
        error = context.get("exception")
        if not isinstance(error, BaseException):
            error = RuntimeError(context.get("message", "event loop error"))
        self._finish(error)

    def _finish(self, error: BaseException | None = None) -> None:
        """Stop serving: the parent said stop, went away, or a handler ended the process."""
        if self._end.done():
            return
        if error is None:
            self._end.set_result(None)
        else:
            self._end.set_exception(error)

    # -- frames in ------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, _READ_SIZE)
        except OSError as exc:
            self._finish(exc)
            return
        if not data:
            self._finish()
            return
        for op, count, body in self._reader.feed(data):
            if op == _BATCH:
                self._receive(count, body)
            elif op == _PING:
                self._write(_PONG, 0, b"")
            elif op == _STOP:
                # Nothing follows a stop; the worker ends once its tasks have run.
                self._stopping = True
                self._loop.remove_reader(self._fd)
                self._end_if_idle()
                return

    def _receive(self, count: int, body: memoryview) -> None:
        first = self._received
        self._received += count
        try:
            kinds, payloads = pickle.loads(body)
        except Exception as exc:  # e.g. a payload class the worker cannot import
            now = _now()
            error = f"{_error(exc)} (while unpickling a batch of {count} tasks)"
            self._finished.extend(
                (seq, now, now, error, None) for seq in range(first, first + count)
            )
            self._flush_soon()
            return
        self._waiting.extend(zip(range(first, first + count), kinds, payloads, strict=True))
        self._start_waiting()

    def _start_waiting(self) -> None:
        table = self._table
        while self._running < self._limit and self._waiting:
            seq, kind, payload = self._waiting.popleft()
            entry = table.get(kind)
            try:
                handler, is_async = entry if entry is not None else self._registry.resolve(kind)
            except Exception as exc:  # an unknown kind fails its task without taking a slot
                now = _now()
                self._finished.append((seq, now, now, _error(exc), None))
                self._flush_soon()
                continue
            self._running += 1
            if is_async:
                task = self._loop.create_task(self._run_async(seq, handler, payload))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                self._run_in_thread(seq, handler, payload)

    # -- running --------------------------------------------------------------------------

    async def _run_async(self, seq: int, handler: Handler, payload: Any) -> None:
        started = _now()
        try:
            value = await handler(payload, self._context)
        except Exception as exc:  # a failing handler fails its task, not the worker
            self._task_done((seq, started, _now(), _error(exc), None))
            return
        self._task_done((seq, started, _now(), None, value))

    def _run_in_thread(self, seq: int, handler: Handler, payload: Any) -> None:
        jobs = self._jobs
        if jobs is None:
            jobs = self._jobs = queue.SimpleQueue()
            for i in range(self._limit):
                # Daemonic: a handler still blocked when the worker ends must not keep it up.
                name = f"swarmperf-{self._context.id}-{i}"
                threading.Thread(
                    target=self._thread_main, args=(jobs,), name=name, daemon=True
                ).start()
        jobs.put((seq, handler, payload))

    def _thread_main(self, jobs: queue.SimpleQueue[tuple[int, Handler, Any]]) -> None:
        context = self._context
        loop = self._loop
        results = self._from_threads
        while True:
            seq, handler, payload = jobs.get()
            started = _now()
            try:
                value = handler(payload, context)
            except Exception as exc:  # a failing handler fails its task, not the worker
                results.append((seq, started, _now(), _error(exc), None))
            except BaseException as exc:  # SystemExit and the like end the worker, as serially
                with contextlib.suppress(RuntimeError):  # the loop is closed: it ended already
                    loop.call_soon_threadsafe(self._finish, exc)
                return
            else:
                results.append((seq, started, _now(), None, value))
            if not self._woken:
                self._woken = True
                try:
                    loop.call_soon_threadsafe(self._collect)
                except RuntimeError:  # the loop is closed: the worker is ending
                    return

    def _collect(self) -> None:
        # Cleared before draining: a result appended after the drain wakes the loop again.
        self._woken = False
        results = self._from_threads
        while results:
            self._task_done(results.popleft())

    def _task_done(self, result: _Finished) -> None:
        self._running -= 1
        self._finished.append(result)
        self._start_waiting()
        if self._running < self._limit or self._stopping:
            self._flush_soon()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_later(self._flush_interval, self._flush)
        self._end_if_idle()

    # -- frames out -----------------------------------------------------------------------

    def _flush_soon(self) -> None:
        # On the next pass of the loop, so that tasks finishing together share one frame.
        handle = self._flush_handle
        if handle is not None:
            if not isinstance(handle, asyncio.TimerHandle):
                return
            handle.cancel()
        self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        results = self._finished
        if not results:
            return
        self._finished = []
        seqs, starts, finishes, errors, values = zip(*results, strict=True)
        try:
            with self._lock:
                self._write_results(seqs, starts, finishes, errors, values)
        except OSError as exc:
            self._finish(exc)

    def _write(self, op: int, count: int, body: bytes) -> None:
        try:
            self.send(op, count, body)
        except OSError as exc:
            self._finish(exc)

    def _end_if_idle(self) -> None:
        if self._stopping and not self._running and not self._waiting:
            self._flush()
            self._finish()


def _dumps_each(
    sent_at: float,
    seqs: int | tuple[int, ...],
    starts: tuple[float, ...],
    finishes: tuple[float, ...],
    errors: tuple[str | None, ...],
    values: tuple[Any, ...],
) -> bytes:
    """Pickle results, turning each value that cannot be pickled into a failed task."""
    error_list = list(errors)
    value_list = list(values)
    for i, value in enumerate(value_list):
        try:
            pickle.dumps(value, _PICKLE)
        except Exception as exc:
            error_list[i] = (
                f"{_error(exc)} (a handler's return value must be picklable to leave its "
                "worker process)"
            )
            value_list[i] = None
    return pickle.dumps((sent_at, seqs, starts, finishes, error_list, value_list), _PICKLE)


# -- the parent side ------------------------------------------------------------------


class _Unreported:
    """The tasks sent to one worker and not yet reported, by number (0, 1, ... as sent).

    A list from number `_base` on, so that results in send order cost one slice. A task
    reported out of order leaves None in its place until every task before it is reported,
    so a long task holds on to one slot (8 bytes) for each task sent after it meanwhile.
    """

    __slots__ = ("_base", "_low", "_tasks")

    def __init__(self) -> None:
        self._tasks: list[Task | None] = []
        self._base = 0  # the number of `_tasks[0]`
        self._low = 0  # every task numbered below this has been reported

    def __bool__(self) -> bool:
        return self._low < self._base + len(self._tasks)

    def add(self, tasks: list[Task]) -> int:
        """Number `tasks` on from the last sent; return the first one's number."""
        first = self._base + len(self._tasks)
        self._tasks += tasks
        return first

    def take_run(self, first: int, count: int) -> list[Task]:
        """Remove and return the `count` tasks numbered from `first` on."""
        if first != self._low:
            return self.take(range(first, first + count))
        start = first - self._base
        run = self._tasks[start : start + count]
        if len(run) != count:
            raise BackendError(f"A worker reported tasks {first}+{count} it was not sent.")
        self._low = first + count
        self._advance()
        # Only tasks below `_low` or reported out of order are None, and these are neither.
        return cast("list[Task]", run)

    def take(self, seqs: Iterable[int]) -> list[Task]:
        """Remove and return the tasks with these numbers, in this order."""
        tasks = self._tasks
        low = self._low - self._base
        taken: list[Task] = []
        for seq in seqs:
            i = seq - self._base
            task = tasks[i] if low <= i < len(tasks) else None
            if task is None:
                raise BackendError(f"A worker reported task {seq}, which was not outstanding.")
            tasks[i] = None
            taken.append(task)
        self._advance()
        return taken

    def head(self) -> tuple[int, Task] | None:
        """The oldest task not yet reported, with its number; None when there is none."""
        i = self._low - self._base
        if i >= len(self._tasks):
            return None
        task = self._tasks[i]
        return None if task is None else (self._low, task)

    def has(self, seq: int) -> bool:
        i = seq - self._base
        return self._low <= seq and i < len(self._tasks) and self._tasks[i] is not None

    def pending(self) -> list[Task]:
        """The tasks not yet reported, in send order."""
        return [task for task in self._tasks[self._low - self._base :] if task is not None]

    def clear(self) -> None:
        self._base = self._low = self._base + len(self._tasks)
        self._tasks = []

    def _advance(self) -> None:
        tasks = self._tasks
        base = self._base
        low = self._low - base
        end = len(tasks)
        while low < end and tasks[low] is None:
            low += 1
        self._low = low + base
        if 2 * low >= end:  # at least half is reported: drop it, amortised O(1) a task
            del tasks[:low]
            self._base = base + low


class _Agent:
    """The parent's record of one worker process."""

    __slots__ = (
        "batch_sent",
        "closing",
        "conn",
        "exited",
        "failure",
        "fd",
        "head",
        "id",
        "in_order",
        "last_finished",
        "out",
        "pid",
        "process",
        "reader",
        "ready",
        "rejected",
        "sentinel",
        "timed_out",
        "unreported",
        "waiter",
    )

    def __init__(
        self, agent_id: str, process: BaseProcess, conn: Connection, in_order: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        self.id = agent_id
        self.process = process
        self.conn = conn
        self.fd = conn.fileno()
        self.pid = 0
        self.sentinel = -1
        self.reader = _FrameReader()
        self.unreported = _Unreported()
        # A worker with concurrency 1 reports in send order; others as tasks finish.
        self.in_order = in_order
        # In-order workers only: when each batch whose first task is unreported was sent,
        # by that task's number.
        self.batch_sent: dict[int, float] = {}
        self.last_finished = 0.0
        self.out = bytearray()  # frames the socket would not take yet
        self.rejected: list[Done] = []  # tasks failed in the parent, reported on next tick
        self.closing = False
        self.failure: str | None = None  # why the worker could not start, if it said so
        self.ready: asyncio.Future[None] = loop.create_future()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.waiter: asyncio.Future[float | None] | None = None
        # For timeouts: the oldest unreported task's number and since when it has been the
        # oldest (it is running by then, at the latest); the one killed for running long.
        self.head: tuple[int, float] = (-1, 0.0)
        self.timed_out: tuple[int, Task, float, float] | None = None

    def in_flight(self) -> list[Task]:
        """Every task given to this agent and not yet reported, in the order given."""
        return [done[0] for done in self.rejected] + self.unreported.pending()


class ProcessBackend(MeasuredTransfer):
    """Agents as worker processes: one OS process per agent, for CPU-bound handlers.

    A worker runs up to its agent's `concurrency` tasks at once, starting them in the order
    received; `prefetch` more wait in the worker, which hides the round trip. With
    concurrency 1 they run one after the other on the worker's main thread. Above 1, async
    handlers run concurrently on the worker's event loop and sync handlers on a pool of
    `concurrency` threads in the worker. Threads only overlap handlers that release the GIL
    (blocking I/O, `time.sleep`, many C extensions): CPU-bound Python handlers gain nothing
    from concurrency, so for CPU-bound parallelism add agents (processes) instead.

    Handlers must be importable module-level functions (checked at `start`).
    `flush_interval` bounds how long a finished result may wait in a worker while it is
    busy with other tasks; `start_timeout` bounds a worker's start-up and `stop_timeout` how
    long `stop` waits for workers to exit before killing them.

    `timeouts` bounds a task's run time by kind (`""`: any other kind). A task that runs
    longer fails with a TimeoutError and its worker is killed (whatever the handler is
    doing) and, under the swarm's restart policy, started again; the worker's other tasks
    go back to the queue. A task's time is counted from when it became the worker's oldest
    unfinished task, checked a few times per timeout: never early, late by a fraction.

    Workers are daemonic, so they end with the parent even without `stop`; the price is
    that a handler cannot start processes of its own with `multiprocessing`.
    """

    name: ClassVar[str] = "process"

    def __init__(
        self,
        *,
        start_method: str = "forkserver",
        flush_interval: float = 0.002,
        start_timeout: float = 60.0,
        stop_timeout: float = 1.0,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        if start_method not in START_METHODS:
            raise ConfigError(
                "process.start_method",
                start_method,
                "Use forkserver or spawn (fork is unsafe under a running event loop).",
            )
        for field, value in (
            ("flush_interval", flush_interval),
            ("start_timeout", start_timeout),
            ("stop_timeout", stop_timeout),
        ):
            if not value > 0:
                raise ConfigError(f"process.{field}", value, "Use a number of seconds > 0.")
        self.start_method = start_method
        self.flush_interval = flush_interval
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        # Seconds a task spends moving between processes: pipe latency plus (un)pickling,
        # an EWMA over readiness pings and batches whose transfer was not hidden by work.
        self.transfer_cost = _DEFAULT_TRANSFER_COST
        self._agents: dict[str, _Agent] = {}
        self._sink: CompletionSink | None = None
        self._refs: dict[str, str] = {}
        self._epoch = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.timeouts = dict(timeouts) if timeouts else None
        self._watch_handle: asyncio.TimerHandle | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, sink: CompletionSink, handlers: HandlerRegistry) -> None:
        self._refs = {name: handler_ref(name, fn) for name, fn in handlers.items()}
        self._sink = sink
        self._loop = asyncio.get_running_loop()
        self._epoch = time.perf_counter()
        if self.timeouts:
            self._watch_handle = self._loop.call_later(self._watch_every(), self._watch)

    async def stop(self) -> None:
        if self._watch_handle is not None:
            self._watch_handle.cancel()
            self._watch_handle = None
        agents = list(self._agents.values())
        self._agents.clear()
        for agent in agents:
            agent.closing = True
            self._detach(agent)
        # Agents still starting (no pid yet) are finished off by their add_agent call.
        started = [agent for agent in agents if agent.pid]
        if started:
            await asyncio.to_thread(self._terminate, [agent.process for agent in started])
        for agent in agents:
            agent.conn.close()
            if agent.pid:
                agent.process.close()
            self._settle(agent, AgentCrashed(agent.id, "the backend was stopped"))

    def _terminate(self, processes: list[BaseProcess]) -> None:
        """SIGTERM, wait, then SIGKILL what is left; join reaps every one."""
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + self.stop_timeout
        for process in processes:
            process.join(max(deadline - time.monotonic(), 0.0))
        for process in processes:
            if process.exitcode is None:
                process.kill()
                process.join()

    # -- agents -------------------------------------------------------------------------

    def pid(self, agent_id: str) -> int:
        """The worker process id of `agent_id` (0 while it starts)."""
        return self._agent(agent_id).pid

    async def add_agent(self, spec: AgentSpec) -> None:
        if self._sink is None or self._loop is None:
            raise BackendError("Call ProcessBackend.start() before adding agents.")
        if spec.id in self._agents:
            raise ConfigError("agent.id", spec.id, "Agent ids must be unique in a swarm.")
        ctx = (
            multiprocessing.get_context("spawn")
            if self.start_method == "spawn"
            else multiprocessing.get_context("forkserver")
        )
        conn, child_conn = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=_worker_main,
            args=(
                child_conn,
                spec,
                self._epoch,
                self._refs,
                self.flush_interval,
                spec.concurrency,
            ),
            name=f"swarmperf-agent-{spec.id}",
            # Daemonic, so that a parent that exits without stop() still takes them along.
            daemon=True,
        )
        agent = _Agent(spec.id, process, conn, in_order=spec.concurrency == 1)
        os.set_blocking(agent.fd, False)
        # Registered before the worker is up: the coordinator may bind tasks to it now.
        self._agents[spec.id] = agent
        try:
            await asyncio.to_thread(process.start)
        except BaseException as exc:
            self._detach(agent)
            self._forget(agent)
            conn.close()
            self._sink.agent_lost(agent.id, agent.in_flight(), f"could not start: {exc}")
            raise BackendError(f"Could not start a worker process for {spec.id!r}.") from exc
        finally:
            child_conn.close()  # or the parent's copy would hide the worker's exit (no EOF)
        agent.pid = process.pid or 0
        if self._agents.get(spec.id) is not agent:  # stop() ran meanwhile
            await asyncio.to_thread(self._terminate, [process])
            process.close()
            raise BackendError(f"The backend was stopped while {spec.id!r} was starting.")
        agent.sentinel = process.sentinel
        self._loop.add_reader(agent.fd, self._on_readable, agent)
        self._loop.add_reader(agent.sentinel, self._on_exit, agent)
        try:
            async with asyncio.timeout(self.start_timeout):
                await asyncio.shield(agent.ready)
        except BaseException as exc:
            if not agent.ready.done():  # timed out or cancelled: the worker must go
                process.kill()
            await asyncio.shield(agent.exited)  # its exit handler reports the agent lost
            if isinstance(exc, TimeoutError):
                raise AgentCrashed(
                    spec.id, f"worker process {agent.pid} was not ready in {self.start_timeout}s"
                ) from None
            raise
        await self._measure(agent)

    async def remove_agent(self, agent_id: str) -> None:
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        if not agent.closing:
            agent.closing = True
            # Queued behind everything it was sent: it finishes those, reports, then exits.
            self._send(agent, _STOP, 0, b"")
        await asyncio.shield(agent.exited)

    async def _measure(self, agent: _Agent) -> None:
        """Ping the new worker to measure the transfer cost, if no tasks would skew it."""
        assert self._loop is not None
        best: float | None = None
        for _ in range(_PINGS):
            if agent.unreported or agent.closing or agent.exited.done():
                break
            agent.waiter = self._loop.create_future()
            sent_at = _now()
            self._send(agent, _PING, 0, b"")
            received_at = await agent.waiter
            if received_at is None:
                break
            rtt = received_at - sent_at
            best = rtt if best is None else min(best, rtt)
        if best is not None:
            self._observe_transfer(best)

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No live agent is called {agent_id!r}.")
        return agent

    def running_tasks(self) -> dict[str, list[Task]]:
        """Every task sent to each worker and not yet reported, in send order."""
        return {
            agent_id: in_flight
            for agent_id, agent in self._agents.items()
            if (in_flight := agent.in_flight())
        }

    # -- timeouts -----------------------------------------------------------------------

    def _watch_every(self) -> float:
        assert self.timeouts
        return min(max(min(self.timeouts.values()) / 10, 0.01), 0.5)

    def _watch(self) -> None:
        """Kill each worker whose oldest unfinished task has run past its timeout."""
        assert self.timeouts is not None
        assert self._loop is not None
        now = _now()
        timeouts = self.timeouts
        for agent in list(self._agents.values()):
            head = agent.unreported.head()
            if head is None or agent.timed_out is not None or not agent.pid:
                continue
            seq, task = head
            if agent.head[0] != seq:
                agent.head = (seq, now)
                continue
            limit = timeouts.get(task.kind, timeouts.get(""))
            since = agent.head[1]
            if limit is None or now - since <= limit:
                continue
            agent.timed_out = (seq, task, since, limit)
            agent.failure = (
                f"worker process {agent.pid} was killed: task {task.id!r} ran past its "
                f"timeout of {limit:g}s"
            )
            with contextlib.suppress(ValueError, OSError):
                agent.process.kill()
        self._watch_handle = self._loop.call_later(self._watch_every(), self._watch)

    def _expire(self, agent: _Agent) -> None:
        """Fail the task its worker was killed for, unless it finished after all."""
        assert agent.timed_out is not None
        seq, task, since, limit = agent.timed_out
        agent.timed_out = None
        if not agent.unreported.has(seq) or self._sink is None:
            return
        agent.unreported.take((seq,))
        error = f"TimeoutError: timed out after {limit:g}s"
        self._sink.tasks_done(agent.id, [(task, since, _now(), error, None)])

    # -- tasks --------------------------------------------------------------------------

    def run(self, starts: Sequence[tuple[str, Task]]) -> None:
        checked = batches(starts, self._agents)
        now = _now()
        for agent, tasks in checked:
            self._send_batch(agent, tasks, now)

    def _send_batch(self, agent: _Agent, tasks: list[Task], now: float) -> None:
        try:
            body = pickle.dumps(([t.kind for t in tasks], [t.payload for t in tasks]), _PICKLE)
        except Exception:
            tasks = self._reject_unpicklable(agent, tasks, now)
            if not tasks:
                return
            body = pickle.dumps(([t.kind for t in tasks], [t.payload for t in tasks]), _PICKLE)
        first = agent.unreported.add(tasks)
        if agent.in_order:
            agent.batch_sent[first] = now
        self._send(agent, _BATCH, len(tasks), body)

    def _reject_unpicklable(self, agent: _Agent, tasks: list[Task], now: float) -> list[Task]:
        """Fail the tasks whose payload cannot be pickled; return the others."""
        assert self._loop is not None
        keep: list[Task] = []
        for task in tasks:
            try:
                pickle.dumps((task.kind, task.payload), _PICKLE)
            except Exception as exc:
                error = f"{_error(exc)} (a task's payload must be picklable to reach a worker)"
                if not agent.rejected:
                    # Not now: run() is often called from inside the sink.
                    self._loop.call_soon(self._report_rejected, agent)
                agent.rejected.append((task, now, now, error, None))
            else:
                keep.append(task)
        return keep

    def _report_rejected(self, agent: _Agent) -> None:
        done, agent.rejected = agent.rejected, []
        if done and self._sink is not None:
            self._sink.tasks_done(agent.id, done)

    def _send(self, agent: _Agent, op: int, count: int, body: bytes) -> None:
        header = _HEADER.pack(op, count, len(body))
        out = agent.out
        if out:  # earlier frames are still waiting: keep the order
            out += header
            out += body
            return
        try:
            n = os.writev(agent.fd, (header, body))
        except BlockingIOError:
            n = 0
        except OSError:
            return  # the worker is gone; its exit handler reports what it was sent
        if n < len(header) + len(body):
            out += (header + body)[n:]
            assert self._loop is not None
            self._loop.add_writer(agent.fd, self._on_writable, agent)

    def _on_writable(self, agent: _Agent) -> None:
        try:
            n = os.write(agent.fd, agent.out)
        except BlockingIOError:
            return
        except OSError:
            n = len(agent.out)  # the worker is gone; its exit handler takes over
        del agent.out[:n]
        if not agent.out and self._loop is not None:
            self._loop.remove_writer(agent.fd)

    # -- results ------------------------------------------------------------------------

    def _on_readable(self, agent: _Agent) -> None:
        try:
            data = os.read(agent.fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            # The worker closed its end; the sentinel tells how it exited.
            if self._loop is not None:
                self._loop.remove_reader(agent.fd)
            return
        self._handle(agent, agent.reader.feed(data))

    def _handle(self, agent: _Agent, frames: list[tuple[int, int, memoryview]]) -> None:
        done: list[Done] | None = None
        for op, count, body in frames:
            if op == _RESULTS:
                chunk = self._results(agent, count, body)
                if done is None:
                    done = chunk
                else:
                    done += chunk
            elif op == _PONG:
                if agent.waiter is not None and not agent.waiter.done():
                    agent.waiter.set_result(_now())
            elif op == _READY and not agent.ready.done():
                pid, error = pickle.loads(body)
                if error is not None:
                    agent.failure = f"worker process {pid} could not import its handlers: {error}"
                    agent.ready.set_exception(AgentCrashed(agent.id, agent.failure))
                else:
                    agent.ready.set_result(None)
        if done and self._sink is not None:
            self._sink.tasks_done(agent.id, done)

    def _results(self, agent: _Agent, count: int, body: memoryview) -> list[Done]:
        sent_at, seqs, starts, finishes, errors, values = pickle.loads(body)
        if isinstance(seqs, int):  # consecutive tasks, from an in-order worker
            tasks = agent.unreported.take_run(seqs, count)
            # Such a worker never mixes batches in one frame, so a frame that opens a batch
            # holds that batch's first task.
            batch_sent_at = agent.batch_sent.pop(seqs, None)
            if batch_sent_at is not None:
                # Out: from the later of sending and the worker freeing up, to the first
                # start. Back: from the worker's send to here. Work hides the out part
                # when pipelined. Concurrent workers are left to the pings: there a task
                # may wait for a free slot, which would read as transfer time.
                out = starts[0] - max(batch_sent_at, agent.last_finished)
                self._observe_transfer(max(out, 0.0) + (_now() - sent_at))
            agent.last_finished = finishes[-1]
        else:
            tasks = agent.unreported.take(seqs)
        if errors is None:
            errors = repeat(None, count)
        return list(zip(tasks, starts, finishes, errors, values, strict=True))

    # -- exits --------------------------------------------------------------------------

    def _on_exit(self, agent: _Agent) -> None:
        """The worker process ended: report what it finished, then what it had not."""
        # It is gone, so all it wrote is already buffered here: read that first, or
        # finished tasks would be run again.
        while True:
            try:
                data = os.read(agent.fd, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError:
                break
            if not data:
                break
            self._handle(agent, agent.reader.feed(data))
        if agent.timed_out is not None:
            self._expire(agent)
        self._detach(agent)
        self._forget(agent)
        reason = self._exit_reason(agent)
        if agent.failure is not None:
            reason = agent.failure
        agent.conn.close()
        agent.process.close()
        in_flight = agent.in_flight()
        agent.unreported.clear()
        agent.batch_sent.clear()
        agent.rejected = []
        self._settle(agent, AgentCrashed(agent.id, reason))
        if (in_flight or not agent.closing) and self._sink is not None:
            self._sink.agent_lost(agent.id, in_flight, reason)

    def _exit_reason(self, agent: _Agent) -> str:
        process = agent.process
        # The sentinel fires as the process exits; reaping it may take a moment more.
        process.join(1.0)
        code = process.exitcode
        if code is None:
            process.kill()
            process.join()
            return f"worker process {agent.pid} closed its connection and was killed"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"worker process {agent.pid} exited with signal {name}"
        return f"worker process {agent.pid} exited with code {code}"

    def _detach(self, agent: _Agent) -> None:
        loop = self._loop
        if loop is None:
            return
        if not agent.conn.closed:
            loop.remove_reader(agent.fd)
            loop.remove_writer(agent.fd)
        if agent.sentinel >= 0:
            loop.remove_reader(agent.sentinel)
            agent.sentinel = -1

    def _forget(self, agent: _Agent) -> None:
        if self._agents.get(agent.id) is agent:
            del self._agents[agent.id]

    @staticmethod
    def _settle(agent: _Agent, error: BaseException) -> None:
        """Wake everyone waiting on `agent`: it will not answer any more."""
        if not agent.ready.done():
            agent.ready.set_exception(error)
            agent.ready.exception()  # retrieved: add_agent may no longer be waiting
        if agent.waiter is not None and not agent.waiter.done():
            agent.waiter.set_result(None)
        if not agent.exited.done():
            agent.exited.set_result(None)


def handler_ref(name: str, fn: Handler) -> str:
    """`module:qualname` of a handler, or `ConfigError` if a worker could not import it."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    field = f"handlers[{name!r}]"
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise ConfigError(field, fn, _HANDLER_FIX)
    if module == "__main__" and not hasattr(sys.modules.get("__main__"), "__file__"):
        raise ConfigError(
            field,
            fn,
            "Worker processes cannot import handlers defined in an interactive session. "
            "Define it in a module file and import it from there.",
        )
    ref = f"{module}:{qualname}"
    try:
        found = _import_ref(ref)
    except Exception:
        found = None
    if found is not fn and found != fn:
        raise ConfigError(field, ref, _HANDLER_FIX)
    return ref

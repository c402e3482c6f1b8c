"""The worker side of the process backend: the loop that runs inside each worker process.

A worker imports its handlers by name, says it is ready, then serves batches until told to
stop or until the parent goes away. A worker with concurrency 1 runs its tasks one at a
time, in the order received, and its results keep that order: a frame names only its first
task. A worker with concurrency `c` runs up to `c` at once and reports each as it finishes,
in any order.

This module is what a new worker process imports to start: it needs the protocol and the
handlers, never the parent side (`parent.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import queue
import signal
import threading
import time
from collections import deque
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from swarmperf.core.handlers import AgentContext, Handler, HandlerRegistry
from swarmperf.core.model import AgentSpec
from swarmperf.runtime.process.protocol import (
    BATCH,
    BEGIN,
    HEADER,
    MESSAGE,
    PICKLE,
    PING,
    PONG,
    READ_SIZE,
    READY,
    RESULTS,
    STOP,
    FrameReader,
    clock,
    error_text,
    import_ref,
)


def _write_all(fd: int, header: bytes, body: bytes) -> None:
    """Blocking write of one frame (worker side)."""
    n = os.writev(fd, (header, body))
    if n < len(header) + len(body):
        rest = memoryview(header + body)[n:]
        while rest:
            rest = rest[os.write(fd, rest) :]


def worker_main(
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
        handlers: dict[str, Handler] = {name: import_ref(ref) for name, ref in refs.items()}
        registry = HandlerRegistry(handlers)
    except Exception as exc:  # reported to the parent, which fails add_agent with it
        body = pickle.dumps((os.getpid(), error_text(exc)), PICKLE)
        _write_all(fd, HEADER.pack(READY, 0, len(body)), body)
        return
    # perf_counter is CLOCK_MONOTONIC here, the same in every process: fault windows
    # count from the parent's start until a BEGIN frame gives the run's.
    context = AgentContext.for_agent(spec, epoch)
    worker: _Worker = (
        _SerialWorker(fd, registry, context, flush)
        if concurrency == 1
        else _ConcurrentWorker(fd, registry, context, flush, concurrency)
    )
    worker.carry_messages()
    worker.send(READY, 0, pickle.dumps((os.getpid(), None), PICKLE))
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
        self._reader = FrameReader()
        self._received = 0  # tasks received so far: the next task's number
        self._lock = threading.Lock()  # one frame at a time on the socket

    def serve(self) -> None:
        raise NotImplementedError

    def _begin(self, body: memoryview) -> None:
        """Count fault windows from the run's start, sent before any task."""
        self._context = replace(self._context, epoch=pickle.loads(body))

    def send(self, op: int, count: int, body: bytes) -> None:
        with self._lock:
            _write_all(self._fd, HEADER.pack(op, count, len(body)), body)

    def carry_messages(self) -> None:
        """Let handlers send messages (`AgentContext.send`) through this worker's socket."""
        self._context = replace(self._context, outbox=self._post)

    def _post(self, sender: str, receiver: str, kind: str, payload: Any) -> None:
        # At once, from any thread: the message is on the socket before the results of the
        # task that sent it, so the parent knows of it before that task is done.
        data = pickle.dumps(payload, PICKLE)
        self.send(MESSAGE, 1, pickle.dumps((receiver, kind, data), PICKLE))

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
        sent_at = clock()
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
                PICKLE,
            )
        except Exception:
            body = _dumps_each(sent_at, seqs, starts, finishes, errors, values)
        _write_all(self._fd, HEADER.pack(RESULTS, n, len(body)), body)


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
                data = os.read(fd, READ_SIZE)
                if not data:
                    return
                frames.extend(reader.feed(data))
            op, count, body = frames.popleft()
            if op == BATCH:
                self._run_batch(count, body)
            elif op == PING:
                self.send(PONG, 0, b"")
            elif op == BEGIN:
                self._begin(body)
            elif op == STOP:
                return

    def _run_batch(self, count: int, body: memoryview) -> None:
        self._received += count
        append = self._results.append
        try:
            kinds, payloads = pickle.loads(body)
        except Exception as exc:  # e.g. a payload class the worker cannot import
            now = clock()
            error = f"{error_text(exc)} (while unpickling a batch of {count} tasks)"
            self._results.extend([(now, now, error, None)] * count)
            self._flush()
            return
        table = self._table
        context = self._context
        self._busy.set()
        for kind, payload in zip(kinds, payloads, strict=True):
            started = clock()
            try:
                entry = table.get(kind)
                handler, is_async = entry if entry is not None else self._registry.resolve(kind)
                value = handler(payload, context)
                if is_async:
                    value = self._await(value)
            except Exception as exc:  # a failing handler fails its task, not the worker
                append((started, clock(), error_text(exc), None))
                continue
            append((started, clock(), None, value))
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
            data = os.read(self._fd, READ_SIZE)
        except OSError as exc:
            self._finish(exc)
            return
        if not data:
            self._finish()
            return
        for op, count, body in self._reader.feed(data):
            if op == BATCH:
                self._receive(count, body)
            elif op == PING:
                self._write(PONG, 0, b"")
            elif op == BEGIN:
                self._begin(body)
            elif op == STOP:
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
            now = clock()
            error = f"{error_text(exc)} (while unpickling a batch of {count} tasks)"
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
                now = clock()
                self._finished.append((seq, now, now, error_text(exc), None))
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
        started = clock()
        try:
            value = await handler(payload, self._context)
        except Exception as exc:  # a failing handler fails its task, not the worker
            self._task_done((seq, started, clock(), error_text(exc), None))
            return
        self._task_done((seq, started, clock(), None, value))

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
            started = clock()
            try:
                value = handler(payload, context)
            except Exception as exc:  # a failing handler fails its task, not the worker
                results.append((seq, started, clock(), error_text(exc), None))
            except BaseException as exc:  # SystemExit and the like end the worker, as serially
                with contextlib.suppress(RuntimeError):  # the loop is closed: it ended already
                    loop.call_soon_threadsafe(self._finish, exc)
                return
            else:
                results.append((seq, started, clock(), None, value))
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
            pickle.dumps(value, PICKLE)
        except Exception as exc:
            error_list[i] = (
                f"{error_text(exc)} (a handler's return value must be picklable to leave its "
                "worker process)"
            )
            value_list[i] = None
    return pickle.dumps((sent_at, seqs, starts, finishes, error_list, value_list), PICKLE)

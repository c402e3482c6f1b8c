"""The parent side of the process backend: `ProcessBackend`, which runs agents as workers.

It starts and stops worker processes (several starts at once), sends each its batches,
reads their results, kills a worker whose task runs past its timeout, and when a worker
dies hands the tasks it had been sent and not yet reported back, in send order, through
`CompletionSink.agent_lost`. The parent never blocks on a worker: it reads and writes
non-blocking from the event loop's own selector (`add_reader`/`add_writer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice, repeat
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import ClassVar, cast

from swarmperf.core.errors import AgentCrashed, BackendError, ConfigError
from swarmperf.core.handlers import Handler, HandlerRegistry
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.backend import (
    CompletionSink,
    Done,
    MeasuredTransfer,
    Watchdog,
    batches,
    timeout_error,
    timeout_for,
)
from swarmperf.runtime.messaging import Outbox
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
from swarmperf.runtime.process.worker import worker_main

START_METHODS = ("forkserver", "spawn")
# A local socket round trip, used until the first agent's readiness ping measures one.
_DEFAULT_TRANSFER_COST = 100e-6
# Chunks of a backlog written with one `writev` (the kernel takes at most IOV_MAX, 1024).
_WRITE_CHUNKS = 256
_PINGS = 3

_HANDLER_FIX = (
    "Worker processes import every handler by name, so a handler for the process backend "
    "must be a function defined with `def` at the top level of an importable module (not a "
    "lambda, closure, functools.partial or bound method). Move it to module level."
)


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
        self.reader = FrameReader()
        self.unreported = _Unreported()
        # A worker with concurrency 1 reports in send order; others as tasks finish.
        self.in_order = in_order
        # In-order workers only: when each batch whose first task is unreported was sent,
        # by that task's number.
        self.batch_sent: dict[int, float] = {}
        self.last_finished = 0.0
        # Frames the socket would not take yet, in order, as chunks: a bytearray trimmed
        # at the front copies all it holds on its next append, which made a busy relay's
        # backlog cost the parent time quadratic in its length.
        self.out: deque[bytes | memoryview] = deque()
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
        self._watchdog = Watchdog(self.timeouts, self._watch) if self.timeouts else None
        self._outbox: Outbox | None = None

    def attach_outbox(self, outbox: Outbox) -> None:
        """Hand the messages agents' handlers send to `outbox` (the swarm's message bus)."""
        self._outbox = outbox

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, sink: CompletionSink, handlers: HandlerRegistry) -> None:
        self._refs = {name: handler_ref(name, fn) for name, fn in handlers.items()}
        self._sink = sink
        self._loop = asyncio.get_running_loop()
        self._epoch = time.perf_counter()
        if self._watchdog is not None:
            self._watchdog.start(self._loop)

    def begin(self, epoch: float) -> None:
        # Workers start one at a time, a second or so for a few: counted from the backend's
        # start, their start-up would eat the run's first fault windows. The frame goes
        # before any batch, and perf_counter is CLOCK_MONOTONIC, the same in every worker.
        self._epoch = epoch
        body = pickle.dumps(epoch, PICKLE)
        for agent in self._agents.values():
            if not agent.closing:
                self._send(agent, BEGIN, 0, body)

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
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
            target=worker_main,
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
            self._send(agent, STOP, 0, b"")
        await asyncio.shield(agent.exited)

    async def _measure(self, agent: _Agent) -> None:
        """Ping the new worker to measure the transfer cost, if no tasks would skew it."""
        assert self._loop is not None
        best: float | None = None
        for _ in range(_PINGS):
            if agent.unreported or agent.closing or agent.exited.done():
                break
            agent.waiter = self._loop.create_future()
            sent_at = clock()
            self._send(agent, PING, 0, b"")
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

    def _watch(self) -> None:
        """Kill each worker whose oldest unfinished task has run past its timeout."""
        assert self.timeouts is not None
        assert self._loop is not None
        now = clock()
        timeouts = self.timeouts
        for agent in list(self._agents.values()):
            head = agent.unreported.head()
            if head is None or agent.timed_out is not None or not agent.pid:
                continue
            seq, task = head
            if agent.head[0] != seq:
                agent.head = (seq, now)
                continue
            limit = timeout_for(timeouts, task.kind)
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

    def _expire(self, agent: _Agent) -> None:
        """Fail the task its worker was killed for, unless it finished after all."""
        assert agent.timed_out is not None
        seq, task, since, limit = agent.timed_out
        agent.timed_out = None
        if not agent.unreported.has(seq) or self._sink is None:
            return
        agent.unreported.take((seq,))
        error = timeout_error(limit)
        self._sink.tasks_done(agent.id, [(task, since, clock(), error, None)])

    # -- tasks --------------------------------------------------------------------------

    def run(self, starts: Sequence[tuple[str, Task]]) -> None:
        checked = batches(starts, self._agents)
        now = clock()
        for agent, tasks in checked:
            self._send_batch(agent, tasks, now)

    def _send_batch(self, agent: _Agent, tasks: list[Task], now: float) -> None:
        try:
            body = pickle.dumps(([t.kind for t in tasks], [t.payload for t in tasks]), PICKLE)
        except Exception:
            tasks = self._reject_unpicklable(agent, tasks, now)
            if not tasks:
                return
            body = pickle.dumps(([t.kind for t in tasks], [t.payload for t in tasks]), PICKLE)
        first = agent.unreported.add(tasks)
        if agent.in_order:
            agent.batch_sent[first] = now
        self._send(agent, BATCH, len(tasks), body)

    def _reject_unpicklable(self, agent: _Agent, tasks: list[Task], now: float) -> list[Task]:
        """Fail the tasks whose payload cannot be pickled; return the others."""
        assert self._loop is not None
        keep: list[Task] = []
        for task in tasks:
            try:
                pickle.dumps((task.kind, task.payload), PICKLE)
            except Exception as exc:
                error = f"{error_text(exc)} (a task's payload must be picklable to reach a worker)"
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
        header = HEADER.pack(op, count, len(body))
        out = agent.out
        if out:  # earlier frames are still waiting: keep the order
            out.append(header)
            out.append(body)
            return
        try:
            n = os.writev(agent.fd, (header, body))
        except BlockingIOError:
            n = 0
        except OSError:
            return  # the worker is gone; its exit handler reports what it was sent
        if n < len(header) + len(body):
            out.append(header)
            out.append(body)
            _drop_written(out, n)
            assert self._loop is not None
            self._loop.add_writer(agent.fd, self._on_writable, agent)

    def _on_writable(self, agent: _Agent) -> None:
        out = agent.out
        try:
            _drop_written(out, os.writev(agent.fd, list(islice(out, _WRITE_CHUNKS))))
        except BlockingIOError:
            return
        except OSError:
            out.clear()  # the worker is gone; its exit handler takes over
        if not out and self._loop is not None:
            self._loop.remove_writer(agent.fd)

    # -- results ------------------------------------------------------------------------

    def _on_readable(self, agent: _Agent) -> None:
        try:
            data = os.read(agent.fd, READ_SIZE)
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
            if op == RESULTS:
                chunk = self._results(agent, count, body)
                if done is None:
                    done = chunk
                else:
                    done += chunk
            elif op == MESSAGE:
                self._message(agent, body)
            elif op == PONG:
                if agent.waiter is not None and not agent.waiter.done():
                    agent.waiter.set_result(clock())
            elif op == READY and not agent.ready.done():
                pid, error = pickle.loads(body)
                if error is not None:
                    agent.failure = f"worker process {pid} could not import its handlers: {error}"
                    agent.ready.set_exception(AgentCrashed(agent.id, agent.failure))
                else:
                    agent.ready.set_result(None)
        if done and self._sink is not None:
            self._sink.tasks_done(agent.id, done)

    def _message(self, agent: _Agent, body: memoryview) -> None:
        receiver, kind, data = pickle.loads(body)
        if self._outbox is not None:
            self._outbox(agent.id, receiver, kind, pickle.loads(data), len(data))

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
                self._observe_transfer(max(out, 0.0) + (clock() - sent_at))
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
                data = os.read(agent.fd, READ_SIZE)
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
        found = import_ref(ref)
    except Exception:
        found = None
    if found is not fn and found != fn:
        raise ConfigError(field, ref, _HANDLER_FIX)
    return ref


def _drop_written(out: deque[bytes | memoryview], n: int) -> None:
    """Take the `n` bytes written from the front of `out`."""
    while n:
        head = out[0]
        if len(head) > n:
            out[0] = memoryview(head)[n:]
            return
        n -= len(head)
        out.popleft()

"""The in-process sampler: every thread's Python stack at a fixed rate, named by agent and handler.

Why in-process, not py-spy, for a served swarm: a sampler thread reading
`sys._current_frames()` sees the frames' locals, so a sample under a `local` agent's worker
(`LocalBackend._work`, whose locals hold the agent's id and the task) is attributed to that
agent and, when the worker is inside its handler, to the task's kind. py-spy sees function
names only (its `--locals` is for one-off dumps, far too slow to sample with), and a sleeping
coroutine is not on any stack for it either. Measured with `benchmarks/profiler_overhead.py`
on the demo swarm at 100 Hz: see the README's "Profiling". Processes the sampler cannot reach
(process-backend workers, a command) are sampled with py-spy (`profiling.pyspy`).

A sample of a thread that waits (in a selector, on a lock or a queue) is idle: counted, and
left out of the stacks, since a flame graph of waiting says nothing about where time goes.
A thread that runs no agent's work is also idle when it used almost no CPU since its last
sample (read from the kernel, on Linux): a library's thread blocked in C (Ray's, gRPC's) has
a Python frame on top that no list of waiting functions can know. Agents' work is kept
whatever its CPU, so a handler blocked in a call still shows where wall time goes.

Given the swarm's event loop, each sample also takes the await chain of every agent worker
whose handler is suspended in an `await` (an API call, a sleep): those coroutines are on no
thread's stack, yet that is where an I/O-bound swarm's time goes. They are stacks under the
root frame `AWAITING`, so that the flame graph and the split by agent and handler show wall
time in handlers, not only CPU time; a worker waiting for its next task is idle.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from swarmperf.profiling.stacks import AGENT, AWAITING, COORDINATOR, WORKER, Profile, StackKey
from swarmperf.runtime.local import LocalBackend

MIN_RATE = 1.0
MAX_RATE = 1000.0
MAX_DEPTH = 256  # deeper stacks keep their innermost frames
# A thread outside agents' work that used less CPU than this share of the time since its
# last sample was blocked (in C, where its Python frames cannot tell).
IDLE_CPU_SHARE = 0.05
# Per-thread CPU time in nanoseconds, the first field; read with pread on a kept descriptor
# (a few microseconds). Not `time.pthread_getcpuclockid`: on a thread that has just ended it
# is undefined behaviour, where a file of an ended thread fails to read.
_SCHEDSTAT = "/proc/self/task/{}/schedstat"
# The worker coroutine of a local agent: its locals name the agent and the task it runs.
# (None if it were ever compiled: samples would then name no agent, nothing would fail.)
_WORK_CODE: CodeType | None = getattr(LocalBackend._work, "__code__", None)
# (function, file name) of the frames a waiting thread sits in, as the innermost Python frame.
_IDLE_LEAVES = frozenset(
    {
        ("select", "selectors.py"),  # an event loop with nothing to do
        # uvloop's loop is C: a thread whose innermost Python frame is the runner polls
        # (or moves bytes on sockets, which Python code does not see either).
        ("run", "runners.py"),
        ("wait", "threading.py"),  # Condition/Event.wait, so queue.get and Thread.join too
        ("_worker", "thread.py"),  # a thread pool's worker waiting for work
        ("_wait_for_tstate_lock", "threading.py"),
        ("get", "queue.py"),
        ("accept", "socket.py"),
        ("_recv_bytes", "connection.py"),
        ("poll", "connection.py"),
        # A process-backend worker waiting for its next task: in `jobs.get()` (a thread of
        # a concurrent worker) or `os.read` (a serial one), both C, so these are the leaves.
        ("_thread_main", "worker.py"),
        ("_serve", "worker.py"),
    }
)


def is_idle(function: str, file: str) -> bool:
    """Whether a stack whose innermost Python frame is `function` in `file` is waiting."""
    return (function.rpartition(".")[2], os.path.basename(file)) in _IDLE_LEAVES


class Sampler:
    """Samples the stacks of this process's threads (but its own) `rate` times a second,
    from `start()` to `stop()`, on a daemon thread of its own."""

    def __init__(
        self,
        rate: float,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(rate)
        self.rate = rate
        self._loop = loop
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._ended = 0.0
        self._codes: dict[CodeType, int] = {}
        self._idle_codes: dict[CodeType, bool] = {}
        self._names: dict[int, str] = {}
        self._native: dict[int, int] = {}  # thread ident -> kernel thread id
        self._cpu: dict[int, tuple[int, int, float]] = {}  # ident -> (fd, CPU ns, when)
        self._names_at = -1.0
        self.profile = Profile(rate, 0.0, sources=[f"in-process sampler, pid {os.getpid()}"])

    def start(self) -> None:
        self._started = self._clock()
        self._thread = threading.Thread(target=self._run, name="swarmperf-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> Profile:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        for fd, _, _ in self._cpu.values():
            os.close(fd)
        self._cpu.clear()
        self._ended = self._clock()
        self.profile.duration_s = self._ended - self._started
        return self.profile

    def _run(self) -> None:
        interval = 1.0 / self.rate
        me = threading.get_ident()
        due = self._clock()
        while True:
            due += interval
            left = due - self._clock()
            if left < 0:  # late (a busy GIL): skip the missed ticks, never catch up in a burst
                due = self._clock()
                left = 0.0
            if self._stopping.wait(left):
                return
            self.sample(me)

    def sample(self, skip: int | None = None) -> None:
        """One sample of every thread but `skip` (the sampler's own)."""
        now = self._clock()
        if now - self._names_at > 1.0:  # thread names change rarely: look them up each second
            self._names, self._native = {}, {}
            for t in threading.enumerate():
                if t.ident is not None:
                    self._names[t.ident] = t.name
                    if t.native_id is not None:
                        self._native[t.ident] = t.native_id
            self._names_at = now
            for gone in self._cpu.keys() - self._native.keys():
                os.close(self._cpu.pop(gone)[0])
        wall = time.perf_counter()  # the real clock, as the CPU time is real
        for ident, leaf in sys._current_frames().items():
            if ident != skip:
                self._record(leaf, ident, wall)
        if self._loop is not None and not self._loop.is_closed():
            try:
                # Safe from another thread: it copies the set of tasks, retrying if the
                # loop changes it meanwhile.
                tasks = asyncio.all_tasks(self._loop)
            except RuntimeError:
                return
            for task in tasks:
                self._record_awaiting(task.get_coro())

    def _frame(self, code: CodeType) -> int:
        """The profile's id of a function's frame (looked up once per code object)."""
        found = self._codes.get(code)
        if found is None:
            frame = (code.co_qualname, _short(code.co_filename), code.co_firstlineno)
            found = self._codes[code] = self.profile.frame_id(frame)
        return found

    def _idle(self, code: CodeType) -> bool:
        found = self._idle_codes.get(code)
        if found is None:
            found = self._idle_codes[code] = is_idle(code.co_name, code.co_filename)
        return found

    def _blocked(self, ident: int, now: float) -> bool:
        """Whether thread `ident` used less than `IDLE_CPU_SHARE` of the time since its last
        sample in CPU; False when that cannot be read (a first sample, not Linux)."""
        native = self._native.get(ident)
        if native is None:
            return False
        kept = self._cpu.get(ident)
        try:
            fd = kept[0] if kept is not None else os.open(_SCHEDSTAT.format(native), os.O_RDONLY)
            cpu = int(os.pread(fd, 64, 0).split(maxsplit=1)[0])
        except (OSError, ValueError, IndexError):
            if kept is not None:
                os.close(self._cpu.pop(ident)[0])
            return False
        self._cpu[ident] = (fd, cpu, now)
        if kept is None or now <= kept[2]:
            return False
        return (cpu - kept[1]) * 1e-9 < IDLE_CPU_SHARE * (now - kept[2])

    def _record(self, leaf: FrameType, ident: int, now: float) -> None:
        code = leaf.f_code
        if self._idle(code):
            self.profile.idle += 1
            return
        stack: list[int] = []
        agent: str | None = None
        handler: str | None = None
        child: FrameType | None = None
        found = False
        frame: FrameType | None = leaf
        while frame is not None and len(stack) < MAX_DEPTH:
            code = frame.f_code
            if code is _WORK_CODE and not found:
                agent, handler = _attribution(frame, child)
                found = True
            stack.append(self._frame(code))
            child = frame
            frame = frame.f_back
        if agent is None and not found and self._blocked(ident, now):
            self.profile.idle += 1
            return
        thread = self._names.get(ident, str(ident))
        stack.append(self.profile.frame_id((f"thread {thread}", "", 0)))
        stack.reverse()
        component = AGENT if agent is not None else COORDINATOR
        self.profile.stacks[StackKey(tuple(stack), component, agent, handler)] += 1

    def _record_awaiting(self, coro: Any) -> None:
        """A local agent's worker suspended in its handler: its await chain, outermost first."""
        if getattr(coro, "cr_running", True):
            return  # running now: on the loop thread's stack, sampled above
        frames: list[FrameType] = []
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is None:
                break
            frames.append(frame)
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if len(frames) < 2 or frames[0].f_code is not _WORK_CODE:
            return  # not an agent's worker, or one waiting for its next task: idle
        agent, handler = _attribution(frames[0], frames[1])
        root = self.profile.frame_id((AWAITING, "", 0))
        stack = (root, *(self._frame(f.f_code) for f in frames))
        self.profile.stacks[StackKey(stack, AGENT, agent, handler)] += 1


def _attribution(work: FrameType, child: FrameType | None) -> tuple[str | None, str | None]:
    """The agent whose worker `work` is and, when its worker is in a handler, the task's kind.

    Under the worker's `tasks_done` call the coordinator records results and dispatches the
    next tasks, for every agent: that is the coordinator's time, not this agent's (None)."""
    if child is not None and child.f_code.co_name == "tasks_done":
        return None, None
    local = work.f_locals
    agent = local.get("agent_id")
    name = str(agent) if agent is not None else None
    task = local.get("task")
    if child is None or task is None:
        return name, WORKER
    return name, str(getattr(task, "kind", "?"))


def _short(path: str) -> str:
    """A source path from its package on (site-packages and the like left out)."""
    parts = path.replace("\\", "/").split("/")
    for marker in ("site-packages", "dist-packages", "src", "lib"):
        if marker in parts[:-1]:
            index = len(parts) - 1 - parts[::-1].index(marker)
            tail = parts[index + 1 :]
            if tail and not tail[0].startswith("python3"):
                return "/".join(tail)
    return "/".join(parts[-2:]) if len(parts) > 1 else path

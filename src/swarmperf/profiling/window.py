"""One profiling window of a running process: the sampler, py-spy on its workers, memory.

The service calls `profile_window` from its event loop: the sampler runs on a thread of its
own and py-spy in child processes, so the loop (and the swarm on it) keeps running while
the window lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from swarmperf.core.errors import ConfigError
from swarmperf.core.handlers import Handler
from swarmperf.profiling import pyspy
from swarmperf.profiling.memory import MemoryWindow
from swarmperf.profiling.sampler import MAX_RATE, MIN_RATE, Sampler
from swarmperf.profiling.stacks import Profile

MAX_DURATION_S = 3600.0
PYSPY_GRACE_S = 30.0  # beyond the window, for py-spy to attach, finish and write its file


def check_window(duration: float, rate: float) -> tuple[float, float]:
    """The window's length and rate, or a ConfigError naming the one that is wrong."""
    if not 0 < duration <= MAX_DURATION_S:
        raise ConfigError("--duration", duration, "Use a duration from 1ms to 1h, e.g. 60s.")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ConfigError(
            "--rate", rate, f"Use a sampling rate from {MIN_RATE:g} to {MAX_RATE:g} Hz, e.g. 100."
        )
    return duration, rate


async def profile_window(
    duration: float,
    rate: float,
    *,
    memory: bool = False,
    awaiting: bool = True,
    workers: Mapping[str, int] | None = None,
    handlers: Mapping[str, Handler] | None = None,
    wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Profile:
    """Sample this process (and each worker pid in `workers`, agent id -> pid, with py-spy)
    for `duration` seconds at `rate` Hz; with `memory`, tracemalloc's view of the window;
    with `awaiting`, the await chains of handlers suspended on this loop too."""
    check_window(duration, rate)
    sampler = Sampler(rate, loop=asyncio.get_running_loop() if awaiting else None)
    window = MemoryWindow() if memory else None
    with tempfile.TemporaryDirectory(prefix="swarmperf-profile-") as tmp:
        spies: dict[str, tuple[asyncio.subprocess.Process, Path, int]] = {}
        notes: list[str] = []
        for agent, pid in (workers or {}).items():
            out = Path(tmp) / f"{pid}.txt"
            try:
                args = pyspy.pid_args(out, pid, rate, duration)
                process = await asyncio.create_subprocess_exec(
                    *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
                )
            except (ConfigError, OSError) as exc:
                notes.append(f"agent {agent} (pid {pid}) not sampled: {exc}")
                continue
            spies[agent] = (process, out, pid)
        if window is not None:
            window.start()
        sampler.start()
        try:
            await wait(duration)
        finally:
            profile = sampler.stop()
            if window is not None:
                profile.memory = window.stop()
        profile.notes.extend(notes)
        index = pyspy.handler_index(handlers)
        for agent, (process, out, pid) in spies.items():
            try:
                _, errors = await asyncio.wait_for(process.communicate(), PYSPY_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                profile.notes.append(f"agent {agent}: py-spy did not finish")
                continue
            if not out.exists():
                reason = errors.decode(errors="replace").strip().splitlines()
                profile.notes.append(
                    f"agent {agent} (pid {pid}): py-spy wrote nothing"
                    + (f" ({reason[-1]})" if reason else "")
                )
                continue
            worker = Profile(rate, duration, sources=[f"py-spy on agent {agent}'s worker"])
            pyspy.parse_raw(out.read_text(), worker, agent=agent, handlers=index)
            profile.merge(worker)
    return profile

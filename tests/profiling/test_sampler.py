"""The in-process sampler on a real local swarm: a planted hot handler is found and named."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

from swarmperf.app.build import build_swarm
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.core.model import Task
from swarmperf.profiling import Sampler
from swarmperf.profiling.stacks import AWAITING, Profile
from swarmperf.spec import parse_spec_yaml
from tests.profiling.hot_handlers import HANDLERS

SPEC = """\
swarm_id: sampled
backend: local
strategy: round-robin
agents: [{id: hot-agent, concurrency: 1}, {id: cool-agent, concurrency: 1}]
"""


async def _run_with_sampler(rate: float, tasks: list[Task], *, loop: bool = False) -> Profile:
    """`tasks` through a two-agent local swarm, sampled throughout."""
    swarm = build_swarm(parse_spec_yaml(SPEC, "test"), HandlerRegistry(HANDLERS))
    await swarm.start()
    sampler = Sampler(rate, loop=asyncio.get_running_loop() if loop else None)
    sampler.start()
    try:
        await swarm.submit_all(tasks)
        await swarm.drain()
    finally:
        profile = sampler.stop()
        await swarm.stop()
    return profile


def test_a_planted_hot_handler_tops_the_profile_and_is_attributed() -> None:
    tasks = [Task("hot", 0.004) for _ in range(150)] + [Task("cool") for _ in range(150)]
    profile = asyncio.run(_run_with_sampler(200.0, tasks))
    assert profile.samples >= 20, profile.summary()
    top = profile.top_self(5)
    assert top[0]["function"] == "planted_hot_spin_loop"
    assert top[0]["self_share"] > 0.5
    handlers = {row["handler"]: row["samples"] for row in profile.split("handler")}
    assert max(handlers, key=lambda h: handlers[h]) == "hot"
    # Every sample inside the hot function is the hot handler's, and some agent's.
    hot_id = next(
        i for i, frame in enumerate(profile.frames) if frame[0] == "planted_hot_spin_loop"
    )
    for key, _ in profile.stacks.items():
        if key.frames and key.frames[-1] == hot_id:
            assert key.handler == "hot"
            assert key.agent in ("hot-agent", "cool-agent")
            assert key.component == "agent"
    share = profile.attributed_share()
    assert share is not None
    assert share > 0.5


def test_handlers_suspended_in_an_await_are_sampled_given_the_loop() -> None:
    tasks = [Task("io", 0.02) for _ in range(40)] + [Task("cool") for _ in range(40)]
    profile = asyncio.run(_run_with_sampler(200.0, tasks, loop=True))
    summary = profile.summary()
    assert summary["awaiting_samples"] > 10, summary
    assert summary["handlers"][0]["handler"] == "io"
    assert {row["agent"] for row in summary["agents"]} >= {"hot-agent", "cool-agent"}
    chains = [key for key in profile.stacks if profile.frames[key.frames[0]][0] == AWAITING]
    assert all(key.handler == "io" for key in chains)
    assert any(profile.frames[i][0] == "planted_remote_call" for key in chains for i in key.frames)
    # Without the loop, the same run's waiting is on no stack: nothing of it is sampled.
    blind = asyncio.run(_run_with_sampler(200.0, tasks[:40], loop=False))
    assert blind.awaiting() == 0


def test_waiting_threads_are_idle_and_the_sampler_leaves_itself_out() -> None:
    stop = threading.Event()
    waiter = threading.Thread(target=stop.wait, name="just-waiting", daemon=True)
    waiter.start()
    sampler = Sampler(200.0)
    sampler.start()
    try:
        # Sampled while this thread waits too: some samples must have been taken.
        waited = threading.Event()
        waited.wait(0.3)
    finally:
        profile = sampler.stop()
        stop.set()
        waiter.join()
    assert profile.idle > 0
    labels = {profile.frames[key.frames[0]][0] for key in profile.stacks if key.frames}
    assert "thread just-waiting" not in labels
    assert "thread swarmperf-sampler" not in labels
    assert profile.duration_s > 0.25


def planted_blocked_in_c(fd: int) -> None:
    os.read(fd, 1)  # C, blocked until written to: this function is the innermost Python frame


def planted_spinning(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


def test_a_thread_blocked_in_c_is_idle_and_a_busy_one_is_not() -> None:
    stop = threading.Event()
    wake, waker = os.pipe()
    threads = [
        threading.Thread(target=planted_blocked_in_c, args=(wake,), name="blocked", daemon=True),
        threading.Thread(target=planted_spinning, args=(stop,), name="spinning", daemon=True),
    ]
    for thread in threads:
        thread.start()
    sampler = Sampler(200.0)
    sampler.start()
    try:
        stop.wait(0.5)
    finally:
        profile = sampler.stop()
        stop.set()
        os.write(waker, b"x")
        for thread in threads:
            thread.join()
        os.close(wake)
        os.close(waker)
    functions = {profile.frames[key.frames[-1]][0]: count for key, count in profile.stacks.items()}
    if sys.platform.startswith("linux"):
        # Only its first sample, before any CPU time was read, may count as running.
        assert functions.get("planted_blocked_in_c", 0) <= 1
    assert functions.get("planted_spinning", 0) > 10

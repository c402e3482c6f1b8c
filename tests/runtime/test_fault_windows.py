"""Fault windows count from the run's start, whatever a backend takes to start its agents.

An agent fails every call from 0.1 s to 0.5 s into the run; a swarm of eight agents (as in
the demo) on each real-time backend must see its breaker trip. Worker processes take
about a second to start, which used to eat that window on the `process` backend.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from swarmperf.core.events import BREAKER_OPEN
from swarmperf.core.model import AgentSpec, Fault, Task
from swarmperf.resilience.breaker import BreakerSettings
from swarmperf.resilience.guard import ResilienceGuard, ResilienceSettings
from swarmperf.runtime.backend import Backend
from swarmperf.runtime.local import LocalBackend
from swarmperf.runtime.process import ProcessBackend
from swarmperf.runtime.swarm import Swarm

WINDOW_END = 0.5
WINDOW = Fault(start=0.1, end=WINDOW_END, error_rate=1.0)


def _agents() -> list[AgentSpec]:
    # The faulty agent starts last: on a backend that counted from its own start, every
    # other agent's start-up would come out of the window.
    return [*(AgentSpec(f"steady-{i}") for i in range(7)), AgentSpec("flaky", faults=(WINDOW,))]


def _backend(name: str) -> Backend:
    if name == "ray":
        from swarmperf.runtime.ray_backend import RayBackend

        return RayBackend()
    return LocalBackend() if name == "local" else ProcessBackend()


@pytest.mark.parametrize("name", ["local", "process", "ray"])
def test_an_agent_breaks_down_in_its_window_on_every_backend(
    name: str, request: pytest.FixtureRequest
) -> None:
    if name == "ray":
        request.getfixturevalue("ray_local")  # actors take about a second each to start
    asyncio.run(asyncio.wait_for(_breaks_down_in_its_window(name), 60.0))


async def _breaks_down_in_its_window(name: str) -> None:
    guard = ResilienceGuard(
        ResilienceSettings(
            breaker=BreakerSettings(failure_threshold=3, open_for=0.2),
            retry=None,
            retry_budget=None,
        )
    )
    swarm = Swarm(_agents(), strategy="round-robin", backend=_backend(name), guard=guard)
    async with swarm:
        began = time.perf_counter()
        # 5 ms tasks for about 0.8 s across eight agents: the flaky one is busy all along.
        results = await swarm.run([Task("sleep", 0.005) for _ in range(1200)])
        ran_for = time.perf_counter() - began
    assert ran_for > WINDOW_END  # the run outlasted the window, so it could not miss it
    flaky = [r for r in results if r.agent == "flaky"]
    assert any(not r.ok for r in flaky), "no call failed inside the fault window"
    assert swarm.event_counts[BREAKER_OPEN] >= 1

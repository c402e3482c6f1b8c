"""Handlers for the profiling tests: hot (a CPU spin in a function of its own), cool, io."""

from __future__ import annotations

import asyncio
import time
from typing import Any


def planted_hot_spin_loop(seconds: float) -> int:
    """Burns CPU in a function with a name no other code has, to find in the profile."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def hot(payload: Any, agent: Any) -> int:
    return planted_hot_spin_loop(float(payload or 0.002))


def cool(payload: Any, agent: Any) -> None:
    return None


async def planted_remote_call(seconds: float) -> None:
    """Waits as a call to another service would: on no thread's stack while it waits."""
    await asyncio.sleep(seconds)


async def io(payload: Any, agent: Any) -> None:
    await planted_remote_call(float(payload or 0.01))


HANDLERS = {"hot": hot, "cool": cool, "io": io}

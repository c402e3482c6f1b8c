"""Cost of a call through a closed circuit breaker, beside a direct call and pybreaker.

Every figure is raw nanoseconds per loop iteration, loop included, nothing subtracted: the
direct call of a no-op function is reported so that the reader can compare. All variants are
timed in the same run, interleaved repeat by repeat, with the garbage collector off during
each timed loop (as `timeit` does), and each figure is the median over the repeats.

* ours: `if b.allow(): f(); b.record_success()` with the default settings (a 60 s time
  window), plus the same with a 100-call count window and with adaptive thresholds;
* pybreaker: `breaker.call(f)` on a closed `pybreaker.CircuitBreaker` with its defaults;
* stack: our breaker, a bulkhead and a token-bucket rate limiter around the same call.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import time
from collections.abc import Callable
from itertools import repeat
from typing import Any, ParamSpec, Protocol, TypeVar

from _common import RunSettings, emit, log, median, parse_args, python_version, spread
from swarmperf.core.model import Task
from swarmperf.resilience.breaker import BreakerSettings, CircuitBreaker

RATIO_GOAL = 0.2
DEFAULT_SETTINGS = BreakerSettings()
VARIANTS = {
    "ours": DEFAULT_SETTINGS,
    "ours_count_window": BreakerSettings(window="count", window_size=100),
    "ours_adaptive": BreakerSettings(adaptive=True),
}
# A limiter that never refuses during a run: a refused call would be a different path.
LIMITER_RATE = 1e12  # tokens per second
LIMITER_CAPACITY = 1e12  # tokens
BULKHEAD_KIND = "noop"

P = ParamSpec("P")
R = TypeVar("R")


def noop() -> None:
    return None


# -- the timed loops: the objects come in as arguments, so they are fast locals in each --


def direct_loop(n: int, f: Callable[[], None]) -> None:
    for _ in repeat(None, n):
        f()


def breaker_loop(n: int, f: Callable[[], None], b: CircuitBreaker) -> None:
    for _ in repeat(None, n):
        if b.allow():
            f()
            b.record_success()


def pybreaker_loop(n: int, f: Callable[[], None], breaker: Any) -> None:
    for _ in repeat(None, n):
        breaker.call(f)


class Bulkhead(Protocol):
    """What the stack needs from a bulkhead: take a place for a task, give it back."""

    def try_enter(self, task: Task) -> bool: ...
    def leave(self, task: Task, *, done: bool) -> Task | None: ...


class RateLimiter(Protocol):
    def try_acquire(self, n: float = 1.0) -> float: ...


def stack_loop(
    n: int, f: Callable[[], None], b: CircuitBreaker, bulkhead: Bulkhead, limiter: RateLimiter
) -> int:
    """The call guarded by all three; returns how many calls were refused (should be 0)."""
    refused = 0
    task = Task(BULKHEAD_KIND)
    for _ in repeat(None, n):
        if b.allow() and limiter.try_acquire() == 0.0 and bulkhead.try_enter(task):
            f()
            b.record_success()
            # done=False: the task waits again, which keeps the bulkhead's counts level.
            bulkhead.leave(task, done=False)
        else:
            refused += 1
    return refused


def timed(loop: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> tuple[float, R]:
    """Nanoseconds of one `loop(*args)`, with the collector off; and what it returned."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter_ns()
        result = loop(*args, **kwargs)
        elapsed = time.perf_counter_ns() - started
    finally:
        gc.enable()
    return float(elapsed), result


# -- the peers that may be missing --------------------------------------------------------


def load_pybreaker() -> tuple[Callable[[], Any] | None, str | None]:
    try:
        pybreaker = importlib.import_module("pybreaker")
    except ImportError:
        return None, "pybreaker is not installed: pip install 'pybreaker>=1.0'"
    return pybreaker.CircuitBreaker, None


class CounterBulkhead:
    """A plain concurrency counter, used only when no bulkhead module can be imported."""

    __slots__ = ("active", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def try_enter(self, task: Task) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def leave(self, task: Task, *, done: bool) -> Task | None:
        self.active -= 1
        return None


def _make_bulkhead() -> tuple[Callable[[], Bulkhead], str]:
    try:
        from swarmperf.resilience.bulkheads import Bulkheads, BulkheadSettings
    except ImportError:
        return (
            lambda: CounterBulkhead(1_000),
            "a plain concurrency counter (no bulkhead module could be imported)",
        )
    settings = {BULKHEAD_KIND: BulkheadSettings(max_concurrent=1_000)}

    def make() -> Bulkhead:
        pool = Bulkheads(settings)
        # Admitted once, as a task is when it is submitted; each call enters and leaves.
        pool.admit(Task(BULKHEAD_KIND))
        return pool

    return make, "swarmperf.resilience.bulkheads.Bulkheads"


def load_stack() -> tuple[Callable[[], tuple[Bulkhead, RateLimiter]] | None, str]:
    """A factory for a fresh (bulkhead, rate limiter) pair and what the stack is made of;
    or None and why not."""
    try:
        from swarmperf.resilience.ratelimit import TokenBucket
    except ImportError as exc:
        return None, f"no rate limiter to stack ({exc}); the bulkhead alone is not the stack"
    make_bulkhead, bulkhead_name = _make_bulkhead()

    def make() -> tuple[Bulkhead, RateLimiter]:
        return make_bulkhead(), TokenBucket(LIMITER_RATE, LIMITER_CAPACITY)

    parts = f"CircuitBreaker + {bulkhead_name} + swarmperf.resilience.ratelimit.TokenBucket"
    return make, parts


# -- the run ------------------------------------------------------------------------------


def measure(settings: RunSettings) -> dict[str, list[float]]:
    n = settings.n
    pybreaker_type, _ = load_pybreaker()
    make_stack, _ = load_stack()
    samples: dict[str, list[float]] = {"direct": []}
    for name in VARIANTS:
        samples[name] = []
    if pybreaker_type is not None:
        samples["pybreaker"] = []
    if make_stack is not None:
        samples["stack"] = []
    for r in range(settings.repeats):
        log(f"repeat {r + 1}/{settings.repeats}")
        samples["direct"].append(timed(direct_loop, n, noop)[0] / n)
        for name, breaker_settings in VARIANTS.items():
            b = CircuitBreaker("bench", breaker_settings)
            samples[name].append(timed(breaker_loop, n, noop, b)[0] / n)
        if pybreaker_type is not None:
            peer = pybreaker_type()
            samples["pybreaker"].append(timed(pybreaker_loop, n, noop, peer)[0] / n)
        if make_stack is not None:
            bulkhead, limiter = make_stack()
            b = CircuitBreaker("bench", DEFAULT_SETTINGS)
            elapsed, refused = timed(stack_loop, n, noop, b, bulkhead, limiter)
            if refused:
                raise RuntimeError(f"the stack refused {refused} of {n} calls: not a fair figure")
            samples["stack"].append(elapsed / n)
    return samples


def main() -> None:
    settings = parse_args(__doc__ or "", n=1_000_000, repeats=5, quick_n=200_000, quick_repeats=3)
    _, pybreaker_reason = load_pybreaker()
    _, stack_parts = load_stack()
    samples = measure(settings)
    log(f"\nns per call, median [min-max] of {settings.repeats}, {settings.n:,} calls each")
    for name, values in samples.items():
        log(f"  {name:20s} {spread(values)}")
    ours = median(samples["ours"])
    figures: dict[str, Any] = {
        "ns_per_call": round(ours, 1),
        "stack_ns_per_call": round(median(samples["stack"]), 1) if "stack" in samples else None,
    }
    if "stack" in samples:
        figures["stack_parts"] = stack_parts
    else:
        figures["stack_ns_per_call_reason"] = stack_parts
    peer = median(samples["pybreaker"]) if "pybreaker" in samples else None
    figures["pybreaker_ns_per_call"] = round(peer, 1) if peer is not None else None
    if peer is None:
        figures["pybreaker_ns_per_call_reason"] = pybreaker_reason
    figures["direct_ns_per_call"] = round(median(samples["direct"]), 1)
    figures["count_window_ns_per_call"] = round(median(samples["ours_count_window"]), 1)
    figures["adaptive_ns_per_call"] = round(median(samples["ours_adaptive"]), 1)
    ratio = ours / peer if peer is not None else None
    figures["ratio"] = round(ratio, 3) if ratio is not None else None
    figures["ratio_goal"] = RATIO_GOAL
    figures["goal_met"] = ratio <= RATIO_GOAL if ratio is not None else None
    if ratio is not None:
        verdict = "MET" if ratio <= RATIO_GOAL else "NOT MET"
        log(f"\nratio, ours / pybreaker: {ratio:.3f}; goal <= {RATIO_GOAL}: {verdict}")
    figures["breaker_settings"] = dataclasses.asdict(DEFAULT_SETTINGS)
    figures["n"] = settings.n
    figures["repeats"] = settings.repeats
    figures["quick"] = settings.quick
    figures["python"] = python_version()
    emit(figures)


if __name__ == "__main__":
    main()

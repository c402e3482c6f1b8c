"""Circuit breaker: an I/O-free state machine that stops calls to a failing agent.

Closed: calls go through and their outcomes fill a sliding window. The breaker trips (opens)
when the last `failure_threshold` calls all failed, or when the window holds at least
`minimum_calls` calls and its failure rate or slow-call rate reaches its threshold. Rules are
evaluated after each recorded outcome.

Open: calls are refused until the open duration has passed; the first `allow()` after that
moves to half-open.

Half-open: at most `half_open_calls` trial calls are in flight at once. Any failure re-opens;
`success_threshold` successes close, with an empty window.

Adaptive mode (`adaptive=True`) makes two things follow the agent's own history:

* The failure-rate threshold is `clamp(mean + k * sigma, floor, 1)`, where `mean` and `var`
  are an exponentially weighted mean and variance of per-call failure (0 or 1), and `sigma`
  is the spread of a failure *rate* measured over the window's `n` calls,
  `sqrt(var / n)` with `n = max(calls in window, minimum_calls)`. The baseline learns only
  from outcomes recorded while closed, so an outage does not teach it that failing is normal.
* The open duration backs off: `open_for * backoff_factor ** (trips - 1)`, capped at
  `max_open_for`, where `trips` counts openings since the breaker was last closed for
  `healthy_after` seconds without tripping.

The breaker is not thread-safe: like the rest of the core it is driven from one thread or
event loop. Outcomes recorded while open are ignored (they belong to calls let through before
the trip); in half-open every recorded outcome counts as a trial result.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NoReturn

from swarmperf.core.errors import CircuitOpen, ConfigError

_floor = math.floor
_sqrt = math.sqrt
_INF = math.inf
# The first bucket second of a time window: far enough back that the first call clears it all.
_NO_SECOND = -(1 << 62)
# Count-window cells hold one small int per call: bit 0 = failed, bit 1 = slow.
_FAILED = 1
_SLOW = 2
# A baseline failure rate below this is zero (and so is its variance).
_TINY = 1e-12


class State(enum.Enum):
    """Where a breaker is: letting calls through, refusing them, or letting a few try."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


def _reject(field: str, value: object, fix: str) -> NoReturn:
    raise ConfigError(f"breaker.{field}", value, fix)


def _finite(value: object) -> float | None:
    """`value` as a float if it is a finite int or float (a bool is neither), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _require_count(field: str, value: object, example: int) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        _reject(field, value, f"Use a whole number >= 1, like {example}.")


def _require_fraction(field: str, value: object, example: float) -> None:
    x = _finite(value)
    if x is None or not 0 < x <= 1:
        _reject(field, value, f"Use a fraction in (0, 1], like {example}.")


def _require_seconds(field: str, value: object, example: str, *, zero_ok: bool = False) -> None:
    x = _finite(value)
    if x is None or x < 0 or (x == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        _reject(field, value, f"Use a duration in seconds {bound}, like {example}.")


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a breaker trips and how it recovers. Durations and `window_size` (for a time
    window) are float seconds; rates and thresholds are fractions of calls."""

    failure_threshold: int = 5  # consecutive failures that trip it whatever the window says
    window: Literal["count", "time"] = "time"
    window_size: float = 60.0  # calls for a count window, whole seconds for a time window
    minimum_calls: int = 10  # no rate-based trip with fewer calls in the window
    failure_rate_threshold: float = 0.5
    slow_call_duration: float | None = None  # a call this long or longer is slow; None: off
    slow_call_rate_threshold: float = 1.0
    open_for: float = 60.0
    half_open_calls: int = 3  # trial calls in flight at once while half-open
    success_threshold: int = 3  # trial successes that close it
    adaptive: bool = False
    adaptive_k: float = 3.0  # how many sigmas above the baseline failure rate trips it
    adaptive_floor: float = 0.2  # the adaptive threshold never goes below this
    adaptive_alpha: float = 0.01  # the baseline's smoothing weight: memory of ~1/alpha calls
    backoff_factor: float = 2.0
    max_open_for: float = 600.0
    healthy_after: float = 300.0

    def __post_init__(self) -> None:
        _require_count("failure_threshold", self.failure_threshold, 5)
        self._check_window()
        _require_fraction("failure_rate_threshold", self.failure_rate_threshold, 0.5)
        if self.slow_call_duration is not None:
            _require_seconds("slow_call_duration", self.slow_call_duration, "2.0, or None for off")
        _require_fraction("slow_call_rate_threshold", self.slow_call_rate_threshold, 1.0)
        _require_seconds("open_for", self.open_for, "60.0")
        _require_count("half_open_calls", self.half_open_calls, 3)
        _require_count("success_threshold", self.success_threshold, 3)
        self._check_adaptive()

    def _check_window(self) -> None:
        if self.window not in ("count", "time"):
            _reject(
                "window",
                self.window,
                "Use 'count' (the last window_size calls) or 'time' (the last window_size s).",
            )
        size = _finite(self.window_size)
        if size is None or size < 1 or size != int(size):
            if self.window == "count":
                fix = "A count window holds a whole number of calls >= 1, like 100."
            else:
                fix = "A time window keeps one bucket per second: use whole seconds >= 1, like 60."
            _reject("window_size", self.window_size, fix)
        _require_count("minimum_calls", self.minimum_calls, 10)
        if self.window == "count" and self.minimum_calls > size:
            _reject(
                "minimum_calls",
                self.minimum_calls,
                f"A count window of {int(size)} calls never holds more: use at most "
                f"{int(size)}, or a larger window_size.",
            )

    def _check_adaptive(self) -> None:
        if not isinstance(self.adaptive, bool):
            _reject("adaptive", self.adaptive, "Use true or false.")
        k = _finite(self.adaptive_k)
        if k is None or k < 0:
            _reject(
                "adaptive_k", self.adaptive_k, "Use a number of standard deviations >= 0, like 3.0."
            )
        _require_fraction("adaptive_floor", self.adaptive_floor, 0.2)
        _require_fraction("adaptive_alpha", self.adaptive_alpha, 0.01)
        factor = _finite(self.backoff_factor)
        if factor is None or factor < 1:
            _reject(
                "backoff_factor",
                self.backoff_factor,
                "Use a factor >= 1 (1 means no backoff), like 2.0.",
            )
        _require_seconds("max_open_for", self.max_open_for, "600.0")
        if self.max_open_for < self.open_for:
            _reject(
                "max_open_for",
                self.max_open_for,
                f"It caps open_for ({self.open_for}s) as it backs off: use at least that.",
            )
        _require_seconds("healthy_after", self.healthy_after, "300.0", zero_ok=True)


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, with the numbers that caused it in `reason`."""

    breaker: str
    from_state: State
    to_state: State
    at: float  # clock time
    reason: str


@dataclass(frozen=True, slots=True)
class BreakerStatistics:
    """A snapshot of one breaker. Window figures are as of the snapshot's clock reading."""

    state: State
    calls: int  # in the window
    failures: int  # in the window
    slow_calls: int  # in the window
    failure_rate: float  # 0.0 with no calls
    slow_call_rate: float  # 0.0 with no calls
    failure_rate_threshold: float  # the rate that trips it now; adaptive: follows the baseline
    consecutive_failures: int
    trips: int  # openings since the breaker was made
    open_until: float | None  # clock time; None unless open
    open_for: float  # how long this opening lasts if open, else how long the next one would
    trials_in_flight: int  # half-open only
    trial_successes: int  # half-open only
    baseline_failure_rate: float | None  # adaptive only
    baseline_variance: float | None  # adaptive only


_DEFAULTS = BreakerSettings()


class CircuitBreaker:
    """Decides whether a call to `name` may go through, from the outcomes it is told about.

    Use::

        if breaker.allow():
            ...  # make the call, then exactly one of:
            breaker.record_success(duration)
            breaker.record_failure(duration)
        else:
            ...  # send it elsewhere; breaker.retry_after() says when to come back

    Every call that `allow()` lets through must be recorded, also when it is cancelled
    (as a failure): in half-open an unrecorded trial holds its slot for good.
    """

    __slots__ = (
        "_adaptive",
        "_alpha",
        "_calls",
        "_closed",
        "_closed_since",
        "_consecutive",
        "_count_window",
        "_failures",
        "_head",
        "_head_calls",
        "_head_end",
        "_head_index",
        "_head_start",
        "_in_flight",
        "_last_open_for",
        "_learned",
        "_mean",
        "_on_transition",
        "_open_for",
        "_open_until",
        "_pos",
        "_quiet_count",
        "_quiet_time",
        "_ring",
        "_second_calls",
        "_second_failures",
        "_second_slow",
        "_size",
        "_slow",
        "_slow_after",
        "_state",
        "_streak",
        "_trial_successes",
        "_trips",
        "_var",
        "_weight",
        "clock",
        "name",
        "settings",
    )

    def __init__(
        self,
        name: str,
        settings: BreakerSettings = _DEFAULTS,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self._on_transition = on_transition
        self._state = State.CLOSED
        # A bool beside the enum: the hot path tests one attribute, no global lookup.
        self._closed = True
        self._slow_after = (
            _INF if settings.slow_call_duration is None else settings.slow_call_duration
        )
        self._count_window = settings.window == "count"
        self._size = int(settings.window_size)
        self._ring: list[int] = [0] * self._size if self._count_window else []
        self._pos = 0
        per_second = [] if self._count_window else [0] * self._size
        self._second_calls: list[int] = per_second
        self._second_failures: list[int] = list(per_second)
        self._second_slow: list[int] = list(per_second)
        self._head = _NO_SECOND
        self._head_index = 0
        self._head_start = self._head_end = _INF  # no bucket yet: the fast lane never matches
        self._calls = 0  # in the window; for a time window, all but the newest second's
        self._head_calls = 0  # a time window's newest second (always 0 for a count window)
        self._failures = 0
        self._slow = 0
        self._consecutive = 0
        self._trips = 0
        self._open_until = -_INF  # meaningful only while open
        self._open_for = settings.open_for
        self._in_flight = 0
        self._trial_successes = 0
        self._streak = 0  # openings since last healthy; drives the backoff
        self._last_open_for = settings.open_for
        self._closed_since = -_INF
        self._mean = 0.0
        self._var = 0.0
        self._learned = 0  # outcomes learned during the warm-up only
        self._weight = 1.0  # the next outcome's weight in the baseline
        self._adaptive = settings.adaptive
        self._alpha = settings.adaptive_alpha
        self._quiet_count = self._count_window
        self._quiet_time = not self._count_window

    # -- the hot path ---------------------------------------------------------------------

    def allow(self) -> bool:
        """May a call go through now? In half-open, True takes one of the trial slots."""
        return self._closed or self._allow_when_not_closed()

    def record_success(self, duration: float = 0.0) -> None:
        """Count a call that succeeded after `duration` seconds."""
        # Fast lanes for a quiet window (closed, nothing failed or slow in it, no failure
        # streak): a fast success cannot trip anything, so only a call count and the baseline
        # move.
        if self._quiet_time:
            # One clock read, no floor(): the newest bucket's bounds are kept as floats, and
            # its call count as a plain attribute until the window rolls past it.
            if duration < self._slow_after and self._head_start <= self.clock() < self._head_end:
                self._head_calls += 1
                if self._adaptive:
                    self._learn(0.0)
                return
        elif self._quiet_count and duration < self._slow_after:
            # A quiet count window is all zeros, so where the ring's cursor stands is moot.
            if self._calls < self._size:
                self._calls += 1
            if self._adaptive:
                self._learn(0.0)
            return
        self._record_success(duration)

    def _record_success(self, duration: float) -> None:
        if not self._closed:
            self._trial_result(failed=False)
            return
        self._consecutive = 0
        self._add(_SLOW if duration >= self._slow_after else 0)
        # With no failure and no slow call in the window, no rate can have reached its
        # threshold (thresholds are > 0): skip the evaluation.
        reason = self._rate_trip_reason() if self._failures or self._slow else None
        if self._adaptive:
            self._learn(0.0)
        if reason is None:
            self._update_quiet()
        else:
            self._trip(reason)

    def record_failure(self, duration: float = 0.0) -> None:
        """Count a call that failed after `duration` seconds."""
        if not self._closed:
            self._trial_result(failed=True)
            return
        self._consecutive += 1
        self._add(_FAILED | _SLOW if duration >= self._slow_after else _FAILED)
        threshold = self.settings.failure_threshold
        if self._consecutive >= threshold:
            reason: str | None = f"{self._consecutive} consecutive failures >= {threshold}"
        else:
            reason = self._rate_trip_reason()
        if self._adaptive:
            self._learn(1.0)
        if reason is None:
            self._update_quiet()
        else:
            self._trip(reason)

    def _update_quiet(self) -> None:
        quiet = (
            self._closed
            and not self._failures
            and not self._slow
            and not self._consecutive  # failures that left a time window still count here
        )
        self._quiet_count = quiet and self._count_window
        self._quiet_time = quiet and not self._count_window

    def _add(self, cell: int) -> None:
        """Put one outcome in the window and keep the running sums."""
        if self._count_window:
            ring = self._ring
            pos = self._pos
            old = ring[pos]
            ring[pos] = cell
            pos += 1
            self._pos = 0 if pos == self._size else pos
            if old:  # only a cell that was written can be non-zero: the ring is full
                self._failures -= old & _FAILED
                self._slow -= old >> 1
            elif self._calls < self._size:
                self._calls += 1
        else:
            second = _floor(self.clock())
            if second != self._head:
                self._roll(second)
            i = self._head_index
            self._head_calls += 1
            if cell & _FAILED:
                self._second_failures[i] += 1
            if cell & _SLOW:
                self._second_slow[i] += 1
        if cell & _FAILED:
            self._failures += 1
        if cell & _SLOW:
            self._slow += 1

    # -- the time window ------------------------------------------------------------------

    def _roll(self, second: int) -> None:
        """Move a time window's newest bucket to `second`, dropping the seconds now too old."""
        head = self._head
        if second <= head:
            return  # the clock went back: keep counting in the newest bucket
        size = self._size
        calls, failures, slow = self._second_calls, self._second_failures, self._second_slow
        calls[self._head_index] += self._head_calls
        self._calls += self._head_calls
        self._head_calls = 0
        for s in range(head + 1, head + 1 + min(second - head, size)):
            i = s % size
            self._calls -= calls[i]
            self._failures -= failures[i]
            self._slow -= slow[i]
            calls[i] = failures[i] = slow[i] = 0
        self._head = second
        self._head_index = second % size
        self._head_start = float(second)
        self._head_end = float(second + 1)

    def _clear_window(self) -> None:
        size = self._size
        if self._count_window:
            self._ring = [0] * size
            self._pos = 0
        else:
            self._second_calls = [0] * size
            self._second_failures = [0] * size
            self._second_slow = [0] * size
            self._head = _NO_SECOND
            self._head_start = self._head_end = _INF
        self._calls = self._head_calls = self._failures = self._slow = 0

    # -- rules ----------------------------------------------------------------------------

    def _rate_trip_reason(self) -> str | None:
        calls = self._calls + self._head_calls
        if calls < self.settings.minimum_calls:
            return None
        if self._failures:
            threshold = self._threshold(calls)
            rate = self._failures / calls
            if rate >= threshold:
                how = f" (adaptive, baseline {self._mean:.3f})" if self.settings.adaptive else ""
                return f"failure rate {rate:.2f} >= {threshold:.2f}{how} over {calls} calls"
        if self._slow:
            threshold = self.settings.slow_call_rate_threshold
            rate = self._slow / calls
            if rate >= threshold:
                return (
                    f"slow-call rate {rate:.2f} >= {threshold:.2f} over {calls} calls "
                    f"(slow: >= {self._slow_after:g}s)"
                )
        return None

    def _threshold(self, calls: int) -> float:
        """The failure rate that trips the breaker with `calls` calls in the window."""
        s = self.settings
        if not s.adaptive:
            return s.failure_rate_threshold
        n = max(calls, s.minimum_calls)
        return min(1.0, max(s.adaptive_floor, self._mean + s.adaptive_k * _sqrt(self._var / n)))

    def _learn(self, failed: float) -> None:
        """Fold one closed-state outcome (1.0 failed, 0.0 not) into the baseline."""
        weight = self._weight
        if weight > self._alpha:
            # Plain averages for the first ~1/alpha outcomes, so that a young baseline is not
            # pulled towards the 0.0 it starts from; then weight `alpha` for good.
            self._learned += 1
            self._weight = max(self._alpha, 1.0 / (self._learned + 1))
        mean = self._mean
        delta = failed - mean
        mean = mean + weight * delta
        if mean < _TINY:
            # Let a long run of successes end at exactly 0: scaling a float down again and
            # again stalls at the smallest subnormal, and subnormal arithmetic is slow.
            self._mean = self._var = 0.0
            return
        self._mean = mean
        self._var = (1.0 - weight) * (self._var + weight * delta * delta)

    def _backoff_streak(self, now: float) -> int:
        """Openings that count towards the backoff, if the breaker tripped at `now`."""
        healthy = self._closed and now - self._closed_since >= self.settings.healthy_after
        return 0 if healthy else self._streak

    def _next_open_for(self, now: float) -> float:
        s = self.settings
        if not s.adaptive or self._backoff_streak(now) == 0:
            return s.open_for
        return min(self._last_open_for * s.backoff_factor, s.max_open_for)

    # -- transitions ----------------------------------------------------------------------

    def _trip(self, reason: str) -> None:
        now = self.clock()
        open_for = self._next_open_for(now)
        self._streak = self._backoff_streak(now) + 1
        self._last_open_for = open_for
        self._open_for = open_for
        self._open_until = now + open_for
        self._trips += 1
        self._move(State.OPEN, now, f"{reason}; open for {open_for:g}s")

    def _allow_when_not_closed(self) -> bool:
        if self._state is State.OPEN:
            now = self.clock()
            if now < self._open_until:
                return False
            self._in_flight = 0
            self._trial_successes = 0
            self._move(
                State.HALF_OPEN,
                now,
                f"open for {self._open_for:g}s; up to {self.settings.half_open_calls} "
                "trial calls at a time",
            )
        if self._in_flight < self.settings.half_open_calls:
            self._in_flight += 1
            return True
        return False

    def _trial_result(self, *, failed: bool) -> None:
        if self._state is State.OPEN:
            return  # a call let through before the trip finished late: it says nothing new
        if self._in_flight:
            self._in_flight -= 1
        needed = self.settings.success_threshold
        if failed:
            self._trip(f"a trial call failed after {self._trial_successes} of {needed} successes")
            return
        self._trial_successes += 1
        if self._trial_successes >= needed:
            now = self.clock()
            self._clear_window()
            self._consecutive = 0
            self._closed_since = now
            self._move(State.CLOSED, now, f"{self._trial_successes} trial successes >= {needed}")

    def _move(self, to: State, now: float, reason: str) -> None:
        before = self._state
        self._state = to
        self._closed = to is State.CLOSED
        self._update_quiet()
        if self._on_transition is not None:
            self._on_transition(Transition(self.name, before, to, now, reason))

    # -- reading --------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The state as of the last call; open turns half-open on the next `allow()`."""
        return self._state

    def check(self) -> None:
        """Like `allow()`, but raise `CircuitOpen` instead of returning False."""
        if not self.allow():
            raise CircuitOpen(self.name, self.retry_after())

    def retry_after(self) -> float:
        """Seconds until a trial call is allowed; 0.0 if one is allowed now.

        Also 0.0 in half-open with every trial slot taken: a slot frees up when a trial
        finishes, not at a time the breaker knows.
        """
        if self._state is State.OPEN:
            return max(0.0, self._open_until - self.clock())
        return 0.0

    def statistics(self) -> BreakerStatistics:
        now = self.clock()
        if not self._count_window:
            self._roll(_floor(now))
            self._update_quiet()
        calls = self._calls + self._head_calls
        adaptive = self.settings.adaptive
        return BreakerStatistics(
            state=self._state,
            calls=calls,
            failures=self._failures,
            slow_calls=self._slow,
            failure_rate=self._failures / calls if calls else 0.0,
            slow_call_rate=self._slow / calls if calls else 0.0,
            failure_rate_threshold=self._threshold(calls),
            consecutive_failures=self._consecutive,
            trips=self._trips,
            open_until=self._open_until if self._state is State.OPEN else None,
            open_for=self._open_for if self._state is State.OPEN else self._next_open_for(now),
            trials_in_flight=self._in_flight if self._state is State.HALF_OPEN else 0,
            trial_successes=self._trial_successes if self._state is State.HALF_OPEN else 0,
            baseline_failure_rate=self._mean if adaptive else None,
            baseline_variance=self._var if adaptive else None,
        )

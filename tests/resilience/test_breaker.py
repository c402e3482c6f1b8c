"""The circuit breaker: each rule on its own, then against a plain model of all the rules."""

from __future__ import annotations

import dataclasses
import math
import types
from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import swarmperf.resilience
from swarmperf.core.errors import ConfigError, DispatchError
from swarmperf.resilience import (
    BreakerSettings,
    CircuitBreaker,
    CircuitOpen,
    State,
    Transition,
)
from tests.conftest import FakeClock

# Rate rules only, unless a test says otherwise: a streak of 1,000 failures never happens.
NO_STREAK = 1_000


def count_window(size: int = 10, **overrides: object) -> BreakerSettings:
    fields: dict[str, object] = {
        "window": "count",
        "window_size": size,
        "minimum_calls": size,
        "failure_threshold": NO_STREAK,
    }
    fields.update(overrides)
    return BreakerSettings(**fields)  # type: ignore[arg-type]


def make(s: BreakerSettings, clock: FakeClock) -> tuple[CircuitBreaker, list[Transition]]:
    seen: list[Transition] = []
    return CircuitBreaker("agent-1", s, clock=clock, on_transition=seen.append), seen


def feed(b: CircuitBreaker, pattern: str, duration: float = 0.0) -> None:
    """Make one call per letter, each let through: `s` succeeds, `f` fails."""
    for letter in pattern:
        assert b.allow()
        if letter == "s":
            b.record_success(duration)
        else:
            b.record_failure(duration)


def feed_until_open(b: CircuitBreaker, pattern: str) -> int:
    """Like `feed`, but stop at the first refused call; return how many went through."""
    for made, letter in enumerate(pattern):
        if not b.allow():
            return made
        if letter == "s":
            b.record_success()
        else:
            b.record_failure()
    return len(pattern)


def state(b: CircuitBreaker) -> State:
    # A function, not `b.state` inline: mypy would keep the state it narrowed to at the
    # previous assert, as if recording outcomes could not change it.
    return b.state


# -- settings ------------------------------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    s = BreakerSettings()
    assert (s.failure_threshold, s.window, s.window_size, s.minimum_calls) == (5, "time", 60, 10)
    assert (s.failure_rate_threshold, s.slow_call_duration, s.slow_call_rate_threshold) == (
        0.5,
        None,
        1.0,
    )
    assert (s.open_for, s.half_open_calls, s.success_threshold) == (60.0, 3, 3)
    assert (s.adaptive, s.adaptive_k, s.adaptive_floor) == (False, 3.0, 0.2)
    assert (s.backoff_factor, s.max_open_for, s.healthy_after) == (2.0, 600.0, 300.0)


@pytest.mark.parametrize(
    ("overrides", "name", "bad"),
    [
        ({"failure_threshold": 0}, "failure_threshold", 0),
        ({"failure_threshold": 2.5}, "failure_threshold", 2.5),
        ({"failure_threshold": True}, "failure_threshold", True),
        ({"window": "sliding"}, "window", "sliding"),
        ({"window_size": 0}, "window_size", 0),
        ({"window_size": 2.5}, "window_size", 2.5),
        ({"window": "count", "window_size": math.inf}, "window_size", math.inf),
        ({"minimum_calls": 0}, "minimum_calls", 0),
        ({"window": "count", "window_size": 5}, "minimum_calls", 10),
        ({"failure_rate_threshold": 0.0}, "failure_rate_threshold", 0.0),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold", 1.5),
        ({"failure_rate_threshold": math.nan}, "failure_rate_threshold", math.nan),
        ({"slow_call_duration": 0.0}, "slow_call_duration", 0.0),
        ({"slow_call_duration": -1.0}, "slow_call_duration", -1.0),
        ({"slow_call_rate_threshold": 0}, "slow_call_rate_threshold", 0),
        ({"open_for": 0}, "open_for", 0),
        ({"open_for": math.inf}, "open_for", math.inf),
        ({"half_open_calls": 0}, "half_open_calls", 0),
        ({"success_threshold": -1}, "success_threshold", -1),
        ({"adaptive": "yes"}, "adaptive", "yes"),
        ({"adaptive_k": -1.0}, "adaptive_k", -1.0),
        ({"adaptive_floor": 0.0}, "adaptive_floor", 0.0),
        ({"adaptive_alpha": 2.0}, "adaptive_alpha", 2.0),
        ({"backoff_factor": 0.5}, "backoff_factor", 0.5),
        ({"max_open_for": 30.0}, "max_open_for", 30.0),
        ({"healthy_after": -1.0}, "healthy_after", -1.0),
    ],
)
def test_bad_settings_are_rejected_naming_the_field_the_value_and_a_fix(
    overrides: dict[str, object], name: str, bad: object
) -> None:
    with pytest.raises(ConfigError) as info:
        BreakerSettings(**overrides)  # type: ignore[arg-type]
    assert info.value.field == f"breaker.{name}"
    assert info.value.value is bad or info.value.value == bad
    assert f"breaker.{name}: {bad!r}" in str(info.value)
    assert info.value.fix.startswith(("Use", "A ", "It "))


def test_public_api_equals_all() -> None:
    package = swarmperf.resilience
    public = {
        name
        for name in dir(package)
        if not name.startswith("_") and not isinstance(getattr(package, name), types.ModuleType)
    }
    assert public == set(swarmperf.resilience.__all__)


# -- closed: the trip rules ----------------------------------------------------------------


def test_consecutive_failures_trip_it(clock: FakeClock) -> None:
    b, seen = make(BreakerSettings(failure_threshold=3), clock)
    feed(b, "ff")
    assert state(b) is State.CLOSED
    feed(b, "f")
    assert state(b) is State.OPEN
    assert [(t.from_state, t.to_state) for t in seen] == [(State.CLOSED, State.OPEN)]
    assert seen[0].reason == "3 consecutive failures >= 3; open for 60s"
    assert seen[0].breaker == "agent-1"


def test_a_success_ends_the_streak(clock: FakeClock) -> None:
    b, _ = make(BreakerSettings(failure_threshold=3), clock)
    feed(b, "ffsffsff")
    assert state(b) is State.CLOSED
    assert b.statistics().consecutive_failures == 2


def test_failure_rate_trips_it_only_from_minimum_calls(clock: FakeClock) -> None:
    b, seen = make(count_window(20, minimum_calls=10), clock)
    feed(b, "fffffffff")  # 9 calls, all failed: below minimum_calls
    assert state(b) is State.CLOSED
    feed(b, "s")  # 10 calls, 9 failed: a success can trip it
    assert state(b) is State.OPEN
    assert seen[0].reason.startswith("failure rate 0.90 >= 0.50 over 10 calls")


def test_failure_rate_at_exactly_the_threshold_trips(clock: FakeClock) -> None:
    b, seen = make(count_window(50, minimum_calls=50, failure_rate_threshold=0.62), clock)
    feed(b, "s" * 20 + "f" * 29)  # 49 calls: one short of minimum_calls
    assert state(b) is State.CLOSED
    feed(b, "f")  # 50 calls, 30 failed: 0.60
    assert state(b) is State.CLOSED
    feed(b, "f")  # the first success leaves the window: 31 of 50, 0.62
    assert state(b) is State.OPEN
    assert "failure rate 0.62 >= 0.62 over 50 calls" in seen[0].reason


def test_slow_call_rate_trips_it(clock: FakeClock) -> None:
    s = count_window(4, slow_call_duration=2.0, slow_call_rate_threshold=0.75)
    b, seen = make(s, clock)
    feed(b, "s", duration=0.1)
    feed(b, "ss", duration=2.0)  # "at least slow_call_duration" is slow
    assert state(b) is State.CLOSED
    assert b.statistics().slow_calls == 2
    feed(b, "s", duration=5.0)
    assert state(b) is State.OPEN
    assert seen[0].reason.startswith("slow-call rate 0.75 >= 0.75 over 4 calls (slow: >= 2s)")


def test_slow_calls_are_off_by_default(clock: FakeClock) -> None:
    b, _ = make(count_window(4, slow_call_rate_threshold=0.25), clock)
    feed(b, "ssssssss", duration=1e9)
    assert state(b) is State.CLOSED
    assert b.statistics().slow_calls == 0


def test_count_window_forgets_the_oldest_calls(clock: FakeClock) -> None:
    b, _ = make(count_window(4, minimum_calls=4, failure_rate_threshold=0.75), clock)
    feed(b, "ffs")  # 2 of 3 failed; one call short of minimum_calls
    feed(b, "sss")  # the failures fall out of the window
    stats = b.statistics()
    assert (stats.calls, stats.failures, stats.failure_rate) == (4, 0, 0.0)
    feed(b, "ff")
    assert state(b) is State.CLOSED  # 2 of 4
    feed(b, "f")
    assert state(b) is State.OPEN  # 3 of 4


def test_time_window_forgets_whole_seconds(clock: FakeClock) -> None:
    s = BreakerSettings(window="time", window_size=10, minimum_calls=4, failure_threshold=9)
    b, seen = make(s, clock)
    clock.now = 100.9
    feed(b, "ff")  # second 100
    clock.now = 105.0
    feed(b, "s")  # second 105
    clock.now = 109.99
    assert b.statistics().calls == 3  # second 100 is still in [100, 109]
    clock.now = 110.0
    stats = b.statistics()
    assert (stats.calls, stats.failures) == (1, 0)  # second 100 has left the window
    clock.now = 114.0
    feed(b, "sff")  # 4 calls, 2 failed: 0.5
    assert state(b) is State.OPEN
    assert seen[0].reason.startswith("failure rate 0.50 >= 0.50 over 4 calls")


def test_failures_that_left_the_time_window_still_make_a_streak(clock: FakeClock) -> None:
    b, _ = make(BreakerSettings(window_size=1, failure_threshold=3), clock)
    feed(b, "ff")
    clock.advance(5.0)
    assert b.statistics().failures == 0
    feed(b, "f")
    assert state(b) is State.OPEN


def test_a_success_after_the_failures_left_the_window_ends_the_streak(clock: FakeClock) -> None:
    b, _ = make(BreakerSettings(window_size=1, failure_threshold=3), clock)
    feed(b, "ff")
    clock.advance(5.0)
    assert b.statistics().failures == 0
    feed(b, "sff")
    assert state(b) is State.CLOSED
    assert b.statistics().consecutive_failures == 2


def test_a_quiet_time_window_keeps_counting_across_seconds(clock: FakeClock) -> None:
    b, _ = make(BreakerSettings(window_size=3), clock)
    for _ in range(8):
        feed(b, "ss")
        clock.advance(0.5)
    assert b.statistics().calls == 8  # seconds 2 and 3 (the clock reads 4: seconds 2 to 4)


# -- open and half-open --------------------------------------------------------------------


def trip(b: CircuitBreaker) -> None:
    while state(b) is State.CLOSED:
        feed(b, "f")


def test_open_refuses_until_open_for_has_passed(clock: FakeClock) -> None:
    b, _ = make(BreakerSettings(open_for=30.0), clock)
    trip(b)
    assert not b.allow()
    assert b.retry_after() == 30.0
    assert b.statistics().open_until == 30.0
    clock.now = 29.5
    assert not b.allow()
    assert b.retry_after() == pytest.approx(0.5)
    assert state(b) is State.OPEN
    clock.now = 30.0
    assert b.retry_after() == 0.0
    assert state(b) is State.OPEN  # reading does not move it: the next allow() does
    assert b.allow()
    assert state(b) is State.HALF_OPEN


def test_half_open_admits_half_open_calls_at_a_time(clock: FakeClock) -> None:
    b, seen = make(BreakerSettings(half_open_calls=2, success_threshold=3), clock)
    trip(b)
    clock.advance(60.0)
    assert [b.allow() for _ in range(3)] == [True, True, False]
    assert b.statistics().trials_in_flight == 2
    assert b.retry_after() == 0.0
    b.record_success()
    assert b.statistics().trial_successes == 1
    assert [b.allow() for _ in range(2)] == [True, False]  # the finished trial freed its slot
    b.record_success()
    assert state(b) is State.HALF_OPEN
    b.record_success()
    assert state(b) is State.CLOSED
    assert seen[-1].reason == "3 trial successes >= 3"
    assert seen[1].reason == "open for 60s; up to 2 trial calls at a time"


def test_closing_starts_with_an_empty_window(clock: FakeClock) -> None:
    b, _ = make(count_window(10, minimum_calls=2), clock)
    trip(b)
    clock.advance(60.0)
    feed(b, "sss")
    stats = b.statistics()
    assert stats.state is State.CLOSED
    assert (stats.calls, stats.failures, stats.consecutive_failures) == (0, 0, 0)


def test_any_trial_failure_reopens(clock: FakeClock) -> None:
    b, seen = make(BreakerSettings(), clock)
    trip(b)
    clock.advance(60.0)
    feed(b, "ssf")
    assert state(b) is State.OPEN
    assert seen[-1].reason == "a trial call failed after 2 of 3 successes; open for 60s"
    assert b.retry_after() == 60.0  # not adaptive: no backoff
    assert b.statistics().trips == 2


def test_outcomes_recorded_while_open_are_ignored(clock: FakeClock) -> None:
    b, _ = make(BreakerSettings(), clock)
    trip(b)
    before = b.statistics()
    b.record_success()
    b.record_failure(duration=99.0)
    assert b.statistics() == before


def test_check_raises_circuit_open_with_the_wait(clock: FakeClock) -> None:
    b, _ = make(BreakerSettings(open_for=10.0, half_open_calls=1), clock)
    b.check()
    trip(b)
    clock.advance(4.0)
    with pytest.raises(CircuitOpen) as info:
        b.check()
    assert isinstance(info.value, DispatchError)
    assert (info.value.name, info.value.retry_after) == ("agent-1", 6.0)
    assert "'agent-1'" in str(info.value)
    assert "6.0s" in str(info.value)
    clock.advance(6.0)
    b.check()  # the one trial slot
    with pytest.raises(CircuitOpen, match="in flight"):
        b.check()


def test_transitions_carry_the_clock_time(clock: FakeClock) -> None:
    b, seen = make(BreakerSettings(failure_threshold=1, success_threshold=1), clock)
    clock.now = 5.0
    feed(b, "f")
    clock.now = 70.0
    feed(b, "s")
    assert [(t.to_state, t.at) for t in seen] == [
        (State.OPEN, 5.0),
        (State.HALF_OPEN, 70.0),
        (State.CLOSED, 70.0),
    ]
    assert [t.to_state.value for t in seen] == ["open", "half-open", "closed"]


# -- adaptive ------------------------------------------------------------------------------


def adaptive(**overrides: object) -> BreakerSettings:
    return count_window(20, minimum_calls=10, adaptive=True, **overrides)


def test_an_agent_that_often_fails_is_judged_by_its_own_baseline(clock: FakeClock) -> None:
    b, seen = make(adaptive(), clock)
    feed(b, "fsssssssss" * 100)  # its normal: 10% of calls fail
    stats = b.statistics()
    assert state(b) is State.CLOSED
    assert stats.baseline_failure_rate == pytest.approx(0.1, abs=0.01)
    # mean + 3 sigma of a rate over 20 calls: 0.1 + 3 * sqrt(0.09 / 20) = 0.3
    assert stats.failure_rate_threshold == pytest.approx(0.3, abs=0.02)
    # A burst: the calls made while closed still teach the baseline, so the threshold
    # creeps up during the burst, but far less than the rate does.
    made = feed_until_open(b, "fsffsfsffs" * 2)
    assert state(b) is State.OPEN
    assert made == 13  # 8 of the last 20 calls failed
    assert seen[0].reason == (
        "failure rate 0.40 >= 0.39 (adaptive, baseline 0.151) over 20 calls; open for 60s"
    )


def test_an_agent_that_rarely_fails_trips_well_below_half(clock: FakeClock) -> None:
    s = adaptive()
    b, _ = make(s, clock)
    fixed, _ = make(dataclasses.replace(s, adaptive=False), clock)
    for breaker in (b, fixed):
        feed(breaker, ("f" + "s" * 999) * 2)  # 0.1%
        assert breaker.statistics().failure_rate_threshold == pytest.approx(
            0.2 if breaker is b else 0.5
        )
        feed_until_open(breaker, "fssfs" * 4)  # 40% failures
    assert state(b) is State.OPEN
    assert b.statistics().failure_rate == 0.2  # it tripped at a fifth of the calls failing
    assert state(fixed) is State.CLOSED


def test_the_baseline_does_not_learn_while_open_or_half_open(clock: FakeClock) -> None:
    b, _ = make(adaptive(failure_threshold=3, half_open_calls=5, success_threshold=5), clock)
    feed(b, "ssssssfff")
    assert state(b) is State.OPEN
    before = b.statistics()
    b.record_failure()
    b.record_success()
    clock.advance(60.0)
    feed(b, "ssss")
    assert state(b) is State.HALF_OPEN
    after = b.statistics()
    assert (after.baseline_failure_rate, after.baseline_variance) == (
        before.baseline_failure_rate,
        before.baseline_variance,
    )


def test_open_duration_backs_off_caps_and_resets_after_healthy_after(clock: FakeClock) -> None:
    s = adaptive(failure_threshold=1, success_threshold=1, open_for=10.0, max_open_for=35.0)
    b, _ = make(s, clock)
    opened: list[float] = []
    for _ in range(4):
        feed(b, "f")  # trips from closed, then re-opens from half-open
        opened.append(b.retry_after())
        clock.advance(b.retry_after())
    assert opened == [10.0, 20.0, 35.0, 35.0]
    feed(b, "s")  # a trial succeeds: closed
    clock.advance(299.0)
    feed(b, "f")  # closed for less than healthy_after: still backing off
    assert b.retry_after() == 35.0
    clock.advance(35.0)
    feed(b, "s")
    assert b.statistics().open_for == 35.0
    clock.advance(300.0)
    assert b.statistics().open_for == 10.0
    feed(b, "f")
    assert b.retry_after() == 10.0


def test_without_adaptive_the_open_duration_is_fixed(clock: FakeClock) -> None:
    b, _ = make(BreakerSettings(failure_threshold=1, success_threshold=1), clock)
    for _ in range(3):
        feed(b, "f")
        assert b.retry_after() == 60.0
        clock.advance(60.0)


def test_a_long_quiet_run_brings_the_baseline_to_exactly_zero(clock: FakeClock) -> None:
    b, _ = make(adaptive(), clock)
    feed(b, "f" + "s" * 5_000)
    stats = b.statistics()
    assert (stats.baseline_failure_rate, stats.baseline_variance) == (0.0, 0.0)
    assert stats.failure_rate_threshold == 0.2


# -- the rules against a plain model -------------------------------------------------------


@dataclass
class Outcome:
    at: float
    failed: bool
    slow: bool


@dataclass
class Model:
    """The rules written out the slow, obvious way: the window is a list of outcomes."""

    s: BreakerSettings
    state: State = State.CLOSED
    outcomes: list[Outcome] = field(default_factory=list)  # since the breaker last closed
    consecutive: int = 0
    open_until: float = 0.0
    open_for: float = 0.0
    in_flight: int = 0
    successes: int = 0
    trips: int = 0
    mean: float = 0.0
    var: float = 0.0
    learned: int = 0
    streak: int = 0
    closed_since: float = -math.inf

    def window(self, now: float) -> list[Outcome]:
        if self.s.window == "count":
            return self.outcomes[-int(self.s.window_size) :]
        return [o for o in self.outcomes if math.floor(now) - math.floor(o.at) < self.s.window_size]

    def threshold(self, calls: int) -> float:
        s = self.s
        if not s.adaptive:
            return s.failure_rate_threshold
        sigma = math.sqrt(self.var / max(calls, s.minimum_calls))
        return min(1.0, max(s.adaptive_floor, self.mean + s.adaptive_k * sigma))

    def allow(self, now: float) -> bool:
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN:
            if now < self.open_until:
                return False
            self.state, self.in_flight, self.successes = State.HALF_OPEN, 0, 0
        if self.in_flight < self.s.half_open_calls:
            self.in_flight += 1
            return True
        return False

    def retry_after(self, now: float) -> float:
        return max(0.0, self.open_until - now) if self.state is State.OPEN else 0.0

    def record(self, now: float, failed: bool, duration: float) -> None:
        s = self.s
        if self.state is State.OPEN:
            return
        if self.state is State.HALF_OPEN:
            self.in_flight = max(0, self.in_flight - 1)
            if failed:
                self.trip(now)
            else:
                self.successes += 1
                if self.successes >= s.success_threshold:
                    self.state, self.outcomes, self.consecutive = State.CLOSED, [], 0
                    self.closed_since = now
            return
        slow = s.slow_call_duration is not None and duration >= s.slow_call_duration
        self.outcomes.append(Outcome(now, failed, slow))
        self.consecutive = self.consecutive + 1 if failed else 0
        window = self.window(now)
        calls = len(window)
        failures = sum(o.failed for o in window)
        slow_calls = sum(o.slow for o in window)
        trips = self.consecutive >= s.failure_threshold or (
            calls >= s.minimum_calls
            and (
                failures / calls >= self.threshold(calls)
                or slow_calls / calls >= s.slow_call_rate_threshold
            )
        )
        if s.adaptive:
            self.learn(1.0 if failed else 0.0)
        if trips:
            self.trip(now)

    def learn(self, x: float) -> None:
        self.learned += 1
        weight = max(self.s.adaptive_alpha, 1.0 / self.learned)
        delta = x - self.mean
        mean = self.mean + weight * delta
        if mean < 1e-12:
            self.mean = self.var = 0.0
        else:
            self.mean = mean
            self.var = (1.0 - weight) * (self.var + weight * delta * delta)

    def next_open_for(self, now: float) -> float:
        s = self.s
        if not s.adaptive:
            return s.open_for
        streak = self.streak
        if self.state is State.CLOSED and now - self.closed_since >= s.healthy_after:
            streak = 0
        return min(s.open_for * s.backoff_factor**streak, s.max_open_for)

    def trip(self, now: float) -> None:
        s = self.s
        self.open_for = self.next_open_for(now)
        if self.state is State.CLOSED and now - self.closed_since >= s.healthy_after:
            self.streak = 0
        self.streak += 1
        self.state, self.open_until = State.OPEN, now + self.open_for
        self.trips += 1


WINDOWS: list[Literal["count", "time"]] = ["count", "time"]


@st.composite
def breaker_settings(draw: st.DrawFn, adaptive: bool) -> BreakerSettings:
    window = draw(st.sampled_from(WINDOWS))
    size = draw(st.integers(1, 12))
    open_for = draw(st.sampled_from([0.5, 1.0, 5.0, 30.0]))
    return BreakerSettings(
        failure_threshold=draw(st.integers(1, 8)),
        window=window,
        window_size=float(size),
        minimum_calls=draw(st.integers(1, size if window == "count" else 15)),
        failure_rate_threshold=draw(
            st.sampled_from([0.2, 0.25, 0.5, 0.75, 1.0]) | st.floats(0.01, 1.0)
        ),
        slow_call_duration=draw(st.sampled_from([None, 0.5, 1.0])),
        slow_call_rate_threshold=draw(st.sampled_from([0.3, 0.5, 1.0])),
        open_for=open_for,
        half_open_calls=draw(st.integers(1, 4)),
        success_threshold=draw(st.integers(1, 4)),
        adaptive=adaptive,
        adaptive_k=draw(st.sampled_from([0.0, 1.0, 3.0])),
        adaptive_floor=draw(st.sampled_from([0.05, 0.2, 0.5, 1.0])),
        adaptive_alpha=draw(st.sampled_from([0.05, 0.3, 1.0])),
        # Factors whose powers are exact floats: the model multiplies once, the breaker
        # step by step, and both must land on the same open_until.
        backoff_factor=draw(st.sampled_from([1.0, 1.5, 2.0, 3.0])),
        max_open_for=open_for * draw(st.sampled_from([1, 2, 5, 100])),
        healthy_after=draw(st.sampled_from([0.0, 1.0, 10.0, 100.0])),
    )


durations = st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0])
waits = st.sampled_from([0.0, 0.5, 1.0, 5.0, 30.0]) | st.floats(0.0, 40.0)


class BreakerMachine(RuleBasedStateMachine):
    """Calls succeed, fail or are slow and the clock moves; the breaker follows the model."""

    adaptive = False

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(1_000.0)
        self.seen: list[Transition] = []
        self.openings: list[tuple[State, float]] = []  # (from state, open_for) per trip

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        s = data.draw(breaker_settings(self.adaptive))
        self.model = Model(s, open_for=s.open_for)
        self.breaker = CircuitBreaker("a", s, clock=self.clock, on_transition=self.seen.append)

    @rule(failed=st.booleans(), duration=durations)
    def call(self, failed: bool, duration: float) -> None:
        now = self.clock.now
        allowed = self.breaker.allow()
        assert allowed == self.model.allow(now)
        if allowed:
            self._record(failed, duration)

    @rule(failed=st.booleans(), duration=durations)
    def late_result(self, failed: bool, duration: float) -> None:
        """An outcome with no allow() just before: a call let through long ago."""
        self._record(failed, duration)

    def _record(self, failed: bool, duration: float) -> None:
        state, trips = self.breaker.state, len(self.seen)
        # Only read statistics when not closed: reading rolls a time window forward.
        before = None if state is State.CLOSED else self.breaker.statistics()
        if failed:
            self.breaker.record_failure(duration)
        else:
            self.breaker.record_success(duration)
        self.model.record(self.clock.now, failed, duration)
        if before is not None:
            after = self.breaker.statistics()
            assert after.baseline_failure_rate == before.baseline_failure_rate
            assert after.baseline_variance == before.baseline_variance
        if len(self.seen) > trips and self.breaker.state is State.OPEN:
            self.openings.append((state, self.breaker.statistics().open_for))

    @rule()
    def check(self) -> None:
        now = self.clock.now
        if self.model.allow(now):
            self.breaker.check()
        else:
            with pytest.raises(CircuitOpen) as info:
                self.breaker.check()
            assert info.value.retry_after == self.model.retry_after(now)

    @rule(dt=waits)
    def wait(self, dt: float) -> None:
        self.clock.advance(dt)

    @rule()
    def compare_statistics(self) -> None:
        # A rule, not an invariant: statistics() rolls a time window forward, and the
        # breaker must also get it right when nobody looks.
        now, m, stats = self.clock.now, self.model, self.breaker.statistics()
        window = m.window(now)
        calls = len(window)
        assert stats.calls == calls
        assert stats.failures == sum(o.failed for o in window)
        assert stats.slow_calls == sum(o.slow for o in window)
        assert stats.consecutive_failures == m.consecutive
        assert stats.trips == m.trips
        assert stats.failure_rate_threshold == m.threshold(calls)
        assert stats.open_until == (m.open_until if m.state is State.OPEN else None)
        expected_open_for = m.open_for if m.state is State.OPEN else m.next_open_for(now)
        assert stats.open_for == expected_open_for
        if m.state is State.HALF_OPEN:
            assert (stats.trials_in_flight, stats.trial_successes) == (m.in_flight, m.successes)
        assert self.breaker.retry_after() == m.retry_after(now)
        if m.s.adaptive:
            assert (stats.baseline_failure_rate, stats.baseline_variance) == (m.mean, m.var)

    @precondition(lambda self: hasattr(self, "model"))
    @invariant()
    def same_state(self) -> None:
        assert self.breaker.state is self.model.state
        assert (self.seen[-1].to_state if self.seen else State.CLOSED) is self.model.state


class AdaptiveBreakerMachine(BreakerMachine):
    adaptive = True

    @precondition(lambda self: hasattr(self, "model"))
    @invariant()
    def threshold_and_open_duration_stay_in_bounds(self) -> None:
        s = self.model.s
        stats = self.breaker.statistics()
        assert s.adaptive_floor <= stats.failure_rate_threshold <= 1.0
        assert s.open_for <= stats.open_for <= s.max_open_for
        # open_until - now: the clock's float rounding may add a few ulps.
        assert self.breaker.retry_after() <= s.max_open_for * (1 + 1e-9)

    @precondition(lambda self: len(self.openings) >= 2)
    @invariant()
    def reopening_from_half_open_never_shortens_the_opening(self) -> None:
        (_, previous), (came_from, latest) = self.openings[-2:]
        if came_from is State.HALF_OPEN:
            assert latest >= previous
            assert latest == min(previous * self.model.s.backoff_factor, self.model.s.max_open_for)


for machine in (BreakerMachine, AdaptiveBreakerMachine):
    machine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestBreakerMachine = BreakerMachine.TestCase
TestAdaptiveBreakerMachine = AdaptiveBreakerMachine.TestCase

"""Rate limits: the window bound, all-or-nothing charging, penalties, refunds and settings."""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from swarmperf.core.errors import ConfigError, DispatchError, RateLimited, UnknownName
from swarmperf.resilience.ratelimit import (
    BucketStatistics,
    Limiter,
    LimitStatistics,
    RateLimit,
    TokenBucket,
)
from tests.conftest import FakeClock

GRACE = 1e-6  # seconds of refill a grant may run ahead by (see ratelimit._GRACE)
rates = st.floats(0.1, 1_000.0)
capacities = st.floats(1.0, 500.0)
# Large clock values: a monotonic clock reads days or months of uptime.
starts = st.sampled_from([0.0, 1e6, 3e7])


def _windows_respected(grants: Sequence[tuple[float, float]], rate: float, cap: float) -> None:
    """Every window [t_i, t_j] between two grants holds at most cap + rate * width tokens."""
    prefix = [0.0]
    for _, n in grants:
        prefix.append(prefix[-1] + n)
    for i, (start, _) in enumerate(grants):
        for j in range(i, len(grants)):
            taken = prefix[j + 1] - prefix[i]
            allowed = cap + rate * (grants[j][0] - start + GRACE)
            assert taken <= allowed * (1 + 1e-9), (i, j, taken, allowed)


@settings(max_examples=200, deadline=None)
@given(
    rate=rates,
    cap=capacities,
    start=starts,
    ops=st.lists(st.tuples(st.floats(0.0, 3.0), st.floats(0.0, 1.0), st.booleans()), max_size=60),
)
def test_grants_in_any_window_fit_capacity_plus_refill(
    rate: float, cap: float, start: float, ops: list[tuple[float, float, bool]]
) -> None:
    clock = FakeClock(start)
    bucket = TokenBucket(rate, cap, clock=clock)
    grants: list[tuple[float, float]] = []
    for dt, share, greedy in ops:
        clock.advance(dt)
        n = share * cap
        wait = bucket.try_acquire(n)
        if wait > 0.0 and greedy:
            # A greedy client comes back after exactly the wait it was told: it must succeed,
            # and it pushes the bucket to its limit.
            clock.advance(wait)
            wait = bucket.try_acquire(n)
            assert wait == 0.0
        if wait == 0.0:
            grants.append((clock.now, n))
    _windows_respected(grants, rate, cap)


@given(rate=rates, cap=capacities, start=starts, drained=st.floats(0.0, 1.0), share=st.floats())
def test_wait_is_neither_too_short_nor_too_long(
    rate: float, cap: float, start: float, drained: float, share: float
) -> None:
    share = min(abs(share), 1.0) if math.isfinite(share) else 1.0
    clock = FakeClock(start)
    bucket = TokenBucket(rate, cap, clock=clock)
    assert bucket.try_acquire(drained * cap) == 0.0
    n = share * cap
    wait = bucket.try_acquire(n)
    if wait == 0.0:
        assert n <= (1 - drained) * cap + rate * GRACE + 1e-9 * cap
        return
    assert wait == pytest.approx((n - (1 - drained) * cap) / rate, rel=1e-6, abs=1e-6)
    if wait > 1e-3:
        clock.advance(wait * 0.99)
        assert bucket.try_acquire(n) > 0.0
        clock.advance(wait * 0.01)
    else:
        clock.advance(wait)
    assert bucket.try_acquire(n) == 0.0


@given(
    seconds=st.floats(0.01, 100.0), probe=st.floats(0.0, 0.999), n=st.floats(0.0, 1.0), dt=starts
)
def test_penalise_blocks_until_the_deadline_and_not_beyond(
    seconds: float, probe: float, n: float, dt: float
) -> None:
    clock = FakeClock(dt)
    bucket = TokenBucket(2.0, 10.0, clock=clock)
    bucket.penalise(seconds)
    clock.advance(probe * seconds)
    deadline = dt + seconds
    assert bucket.available() == 0.0
    # The bucket is full, so the only wait is the penalty's.
    assert bucket.try_acquire(n) == pytest.approx(deadline - clock.now, rel=1e-9, abs=1e-6)
    clock.now = deadline
    assert bucket.try_acquire(n) == 0.0


def test_penalty_adds_any_shortfall_at_the_deadline(clock: FakeClock) -> None:
    bucket = TokenBucket(1.0, 10.0, clock=clock)
    assert bucket.try_acquire(10.0) == 0.0
    bucket.penalise(3.0)
    # At the deadline 3 tokens will have refilled; 5 need 2 s more.
    assert bucket.try_acquire(5.0) == pytest.approx(5.0)
    clock.advance(5.0)
    assert bucket.try_acquire(5.0) == 0.0


def test_a_shorter_penalty_does_not_cut_a_longer_one_short(clock: FakeClock) -> None:
    bucket = TokenBucket(1.0, 10.0, clock=clock)
    bucket.penalise(10.0)
    bucket.penalise(1.0)
    clock.advance(5.0)
    assert bucket.try_acquire() == pytest.approx(5.0)
    assert bucket.statistics().blocked_for == pytest.approx(5.0)


class BucketMachine(RuleBasedStateMachine):
    """Whatever happens, the bucket never holds more than its capacity, nor less than nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.bucket = TokenBucket(3.0, 12.0, clock=self.clock)

    @rule(dt=st.floats(0.0, 10.0))
    def wait(self, dt: float) -> None:
        self.clock.advance(dt)

    @rule(n=st.floats(0.0, 12.0))
    def acquire(self, n: float) -> None:
        self.bucket.try_acquire(n)

    @rule(n=st.floats(0.0, 100.0))
    def refund(self, n: float) -> None:
        self.bucket.refund(n)

    @rule(seconds=st.floats(0.0, 5.0))
    def penalise(self, seconds: float) -> None:
        self.bucket.penalise(seconds)

    @invariant()
    def within_capacity(self) -> None:
        assert 0.0 <= self.bucket.available() <= self.bucket.capacity


TestBucketMachine = BucketMachine.TestCase
TestBucketMachine.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)


def test_refund_gives_back_unused_tokens_up_to_capacity(clock: FakeClock) -> None:
    bucket = TokenBucket(1.0, 10.0, clock=clock)
    assert bucket.try_acquire(8.0) == 0.0
    bucket.refund(3.0)
    assert bucket.available() == pytest.approx(5.0)
    bucket.refund(100.0)
    assert bucket.available() == 10.0


def test_oversize_request_names_the_bucket_the_request_and_the_capacity() -> None:
    bucket = TokenBucket(1.0, 5.0, name="openai.tokens")
    with pytest.raises(ConfigError, match=r"'openai\.tokens'.*6.*at most 5 tokens"):
        bucket.try_acquire(6.0)
    assert bucket.available() == 5.0


@pytest.mark.parametrize("n", [-1.0, math.nan])
def test_negative_or_nan_requests_are_refused(n: float) -> None:
    with pytest.raises(ValueError, match="number >= 0"):
        TokenBucket(1.0, 5.0).try_acquire(n)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda b: b.refund(-1.0), "refund"),
        (lambda b: b.penalise(-1.0), "penalise"),
        (lambda b: b.penalise(math.inf), "penalise"),
    ],
)
def test_bad_refunds_and_penalties_are_refused(call: object, match: str) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match=match):
        call(TokenBucket(1.0, 5.0))


@pytest.mark.parametrize(
    ("rate", "capacity", "field"),
    [(0.0, 1.0, "b.rate"), (math.inf, 1.0, "b.rate"), (1.0, -1.0, "b.capacity")],
)
def test_bad_bucket_settings_are_rejected(rate: float, capacity: float, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TokenBucket(rate, capacity, name="b")
    assert info.value.field == field


# --- RateLimit settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({}, "rate_limits.openai", "requests_per_minute, tokens_per_minute or both"),
        ({"tokens_per_minute": -1.0}, "rate_limits.openai.tokens_per_minute", "> 0"),
        ({"requests_per_minute": 0.0}, "rate_limits.openai.requests_per_minute", "> 0"),
        ({"requests_per_minute": math.nan}, "rate_limits.openai.requests_per_minute", "> 0"),
        ({"tokens_per_minute": 1e3, "burst": 0.0}, "rate_limits.openai.burst", "> 0"),
        ({"requests_per_minute": 6.0, "burst": 5.0}, "rate_limits.openai.burst", "at least 10s"),
    ],
)
def test_bad_rate_limits_name_the_field(kwargs: dict[str, float], field: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        RateLimit(**kwargs, name="openai")
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


def test_default_burst_is_a_minute_but_at_least_one_request(clock: FakeClock) -> None:
    limiter = Limiter(
        {
            "fast": RateLimit(requests_per_minute=120, tokens_per_minute=6_000),
            "slow": RateLimit(requests_per_minute=0.5),
        },
        clock=clock,
    )
    stats = limiter.statistics()
    assert stats["fast"].requests is not None
    assert stats["fast"].requests.capacity == pytest.approx(120)
    assert stats["fast"].tokens is not None
    assert stats["fast"].tokens.capacity == pytest.approx(6_000)
    assert stats["slow"].requests is not None
    assert stats["slow"].requests.capacity == 1.0
    assert stats["slow"].tokens is None


# --- Limiter --------------------------------------------------------------------------------

limits = st.tuples(
    st.none() | st.floats(60.0, 6_000.0),
    st.none() | st.floats(600.0, 60_000.0),
    st.none() | st.floats(1.0, 60.0),
).map(
    lambda t: RateLimit(
        requests_per_minute=t[0] if t[0] is not None or t[1] is not None else 60.0,
        tokens_per_minute=t[1],
        burst=t[2],
    )
)
key_sets = st.sampled_from([("a",), ("b",), ("a", "b"), ("b", "a"), ("a", "a")])


def _levels(limiter: Limiter) -> dict[str, BucketStatistics]:
    levels = {}
    for stats in limiter.statistics().values():
        for bucket in (stats.requests, stats.tokens):
            if bucket is not None:
                levels[bucket.name] = bucket
    return levels


@settings(max_examples=150, deadline=None)
@given(
    a=limits,
    b=limits,
    calls=st.lists(st.tuples(st.floats(0.0, 2.0), key_sets, st.floats(0.0, 1.0)), max_size=40),
)
def test_limiter_charges_every_limit_or_none(
    a: RateLimit, b: RateLimit, calls: list[tuple[float, tuple[str, ...], float]]
) -> None:
    clock = FakeClock()
    limiter = Limiter({"a": a, "b": b}, clock=clock)
    for dt, keys, share in calls:
        clock.advance(dt)
        before = _levels(limiter)
        token_caps = [before[f"{k}.tokens"].capacity for k in keys if f"{k}.tokens" in before]
        tokens = share * min(token_caps, default=100.0)
        need = {f"{k}.requests": 1.0 for k in keys} | {f"{k}.tokens": tokens for k in keys}
        need = {name: n for name, n in need.items() if name in before}
        wait = limiter.try_acquire(keys, tokens)
        after = _levels(limiter)
        for name, stats in before.items():
            charged = stats.available - after[name].available
            expected = need.get(name, 0.0) if wait == 0.0 else 0.0
            assert charged == pytest.approx(expected, abs=stats.rate * 2 * GRACE + 1e-9)
        short = [name for name, n in need.items() if before[name].available + 1e-9 < n]
        if wait == 0.0:
            assert all(
                need[name] - before[name].available <= before[name].rate * GRACE * 1.01
                for name in short
            )
        else:
            assert short, "a refusal must come from a limit that is short"


def test_a_refusal_by_the_provider_leaves_the_agent_untouched(clock: FakeClock) -> None:
    limiter = Limiter(
        {
            "agent-1": RateLimit(requests_per_minute=60, burst=5),
            "openai": RateLimit(tokens_per_minute=600, burst=10),  # 100 tokens, 10 per second
        },
        clock=clock,
    )
    assert limiter.try_acquire(["agent-1", "openai"], 90) == 0.0
    assert limiter.try_acquire(["agent-1", "openai"], 30) == pytest.approx(2.0)
    agent = limiter.statistics()["agent-1"].requests
    assert agent is not None
    assert agent.available == pytest.approx(4.0)
    assert agent.refused == 0
    clock.advance(2.0)
    assert limiter.try_acquire(["agent-1", "openai"], 30) == 0.0


def test_penalised_provider_blocks_every_agent_until_its_deadline(clock: FakeClock) -> None:
    limiter = Limiter(
        {"a": RateLimit(requests_per_minute=600), "openai": RateLimit(requests_per_minute=600)},
        clock=clock,
    )
    limiter.penalise("openai", 5.0)
    assert limiter.try_acquire(["a", "openai"], 0) == pytest.approx(5.0)
    assert limiter.try_acquire(["a"], 0) == 0.0
    clock.advance(5.0)
    assert limiter.try_acquire(["a", "openai"], 0) == 0.0


def test_limiter_refund_returns_tokens_not_requests(clock: FakeClock) -> None:
    limiter = Limiter({"openai": RateLimit(100, tokens_per_minute=600, burst=10)}, clock=clock)
    assert limiter.try_acquire(["openai"], 80) == 0.0
    limiter.refund("openai", 50)
    stats = limiter.statistics()["openai"]
    assert stats.tokens is not None
    assert stats.tokens.available == pytest.approx(70)
    assert stats.requests is not None
    assert stats.requests.acquired == 1.0
    limiter.refund("openai", 1_000)
    tokens = limiter.statistics()["openai"].tokens
    assert tokens is not None
    assert tokens.available == tokens.capacity


def test_limiter_rejects_oversize_requests_and_unknown_keys(clock: FakeClock) -> None:
    limiter = Limiter({"openai": RateLimit(tokens_per_minute=600, burst=10)}, clock=clock)
    assert "openai" in limiter
    with pytest.raises(ConfigError, match=r"'openai\.tokens'.*101.*at most 100 tokens"):
        limiter.try_acquire(["openai"], 101)
    with pytest.raises(UnknownName, match="Choose one of: openai"):
        limiter.try_acquire(["opneai"], 1)
    assert limiter.statistics() == {
        "openai": LimitStatistics(
            "openai", None, BucketStatistics("openai.tokens", 10.0, 100.0, 100.0, 0.0, 0.0, 0)
        )
    }


# --- RateLimited ----------------------------------------------------------------------------


def test_rate_limited_names_the_provider_the_wait_and_the_fix() -> None:
    exc = RateLimited(retry_after=2.5, provider="openai")
    assert isinstance(exc, DispatchError)
    assert "'openai'" in str(exc)
    assert "2.5s" in str(exc)
    assert "rate_limits.openai" in str(exc)
    again = pickle.loads(pickle.dumps(exc))
    assert (again.retry_after, again.provider, str(again)) == (2.5, "openai", str(exc))


def test_rate_limited_without_details_still_reads_well() -> None:
    message = str(RateLimited())
    assert message.startswith("The provider throttled the request; it gave no retry time.")

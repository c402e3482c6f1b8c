"""Retry decisions: backoff bounds and jitter, which errors retry, per-kind policies, the budget."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError
from swarmperf.resilience.retry import (
    TRANSIENT_ERRORS,
    RetryBudget,
    RetryBudgetStatistics,
    RetryPolicies,
    RetryPolicy,
    should_retry,
)
from tests.conftest import FakeClock

policies = st.builds(
    RetryPolicy,
    base_delay=st.floats(0.0, 1.0),
    max_delay=st.floats(1.0, 60.0),
    multiplier=st.floats(1.0, 10.0),
)


@given(policy=policies, attempt=st.integers(1, 300), seed=st.integers(0, 2**32))
def test_backoff_stays_within_the_exponential_cap(
    policy: RetryPolicy, attempt: int, seed: int
) -> None:
    cap = min(policy.max_delay, policy.base_delay * policy.multiplier ** (attempt - 1))
    assert 0.0 <= policy.backoff(attempt, random.Random(seed)) <= cap


@given(policy=policies)
def test_without_jitter_the_delay_grows_to_the_cap_and_stays(policy: RetryPolicy) -> None:
    fixed = RetryPolicy(
        base_delay=policy.base_delay,
        max_delay=policy.max_delay,
        multiplier=policy.multiplier,
        jitter="none",
    )
    delays = [fixed.backoff(attempt, random.Random(0)) for attempt in range(1, 40)]
    assert delays[0] == fixed.base_delay
    assert delays == sorted(delays)
    assert delays[-1] <= fixed.max_delay


def test_backoff_doubles_then_stops_at_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0, jitter="none")
    rng = random.Random(0)
    assert [policy.backoff(a, rng) for a in range(1, 7)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )


def test_a_huge_attempt_number_does_not_overflow() -> None:
    policy = RetryPolicy(multiplier=10.0, jitter="none")
    assert policy.backoff(100_000, random.Random(0)) == policy.max_delay


def test_full_jitter_is_uniform_below_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=10.0)
    rng = random.Random(20240601)
    cap = policy.delay_cap(4)
    delays = [policy.backoff(4, rng) for _ in range(20_000)]
    assert cap == pytest.approx(0.8)
    # Uniform(0, cap): mean cap / 2, standard error cap / sqrt(12 * 20000) ~ 0.2% of the cap.
    assert statistics.fmean(delays) == pytest.approx(cap / 2, rel=0.02)
    assert sum(d < cap / 4 for d in delays) / len(delays) == pytest.approx(0.25, abs=0.02)
    assert max(delays) <= cap


def test_backoff_is_reproducible_for_a_seed() -> None:
    policy = RetryPolicy()
    first = [policy.backoff(a, random.Random(7)) for a in range(1, 10)]
    again = [policy.backoff(a, random.Random(7)) for a in range(1, 10)]
    other = [policy.backoff(a, random.Random(8)) for a in range(1, 10)]
    assert first == again
    assert first != other


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        RetryPolicy().backoff(0, random.Random(0))
    with pytest.raises(ValueError, match="from 1"):
        should_retry(RetryPolicy(), 0, "TimeoutError")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"max_attempts": 2.5}, "retry.max_attempts"),
        ({"max_attempts": True}, "retry.max_attempts"),
        ({"base_delay": -0.1}, "retry.base_delay"),
        ({"base_delay": float("nan")}, "retry.base_delay"),
        ({"base_delay": 2.0, "max_delay": 1.0}, "retry.max_delay"),
        ({"max_delay": float("inf")}, "retry.max_delay"),
        ({"multiplier": 0.5}, "retry.multiplier"),
        ({"jitter": "equal"}, "retry.jitter"),
        ({"retry_on": "TimeoutError"}, "retry.retry_on"),
        ({"retry_on": ()}, "retry.retry_on"),
        ({"retry_on": ("Timeout Error",)}, "retry.retry_on"),
    ],
)
def test_bad_policies_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert info.value.fix


def test_retry_on_a_mode_string_suggests_a_list() -> None:
    with pytest.raises(ConfigError, match=r"\['TimeoutError', 'RateLimited'\]"):
        RetryPolicy(retry_on="TimeoutError")  # type: ignore[arg-type]


def test_retry_on_a_list_becomes_a_tuple() -> None:
    policy = RetryPolicy(retry_on=["TimeoutError"])  # type: ignore[arg-type]
    assert policy.retry_on == ("TimeoutError",)
    assert hash(policy) == hash(RetryPolicy(retry_on=("TimeoutError",)))


@pytest.mark.parametrize(
    ("retry_on", "error_type", "expected"),
    [
        (TRANSIENT_ERRORS, "TimeoutError", True),
        (TRANSIENT_ERRORS, "RateLimited", True),
        (TRANSIENT_ERRORS, "AgentCrashed", True),
        (TRANSIENT_ERRORS, "ValueError", False),
        ("timeout", "TimeoutError", True),
        ("timeout", "RateLimited", False),
        ("failure", "TimeoutError", False),
        ("failure", "ValueError", True),
        ("any", "TimeoutError", True),
        ("any", "ValueError", True),
        (("KeyError",), "KeyError", True),
        (("KeyError",), "LookupError", False),
    ],
)
def test_which_errors_retry(retry_on: object, error_type: str, expected: bool) -> None:
    policy = RetryPolicy(retry_on=retry_on)  # type: ignore[arg-type]
    assert should_retry(policy, 1, error_type) is expected


def test_the_default_retries_transient_errors_until_attempts_run_out() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [should_retry(policy, a, "TimeoutError") for a in (1, 2, 3, 4)] == [
        True,
        True,
        False,
        False,
    ]
    assert not should_retry(RetryPolicy(max_attempts=1), 1, "TimeoutError")


def test_per_kind_policies_override_the_default() -> None:
    llm = RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=60.0)
    overrides = {"llm": llm}
    policies = RetryPolicies(RetryPolicy(), overrides)
    overrides["llm"] = RetryPolicy(max_attempts=1)  # the settings must not change with it
    assert policies.for_kind("llm") is llm
    assert policies.for_kind("sleep") == RetryPolicy()
    assert RetryPolicies().for_kind("anything") == RetryPolicy()


@pytest.mark.parametrize(
    ("per_kind", "field"),
    [({"": RetryPolicy()}, "retry.per_kind"), ({"llm": 3}, "retry.per_kind[llm]")],
)
def test_bad_per_kind_overrides_name_the_field(per_kind: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        RetryPolicies(per_kind=per_kind)  # type: ignore[arg-type]
    assert info.value.field == field


# --- RetryBudget ----------------------------------------------------------------------------

WINDOW = 10.0  # with quarter-second steps every time and slice boundary is an exact float


@settings(max_examples=200, deadline=None)
@given(
    ratio=st.sampled_from([0.0, 0.1, 0.25, 1.0]),
    floor=st.sampled_from([0.0, 0.2, 1.0]),
    start=st.sampled_from([0.0, 1e6 + 0.25]),
    steps=st.lists(
        st.tuples(st.integers(0, 24), st.integers(0, 30), st.integers(0, 8)), max_size=40
    ),
)
def test_retries_in_the_window_before_each_grant_fit_the_budget(
    ratio: float, floor: float, start: float, steps: list[tuple[int, int, int]]
) -> None:
    clock = FakeClock(start)
    budget = RetryBudget(ratio, floor, WINDOW, clock=clock)
    requests: list[float] = []
    grants: list[float] = []
    for quarters, n_requests, n_retries in steps:
        clock.advance(quarters / 4)
        for _ in range(n_requests):
            budget.record_request()
            requests.append(clock.now)
        for _ in range(n_retries):
            if budget.try_retry():
                grants.append(clock.now)
    for t in grants:
        # Retries counted over the closed window, requests over the half-open one: the
        # stricter reading of the documented guarantee on both sides.
        retried = sum(t - WINDOW <= g <= t for g in grants)
        earned = sum(t - WINDOW < r <= t for r in requests)
        assert retried <= ratio * earned + floor * WINDOW + 1e-9, (t, retried, earned)


def test_steady_load_gets_about_the_ratio(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.1, min_per_second=1.0, window=10.0, clock=clock)
    late = 0
    for tick in range(3_000):  # 100 requests per second for 30 s, every one failing
        clock.now = tick / 100
        budget.record_request()
        granted = budget.try_retry()
        late += granted and tick >= 2_000
    # In the last 10 s: about 10% of 1,000 requests plus the floor of 1 per second, less
    # the requests the bucketing forgets early (up to a tenth of the window).
    assert 90 <= late <= 110


def test_a_quiet_budget_allows_the_floor_then_recovers(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0.5, window=10.0, clock=clock)
    assert sum(budget.try_retry() for _ in range(20)) == 5
    clock.advance(5.0)
    assert not budget.try_retry()
    budget.record_request()
    budget.record_request()
    assert budget.try_retry()
    assert not budget.try_retry()
    clock.advance(11.0)
    assert sum(budget.try_retry() for _ in range(20)) == 5


def test_budget_statistics(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0.1, window=10.0, clock=clock)
    for _ in range(4):
        budget.record_request()
    assert [budget.try_retry() for _ in range(4)] == [True, True, True, False]
    assert budget.statistics() == RetryBudgetStatistics(
        requests=4, retries=3, available=0.0, total_requests=4, granted=3, denied=1
    )
    clock.advance(30.0)
    stats = budget.statistics()
    assert (stats.requests, stats.retries) == (0, 0)
    assert stats.available == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("ratio", "min_per_second", "window", "field"),
    [
        (-0.1, 1.0, 10.0, "retry.budget.ratio"),
        (float("nan"), 1.0, 10.0, "retry.budget.ratio"),
        (0.1, -1.0, 10.0, "retry.budget.min_per_second"),
        (0.1, 1.0, 0.0, "retry.budget.window"),
        (0.1, 1.0, float("inf"), "retry.budget.window"),
    ],
)
def test_bad_budgets_name_the_field(
    ratio: float, min_per_second: float, window: float, field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RetryBudget(ratio, min_per_second, window)
    assert info.value.field == field

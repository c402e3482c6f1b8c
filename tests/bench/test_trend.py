"""Mann-Kendall trend test with Theil-Sen slope: trends found, noise left alone."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.bench.trend import mann_kendall
from swarmperf.core.errors import ConfigError


@settings(max_examples=50, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(30, 120),
    slope=st.floats(0.1, 2.0),
    up=st.booleans(),
)
def test_a_linear_trend_is_detected_with_its_slope(
    seed: int, n: int, slope: float, up: bool
) -> None:
    true_slope = slope if up else -slope
    y = true_slope * np.arange(n) + np.random.default_rng(seed).normal(0, 1, n)
    trend = mann_kendall([float(v) for v in y])
    assert trend.direction == ("increasing" if up else "decreasing")
    assert trend.p_value is not None
    assert trend.p_value < 0.05
    assert trend.tau is not None
    assert (trend.tau > 0) == up
    assert trend.slope_low is not None
    assert trend.slope_high is not None
    assert trend.slope_low - 0.05 <= true_slope <= trend.slope_high + 0.05


def test_noise_has_a_false_alarm_rate_near_alpha() -> None:
    alarms = 0
    seeds = range(400)
    for seed in seeds:
        y = np.random.default_rng(seed).normal(0, 1, 40)
        alarms += mann_kendall([float(v) for v in y], alpha=0.05).direction != "none"
    assert 0.01 <= alarms / len(seeds) <= 0.09


def test_ties_are_corrected_and_match_scipy_kendall_tau_b() -> None:
    from scipy import stats

    y = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 5.0, 4.0, 6.0, 6.0]
    trend = mann_kendall(y)
    expected = stats.kendalltau(np.arange(len(y)), y).statistic
    assert trend.tau == pytest.approx(float(expected))
    assert trend.direction == "increasing"


def test_constant_and_short_series() -> None:
    flat = mann_kendall([3.0] * 10)
    assert flat.direction == "none"
    assert flat.p_value == 1.0
    assert flat.tau is None
    assert flat.slope == 0.0
    short = mann_kendall([1.0, 2.0])
    assert short.n == 2
    assert short.p_value is None
    assert short.slope is None
    assert short.direction == "none"


def test_bad_input_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"series\[1\]"):
        mann_kendall([1.0, math.nan, 2.0])
    with pytest.raises(ConfigError, match="alpha"):
        mann_kendall([1.0, 2.0, 3.0], alpha=0.0)

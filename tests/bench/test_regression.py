"""The regression gate: a planted slowdown is flagged, an A/A comparison is not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.bench.regression import compare_samples
from swarmperf.core.errors import ConfigError


def _latencies(seed: int, n: int, factor: float = 1.0) -> list[float]:
    # Skewed like real timings: lognormal around 10 ms.
    return [
        float(v) for v in np.random.default_rng(seed).lognormal(math.log(10.0), 0.1, n) * factor
    ]


@settings(max_examples=50, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31))
def test_a_twenty_percent_slowdown_is_a_regression(seed: int) -> None:
    result = compare_samples(
        "latency_ms", _latencies(seed, 30), _latencies(seed + 1, 30, 1.2), higher_is_better=False
    )
    assert result.regression
    assert result.direction == "worse"
    assert result.change is not None
    assert 0.05 <= result.change < 0.4
    assert result.hodges_lehmann is not None
    assert result.hodges_lehmann > 0
    assert result.effect_size is not None
    assert result.effect_size > 0.3
    assert "regression" in result.reason
    assert "p=" in result.reason


def test_a_to_a_comparisons_are_not_regressions() -> None:
    flagged = 0
    seeds = range(300)
    for seed in seeds:
        result = compare_samples(
            "latency_ms",
            _latencies(2 * seed, 30),
            _latencies(2 * seed + 1, 30),
            higher_is_better=False,
        )
        flagged += result.regression
        assert result.direction != "worse" or result.p_value is not None
    assert flagged / len(seeds) <= 0.01  # alpha 0.01, and |change| must also reach 5%


def test_the_same_speed_up_is_better_not_a_regression() -> None:
    result = compare_samples(
        "throughput", _latencies(1, 30), _latencies(2, 30, 1.2), higher_is_better=True
    )
    assert result.direction == "better"
    assert not result.regression


def test_a_small_significant_change_is_below_the_threshold() -> None:
    result = compare_samples(
        "latency_ms",
        _latencies(3, 2000),
        _latencies(4, 2000, 1.02),
        higher_is_better=False,
        min_change=0.05,
    )
    assert result.direction == "worse"
    assert not result.regression
    assert "threshold" in result.reason


@settings(max_examples=50, deadline=None, derandomize=True)
@given(
    a=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30),
    b=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30),
)
def test_swapping_the_samples_mirrors_shift_and_effect(a: list[float], b: list[float]) -> None:
    ab = compare_samples("m", a, b, higher_is_better=True)
    ba = compare_samples("m", b, a, higher_is_better=True)
    assert ab.effect_size is not None
    assert ba.effect_size is not None
    assert -1.0 <= ab.effect_size <= 1.0
    assert ab.effect_size == pytest.approx(-ba.effect_size, abs=1e-9)
    assert ab.p_value == pytest.approx(ba.p_value)
    assert ab.hodges_lehmann == pytest.approx(-(ba.hodges_lehmann or 0.0), abs=1e-6)
    assert not (ab.regression and ba.regression)


def test_empty_samples_say_why() -> None:
    result = compare_samples("m", [], [1.0, 2.0], higher_is_better=True)
    assert result.p_value is None
    assert result.change is None
    assert not result.regression
    assert "baseline sample is empty" in result.reason


def test_zero_baseline_median_decides_on_significance() -> None:
    result = compare_samples("errors", [0.0] * 20, [3.0] * 20, higher_is_better=False)
    assert result.change is None
    assert result.regression


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match="alpha"):
        compare_samples("m", [1.0], [1.0], higher_is_better=True, alpha=1.0)
    with pytest.raises(ConfigError, match="min_change"):
        compare_samples("m", [1.0], [1.0], higher_is_better=True, min_change=-0.1)
    with pytest.raises(ConfigError, match=r"current\[0\]"):
        compare_samples("m", [1.0], [math.inf], higher_is_better=True)

"""Change-point detection: planted steps found, noise left alone, PELT exact, bad input named."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.bench.changepoint import (
    DEFAULT_CONFIG,
    METHOD_CONFIGS,
    DetectorConfig,
    _Cost,
    detect_changes,
    detect_history_regressions,
    pelt,
    penalty_for,
    prepare,
    segment_cost,
)
from swarmperf.core.errors import ConfigError, UnknownName

FAST_METHODS = ["default", "binseg", "pelt", "cusum"]


def _step_series(seed: int, n: int, position: int, step: float) -> list[float]:
    y = np.random.default_rng(seed).normal(0.0, 1.0, n)
    y[position:] += step
    return [float(v) for v in y]


@pytest.mark.parametrize("method", FAST_METHODS)
@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(60, 200),
    where=st.floats(0.2, 0.8),
    size=st.floats(5.0, 10.0),  # in noise standard deviations
    up=st.booleans(),
)
def test_a_planted_step_is_found_with_its_direction(
    method: str, seed: int, n: int, where: float, size: float, up: bool
) -> None:
    position = int(n * where)
    step = size if up else -size
    found = detect_changes(_step_series(seed, n, position, step), method=method)
    near = [cp for cp in found if abs(cp.index - position) <= 3]
    assert near, f"no change near {position}: {found}"
    cp = near[0]
    assert cp.direction == ("up" if up else "down")
    assert cp.confidence > 0.99
    assert math.copysign(1.0, cp.magnitude) == math.copysign(1.0, step)
    assert abs(cp.magnitude - step) < 2.0  # mean after - mean before, near the planted step


def test_edivisive_finds_a_step_and_is_reproducible_with_its_seed() -> None:
    series = _step_series(3, 80, 30, 5.0)
    first = detect_changes(series, method="edivisive", seed=11)
    assert first == detect_changes(series, method="edivisive", seed=11)
    assert [cp.index for cp in first if abs(cp.index - 30) <= 2]
    assert all(cp.direction == "up" for cp in first if abs(cp.index - 30) <= 2)
    assert all(0.0 <= cp.confidence <= 1.0 for cp in first)


@pytest.mark.parametrize("method", FAST_METHODS)
def test_pure_noise_rarely_gives_a_confident_change(method: str) -> None:
    seeds = range(200)
    alarms = 0
    for seed in seeds:
        y = np.random.default_rng(seed).normal(100.0, 5.0, 100)
        found = detect_changes([float(v) for v in y], method=method)
        alarms += any(cp.confidence >= 0.95 for cp in found)
    # At 95% confidence a calibrated test would alarm on about 5% of the series.
    assert alarms / len(seeds) <= 0.05


def test_missing_values_are_interpolated_and_indices_kept() -> None:
    y: list[float | None] = list(_step_series(5, 120, 70, 6.0))
    for i in (10, 11, 40, 69, 100, 119):
        y[i] = None
    found = detect_changes(y)
    assert [cp.index for cp in found if abs(cp.index - 70) <= 2]
    assert prepare([None, 1.0, None, 3.0, None]).tolist() == [1.0, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("series", [[], [1.0], [None, None, None], [4.0] * 50])
def test_degenerate_series_have_no_change(series: list[float | None]) -> None:
    for method in FAST_METHODS:
        assert detect_changes(series, method=method) == []


def test_history_regressions_are_the_worse_direction_only() -> None:
    rng = np.random.default_rng(9)
    latency = np.concatenate([rng.normal(100, 2, 40), rng.normal(120, 2, 30)])
    found = detect_history_regressions([float(v) for v in latency], higher_is_better=False)
    assert [cp.index for cp in found] == [40]
    assert found[0].direction == "up"
    assert found[0].relative == pytest.approx(0.2, abs=0.03)
    assert found[0].confidence >= 0.95
    # The same jump in a throughput history is an improvement: not a regression.
    assert detect_history_regressions([float(v) for v in latency], higher_is_better=True) == []
    # And a drop in throughput is one.
    dropped = detect_history_regressions([float(-v) for v in latency], higher_is_better=True)
    assert [cp.index for cp in dropped] == [40]


def _optimal_partition_cost(c: _Cost, n: int, penalty: float, min_size: int) -> float:
    """Plain O(n^2) optimal partitioning, no pruning: what PELT must equal."""
    f = [math.inf] * (n + 1)
    f[0] = -penalty
    for t in range(min_size, n + 1):
        for s in range(t - min_size + 1):
            if s == 0 or s >= min_size:
                f[t] = min(f[t], f[s] + c.one(s, t) + penalty)
    return f[n]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(10, 60),
    cost=st.sampled_from(["mean", "linear", "hybrid", "meanvar"]),
    penalty=st.floats(0.5, 20.0),
    slope_cost=st.floats(0.0, 10.0),
    min_size=st.integers(2, 5),
)
def test_pelt_pruning_keeps_the_optimal_segmentation(
    seed: int, n: int, cost: str, penalty: float, slope_cost: float, min_size: int
) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1, n) + np.repeat(rng.normal(0, 3, 4), math.ceil(n / 4))[:n]
    y += np.arange(n) * rng.normal(0, 0.2)
    points = pelt(
        y, cost=cost, penalty=penalty, min_size=min_size, scale="resid", slope_cost=slope_cost
    )
    resid = y - np.polyval(np.polyfit(np.arange(n), y, 1), np.arange(n))
    c = _Cost(y, cost, float(np.std(resid)), slope_cost)
    bounds = [0, *points, n]
    assert all(b - a >= min_size for a, b in itertools.pairwise(bounds))
    achieved = sum(c.one(a, b) for a, b in itertools.pairwise(bounds)) + penalty * len(points)
    assert achieved == pytest.approx(_optimal_partition_cost(c, n, penalty, min_size), abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_the_public_cost_and_penalty_are_what_the_default_minimises(seed: int) -> None:
    # Another implementation of the search (the benchmark runs ruptures' this way) given
    # `segment_cost` and `penalty_for` must find the default's optimum.
    rng = np.random.default_rng(seed)
    y = np.concatenate([rng.normal(0, 1, 20), rng.normal(4, 1, 15), 4 + 0.3 * np.arange(15)])
    found = [cp.index for cp in detect_changes(y.tolist())]
    cost = segment_cost(y, DEFAULT_CONFIG)
    penalty = penalty_for(y, DEFAULT_CONFIG)
    bounds = [0, *found, len(y)]
    achieved = sum(cost.one(a, b) for a, b in itertools.pairwise(bounds)) + penalty * len(found)
    optimum = _optimal_partition_cost(cost, len(y), penalty, DEFAULT_CONFIG.min_size)
    assert achieved == pytest.approx(optimum, abs=1e-6)
    assert found  # the step is there to be found


def test_bad_input_and_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"series\[2\]"):
        detect_changes([1.0, 2.0, math.inf])
    with pytest.raises(UnknownName, match="method"):
        detect_changes([1.0, 2.0], method="nope")
    with pytest.raises(ConfigError, match="penalty"):
        detect_changes([1.0, 2.0], config=DetectorConfig(penalty=-1.0))
    with pytest.raises(ConfigError, match="alpha"):
        detect_changes([1.0, 2.0], config=DetectorConfig(method="cusum", alpha=1.5))
    with pytest.raises(UnknownName, match="cost"):
        detect_changes([1.0, 2.0], config=DetectorConfig(cost="poisson"))
    with pytest.raises(ConfigError, match="min_confidence"):
        detect_history_regressions([1.0, 2.0], higher_is_better=True, min_confidence=2.0)


@pytest.mark.parametrize("method", sorted(METHOD_CONFIGS))
def test_every_shipped_configuration_finds_an_obvious_step(method: str) -> None:
    config = METHOD_CONFIGS[method]
    assert config.method == method
    found = detect_changes(_step_series(1, 40, 20, 8.0), config=config)
    assert [(cp.index, cp.direction, cp.method) for cp in found] == [(20, "up", method)]

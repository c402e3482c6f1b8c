"""The quantile sketch: its stated relative-error bound, merging, memory and the sliding window."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError
from swarmperf.monitor.sketch import QuantileSketch, SlidingRing, WindowedSketch

QS = (0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)


def _heavy_tailed(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "pareto":
        return (rng.pareto(1.2, n) + 1.0) * 1e-3  # shape 1.2: a very heavy tail
    if kind == "lognormal":
        return rng.lognormal(-5.0, 2.0, n)
    return rng.exponential(0.01, n) - 0.005  # both signs, and values around zero


def _within_bound(sketch: QuantileSketch, data: np.ndarray, q: float) -> None:
    exact = float(np.quantile(data, q, method="lower"))
    estimate = sketch.quantile(q)
    assert estimate is not None
    if abs(exact) <= 1e-9:
        assert abs(estimate) <= 1e-9
    else:
        assert abs(estimate - exact) <= sketch.alpha * abs(exact) * (1 + 1e-9), (q, exact)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["pareto", "lognormal", "signed"]),
    n=st.integers(1, 3000),
    seed=st.integers(0, 2**32 - 1),
    alpha=st.sampled_from([0.005, 0.001, 0.02]),
)
def test_every_quantile_is_within_alpha_of_the_exact_one(
    kind: str, n: int, seed: int, alpha: float
) -> None:
    data = _heavy_tailed(kind, n, seed)
    sketch = QuantileSketch(alpha)
    for x in data:
        sketch.observe(float(x))
    for q in QS:
        _within_bound(sketch, data, q)
    assert sketch.count == n
    assert sketch.min == data.min()
    assert sketch.max == data.max()
    assert sketch.sum == pytest.approx(float(data.sum()), rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e12, 1e12, allow_nan=False), min_size=1, max_size=300))
def test_the_bound_holds_for_any_finite_values(values: list[float]) -> None:
    sketch = QuantileSketch()
    for x in values:
        sketch.observe(x)
    for q in QS:
        _within_bound(sketch, np.array(values), q)


def test_the_default_guarantee_is_within_one_percent() -> None:
    # alpha = 0.005 is the stated default: every quantile within 0.5%, so within 1%.
    assert QuantileSketch().alpha == 0.005


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(1e-6, 1e6, allow_nan=False), min_size=1, max_size=400),
    cuts=st.lists(st.integers(0, 400), max_size=4),
)
def test_merged_parts_equal_one_sketch_of_everything(values: list[float], cuts: list[int]) -> None:
    whole = QuantileSketch()
    for x in values:
        whole.observe(x)
    bounds = sorted({0, len(values), *(c for c in cuts if c <= len(values))})
    merged = QuantileSketch()
    for lo, hi in itertools.pairwise(bounds):
        part = QuantileSketch()
        for x in values[lo:hi]:
            part.observe(x)
        merged.merge(part)
    assert merged.quantiles(QS) == whole.quantiles(QS)
    assert (merged.count, merged.min, merged.max) == (whole.count, whole.min, whole.max)
    assert merged.sum == pytest.approx(whole.sum)


def test_merging_sketches_of_different_accuracy_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"alpha"):
        QuantileSketch(0.01).merge(QuantileSketch(0.005))


def test_memory_is_bounded_by_the_value_range_not_the_count() -> None:
    sketch = QuantileSketch()
    rng = np.random.default_rng(1)
    for x in rng.lognormal(0.0, 3.0, 50_000):
        sketch.observe(float(x))
    gamma = (1 + sketch.alpha) / (1 - sketch.alpha)
    bound = math.log(sketch.max / sketch.min) / math.log(gamma) + 2
    assert sketch.buckets <= bound
    assert sketch.buckets < 5000


def test_an_empty_sketch_has_no_quantiles() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.5) is None
    assert sketch.mean is None


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 2.0])
def test_a_bad_alpha_names_the_field(alpha: float) -> None:
    with pytest.raises(ConfigError, match=r"alpha"):
        QuantileSketch(alpha)


def test_a_quantile_outside_zero_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"quantile"):
        QuantileSketch().quantile(1.5)


def test_the_window_forgets_whole_slices_as_time_moves_on() -> None:
    window = WindowedSketch(window=10.0, slices=10)
    for t in range(20):  # one observation per second, value = its time
        window.observe(float(t + 1), float(t))
    snap = window.snapshot(19.5)
    # Slices 10..19 remain: the values observed at t = 10..19.
    assert snap.count == 10
    assert snap.min == 11.0
    assert snap.max == 20.0
    assert window.snapshot(100.0).count == 0


def test_the_window_ignores_observations_older_than_it() -> None:
    window = WindowedSketch(window=1.0, slices=4)
    window.observe(1.0, 10.0)
    window.observe(2.0, 5.0)  # five seconds before the newest: out of the window
    assert window.snapshot(10.0).count == 1


def test_a_ring_makes_each_slice_once_and_reports_its_span() -> None:
    made: list[int] = []

    def factory() -> int:
        made.append(len(made))
        return made[-1]

    ring: SlidingRing[int] = SlidingRing(0.5, 4, factory)
    assert ring.at(0.1) == ring.at(0.4) == 0
    assert ring.at(0.6) == 1
    start, items = ring.window(1.0)
    assert start == pytest.approx(-0.5)
    assert items == [0, 1]
    assert ring.at(-10.0) is None


def test_a_ring_needs_a_positive_width_and_slices() -> None:
    with pytest.raises(ConfigError, match=r"window"):
        SlidingRing(0.0, 4, int)
    with pytest.raises(ConfigError, match=r"slices"):
        SlidingRing(1.0, 0, int)

"""Every detector's contract (scores in [0, 1], no look-ahead) and planted anomalies found."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.analysis.anomaly import (
    DETECTORS,
    Detector,
    Ensemble,
    KnnConformal,
    RobustZ,
    SeasonalResidual,
    detector_factory,
)
from swarmperf.analysis.anomaly.base import Recorded, Ring
from swarmperf.analysis.anomaly.ensemble import DEFAULT_WEIGHTS
from swarmperf.analysis.anomaly.seasonal import dominant_period
from swarmperf.core.errors import ConfigError, UnknownName
from tests.analysis.anomaly.conftest import seasonal_series

NAMES = sorted(DETECTORS)


def run(detector: Detector, values: np.ndarray) -> np.ndarray:
    return np.array([detector.process(float(x), 300.0 * i) for i, x in enumerate(values)])


series_strategy = st.lists(
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=160, max_size=320
)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=8, deadline=None)
@given(values=series_strategy, cut=st.integers(1, 159))
def test_scores_lie_in_0_1_and_never_look_ahead(name: str, values: list[float], cut: int) -> None:
    whole = run(detector_factory(name)(), np.asarray(values))
    prefix = run(detector_factory(name)(), np.asarray(values[:cut]))
    assert np.all((whole >= 0.0) & (whole <= 1.0))
    np.testing.assert_array_equal(whole[:cut], prefix)


@pytest.mark.parametrize("name", NAMES)
def test_score_one_changes_nothing(name: str) -> None:
    values = seasonal_series(400, seed=3)
    a, b = detector_factory(name)(), detector_factory(name)()
    for i, x in enumerate(values):
        a.score_one(float(x) + 5.0, 300.0 * i)  # asked about another value first
        assert a.process(float(x), 300.0 * i) == b.process(float(x), 300.0 * i)


@pytest.mark.parametrize("name", NAMES)
def test_learn_then_score_matches_process(name: str) -> None:
    values = seasonal_series(300, seed=4)
    a, b = detector_factory(name)(), detector_factory(name)()
    for i, x in enumerate(values):
        s = a.score_one(float(x), 300.0 * i)
        a.learn_one(float(x), 300.0 * i)
        assert s == b.process(float(x), 300.0 * i)


@pytest.mark.parametrize("name", NAMES)
def test_a_planted_spike_stands_out(name: str) -> None:
    values = seasonal_series(700, seed=1)
    values[600] += 6.0
    scores = run(detector_factory(name)(), values)
    normal = np.delete(scores[300:], 300)
    assert scores[600] > np.quantile(normal, 0.99)


@pytest.mark.parametrize("name", NAMES)
def test_a_level_shift_stands_out(name: str) -> None:
    values = seasonal_series(700, seed=2)
    values[600:] += 5.0
    scores = run(detector_factory(name)(), values)
    assert scores[600:610].max() > np.quantile(scores[300:600], 0.99)


@pytest.mark.parametrize("detector", [SeasonalResidual(), Ensemble()], ids=["seasonal", "ensemble"])
def test_a_broken_cycle_stands_out_though_every_value_is_ordinary(detector: Detector) -> None:
    values = seasonal_series(900, period=48, seed=5, noise=0.1)
    # One cycle's crest goes missing: the values stay within the usual range, only the
    # shape of the cycle is wrong.
    crest = slice(816, 830)
    values[crest] = 10.0
    scores = run(detector, values)
    assert scores[crest].max() > np.quantile(scores[400:816], 0.99)


def test_robust_z_ignores_outliers_it_learnt() -> None:
    detector = RobustZ(window=50, warmup=10)
    for i in range(50):
        detector.learn_one(1.0 + 0.01 * (i % 5))
    for _ in range(2):
        detector.learn_one(1000.0)  # a few outliers move neither median, MAD nor the floor
    assert detector.score_one(1.02) < 0.5
    assert detector.score_one(2.0) > 0.99


def test_dominant_period_finds_the_cycle() -> None:
    values = seasonal_series(1000, period=37, seed=6, noise=0.2)
    assert dominant_period(values, 4, 500, 0.4) == 37
    flat_noise = np.random.default_rng(0).normal(size=1000)
    assert dominant_period(flat_noise, 4, 500, 0.4) is None


def test_knn_scores_a_repeated_pattern_low_and_a_new_one_high() -> None:
    detector = KnnConformal()
    values = seasonal_series(600, period=20, seed=7, noise=0.05)
    scores = run(detector, values)
    assert np.median(scores[300:]) < 0.9
    assert detector.score_one(25.0) == 1.0


def test_ring_keeps_the_last_values() -> None:
    ring = Ring(3)
    for x in range(10):
        ring.append(float(x))
    assert ring.view().tolist() == [7.0, 8.0, 9.0]
    assert ring.last() == 9.0
    assert len(ring) == 3


def test_unknown_detector_lists_the_choices() -> None:
    with pytest.raises(UnknownName, match="ensemble"):
        detector_factory("htm")


def test_ensemble_rejects_bad_weights() -> None:
    with pytest.raises(ConfigError, match="weights"):
        Ensemble(members=[RobustZ()], weights=[1.0, 2.0])
    with pytest.raises(ConfigError, match="weights"):
        Ensemble(members=[RobustZ()], weights=[0.0])
    with pytest.raises(ConfigError, match="refractory"):
        Ensemble(refractory=-1)


def spikes(gap: int) -> np.ndarray:
    """A quiet cycle, then two spikes `gap` points apart, each beyond every value before it."""
    values = seasonal_series(700, seed=8)
    values[600] += 20.0
    values[600 + gap] += 40.0
    return values


@pytest.mark.parametrize("refractory", [0, 10])
def test_one_anomaly_raises_one_alarm_within_the_refractory_span(refractory: int) -> None:
    near = run(Ensemble(refractory=refractory), spikes(5))
    assert near[600] >= 0.5
    # The second spike is red too, but within `refractory` points of the first it is reported
    # as yellow.
    assert bool(near[605] >= 0.5) == (refractory < 5)
    far = run(Ensemble(refractory=refractory), spikes(30))
    assert far[600] >= 0.5
    assert far[630] >= 0.5


def test_replayed_members_give_the_live_ensembles_scores() -> None:
    values = seasonal_series(600, seed=9)
    values[450] += 8.0
    live = run(Ensemble(), values)
    members = [RobustZ(), SeasonalResidual(), KnnConformal()]
    recorded = [run(m, values) for m in members]
    replayed = run(Ensemble([Recorded(r) for r in recorded], DEFAULT_WEIGHTS), values)
    np.testing.assert_array_equal(live, replayed)


def test_a_member_of_weight_zero_is_not_run() -> None:
    ensemble = Ensemble(members=[RobustZ(), KnnConformal()], weights=[1.0, 0.0])
    assert [type(m) for m in ensemble.members] == [RobustZ]

"""Forecasters see only the past, and give sensible quantiles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.autoscale.forecast import (
    FORECASTERS,
    Combination,
    HoltWinters,
    Lstm,
    SeasonalNaive,
    Theta,
    make_forecaster,
    origins_for,
    rolling_origin,
)
from swarmperf.core.errors import ConfigError, UnknownName

series = st.lists(st.integers(0, 500), min_size=30, max_size=60)


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(
    past=series,
    future=st.lists(st.integers(0, 500), min_size=3, max_size=10),
    other=st.lists(st.integers(0, 500), min_size=3, max_size=10),
    name=st.sampled_from(sorted(FORECASTERS)),
)
def test_a_forecast_does_not_change_when_the_future_does(
    past: list[int], future: list[int], other: list[int], name: str
) -> None:
    # Rolling-origin evaluation hands each forecaster the series up to the origin: two series
    # that agree up to there get the same forecasts from it, whatever follows.
    origin = len(past)
    a = np.array(past + future, dtype=float)
    b = np.array(past + other, dtype=float)
    first = FORECASTERS[name]().fit(a[:origin]).forecast(2, [0.5, 0.9])
    second = FORECASTERS[name]().fit(b[:origin]).forecast(2, [0.5, 0.9])
    assert first == second
    # And the evaluation's error at that origin uses only the future for scoring.
    eva = rolling_origin(a, FORECASTERS[name], horizon=2, origins=[origin])
    evb = rolling_origin(b, FORECASTERS[name], horizon=2, origins=[origin])
    if a[origin : origin + 2].tolist() == b[origin : origin + 2].tolist():
        assert eva.mae == evb.mae


def test_rolling_origin_updates_never_run_past_the_origin() -> None:
    y = np.arange(200, dtype=float) % 17
    with_updates = rolling_origin(y, HoltWinters, horizon=2, origins=[100, 120, 140], refit_every=3)
    changed = y.copy()
    changed[141:] = 9999.0  # after the last origin's horizon starts
    changed_eval = rolling_origin(
        changed, HoltWinters, horizon=1, origins=[100, 120, 140], refit_every=3
    )
    plain = rolling_origin(y, HoltWinters, horizon=1, origins=[100, 120, 140], refit_every=3)
    assert changed_eval.mae == plain.mae
    assert with_updates.origins == 3


def test_seasonal_naive_repeats_the_last_season_and_scores_one() -> None:
    y = [1.0, 5.0, 9.0] * 10
    model = SeasonalNaive(season=3).fit(y)
    assert model.point(4) == [1.0, 5.0, 9.0, 1.0]
    evaluation = rolling_origin(y, lambda: SeasonalNaive(3), horizon=2, origins=[20, 25], season=3)
    assert evaluation.mae == 0.0


def test_holt_winters_updates_as_statsmodels_fits() -> None:
    # Its own recursion, fed the next values, forecasts what a fit on them would, closely.
    rng = np.random.default_rng(1)
    y = 50 + 10 * np.sin(np.arange(300) * 2 * math.pi / 24) + rng.normal(0, 1, 300)
    model = HoltWinters(season=24).fit(y[:276])
    model.update(y[276:].tolist())
    refit = HoltWinters(season=24).fit(y)
    ours = model.forecast(3, [0.5])[0.5]
    theirs = refit.forecast(3, [0.5])[0.5]
    assert ours == pytest.approx(theirs, rel=0.05)


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_quantiles_are_ordered_and_not_negative(name: str) -> None:
    rng = np.random.default_rng(2)
    y = rng.poisson(40, 80).astype(float)
    paths = FORECASTERS[name]().fit(y).forecast(3, [0.1, 0.5, 0.9])
    assert sorted(paths) == [0.1, 0.5, 0.9]
    assert all(len(path) == 3 for path in paths.values())
    for h in range(3):
        assert 0.0 <= paths[0.1][h] <= paths[0.5][h] <= paths[0.9][h]


def test_bad_requests_are_config_errors() -> None:
    with pytest.raises(UnknownName):
        make_forecaster("prophet")
    with pytest.raises(ConfigError):
        SeasonalNaive().fit([1.0])
    with pytest.raises(ConfigError):
        SeasonalNaive().fit([1.0, 2.0, 3.0]).forecast(0, [0.5])
    assert origins_for(10, first=5, horizon=2, count=3) == [5, 7, 8]
    with pytest.raises(UnknownName):
        Combination(members=["theta", "prophet"])
    with pytest.raises(UnknownName):
        Combination(members=["theta", "combination"])
    with pytest.raises(ConfigError):
        Combination(members=["theta"])


def test_the_spec_names_every_forecaster() -> None:
    from typing import get_args

    from swarmperf.spec.autoscale import ForecasterName

    assert set(get_args(ForecasterName)) == {"default", *FORECASTERS}


def test_theta_updates_as_statsmodels_fits() -> None:
    # Its own recursion, fed the next values, forecasts what statsmodels' fit on them does.
    import warnings

    from statsmodels.tsa.forecasting.theta import ThetaModel

    rng = np.random.default_rng(5)
    t = np.arange(300)
    y = 50 + 0.05 * t + 10 * np.sin(t * 2 * math.pi / 24) + rng.normal(0, 1, 300)
    model = Theta(season=24).fit(y[:276])
    model.update(y[276:].tolist())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ThetaModel(y, period=24, method="additive").fit().forecast(3)
    assert Theta(season=24).fit(y).point(3) == pytest.approx(list(theirs), rel=1e-9)
    # The update leaves b0 and alpha as fitted on the shorter history: close, not equal.
    assert model.point(3) == pytest.approx(list(theirs), rel=0.02)


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_a_flat_history_forecasts_its_level(name: str) -> None:
    paths = FORECASTERS[name]().fit([5.0] * 12).forecast(2, [0.1, 0.5, 0.9])
    for q in (0.1, 0.5, 0.9):
        assert paths[q] == pytest.approx([5.0, 5.0], abs=0.5)


def test_theta_carries_half_the_trend_forward() -> None:
    # Smoothing alone would forecast the last value; theta = 2 adds half the fitted slope.
    y = 10.0 + 2.0 * np.arange(100, dtype=np.float64)
    ahead = Theta().fit(y).point(2)
    assert ahead[0] > y[-1]
    assert ahead[1] - ahead[0] == pytest.approx(1.0)


@pytest.mark.slow
def test_a_combination_is_the_median_of_its_members_quantile_by_quantile() -> None:
    rng = np.random.default_rng(6)
    y = rng.poisson(40, 120).astype(float)
    members = ("seasonal-naive", "holt-winters", "theta")
    combined = Combination(members=members).fit(y[:100])
    combined.update(y[100:].tolist())
    paths = []
    for name in members:
        model = FORECASTERS[name]().fit(y[:100])
        model.update(y[100:].tolist())
        paths.append(model.forecast(3, [0.1, 0.5, 0.9]))
    got = combined.forecast(3, [0.1, 0.5, 0.9])
    for q in (0.1, 0.5, 0.9):
        assert got[q] == pytest.approx(sorted_middle([p[q] for p in paths]))


def sorted_middle(paths: list[list[float]]) -> list[float]:
    return [sorted(step)[len(step) // 2] for step in zip(*paths, strict=True)]


def test_sarima_updates_as_statsmodels_filters() -> None:
    # Its own ARMA recursion, fed new values, forecasts as statsmodels' filter does with the
    # same parameters.
    import warnings

    from statsmodels.tsa.statespace.sarimax import SARIMAX

    from swarmperf.autoscale.forecast import Sarima

    rng = np.random.default_rng(3)
    y = rng.poisson(50, 300).astype(float)
    model = Sarima().fit(y[:280])
    model.update(y[280:].tolist())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = SARIMAX(y[:280], order=(1, 0, 1), trend="c").fit(disp=False)
        theirs = fitted.append(y[280:]).get_forecast(2).predicted_mean
    assert model.forecast(2, [0.5])[0.5] == pytest.approx(list(theirs), rel=0.02)


def test_the_lstm_is_deterministic_for_a_seed_and_learns_from_the_past() -> None:
    # A level with noise around it: the naive forecast carries each draw's noise forward
    # (errors of about 1.13 sigma), a model that learned the level does not (about 0.8).
    rng = np.random.default_rng(4)
    y = 100 + rng.normal(0, 10, 400)
    first = Lstm(seed=1).fit(y[:300]).forecast(3, [0.1, 0.5, 0.9])
    again = Lstm(seed=1).fit(y[:300]).forecast(3, [0.1, 0.5, 0.9])
    other = Lstm(seed=2).fit(y[:300]).forecast(3, [0.1, 0.5, 0.9])
    assert first == again
    assert first != other
    origins = list(range(300, 398, 7))
    evaluation = rolling_origin(y, Lstm, horizon=2, origins=origins, refit_every=5)
    assert evaluation.mase < 0.9
    assert Lstm().fit(y[:300]).parameters == Lstm().parameters_for()


def test_lstm_updates_carry_its_state_forward() -> None:
    # Fed the next values, it forecasts from them: a jump in the level moves the forecast.
    y = np.full(120, 50.0) + np.tile([0.0, 2.0, -2.0], 40)
    model = Lstm(seed=0).fit(y)
    before = model.forecast(1, [0.5])[0.5][0]
    model.update([150.0] * 5)
    after = model.forecast(1, [0.5])[0.5][0]
    assert after > before + 20

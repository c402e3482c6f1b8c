"""Forecasters of tasks per interval behind one interface, and their rolling-origin evaluation.

`fit(history)` learns from the past only; `forecast(horizon, quantiles)` gives, for each
quantile, the next `horizon` intervals; `update(values)` adds observations without fitting
again (cheap, so a policy can forecast every interval and refit now and then).

- `seasonal-naive`: the value one season ago (the naive forecast when there is no season);
  quantiles from the spread of its own past errors.
- `holt-winters`: additive exponential smoothing with a damped trend or none (the lower AIC),
  and an additive season when the history holds two cycles of one (statsmodels
  `ExponentialSmoothing`). Its
  parameters and states come from statsmodels; `update` runs the same recursions by hand,
  because statsmodels' results cannot take new observations without fitting again.
- `sarima`: SARIMA(1,0,1)(0,1,0)_m when there is a season m (an ARMA on the seasonal
  differences, which stays cheap for m = 1440), else ARIMA(1,1,1) or ARMA(1,1) with a
  constant (the lower AIC), estimated by statsmodels `SARIMAX`; quantiles from the forecast
  variance. Like Holt-Winters, it updates and forecasts by its own recursion.

- `lstm`: a one-layer LSTM of about 1,300 weights in numpy (forward, backpropagation through
  time, Adam; seeded), trained on the history given to `fit` only; quantiles from the one-step
  errors on a held-back part of that history. No PyTorch: its Linux wheel is gigabytes, and
  a model this small trains in a second or two on a CPU with numpy.

- `theta`: the Theta method (simple exponential smoothing plus half the linear trend, on the
  deseasonalised series; statsmodels `ThetaModel`), updated by its own recursion.
- `combination`: the median of the other five's forecasts, quantile by quantile.

`benchmarks/forecast_accuracy.py` measures them all. The season is the strongest period the
periodogram and the ACF agree on in the history given to `fit` (`patterns.season_of`), unless
set.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import stats

from swarmperf.autoscale.patterns import season_of
from swarmperf.core.errors import ConfigError, UnknownName

FloatArray = npt.NDArray[np.float64]
History = Sequence[float] | FloatArray

# statsmodels fits are O(history): a bounded window keeps each fit under a few seconds. Four
# days of minutes holds two daily cycles and more.
MAX_FIT = 5760
# The LSTM corrects an exponentially smoothed level with this weight on the newest count.
LEVEL_ALPHA = 0.5


class Forecaster(Protocol):
    name: str

    def fit(self, history: History) -> Forecaster: ...
    def update(self, values: Sequence[float]) -> None: ...
    def forecast(self, horizon: int, quantiles: Sequence[float]) -> dict[float, list[float]]: ...


def _check(horizon: int, quantiles: Sequence[float]) -> None:
    if horizon < 1:
        raise ConfigError("horizon", horizon, "Use a number of intervals >= 1.")
    for q in quantiles:
        if not 0 < q < 1:
            raise ConfigError("quantiles", q, "Use quantiles in (0, 1).")


def _window(history: History) -> FloatArray:
    y = np.asarray(history, dtype=np.float64)[-MAX_FIT:]
    if len(y) < 2:
        raise ConfigError("history", len(y), "A forecaster needs at least two intervals.")
    if not np.isfinite(y).all():
        raise ConfigError("history", "non-finite values", "Use finite counts.")
    return y


def _season(y: FloatArray, season: int | None) -> int:
    m = season if season is not None else season_of(y)
    # A season is usable only with two full cycles behind it.
    return m if 1 < m <= len(y) // 2 else 1


class SeasonalNaive:
    name = "seasonal-naive"

    def __init__(self, season: int | None = None) -> None:
        self.season = season
        self._y: list[float] = []
        self._m = 1
        self._errors: FloatArray = np.zeros(1)

    def fit(self, history: History) -> SeasonalNaive:
        y = _window(history)
        self._m = _season(y, self.season)
        self._y = y.tolist()
        m = self._m
        self._errors = y[m:] - y[:-m] if len(y) > m else np.zeros(1)
        return self

    def update(self, values: Sequence[float]) -> None:
        self._y.extend(float(v) for v in values)
        if len(self._y) > 2 * MAX_FIT:
            del self._y[: len(self._y) - MAX_FIT]

    def point(self, horizon: int) -> list[float]:
        m, y = self._m, self._y
        return [y[len(y) - m + (h - 1) % m] for h in range(1, horizon + 1)]

    def forecast(self, horizon: int, quantiles: Sequence[float]) -> dict[float, list[float]]:
        _check(horizon, quantiles)
        base = self.point(horizon)
        out: dict[float, list[float]] = {}
        middle = float(np.median(self._errors))
        for q in quantiles:
            # The point forecast is the median; the other quantiles sit as far from it as the
            # past errors' quantiles sit from theirs.
            shift = float(np.quantile(self._errors, q)) - middle
            out[q] = [
                max(0.0, b + shift * math.sqrt(1 + (h // self._m))) for h, b in enumerate(base)
            ]
        return out


class HoltWinters:
    name = "holt-winters"

    def __init__(self, season: int | None = None) -> None:
        self.season = season
        self._m = 1
        self.alpha = self.beta = self.gamma = 0.0
        self.phi = 1.0
        self.level = self.trend = 0.0
        self.seasonals: list[float] = []  # the last m seasonal states, oldest first
        self.sigma = 0.0

    def fit(self, history: History) -> HoltWinters:
        from statsmodels.tools.sm_exceptions import ConvergenceWarning
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        y = _window(history)
        m = _season(y, self.season)
        seasonal = m > 1
        with warnings.catch_warnings():
            # A flat or short history fits fine but warns; the fit is still what it is.
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            # With a damped trend or without one: the lower AIC decides, as ETS model
            # selection does (a trend extrapolates bursts on series that have none).
            result = None
            for trend in ("add", None):
                fitted = ExponentialSmoothing(
                    y,
                    trend=trend,
                    damped_trend=trend is not None,
                    seasonal="add" if seasonal else None,
                    seasonal_periods=m if seasonal else None,
                    # Estimating m initial seasonal states is slow for m = 1440: the
                    # heuristic (a decomposition of the first cycles) needs none.
                    initialization_method="heuristic"
                    if seasonal and len(y) >= 2 * m + 10
                    else "estimated",
                ).fit()
                if result is None or fitted.aic < result.aic:
                    result = fitted
            assert result is not None
        params = result.params
        self._m = m if seasonal else 1
        self.alpha = float(params["smoothing_level"])
        self.beta = float(np.nan_to_num(params["smoothing_trend"]))
        self.gamma = float(np.nan_to_num(params["smoothing_seasonal"])) if seasonal else 0.0
        self.phi = float(np.nan_to_num(params["damping_trend"], nan=1.0))
        self.level = float(result.level[-1])
        self.trend = float(result.trend[-1]) if result.trend is not None else 0.0
        self.seasonals = [float(s) for s in result.season[-m:]] if seasonal else [0.0]
        resid = np.asarray(result.resid, dtype=np.float64)
        self.sigma = float(np.std(resid[np.isfinite(resid)])) if len(resid) else 0.0
        return self

    def update(self, values: Sequence[float]) -> None:
        a, b, g, phi = self.alpha, self.beta, self.gamma, self.phi
        for value in values:
            s_old = self.seasonals[0] if self._m > 1 else 0.0
            prev_level, prev_trend = self.level, self.trend
            self.level = a * (value - s_old) + (1 - a) * (prev_level + phi * prev_trend)
            self.trend = b * (self.level - prev_level) + (1 - b) * phi * prev_trend
            if self._m > 1:
                s_new = g * (value - prev_level - phi * prev_trend) + (1 - g) * s_old
                self.seasonals.pop(0)
                self.seasonals.append(s_new)

    def point(self, horizon: int) -> list[float]:
        out = []
        damp = 0.0
        for h in range(1, horizon + 1):
            damp += self.phi**h
            s = self.seasonals[(h - 1) % self._m] if self._m > 1 else 0.0
            out.append(self.level + damp * self.trend + s)
        return out

    def forecast(self, horizon: int, quantiles: Sequence[float]) -> dict[float, list[float]]:
        _check(horizon, quantiles)
        return _smoothing_quantiles(self.point(horizon), self.sigma, self.alpha, quantiles)


def _smoothing_quantiles(
    base: Sequence[float], sigma: float, alpha: float, quantiles: Sequence[float]
) -> dict[float, list[float]]:
    """Normal quantiles around `base` with simple exponential smoothing's variance h steps
    ahead (`sigma` the one-step error, `alpha` the level's smoothing), floored at 0."""
    out: dict[float, list[float]] = {}
    for q in quantiles:
        z = float(stats.norm.ppf(q))
        out[q] = [max(0.0, v + z * sigma * math.sqrt(1 + h * alpha**2)) for h, v in enumerate(base)]
    return out


def _kpss_p(y: FloatArray) -> float:
    """The KPSS test's p-value for stationarity around a level (small: it wanders)."""
    from statsmodels.tools.sm_exceptions import InterpolationWarning
    from statsmodels.tsa.stattools import kpss

    with warnings.catch_warnings():
        # The p-value is read off a table and clipped to [0.01, 0.1]; that is enough here.
        warnings.simplefilter("ignore", InterpolationWarning)
        # statsmodels 0.15 announces a new return type; the tuple's p-value is the same.
        warnings.simplefilter("ignore", FutureWarning)
        return float(kpss(y, regression="c", nlags="auto")[1])


class Sarima:
    """An ARMA(1,1) on the series made stationary: differenced once, or seasonally, or as is.

    statsmodels `SARIMAX` estimates it; `update` and `forecast` run the ARMA recursion
    (`w_t = c + phi w_(t-1) + e_t + theta e_(t-1)`) by hand, because statsmodels' results take
    new observations only by filtering again, about 15 ms a step, which a policy forecasting
    every interval of a two-month trace cannot pay.
    """

    name = "sarima"

    def __init__(self, season: int | None = None) -> None:
        self.season = season
        self._m = 1
        self._d = 0  # 1: modelled on first differences
        self._y: list[float] = []
        self.const = self.phi = self.theta = 0.0
        self.sigma = 0.0
        self._w = 0.0  # the latest value of the modelled (differenced) series
        self._e = 0.0  # and its one-step error

    def _diff(self, i: int) -> float:
        """The modelled series at position i of the history."""
        y = self._y
        if self._m > 1:
            return y[i] - y[i - self._m]
        if self._d:
            return y[i] - y[i - 1]
        return y[i]

    def fit(self, history: History) -> Sarima:
        from statsmodels.tools.sm_exceptions import ConvergenceWarning
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        full = _window(history)
        m = _season(full, self.season)
        self._m = m
        self._y = full.tolist()
        # SARIMA(1,0,1)(0,1,0)_m when there is a season, which stays cheap for m = 1440; else
        # a level that wanders (ARIMA(1,1,1)) or one that returns to its mean (ARMA(1,1) with
        # a constant), as the KPSS test of stationarity says (auto-ARIMA's choice of d).
        # Its fit is O(n) per step of the optimiser: the last 2,000 points are plenty.
        recent = full[-2000:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            if m > 1:
                target, self._d, trend = (full[m:] - full[:-m])[-2000:], 0, "n"
            elif len(recent) >= 8 and np.ptp(recent) > 0 and _kpss_p(recent) < 0.05:
                target, self._d, trend = np.diff(recent), 1, "n"
            else:
                target, self._d, trend = recent, 0, "c"
            if len(target) < 3:
                raise ConfigError("history", len(full), "SARIMA needs at least four intervals.")
            result = SARIMAX(target, order=(1, 0, 1), trend=trend).fit(disp=False)
        params = dict(zip(result.model.param_names, np.asarray(result.params), strict=True))
        self.const = float(params.get("intercept", 0.0))
        self.phi = float(params["ar.L1"])
        self.theta = float(params["ma.L1"])
        self.sigma = math.sqrt(max(float(params["sigma2"]), 0.0))
        self._w = float(target[-1])
        resid = np.asarray(result.resid, dtype=np.float64)
        self._e = float(resid[-1]) if len(resid) and np.isfinite(resid[-1]) else 0.0
        return self

    def update(self, values: Sequence[float]) -> None:
        for value in values:
            predicted = self.const + self.phi * self._w + self.theta * self._e
            self._y.append(float(value))
            w = self._diff(len(self._y) - 1)
            self._e = w - predicted
            self._w = w
        if len(self._y) > 2 * MAX_FIT:
            del self._y[: len(self._y) - MAX_FIT]

    def forecast(self, horizon: int, quantiles: Sequence[float]) -> dict[float, list[float]]:
        _check(horizon, quantiles)
        # The modelled series ahead, and its psi weights for the variance.
        ws: list[float] = []
        w_prev, e_prev = self._w, self._e
        for h in range(horizon):
            w = self.const + self.phi * w_prev + (self.theta * e_prev if h == 0 else 0.0)
            ws.append(w)
            w_prev = w
        psi = [1.0]
        for j in range(1, horizon):
            psi.append(self.phi ** (j - 1) * (self.phi + self.theta))
        point: list[float] = []
        spread: list[float] = []
        m, y = self._m, self._y
        for h in range(horizon):
            if m > 1:
                ref = y[len(y) - m + h] if h < m else point[h - m]
                point.append(ref + ws[h])
                spread.append(math.sqrt(sum(p * p for p in psi[: h + 1])))
            elif self._d:
                point.append((point[-1] if point else y[-1]) + ws[h])
                cum = [sum(psi[: j + 1]) for j in range(h + 1)]
                spread.append(math.sqrt(sum(c * c for c in cum)))
            else:
                point.append(ws[h])
                spread.append(math.sqrt(sum(p * p for p in psi[: h + 1])))
        out: dict[float, list[float]] = {}
        for q in quantiles:
            z = float(stats.norm.ppf(q))
            out[q] = [max(0.0, p + z * self.sigma * s) for p, s in zip(point, spread, strict=True)]
        return out


class Lstm:
    """A small LSTM (one layer, `hidden` cells) that forecasts the next interval from the
    series so far, written in numpy: forward, backpropagation through time, Adam.

    Inputs at each step are the count (scaled by the history's mean) and, with a season m,
    the count m - 1 steps back (what seasonal naive would say for the next step). The output
    is a change to the latest count, trained by absolute error, so the point forecast is a
    conditional median (what MAE rewards) and an untrained model is the naive forecast.
    Training sees the history given to `fit` only, with all but its last `holdout` share;
    the held-back part's one-step errors give the quantiles (a spread that grows with the
    step ahead as a random walk's does). Longer horizons feed the median back in.
    Deterministic for a seed: the same history gives the same forecasts.
    """

    name = "lstm"

    def __init__(
        self,
        season: int | None = None,
        *,
        hidden: int = 16,
        chunk: int = 48,
        steps: int = 250,
        batch: int = 32,
        learning_rate: float = 0.01,
        holdout: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.season = season
        self.hidden = hidden
        self.chunk = chunk
        self.steps = steps
        self.batch = batch
        self.learning_rate = learning_rate
        self.holdout = holdout
        self.seed = seed
        self._m = 1
        self._scale = 1.0
        self._z: list[float] = []  # the scaled series, the last m at least
        self._h: FloatArray = np.zeros(hidden)
        self._c: FloatArray = np.zeros(hidden)
        self._level = 0.0  # the smoothed scaled count
        self._residuals: FloatArray = np.zeros(1)
        self.weights: dict[str, FloatArray] = {}

    @property
    def parameters(self) -> int:
        return sum(int(w.size) for w in self.weights.values())

    def parameters_for(self) -> int:
        """The weights' count at these settings (inputs 3, `hidden` cells, one output)."""
        n = self.hidden
        return 3 * 4 * n + n * 4 * n + 4 * n + n + 1

    # -- the network -----------------------------------------------------------------------

    def _init(self, rng: np.random.Generator) -> None:
        n, k = self.hidden, 3
        bound = 1 / math.sqrt(n)
        bias = np.zeros(4 * n)
        bias[n : 2 * n] = 1.0  # forget gates open at first: remember by default
        self.weights = {
            "wx": rng.uniform(-bound, bound, (k, 4 * n)),
            "wh": rng.uniform(-bound, bound, (n, 4 * n)),
            "b": bias,
            "wo": rng.uniform(-bound, bound, n) * 0.1,
            "bo": np.zeros(1),
        }

    def _inputs(self, z: FloatArray) -> FloatArray:
        """Per step t: the count at t, the count one season before t + 1, and the smoothed
        level at t (which the output corrects)."""
        m = self._m
        ref = z.copy()
        if m > 1:
            ref[m - 1 :] = z[: len(z) - m + 1]
        level = np.empty_like(z)
        current = float(z[0]) if len(z) else 0.0
        for t, value in enumerate(z.tolist()):
            current += LEVEL_ALPHA * (value - current)
            level[t] = current
        return np.stack([z, ref, level], axis=-1)

    def _step(
        self, x: FloatArray, h: FloatArray, c: FloatArray
    ) -> tuple[FloatArray, FloatArray, tuple[FloatArray, ...]]:
        w, n = self.weights, self.hidden
        a = x @ w["wx"] + h @ w["wh"] + w["b"]
        i = 1 / (1 + np.exp(-a[..., :n]))
        f = 1 / (1 + np.exp(-a[..., n : 2 * n]))
        o = 1 / (1 + np.exp(-a[..., 2 * n : 3 * n]))
        g = np.tanh(a[..., 3 * n :])
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        h_new = o * tc
        return h_new, c_new, (x, h, c, i, f, o, g, tc)

    def _predict(self, h: FloatArray, level: FloatArray | float) -> FloatArray:
        return np.asarray(h @ self.weights["wo"] + self.weights["bo"][0] + level)

    def _gradients(self, x: FloatArray, target: FloatArray) -> dict[str, FloatArray]:
        """Mean absolute error's gradients over a batch of chunks: x (B, T, 2), target (B, T)."""
        w, n = self.weights, self.hidden
        batch, length = target.shape
        h = np.zeros((batch, n))
        c = np.zeros((batch, n))
        caches = []
        outputs = np.empty((batch, length))
        hs = []
        for t in range(length):
            h, c, cache = self._step(x[:, t], h, c)
            caches.append(cache)
            hs.append(h)
            outputs[:, t] = self._predict(h, x[:, t, 2])
        dp = np.sign(outputs - target) / target.size
        grads = {k: np.zeros_like(v) for k, v in w.items()}
        dh_next = np.zeros((batch, n))
        dc_next = np.zeros((batch, n))
        for t in reversed(range(length)):
            xt, h_prev, c_prev, i, f, o, g, tc = caches[t]
            grads["wo"] += hs[t].T @ dp[:, t]
            grads["bo"] += dp[:, t].sum()
            dh = np.outer(dp[:, t], w["wo"]) + dh_next
            do = dh * tc
            dc = dh * o * (1 - tc * tc) + dc_next
            da = np.concatenate(
                [
                    dc * g * i * (1 - i),
                    dc * c_prev * f * (1 - f),
                    do * o * (1 - o),
                    dc * i * (1 - g * g),
                ],
                axis=1,
            )
            grads["wx"] += xt.T @ da
            grads["wh"] += h_prev.T @ da
            grads["b"] += da.sum(axis=0)
            dh_next = da @ w["wh"].T
            dc_next = dc * f
        return grads

    def _train(self, z: FloatArray, rng: np.random.Generator) -> None:
        x_all = self._inputs(z[:-1])
        target_all = z[1:]
        length = min(self.chunk, len(target_all))
        starts = np.arange(0, len(target_all) - length + 1)
        moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in self.weights.items()}
        beta1, beta2 = 0.9, 0.999
        # A short history trains for fewer steps: two per transition, up to `steps`, so a model
        # with little to learn from stays near its smoothed level instead of fitting noise.
        for step in range(1, min(self.steps, 2 * len(target_all)) + 1):
            chosen = rng.choice(starts, size=min(self.batch, len(starts)), replace=False)
            index = chosen[:, None] + np.arange(length)[None, :]
            grads = self._gradients(x_all[index], target_all[index])
            norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
            clip = min(1.0, 1.0 / norm) if norm > 0 else 1.0
            for key, grad in grads.items():
                m1, m2 = moments[key]
                m1 *= beta1
                m1 += (1 - beta1) * grad * clip
                m2 *= beta2
                m2 += (1 - beta2) * (grad * clip) ** 2
                m1_hat = m1 / (1 - beta1**step)
                m2_hat = m2 / (1 - beta2**step)
                self.weights[key] -= self.learning_rate * m1_hat / (np.sqrt(m2_hat) + 1e-8)

    def _run(self, z: FloatArray) -> FloatArray:
        """Run the state over `z` from zero; the one-step predictions of z[1:], kept."""
        h = np.zeros(self.hidden)
        c = np.zeros(self.hidden)
        x = self._inputs(z)
        predictions = np.empty(max(len(z) - 1, 0))
        for t in range(len(z)):
            h, c, _ = self._step(x[t], h, c)
            if t < len(z) - 1:
                predictions[t] = float(self._predict(h, x[t, 2]))
        self._h, self._c = h, c
        self._level = float(x[-1, 2])
        return predictions

    def _advance(
        self, z: list[float], level: float, h: FloatArray, c: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        """One step on the latest scaled count z[-1]: the new level and state."""
        value = z[-1]
        level += LEVEL_ALPHA * (value - level)
        ref = z[-self._m] if self._m > 1 and len(z) >= self._m else value
        h, c, _ = self._step(np.array([value, ref, level]), h, c)
        return level, h, c

    # -- the Forecaster interface ------------------------------------------------------------

    def fit(self, history: History) -> Lstm:
        y = _window(history)
        self._m = _season(y, self.season)
        self._scale = max(float(np.mean(np.abs(y))), 1e-9)
        z = y / self._scale
        rng = np.random.default_rng(self.seed)
        self._init(rng)
        held = int(len(z) * self.holdout) if len(z) >= 50 else 0
        self._train(z[: len(z) - held], rng)
        predictions = self._run(z)
        errors = z[1:] - predictions
        # The held-back part's errors, unless it is too short to say much.
        self._residuals = errors[-held:] if held >= 10 else errors
        self._z = z[-max(self._m, 1) :].tolist()
        return self

    def update(self, values: Sequence[float]) -> None:
        for value in values:
            self._z.append(float(value) / self._scale)
            self._level, self._h, self._c = self._advance(self._z, self._level, self._h, self._c)
            if len(self._z) > 2 * max(self._m, 1):
                del self._z[: len(self._z) - max(self._m, 1)]

    def point(self, horizon: int) -> list[float]:
        h, c, level = self._h, self._c, self._level
        z = list(self._z)
        out: list[float] = []
        for _ in range(horizon):
            nxt = float(self._predict(h, level))
            out.append(nxt * self._scale)
            z.append(nxt)
            level, h, c = self._advance(z, level, h, c)
        return out

    def forecast(self, horizon: int, quantiles: Sequence[float]) -> dict[float, list[float]]:
        _check(horizon, quantiles)
        base = self.point(horizon)
        middle = float(np.median(self._residuals))
        out: dict[float, list[float]] = {}
        for q in quantiles:
            shift = (float(np.quantile(self._residuals, q)) - middle) * self._scale
            out[q] = [max(0.0, b + shift * math.sqrt(1 + h)) for h, b in enumerate(base)]
        return out


class Theta:
    """The Theta method (Assimakopoulos and Nikolopoulos, 2000), the M3 competition's winner:
    simple exponential smoothing of the deseasonalised series plus half its linear trend.

    statsmodels `ThetaModel` fits it (the OLS slope `b0`, the smoothing constant `alpha`, the
    additive season when its ACF test finds one at the season `patterns.season_of` gives);
    `update` and `forecast` run the same recursion by hand, like Holt-Winters'. Quantiles are
    normal, from the spread of its one-step errors on the history, widening as simple
    exponential smoothing's do.
    """

    name = "theta"

    def __init__(self, season: int | None = None) -> None:
        self.season = season
        self.alpha = self.b0 = 0.0
        self.level = 0.0  # the smoothed deseasonalised level: the next step's SES forecast
        self.nobs = 0
        self.seasonals: list[float] = [0.0]  # the next m intervals' seasonal terms, in order
        self.sigma = 0.0

    def fit(self, history: History) -> Theta:
        from statsmodels.tsa.forecasting.theta import ThetaModel

        y = _window(history)
        if np.ptp(y) == 0:
            # A flat history: statsmodels takes the series itself for its regression's
            # constant and finds a slope that is not there.
            self.alpha, self.b0, self.level, self.sigma = 1.0, 0.0, float(y[-1]), 0.0
            self.seasonals, self.nobs = [0.0], len(y)
            return self
        m = _season(y, self.season)
        with warnings.catch_warnings():
            # A short history fits fine but warns; the fit is still what it is.
            warnings.simplefilter("ignore")
            result = ThetaModel(
                y, period=m if m > 1 else None, deseasonalize=m > 1, method="additive"
            ).fit()
            parts = result.forecast_components(max(m, 1))
        self.b0 = float(result.params["b0"])
        self.alpha = float(result.params["alpha"])
        self.level = float(parts["ses"].iloc[0])
        self.seasonals = [float(v) for v in parts["seasonal"]]
        self.nobs = len(y)
        # The season at each past interval: the terms ahead repeat every m.
        k = len(self.seasonals)
        past = np.array([self.seasonals[(t - len(y)) % k] for t in range(len(y))])
        adjusted = y - past
        level, errors = float(adjusted[0]), []
        for value in adjusted[1:].tolist():
            errors.append(value - level)
            level += self.alpha * (value - level)
        self.sigma = float(np.std(errors)) if errors else 0.0
        return self

    def update(self, values: Sequence[float]) -> None:
        for value in values:
            adjusted = float(value) - self.seasonals[0]
            self.level += self.alpha * (adjusted - self.level)
            self.seasonals.append(self.seasonals.pop(0))
            self.nobs += 1

    def point(self, horizon: int) -> list[float]:
        a, k = self.alpha, len(self.seasonals)
        # statsmodels' trend term at theta = 2: half the slope, from where SES stands.
        start = 1 / a - (1 - a) ** self.nobs / a if a > 0 else 0.0
        return [
            self.level + 0.5 * self.b0 * (h + start) + self.seasonals[h % k] for h in range(horizon)
        ]

    def forecast(self, horizon: int, quantiles: Sequence[float]) -> dict[float, list[float]]:
        _check(horizon, quantiles)
        return _smoothing_quantiles(self.point(horizon), self.sigma, self.alpha, quantiles)


class Combination:
    """The median of several forecasters' forecasts, quantile by quantile.

    Combining forecasts is the most reliable gain in the forecasting competitions (M3, M4):
    the median of a few different methods is rarely the worst of them on any series. Each
    quantile is the median of the members' same quantile, so the quantiles stay ordered (a
    median of ordered values is ordered) and never negative. Members fit, update and
    forecast on the same history; the members are every other forecaster here.
    """

    name = "combination"
    MEMBERS: tuple[str, ...] = ("seasonal-naive", "holt-winters", "sarima", "lstm", "theta")

    def __init__(self, season: int | None = None, members: Sequence[str] = MEMBERS) -> None:
        if len(members) < 2:
            raise ConfigError("members", list(members), "Combine two forecasters or more.")
        for member in members:
            if member not in FORECASTERS or member == self.name:
                raise UnknownName("members", member, [f for f in FORECASTERS if f != self.name])
        self.season = season
        self.members = tuple(members)
        self._models: list[Forecaster] = []

    def fit(self, history: History) -> Combination:
        self._models = [_member(name, self.season).fit(history) for name in self.members]
        return self

    def update(self, values: Sequence[float]) -> None:
        for model in self._models:
            model.update(values)

    def forecast(self, horizon: int, quantiles: Sequence[float]) -> dict[float, list[float]]:
        _check(horizon, quantiles)
        paths = [model.forecast(horizon, quantiles) for model in self._models]
        return {q: [float(v) for v in np.median([p[q] for p in paths], axis=0)] for q in quantiles}


def _member(name: str, season: int | None) -> Forecaster:
    member: Forecaster = _CLASSES[name](season)
    return member


FORECASTERS: dict[str, Callable[[], Forecaster]] = {
    "seasonal-naive": SeasonalNaive,
    "holt-winters": HoltWinters,
    "sarima": Sarima,
    "lstm": Lstm,
    "theta": Theta,
    "combination": Combination,
}
# The members a combination can have, made with a season.
_CLASSES: dict[str, Callable[[int | None], Forecaster]] = {
    "seasonal-naive": SeasonalNaive,
    "holt-winters": HoltWinters,
    "sarima": Sarima,
    "lstm": Lstm,
    "theta": Theta,
}
# benchmarks/forecast_accuracy.py, two steps ahead: of the forecasters that model the series
# (seasonal naive is the scale, 1.0 by construction), the combination has the best worst
# trace (1.008, Azure conv) and the best mean over the three (0.84); each single model loses
# to seasonal naive by 4% to 25% on one trace (Holt-Winters 1.106, Theta 1.143).
DEFAULT_FORECASTER = "combination"
# What the scaling policies forecast with when told "default". Replayed on the dev traces
# (benchmarks/autoscale_traces.py), the combination changed the predictive policy's worst
# trace only from 0.75 to 0.69 of the HPA's violation minutes (1.51 to 1.49 of its
# agent-hours) and made one trace worse, while each of its fits costs about four times
# Holt-Winters' (1.9 s of CPU against 0.5 s on 5,760 minutes): a replay of NASA-HTTP took
# 454 s against 57 s. `forecaster: combination` asks for it.
SCALING_FORECASTER = "holt-winters"


def scaling_forecaster(name: str) -> str:
    """The forecaster a scaling policy runs when asked for `name`."""
    return SCALING_FORECASTER if name == "default" else name


def make_forecaster(name: str = "default") -> Forecaster:
    if name == "default":
        name = DEFAULT_FORECASTER
    if name not in FORECASTERS:
        raise UnknownName("forecaster", name, [*FORECASTERS, "default"])
    return FORECASTERS[name]()


@dataclass(frozen=True)
class Evaluation:
    """Rolling-origin errors of one forecaster on one series."""

    forecaster: str
    origins: int
    horizon: int
    mae: float  # mean absolute error over every origin and step
    naive_mae: float  # seasonal naive's, over the same origins and steps
    mase: float  # mae / naive_mae (seasonal naive scores 1.0)
    coverage: float | None  # share of actuals at or below the forecast's 0.9 quantile


def origins_for(n: int, *, first: int, horizon: int, count: int) -> list[int]:
    """`count` forecast origins spread evenly over [first, n - horizon]."""
    last = n - horizon
    if last < first:
        return []
    if count <= 1 or last == first:
        return [last]
    step = (last - first) / (count - 1)
    return sorted({first + round(i * step) for i in range(count)})


@dataclass(frozen=True)
class Paths:
    """One forecaster's forecasts from each origin: the median and the 0.9 quantile."""

    forecaster: str
    origins: tuple[int, ...]
    median: FloatArray  # (origins, horizon)
    upper: FloatArray  # the 0.9 quantile, the same shape


def rolling_paths(
    series: History,
    make: Callable[[], Forecaster],
    *,
    horizon: int,
    origins: Sequence[int],
    refit_every: int = 1,
) -> Paths:
    """Forecast from each origin with a model fitted on the history before it, never after.

    With `refit_every` > 1, consecutive origins between fits `update` the last fit with the
    observations in between (the policy's way of running), still never past the origin.
    """
    y = np.asarray(series, dtype=np.float64)
    median: list[list[float]] = []
    upper: list[list[float]] = []
    model: Forecaster | None = None
    fitted_at = 0
    since = 0
    for origin in origins:
        if origin < 2 or origin + horizon > len(y):
            raise ConfigError("origins", origin, "Origins need history before them and room after.")
        history = y[:origin]
        if model is None or since >= refit_every:
            model = make().fit(history)
            fitted_at, since = origin, 0
        else:
            model.update(history[fitted_at:].tolist())
            fitted_at = origin
        since += 1
        predicted = model.forecast(horizon, [0.5, 0.9])
        median.append(predicted[0.5])
        upper.append(predicted[0.9])
    shape = (len(median), horizon)
    return Paths(
        forecaster=getattr(model, "name", "?"),
        origins=tuple(origins),
        median=np.asarray(median, dtype=np.float64).reshape(shape),
        upper=np.asarray(upper, dtype=np.float64).reshape(shape),
    )


def combine(members: Sequence[Paths], name: str = Combination.name) -> Paths:
    """What a `Combination` of these members forecasts from the same origins: the median of
    theirs, quantile by quantile (the members' paths, once computed, serve every subset)."""
    return Paths(
        forecaster=name,
        origins=members[0].origins,
        median=np.median([m.median for m in members], axis=0),
        upper=np.median([m.upper for m in members], axis=0),
    )


def naive_paths(
    series: History, origins: Sequence[int], horizon: int, season: int | None = None
) -> FloatArray:
    """Seasonal naive's point forecasts from each origin, the scale of MASE."""
    y = np.asarray(series, dtype=np.float64)
    rows = [SeasonalNaive(season).fit(y[:o]).point(horizon) for o in origins]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), horizon)


def score(
    series: History,
    paths: Paths,
    *,
    season: int | None = None,
    naive: FloatArray | None = None,
) -> Evaluation:
    """MAE, MASE against seasonal naive from the same origins, and the 0.9 quantile's coverage.

    `naive`: seasonal naive's forecasts from these origins (`naive_paths`), if already made.
    """
    y = np.asarray(series, dtype=np.float64)
    horizon = paths.median.shape[1] if paths.median.ndim == 2 else 0
    origins = np.asarray(paths.origins, dtype=np.int64)
    if not len(origins) or not horizon:
        return Evaluation(paths.forecaster, 0, horizon, math.nan, math.nan, math.nan, None)
    actual = y[origins[:, None] + np.arange(horizon)[None, :]]
    if naive is None:
        naive = naive_paths(y, paths.origins, horizon, season)
    mae = float(np.mean(np.abs(paths.median - actual)))
    naive_mae = float(np.mean(np.abs(naive - actual)))
    return Evaluation(
        forecaster=paths.forecaster,
        origins=len(origins),
        horizon=horizon,
        mae=mae,
        naive_mae=naive_mae,
        mase=mae / naive_mae if naive_mae > 0 else math.nan,
        coverage=float(np.mean(actual <= paths.upper)),
    )


def rolling_origin(
    series: History,
    make: Callable[[], Forecaster],
    *,
    horizon: int,
    origins: Sequence[int],
    season: int | None = None,
    refit_every: int = 1,
) -> Evaluation:
    """Rolling-origin errors of the forecaster `make` builds (`rolling_paths`, then `score`)."""
    paths = rolling_paths(series, make, horizon=horizon, origins=origins, refit_every=refit_every)
    return score(series, paths, season=season)

"""Workload patterns: dominant periods, trend, burstiness and regime changes of a trace.

Periods come from the periodogram (scipy) and are kept only where the autocorrelation at that
lag confirms them (ACF >= `MIN_ACF`), so noise peaks are not reported as seasons. Regime
changes use the project's change-point detector (`swarmperf.bench.changepoint`, PELT) on the
series aggregated to at most `MAX_POINTS` points, which keeps it fast on long traces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import signal, stats

from swarmperf.autoscale.traces import Trace
from swarmperf.bench.changepoint import detect_changes

FloatArray = npt.NDArray[np.float64]

MIN_ACF = 0.3  # an autocorrelation this high at the period's lag confirms it
MAX_POINTS = 2000  # regime changes are looked for on at most this many (aggregated) points
# Burstiness thresholds of the recommendation: a peak this many times the mean, or a dispersion
# index this high (Poisson arrivals give 1), is more than a reactive policy can follow.
BURSTY_PEAK_TO_MEAN = 3.0
BURSTY_DISPERSION = 10.0


def _acf(y: FloatArray) -> FloatArray:
    """The autocorrelation at every lag, by FFT (O(n log n), for traces of any length)."""
    x = y - y.mean()
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    return acf / acf[0] if acf[0] > 0 else np.zeros(n)


def dominant_periods(
    series: Sequence[float] | FloatArray, *, top: int = 3
) -> list[dict[str, float]]:
    """Up to `top` periods (in intervals) that the periodogram and the ACF agree on."""
    y = np.asarray(series, dtype=np.float64)
    n = len(y)
    if n < 8 or float(y.std()) == 0:
        return []
    # Zero-padded to four times the length: the bins of a plain periodogram are 1/n apart,
    # too coarse at long periods (a daily cycle in minutes would come out as 1429, not 1440).
    nfft = 1 << (4 * n - 1).bit_length()
    freqs, power = signal.periodogram(y, detrend="linear", nfft=nfft)
    acfs = _acf(y)
    found: list[dict[str, float]] = []
    # Strongest first; a period must fit at least twice into the series.
    for i in np.argsort(power[1:])[::-1][: 50 * top] + 1:
        if freqs[i] <= 0:
            continue
        period = round(1.0 / freqs[i])
        if period < 2 or period > n // 2:
            continue
        if any(abs(period - f["period"]) <= max(1, period * 0.05) for f in found):
            continue
        acf = float(acfs[period])
        # A period's lag correlates more than half of it does (a cycle is out of phase at its
        # half); a random walk's ACF only falls with the lag, so it shows no period.
        if acf >= MIN_ACF and acf > float(acfs[period // 2]):
            found.append({"period": period, "acf": acf, "power": float(power[i])})
        if len(found) == top:
            break
    return found


def season_of(series: Sequence[float] | FloatArray) -> int:
    """The strongest confirmed period, or 1 when there is none."""
    periods = dominant_periods(series, top=1)
    return int(periods[0]["period"]) if periods else 1


@dataclass(frozen=True)
class Patterns:
    """What `workload-analyze` reports about one trace."""

    trace: str
    intervals: int
    interval_seconds: float
    tasks: int
    mean: float  # tasks per interval
    peak: int
    peak_to_mean: float
    index_of_dispersion: float  # variance / mean of the counts; 1 for Poisson arrivals
    periods: list[dict[str, float]]  # period in intervals and seconds, ACF, power
    trend_per_interval: float  # Theil-Sen slope of the counts
    trend_relative: float  # the slope over the whole trace, as a fraction of the mean
    regime_changes: list[dict[str, Any]]
    recommended_policy: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _aggregate(y: FloatArray, points: int) -> tuple[FloatArray, int]:
    step = max(1, math.ceil(len(y) / points))
    usable = len(y) // step * step
    if step == 1:
        return y, 1
    return y[:usable].reshape(-1, step).mean(axis=1), step


def analyse(trace: Trace) -> Patterns:
    """Periods, trend, burstiness and regime changes of `trace`, and the policy they suggest."""
    y = trace.counts.astype(np.float64)
    n = len(y)
    mean = float(y.mean())
    peak = int(y.max())
    dispersion = float(y.var() / mean) if mean > 0 else 0.0
    peak_to_mean = peak / mean if mean > 0 else 0.0
    periods = dominant_periods(y)
    for p in periods:
        p["seconds"] = p["period"] * trace.interval
    coarse, step = _aggregate(y, MAX_POINTS)
    # Theil-Sen: a robust slope, so one burst does not make a trend.
    slope = float(stats.theilslopes(coarse)[0]) / step if len(coarse) > 2 else 0.0
    relative = slope * n / mean if mean > 0 else 0.0
    changes = [
        {
            "interval": cp.index * step,
            "seconds": cp.index * step * trace.interval,
            "direction": cp.direction,
            "relative": cp.relative,
            "confidence": cp.confidence,
        }
        for cp in detect_changes(coarse.tolist())
        if cp.confidence >= 0.99
    ]
    policy, reason = recommend(periods, peak_to_mean, dispersion, relative)
    return Patterns(
        trace=trace.name,
        intervals=n,
        interval_seconds=trace.interval,
        tasks=trace.tasks,
        mean=mean,
        peak=peak,
        peak_to_mean=peak_to_mean,
        index_of_dispersion=dispersion,
        periods=periods,
        trend_per_interval=slope,
        trend_relative=relative,
        regime_changes=changes,
        recommended_policy=policy,
        reason=reason,
    )


def recommend(
    periods: list[dict[str, float]], peak_to_mean: float, dispersion: float, trend: float
) -> tuple[str, str]:
    """A policy for these patterns, and why."""
    if periods:
        p = periods[0]
        return (
            "predictive",
            f"a period of {p['period']:g} intervals (ACF {p['acf']:.2f}) makes demand "
            "forecastable ahead of the start-up time",
        )
    if peak_to_mean >= BURSTY_PEAK_TO_MEAN or dispersion >= BURSTY_DISPERSION:
        return (
            "predictive",
            f"bursty arrivals (peak {peak_to_mean:.1f}x the mean, dispersion index "
            f"{dispersion:.1f}) outrun a reactive policy; the forecast's upper quantile "
            "keeps headroom",
        )
    if abs(trend) >= 0.5:
        return "predictive", f"a trend of {trend:+.0%} over the trace: forecasts follow it"
    return "hpa", "steady arrivals without a period or bursts: the reactive HPA suffices"

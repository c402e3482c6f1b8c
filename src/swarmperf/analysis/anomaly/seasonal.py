"""Seasonal detector: finds the series' period online and scores residuals from past cycles."""

from __future__ import annotations

import math

import numpy as np

from swarmperf.analysis.anomaly.base import Detector, FloatArray, Ring, gaussian_surprise
from swarmperf.analysis.anomaly.robust import MAD_TO_SIGMA


def dominant_period(values: FloatArray, min_lag: int, max_lag: int, min_acf: float) -> int | None:
    """The lag of the highest autocorrelation peak in [min_lag, max_lag], if it is strong enough.

    Autocorrelation through the FFT (Wiener-Khinchin) costs O(n log n) on the whole history.
    """
    n = len(values)
    max_lag = min(max_lag, n // 2)
    if max_lag <= min_lag + 1:
        return None
    centred = values - values.mean()
    power = float(np.dot(centred, centred))
    if power <= 0.0:
        return None
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centred, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 2] / power
    # Unbiased: each lag has n - lag pairs.
    acf = acf * n / (n - np.arange(len(acf)))
    inner = acf[min_lag : max_lag + 1]
    peaks = np.flatnonzero(
        (inner >= acf[min_lag - 1 : max_lag]) & (inner >= acf[min_lag + 1 : max_lag + 2])
    )
    if not len(peaks):
        return None
    heights = inner[peaks]
    if heights.max() < min_acf:
        return None
    # Multiples of the period correlate about as well as the period itself: take the first
    # peak that comes close to the highest.
    best = int(peaks[np.flatnonzero(heights >= 0.9 * heights.max())[0]])
    return best + min_lag


class SeasonalResidual(Detector):
    """Residual of each point from the median of the same phase in the last `cycles` periods.

    The period is the autocorrelation peak of the recent history, re-estimated every `recheck`
    points; with no clear period the baseline is the previous value (a first difference), so
    the detector still reacts to jumps. Residuals are scored in rolling-MAD units (median and
    MAD refreshed every `refresh` points).
    """

    name = "seasonal"
    summary = "online period detection (autocorrelation), residual from past cycles"

    def __init__(
        self,
        history: int = 3000,
        cycles: int = 3,
        recheck: int = 100,
        min_lag: int = 4,
        min_acf: float = 0.4,
        residual_window: int = 300,
        warmup: int = 60,
        refresh: int = 5,
    ) -> None:
        self.refresh = refresh
        self.cycles = cycles
        self.recheck = recheck
        self.min_lag = min_lag
        self.min_acf = min_acf
        self.warmup = warmup
        self._values = Ring(history)
        self._residuals = Ring(residual_window)
        self._seen = 0
        self._spread = 0.0  # range of the history, refreshed with the period
        self.period: int | None = None
        # Centre and scale of the residuals, refreshed every `refresh` points: medians are the
        # costly part and move slowly.
        self._stats: tuple[float, float] | None = None

    def _baseline(self) -> float | None:
        n = len(self._values)
        if n == 0:
            return None
        values = self._values.view()
        p = self.period
        if p is None or n < p:
            return float(values[-1])
        k = min(self.cycles, n // p)
        return _median(values[n - k * p :: p][:k].tolist())

    def _residual(self, x: float) -> float | None:
        base = self._baseline()
        return None if base is None else x - base

    def score_one(self, x: float, t: float | None = None) -> float:
        if self._stats is None or math.isnan(x):
            return 0.0
        r = self._residual(x)
        if r is None:
            return 0.0
        centre, scale = self._stats
        return gaussian_surprise((r - centre) / scale)

    def learn_one(self, x: float, t: float | None = None) -> None:
        if math.isnan(x):
            return
        r = self._residual(x)
        if r is not None:
            self._residuals.append(r)
        self._values.append(x)
        self._seen += 1
        if self._seen <= self.warmup:
            self._spread = float(np.ptp(self._values.view()))
        if self._seen % self.recheck == 0 and len(self._values) >= 4 * self.min_lag:
            values = self._values.view()
            self._spread = float(np.ptp(values))
            period = dominant_period(values, self.min_lag, len(values) // 2, self.min_acf)
            if period != self.period:
                # Residuals against the old baseline say nothing about the new one.
                self._residuals = Ring(self._residuals.size)
                self._stats = None
                self.period = period
        if len(self._residuals) >= self.warmup and (
            self._stats is None or self._seen % self.refresh == 0
        ):
            res = self._residuals.view()
            centre = float(np.median(res))
            mad = float(np.median(np.abs(res - centre)))
            self._stats = (centre, max(MAD_TO_SIGMA * mad, 0.01 * self._spread, 1e-9))


def _median(values: list[float]) -> float:
    values.sort()
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])

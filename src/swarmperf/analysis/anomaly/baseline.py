"""NAB's Windowed Gaussian baseline, kept as a yardstick for the harness and the other detectors.

Same rule as NAB's reference detector: the tail probability of the value under a normal fitted
to the last 6,400 values, the fit refreshed every 100 values once the window is full. Scoring
it here and getting the published figure back is how the scorer is checked end to end.
"""

from __future__ import annotations

import math

import numpy as np

from swarmperf.analysis.anomaly.base import Detector


class WindowedGaussian(Detector):
    name = "windowed_gaussian"
    summary = "NAB's Windowed Gaussian baseline (normal tail over the last 6,400 values)"

    def __init__(self, window: int = 6400, step: int = 100) -> None:
        self.window = window
        self.step = step
        self._data: list[float] = []
        self._pending: list[float] = []
        self._mean = 0.0
        self._std = 1.0
        self._fill_mean = 0.0
        self._fill_m2 = 0.0

    def score_one(self, x: float, t: float | None = None) -> float:
        if not self._data or math.isnan(x):
            return 0.0
        z = abs(x - self._mean) / self._std
        return 1.0 - 0.5 * math.erfc(z / math.sqrt(2.0))

    def learn_one(self, x: float, t: float | None = None) -> None:
        if math.isnan(x):
            return
        if len(self._data) < self.window:
            # Welford's update while the window fills: the same mean and population deviation
            # as a refit, without re-reading the window at every value.
            self._data.append(x)
            n = len(self._data)
            delta = x - self._fill_mean
            self._fill_mean += delta / n
            self._fill_m2 += delta * (x - self._fill_mean)
            self._mean = self._fill_mean
            std = math.sqrt(self._fill_m2 / n)
            self._std = std if std > 0.0 else 1e-6
            return
        self._pending.append(x)
        if len(self._pending) == self.step:
            self._data = self._data[self.step :] + self._pending
            self._pending = []
            self._refit()

    def _refit(self) -> None:
        data = np.asarray(self._data)
        self._mean = float(data.mean())
        std = float(data.std())
        self._std = std if std > 0.0 else 1e-6

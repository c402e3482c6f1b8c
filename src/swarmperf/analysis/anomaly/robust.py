"""Robust statistical detector: distance from the rolling median in rolling-MAD units."""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

import numpy as np

from swarmperf.analysis.anomaly.base import Detector, Ring, check_positive, gaussian_surprise

# MAD of a normal sample times this estimates its standard deviation.
MAD_TO_SIGMA = 1.4826


class RobustZ(Detector):
    """|x - median| / (1.4826 MAD) over the last `window` points, as a Gaussian surprise.

    Median and MAD shrug off the outliers they are meant to find, which a mean and standard
    deviation do not. A floor on the scale (`min_scale` of the window's inner 90% range) keeps
    a flat series from calling every wiggle infinitely surprising.
    """

    name = "robust"
    summary = "rolling median / MAD z-score (robust statistics)"

    def __init__(
        self, window: int = 300, warmup: int = 30, min_scale: float = 0.01, refresh: int = 5
    ) -> None:
        check_positive("window", window, 3)
        self.window = window
        self.warmup = max(3, warmup)
        self.min_scale = min_scale
        self._sorted: list[float] = []
        self._fifo: deque[float] = deque()
        self._values = Ring(window)
        self.refresh = refresh
        self._seen = 0
        # The MAD is refreshed every `refresh` points (the median is always current): it is
        # the costly part and moves slowly.
        self._scale: float | None = None

    def _median(self) -> float:
        n = len(self._sorted)
        mid = n // 2
        return self._sorted[mid] if n % 2 else 0.5 * (self._sorted[mid - 1] + self._sorted[mid])

    def z(self, x: float) -> float | None:
        if self._scale is None:
            return None
        return (x - self._median()) / self._scale

    def score_one(self, x: float, t: float | None = None) -> float:
        z = self.z(x)
        return 0.0 if z is None or math.isnan(z) else gaussian_surprise(z)

    def learn_one(self, x: float, t: float | None = None) -> None:
        if math.isnan(x):
            return
        insort(self._sorted, x)
        self._fifo.append(x)
        self._values.append(x)
        if len(self._fifo) > self.window:
            old = self._fifo.popleft()
            del self._sorted[bisect_left(self._sorted, old)]
        n = len(self._sorted)
        self._seen += 1
        if n >= self.warmup and (self._scale is None or self._seen % self.refresh == 0):
            median = self._median()
            mad = float(np.median(np.abs(self._values.view() - median)))
            # Inner 90% range: a floor for the scale that outliers cannot inflate.
            spread = self._sorted[(19 * n) // 20 - 1] - self._sorted[n // 20]
            self._scale = max(
                MAD_TO_SIGMA * mad, self.min_scale * spread, 1e-9 * (abs(median) + 1.0)
            )

"""Machine-learnt detector: k-nearest-neighbour conformal anomaly detection (KNN-CAD style).

Each point closes a window of the last `dim` values (the point's context). Its nonconformity is
the mean distance to its `k` nearest neighbours among the windows seen before; the score is the
conformal rank of that distance among the recent nonconformities (the share that were lower).
Windows are scaled by the range seen so far, so one configuration fits any unit.
"""

from __future__ import annotations

import math

import numpy as np

from swarmperf.analysis.anomaly.base import Detector, Ring


class KnnConformal(Detector):
    name = "knn"
    summary = "k-NN conformal detector over sliding windows (KNN-CAD style)"

    def __init__(
        self,
        dim: int = 8,
        k: int = 5,
        reference: int = 800,
        calibration: int = 400,
        warmup: int = 100,
    ) -> None:
        self.dim = dim
        self.k = k
        self.warmup = max(warmup, dim + k + 2)
        # Enough raw values to build `reference` full windows.
        self._values = Ring(reference + dim)
        self._ncm = Ring(calibration)
        self._lo = math.inf
        self._hi = -math.inf
        self._seen = 0
        self._memo: tuple[int, float, float | None] | None = None

    def _nonconformity(self, x: float) -> float | None:
        # `process` asks twice for the same point (score, then learn): answer from the memo.
        if self._memo is not None and self._memo[0] == self._seen and self._memo[1] == x:
            return self._memo[2]
        ncm = self._compute(x)
        self._memo = (self._seen, x, ncm)
        return ncm

    def _compute(self, x: float) -> float | None:
        n = len(self._values)
        if n < self.warmup:
            return None
        values = self._values.view()
        lo, hi = min(self._lo, x), max(self._hi, x)
        scale = 1.0 / (hi - lo) if hi > lo else 1.0
        query = np.empty(self.dim)
        query[:-1] = values[n - self.dim + 1 :]
        query[-1] = x
        # Past windows that end before the query's context starts; overlaps would be neighbours
        # of themselves.
        windows = np.lib.stride_tricks.sliding_window_view(values[: n - self.dim + 1], self.dim)
        if len(windows) < self.k:
            return None
        d = np.sqrt(((windows - query) ** 2).sum(axis=1)) * scale
        nearest = np.partition(d, self.k - 1)[: self.k]
        return float(nearest.mean())

    def score_one(self, x: float, t: float | None = None) -> float:
        ncm = self._nonconformity(x)
        if ncm is None or len(self._ncm) < 10 or math.isnan(ncm):
            return 0.0
        past = self._ncm.view()
        return float(np.count_nonzero(past < ncm)) / len(past)

    def learn_one(self, x: float, t: float | None = None) -> None:
        if math.isnan(x):
            return
        ncm = self._nonconformity(x)
        if ncm is not None:
            self._ncm.append(ncm)
        self._values.append(x)
        self._lo = min(self._lo, x)
        self._hi = max(self._hi, x)
        self._seen += 1

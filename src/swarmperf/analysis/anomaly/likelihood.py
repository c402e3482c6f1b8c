"""Anomaly likelihood: how unusual the recent mean of raw scores is against their longer history.

After HTM's anomaly likelihood (Ahmad et al., 2017): raw scores are noisy, so the detector
looks at the mean of the last `short` raw scores and asks how far into the Gaussian upper tail
of the historical short means it lies. A run of alarms is damped after its first red point (a
refractory step), since one anomaly should raise one alarm, not a burst.
"""

from __future__ import annotations

import math

from swarmperf.analysis.anomaly.base import Ring, log_score

RED_TAIL = 1e-5  # likelihood 0.99999
YELLOW_TAIL = 1e-3  # likelihood 0.999


class AnomalyLikelihood:
    """Turns a stream of raw scores into upper-tail probabilities (small = anomalous)."""

    def __init__(
        self,
        short: int = 10,
        history: int = 8640,
        learning: int = 150,
        reestimate: int = 100,
        min_mean: float = 0.03,
        min_variance: float = 0.0003,
    ) -> None:
        self.short = short
        self.learning = learning
        self.reestimate = reestimate
        self.min_mean = min_mean
        self.min_variance = min_variance
        self._recent = Ring(short)
        self._means = Ring(history)
        self._seen = 0
        self._mean: float | None = None
        self._std = 1.0
        self._previous_tail = 1.0

    def _short_mean(self, raw: float) -> float:
        recent = self._recent.view()
        if len(recent) < self.short:
            return (float(recent.sum()) + raw) / (len(recent) + 1)
        return (float(recent[1:].sum()) + raw) / self.short

    def tail(self, raw: float) -> float:
        """Upper-tail probability of the short mean ending with `raw`; 1.0 while learning."""
        if self._mean is None:
            return 1.0
        z = (self._short_mean(raw) - self._mean) / self._std
        return 0.5 * math.erfc(z / math.sqrt(2.0)) if z > 0 else 0.5

    def filtered(self, tail: float) -> float:
        """A red tail right after another red one is reported as yellow."""
        if tail <= RED_TAIL and self._previous_tail <= RED_TAIL:
            return YELLOW_TAIL
        return tail

    def score(self, raw: float) -> float:
        """Filtered tail on the log scale, in [0, 1]."""
        return log_score(self.filtered(self.tail(raw)))

    def learn(self, raw: float) -> None:
        self._previous_tail = self.tail(raw)
        mean = self._short_mean(raw)
        self._recent.append(raw)
        self._seen += 1
        if self._seen > self.short:
            self._means.append(mean)
        if self._seen >= self.learning and (
            self._mean is None or self._seen % self.reestimate == 0
        ):
            means = self._means.view()
            if len(means) >= 2:
                self._mean = max(float(means.mean()), self.min_mean)
                self._std = math.sqrt(max(float(means.var()), self.min_variance))

    def process(self, raw: float) -> float:
        s = self.score(raw)
        self.learn(raw)
        return s

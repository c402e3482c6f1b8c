"""The ensemble: robust, seasonal and k-NN detectors pooled, then calibrated by anomaly likelihood.

Design, measured on NAB with leave-one-category-out (benchmarks/anomaly_nab.py: every tunable
chosen on four categories, scored on the fifth, the held-out scores summed):
- Members' raw scores are sharpened (raised to the power `sharpen`) before pooling, so that
  ordinary points contribute almost nothing and only confident member alarms move the pool.
- The pool is a weighted mean, not a max: an alarm most members agree on beats one member's
  outburst.
- The pooled raw score goes through one anomaly likelihood (mean of the last `short` raw
  scores against a history of 8,640, HTM's default; Gaussian tail), reported on the log scale.
  That stage is the calibration across series: its output is a tail probability of the
  series' own recent behaviour, so the threshold chosen on four categories is 0.501-0.513 in
  every fold, and holds on the fifth.
- One anomaly raises one alarm: after a red score (tail <= 1e-5, score 0.5) the next
  `refractory` points report at most yellow (0.3). HTM damps only the point right after a red
  one. With the settings fixed and only the threshold held out, ten points lifted the score
  from 71.1 to 72.3 (30 points: 71.2; 100: 67.3, as windows that follow soon after a false
  alarm are lost); with the whole tuning procedure held out (summed-score selection), from
  68.0 to 71.4.
- A value beyond the range seen so far by more than `spatial_tolerance` of that range scores
  1.0 whatever the models say. It carries much of the score: with the threshold held out,
  72.7 at 2% of the range, 72.0 at 5%, 71.2 at 10%, 49.9 without it.
- The default weights (robust 0.25, seasonal 2, k-NN 0: the k-NN member is then not run) and
  the 20-point short window are what the tuning procedure picks on all five development
  categories; within its folds it picks them in three of five (realAWSCloudwatch and
  realKnownCause, held out, get robust 0, seasonal 1, k-NN 0.25, short 20).
- The procedure ranks candidates by their median training category (each normalised on its
  own), not by the training categories' summed score: the sum is carried by the categories
  with the most windows and picked a weighting that fit realKnownCause and missed on
  realAWSCloudwatch. Same grid (49 weightings x short 10/20/40), held out: summed 71.4,
  median 72.4; the worst training category 65.1 and the mean of the categories' normalised
  scores 67.8 (both chase the weakest category). The gain rests on two folds: on a coarser
  grid (weights {0, 0.25, 2} x short 10/20/40) the median scores 71.5 and the sum 71.4.

Tried and not kept (held-out standard score with the threshold chosen on the other four
categories, against 71.1 for the same ensemble without them, all before the refractory
span): members' scores replaced by their rank among their own last 500-2,000 scores
(per-series quantile calibration: 51-64; a rank cannot tell a 5-sigma blip from a 50-sigma
spike, and NAB's windows are mostly the latter); members fed asinh-compressed values for
bursty counts (66-68); a multi-scale likelihood over short windows 10/20/40 or 5/20/80 with a
Bonferroni minimum or a geometric mean (62-69); averaging the likelihood over short windows
(58-61).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from swarmperf.analysis.anomaly.base import Detector, log_score
from swarmperf.analysis.anomaly.knn import KnnConformal
from swarmperf.analysis.anomaly.likelihood import RED_TAIL, YELLOW_TAIL, AnomalyLikelihood
from swarmperf.analysis.anomaly.robust import RobustZ
from swarmperf.analysis.anomaly.seasonal import SeasonalResidual
from swarmperf.core.errors import ConfigError

DEFAULT_WEIGHTS = (0.25, 2.0, 0.0)  # robust, seasonal, k-NN
DEFAULT_SHORT = 20
DEFAULT_REFRACTORY = 10
RED_SCORE = log_score(RED_TAIL)  # 0.5
YELLOW_SCORE = log_score(YELLOW_TAIL)  # 0.3


def default_members() -> list[Detector]:
    """Fresh members in the order of `DEFAULT_WEIGHTS`."""
    return [RobustZ(), SeasonalResidual(), KnnConformal()]


class Ensemble(Detector):
    """Weighted mean of sharpened member scores -> anomaly likelihood; new extremes score 1."""

    name = "ensemble"
    summary = "robust + seasonal (+ k-NN) pooled, then anomaly likelihood (the default)"

    def __init__(
        self,
        members: Sequence[Detector] | None = None,
        weights: Sequence[float] | None = None,
        sharpen: float = 200.0,
        short: int = DEFAULT_SHORT,
        history: int = 8640,
        learning: int = 150,
        spatial_tolerance: float = 0.02,
        spatial_warmup: int = 150,
        refractory: int = DEFAULT_REFRACTORY,
    ) -> None:
        if members is None:
            members = default_members()
            weights = DEFAULT_WEIGHTS if weights is None else weights
        members = list(members)
        chosen = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(chosen) != len(members) or not members:
            raise ConfigError("weights", list(chosen), "Give one weight per member.")
        if any(w < 0 for w in chosen) or sum(chosen) <= 0:
            raise ConfigError("weights", chosen, "Weights must be >= 0 and not all zero.")
        if refractory < 0:
            raise ConfigError("refractory", refractory, "Give a number of points >= 0.")
        total = sum(chosen)
        # A member of weight 0 cannot move the pool: it is not run at all.
        kept = [(m, w / total) for m, w in zip(members, chosen, strict=True) if w > 0]
        self.members = [m for m, _ in kept]
        self.weights = [w for _, w in kept]
        self.sharpen = sharpen
        self.likelihood = AnomalyLikelihood(short=short, history=history, learning=learning)
        self.spatial_tolerance = spatial_tolerance
        self.spatial_warmup = spatial_warmup
        self.refractory = refractory
        self._lo = math.inf
        self._hi = -math.inf
        self._seen = 0
        self._last_red: int | None = None

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

    def _undamped(self, raw: float, x: float) -> float:
        return 1.0 if self._spatial(x) else self.likelihood.score(raw)

    def _damped(self, score: float) -> float:
        """Reds within `refractory` points of the last undamped red are reported as yellow."""
        if (
            score >= RED_SCORE
            and self._last_red is not None
            and self._seen - self._last_red <= self.refractory
        ):
            return min(score, YELLOW_SCORE)
        return score

    def score_one(self, x: float, t: float | None = None) -> float:
        if math.isnan(x):
            return 0.0
        return self._damped(self._undamped(self.pooled(x, t), x))

    def _learn(self, raw: float, score: float, damped: float, x: float, t: float | None) -> None:
        if score >= RED_SCORE and damped == score:
            self._last_red = self._seen
        self.likelihood.learn(raw)
        for member in self.members:
            member.learn_one(x, t)
        self._lo = min(self._lo, x)
        self._hi = max(self._hi, x)
        self._seen += 1

    def learn_one(self, x: float, t: float | None = None) -> None:
        if math.isnan(x):
            return
        raw = self.pooled(x, t)
        score = self._undamped(raw, x)
        self._learn(raw, score, self._damped(score), x, t)

    def process(self, x: float, t: float | None = None) -> float:
        if math.isnan(x):
            return 0.0
        raw = self.pooled(x, t)
        score = self._undamped(raw, x)
        damped = self._damped(score)
        self._learn(raw, score, damped, x, t)
        return damped

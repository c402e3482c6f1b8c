"""The regression gate: is a metric's current sample worse than its baseline, and by how much.

Distribution-free on purpose (benchmark timings are skewed and heavy-tailed): the test is
Mann-Whitney U from scipy, the shift is the Hodges-Lehmann estimate (median of all pairwise
differences) and the effect size is Cliff's delta, derived from the same U statistic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from swarmperf.core.errors import ConfigError

Direction = Literal["better", "worse", "unchanged"]


@dataclass(frozen=True)
class Comparison:
    """A baseline-versus-current comparison of one metric; None where a sample is empty."""

    metric: str
    baseline_n: int
    current_n: int
    baseline_median: float | None
    current_median: float | None
    change: float | None  # relative change of the median (current/baseline - 1)
    hodges_lehmann: float | None  # shift estimate, current - baseline
    effect_size: float | None  # Cliff's delta of current over baseline, in [-1, 1]
    p_value: float | None  # Mann-Whitney U, two-sided
    direction: Direction  # better/worse when significant at alpha, else unchanged
    regression: bool  # worse, significant at alpha AND |change| >= min_change
    reason: str  # one sentence with the numbers


def _sample(field: str, values: Sequence[float]) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    arr = np.asarray([float(v) for v in values], dtype=np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ConfigError(f"{field}[{bad}]", float(arr[bad]), "Samples must be finite numbers.")
    return arr


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def compare_samples(
    metric: str,
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    higher_is_better: bool,
    alpha: float = 0.01,
    min_change: float = 0.05,
) -> Comparison:
    """Compare two samples of a metric; `regression` is the gate's verdict.

    When the baseline median is 0 the relative change is undefined (None) and the gate decides
    on significance alone.
    """
    if not 0 < alpha < 1:
        raise ConfigError("alpha", alpha, "Give a significance level in (0, 1), e.g. 0.01.")
    if not (math.isfinite(min_change) and min_change >= 0):
        raise ConfigError("min_change", min_change, "Give a relative change >= 0, e.g. 0.05.")
    b = _sample("baseline", baseline)
    c = _sample("current", current)
    if len(b) == 0 or len(c) == 0:
        empty = "baseline" if len(b) == 0 else "current"
        return Comparison(
            metric=metric,
            baseline_n=len(b),
            current_n=len(c),
            baseline_median=float(np.median(b)) if len(b) else None,
            current_median=float(np.median(c)) if len(c) else None,
            change=None,
            hodges_lehmann=None,
            effect_size=None,
            p_value=None,
            direction="unchanged",
            regression=False,
            reason=f"{metric}: the {empty} sample is empty, so nothing can be compared.",
        )
    mb, mc = float(np.median(b)), float(np.median(c))
    change = mc / mb - 1 if mb != 0 else None
    hl = float(np.median(c[:, None] - b[None, :]))
    u, p = stats.mannwhitneyu(c, b, alternative="two-sided")
    p_value = float(p)
    delta = float(2 * float(u) / (len(b) * len(c)) - 1)
    sign = np.sign(hl) if hl != 0 else np.sign(delta)
    direction: Direction = "unchanged"
    if p_value < alpha and sign != 0:
        up_is_good = (sign > 0) == higher_is_better
        direction = "better" if up_is_good else "worse"
    big_enough = change is None or abs(change) >= min_change
    regression = direction == "worse" and big_enough
    change_text = _pct(change) if change is not None else "undefined (baseline median 0)"
    verdict = (
        "regression"
        if regression
        else (
            f"worse but below the {min_change:.1%} threshold" if direction == "worse" else direction
        )
    )
    reason = (
        f"{metric}: median {mb:.6g} -> {mc:.6g} ({change_text}), Hodges-Lehmann shift {hl:+.6g}, "
        f"Cliff's delta {delta:+.2f}, Mann-Whitney p={p_value:.3g} "
        f"({'<' if p_value < alpha else '>='} alpha {alpha:g}) with n={len(b)}/{len(c)}: "
        f"{verdict}."
    )
    return Comparison(
        metric=metric,
        baseline_n=len(b),
        current_n=len(c),
        baseline_median=mb,
        current_median=mc,
        change=change,
        hodges_lehmann=hl,
        effect_size=delta,
        p_value=p_value,
        direction=direction,
        regression=regression,
        reason=reason,
    )

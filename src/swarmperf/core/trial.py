"""The keep-or-roll-back rule of a trial change: its measured objective against the prediction.

A trial applies a live change, measures the window after it, and keeps the change only if
the measured figures bear it out. The rule is a pure function of the figures before and
after (as a live swarm records them on a decision), so the same verdict comes out in a
live service, in a replay and in a test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from swarmperf.core.errors import ConfigError

KEPT = "kept"
ROLLED_BACK = "rolled-back"
ROLL_BACK_FAILED = "roll-back-failed"


def _finite(name: str, value: float | None, *, least: float | None = None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(name, value, "Give a finite number.")
    if least is not None and value < least:
        raise ConfigError(name, value, f"Give a number >= {least:g}.")


@dataclass(frozen=True, slots=True)
class TrialRule:
    """What a change must show over the window after it to be kept.

    `objective` names a figure of the window (e.g. `latency_p99_s`); `minimise` says which
    way is better. Measured after the change, it must be no worse than `predicted` by more
    than `tolerance` (a share of the prediction), no worse than `limit`, and better than
    the figure before by at least `min_gain` (a share of it); a check without its
    reference (None) is skipped. With fewer than `min_samples` tasks finished in the
    window the figure says too little: the change is rolled back if the queue grew
    meanwhile (the swarm falls behind), else kept."""

    objective: str = "latency_p99_s"
    minimise: bool = True
    predicted: float | None = None
    tolerance: float = 0.5
    limit: float | None = None
    min_gain: float | None = None
    min_samples: int = 20

    def __post_init__(self) -> None:
        if not self.objective:
            raise ConfigError("objective", self.objective, "Name a figure, e.g. latency_p99_s.")
        _finite("predicted", self.predicted)
        _finite("limit", self.limit)
        _finite("tolerance", self.tolerance, least=0.0)
        _finite("min_gain", self.min_gain)
        if isinstance(self.min_samples, bool) or self.min_samples < 1:
            raise ConfigError("min_samples", self.min_samples, "Give a whole number >= 1.")

    def to_data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether to keep the change, and why (with the figures that decided it)."""

    keep: bool
    why: str

    @property
    def name(self) -> str:
        return KEPT if self.keep else ROLLED_BACK


def _number(figures: Mapping[str, Any], key: str) -> float | None:
    value = figures.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def judge(rule: TrialRule, before: Mapping[str, Any], after: Mapping[str, Any]) -> Verdict:
    """The verdict on a change from the figures of the window before it and after it
    (`completed`, `queue_depth` and the rule's objective)."""
    name = rule.objective
    value = _number(after, name)
    done = int(_number(after, "completed") or 0)
    if value is None or done < rule.min_samples:
        queue_before = _number(before, "queue_depth") or 0.0
        queue_after = _number(after, "queue_depth") or 0.0
        if queue_after > queue_before:
            return Verdict(
                False,
                f"only {done} tasks finished in the window (fewer than {rule.min_samples}) "
                f"while the queue grew from {queue_before:g} to {queue_after:g}",
            )
        return Verdict(
            True,
            f"only {done} tasks finished in the window (fewer than {rule.min_samples}) and "
            "the queue did not grow: too little to judge, kept as applied",
        )

    def worse(a: float, b: float) -> bool:
        return a > b if rule.minimise else a < b

    if rule.limit is not None and worse(value, rule.limit):
        return Verdict(False, f"{name} measured {value:.4g}, beyond the limit {rule.limit:.4g}")
    checks = []
    if rule.predicted is not None:
        slack = rule.tolerance * abs(rule.predicted)
        bound = rule.predicted + slack if rule.minimise else rule.predicted - slack
        if worse(value, bound):
            return Verdict(
                False,
                f"{name} measured {value:.4g}, predicted {rule.predicted:.4g}: worse than the "
                f"prediction by more than {rule.tolerance:.0%}",
            )
        checks.append(f"within {rule.tolerance:.0%} of the predicted {rule.predicted:.4g}")
    if rule.min_gain is not None:
        old = _number(before, name)
        if old is None:
            return Verdict(
                False, f"{name} was not measured before the change, so no gain can be shown"
            )
        gain = _gain(old, value, rule.minimise)
        if gain < rule.min_gain:
            return Verdict(
                False,
                f"{name} went from {old:.4g} to {value:.4g}: a gain of {_share(gain)}, less "
                f"than the {rule.min_gain:.0%} asked for",
            )
        checks.append(f"a gain of {_share(gain)} over {old:.4g}")
    if rule.limit is not None:
        checks.append(f"within the limit {rule.limit:.4g}")
    met = "; ".join(checks) if checks else "no check asked for"
    return Verdict(True, f"{name} measured {value:.4g} over {done} tasks: {met}")


def _gain(before: float, after: float, minimise: bool) -> float:
    """The improvement from `before` to `after` as a share of `before`."""
    better = before - after if minimise else after - before
    if before == 0:
        return 0.0 if better == 0 else math.copysign(math.inf, better)
    return better / abs(before)


def _share(gain: float) -> str:
    return f"{gain:+.0%}" if math.isfinite(gain) else ("+inf" if gain > 0 else "-inf")

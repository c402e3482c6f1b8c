"""The regression gate: a suite result against a baseline result, or against its history.

Against a baseline: for every scenario and metric both results sampled (one value per
iteration), a Mann-Whitney comparison (`suite.regression.compare_samples`); a regression is a
change in the metric's worse direction that is significant at `alpha` and at least
`min_change` in size. Which direction is worse comes from the metric's name
(`metric_direction`): throughput and availability up is good; latency, error rate, drops,
recovery time and memory up is bad. A metric whose direction is unknown is shown, not gated,
and so are the load generator's own figures (scheduling lag, achieved/asked rate): they say how
well the client kept to its schedule on a possibly busy machine, not how the target did.

Against a history (older results of the same suite, oldest first): two checks per metric.
First, change-point detection (`suite.changepoint.detect_history_regressions`) over each run's
summary value with the current run last; a confident shift in the worse direction within the
last `recent` runs fails the gate. Change-point methods need a few points on each side of a
change, so, second, the current run's samples are compared, as against a baseline, with the
pooled samples of the latest stable stretch of the history (the runs after its last change
point, at most `baseline_runs` of them).

Too few iterations can make a regression undetectable: with 3 iterations a side, no two-sided
Mann-Whitney p-value falls below 0.1. Such a metric is "skipped" with a message saying how many
iterations it needs, and when no metric at all could be judged the gate fails with "no data":
a gate that could not look never reports a pass. A metric the baseline has and the current
result lacks (or a scenario gone missing) is "no data" and fails the gate too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import comb
from typing import Any, Literal

from swarmperf.bench.changepoint import ChangePoint, detect_changes, detect_history_regressions
from swarmperf.bench.ci import Check, CheckReport, CheckStatus
from swarmperf.bench.regression import Comparison, compare_samples
from swarmperf.bench.results import ScenarioResult, SuiteResult
from swarmperf.core.errors import ConfigError

CheckKind = Literal["baseline", "history", "changepoint"]
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_CHANGE = 0.05
DEFAULT_RECENT = 3
DEFAULT_BASELINE_RUNS = 5
DEFAULT_MIN_CONFIDENCE = 0.95

# Checked in order: the first word found in a metric's name decides its direction.
_HIGHER_IS_BETTER = (
    "throughput",
    "availability",
    "succeeded",
    "success",
    "completed",
    "held",
    "breaking",
)
_LOWER_IS_BETTER = (
    "latency",
    "error",
    "failed",
    "dropped",
    "recovery",
    "drift",
    "memory",
    "leak",
    "rss",
    "duration",
    "wait",
)


# How well the load generator kept to its schedule: a fact about the client, not the target.
_GENERATOR_METRICS = ("lag", "achieved_ratio")


def measures_generator(metric: str) -> bool:
    """True for metrics about the load generator itself, which are shown but not gated."""
    name = metric.lower()
    return any(word in name for word in _GENERATOR_METRICS)


def metric_direction(metric: str) -> bool | None:
    """True if higher is better for `metric`, False if lower is, None if the name does not say."""
    name = metric.lower()
    for word in _HIGHER_IS_BETTER:
        if word in name:
            return True
    for word in _LOWER_IS_BETTER:
        if word in name:
            return False
    return None


def _not_gated(metric: str) -> str | None:
    """Why a metric is shown but not gated, or None when it is gated."""
    if measures_generator(metric):
        return f"{metric}: measures the load generator's schedule, not the target; shown only"
    if metric_direction(metric) is None:
        return f"{metric}: the gate does not know whether higher is better; shown only"
    return None


def min_p_value(n1: int, n2: int) -> float:
    """The smallest two-sided exact Mann-Whitney p-value possible with samples of n1 and n2."""
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2.0 / comb(n1 + n2, n1))


def iterations_needed(alpha: float) -> int:
    """The fewest iterations a side for which a two-sided p-value can fall below `alpha`."""
    n = 1
    while min_p_value(n, n) >= alpha:
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class MetricCheck:
    """One metric of one scenario, gated."""

    scenario: str
    metric: str
    kind: CheckKind
    status: CheckStatus
    message: str
    higher_is_better: bool | None
    comparison: Comparison | None = None
    change_points: tuple[ChangePoint, ...] = ()

    def to_check(self) -> Check:
        c = self.comparison
        value = expected = ""
        if c is not None:
            value = _num(c.current_median)
            expected = f"baseline {_num(c.baseline_median)}"
            if c.change is not None:
                value += f" ({c.change:+.1%})"
        name = self.metric if self.kind == "baseline" else f"{self.metric} [{self.kind}]"
        return Check(self.scenario, name, self.status, self.message, value, expected, "regression")

    def to_dict(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "kind": self.kind,
            "status": self.status,
            "message": self.message,
            "higher_is_better": self.higher_is_better,
            "comparison": None
            if c is None
            else {
                "baseline_n": c.baseline_n,
                "current_n": c.current_n,
                "baseline_median": c.baseline_median,
                "current_median": c.current_median,
                "change": c.change,
                "hodges_lehmann": c.hodges_lehmann,
                "effect_size": c.effect_size,
                "p_value": c.p_value,
                "direction": c.direction,
                "regression": c.regression,
                "reason": c.reason,
            },
            "change_points": [
                {
                    "index": cp.index,
                    "direction": cp.direction,
                    "magnitude": cp.magnitude,
                    "relative": cp.relative,
                    "confidence": cp.confidence,
                    "method": cp.method,
                }
                for cp in self.change_points
            ],
        }


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


@dataclass(frozen=True, slots=True)
class GateReport:
    """Every metric check of one gate run."""

    mode: Literal["baseline", "history"]
    suite: str
    checks: tuple[MetricCheck, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not any(c.status in ("fail", "no data") for c in self.checks)

    @property
    def regressions(self) -> list[MetricCheck]:
        return [c for c in self.checks if c.status == "fail"]

    def to_check_report(self) -> CheckReport:
        title = f"Regression gate ({self.mode}) for suite {self.suite}"
        summary: dict[str, Any] = {
            "metrics checked": sum(c.status != "skipped" for c in self.checks),
            "regressions": len(self.regressions),
        }
        return CheckReport(title, tuple(c.to_check() for c in self.checks), summary, self.notes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "suite": self.suite,
            "passed": self.passed,
            "regressions": [f"{c.scenario}/{c.metric}" for c in self.regressions],
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
        }


def _check_settings(alpha: float, min_change: float) -> None:
    if not 0 < alpha < 1:
        raise ConfigError("--alpha", alpha, "Use a significance level in (0, 1), e.g. 0.01.")
    if not 0 <= min_change < 10:
        raise ConfigError("--min-change", min_change, "Use a share >= 0, e.g. 5% or 0.05.")


def _compare(
    scenario: str,
    metric: str,
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    kind: CheckKind,
    alpha: float,
    min_change: float,
) -> MetricCheck:
    skip = _not_gated(metric)
    if skip is not None:
        return MetricCheck(scenario, metric, kind, "skipped", skip, None)
    direction = metric_direction(metric)
    if direction is None:  # never: _not_gated covers it; this keeps the type narrow
        return MetricCheck(scenario, metric, kind, "skipped", metric, None)
    if not current:
        message = f"{metric}: the current result has no samples (the baseline has {len(baseline)})"
        return MetricCheck(scenario, metric, kind, "no data", message, direction)
    comparison = compare_samples(
        metric, baseline, current, higher_is_better=direction, alpha=alpha, min_change=min_change
    )
    floor = min_p_value(len(baseline), len(current))
    if comparison.regression:
        return MetricCheck(scenario, metric, kind, "fail", comparison.reason, direction, comparison)
    if comparison.p_value is None or floor >= alpha:
        need = iterations_needed(alpha)
        message = (
            f"{metric}: not judged: with {len(baseline)} and {len(current)} samples no p-value "
            f"can fall below alpha {alpha:g} (the smallest possible is {floor:.3g}); run at "
            f"least {need} iterations on each side"
        )
        return MetricCheck(scenario, metric, kind, "skipped", message, direction, comparison)
    return MetricCheck(scenario, metric, kind, "pass", comparison.reason, direction, comparison)


def compare_results(
    baseline: SuiteResult,
    current: SuiteResult,
    *,
    alpha: float = DEFAULT_ALPHA,
    min_change: float = DEFAULT_MIN_CHANGE,
) -> GateReport:
    """Gate `current` against `baseline`, scenario by scenario, metric by metric."""
    _check_settings(alpha, min_change)
    checks: list[MetricCheck] = []
    notes: list[str] = []
    if baseline.suite != current.suite:
        notes.append(f"comparing different suites: {baseline.suite} and {current.suite}")
    current_by_name = {s.name: s for s in current.scenarios}
    for base in baseline.scenarios:
        now = current_by_name.get(base.name)
        if now is None:
            message = f"scenario {base.name} is in the baseline but not in the current result"
            checks.append(
                MetricCheck(base.name, "(scenario)", "baseline", "no data", message, None)
            )
            continue
        for metric in _metrics(base):
            checks.append(
                _compare(
                    base.name,
                    metric,
                    base.samples.get(metric, []),
                    now.samples.get(metric, []),
                    kind="baseline",
                    alpha=alpha,
                    min_change=min_change,
                )
            )
    for name in current_by_name.keys() - {s.name for s in baseline.scenarios}:
        message = f"scenario {name} is new: nothing to compare it with"
        checks.append(MetricCheck(name, "(scenario)", "baseline", "skipped", message, None))
    return GateReport("baseline", current.suite, _judged(checks), tuple(notes))


def _judged(checks: list[MetricCheck]) -> tuple[MetricCheck, ...]:
    """The checks, plus a failing one when none of them could judge anything."""
    if any(c.status in ("pass", "fail") for c in checks):
        return tuple(checks)
    message = (
        "no metric could be judged (see the skipped checks: too few iterations, or no samples): "
        "the gate cannot say there is no regression"
    )
    return (*checks, MetricCheck("(suite)", "(all)", "baseline", "no data", message, None))


def _metrics(base: ScenarioResult) -> list[str]:
    """Metrics with samples in the baseline (a metric new in the current run has no baseline)."""
    return [m for m in base.samples if base.samples[m]]


def gate_history(
    history: Sequence[SuiteResult],
    current: SuiteResult,
    *,
    alpha: float = DEFAULT_ALPHA,
    min_change: float = DEFAULT_MIN_CHANGE,
    recent: int = DEFAULT_RECENT,
    baseline_runs: int = DEFAULT_BASELINE_RUNS,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> GateReport:
    """Gate `current` against older results of its suite (`history`, oldest first)."""
    _check_settings(alpha, min_change)
    if recent < 1:
        raise ConfigError("--recent", recent, "Use an integer >= 1.")
    if baseline_runs < 1:
        raise ConfigError("--baseline-runs", baseline_runs, "Use an integer >= 1.")
    if not history:
        raise ConfigError(
            "history", "(empty)", "Record earlier runs of this suite first (benchmark-run)."
        )
    checks: list[MetricCheck] = []
    for now in current.scenarios:
        past = [_scenario(r, now.name) for r in history]
        runs = [s for s in past if s is not None]
        if not runs:
            message = f"scenario {now.name} is not in any earlier result"
            checks.append(MetricCheck(now.name, "(scenario)", "history", "skipped", message, None))
            continue
        for metric in _history_metrics(runs, now):
            checks.extend(
                _history_checks(
                    now,
                    metric,
                    runs,
                    alpha=alpha,
                    min_change=min_change,
                    recent=recent,
                    baseline_runs=baseline_runs,
                    min_confidence=min_confidence,
                )
            )
    notes = (f"{len(history)} earlier results of suite {current.suite}",)
    return GateReport("history", current.suite, _judged(checks), notes)


def _scenario(result: SuiteResult, name: str) -> ScenarioResult | None:
    return next((s for s in result.scenarios if s.name == name), None)


def _history_metrics(runs: Sequence[ScenarioResult], now: ScenarioResult) -> list[str]:
    seen: dict[str, None] = {}
    for run in runs:
        for metric in run.samples:
            seen.setdefault(metric, None)
    return [m for m in seen if m in now.samples or m in now.summary]


def _run_value(scenario: ScenarioResult, metric: str) -> float | None:
    """A run's figure for the history: its summary value, else the median of its samples."""
    value = scenario.summary.get(metric)
    if value is not None:
        return value
    samples = sorted(scenario.samples.get(metric, []))
    if not samples:
        return None
    mid = len(samples) // 2
    return samples[mid] if len(samples) % 2 else (samples[mid - 1] + samples[mid]) / 2


def _history_checks(
    now: ScenarioResult,
    metric: str,
    runs: Sequence[ScenarioResult],
    *,
    alpha: float,
    min_change: float,
    recent: int,
    baseline_runs: int,
    min_confidence: float,
) -> list[MetricCheck]:
    skip = _not_gated(metric)
    direction = metric_direction(metric)
    if skip is not None or direction is None:
        return [MetricCheck(now.name, metric, "history", "skipped", skip or metric, None)]
    values = [_run_value(r, metric) for r in runs]
    series = [v for v in values if v is not None]
    latest = _run_value(now, metric)
    checks: list[MetricCheck] = []
    if latest is not None and len(series) >= 2:
        full = [*series, latest]
        worse = detect_history_regressions(
            full, higher_is_better=direction, min_confidence=min_confidence
        )
        fresh = [cp for cp in worse if cp.index >= len(full) - recent]
        if fresh:
            cp = fresh[-1]
            ago = len(full) - 1 - cp.index
            relative = f"{cp.relative:+.1%}" if cp.relative is not None else f"{cp.magnitude:+.4g}"
            message = (
                f"{metric}: a worse shift of {relative} began {ago} run(s) before this one "
                f"(run {cp.index + 1} of {len(full)}, confidence {cp.confidence:.2f}, {cp.method})"
            )
            checks.append(
                MetricCheck(
                    now.name, metric, "changepoint", "fail", message, direction, None, tuple(worse)
                )
            )
        else:
            older = "; earlier ones: " + ", ".join(f"run {cp.index + 1}" for cp in worse)
            message = f"{metric}: no worse shift in the last {recent} run(s)" + (
                older if worse else ""
            )
            checks.append(
                MetricCheck(
                    now.name, metric, "changepoint", "pass", message, direction, None, tuple(worse)
                )
            )
    stable = _stable_stretch(runs, metric, baseline_runs)
    pooled = [x for r in stable for x in r.samples.get(metric, [])]
    if pooled:
        check = _compare(
            now.name,
            metric,
            pooled,
            now.samples.get(metric, []),
            kind="history",
            alpha=alpha,
            min_change=min_change,
        )
        checks.append(check)
    return checks


def _stable_stretch(
    runs: Sequence[ScenarioResult], metric: str, limit: int
) -> list[ScenarioResult]:
    """The runs after the history's last change point of `metric` (at most `limit`)."""
    with_values = [(r, _run_value(r, metric)) for r in runs]
    usable = [(r, v) for r, v in with_values if v is not None]
    start = 0
    if len(usable) >= 4:
        changes = detect_changes([v for _, v in usable])
        if changes:
            start = changes[-1].index
    return [r for r, _ in usable[start:]][-limit:]

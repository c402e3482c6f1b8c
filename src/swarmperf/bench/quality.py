"""SLA validation: criteria groups checked against a suite result, a 0-100 score, and advice.

Groups and their default criteria (each overridable with a threshold expression):

- throughput: `throughput>=100/s`;
- latency: `p(99)<=1000ms`;
- reliability: `availability>=99.9%` and `rate<=0.1%` (error rate);
- scalability: `linearity>=0.8` and `retention>=0.9`, from a stress scenario's load curve.

Throughput, latency and reliability are checked on every scenario meant to run at the planned
load (kinds load and endurance): a stress test pushes past the breaking point on purpose, a
volume test hands over all its tasks at once (latency there is the time to drain the pile) and
a spike measures recovery, so their latencies would fail any SLA by design. If a suite has no
load or endurance scenario, every scenario is checked.

Linearity is the least-squares slope of throughput against offered load over the curve's
points, divided by the ideal slope: the throughput per unit of load at the lowest load point,
so 1 is perfectly linear scaling and 0 is none. Retention is the throughput at the highest load
over the peak throughput: 1 when the swarm holds its peak under overload, lower when it
collapses.

A criterion whose figure is missing is "no data", with the reason; it never passes. The score
weighs each group's mean criterion score (a pass is 100; a miss is the share of the limit
reached, e.g. p99 1.25 s against 1 s scores 80) by the group's weight, over the groups with
data; `coverage` says what share of the weight had data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from swarmperf.bench.error_patterns import ErrorAnalysis, analyse_records
from swarmperf.bench.results import ScenarioResult, SuiteResult
from swarmperf.bench.thresholds import (
    Figures,
    Kind,
    Threshold,
    ThresholdResult,
    evaluate,
    figures_from_scenario,
    format_value,
    parse_threshold,
)
from swarmperf.core.errors import ConfigError

Group = Literal["throughput", "latency", "reliability", "scalability"]
Status = Literal["pass", "fail", "no data"]
GROUPS: tuple[Group, ...] = ("throughput", "latency", "reliability", "scalability")
DEFAULT_CRITERIA: tuple[Group, ...] = ("throughput", "latency", "reliability")
DEFAULT_THRESHOLDS: dict[Group, tuple[str, ...]] = {
    "throughput": ("throughput>=100/s",),
    "latency": ("p(99)<=1000ms",),
    "reliability": ("availability>=99.9%", "rate<=0.1%"),
    "scalability": ("linearity>=0.8", "retention>=0.9"),
}
DEFAULT_WEIGHTS: dict[Group, float] = {
    "throughput": 0.25,
    "latency": 0.30,
    "reliability": 0.30,
    "scalability": 0.15,
}
SLA_KINDS = ("load", "endurance")
SLA_GROUPS: tuple[Group, ...] = ("throughput", "latency", "reliability")
SUITE_WIDE = "(suite)"  # the scenario name given to criteria about the whole suite
_LOAD_KEYS = (
    "asked_rate_per_s",
    "offered_per_s",
    "asked_per_s",
    "rate_per_s",
    "rate",
    "agents",
)
_THROUGHPUT_KEYS = ("throughput_per_s", "achieved_per_s", "throughput")


_GROUP_OF_KIND: dict[Kind, Group] = {
    "latency": "latency",
    "rate": "reliability",
    "throughput": "throughput",
    "count": "throughput",
    "ratio": "scalability",
}


def group_of(threshold: Threshold) -> Group:
    """Which criteria group an expression belongs to."""
    return _GROUP_OF_KIND[threshold.kind]


def parse_criteria(text: str | Sequence[str]) -> tuple[Group, ...]:
    """`("throughput", "latency")` from `"throughput,latency"`; an unknown name is an error."""
    names = text.split(",") if isinstance(text, str) else list(text)
    chosen: list[Group] = []
    for raw in names:
        name = raw.strip().lower()
        if name not in GROUPS:
            raise ConfigError(
                "--criteria", raw, f"Use a comma-separated list of: {', '.join(GROUPS)}."
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise ConfigError("--criteria", text, f"Name at least one of: {', '.join(GROUPS)}.")
    return tuple(chosen)


def plan_thresholds(
    criteria: Sequence[Group], overrides: Sequence[str | Threshold] = ()
) -> dict[Group, list[Threshold]]:
    """The thresholds per chosen group: the defaults, where an override with the same aggregate
    replaces the default and any other override is added. An override outside the chosen
    groups is an error (it would silently not be checked)."""
    plan: dict[Group, list[Threshold]] = {
        g: [parse_threshold(e) for e in DEFAULT_THRESHOLDS[g]] for g in criteria
    }
    for item in overrides:
        threshold = item if isinstance(item, Threshold) else parse_threshold(item)
        group = group_of(threshold)
        if group not in plan:
            raise ConfigError(
                "--threshold",
                threshold.to_expression(),
                f"It is a {group} criterion; add {group} to --criteria to check it.",
            )
        kept = [t for t in plan[group] if t.aggregate != threshold.aggregate]
        plan[group] = [*kept, threshold]
    return plan


@dataclass(frozen=True, slots=True)
class Criterion:
    """One threshold checked on one scenario (or the whole suite)."""

    group: Group
    scenario: str
    result: ThresholdResult
    score: float | None  # 0-100; None without data
    recommendation: str | None = None

    @property
    def status(self) -> Status:
        if self.result.passed is None:
            return "no data"
        return "pass" if self.result.passed else "fail"

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "group": self.group,
            "scenario": self.scenario,
            "threshold": r.expression,
            "status": self.status,
            "value": r.value,
            "limit": r.threshold.limit,
            "margin": r.margin,
            "relative_margin": r.relative_margin,
            "score": self.score,
            "detail": r.reason,
            "recommendation": self.recommendation,
        }


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The assessment of one suite result."""

    suite: str
    criteria: tuple[Criterion, ...]
    group_scores: dict[Group, float | None]
    score: float | None  # 0-100 over the groups with data; None when none had any
    coverage: float  # share of the chosen groups' weight that had data, 0-1
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """True only when every criterion passed: a miss or a missing figure fails."""
        return bool(self.criteria) and all(c.status == "pass" for c in self.criteria)

    @property
    def recommendations(self) -> list[str]:
        return [c.recommendation for c in self.criteria if c.recommendation]

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "passed": self.passed,
            "score": self.score,
            "coverage": self.coverage,
            "group_scores": dict(self.group_scores),
            "criteria": [c.to_dict() for c in self.criteria],
            "recommendations": self.recommendations,
            "notes": list(self.notes),
        }


def assess(
    result: SuiteResult,
    criteria: Sequence[Group] = DEFAULT_CRITERIA,
    thresholds: Sequence[str | Threshold] = (),
    *,
    weights: Mapping[Group, float] | None = None,
) -> QualityReport:
    """Check `result` against the chosen criteria groups (defaults, or overridden)."""
    plan = plan_thresholds(criteria, thresholds)
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    notes: list[str] = []
    checked: list[Criterion] = []
    sla = [s for s in result.scenarios if s.kind in SLA_KINDS]
    if not sla and result.scenarios:
        sla = list(result.scenarios)
        notes.append("no load or endurance scenario: the SLA is checked on every one")
    for scenario in sla:
        figures = figures_from_scenario(scenario)
        for group in SLA_GROUPS:
            for threshold in plan.get(group, []):
                checked.append(_criterion(group, scenario.name, threshold, figures, scenario))
    if not sla:
        notes.append("the result has no scenarios")
        none = Figures(missing=dict.fromkeys(_ALL_KEYS, "the result has no scenarios"))
        for group in SLA_GROUPS:
            for threshold in plan.get(group, []):
                checked.append(_criterion(group, SUITE_WIDE, threshold, none, None))
    if "scalability" in plan:
        figures, where, curve = scalability_figures(result.scenarios)
        for threshold in plan["scalability"]:
            criterion = _criterion("scalability", where, threshold, figures, None, curve)
            checked.append(criterion)
    return _report(result.suite, checked, criteria, weights, notes)


_ALL_KEYS = ("latency", "rate", "availability", "throughput", "linearity", "retention")


def _report(
    suite: str,
    checked: list[Criterion],
    criteria: Sequence[Group],
    weights: Mapping[Group, float],
    notes: list[str],
) -> QualityReport:
    group_scores: dict[Group, float | None] = {}
    for group in criteria:
        scores = [c.score for c in checked if c.group == group and c.score is not None]
        group_scores[group] = float(np.mean(scores)) if scores else None
    total = sum(weights.get(g, 0.0) for g in criteria)
    with_data = {g: s for g, s in group_scores.items() if s is not None}
    weight = sum(weights.get(g, 0.0) for g in with_data)
    score = None
    if weight:
        mean = math.fsum(weights.get(g, 0.0) * s for g, s in with_data.items()) / weight
        # A weighted mean lies between its extremes; rounding must not push 100 to 99.999...
        score = min(max(mean, min(with_data.values())), max(with_data.values()))
    coverage = weight / total if total else 0.0
    return QualityReport(suite, tuple(checked), group_scores, score, coverage, tuple(notes))


def _criterion(
    group: Group,
    scenario_name: str,
    threshold: Threshold,
    figures: Figures,
    scenario: ScenarioResult | None,
    curve: Scalability | None = None,
) -> Criterion:
    result = evaluate(threshold, figures)
    score = criterion_score(result)
    advice = None
    if result.passed is False:
        advice = recommend(result, scenario, figures, curve)
    elif result.passed is None:
        advice = (
            f"{scenario_name}: {threshold} has no data ({result.reason.removeprefix('no data: ')})."
        )
    return Criterion(group, scenario_name, result, score, advice)


def criterion_score(result: ThresholdResult) -> float | None:
    """100 for a pass; for a miss, the share of the limit reached (0-100); None without data.

    Shares (error rate, availability) are scored on the failing side: availability 99% against
    99.9% is 10 times the allowed unavailability, so it scores 10, not 99.
    """
    if result.passed is None or result.value is None:
        return None
    if result.passed:
        return 100.0
    t = result.threshold
    value, limit = result.value, t.limit
    if t.kind == "rate" and t.higher_is_better:
        value, limit, upper = 1.0 - value, 1.0 - limit, True
    else:
        upper = not t.higher_is_better
    # The share of the limit reached, on the side where smaller is worse.
    low, high = (limit, value) if upper else (value, limit)
    ratio = low / high if high > 0 else 0.0
    return float(min(max(ratio, 0.0), 1.0) * 100.0)


# -- scalability ---------------------------------------------------------------------------


def load_curve(scenario: ScenarioResult) -> tuple[list[tuple[float, float]], str | None]:
    """(offered load, throughput) points of a scenario's `extra["curve"]`, or why there are none."""
    curve = scenario.extra.get("curve")
    if not isinstance(curve, list) or not curve:
        return [], f"{scenario.name} has no load curve (extra.curve)"
    points: list[tuple[float, float]] = []
    for step in curve:
        if not isinstance(step, Mapping):
            return [], f"{scenario.name}: extra.curve holds {type(step).__name__}, not objects"
        x = _first_number(step, _LOAD_KEYS)
        y = _first_number(step, _THROUGHPUT_KEYS)
        if x is not None and y is not None:
            points.append((x, y))
    if not points:
        return [], f"{scenario.name}: no curve point has both an offered load and a throughput"
    return sorted(points), None


def _first_number(step: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for key in keys:
        value = step.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


@dataclass(frozen=True, slots=True)
class Scalability:
    """Linearity and retention of one load curve (see the module docstring)."""

    points: tuple[tuple[float, float], ...]
    slope: float
    ideal_slope: float
    linearity: float
    retention: float
    peak_throughput: float
    peak_load: float


def scalability(points: Sequence[tuple[float, float]]) -> Scalability | None:
    """The figures of a curve with at least two distinct loads, else None."""
    pts = sorted(points)
    loads = np.array([p[0] for p in pts])
    rates = np.array([p[1] for p in pts])
    if len(pts) < 2 or np.ptp(loads) == 0 or loads[0] <= 0:
        return None
    slope = float(np.polyfit(loads, rates, 1)[0])
    ideal = float(rates[0] / loads[0])
    peak = int(np.argmax(rates))
    linearity = slope / ideal if ideal > 0 else 0.0
    retention = float(rates[-1] / rates[peak]) if rates[peak] > 0 else 0.0
    return Scalability(
        tuple(pts), slope, ideal, linearity, retention, float(rates[peak]), float(loads[peak])
    )


def scalability_figures(
    scenarios: Sequence[ScenarioResult],
) -> tuple[Figures, str, Scalability | None]:
    """Figures for the scalability criteria from the first scenario with a usable load curve
    (stress scenarios first), and that scenario's name."""
    reasons: list[str] = []
    ordered = sorted(scenarios, key=lambda s: s.kind != "stress")
    for scenario in ordered:
        points, why = load_curve(scenario)
        if why is not None:
            if scenario.kind == "stress":
                reasons.append(why)
            continue
        figures = scalability(points)
        if figures is None:
            reasons.append(f"{scenario.name}: its curve needs two or more distinct loads > 0")
            continue
        found = Figures(linearity=figures.linearity, retention=figures.retention)
        return found, scenario.name, figures
    why = "; ".join(reasons) or "no stress scenario in the suite (run one to measure scaling)"
    return Figures(missing={"linearity": why, "retention": why}), SUITE_WIDE, None


# -- advice --------------------------------------------------------------------------------


def _offered_rate(scenario: ScenarioResult) -> float | None:
    duration = sum(it.duration_s for it in scenario.iterations)
    if duration <= 0:
        return None
    return sum(it.asked for it in scenario.iterations) / duration


def _lag_p99(scenario: ScenarioResult) -> float | None:
    lags = [it.lag_p99_s for it in scenario.iterations if it.lag_p99_s is not None]
    return max(lags) if lags else None


def recommend(
    result: ThresholdResult,
    scenario: ScenarioResult | None,
    figures: Figures,
    curve: Scalability | None = None,
) -> str:
    """Advice for a missed threshold, built from the numbers that explain the miss."""
    t = result.threshold
    if result.value is None:
        return f"{t} has no data: {result.reason}"
    head = f"{t.aggregate} {format_value(t.kind, result.value)} misses {t}"
    where = f"{scenario.name}: " if scenario is not None else ""
    if t.kind == "ratio":
        return where + head + ": " + _scaling_advice(t, curve)
    if scenario is None:
        return where + head + "."
    if t.kind == "rate":
        return where + head + ": " + _error_advice(scenario)
    if t.kind == "latency":
        return where + head + ": " + _latency_advice(scenario, figures, t)
    return where + head + ": " + _throughput_advice(scenario, figures, t)


def _latency_advice(scenario: ScenarioResult, figures: Figures, t: Threshold) -> str:
    lag = _lag_p99(scenario)
    if lag is not None and lag > 0.1 * t.limit:
        return (
            f"the load generator itself lagged (p99 send lag {format_value('latency', lag)}), "
            "so part of this is the client: run the generator on a free core or lower the rate, "
            "then measure again"
        )
    offered = _offered_rate(scenario)
    done = figures.throughput_per_s
    if offered and done is not None and done < 0.95 * offered:
        return (
            f"the swarm finished {done:,.1f}/s of the {offered:,.1f}/s offered, so tasks queue: "
            "add agents or concurrency, or lower the offered rate"
        )
    samples = figures.latency_samples_s
    if samples:
        p50 = float(np.percentile(np.asarray(samples), 50))
        if p50 > 0 and result_ratio(t, samples, p50) > 5:
            return (
                f"the median is {format_value('latency', p50)}, so this is a tail: look at the "
                "slowest tasks (large payloads, retries, a slow agent) before adding capacity"
            )
        return (
            f"even the median is {format_value('latency', p50)}: the work itself is slow; "
            "speed up the handler or run it on faster agents"
        )
    return "add agents or speed up the handler"


def result_ratio(t: Threshold, samples: Sequence[float], p50: float) -> float:
    """How far the checked aggregate is above the median (the tail's weight)."""
    data = np.asarray(samples, dtype=float)
    pct = t.percentile
    value = float(np.percentile(data, pct)) if pct is not None else float(data.max())
    return value / p50


def _throughput_advice(scenario: ScenarioResult, figures: Figures, t: Threshold) -> str:
    offered = _offered_rate(scenario)
    if offered is not None and offered < t.limit:
        return (
            f"the scenario offered only {offered:,.1f}/s, below the {t.limit:,.1f}/s asked for: "
            "raise its rate (an open-model run finishes no more than it is offered)"
        )
    dropped = sum(it.dropped for it in scenario.iterations)
    if dropped:
        return (
            f"{dropped} requests could not be sent on time: the load generator is the "
            "bottleneck; give it a free core"
        )
    return "the swarm is saturated: add agents or concurrency, or make tasks cheaper"


def _error_advice(scenario: ScenarioResult) -> str:
    analysis: ErrorAnalysis = analyse_records((scenario.name, e) for e in scenario.errors)
    if not analysis.patterns:
        return "the result lists no error messages; rerun with error capture to see why"
    top = analysis.patterns[0]
    return (
        f"{top.share:.0%} of failures are {top.type}: {top.template!r} ({top.count}); "
        "fix that cause first (see `swarmperf error-analysis`)"
    )


def _scaling_advice(t: Threshold, curve: Scalability | None) -> str:
    if curve is None:
        return "no load curve to explain it"
    peak = f"{curve.peak_throughput:,.1f}/s at a load of {curve.peak_load:,.4g}"
    if t.aggregate == "linearity":
        return (
            f"throughput peaks at {peak} and grows {curve.slope:.3g} per unit of load against "
            f"{curve.ideal_slope:.3g} at the lowest load: the swarm saturates early; add agents, "
            "raise their concurrency, or cut per-task overhead"
        )
    last_load, last_rate = curve.points[-1]
    return (
        f"throughput peaks at {peak} but falls to {last_rate:,.1f}/s at {last_load:,.4g}: "
        "bound the queue (queue.max_queued) or shed load so the swarm keeps its peak rate"
    )

"""SLA rules (YAML) and the evaluator that judges a window of monitor snapshots against them.

A rule states an objective, e.g. `swarm.latency.p99 <= 1000ms`: the comparison is what must
hold. Two early levels, `warning_at` and `critical_at`, are fractions of the *error budget*:
the distance between the metric's ideal value and the threshold.

- Upper limit (`<`, `<=`): the ideal is 0 (or `ideal:`), so `budget_used = value / threshold`
  for the default ideal; `p99 <= 1000ms` warns at 800 ms and is critical at 900 ms.
- Lower limit (`>`, `>=`) on a bounded metric (a ratio or a `%` threshold; ideal 1 = 100%):
  `budget_used = (ideal - value) / (ideal - threshold)`; `availability >= 99.9%` warns at
  99.92% and is critical at 99.91%. Taking 80% of the threshold itself (79.9%) would warn
  only long after the SLA is broken, which is why the budget, not the threshold, is scaled.
- Lower limit with no natural ceiling (throughput): `budget_used = threshold / value`;
  `throughput >= 100/s` warns below 125/s and is critical below 111.1/s.

So `warning_at: 0.8` always means "80% of the room to the threshold is used up", whichever
side the threshold is on; a breach of the objective itself is reported as `breached`.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
import string
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from swarmperf.core.durations import format_duration, format_rate, parse_duration, parse_rate
from swarmperf.core.errors import ConfigError
from swarmperf.spec.types import Duration, Name, PositiveDuration, Section, problem
from swarmperf.store.records import MetricRow

Comparison = Literal["<", "<=", ">", ">="]
Aggregation = Literal["avg", "min", "max", "last", "p50", "p90", "p95", "p99", "count"]
Severity = Literal["warning", "critical"]
State = Literal["ok", "warning", "critical", "no_data"]
Unit = Literal["", "s", "%", "/s"]
Snapshot = tuple[float, Mapping[str, float | None]]

SEVERITIES: tuple[Severity, ...] = ("warning", "critical")
AGENT_WILDCARD = "agent.*."
_TEMPLATE_FIELDS = frozenset(
    {"rule", "metric", "value", "threshold", "state", "severity", "window", "agent", "level"}
)
_METRIC = re.compile(r"^(swarm|system)\.[a-z0-9_.]+$|^agent\.(\*|[A-Za-z0-9][A-Za-z0-9_.-]*)\.")
# Metrics whose best value is 1: a lower limit on them has a budget up to 1 (see the docstring).
_RATIO_METRICS = re.compile(r"^swarm\.availability$|^agent\..+\.utilization$")
_SWARM_METRICS = frozenset(
    {
        "swarm.completed",
        "swarm.failed",
        "swarm.throughput_per_s",
        "swarm.error_rate",
        "swarm.availability",
        "swarm.queue_depth",
        "swarm.balance_cv",
        *(
            f"swarm.{part}.{q}"
            for part in ("latency", "wait", "service")
            for q in ("count", "p50", "p90", "p95", "p99", "max", "mean")
        ),
    }
)
_AGENT_SUFFIXES = frozenset(
    {
        "completed",
        "failed",
        "in_flight",
        "utilization",
        *(f"service.{q}" for q in ("count", "p50", "p90", "p95", "p99", "max", "mean")),
    }
)


Problem = tuple[str, object, str, str]  # field path, bad value, what is wrong, how to fix it


class SlaError(ConfigError):
    """An SLA or alerting file is invalid; the message lists every problem, each with a fix."""

    def __init__(self, problems: Sequence[Problem], source: str) -> None:
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        lines = [f"Invalid alerting file {source} ({count}):"]
        lines += [
            f"  - {p} {what}. {fix}" if v is NOT_SHOWN else f"  - {p}: {_shown(v)} {what}. {fix}"
            for p, v, what, fix in problems
        ]
        # ConfigError's one-problem wording does not fit a list; set its fields directly.
        Exception.__init__(self, "\n".join(lines))
        self.field, self.value, _, self.fix = problems[0]
        self.problems = tuple(problems)
        self.source = source


# An unknown key's value is left out of messages: a file that is not an alerting file at
# all (a key file, a password file) would otherwise be echoed line by line.
NOT_SHOWN = "(value not shown)"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validation_problems(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """(field path, bad value, problem, fix) for each error pydantic found, paths as in YAML."""
    found: list[Problem] = []
    for error in exc.errors(include_url=False):
        parts = [str(p) for p in error["loc"] if not str(p).startswith("function-")]
        path = ".".join(([prefix] if prefix else []) + parts) or prefix or "(file)"
        ctx: dict[str, Any] = dict(error.get("ctx") or {})
        value = error["input"]
        kind = error["type"]
        if "fix" in ctx:
            found.append((path, ctx.get("value", value), ctx["problem"], ctx["fix"]))
        elif kind == "missing":
            found.append((path, "(missing)", "is required", "Add it."))
        elif kind == "extra_forbidden":
            found.append((path, NOT_SHOWN, "is not a known key", "Remove it or correct its name."))
        elif kind == "literal_error":
            choices = ctx.get("expected", "a valid choice")
            found.append((path, value, "is not one of the choices", f"Use {choices}."))
        else:
            found.append((path, value, "is not valid", f"{error['msg']}."))
    return found


# -- thresholds -------------------------------------------------------------------------


def parse_threshold(value: object) -> tuple[float, Unit]:
    """A threshold and its unit from `99.9%`, `1000ms`, `100/s` or a bare number."""
    fix = "Use a number, a percentage (99.9%), a duration (1000ms) or a rate (100/s)."
    if isinstance(value, bool):
        raise problem("threshold", "is not a threshold", fix)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise problem("threshold", "must be finite", fix)
        return float(value), ""
    if not isinstance(value, str):
        raise problem("threshold", "is not a threshold", fix)
    text = value.strip()
    try:
        if text.endswith("%"):
            # Decimal, so that 99.9% is the float nearest 0.999 and not 0.9990000000000001.
            return float(Decimal(text[:-1].strip()) / 100), "%"
        if "/" in text:
            return parse_rate(text, "threshold"), "/s"
        if text and text[-1].isalpha():
            return parse_duration(text, "threshold"), "s"
        number = float(text)
    except (ConfigError, ValueError, InvalidOperation):
        raise problem("threshold", "is not a valid threshold", fix) from None
    if not math.isfinite(number):
        raise problem("threshold", "must be finite", fix)
    return number, ""


def format_value(value: float, unit: Unit) -> str:
    """`value` for people, in the unit its rule's threshold was written in."""
    if unit == "%":
        return f"{value * 100:.4g}%"
    if unit == "s":
        return f"{value * 1000:.4g}ms" if abs(value) < 1 else f"{value:.4g}s"
    if unit == "/s":
        return f"{value:.4g}/s"
    return f"{value:.4g}"


def threshold_text(value: float, unit: Unit) -> str | float:
    """The threshold as it reads back through `parse_threshold`."""
    if unit == "%":
        return f"{round(value * 100, 10):g}%"
    if unit == "s":
        return format_duration(value)
    if unit == "/s":
        return format_rate(value)
    return value


# -- rules ------------------------------------------------------------------------------


class SlaRule(Section):
    """One objective on one flat snapshot metric, and how to alert on it."""

    name: Name
    metric: str
    aggregation: Aggregation = "avg"
    window: PositiveDuration = 300.0
    comparison: Comparison
    threshold: float
    unit: Unit = ""
    ideal: float | None = None
    for_: Annotated[Duration, Field(alias="for")] = 0.0
    severity: Severity = "critical"
    warning_at: Annotated[float, Field(gt=0)] = 0.8
    critical_at: Annotated[float, Field(gt=0)] = 0.9
    labels: dict[Name, str] = Field(default_factory=dict)
    annotations: dict[Name, str] = Field(default_factory=dict)

    model_config = Section.model_config | {"populate_by_name": True}

    @model_validator(mode="before")
    @classmethod
    def _split_threshold(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "threshold" in data and "unit" not in data:
            try:
                number, unit = parse_threshold(data["threshold"])
            except PydanticCustomError:
                return data  # reported against the field by `_threshold`, with the rest
            data = {**data, "threshold": number, "unit": unit}
        return data

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value: object) -> float:
        return parse_threshold(value)[0]

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if not _METRIC.match(metric):
            raise problem(
                "metric",
                "is not a snapshot metric",
                "Use a flat name such as swarm.availability, swarm.latency.p99 or "
                "agent.*.utilization.",
            )
        if metric.startswith("swarm.") and metric not in _SWARM_METRICS:
            close = difflib.get_close_matches(metric, sorted(_SWARM_METRICS), n=1)
            guess = f"Did you mean {close[0]!r}? " if close else ""
            raise problem(
                "metric",
                "is not a swarm metric",
                f"{guess}Choose one of: {', '.join(sorted(_SWARM_METRICS))}.",
            )
        if metric.startswith("agent."):
            suffix = metric.split(".", 2)[2] if metric.count(".") >= 2 else ""
            if suffix not in _AGENT_SUFFIXES:
                raise problem(
                    "metric",
                    "is not an agent metric",
                    f"Use agent.*.<name> with <name> one of: {', '.join(sorted(_AGENT_SUFFIXES))}.",
                )
        return metric

    @field_validator("labels")
    @classmethod
    def _own_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        taken = sorted(set(labels) & {"alertname", "severity", "agent"})
        if taken:
            raise problem(
                "labels",
                f"sets {taken[0]!r}, which alerts set themselves",
                "Remove it: alertname is the rule name, severity the level, agent the agent.",
                value=labels,
            )
        return labels

    @field_validator("annotations")
    @classmethod
    def _templates(cls, annotations: dict[str, str]) -> dict[str, str]:
        for text in annotations.values():
            try:
                parts = [p for p in string.Formatter().parse(text) if p[1] is not None]
            except ValueError:
                raise problem(
                    "template", "has an unbalanced brace", "Write {{ or }} for a literal brace."
                ) from None
            if any(spec or conversion for _, _, spec, conversion in parts):
                raise problem(
                    "template",
                    "formats a field",
                    "Write fields bare, like {value}: values come formatted in the unit of "
                    "the threshold.",
                    value=text,
                )
            names = [name for _, name, _, _ in parts]
            bad = [n for n in names if n not in _TEMPLATE_FIELDS]
            if bad:
                raise problem(
                    "template",
                    f"uses {{{bad[0]}}}",
                    f"Use only {', '.join('{' + f + '}' for f in sorted(_TEMPLATE_FIELDS))}.",
                    value=text,
                )
        return annotations

    @model_validator(mode="after")
    def _levels(self) -> SlaRule:
        if self.warning_at > self.critical_at:
            raise problem(
                "levels",
                "warning_at is above critical_at",
                "Make warning_at <= critical_at, e.g. 0.8 and 0.9.",
                value={"warning_at": self.warning_at, "critical_at": self.critical_at},
            )
        ideal = self.ideal_value
        if ideal is not None and self.is_upper_limit and not ideal < self.threshold:
            raise problem(
                "ideal",
                "is not below the threshold",
                "For < and <= rules the ideal is lower.",
                value=ideal,
            )
        if ideal is not None and not self.is_upper_limit and not ideal > self.threshold:
            raise problem(
                "ideal",
                "is not above the threshold",
                "For > and >= rules the ideal is higher.",
                value=ideal,
            )
        if ideal is None and self.threshold <= 0:
            raise problem(
                "threshold",
                "must be above 0 for a lower limit with no ideal",
                "Use a threshold > 0, or give an ideal (the best value) for the metric.",
                value=self.threshold,
            )
        return self

    @property
    def is_upper_limit(self) -> bool:
        return self.comparison in ("<", "<=")

    @property
    def per_agent(self) -> bool:
        return self.metric.startswith(AGENT_WILDCARD)

    @property
    def ideal_value(self) -> float | None:
        """The metric's best value; None: unbounded above (budget is threshold / value)."""
        if self.ideal is not None:
            return self.ideal
        if self.is_upper_limit:
            return 0.0
        if self.unit == "%" or _RATIO_METRICS.match(self.metric):
            return 1.0
        return None

    def level_fraction(self, severity: Severity) -> float:
        return self.warning_at if severity == "warning" else self.critical_at

    def level_value(self, severity: Severity) -> float:
        """The metric value at which `severity` begins (inclusive)."""
        frac = self.level_fraction(severity)
        ideal = self.ideal_value
        if ideal is None:
            return self.threshold / frac
        return ideal + frac * (self.threshold - ideal)

    def budget_used(self, value: float) -> float:
        """Share of the error budget `value` uses: 0 at the ideal, 1 at the threshold."""
        ideal = self.ideal_value
        if ideal is None:
            return math.inf if value <= 0 else self.threshold / value
        # + 0.0 turns -0.0 (a value at the ideal of a lower limit) into 0.0.
        return (value - ideal) / (self.threshold - ideal) + 0.0

    def breached(self, value: float) -> bool:
        """True if `value` breaks the objective itself."""
        holds = {
            "<": value < self.threshold,
            "<=": value <= self.threshold,
            ">": value > self.threshold,
            ">=": value >= self.threshold,
        }[self.comparison]
        return not holds

    def severities(self) -> tuple[Severity, ...]:
        """The levels this rule alerts at: both, or only warning if `severity: warning`."""
        return SEVERITIES if self.severity == "critical" else ("warning",)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "metric": self.metric,
            "aggregation": self.aggregation,
            "window": format_duration(self.window),
            "comparison": self.comparison,
            "threshold": threshold_text(self.threshold, self.unit),
            "for": format_duration(self.for_),
            "severity": self.severity,
            "warning_at": self.warning_at,
            "critical_at": self.critical_at,
        }
        if self.ideal is not None:
            data["ideal"] = self.ideal
        if self.labels:
            data["labels"] = dict(self.labels)
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


class RuleSet(Section):
    """The rules of an alerting file and how often they are evaluated."""

    evaluation_interval: PositiveDuration = 60.0
    rules: tuple[SlaRule, ...]

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: tuple[SlaRule, ...]) -> tuple[SlaRule, ...]:
        if not rules:
            raise problem("rules", "is empty", "Give at least one rule (see sla-defaults).")
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise problem(
                    "rules", "name used twice", "Give every rule its own name.", value=rule.name
                )
            seen.add(rule.name)
        return rules

    def with_window(self, window: float) -> RuleSet:
        """The same rules, each over `window` seconds."""
        return self.model_copy(
            update={"rules": tuple(r.model_copy(update={"window": window}) for r in self.rules)}
        )

    def to_data(self) -> dict[str, Any]:
        return {
            "evaluation_interval": format_duration(self.evaluation_interval),
            "rules": [r.to_data() for r in self.rules],
        }


DEFAULT_RULES_YAML = """\
# swarmperf's built-in SLA rules: a starting point. Each rule states the objective; warning_at
# and critical_at are the share of the error budget (ideal value -> threshold) used up.
evaluation_interval: 60s
rules:
  - name: availability
    metric: swarm.availability
    aggregation: avg
    window: 5m
    comparison: ">="
    threshold: 99.9%
    for: 1m
    warning_at: 0.8      # availability at or below 99.92%
    critical_at: 0.9     # availability at or below 99.91%
    annotations:
      summary: "Availability {value} (objective >= {threshold})"
      description: "Share of tasks not rejected or failed for lack of an agent over {window}."
  - name: response_time
    metric: swarm.latency.p99
    aggregation: avg
    window: 5m
    comparison: "<="
    threshold: 1000ms
    for: 1m
    warning_at: 0.8      # p99 at or above 800 ms
    critical_at: 0.9     # p99 at or above 900 ms
    annotations:
      summary: "p99 latency {value} (objective <= {threshold})"
      description: "Queued-to-finished latency, 99th percentile, averaged over {window}."
  - name: throughput
    metric: swarm.throughput_per_s
    aggregation: avg
    window: 5m
    comparison: ">="
    threshold: 100/s
    for: 1m
    warning_at: 0.8      # throughput at or below 125/s
    critical_at: 0.9     # throughput at or below 111.1/s
    annotations:
      summary: "Throughput {value} (objective >= {threshold})"
      description: "Tasks finished per second, averaged over {window}."
  - name: error_rate
    metric: swarm.error_rate
    aggregation: avg
    window: 5m
    comparison: "<="
    threshold: 0.1%
    for: 1m
    warning_at: 0.8      # error rate at or above 0.08%
    critical_at: 0.9     # error rate at or above 0.09%
    annotations:
      summary: "Error rate {value} (objective <= {threshold})"
      description: "Failed tasks over finished tasks, averaged over {window}."
"""


def load_yaml(text: str, source: str) -> dict[str, Any]:
    """A YAML mapping from `text`, or `SlaError` saying what is wrong with it."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SlaError(
            [("(file)", source, f"is not valid YAML ({exc})", "Fix the syntax.")], source
        ) from exc
    if not isinstance(data, dict):
        raise SlaError(
            [("(file)", data, "is not a mapping", "Write 'key: value' lines with a rules: list.")],
            source,
        )
    return data


def read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "--sla", str(path), f"It cannot be read ({exc}). Check the path."
        ) from exc


def parse_rules(data: Mapping[str, Any], source: str = "rules") -> RuleSet:
    """Validate the `evaluation_interval` and `rules` keys of an alerting file's data.

    The other top-level keys (`alerting`, `sinks`) belong to `alerts` and `sinks`.
    """
    picked = {k: v for k, v in data.items() if k not in ("alerting", "sinks")}
    try:
        return RuleSet.model_validate(picked)
    except ValidationError as exc:
        raise SlaError(validation_problems(exc), source) from exc


def load_rules(path: Path | None) -> RuleSet:
    """The rules in the file at `path`, or the built-in rules if `path` is None."""
    if path is None:
        return default_rules()
    return parse_rules(load_yaml(read_file(path), str(path)), str(path))


def default_rules() -> RuleSet:
    return parse_rules(load_yaml(DEFAULT_RULES_YAML, "built-in rules"), "built-in rules")


# -- evaluation -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule (for per-agent rules: one agent) judged over one window."""

    rule: str
    metric: str  # the concrete flat name, e.g. agent.a-1.utilization
    labels: Mapping[str, str]  # rule labels plus `agent` for per-agent rules
    state: State
    value: float | None
    budget_used: float | None
    breached: bool | None
    samples: int  # non-empty values that went into `value`
    reason: str | None = None  # why there is no value
    annotations: Mapping[str, str] = field(default_factory=dict)

    def reaches(self, severity: Severity) -> bool | None:
        """Whether this result is at `severity` or worse; None when there is no data."""
        if self.state == "no_data":
            return None
        order = {"ok": 0, "warning": 1, "critical": 2}
        return order[self.state] >= order[severity]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "metric": self.metric,
            "labels": dict(self.labels),
            "state": self.state,
            "value": self.value,
            # JSON has no infinity: a zero value against a `threshold / value` budget is
            # shown as null here, with its state (critical) and `breached` saying the rest.
            "budget_used": (
                self.budget_used
                if self.budget_used is None or math.isfinite(self.budget_used)
                else None
            ),
            "breached": self.breached,
            "samples": self.samples,
            "reason": self.reason,
            "annotations": dict(self.annotations),
        }


def snapshots_from_rows(rows: Iterable[MetricRow]) -> list[Snapshot]:
    """The store's metric rows regrouped as snapshots `(ts, {name: value})`, oldest first."""
    grouped: dict[float, dict[str, float | None]] = defaultdict(dict)
    for row in rows:
        grouped[row.ts][row.name] = row.value
    return sorted(grouped.items(), key=lambda item: item[0])


def aggregate(values: Sequence[float], how: Aggregation) -> float:
    """One figure for a window's values (at least one)."""
    if how == "count":
        return float(len(values))
    if how == "last":
        return values[-1]
    arr = np.asarray(values, dtype=float)
    if how == "avg":
        return float(arr.mean())
    if how == "min":
        return float(arr.min())
    if how == "max":
        return float(arr.max())
    return float(np.percentile(arr, float(how[1:])))


def evaluate(
    rules: RuleSet | Sequence[SlaRule],
    snapshots: Sequence[Snapshot],
    now: float | None = None,
) -> list[RuleResult]:
    """Judge each rule over the snapshots with `now - window < ts <= now`.

    `now` defaults to the newest snapshot's time. A rule with no value in its window gets
    state "no_data" and a reason; no value is ever filled in.
    """
    rule_list = rules.rules if isinstance(rules, RuleSet) else tuple(rules)
    ordered = sorted(snapshots, key=lambda s: s[0])
    at = now if now is not None else (ordered[-1][0] if ordered else None)
    results: list[RuleResult] = []
    for rule in rule_list:
        window = [] if at is None else [s for s in ordered if at - rule.window < s[0] <= at]
        if rule.per_agent:
            results.extend(_per_agent(rule, window))
        else:
            results.append(_judge(rule, rule.metric, dict(rule.labels), window))
    return results


def _per_agent(rule: SlaRule, window: Sequence[Snapshot]) -> list[RuleResult]:
    suffix = rule.metric[len(AGENT_WILDCARD) :]
    pattern = f"agent.*.{suffix}"
    agents = sorted(
        {
            name[len("agent.") : -len(suffix) - 1]
            for _, values in window
            for name in values
            if fnmatch.fnmatchcase(name, pattern)
        }
    )
    if not agents:
        reason = (
            "no snapshot in the window"
            if not window
            else f"no agent reported {suffix} in the {len(window)} snapshot(s) of the window"
        )
        return [_no_data(rule, rule.metric, dict(rule.labels), reason)]
    return [
        _judge(rule, f"agent.{a}.{suffix}", {**rule.labels, "agent": a}, window) for a in agents
    ]


def _no_data(rule: SlaRule, metric: str, labels: dict[str, str], reason: str) -> RuleResult:
    return RuleResult(
        rule=rule.name,
        metric=metric,
        labels=labels,
        state="no_data",
        value=None,
        budget_used=None,
        breached=None,
        samples=0,
        reason=reason,
        annotations=_annotations(rule, labels, None, "no_data"),
    )


def _judge(
    rule: SlaRule, metric: str, labels: dict[str, str], window: Sequence[Snapshot]
) -> RuleResult:
    if not window:
        return _no_data(rule, metric, labels, "no snapshot in the window")
    present = [values[metric] for _, values in window if metric in values]
    values = [v for v in present if v is not None and math.isfinite(v)]
    if not values:
        if not present:
            reason = f"{metric} is absent from all {len(window)} snapshot(s) of the window"
        else:
            reason = f"{metric} has no value in any of the {len(window)} snapshot(s)"
        return _no_data(rule, metric, labels, reason)
    value = aggregate(values, rule.aggregation)
    used = rule.budget_used(value)
    state: State = "ok"
    for severity in rule.severities():
        if used >= rule.level_fraction(severity):
            state = severity
    return RuleResult(
        rule=rule.name,
        metric=metric,
        labels=labels,
        state=state,
        value=value,
        budget_used=used,
        breached=rule.breached(value),
        samples=len(values),
        annotations=_annotations(rule, labels, value, state),
    )


def _annotations(
    rule: SlaRule, labels: Mapping[str, str], value: float | None, state: State
) -> dict[str, str]:
    fields = {
        "rule": rule.name,
        "metric": rule.metric,
        "value": "no data" if value is None else format_value(value, rule.unit),
        "threshold": f"{threshold_text(rule.threshold, rule.unit)}",
        "state": state,
        "severity": state,
        "level": state,
        "window": format_duration(rule.window),
        "agent": labels.get("agent", ""),
    }
    return {key: text.format_map(fields) for key, text in rule.annotations.items()}

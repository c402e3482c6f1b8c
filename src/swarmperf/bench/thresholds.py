"""k6-style threshold expressions (`p(95)<200ms`, `rate<1%`, `throughput>1000/s`): parse, check.

An expression is `AGGREGATE OP NUMBER[UNIT]`:

- latency aggregates `p(N)` (0 < N <= 100), `avg`, `med`, `min`, `max`, with a time unit
  `us`, `ms`, `s` or `m` (a bare number is milliseconds, as in k6);
- `rate` (the error rate) and `availability` (the share of tasks that succeeded), a fraction
  (`0.01`) or a percentage (`1%`);
- `throughput`, tasks per second (`1000/s`, a bare number) or per minute (`60/m`);
- `count`, the number of tasks that ran to an end, a bare integer;
- `linearity` and `retention`, how throughput scales with load (see `suite.quality`), a number
  (`0.8`) or a percentage (`80%`);

and OP is one of `<`, `<=`, `>`, `>=`. The parser is written by hand rather than with a grammar
library because the grammar is tiny and the point is the error: it names the column and the
part of the expression that is wrong, and lists what is allowed there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from swarmperf.core.errors import ConfigError

Op = Literal["<", "<=", ">", ">="]
Kind = Literal["latency", "rate", "throughput", "count", "ratio"]

OPS: tuple[Op, ...] = ("<=", ">=", "<", ">")  # two-character operators first
TIME_UNITS: dict[str, float] = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
RATE_UNITS: dict[str, float] = {"": 1.0, "%": 0.01}
THROUGHPUT_UNITS: dict[str, float] = {"": 1.0, "/s": 1.0, "/m": 1 / 60}
COUNT_UNITS: dict[str, float] = {"": 1.0}
LATENCY_NAMES = ("avg", "med", "min", "max")
RATIO_NAMES = ("linearity", "retention")
NAMES = ("p(N)", *LATENCY_NAMES, "rate", "availability", "throughput", "count", *RATIO_NAMES)

_UNITS_BY_KIND: dict[Kind, dict[str, float]] = {
    "latency": {"": 1e-3, **TIME_UNITS},  # a bare latency is milliseconds, as in k6
    "rate": RATE_UNITS,
    "throughput": THROUGHPUT_UNITS,
    "count": COUNT_UNITS,
    "ratio": RATE_UNITS,
}
_UNIT_HELP: dict[Kind, str] = {
    "latency": "a time unit: us, ms, s or m (a bare number is ms)",
    "rate": "a fraction like 0.01 or a percentage like 1%",
    "throughput": "a rate like 1000/s or 60/m (a bare number is per second)",
    "count": "a bare number, no unit",
    "ratio": "a number like 0.9 or a percentage like 90%",
}
_NAME = re.compile(r"[A-Za-z_]+")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_UNIT = re.compile(r"us|ms|s|m|%|/s|/m")
EXAMPLES = "p(95)<200ms, avg<100ms, rate<1%, availability>=99.9%, throughput>1000/s, count>=100"


class ThresholdError(ConfigError):
    """A threshold expression does not parse; `column` (0-based) is where it goes wrong."""

    def __init__(self, expression: str, column: int, problem: str, allowed: str) -> None:
        pointer = f"\n    {expression}\n    {' ' * column}^"
        super().__init__(
            "threshold",
            expression,
            f"At column {column + 1}: {problem}. Allowed there: {allowed}.{pointer}\n"
            f"Examples: {EXAMPLES}.",
        )
        self.expression = expression
        self.column = column
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Threshold:
    """One parsed expression. `number` and `unit` are as written; `limit` is in base units
    (seconds, a fraction, tasks per second or tasks)."""

    aggregate: str  # "p(95)", "avg", "med", "min", "max", "rate", "availability", ...
    op: Op
    number: float
    unit: str

    @property
    def kind(self) -> Kind:
        return _kind(self.aggregate)

    @property
    def percentile(self) -> float | None:
        """N of `p(N)`; the median for `med`; else None."""
        if self.aggregate.startswith("p("):
            return float(self.aggregate[2:-1])
        return 50.0 if self.aggregate == "med" else None

    @property
    def limit(self) -> float:
        return self.number * _UNITS_BY_KIND[self.kind][self.unit]

    @property
    def higher_is_better(self) -> bool:
        return self.op in (">", ">=")

    def holds(self, value: float) -> bool:
        limit = self.limit
        return {
            "<": value < limit,
            "<=": value <= limit,
            ">": value > limit,
            ">=": value >= limit,
        }[self.op]

    def to_expression(self) -> str:
        """The canonical text; `parse_threshold` of it gives back an equal Threshold."""
        return f"{self.aggregate}{self.op}{format_number(self.number)}{self.unit}"

    def __str__(self) -> str:
        return self.to_expression()


def format_number(number: float) -> str:
    """The shortest text that reads back as exactly `number`."""
    if number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return repr(number)


def _kind(aggregate: str) -> Kind:
    if aggregate in ("rate", "availability"):
        return "rate"
    if aggregate == "throughput":
        return "throughput"
    if aggregate == "count":
        return "count"
    if aggregate in RATIO_NAMES:
        return "ratio"
    return "latency"


def parse_threshold(expression: str) -> Threshold:
    """Parse `expression`, or raise `ThresholdError` pointing at the first bad part."""
    if not isinstance(expression, str):
        raise ConfigError("threshold", expression, f"Give text such as {EXAMPLES}.")
    text = expression
    pos = _skip(text, 0)
    aggregate, pos = _parse_aggregate(text, pos)
    pos = _skip(text, pos)
    op = next((o for o in OPS if text.startswith(o, pos)), None)
    if op is None:
        raise ThresholdError(text, pos, _found(text, pos, "a comparison"), "<, <=, >, >=")
    pos = _skip(text, pos + len(op))
    number_match = _NUMBER.match(text, pos)
    if number_match is None:
        allowed = "a number (0 or more, such as 200 or 0.5)"
        raise ThresholdError(text, pos, _found(text, pos, "a number"), allowed)
    number = float(number_match.group())
    if not math.isfinite(number):
        raise ThresholdError(text, pos, "the number is too large", "a finite number")
    pos = _skip(text, number_match.end())
    kind = _kind(aggregate)
    units = _UNITS_BY_KIND[kind]
    unit_match = _UNIT.match(text, pos)
    unit = unit_match.group() if unit_match else ""
    if unit not in units:
        raise ThresholdError(
            text, pos, f"{aggregate} does not take the unit {unit!r}", _UNIT_HELP[kind]
        )
    pos = _skip(text, pos + len(unit))
    if pos < len(text):
        problem = f"unexpected {text[pos:]!r} after the limit"
        raise ThresholdError(text, pos, problem, f"the end of the expression ({_UNIT_HELP[kind]})")
    if kind == "rate" and number * units[unit] > 1:
        raise ThresholdError(
            text, number_match.start(), f"{aggregate} is a share, at most 1 (100%)", "0 to 100%"
        )
    if kind == "count" and not number.is_integer():
        raise ThresholdError(text, number_match.start(), "a count is a whole number", "0, 1, 2...")
    return Threshold(aggregate, op, number, unit)


def _parse_aggregate(text: str, pos: int) -> tuple[str, int]:
    name_match = _NAME.match(text, pos)
    allowed = ", ".join(NAMES)
    if name_match is None:
        raise ThresholdError(text, pos, _found(text, pos, "what to check"), allowed)
    name = name_match.group().lower()
    if name == "p":
        return _parse_percentile(text, name_match.end())
    if name not in NAMES:
        raise ThresholdError(text, pos, f"unknown aggregate {name_match.group()!r}", allowed)
    return name, name_match.end()


def _parse_percentile(text: str, pos: int) -> tuple[str, int]:
    if not text.startswith("(", pos):
        raise ThresholdError(text, pos, _found(text, pos, "'(' after p"), "p(N), e.g. p(95)")
    number_match = _NUMBER.match(text, _skip(text, pos + 1))
    if number_match is None:
        at = _skip(text, pos + 1)
        raise ThresholdError(text, at, _found(text, at, "a percentile"), "a number in (0, 100]")
    value = float(number_match.group())
    if not 0 < value <= 100:
        problem = f"percentile {number_match.group()} is out of range"
        raise ThresholdError(text, number_match.start(), problem, "a number in (0, 100]")
    end = _skip(text, number_match.end())
    if not text.startswith(")", end):
        raise ThresholdError(text, end, _found(text, end, "')'"), "')' closing p(N")
    return f"p({format_number(value)})", end + 1


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _found(text: str, pos: int, wanted: str) -> str:
    if pos >= len(text):
        return f"the expression ends where {wanted} should be"
    return f"expected {wanted}, found {text[pos : pos + 8]!r}"


def parse_thresholds(expressions: Sequence[str]) -> list[Threshold]:
    return [parse_threshold(e) for e in expressions]


# -- evaluation ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """The figures thresholds are checked against; None where a figure was not measured.

    Latency is in seconds; `latency_samples_s` are individual latencies (any order), possibly
    a bounded sample of them. `latency` holds exact aggregates by name (`p(99)`, `avg`,
    `max`...), used first; the samples answer the others. `missing` says why a None figure is
    missing.
    """

    latency_samples_s: tuple[float, ...] = ()
    latency: Mapping[str, float] | None = None
    error_rate: float | None = None
    availability: float | None = None
    throughput_per_s: float | None = None
    count: int | None = None
    linearity: float | None = None
    retention: float | None = None
    missing: Mapping[str, str] | None = None


class IterationLike(Protocol):
    @property
    def completed(self) -> int: ...
    @property
    def succeeded(self) -> int: ...
    @property
    def failed(self) -> int: ...


class ScenarioLike(Protocol):
    """What the checks read from a scenario result (see `suite.results.ScenarioResult`)."""

    @property
    def name(self) -> str: ...
    @property
    def summary(self) -> Mapping[str, float | None]: ...
    @property
    def latency_samples_s(self) -> Sequence[float]: ...
    @property
    def iterations(self) -> Sequence[IterationLike]: ...


_SUMMARY_LATENCY = {"avg": "latency_mean_s", "min": "latency_min_s", "max": "latency_max_s"}


def figures_from_scenario(scenario: ScenarioLike) -> Figures:
    """The figures of one scenario: latencies from its sample reservoir, rates from its summary
    (else from its iterations' counts), with the reason for each figure that is missing."""
    summary = scenario.summary
    missing: dict[str, str] = {}
    latency: dict[str, float] = {}
    for key, value in summary.items():
        found = re.fullmatch(r"latency_p(\d+(?:\.\d+)?)_s", key)
        if found and value is not None:
            latency[f"p({format_number(float(found.group(1)))})"] = value
    for name, key in _SUMMARY_LATENCY.items():
        value = summary.get(key)
        if value is not None:
            latency[name] = value
    if "p(50)" in latency:
        latency["med"] = latency["p(50)"]
    completed = sum(it.completed for it in scenario.iterations)
    succeeded = sum(it.succeeded for it in scenario.iterations)
    failed = sum(it.failed for it in scenario.iterations)
    error_rate = summary.get("error_rate")
    if error_rate is None and completed:
        error_rate = failed / completed
    availability = summary.get("availability")
    if availability is None and completed:
        availability = succeeded / completed
    if completed == 0:
        missing["rate"] = missing["availability"] = "no task ran to an end"
    throughput = summary.get("throughput_per_s")
    if throughput is None:
        missing["throughput"] = "the summary has no throughput_per_s"
    if not scenario.latency_samples_s and not latency:
        missing["latency"] = "no latency was recorded (no task succeeded?)"
    return Figures(
        latency_samples_s=tuple(scenario.latency_samples_s),
        latency=latency,
        error_rate=error_rate,
        availability=availability,
        throughput_per_s=throughput,
        count=completed if scenario.iterations else None,
        missing=missing,
    )


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """A threshold checked: `passed` is None when the figure is missing (`reason` says why).

    `margin` is the room left before the limit, in base units: positive when it holds, negative
    by how much it missed; `relative_margin` is that as a share of the limit.
    """

    threshold: Threshold
    value: float | None
    passed: bool | None
    margin: float | None
    relative_margin: float | None
    reason: str

    @property
    def expression(self) -> str:
        return self.threshold.to_expression()


def value_of(threshold: Threshold, figures: Figures) -> tuple[float | None, str]:
    """The measured figure a threshold is about, with how it was obtained or why it is None."""
    missing = figures.missing or {}
    if threshold.kind == "latency":
        return _latency_value(threshold, figures, missing)
    if threshold.aggregate == "rate":
        why = missing.get("rate", "no error rate was measured")
        return figures.error_rate, "error rate" if figures.error_rate is not None else why
    if threshold.aggregate == "availability":
        why = missing.get("availability", "no availability was measured")
        return figures.availability, "availability" if figures.availability is not None else why
    if threshold.aggregate == "throughput":
        why = missing.get("throughput", "no throughput was measured")
        value = figures.throughput_per_s
        return value, "throughput" if value is not None else why
    if threshold.kind == "ratio":
        value = figures.linearity if threshold.aggregate == "linearity" else figures.retention
        why = missing.get(threshold.aggregate, f"no {threshold.aggregate} was measured")
        return value, threshold.aggregate if value is not None else why
    count = None if figures.count is None else float(figures.count)
    return count, "tasks that ran to an end" if count is not None else "no task count"


def _latency_value(
    threshold: Threshold, figures: Figures, missing: Mapping[str, str]
) -> tuple[float | None, str]:
    known = figures.latency or {}
    if threshold.aggregate in known:
        # Exact, over every latency; the samples may be a bounded subset (see the runner).
        return known[threshold.aggregate], "from the summary"
    samples = figures.latency_samples_s
    if samples:
        data = np.asarray(samples, dtype=float)
        pct = threshold.percentile
        n = f"{len(samples)} latency samples"
        if pct is not None:
            return float(np.percentile(data, pct)), n
        if threshold.aggregate == "avg":
            return float(data.mean()), n
        return float(data.min() if threshold.aggregate == "min" else data.max()), n
    why = missing.get("latency") or (
        f"no latency samples, and the summary has no {threshold.aggregate}"
    )
    return None, why


def evaluate(threshold: Threshold, figures: Figures) -> ThresholdResult:
    value, how = value_of(threshold, figures)
    if value is None:
        return ThresholdResult(threshold, None, None, None, None, f"no data: {how}")
    limit = threshold.limit
    margin = limit - value if threshold.op in ("<", "<=") else value - limit
    relative = margin / abs(limit) if limit else None
    passed = threshold.holds(value)
    shown = f"{format_value(threshold.kind, value)} {'meets' if passed else 'misses'} {threshold}"
    return ThresholdResult(threshold, value, passed, margin, relative, f"{shown} ({how})")


def evaluate_all(thresholds: Sequence[Threshold], figures: Figures) -> list[ThresholdResult]:
    return [evaluate(t, figures) for t in thresholds]


def format_value(kind: Kind, value: float) -> str:
    """A figure for people: `1.42 s`, `180 ms`, `0.12%`, `1,204/s`, `300`."""
    if kind == "latency":
        if abs(value) >= 1:
            return f"{value:.3g} s"
        if abs(value) >= 1e-3:
            return f"{value * 1e3:.3g} ms"
        return f"{value * 1e6:.3g} us"
    if kind == "rate":
        return f"{value * 100:.3g}%"
    if kind == "throughput":
        return f"{value:,.1f}/s"
    if kind == "ratio":
        return f"{value:.3g}"
    return f"{value:,.0f}"

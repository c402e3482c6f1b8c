"""Error analysis: failures grouped by message template and type, with counts, times and trend.

Messages that differ only in ids, numbers, quoted values or paths are one pattern: `task t17
timed out after 2.5 s` and `task t912 timed out after 3 s` both become `task <id> timed out
after <num> s`. For task results (one time per failure), each pattern also gets a trend: its
share of the tasks that ended in each of `buckets` equal slices of the run, tested with
Mann-Kendall. Error records of a results file carry only first and last seen times, so
they get no trend, and say so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from swarmperf.core.model import TaskResult, TaskStatus

TrendDirection = Literal["increasing", "decreasing", "none"]
MAX_EXAMPLES = 3
DEFAULT_BUCKETS = 10
MIN_FOR_TREND = 8  # fewer occurrences than this tell nothing about a trend over ten buckets

# Order matters: the specific shapes go first so that, say, a uuid is not read as numbers.
_PLACEHOLDERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"(?:[A-Za-z]:\\|~?/)[\w.\-]+(?:[/\\][\w.\-]+)+/?"), "<path>"),
    (re.compile(r"[-+]?\b\d+(?:\.\d+(?:[eE][-+]?\d+)?|[eE][-+]?\d+)\b"), "<num>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\b[A-Za-z]+[_-]?\d+\b"), "<id>"),
    (re.compile(r"[-+]?\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<num>"),
)


def normalise(message: str) -> str:
    """The template of an error message: variable parts replaced by placeholders."""
    text = message.strip()
    for pattern, placeholder in _PLACEHOLDERS:
        text = pattern.sub(placeholder, text)
    return re.sub(r"\s+", " ", text)


def split_error(error: str) -> tuple[str, str]:
    """`("TimeoutError", "...")` from a task's `"TimeoutError: ..."`; the type is "error" when
    the text does not start with an exception name."""
    found = re.match(r"((?:[A-Za-z_]\w*\.)*[A-Z]\w*):\s*(.*)", error, re.S)
    if found:
        return found.group(1), found.group(2)
    return "error", error


class ErrorRecordLike(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def first_seen(self) -> float: ...
    @property
    def last_seen(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Trend:
    """Whether a pattern's share of tasks rose or fell over the run (Mann-Kendall)."""

    direction: TrendDirection
    p_value: float | None
    tau: float | None
    buckets: int


@dataclass(frozen=True, slots=True)
class ErrorPattern:
    """Failures of one type whose messages share a template."""

    type: str
    template: str
    count: int
    share: float  # of all failures analysed
    first_seen: float
    last_seen: float
    examples: tuple[str, ...]
    scenarios: tuple[str, ...] = ()
    trend: Trend | None = None
    trend_reason: str | None = None  # why `trend` is None


@dataclass(frozen=True, slots=True)
class ErrorAnalysis:
    """All patterns, most frequent first, and the totals they come from."""

    patterns: tuple[ErrorPattern, ...]
    failures: int
    tasks: int | None  # tasks analysed (failed or not); None for error records
    notes: tuple[str, ...] = ()

    @property
    def error_rate(self) -> float | None:
        return None if not self.tasks else self.failures / self.tasks


@dataclass
class _Group:
    type: str
    template: str
    count: int = 0
    first_seen: float = float("inf")
    last_seen: float = float("-inf")
    examples: list[str] = field(default_factory=list)
    scenarios: set[str] = field(default_factory=set)
    times: list[float] = field(default_factory=list)

    def add(self, message: str, count: int, first: float, last: float, scenario: str) -> None:
        self.count += count
        self.first_seen = min(self.first_seen, first)
        self.last_seen = max(self.last_seen, last)
        if message not in self.examples and len(self.examples) < MAX_EXAMPLES:
            self.examples.append(message)
        if scenario:
            self.scenarios.add(scenario)


def analyse_records(
    records: Iterable[tuple[str, ErrorRecordLike]],
) -> ErrorAnalysis:
    """Group error records, each paired with the scenario it came from ("" if none)."""
    groups: dict[tuple[str, str], _Group] = {}
    for scenario, record in records:
        key = (record.type, normalise(record.message))
        group = groups.setdefault(key, _Group(*key))
        group.add(record.message, record.count, record.first_seen, record.last_seen, scenario)
    reason = "error records keep only first and last seen times, not each failure's time"
    patterns = _patterns(groups, lambda g: (None, reason))
    return ErrorAnalysis(patterns, sum(p.count for p in patterns), None)


def analyse_results(
    results: Iterable[TaskResult], *, buckets: int = DEFAULT_BUCKETS
) -> ErrorAnalysis:
    """Group the failed task results of a run; trends over `buckets` slices of the run."""
    if buckets < 4:
        raise ValueError(f"buckets: {buckets!r} is not valid. Use 4 or more.")
    groups: dict[tuple[str, str], _Group] = {}
    ends: list[float] = []
    for result in results:
        end = _end_time(result)
        ends.append(end)
        if result.status is not TaskStatus.FAILED and result.error is None:
            continue
        kind, message = split_error(result.error or result.status.value)
        key = (kind, normalise(message))
        group = groups.setdefault(key, _Group(*key))
        group.add(message, 1, end, end, result.kind)
        group.times.append(end)
    if not ends:
        return ErrorAnalysis((), 0, 0, ("the run has no task results",))
    edges = _edges(min(ends), max(ends), buckets)
    totals = _histogram(ends, edges)
    patterns = _patterns(groups, lambda g: _trend(g.times, edges, totals))
    return ErrorAnalysis(patterns, sum(p.count for p in patterns), len(ends))


def _end_time(result: TaskResult) -> float:
    for value in (result.finished_at, result.started_at):
        if value is not None:
            return value
    return result.queued_at


def _patterns(
    groups: dict[tuple[str, str], _Group],
    trend_of: _TrendOf,
) -> tuple[ErrorPattern, ...]:
    total = sum(g.count for g in groups.values()) or 1
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.first_seen, g.type, g.template))
    patterns = []
    for g in ordered:
        trend, reason = trend_of(g)
        patterns.append(
            ErrorPattern(
                type=g.type,
                template=g.template,
                count=g.count,
                share=g.count / total,
                first_seen=g.first_seen,
                last_seen=g.last_seen,
                examples=tuple(g.examples),
                scenarios=tuple(sorted(g.scenarios)),
                trend=trend,
                trend_reason=reason,
            )
        )
    return tuple(patterns)


class _TrendOf(Protocol):
    def __call__(self, group: _Group, /) -> tuple[Trend | None, str | None]: ...


def _edges(start: float, end: float, buckets: int) -> list[float]:
    width = (end - start) / buckets
    return [start + i * width for i in range(buckets + 1)]


def _histogram(times: Sequence[float], edges: Sequence[float]) -> list[int]:
    import numpy as np

    counts, _ = np.histogram(np.asarray(times, dtype=float), bins=np.asarray(edges))
    return [int(c) for c in counts]


def _trend(
    times: Sequence[float], edges: Sequence[float], totals: Sequence[int]
) -> tuple[Trend | None, str | None]:
    from swarmperf.bench.trend import mann_kendall

    if len(times) < MIN_FOR_TREND:
        return None, f"{len(times)} occurrences; a trend needs at least {MIN_FOR_TREND}"
    if edges[-1] <= edges[0]:
        return None, "every task ended at the same instant"
    counts = _histogram(times, edges)
    shares = [c / t for c, t in zip(counts, totals, strict=True) if t]
    result = mann_kendall(shares)
    return Trend(result.direction, result.p_value, result.tau, len(shares)), None

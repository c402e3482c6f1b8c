"""Error analysis: failures grouped by message template and type, with counts, times and trend.

Messages that differ only in ids, numbers, quoted values or paths are one pattern: `task t17
timed out after 2.5 s` and `task t912 timed out after 3 s` both become `task <id> timed out
after <num> s`. Each pattern also gets a trend: its share of the tasks that ended in each of
`buckets` equal slices of the run, tested with Mann-Kendall. Task results carry each
failure's time; error records of a results file carry their counts per slice (`Slices`), and
a pattern seen in several scenarios is trended over the same slices of each. Records from
files written before they carried slices get no trend, and say so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from swarmperf.core.model import TaskResult, TaskStatus

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Times = Sequence[float] | npt.NDArray[np.float64]

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
    # A number may carry a unit (`2.5s`, `100ms`) but must not start a longer word: taking
    # the `0` off `0A0` would leave `A0` standing alone, an id the next pass would replace,
    # and a template must come out of `normalise` unchanged.
    (re.compile(r"[-+]?\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?=[A-Za-z]*\b)"), "<num>"),
)


def normalise(message: str) -> str:
    """The template of an error message: variable parts replaced by placeholders.

    A template is its own template (`normalise(normalise(m)) == normalise(m)`), so templates
    from different runs or files group together.
    """
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
    @property
    def counts_by_slice(self) -> Sequence[int]: ...
    @property
    def tasks_by_slice(self) -> Sequence[int]: ...


@dataclass(frozen=True, slots=True)
class Slices:
    """Equal time slices of a run and how many tasks ended in each: what a trend's shares are
    of. A results file keeps, per error, its count in each slice (a bounded summary of its
    times) with these totals."""

    edges: tuple[float, ...]
    tasks: tuple[int, ...]

    @classmethod
    def of(cls, ends: Times, buckets: int = DEFAULT_BUCKETS) -> Slices | None:
        """Slices of the span of `ends` (one time per task); None when there is no span."""
        if buckets < 4:
            raise ValueError(f"buckets: {buckets!r} is not valid. Use 4 or more.")
        import numpy as np

        values = np.asarray(ends, dtype=float)
        if not values.size:
            return None
        start, end = float(values.min()), float(values.max())
        if end <= start:
            return None
        width = (end - start) / buckets
        edges = (*(start + i * width for i in range(buckets)), end)
        return cls(edges, tuple(_histogram(values, edges)))

    def count(self, times: Times) -> list[int]:
        """How many of `times` fall in each slice (times outside the span are left out)."""
        return _histogram(times, self.edges)


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
    # From error records: failures per slice, summed, and each scenario's tasks per slice.
    counts: list[int] = field(default_factory=list)
    tasks: dict[tuple[str, tuple[int, ...]], tuple[int, ...]] = field(default_factory=dict)
    unsliced: int = 0  # records that carry no slices

    def add(self, message: str, count: int, first: float, last: float, scenario: str) -> None:
        self.count += count
        self.first_seen = min(self.first_seen, first)
        self.last_seen = max(self.last_seen, last)
        if message not in self.examples and len(self.examples) < MAX_EXAMPLES:
            self.examples.append(message)
        if scenario:
            self.scenarios.add(scenario)

    def add_slices(self, scenario: str, counts: Sequence[int], tasks: Sequence[int]) -> None:
        n = len(self.counts) or len(counts)
        if not counts or len(counts) != n or len(tasks) != n:
            self.unsliced += 1
            return
        self.counts = [a + b for a, b in zip(self.counts or [0] * n, counts, strict=True)]
        # Records of one scenario share its tasks per slice: they are counted once.
        self.tasks[(scenario, tuple(tasks))] = tuple(tasks)


def analyse_records(
    records: Iterable[tuple[str, ErrorRecordLike]],
) -> ErrorAnalysis:
    """Group error records, each paired with the scenario it came from ("" if none)."""
    groups: dict[tuple[str, str], _Group] = {}
    for scenario, record in records:
        key = (record.type, normalise(record.message))
        group = groups.setdefault(key, _Group(*key))
        group.add(record.message, record.count, record.first_seen, record.last_seen, scenario)
        group.add_slices(scenario, record.counts_by_slice, record.tasks_by_slice)
    patterns = _patterns(groups, _record_trend)
    return ErrorAnalysis(patterns, sum(p.count for p in patterns), None)


def _record_trend(group: _Group) -> tuple[Trend | None, str | None]:
    if group.unsliced:
        return None, (
            "the results file has no counts over time for these errors (it predates them, "
            "or the scenario ended in an instant), only first and last seen times"
        )
    totals = [sum(column) for column in zip(*group.tasks.values(), strict=True)]
    return _trend(group.counts, totals)


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
    slices = Slices.of(ends, buckets)

    def trend(group: _Group) -> tuple[Trend | None, str | None]:
        few = _too_few(len(group.times))
        if few is not None:
            return None, few
        if slices is None:
            return None, "every task ended at the same instant"
        return _trend(slices.count(group.times), slices.tasks)

    patterns = _patterns(groups, trend)
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


def _histogram(times: Times, edges: Sequence[float]) -> list[int]:
    import numpy as np

    counts, _ = np.histogram(np.asarray(times, dtype=float), bins=np.asarray(edges))
    return [int(c) for c in counts]


def _too_few(seen: int) -> str | None:
    if seen < MIN_FOR_TREND:
        return f"{seen} occurrences; a trend needs at least {MIN_FOR_TREND}"
    return None


def _trend(counts: Sequence[int], totals: Sequence[int]) -> tuple[Trend | None, str | None]:
    """The trend of a pattern's share of tasks over slices, from its count in each."""
    from swarmperf.bench.trend import mann_kendall

    few = _too_few(sum(counts))
    if few is not None:
        return None, few
    shares = [c / t for c, t in zip(counts, totals, strict=True) if t]
    result = mann_kendall(shares)
    return Trend(result.direction, result.p_value, result.tau, len(shares)), None

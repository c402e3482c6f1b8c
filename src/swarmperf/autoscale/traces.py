"""Workload traces for autoscaling: tasks per interval, or one row per request, read and checked.

Two CSV layouts, both with a header:

- counts: the first column is an interval index (0, 1, 2, ...) or a timestamp, the second the
  number of tasks that arrived in that interval (the NASA-HTTP file's layout). An index counts
  in `interval` seconds; timestamps place each row's count in the interval it falls in.
- requests: one row per task with a timestamp column (`timestamp`, any case), such as the Azure
  LLM inference traces. Columns whose name holds `token` add up to the task's size, which
  scales its service time (a task twice the mean size takes twice the mean service time).

A file is the counts layout when its second column is named like a count (`requests`, `count`,
`tasks`, `arrivals`, `value`, `n`) or its first column is an index; otherwise, with a
timestamp column, it is the requests layout. Rows are streamed into numpy arrays, and a file
may hold at most `MAX_ROWS` rows, so memory stays bounded whatever file is given.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from swarmperf.core.errors import ConfigError

# Ten million rows is 80 MB per numeric column: far beyond the dev traces (84,332 and 19,365
# rows) and still within a laptop's memory.
MAX_ROWS = 10_000_000
COUNT_NAMES = frozenset({"requests", "count", "counts", "tasks", "arrivals", "value", "n"})
TIME_NAMES = frozenset({"timestamp", "time", "ts", "datetime"})

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Trace:
    """A workload: tasks per interval and, for a requests trace, each task's offset and size."""

    name: str
    layout: str  # "counts" or "requests"
    interval: float  # seconds per count
    counts: IntArray  # tasks arriving in each interval
    offsets: FloatArray | None = None  # requests: seconds after the first interval's start
    sizes: FloatArray | None = None  # requests: relative size (mean 1), from token columns

    @property
    def duration(self) -> float:
        return float(len(self.counts)) * self.interval

    @property
    def tasks(self) -> int:
        return int(self.counts.sum())

    def head(self, intervals: int) -> Trace:
        """The first `intervals` intervals, as a trace of their own (for quick runs)."""
        counts = self.counts[:intervals].copy()
        if self.offsets is None:
            return Trace(self.name, self.layout, self.interval, counts)
        n = int(counts.sum())
        sizes = None if self.sizes is None else self.sizes[:n].copy()
        return Trace(self.name, self.layout, self.interval, counts, self.offsets[:n].copy(), sizes)


def _error(path: Path, line: int | None, value: object, fix: str) -> ConfigError:
    where = f"{path}" if line is None else f"{path} line {line}"
    return ConfigError(where, value, fix)


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise _error(path, None, str(path), f"Cannot read the file ({exc.strerror}).") from exc
    with handle:
        try:
            for number, row in enumerate(csv.reader(handle), start=1):
                if number > MAX_ROWS + 1:
                    raise _error(
                        path,
                        number,
                        f"{MAX_ROWS:,} rows",
                        f"A trace may hold at most {MAX_ROWS:,} rows: aggregate it to counts "
                        "per interval first.",
                    )
                if row:
                    yield number, row
        except (UnicodeDecodeError, csv.Error) as exc:
            raise _error(path, None, str(path), f"It is not a readable CSV file ({exc}).") from exc


def _number(path: Path, line: int, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _error(path, line, text, f"The {what} must be a number.") from None
    if not math.isfinite(value):
        raise _error(path, line, text, f"The {what} must be a finite number.")
    return value


def _timestamp(path: Path, line: int, text: str) -> float:
    """Seconds: a number as it is, or an ISO 8601 date and time."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        # Python keeps six fractional digits; the Azure traces write seven.
        head, dot, frac = text.strip().partition(".")
        return datetime.fromisoformat(head + (dot + frac[:6] if dot else "")).timestamp()
    except ValueError:
        raise _error(
            path, line, text, "Timestamps must be ISO 8601 (2023-11-16 18:17:03.98) or seconds."
        ) from None


def _check_interval(interval: float) -> float:
    if not (interval > 0 and math.isfinite(interval)):
        raise ConfigError("--interval", interval, "Use a duration > 0, like 60s.")
    return interval


def read_trace(path: str | Path, *, interval: float = 60.0) -> Trace:
    """Read and check a trace file; every mistake is a `ConfigError` naming the file and line."""
    path = Path(path)
    interval = _check_interval(interval)
    if path.is_dir():
        raise _error(path, None, str(path), "It is a folder: give a CSV file.")
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise _error(path, 1, "", "The file is empty: it needs a header and at least two rows.")
    _, header = first
    names = [name.strip().lower() for name in header]
    time_columns = [i for i, name in enumerate(names) if name in TIME_NAMES]
    if len(names) >= 2 and (names[1] in COUNT_NAMES or not time_columns):
        trace = _read_counts(path, rows, names, interval)
    else:
        trace = _read_requests(path, rows, names, time_columns, interval)
    return trace


def _too_short(path: Path, line: int, intervals: int) -> ConfigError:
    return _error(
        path,
        line,
        f"{intervals} interval(s)",
        "A trace needs at least two intervals to replay or analyse.",
    )


def _read_counts(
    path: Path, rows: Iterator[tuple[int, list[str]]], names: list[str], interval: float
) -> Trace:
    if len(names) < 2:
        raise _error(
            path, 1, ",".join(names), "Expected at least two columns: an index or time, a count."
        )
    keys = array("d")
    counts = array("q")
    timestamps: bool | None = None
    last_line = 1
    for line, row in rows:
        last_line = line
        if len(row) < 2:
            raise _error(path, line, ",".join(row), "Each row needs an index or time and a count.")
        if timestamps is None:
            try:
                float(row[0])
                timestamps = False
            except ValueError:
                timestamps = True
        key = _timestamp(path, line, row[0]) if timestamps else _number(path, line, row[0], "index")
        count = _number(path, line, row[1], "count")
        if count < 0 or count != int(count):
            raise _error(path, line, row[1], "A count must be a whole number >= 0.")
        if keys and key <= keys[-1]:
            raise _error(path, line, row[0], "Rows must be in increasing order of index or time.")
        keys.append(key)
        counts.append(int(count))
    if not counts:
        raise _error(path, last_line, "no rows", "The file has a header but no data rows.")
    k = np.frombuffer(keys, dtype=np.float64)
    c = np.frombuffer(counts, dtype=np.int64)
    step = 1.0 if not timestamps else interval
    slots = np.floor((k - k[0]) / step).astype(np.int64)
    per = np.zeros(int(slots[-1]) + 1, dtype=np.int64)
    np.add.at(per, slots, c)
    if len(per) < 2:
        raise _too_short(path, last_line, len(per))
    return Trace(path.name, "counts", interval, per)


def _read_requests(
    path: Path,
    rows: Iterator[tuple[int, list[str]]],
    names: list[str],
    time_columns: list[int],
    interval: float,
) -> Trace:
    if not time_columns:
        raise _error(
            path,
            1,
            ",".join(names),
            "Expected a header with a timestamp column (one row per task) or an index and a "
            "count column (tasks per interval).",
        )
    at = time_columns[0]
    token_columns = [i for i, name in enumerate(names) if "token" in name]
    times = array("d")
    sizes = array("d")
    last_line = 1
    for line, row in rows:
        last_line = line
        if len(row) < len(names):
            raise _error(path, line, ",".join(row), f"Expected {len(names)} columns.")
        times.append(_timestamp(path, line, row[at]))
        if token_columns:
            size = 0.0
            for i in token_columns:
                tokens = _number(path, line, row[i], names[i])
                if tokens < 0:
                    raise _error(path, line, row[i], "Token counts must be >= 0.")
                size += tokens
            sizes.append(size)
    if not times:
        raise _error(path, last_line, "no rows", "The file has a header but no data rows.")
    t = np.frombuffer(times, dtype=np.float64)
    order = np.argsort(t, kind="stable")  # request logs are not always in order
    offsets = t[order] - t[order[0]]
    size_array: FloatArray | None = None
    if token_columns:
        s = np.frombuffer(sizes, dtype=np.float64)[order]
        mean = float(s.mean())
        size_array = s / mean if mean > 0 else np.ones_like(s)
    slots = np.floor(offsets / interval).astype(np.int64)
    counts = np.bincount(slots).astype(np.int64)
    if len(counts) < 2:
        raise _too_short(path, last_line, len(counts))
    return Trace(path.name, "requests", interval, counts, offsets, size_array)

"""Service-time models, agent models and arrival processes for simulated swarms.

Service models draw one service time (seconds) per task from a `random.Random` the caller
owns, so a whole run follows from one seed. Arrival processes turn a task count into
arrival offsets (seconds after the start, non-decreasing), each from its own `seed`.
Every bad parameter raises `ConfigError` naming the field, the value and the fix.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from swarmperf.core.errors import ConfigError
from swarmperf.core.model import Task

# -- validation -------------------------------------------------------------------------


def _positive(field_name: str, value: float, example: str) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(field_name, value, f"Use a finite number > 0, e.g. {example}.")


def _non_negative(field_name: str, value: float, example: str) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(field_name, value, f"Use a finite number >= 0, e.g. {example}.")


def _count(field_name: str, n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(field_name, n, "Use an integer >= 0.")


def _times(field_name: str, values: Iterable[float], example: str) -> tuple[float, ...]:
    """Finite, non-negative floats; the first bad one is named with its position."""
    out = tuple(float(v) for v in values)
    for i, v in enumerate(out):
        if not (v >= 0 and math.isfinite(v)):
            raise ConfigError(
                f"{field_name}[{i}]", v, f"Use finite numbers of seconds >= 0, e.g. {example}."
            )
    return out


# -- service-time models ----------------------------------------------------------------


class ServiceModel(Protocol):
    """How long an agent takes per task, in seconds."""

    @property
    def mean(self) -> float:
        """The mean service time in seconds."""
        ...

    def sample(self, rng: random.Random) -> float:
        """One service time in seconds, >= 0."""
        ...


@dataclass(frozen=True, slots=True)
class Constant:
    """Every task takes `value` seconds."""

    value: float

    def __post_init__(self) -> None:
        _non_negative("constant.value", self.value, "0.005")

    @property
    def mean(self) -> float:
        return self.value

    def sample(self, rng: random.Random) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class Exponential:
    """Memoryless service times with the given `mean` (seconds)."""

    mean: float

    def __post_init__(self) -> None:
        _positive("exponential.mean", self.mean, "0.005")

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean)


@dataclass(frozen=True, slots=True)
class Lognormal:
    """Log-normal service times with the given `mean` (seconds); `sigma` is the spread of
    the log (0: every task takes `mean`)."""

    mean: float
    sigma: float

    def __post_init__(self) -> None:
        _positive("lognormal.mean", self.mean, "0.005")
        _non_negative("lognormal.sigma", self.sigma, "0.5")

    @property
    def mu(self) -> float:
        """The mean of the log that gives this mean: E[X] = exp(mu + sigma²/2)."""
        return math.log(self.mean) - self.sigma * self.sigma / 2

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma)


@dataclass(frozen=True, slots=True)
class Pareto:
    """Heavy-tailed service times: Pareto with shape `alpha` (> 1, so that the mean
    exists) and the given `mean` (seconds); the smallest time is `scale`."""

    mean: float
    alpha: float

    def __post_init__(self) -> None:
        _positive("pareto.mean", self.mean, "0.005")
        if not (self.alpha > 1 and math.isfinite(self.alpha)):
            raise ConfigError(
                "pareto.alpha",
                self.alpha,
                "Use a finite number > 1 (at 1 or below the mean is infinite), e.g. 1.5.",
            )

    @property
    def scale(self) -> float:
        return self.mean * (self.alpha - 1) / self.alpha

    def sample(self, rng: random.Random) -> float:
        return self.scale * rng.paretovariate(self.alpha)


@dataclass(frozen=True, slots=True)
class Empirical:
    """Service times resampled uniformly from `samples` (seconds), e.g. those an agent
    showed in a recorded run."""

    samples: tuple[float, ...]

    def __init__(self, samples: Iterable[float]) -> None:
        values = _times("empirical.samples", samples, "[0.004, 0.006]")
        if not values:
            raise ConfigError(
                "empirical.samples", [], "Give at least one service time, e.g. [0.004, 0.006]."
            )
        object.__setattr__(self, "samples", values)

    @property
    def mean(self) -> float:
        return math.fsum(self.samples) / len(self.samples)

    def sample(self, rng: random.Random) -> float:
        return rng.choice(self.samples)


@runtime_checkable
class TaskServiceModel(ServiceModel, Protocol):
    """A service model that sees each task, so that its time can follow the task's cost.
    The `sim` backend calls `sample_task` for every task; `sample` stands for a typical one."""

    def sample_task(self, task: Task, rng: random.Random) -> float:
        """The service time of `task` in seconds, >= 0."""
        ...


@dataclass(frozen=True, slots=True)
class LinearService:
    """Service times that follow each task's cost, as fitted to a recorded run: `slope` ×
    the cost plus a residual resampled from `residuals` (seconds; may be negative, the sum
    never goes below 0). A task without a cost takes a time drawn from `uncosted`.

    `sample` (no task at hand) draws the time of a task of `mean_cost`, and `mean` is the
    mean of those draws.
    """

    slope: float  # seconds of service per second of cost
    residuals: tuple[float, ...]
    uncosted: ServiceModel
    mean_cost: float

    def __init__(
        self,
        slope: float,
        residuals: Iterable[float],
        uncosted: ServiceModel,
        mean_cost: float = 0.0,
    ) -> None:
        _non_negative("linear.slope", slope, "1.0")
        _non_negative("linear.mean_cost", mean_cost, "0.005")
        values = tuple(float(v) for v in residuals)
        if not values:
            raise ConfigError(
                "linear.residuals", [], "Give at least one residual, e.g. [0.0001, 0.0009]."
            )
        for i, v in enumerate(values):
            if not math.isfinite(v):
                raise ConfigError(f"linear.residuals[{i}]", v, "Use finite seconds.")
        object.__setattr__(self, "slope", float(slope))
        object.__setattr__(self, "residuals", values)
        object.__setattr__(self, "uncosted", uncosted)
        object.__setattr__(self, "mean_cost", float(mean_cost))

    @property
    def mean(self) -> float:
        base = self.slope * self.mean_cost
        return math.fsum(max(base + r, 0.0) for r in self.residuals) / len(self.residuals)

    def sample(self, rng: random.Random) -> float:
        return max(self.slope * self.mean_cost + rng.choice(self.residuals), 0.0)

    def sample_task(self, task: Task, rng: random.Random) -> float:
        cost = task.cost
        if cost is None:
            return self.uncosted.sample(rng)
        return max(self.slope * cost + rng.choice(self.residuals), 0.0)


# -- agents -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outages:
    """An agent's failure and recovery process: it runs for an exponential time with mean
    `mtbf` seconds, then crashes (its unfinished tasks are queued again) and is back after
    an exponential time with mean `mttr` seconds (`fixed_repair`: exactly `mttr`)."""

    mtbf: float
    mttr: float
    fixed_repair: bool = False

    def __post_init__(self) -> None:
        _positive("outages.mtbf", self.mtbf, "3600")
        _non_negative("outages.mttr", self.mttr, "30")

    def uptime(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mtbf)

    def repair(self, rng: random.Random) -> float:
        if self.fixed_repair or self.mttr == 0:
            return self.mttr
        return rng.expovariate(1.0 / self.mttr)


@dataclass(frozen=True, slots=True)
class AgentModel:
    """How a simulated agent works, beyond its `AgentSpec`.

    `service` None: a task takes what the built-in handlers make it take, its payload in
    seconds times the agent's `slowdown` for `sleep` and `spin`, no time for `noop` and
    `echo`. With a `service` model, each task's time is drawn from it instead (a
    calibrated model already holds the agent's own slowness, so `slowdown` is not applied
    again). Either way `speed` divides the time (what if this agent were twice as fast?)
    and the agent's fault windows apply (to every kind but `noop` and `fail`, as with the
    built-in handlers). `outages` makes it crash and come back.
    """

    service: ServiceModel | None = None
    speed: float = 1.0
    outages: Outages | None = None

    def __post_init__(self) -> None:
        _positive("agent_model.speed", self.speed, "2.0 for twice as fast")


# -- arrival processes ------------------------------------------------------------------


class ArrivalProcess(Protocol):
    """When tasks arrive."""

    def offsets(self, n: int) -> list[float]:
        """Arrival times of `n` tasks, in seconds after the start, non-decreasing."""
        ...


@dataclass(frozen=True, slots=True)
class BatchArrivals:
    """Every task is there at the start."""

    def offsets(self, n: int) -> list[float]:
        _count("tasks", n)
        return [0.0] * n


@dataclass(frozen=True, slots=True)
class ConstantArrivals:
    """One task every 1 / `rate` seconds, the first at the start."""

    rate: float  # tasks per second

    def __post_init__(self) -> None:
        _positive("arrival.rate", self.rate, "500 (tasks per second)")

    def offsets(self, n: int) -> list[float]:
        _count("tasks", n)
        return (np.arange(n, dtype=np.float64) / self.rate).tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class PoissonArrivals:
    """A Poisson process of `rate` tasks per second: exponential gaps."""

    rate: float  # tasks per second
    seed: int = 0

    def __post_init__(self) -> None:
        _positive("arrival.rate", self.rate, "500 (tasks per second)")

    def offsets(self, n: int) -> list[float]:
        _count("tasks", n)
        gaps = np.random.default_rng(self.seed).exponential(1.0 / self.rate, n)
        return np.cumsum(gaps).tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class ReplayArrivals:
    """The arrival offsets of a recorded run (seconds after its start), replayed."""

    times: tuple[float, ...]

    def __init__(self, times: Iterable[float]) -> None:
        object.__setattr__(self, "times", tuple(sorted(_times("replay.times", times, "0.25"))))

    @classmethod
    def from_timestamps(cls, timestamps: Iterable[float]) -> ReplayArrivals:
        """From absolute times (e.g. results' `queued_at`): offsets from the earliest."""
        stamps = [float(t) for t in timestamps]
        first = min(stamps, default=0.0)
        return cls(t - first for t in stamps)

    def offsets(self, n: int) -> list[float]:
        _count("tasks", n)
        if n > len(self.times):
            raise ConfigError(
                "tasks",
                n,
                f"The recording has only {len(self.times)} arrivals; ask for at most that many.",
            )
        return list(self.times[:n])


@dataclass(frozen=True, slots=True)
class CountArrivals:
    """Arrivals from counts per interval (a trace of requests per minute, say): the
    tasks of interval i arrive at uniformly random times within it, drawn from `seed`.

    `starts[i]` is where interval i begins, in intervals after the start (gaps allowed);
    `speedup` compresses time (2: the trace is played twice as fast).
    """

    counts: tuple[int, ...]
    starts: tuple[int, ...]
    interval: float = 60.0
    speedup: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _positive("trace.interval", self.interval, "60 (seconds)")
        _positive("trace.speedup", self.speedup, "10 (ten times faster)")
        if len(self.counts) != len(self.starts):
            raise ConfigError(
                "trace.starts",
                len(self.starts),
                f"Give one start per count ({len(self.counts)} counts).",
            )
        for i, c in enumerate(self.counts):
            if isinstance(c, bool) or not isinstance(c, int) or c < 0:
                raise ConfigError(f"trace.counts[{i}]", c, "Use whole numbers of requests >= 0.")
        for i in range(1, len(self.starts)):
            if self.starts[i] <= self.starts[i - 1]:
                raise ConfigError(
                    f"trace.starts[{i}]",
                    self.starts[i],
                    f"Intervals must increase; the one before starts at {self.starts[i - 1]}.",
                )

    @property
    def total(self) -> int:
        return sum(self.counts)

    def offsets(self, n: int) -> list[float]:
        _count("tasks", n)
        if n > self.total:
            raise ConfigError(
                "tasks",
                n,
                f"The trace holds only {self.total:,} arrivals; ask for at most that many.",
            )
        rng = np.random.default_rng(self.seed)
        out: list[float] = []
        step = self.interval / self.speedup
        for start, count in zip(self.starts, self.counts, strict=True):
            if len(out) >= n:
                break
            if count:
                within = np.sort(rng.random(count)) + start
                out.extend((within * step).tolist())
        del out[n:]
        return out


def read_minute_trace(path: str | Path, *, speedup: float = 1.0, seed: int = 0) -> CountArrivals:
    """A trace of requests per minute as an arrival process: a CSV file with the header
    `minute_index,requests,...` (other columns are ignored), such as
    `datasets/traces/nasa_http_1995_requests_per_minute.csv`."""
    counts, starts = _read_counts(Path(path))
    return CountArrivals(tuple(counts), tuple(starts), 60.0, speedup, seed)


def _read_counts(path: Path) -> tuple[list[int], list[int]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError("trace", str(path), f"Cannot read the file ({exc.strerror}).") from exc
    with handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        needed = ("minute_index", "requests")
        if any(c not in columns for c in needed):
            raise ConfigError(
                "trace",
                str(path),
                f"Expected a CSV header with {', '.join(needed)}; found {', '.join(columns)}.",
            )
        counts: list[int] = []
        starts: list[int] = []
        for line, row in enumerate(reader, start=2):
            try:
                minute = int(row["minute_index"])
                requests = int(row["requests"])
            except (TypeError, ValueError):
                raise ConfigError(
                    f"trace line {line}",
                    f"{row.get('minute_index')},{row.get('requests')}",
                    "minute_index and requests must be whole numbers.",
                ) from None
            if requests < 0:
                raise ConfigError(f"trace line {line}.requests", requests, "Use a count >= 0.")
            if starts and minute <= starts[-1]:
                raise ConfigError(
                    f"trace line {line}.minute_index",
                    minute,
                    f"Minutes must increase; the line before is minute {starts[-1]}.",
                )
            counts.append(requests)
            starts.append(minute)
    return counts, starts


def check_offsets(offsets: Sequence[float], n: int) -> list[float]:
    """`offsets` as a list for `n` tasks: as many, finite, >= 0 and non-decreasing."""
    if len(offsets) != n:
        raise ConfigError(
            "offsets", f"{len(offsets)} offsets", f"Give one arrival offset per task ({n})."
        )
    try:
        values = np.asarray(offsets, dtype=float)
    except (TypeError, ValueError):
        values = None
    if values is not None and values.ndim == 1:
        # Checked as arrays: a million offsets take milliseconds, not a Python loop's second.
        ok = np.isfinite(values) & (np.diff(values, prepend=0.0) >= 0)
        if bool(ok.all()):
            checked: list[float] = values.tolist()
            return checked
    out = [float(x) for x in offsets]  # says which offset is wrong, and how
    previous = 0.0
    for i, x in enumerate(out):
        if not (x >= previous and math.isfinite(x)):
            raise ConfigError(
                f"offsets[{i}]",
                x,
                "Use finite seconds >= 0, in non-decreasing order (sort the tasks by arrival).",
            )
        previous = x
    return out

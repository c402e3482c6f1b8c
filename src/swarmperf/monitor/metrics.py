"""In-process metrics: counters, gauges and sketch-backed histograms with bounded label sets.

Why not prometheus_client's metric classes: each of their updates takes a lock and (for
histograms) walks the bucket bounds, several times the cost of ours
(`benchmarks/metrics_overhead.py`), and their histograms give no quantiles. Exposition still
goes through prometheus_client (`swarmperf.monitor.exposition`).

Every metric holds at most `max_series` label sets. A new label set beyond that folds into
one `__overflow__` series, and `dropped` counts how often that happened, so a label fed
with unbounded values (task ids, say) costs bounded memory and is visible as such.
Updates are meant for one thread (the swarm's event loop); readers copy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Generic, Literal, TypeVar

from swarmperf.core.errors import ConfigError
from swarmperf.monitor.sketch import DEFAULT_ALPHA, QuantileSketch

OVERFLOW = "__overflow__"
DEFAULT_MAX_SERIES = 1000
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Kind = Literal["counter", "gauge", "histogram"]


class CounterSeries:
    """One label set of a counter: a total that only goes up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ConfigError("counter.inc amount", amount, "Counters only go up; use a gauge.")
        self.value += amount


class GaugeSeries:
    """One label set of a gauge: a value that goes up and down."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


S = TypeVar("S", CounterSeries, GaugeSeries, QuantileSketch)


class Metric(Generic[S]):
    """A named metric with label names; `labels(...)` gives the series for one label set."""

    kind: Kind

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> None:
        if not _METRIC_NAME.match(name):
            raise ConfigError(
                "metric name", name, "Use letters, digits, '_' and ':', not starting with a digit."
            )
        for label in labelnames:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ConfigError(
                    f"{name} label name", label, "Use letters, digits and '_', not starting '__'."
                )
        if len(set(labelnames)) != len(labelnames):
            raise ConfigError(f"{name} label names", list(labelnames), "Name each label once.")
        if max_series < 1:
            raise ConfigError(f"{name} max_series", max_series, "Use a whole number >= 1.")
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self.max_series = max_series
        self.dropped = 0  # label sets folded into the overflow series
        self._series: dict[tuple[str, ...], S] = {}
        self._overflow_key = (OVERFLOW,) * len(self.labelnames)

    def _new(self) -> S:
        raise NotImplementedError

    def labels(self, *values: str) -> S:
        """The series for these label values (in `labelnames` order)."""
        series = self._series.get(values)
        if series is not None:
            return series
        if len(values) != len(self.labelnames):
            raise ConfigError(
                f"{self.name} labels",
                list(values),
                f"Give {len(self.labelnames)} value(s), for {', '.join(self.labelnames)}.",
            )
        key = values
        if len(self._series) >= self.max_series + (self._overflow_key in self._series):
            self.dropped += 1
            key = self._overflow_key
            series = self._series.get(key)
            if series is not None:
                return series
        series = self._new()
        self._series[key] = series
        return series

    def series(self) -> Iterator[tuple[tuple[str, ...], S]]:
        """Every label set and its series (a copy, safe to read while updates go on)."""
        yield from dict(self._series).items()

    def __len__(self) -> int:
        return len(self._series)


class Counter(Metric[CounterSeries]):
    kind: Kind = "counter"

    def _new(self) -> CounterSeries:
        return CounterSeries()

    def inc(self, amount: float = 1.0) -> None:
        """Increment the series without labels."""
        self.labels().inc(amount)


class Gauge(Metric[GaugeSeries]):
    kind: Kind = "gauge"

    def _new(self) -> GaugeSeries:
        return GaugeSeries()

    def set(self, value: float) -> None:
        self.labels().set(value)


class Histogram(Metric[QuantileSketch]):
    """A distribution per label set, as a `QuantileSketch` (quantiles within `alpha`)."""

    kind: Kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        max_series: int = DEFAULT_MAX_SERIES,
        alpha: float = DEFAULT_ALPHA,
    ) -> None:
        QuantileSketch(alpha)  # validates alpha up front
        super().__init__(name, help, labelnames, max_series=max_series)
        self.alpha = alpha

    def _new(self) -> QuantileSketch:
        return QuantileSketch(self.alpha)

    def observe(self, x: float) -> None:
        self.labels().observe(x)


AnyMetric = Counter | Gauge | Histogram


class Registry:
    """The metrics of one process or swarm, by name."""

    def __init__(self) -> None:
        self._metrics: dict[str, AnyMetric] = {}

    def _add(self, metric: AnyMetric) -> None:
        if metric.name in self._metrics:
            raise ConfigError("metric name", metric.name, "Register each metric name once.")
        self._metrics[metric.name] = metric

    def counter(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> Counter:
        metric = Counter(name, help, labelnames, max_series=max_series)
        self._add(metric)
        return metric

    def gauge(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> Gauge:
        metric = Gauge(name, help, labelnames, max_series=max_series)
        self._add(metric)
        return metric

    def histogram(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        max_series: int = DEFAULT_MAX_SERIES,
        alpha: float = DEFAULT_ALPHA,
    ) -> Histogram:
        metric = Histogram(name, help, labelnames, max_series=max_series, alpha=alpha)
        self._add(metric)
        return metric

    def get(self, name: str) -> AnyMetric | None:
        return self._metrics.get(name)

    def metrics(self) -> list[AnyMetric]:
        return list(self._metrics.values())

    def dropped(self) -> dict[str, int]:
        """Label sets folded into overflow, per metric that folded any."""
        return {m.name: m.dropped for m in self.metrics() if m.dropped}

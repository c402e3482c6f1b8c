"""Counters, gauges and histograms with labels, and the guard on the number of label sets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError
from swarmperf.monitor.metrics import OVERFLOW, Registry


def test_a_counter_counts_per_label_set() -> None:
    registry = Registry()
    tasks = registry.counter("tasks_total", "Tasks.", ("agent", "status"))
    tasks.labels("a", "succeeded").inc()
    tasks.labels("a", "succeeded").inc(2)
    tasks.labels("b", "failed").inc()
    assert dict(tasks.series()) == {
        ("a", "succeeded"): tasks.labels("a", "succeeded"),
        ("b", "failed"): tasks.labels("b", "failed"),
    }
    assert tasks.labels("a", "succeeded").value == 3
    assert tasks.labels("b", "failed").value == 1


def test_a_counter_never_goes_down() -> None:
    counter = Registry().counter("c_total", "C.")
    with pytest.raises(ConfigError, match=r"counter\.inc amount"):
        counter.inc(-1)
    counter.inc()
    assert counter.labels().value == 1


def test_a_gauge_goes_up_and_down() -> None:
    gauge = Registry().gauge("depth", "Depth.", ("priority",))
    series = gauge.labels("normal")
    series.set(5)
    series.inc(2)
    series.dec()
    assert series.value == 6


def test_a_histogram_keeps_a_sketch_per_label_set() -> None:
    hist = Registry().histogram("lat", "Latency.", ("agent",), alpha=0.01)
    for x in range(1, 101):
        hist.labels("a").observe(float(x))
    sketch = hist.labels("a")
    assert sketch.count == 100
    p50 = sketch.quantile(0.5)
    assert p50 is not None
    assert abs(p50 - 50.0) <= 0.5


def test_wrong_number_of_label_values_says_which_labels() -> None:
    metric = Registry().counter("x_total", "X.", ("agent", "status"))
    with pytest.raises(ConfigError, match=r"agent, status"):
        metric.labels("a")


@pytest.mark.parametrize(
    ("name", "labels", "field"),
    [
        ("9lives", (), "metric name"),
        ("ok", ("bad-label",), "label name"),
        ("ok", ("__reserved",), "label name"),
        ("ok", ("a", "a"), "label names"),
    ],
)
def test_bad_names_are_refused_with_the_field(
    name: str, labels: tuple[str, ...], field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        Registry().counter(name, "Doc.", labels)


def test_a_name_is_registered_once() -> None:
    registry = Registry()
    registry.gauge("g", "G.")
    with pytest.raises(ConfigError, match=r"once"):
        registry.counter("g", "Again.")


@settings(max_examples=80, deadline=None)
@given(
    limit=st.integers(1, 20),
    values=st.lists(st.text(min_size=1, max_size=3), max_size=200),
)
def test_label_sets_beyond_the_limit_fold_into_overflow(limit: int, values: list[str]) -> None:
    registry = Registry()
    metric = registry.counter("by_id_total", "By id.", ("id",), max_series=limit)
    for v in values:
        metric.labels(v).inc()
    kept = [key for key, _ in metric.series() if key != (OVERFLOW,)]
    distinct = list(dict.fromkeys(values))
    # The first `limit` distinct label sets are kept; the rest fold into one series.
    assert kept == [(v,) for v in distinct[:limit]]
    assert len(metric) <= limit + 1
    folded = [v for v in values if v not in distinct[:limit]]
    assert metric.dropped == len(folded)
    overflow = dict(metric.series()).get((OVERFLOW,))
    assert (overflow.value if overflow is not None else 0) == len(folded)
    # Nothing is lost: every increment is in some series.
    assert sum(s.value for _, s in metric.series()) == len(values)
    assert registry.dropped() == ({"by_id_total": len(folded)} if folded else {})


def test_a_bad_series_limit_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"max_series"):
        Registry().counter("x_total", "X.", ("a",), max_series=0)

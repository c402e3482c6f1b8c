"""The monitor adapter: snapshots in, anomaly findings out, one detector per metric."""

from __future__ import annotations

import numpy as np
import pytest

from swarmperf.analysis.anomaly import MetricAnomalies
from swarmperf.core.errors import ConfigError
from swarmperf.core.latency import LatencySummary
from swarmperf.monitor.snapshot import SwarmFigures


def snapshot(ts: float, p99: float | None, throughput: float | None) -> SwarmFigures:
    return SwarmFigures(
        ts=ts,
        window_s=1.0,
        completed=100,
        failed=0,
        throughput_per_s=throughput,
        error_rate=0.0,
        availability=1.0,
        latency=LatencySummary(count=100, p99=p99),
        wait=LatencySummary(count=0),
        service=LatencySummary(count=0),
        queue_depth=0,
        queue_depth_by_priority={},
        balance_cv=None,
        agents={},
    )


def test_a_latency_spike_is_reported_and_nothing_before_it() -> None:
    feed = MetricAnomalies(metrics=["swarm.latency.p99", "swarm.throughput_per_s"])
    rng = np.random.default_rng(0)
    quiet: list[dict[str, object]] = []
    for i in range(400):
        quiet += feed(snapshot(float(i), 0.05 + rng.normal(0, 0.002), 100 + rng.normal(0, 2)))
    findings = feed(snapshot(400.0, 0.5, 100.0))
    assert [f["metric"] for f in findings] == ["swarm.latency.p99"]
    assert findings[0]["value"] == 0.5
    assert findings[0]["ts"] == 400.0
    assert 0.5 <= float(findings[0]["score"]) <= 1.0
    assert len(quiet) <= 2  # a steady stream raises (almost) nothing


def test_missing_figures_are_skipped_not_filled_in() -> None:
    feed = MetricAnomalies(metrics=["swarm.latency.p99", "swarm.throughput_per_s"])
    for i in range(10):
        assert feed(snapshot(float(i), None, 100.0)) == []
    assert set(feed.detectors) == {"swarm.throughput_per_s"}


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        MetricAnomalies(threshold=1.5)
    with pytest.raises(ConfigError, match="metrics"):
        MetricAnomalies(metrics=[])

"""Anomaly findings for the monitor loop: one ensemble per watched metric, fed every snapshot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from swarmperf.analysis.anomaly.base import Detector
from swarmperf.analysis.anomaly.ensemble import Ensemble
from swarmperf.core.errors import ConfigError
from swarmperf.monitor.snapshot import SwarmFigures, SystemFigures, flatten

DEFAULT_METRICS = (
    "swarm.latency.p99",
    "swarm.throughput_per_s",
    "swarm.error_rate",
    "swarm.queue_depth",
    "swarm.wait.p99",
    "system.cpu_percent",
)
# The ensemble's best NAB threshold (standard profile) sits near 0.5; see anomaly_nab.py.
DEFAULT_THRESHOLD = 0.5


class MetricAnomalies:
    """`__call__(swarm, system)` feeds the chosen flat metrics (names as in `snapshot.flatten`)
    to one detector each and returns the findings scoring at least `threshold`:
    `{"metric", "value", "score", "ts"}`. A metric that is `None` in a snapshot is skipped, not
    filled in, so its detector only ever sees measured values.
    """

    def __init__(
        self,
        metrics: Sequence[str] = DEFAULT_METRICS,
        threshold: float = DEFAULT_THRESHOLD,
        factory: Callable[[], Detector] = Ensemble,
    ) -> None:
        if not metrics:
            raise ConfigError("metrics", list(metrics), "Name at least one flat metric.")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError("threshold", threshold, "Give a score between 0 and 1.")
        self.metrics = tuple(metrics)
        self.threshold = threshold
        self._factory = factory
        self.detectors: dict[str, Detector] = {}

    def __call__(
        self, swarm: SwarmFigures, system: SystemFigures | None = None
    ) -> list[dict[str, Any]]:
        rows = flatten(swarm, system)
        findings: list[dict[str, Any]] = []
        for metric in self.metrics:
            value = rows.get(metric)
            if value is None:
                continue
            detector = self.detectors.get(metric)
            if detector is None:
                detector = self.detectors[metric] = self._factory()
            score = detector.process(value, swarm.ts)
            if score >= self.threshold:
                findings.append({"metric": metric, "value": value, "score": score, "ts": swarm.ts})
        return findings

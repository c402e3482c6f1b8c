"""Anomaly findings for the monitor loop: the default detector on every watched metric.

What to expect, from the default detector's held-out NAB figures (benchmarks/anomaly_nab.py:
settings and threshold chosen on other categories of series than the scored one): 59 of 69
labelled anomaly windows flagged (86%), and one false alarm per 2,100 points of a metric
(about one every seven days at 5-minute snapshots, one every 35 minutes at one-second ones).
One anomaly raises one alarm: a second red score within ten points of the first is reported
as yellow, below the threshold. A metric's first 150 points are learning: nothing is
flagged before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from swarmperf.analysis.anomaly.base import Detector
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
# A red score (tail probability 1e-5): the default detector's best NAB threshold (standard
# profile) is 0.501 on the whole development set and 0.501-0.513 in every held-out fold.
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
        factory: Callable[[], Detector] | None = None,
    ) -> None:
        if not metrics:
            raise ConfigError("metrics", list(metrics), "Name at least one flat metric.")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError("threshold", threshold, "Give a score between 0 and 1.")
        self.metrics = tuple(metrics)
        self.threshold = threshold
        if factory is None:
            # The registry's default, so that the live feed follows `anomaly-eval`'s default.
            from swarmperf.analysis.anomaly import DEFAULT_DETECTOR, detector_factory

            factory = detector_factory(DEFAULT_DETECTOR)
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

"""Streaming anomaly detectors for monitor metrics, and the registry the CLI and harness use."""

from __future__ import annotations

from collections.abc import Callable

from swarmperf.errors import UnknownName
from swarmperf.monitor.anomaly.base import Detector
from swarmperf.monitor.anomaly.baseline import WindowedGaussian
from swarmperf.monitor.anomaly.ensemble import Ensemble
from swarmperf.monitor.anomaly.feed import MetricAnomalies
from swarmperf.monitor.anomaly.knn import KnnConformal
from swarmperf.monitor.anomaly.likelihood import AnomalyLikelihood
from swarmperf.monitor.anomaly.robust import RobustZ
from swarmperf.monitor.anomaly.seasonal import SeasonalResidual

DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls for cls in (Ensemble, RobustZ, SeasonalResidual, KnnConformal, WindowedGaussian)
}
DEFAULT_DETECTOR = Ensemble.name


def detector_factory(name: str) -> Callable[[], Detector]:
    """A maker of fresh detectors with the fixed default configuration; errors list the names."""
    try:
        return DETECTORS[name]
    except KeyError:
        raise UnknownName("--detector", name, DETECTORS) from None


__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "AnomalyLikelihood",
    "Detector",
    "Ensemble",
    "KnnConformal",
    "MetricAnomalies",
    "RobustZ",
    "SeasonalResidual",
    "WindowedGaussian",
    "detector_factory",
]

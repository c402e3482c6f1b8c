"""Streaming anomaly detectors for monitor metrics, and the registry the CLI and harness use."""

from __future__ import annotations

from collections.abc import Callable

from swarmperf.analysis.anomaly.base import Detector
from swarmperf.analysis.anomaly.baseline import WindowedGaussian
from swarmperf.analysis.anomaly.ensemble import Ensemble
from swarmperf.analysis.anomaly.feed import MetricAnomalies
from swarmperf.analysis.anomaly.knn import KnnConformal
from swarmperf.analysis.anomaly.likelihood import AnomalyLikelihood
from swarmperf.analysis.anomaly.robust import RobustZ
from swarmperf.analysis.anomaly.seasonal import SeasonalResidual
from swarmperf.core.errors import UnknownName

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

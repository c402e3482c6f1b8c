"""One latency summary: the quantiles, mean and extremes of a set of durations, in seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Quantiles of durations in seconds; `count` samples went into them.

    A figure that was not measured is None: every one of them when `count` is 0, and `min`
    where the source keeps no minimum (the monitor's sliding sketches). Shared by the live
    monitor, the analysis of stored runs, run reports and benchmark results.
    """

    # Read by pydantic where a benchmark results file holds a summary: no unknown keys, and
    # no NaN or infinity, which JSON cannot hold and would not read back equal.
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid", "allow_inf_nan": False}

    count: int
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None
    min: float | None = None

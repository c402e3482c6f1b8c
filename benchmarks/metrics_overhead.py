"""Cost and accuracy of our metrics beside prometheus_client's, measured in the same run.

Speed: nanoseconds per histogram observation and per counter increment, loop included,
nothing subtracted, for our `QuantileSketch.observe` / `CounterSeries.inc` and for
`prometheus_client.Histogram.observe` (default buckets) / `Counter.inc`, each on a fresh
registry; also both through `.labels(...)` on every call. Variants are interleaved repeat by
repeat with the garbage collector off in each timed loop; each figure is the median.

Accuracy: relative error of our sketch's p50/p90/p95/p99/p99.9 against the exact sample
quantile (numpy, method "lower") on heavy-tailed data (Pareto shape 1.2 and log-normal
sigma 2, as latencies in seconds); and, for the peer, the same quantiles estimated from
prometheus_client's default buckets the way PromQL's `histogram_quantile` does.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram as PromHistogram

from _common import RunSettings, emit, log, median, parse_args, python_version, spread
from swarmperf.monitor.metrics import Registry
from swarmperf.monitor.sketch import QuantileSketch

RATIO_GOAL = 0.7
ERROR_GOAL = 0.01
QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)
PROM_BUCKETS = PromHistogram.DEFAULT_BUCKETS


def _timed(loop: Callable[[], None], n: int) -> float:
    gc.disable()
    try:
        start = time.perf_counter_ns()
        loop()
        return (time.perf_counter_ns() - start) / n
    finally:
        gc.enable()


def _loops(values: list[float]) -> dict[str, Callable[[], None]]:
    n = len(values)
    sketch = Registry().histogram("work_seconds", "Work.").labels()
    ours_counter = Registry().counter("tasks_total", "Tasks.").labels()
    ours_labelled = Registry().counter("by_total", "By.", ("agent", "status"))
    prom_registry = CollectorRegistry()
    prom_hist = PromHistogram("work_seconds", "Work.", registry=prom_registry)
    prom_counter = PromCounter("tasks", "Tasks.", registry=prom_registry)
    prom_labelled = PromCounter("by", "By.", ("agent", "status"), registry=prom_registry)

    def observe() -> None:
        f = sketch.observe
        for x in values:
            f(x)

    def prom_observe() -> None:
        f = prom_hist.observe
        for x in values:
            f(x)

    def inc() -> None:
        f = ours_counter.inc
        for _ in range(n):
            f()

    def prom_inc() -> None:
        f = prom_counter.inc
        for _ in range(n):
            f()

    def labelled_inc() -> None:
        labels = ours_labelled.labels
        for _ in range(n):
            labels("a", "succeeded").inc()

    def prom_labelled_inc() -> None:
        labels = prom_labelled.labels
        for _ in range(n):
            labels("a", "succeeded").inc()

    return {
        "observe_ns": observe,
        "prom_observe_ns": prom_observe,
        "inc_ns": inc,
        "prom_inc_ns": prom_inc,
        "labels_inc_ns": labelled_inc,
        "prom_labels_inc_ns": prom_labelled_inc,
    }


def _data(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "pareto":
        return (rng.pareto(1.2, n) + 1.0) * 1e-3
    return rng.lognormal(-5.0, 2.0, n)


def _prom_quantile(data: np.ndarray, q: float) -> float:
    """PromQL's histogram_quantile over the default buckets: linear within a bucket."""
    bounds = np.array([*PROM_BUCKETS[:-1]])
    counts = np.searchsorted(np.sort(data), bounds, side="right")  # cumulative <= bound
    total = len(data)
    rank = q * total
    i = int(np.searchsorted(counts, rank, side="left"))
    if i >= len(bounds):
        return float(bounds[-1])  # beyond the last finite bucket: its bound, as PromQL does
    lower = 0.0 if i == 0 else float(bounds[i - 1])
    below = 0 if i == 0 else int(counts[i - 1])
    in_bucket = int(counts[i]) - below
    if in_bucket == 0:
        return float(bounds[i])
    return lower + (float(bounds[i]) - lower) * (rank - below) / in_bucket


def _accuracy(n: int) -> dict[str, Any]:
    ours: dict[str, dict[str, float]] = {}
    peer: dict[str, dict[str, float]] = {}
    for seed, kind in enumerate(("pareto", "lognormal")):
        data = _data(kind, n, seed)
        sketch = QuantileSketch()
        for x in data.tolist():
            sketch.observe(x)
        ours[kind], peer[kind] = {}, {}
        for q in QUANTILES:
            exact = float(np.quantile(data, q, method="lower"))
            estimate = sketch.quantile(q)
            assert estimate is not None
            ours[kind][str(q)] = abs(estimate - exact) / exact
            peer[kind][str(q)] = abs(_prom_quantile(data, q) - exact) / exact
    return {"ours": ours, "prom": peer}


def main(settings: RunSettings) -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(-5.0, 2.0, settings.n).tolist()
    loops = _loops(values)
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for r in range(settings.repeats):
        for name, loop in loops.items():
            samples[name].append(_timed(loop, settings.n))
        log(f"repeat {r + 1}/{settings.repeats} done")
    log(f"{'operation':22} ns per call (median [min-max] over {settings.repeats})")
    for name, ss in samples.items():
        log(f"{name:22} {spread(ss)}")
    figures: dict[str, Any] = {name: round(median(ss), 1) for name, ss in samples.items()}
    accuracy = _accuracy(settings.n * 2)
    max_error = max(e for per in accuracy["ours"].values() for e in per.values())
    prom_error = max(e for per in accuracy["prom"].values() for e in per.values())
    log(f"max relative quantile error: ours {max_error:.5f}, prometheus buckets {prom_error:.3f}")
    ratio = figures["observe_ns"] / figures["prom_observe_ns"]
    emit(
        {
            "benchmark": "metrics_overhead",
            "quick": settings.quick,
            "n": settings.n,
            "repeats": settings.repeats,
            "python": python_version(),
            "observe_ns": figures["observe_ns"],
            "prom_observe_ns": figures["prom_observe_ns"],
            "ratio": round(ratio, 3),
            "ratio_goal": RATIO_GOAL,
            "inc_ns": figures["inc_ns"],
            "prom_inc_ns": figures["prom_inc_ns"],
            "labels_inc_ns": figures["labels_inc_ns"],
            "prom_labels_inc_ns": figures["prom_labels_inc_ns"],
            "max_rel_error": round(max_error, 6),
            "max_rel_error_goal": ERROR_GOAL,
            "prom_buckets_max_rel_error": round(prom_error, 4),
            "rel_error": {
                side: {k: {q: round(e, 6) for q, e in v.items()} for k, v in per.items()}
                for side, per in accuracy.items()
            },
        }
    )


if __name__ == "__main__":
    main(
        parse_args(
            __doc__.splitlines()[0],
            n=200_000,
            repeats=15,
            quick_n=50_000,
            quick_repeats=5,
        )
    )

"""A learned guess of the best topology from a workload's features, without simulating.

`features(summary)` describes a workload: its size, the density and skew of its
communication matrix, fan-in and fan-out, messages per task, what a hop and a relay cost
against a task, the spread of the slots' latencies, and what a connection costs. The
`Predictor` predicts each topology's log objective relative to the mean over topologies,
either by one ridge regression per topology over the features and their pairwise products,
or from the nearest training workloads (standardised features); the lowest prediction is
the proposal (features beyond their training range are clipped to it). The shipped model
(`predictor.json`) was fitted on simulated workloads by
`scripts/train_topology_predictor.py`, whose seeds are disjoint from those
`benchmarks/topology_selection.py` judges it on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from swarmperf.core.errors import ConfigError

FEATURES: Final = (
    "log_agents",
    "density",
    "in_skew",
    "out_skew",
    "fan_in",
    "fan_out",
    "log_messages_per_task",
    "log_hop_per_task",
    "log_relay_per_task",
    "log_latency_per_task",
    "latency_spread",
    "log_connection_cost",
)
MODEL_FILE: Final = "predictor.json"
KINDS: Final = ("nearest-neighbours", "ridge-per-topology")
_TINY: Final = 1e-9


@dataclass(frozen=True, slots=True)
class WorkloadSummary:
    """What the predictor reads of a workload: `counts[i][j]` messages from agent i to j;
    `latency[a][b]` seconds between slots; the number of tasks and a task's mean seconds;
    a hop's seconds on the link (latency plus bytes over bandwidth); a relay's seconds of
    work; the share of an agent's time each open connection costs."""

    counts: npt.NDArray[np.float64]
    latency: npt.NDArray[np.float64]
    tasks: int
    task_seconds: float
    hop_seconds: float
    relay_seconds: float
    connection_cost: float


def features(summary: WorkloadSummary) -> npt.NDArray[np.float64]:
    """The workload's features, in `FEATURES` order."""
    counts = np.asarray(summary.counts, dtype=float).copy()
    n = counts.shape[0]
    np.fill_diagonal(counts, 0.0)
    total = counts.sum()
    pairs = max(1, n * (n - 1))
    sent, received = counts.sum(axis=1), counts.sum(axis=0)
    in_degree = (counts > 0).sum(axis=0)
    out_degree = (counts > 0).sum(axis=1)

    def skew(values: npt.NDArray[Any]) -> float:
        mean = float(values.mean()) if values.size else 0.0
        return float(values.max()) / mean if mean > 0 else 0.0

    task = max(summary.task_seconds, 1e-6)
    off = np.asarray(summary.latency, dtype=float)[~np.eye(n, dtype=bool)]
    mean_latency = float(off.mean()) if off.size else 0.0
    values = [
        math.log(max(n, 1)),
        float((counts > 0).sum()) / pairs,
        skew(received),
        skew(sent),
        float(in_degree.max()) / max(1, n - 1) if n > 1 else 0.0,
        float(out_degree.max()) / max(1, n - 1) if n > 1 else 0.0,
        math.log(total / max(1, summary.tasks) + _TINY),
        math.log(summary.hop_seconds / task + _TINY),
        math.log(summary.relay_seconds / task + _TINY),
        math.log(mean_latency / task + _TINY),
        float(off.std() / mean_latency) if mean_latency > 0 else 0.0,
        math.log(summary.connection_cost + 1e-6),
    ]
    return np.asarray(values, dtype=float)


def expand(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Standardised features with their pairwise products and squares, and a bias."""
    rows = np.atleast_2d(rows)
    k = rows.shape[1]
    upper = np.triu_indices(k)
    products = rows[:, upper[0]] * rows[:, upper[1]]
    return np.hstack([np.ones((rows.shape[0], 1)), rows, products])


@dataclass(frozen=True, slots=True)
class Predictor:
    """Ridge weights per topology over `expand`ed features standardised by `mean`/`scale`."""

    topologies: tuple[str, ...]
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]  # one row per topology
    meta: dict[str, Any]
    low: npt.NDArray[np.float64]  # each feature's range in training: beyond it, clipped
    high: npt.NDArray[np.float64]
    kind: str = "ridge-per-topology"
    # nearest-neighbours: the training rows (standardised), `weights` their targets, and
    # how many nearest rows' targets are averaged.
    points: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))
    neighbours: int = 0

    def scores(self, row: npt.NDArray[np.float64]) -> dict[str, float]:
        """Each topology's predicted log objective for a `features` row, relative to the
        mean over topologies (lower: better)."""
        # A quadratic model extrapolates wildly: features outside what it was trained on
        # are read as the nearest value it saw.
        clipped = np.clip(np.asarray(row, dtype=float), self.low, self.high)
        z = (clipped - self.mean) / self.scale
        if self.kind == "nearest-neighbours":
            distance = ((self.points - z) ** 2).sum(axis=1)
            nearest = np.argsort(distance, kind="stable")[: self.neighbours]
            predicted = self.weights[nearest].mean(axis=0)
        else:
            predicted = (expand(z) @ self.weights.T)[0]
        return {t: float(v) for t, v in zip(self.topologies, predicted, strict=True)}

    def choose(self, row: npt.NDArray[np.float64]) -> str:
        """The topology with the lowest predicted objective for a `features` row."""
        scores = self.scores(row)
        return min(self.topologies, key=lambda t: (scores[t], t))

    def predict(self, summary: WorkloadSummary) -> str:
        """The topology with the lowest predicted objective for a workload."""
        return self.choose(features(summary))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "points": self.points.tolist(),
            "neighbours": self.neighbours,
            "features": list(FEATURES),
            "topologies": list(self.topologies),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "meta": self.meta,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Predictor:
        if data.get("kind") not in KINDS or tuple(data.get("features", ())) != FEATURES:
            raise ConfigError(
                "predictor", data.get("kind"), "Rebuild it: scripts/train_topology_predictor.py."
            )
        return cls(
            tuple(data["topologies"]),
            np.asarray(data["mean"], dtype=float),
            np.asarray(data["scale"], dtype=float),
            np.asarray(data["weights"], dtype=float),
            dict(data.get("meta", {})),
            np.asarray(data["low"], dtype=float),
            np.asarray(data["high"], dtype=float),
            str(data["kind"]),
            np.asarray(data.get("points", []), dtype=float),
            int(data.get("neighbours", 0)),
        )


def load_predictor(path: Path | None = None) -> Predictor:
    """The shipped predictor, or the one saved at `path`."""
    text = (
        path.read_text()
        if path is not None
        else resources.files("swarmperf.topology").joinpath(MODEL_FILE).read_text()
    )
    return Predictor.from_dict(json.loads(text))


def fit(
    rows: Sequence[npt.NDArray[np.float64]],
    objectives: Sequence[dict[str, float]],
    topologies: Sequence[str],
    *,
    ridge: float,
    meta: dict[str, Any] | None = None,
) -> Predictor:
    """Fit one ridge regression per topology: features -> log objective minus the row's
    mean log objective over topologies (so that only the ranking is learned)."""
    x = np.asarray(rows, dtype=float)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    design = expand((x - mean) / scale)
    targets = _targets(objectives, topologies)
    penalty = ridge * np.eye(design.shape[1])
    penalty[0, 0] = 0.0  # the bias is not shrunk
    weights = np.asarray(
        np.linalg.solve(design.T @ design + penalty, design.T @ targets).T, dtype=float
    )
    return Predictor(
        tuple(topologies),
        mean,
        scale,
        weights,
        dict(meta or {}),
        x.min(axis=0),
        x.max(axis=0),
    )


def fit_neighbours(
    rows: Sequence[npt.NDArray[np.float64]],
    objectives: Sequence[dict[str, float]],
    topologies: Sequence[str],
    *,
    neighbours: int,
    meta: dict[str, Any] | None = None,
) -> Predictor:
    """Keep the standardised training rows: a workload's prediction is the mean relative
    log objective of its `neighbours` nearest rows."""
    x = np.asarray(rows, dtype=float)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    return Predictor(
        tuple(topologies),
        mean,
        scale,
        _targets(objectives, topologies),
        dict(meta or {}),
        x.min(axis=0),
        x.max(axis=0),
        kind="nearest-neighbours",
        points=(x - mean) / scale,
        neighbours=max(1, min(neighbours, x.shape[0])),
    )


def _targets(
    objectives: Sequence[dict[str, float]], topologies: Sequence[str]
) -> npt.NDArray[np.float64]:
    """Each row's log objective per topology minus the row's mean: only the ranking counts."""
    logs = np.log(np.asarray([[max(o[t], _TINY) for t in topologies] for o in objectives]))
    return np.asarray(logs - logs.mean(axis=1, keepdims=True), dtype=float)

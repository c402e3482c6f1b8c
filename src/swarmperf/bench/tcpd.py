"""The TCPD change-point benchmark: corpus loading and its F1 (margin 5) and covering metrics.

The metrics follow the Turing Change Point Detection benchmark (van den Burg and Williams,
2020) as its evaluation code defines them: index 0 is a change point of every annotator and of
every prediction; F1 takes its precision against the union of the annotators and its recall as
the mean over annotators; covering is the mean over annotators of the covering of their
segmentation by the predicted one. They are written here (a few dozen lines) because no
maintained package ships them.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmperf.core.errors import ConfigError

# The univariate series of the published comparison, as far as the shared folder holds them
# (quality_control_* and uk_coal_employ are sanity checks, run_log is two-dimensional).
PUBLISHED_SERIES: tuple[str, ...] = (
    "bank",
    "brent_spot",
    "businv",
    "centralia",
    "children_per_woman",
    "co2_canada",
    "construction",
    "debt_ireland",
    "gdp_argentina",
    "gdp_croatia",
    "global_co2",
    "homeruns",
    "nile",
)

DEFAULT_MARGIN = 5


@dataclass(frozen=True)
class TcpdSeries:
    """One data set of the corpus; `values` holds the first dimension (None = missing)."""

    name: str
    n_obs: int
    n_dim: int
    values: tuple[float | None, ...]
    path: Path


@dataclass(frozen=True)
class TcpdCorpus:
    """A TCPD-layout directory: its series and, when present, the annotations."""

    root: Path
    series: Mapping[str, TcpdSeries]
    annotations: Mapping[str, Mapping[str, tuple[int, ...]]] | None

    def evaluation_names(self) -> list[str]:
        """The series to score: the published 13 where present, else every univariate one."""
        published = [name for name in PUBLISHED_SERIES if name in self.series]
        if published:
            return published
        return sorted(name for name, s in self.series.items() if s.n_dim == 1)


@dataclass(frozen=True)
class SeriesScore:
    """F1 and covering of one prediction against one series' annotators."""

    name: str
    f1: float
    precision: float
    recall: float
    cover: float


@dataclass(frozen=True)
class CorpusScore:
    """Predictions scored against a corpus: per series, and the means the benchmark reports."""

    # Every predicted series that has annotations; None when the corpus has none at all.
    scores: Mapping[str, SeriesScore] | None
    evaluated: tuple[str, ...]  # the evaluation series among them, which the means cover
    f1: float | None  # mean over `evaluated`; None (with `reason`) when it is empty
    cover: float | None
    reason: str | None


def _fail(field: str, value: object, fix: str) -> ConfigError:
    return ConfigError(field, value, fix)


def load_series(path: Path) -> TcpdSeries:
    """Read one `<name>.json` in the TCPD schema; raises ConfigError naming what is wrong."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(
            str(path), "unreadable", f"Check the file exists and is readable ({exc})."
        ) from exc
    except json.JSONDecodeError as exc:
        raise _fail(str(path), "not JSON", f"Fix the JSON syntax ({exc}).") from exc
    if not isinstance(data, dict):
        raise _fail(str(path), type(data).__name__, "A TCPD data set is a JSON object.")
    for key in ("name", "n_obs", "series"):
        if key not in data:
            raise _fail(f"{path}: {key}", None, f"Add the required key {key!r} (see schema.json).")
    n_obs = data["n_obs"]
    if not isinstance(n_obs, int) or isinstance(n_obs, bool) or n_obs < 1:
        raise _fail(f"{path}: n_obs", n_obs, "n_obs is the series length, an integer >= 1.")
    series = data["series"]
    if not isinstance(series, list) or not series or not isinstance(series[0], dict):
        raise _fail(f"{path}: series", series, "series is a non-empty list of objects.")
    raw = series[0].get("raw")
    if not isinstance(raw, list) or len(raw) != n_obs:
        length = len(raw) if isinstance(raw, list) else raw
        raise _fail(
            f"{path}: series[0].raw", length, f"raw must be a list of n_obs = {n_obs} values."
        )
    values: list[float | None] = []
    for i, v in enumerate(raw):
        if v is None:
            values.append(None)
        elif isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            values.append(float(v))
        elif isinstance(v, float) and math.isnan(v):
            values.append(None)
        else:
            raise _fail(f"{path}: series[0].raw[{i}]", v, "Values are numbers or null.")
    n_dim = data.get("n_dim", len(series))
    return TcpdSeries(
        name=str(data["name"]),
        n_obs=n_obs,
        n_dim=int(n_dim) if isinstance(n_dim, int) else len(series),
        values=tuple(values),
        path=path,
    )


def _annotations(path: Path) -> dict[str, dict[str, tuple[int, ...]]]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(str(path), "unreadable", f"Check the file is readable UTF-8 ({exc}).") from exc
    except json.JSONDecodeError as exc:
        raise _fail(str(path), "not JSON", f"Fix the JSON syntax ({exc}).") from exc
    if not isinstance(data, dict):
        raise _fail(str(path), type(data).__name__, "annotations.json maps name -> annotator.")
    result: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, by_annotator in data.items():
        if not isinstance(by_annotator, dict):
            raise _fail(
                f"{path}: {name}", by_annotator, "Each series maps annotator -> index list."
            )
        result[name] = {}
        for annotator, points in by_annotator.items():
            if not isinstance(points, list) or not all(
                isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in points
            ):
                raise _fail(
                    f"{path}: {name}.{annotator}", points, "Give a list of 0-based indices."
                )
            result[name][str(annotator)] = tuple(points)
    return result


def load_corpus(root: Path) -> TcpdCorpus:
    """Read `root/datasets/<name>.json` or `root/<name>/<name>.json`, and `annotations.json`."""
    if not root.is_dir():
        raise _fail("corpus", str(root), "Give a directory in the TCPD layout.")
    files = sorted((root / "datasets").glob("*.json")) if (root / "datasets").is_dir() else []
    files += sorted(
        p / f"{p.name}.json" for p in root.iterdir() if (p / f"{p.name}.json").is_file()
    )
    series: dict[str, TcpdSeries] = {}
    for path in files:
        s = load_series(path)
        series.setdefault(s.name, s)
    if not series:
        raise _fail(
            "corpus",
            str(root),
            "No data sets found: expected datasets/<name>.json or <name>/<name>.json.",
        )
    ann_path = root / "annotations.json"
    annotations = _annotations(ann_path) if ann_path.is_file() else None
    return TcpdCorpus(root=root, series=series, annotations=annotations)


def _true_positives(truth: set[int], predicted: set[int], margin: int) -> int:
    """Count truths matched to a distinct prediction within the margin, closest first."""
    free = set(predicted)
    hits = 0
    for tau in sorted(truth):
        close = sorted((abs(tau - x), x) for x in free if abs(tau - x) <= margin)
        if close:
            hits += 1
            free.remove(close[0][1])
    return hits


def precision_recall(
    annotations: Mapping[str, Sequence[int]], predictions: Sequence[int], margin: int = 5
) -> tuple[float, float]:
    """Precision against the union of annotators, recall averaged over annotators."""
    if not annotations:
        raise _fail("annotations", {}, "Give at least one annotator's change points.")
    per_annotator = [set(points) | {0} for points in annotations.values()]
    predicted = set(predictions) | {0}
    union = set().union(*per_annotator)
    precision = _true_positives(union, predicted, margin) / len(predicted)
    recall = sum(_true_positives(t, predicted, margin) / len(t) for t in per_annotator) / len(
        per_annotator
    )
    return precision, recall


def f1_score(
    annotations: Mapping[str, Sequence[int]], predictions: Sequence[int], margin: int = 5
) -> float:
    """TCPD F1: harmonic mean of `precision_recall`; 0 when both are 0."""
    p, r = precision_recall(annotations, predictions, margin)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _segments(points: Sequence[int], n_obs: int) -> list[tuple[int, int]]:
    """Half-open [start, end) segments of 0..n_obs-1 cut at the given change points."""
    cuts = sorted({p for p in points if 0 < p < n_obs})
    bounds = [0, *cuts, n_obs]
    return list(itertools.pairwise(bounds))


def _cover_single(predicted: list[tuple[int, int]], truth: list[tuple[int, int]], n: int) -> float:
    total = 0.0
    for a0, a1 in truth:
        best = 0.0
        for b0, b1 in predicted:
            inter = min(a1, b1) - max(a0, b0)
            if inter > 0:
                best = max(best, inter / (max(a1, b1) - min(a0, b0)))
        total += (a1 - a0) * best
    return total / n


def covering(
    annotations: Mapping[str, Sequence[int]], predictions: Sequence[int], n_obs: int
) -> float:
    """Mean over annotators of the covering of their segmentation by the predicted one."""
    if not annotations:
        raise _fail("annotations", {}, "Give at least one annotator's change points.")
    if n_obs < 1:
        raise _fail("n_obs", n_obs, "The series length must be >= 1.")
    predicted = _segments(predictions, n_obs)
    covers = [_cover_single(predicted, _segments(t, n_obs), n_obs) for t in annotations.values()]
    return sum(covers) / len(covers)


def score_series(
    name: str,
    annotations: Mapping[str, Sequence[int]],
    predictions: Sequence[int],
    n_obs: int,
    margin: int = DEFAULT_MARGIN,
) -> SeriesScore:
    """Both TCPD metrics of one prediction."""
    p, r = precision_recall(annotations, predictions, margin)
    return SeriesScore(
        name=name,
        f1=0.0 if p + r == 0 else 2 * p * r / (p + r),
        precision=p,
        recall=r,
        cover=covering(annotations, predictions, n_obs),
    )


def score_corpus(
    corpus: TcpdCorpus, predictions: Mapping[str, Sequence[int]], margin: int = DEFAULT_MARGIN
) -> CorpusScore:
    """Score each series' predicted change points against its annotators, and average F1
    and cover over the evaluation series (`TcpdCorpus.evaluation_names`) that were scored."""
    if corpus.annotations is None:
        return CorpusScore(None, (), None, None, "no annotations.json in the corpus")
    scores: dict[str, SeriesScore] = {}
    for name, points in predictions.items():
        annotations = corpus.annotations.get(name)
        if annotations:
            n_obs = corpus.series[name].n_obs
            scores[name] = score_series(name, annotations, points, n_obs, margin)
    evaluated = tuple(name for name in corpus.evaluation_names() if name in scores)
    if not evaluated:
        return CorpusScore(scores, (), None, None, "no evaluated series has annotations")
    return CorpusScore(
        scores,
        evaluated,
        f1=sum(scores[name].f1 for name in evaluated) / len(evaluated),
        cover=sum(scores[name].cover for name in evaluated) / len(evaluated),
        reason=None,
    )

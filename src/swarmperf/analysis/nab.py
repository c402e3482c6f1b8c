"""The Numenta Anomaly Benchmark harness: read a corpus, run a detector, write and score results.

The scorer follows NAB v1.1 (probation, scaled sigmoid inside and after windows, one threshold
per profile for the whole corpus). It is written here because NAB's own scorer is not an
installable library (it lives inside the benchmark's repository, on pandas) and walks the rows
in a Python loop; this one sorts the scores once and evaluates every threshold with numpy
cumulative sums, so sweeping a 200k-row corpus takes milliseconds. Checked end to end by
scoring NAB's Windowed Gaussian baseline (benchmarks/anomaly_nab.py), which reproduces the
published figure on the same files.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from swarmperf.core.errors import ConfigError

FloatArray = npt.NDArray[np.float64]

PROBATION_SHARE = 0.15
PROBATION_CAP = 750


@dataclass(frozen=True, slots=True)
class Profile:
    """One NAB application profile: the weights of true positives, misses and false alarms."""

    name: str
    tp_weight: float
    fn_weight: float
    fp_weight: float


# NAB's own profiles; used only when a corpus ships no profiles.json.
NAB_PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 1.0, 0.11),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 1.0, 0.22),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 2.0, 0.11),
}


@dataclass(frozen=True, slots=True)
class Series:
    """One data file: `key` is `<category>/<name>.csv` as in NAB's label files."""

    key: str
    category: str
    name: str
    timestamps: tuple[str, ...]
    times: FloatArray  # UNIX seconds (timestamps read as UTC)
    values: FloatArray

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True, slots=True)
class Corpus:
    """A NAB-layout folder: its series, their anomaly windows (if labelled) and the profiles."""

    root: Path
    series: tuple[Series, ...]
    windows: Mapping[str, tuple[tuple[int, int], ...]] | None  # key -> [(L, R)] row indices
    profiles: Mapping[str, Profile]

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.series)

    @property
    def window_count(self) -> int:
        return 0 if self.windows is None else sum(len(w) for w in self.windows.values())


def parse_time(text: str) -> float:
    """NAB timestamp (`YYYY-MM-DD HH:MM:SS[.ffffff]`) as UNIX seconds, read as UTC."""
    stamp = datetime.fromisoformat(text.strip())
    return (stamp - _EPOCH).total_seconds()


_EPOCH = datetime(1970, 1, 1)


def read_series(path: Path, key: str) -> Series:
    """Read one `timestamp,value` CSV; errors name the file, the row and the problem."""
    stamps: list[str] = []
    times: list[float] = []
    values: list[float] = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
            raise ConfigError(
                f"{path} header", header, "A NAB data file starts with the header timestamp,value."
            )
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                times.append(parse_time(row[0]))
                values.append(float(row[1]))
            except (ValueError, IndexError) as exc:
                raise ConfigError(
                    f"{path} line {line}",
                    ",".join(row),
                    "Each row needs a timestamp YYYY-MM-DD HH:MM:SS and a number.",
                ) from exc
            stamps.append(row[0].strip())
    category, _, name = key.partition("/")
    return Series(
        key=key,
        category=category,
        name=name,
        timestamps=tuple(stamps),
        times=np.asarray(times, dtype=np.float64),
        values=np.asarray(values, dtype=np.float64),
    )


def load_profiles(path: Path) -> dict[str, Profile]:
    """NAB's `profiles.json` (`{name: {"CostMatrix": {tpWeight, fnWeight, fpWeight}}}`)."""
    try:
        raw = json.loads(path.read_text())
        return {
            name: Profile(
                name,
                float(body["CostMatrix"]["tpWeight"]),
                float(body["CostMatrix"]["fnWeight"]),
                float(body["CostMatrix"]["fpWeight"]),
            )
            for name, body in raw.items()
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            str(path), "unreadable", "Give profiles as NAB does: {name: {CostMatrix: {...}}}."
        ) from exc


def load_corpus(root: Path, only: Iterable[str] | None = None) -> Corpus:
    """Read a corpus in NAB's layout: `data/<category>/<name>.csv`, optional labels and profiles.

    `only` keeps the listed keys (`<category>/<name>.csv`), in the order given.
    """
    data = root / "data"
    if not root.is_dir():
        raise ConfigError("--corpus", str(root), "Give a folder in NAB's layout (it has data/).")
    if not data.is_dir():
        raise ConfigError(
            "--corpus", str(root), "The folder needs data/<category>/<name>.csv files (NAB layout)."
        )
    found = {
        f"{p.parent.name}/{p.name}": p
        for p in sorted(data.glob("*/*.csv"))
        if p.is_file() and p.parent.parent == data
    }
    if not found:
        raise ConfigError(
            "--corpus", str(root), "No data/<category>/<name>.csv files found (NAB layout)."
        )
    keys = list(found) if only is None else list(only)
    missing = [k for k in keys if k not in found]
    if missing:
        raise ConfigError("series", missing, f"Choose among the corpus's files, e.g. {keys[0]}.")
    series = tuple(read_series(found[k], k) for k in keys)
    windows: dict[str, tuple[tuple[int, int], ...]] | None = None
    labels = root / "labels" / "combined_windows.json"
    if labels.is_file():
        try:
            raw = json.loads(labels.read_text())
        except ValueError as exc:
            raise ConfigError(str(labels), "not JSON", "Give {file: [[start, end], ...]}.") from exc
        if not isinstance(raw, dict):
            raise ConfigError(str(labels), type(raw).__name__, "Give {file: [[start, end]]}.")
        windows = {s.key: window_rows(s, raw.get(s.key, [])) for s in series}
    profiles_path = root / "profiles.json"
    profiles = load_profiles(profiles_path) if profiles_path.is_file() else dict(NAB_PROFILES)
    return Corpus(root=root, series=series, windows=windows, profiles=profiles)


def window_rows(series: Series, spans: Sequence[Sequence[str]]) -> tuple[tuple[int, int], ...]:
    """Windows as inclusive row ranges: first row at or after the start to last at or before end."""
    rows: list[tuple[int, int]] = []
    shape = "Give the file's windows as [[start, end], ...], times as YYYY-MM-DD HH:MM:SS."
    if not isinstance(spans, list):
        raise ConfigError(f"windows of {series.key}", spans, shape)
    for span in spans:
        try:
            if not (isinstance(span, list) and len(span) == 2):
                raise ValueError(span)
            start, end = parse_time(span[0]), parse_time(span[1])
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"window of {series.key}", span, shape) from exc
        left = int(np.searchsorted(series.times, start, side="left"))
        right = int(np.searchsorted(series.times, end, side="right")) - 1
        if right < left:
            raise ConfigError(
                f"window of {series.key}", list(span), "A window must cover at least one row."
            )
        rows.append((left, right))
    return tuple(rows)


def probation_length(n: int) -> int:
    return min(math.floor(PROBATION_SHARE * n), PROBATION_CAP)


def scaled_sigmoid(y: FloatArray) -> FloatArray:
    """NAB's scaled sigmoid: -1 beyond 3, else 2 / (1 + e^(5y)) - 1."""
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, value)


def row_weights(
    n: int, windows: Sequence[tuple[int, int]], profile: Profile
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """What a detection at each row is worth, and which window (-1: none) the row belongs to."""
    index = np.arange(n, dtype=np.float64)
    weight = np.full(n, -profile.fp_weight)  # before the first window: u = -1
    window_of = np.full(n, -1, dtype=np.int64)
    max_tp = float(scaled_sigmoid(np.array([-1.0]))[0])
    ordered = sorted(windows)
    for k, (left, right) in enumerate(ordered):
        width = right - left + 1
        inside = slice(left, right + 1)
        y = -(right - index[inside] + 1) / width
        weight[inside] = scaled_sigmoid(y) * profile.tp_weight / max_tp
        window_of[inside] = k
        stop = ordered[k + 1][0] if k + 1 < len(ordered) else n
        after = slice(right + 1, stop)
        if width > 1:
            past = np.abs(index[after] - right) / (width - 1)
            weight[after] = scaled_sigmoid(past) * profile.fp_weight
        else:  # a one-row window: any later row is "far" past it
            weight[after] = -profile.fp_weight
    return weight, window_of


@dataclass(frozen=True, slots=True)
class ProfileScore:
    """A detector's corpus score under one profile, at the best threshold."""

    profile: str
    threshold: float | None  # None: never alarming was best
    raw: float
    null: float
    perfect: float
    normalized: float
    true_positives: int  # windows with a detection
    false_negatives: int
    false_positives: int  # detections outside windows


def score_corpus(
    corpus: Corpus, scores: Mapping[str, FloatArray], profile: Profile
) -> ProfileScore:
    """NAB v1.1 score of `scores` (one array per series key) under `profile`."""
    return sweep(
        *_scored_rows(corpus, scores, profile), total_windows=corpus.window_count, profile=profile
    )


def score_at(
    corpus: Corpus, scores: Mapping[str, FloatArray], profile: Profile, threshold: float | None
) -> ProfileScore:
    """NAB v1.1 score at a threshold chosen elsewhere (None: never alarm), as for held-out data."""
    score, weight, window = _scored_rows(corpus, scores, profile)
    perfect = corpus.window_count * profile.tp_weight
    scored_windows = np.unique(window[window >= 0])
    null = -profile.fn_weight * len(scored_windows)
    if threshold is None:
        return _result(profile, None, null, null, perfect, 0, len(scored_windows), 0)
    detected = score >= threshold
    outside = detected & (window < 0)
    inside = detected & (window >= 0)
    # Each window scores its best (earliest) detection, or -fnWeight without one.
    best = np.full(int(window.max(initial=-1)) + 1, -profile.fn_weight)
    np.maximum.at(best, window[inside], weight[inside])
    raw = float(weight[outside].sum() + best[scored_windows].sum())
    tp = len(np.unique(window[inside]))
    return _result(
        profile, threshold, raw, null, perfect, tp, len(scored_windows) - tp, int(outside.sum())
    )


def _scored_rows(
    corpus: Corpus, scores: Mapping[str, FloatArray], profile: Profile
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Every scored row of the corpus (probation left out): score, worth, window (-1: none)."""
    if corpus.windows is None:
        raise ConfigError(
            "--corpus",
            str(corpus.root),
            "Scoring needs labels/combined_windows.json; without it only results are written.",
        )
    parts_score: list[FloatArray] = []
    parts_weight: list[FloatArray] = []
    parts_window: list[npt.NDArray[np.int64]] = []
    offset = 0
    for series in corpus.series:
        s = np.asarray(scores[series.key], dtype=np.float64)
        if s.shape != (len(series),):
            raise ConfigError(
                f"scores of {series.key}", s.shape, f"Give one score per row ({len(series)})."
            )
        weight, window_of = row_weights(len(series), corpus.windows[series.key], profile)
        keep = slice(probation_length(len(series)), None)
        window_of = window_of[keep]
        parts_score.append(s[keep])
        parts_weight.append(weight[keep])
        parts_window.append(np.where(window_of >= 0, window_of + offset, -1))
        offset += len(corpus.windows[series.key])
    return (
        np.concatenate(parts_score),
        np.concatenate(parts_weight),
        np.concatenate(parts_window),
    )


def sweep(
    score: FloatArray,
    weight: FloatArray,
    window: npt.NDArray[np.int64],
    *,
    total_windows: int,
    profile: Profile,
) -> ProfileScore:
    """Best corpus score over every threshold among the scored rows' distinct scores.

    Rows sorted by descending score; lowering the threshold past a row adds its weight if it is
    outside windows, or raises its window's value to the row's weight if that is higher (the
    earliest detection in a window is worth the most). Both are cumulative sums.
    """
    perfect = total_windows * profile.tp_weight
    scored_windows = np.unique(window[window >= 0])
    null = -profile.fn_weight * len(scored_windows)
    n = len(score)
    if n == 0:
        return _result(profile, None, null, null, perfect, 0, len(scored_windows), 0)
    order = np.argsort(-score, kind="stable")
    s_sorted = score[order]
    w_sorted = weight[order]
    g_sorted = window[order]
    delta = np.where(g_sorted < 0, w_sorted, 0.0)
    inside = np.flatnonzero(g_sorted >= 0)
    if len(inside):
        # Running maximum of each window's weights in threshold order, as one accumulate: shift
        # every window into its own band so maxima never leak from one window to the next.
        groups = g_sorted[inside]
        by_group = inside[np.argsort(groups, kind="stable")]
        g = g_sorted[by_group]
        band = 4.0 * (max(profile.tp_weight, profile.fn_weight) + 1.0)
        rank = np.unique(g, return_inverse=True)[1].astype(np.float64)
        running = np.maximum.accumulate(w_sorted[by_group] + rank * band) - rank * band
        first = np.ones(len(g), dtype=bool)
        first[1:] = g[1:] != g[:-1]
        previous = np.empty_like(running)
        previous[first] = -profile.fn_weight
        previous[~first] = running[:-1][~first[1:]]
        # A detection replaces the miss only where it is worth more than -fnWeight.
        gain = np.maximum(running, -profile.fn_weight) - np.maximum(previous, -profile.fn_weight)
        delta[by_group] = gain
    totals = null + np.cumsum(delta)
    # A threshold admits every row with score >= t: evaluate only at the end of each tie group.
    ends = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
    candidates = totals[ends]
    best = int(np.argmax(candidates))
    if candidates[best] <= null:
        return _result(profile, None, null, null, perfect, 0, len(scored_windows), 0)
    cut = ends[best] + 1
    detected = g_sorted[:cut]
    tp = len(np.unique(detected[detected >= 0]))
    fp = int(np.count_nonzero(detected < 0))
    return _result(
        profile,
        float(s_sorted[ends[best]]),
        float(candidates[best]),
        null,
        perfect,
        tp,
        len(scored_windows) - tp,
        fp,
    )


def _result(
    profile: Profile,
    threshold: float | None,
    raw: float,
    null: float,
    perfect: float,
    tp: int,
    fn: int,
    fp: int,
) -> ProfileScore:
    span = perfect - null
    normalized = 100.0 * (raw - null) / span if span > 0 else 0.0
    return ProfileScore(profile.name, threshold, raw, null, perfect, normalized, tp, fn, fp)


def score_all(corpus: Corpus, scores: Mapping[str, FloatArray]) -> dict[str, ProfileScore]:
    return {name: score_corpus(corpus, scores, p) for name, p in corpus.profiles.items()}


class StreamingDetector(Protocol):
    """What the harness needs of a detector: score a point, then learn it."""

    def process(self, x: float, t: float | None = None) -> float: ...


def run_series(detector: StreamingDetector, series: Series) -> FloatArray:
    """Stream one series through a detector, row by row, in time order."""
    process = detector.process
    times = series.times.tolist()
    out = [process(x, t) for x, t in zip(series.values.tolist(), times, strict=True)]
    return np.asarray(out, dtype=np.float64)


def run_corpus(
    corpus: Corpus,
    factory: Callable[[], StreamingDetector],
    on_file: Callable[[Series], None] | None = None,
) -> dict[str, FloatArray]:
    """A fresh detector per series; `on_file` is called after each one (for progress bars)."""
    results: dict[str, FloatArray] = {}
    for series in corpus.series:
        results[series.key] = run_series(factory(), series)
        if on_file is not None:
            on_file(series)
    return results


def write_results(
    out_dir: Path, detector: str, corpus: Corpus, scores: Mapping[str, FloatArray]
) -> list[Path]:
    """NAB's results layout: `OUT/<detector>/<category>/<detector>_<name>.csv`.

    Each file is written beside its final name and renamed into place, so an interrupted run
    never leaves a half-written results file.
    """
    written: list[Path] = []
    for series in corpus.series:
        folder = out_dir / detector / series.category
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{detector}_{series.name}"
        partial = target.with_suffix(".csv.partial")
        try:
            with partial.open("w", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(["timestamp", "value", "anomaly_score"])
                for stamp, value, score in zip(
                    series.timestamps,
                    series.values.tolist(),
                    scores[series.key].tolist(),
                    strict=True,
                ):
                    writer.writerow([stamp, repr(value), repr(score)])
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        written.append(target)
    return written

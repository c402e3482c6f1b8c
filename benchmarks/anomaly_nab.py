"""NAB: the default anomaly detector scored on categories it was not tuned on (held out).

The headline is held out. For each of the corpus's categories (five in ../shared/datasets/nab),
every tunable of the ensemble (member weights, the likelihood's short window, the threshold)
is chosen on the other categories and the choice is scored on the held-out one; the held-out
raw scores are summed over the folds and normalised once (`loco_standard`,
`loco_reward_low_FP_rate`, `loco_reward_low_FN_rate`; `swarmperf.analysis.anomaly.loco`).
Beside it, the default detector's score on the whole set at its best threshold there
(`standard`, ...), which is how published detectors are scored and what `swarmperf
anomaly-eval` reports. The default's settings are the same procedure applied to every
category (`default_matches_procedure` checks that the shipped defaults are what it picks).

Candidates: each member (robust, seasonal, k-NN) is run once per series and its scores are
replayed through the ensemble under every weighting and short window (the members do not
depend on either), so the sweep costs one pooling pass per candidate. Full grid: weights in
{0, 0.25, 1, 2} per member (one candidate per distinct ratio) x short window {10, 20, 40}.
Among them each fold picks the candidate whose median training category scores best (the
threshold swept on the training categories together; `LeaveOneCategoryOut`).

`--quick` (about a minute) runs the same protocol on a smaller problem, labelled in its JSON
(`quick`, `files`): the 3 shortest series of each category and weights in {0, 0.25, 2} with
short window 20. Its figures are not comparable to the full run's.

Peer in the same run: NAB's Windowed Gaussian on the whole set (published 30.6 / 16.4 / 37.3
on these files: checks the scorer end to end). Published on these 42 files (REFERENCES.md,
standard profile, whole set): ARTime 71.5, Numenta HTM 69.9. `points_per_second` is the
default detector streaming the corpus on one core.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import dataset_dir, emit, log, python_version
from swarmperf.analysis import nab
from swarmperf.analysis.anomaly import Ensemble, WindowedGaussian
from swarmperf.analysis.anomaly.base import Recorded
from swarmperf.analysis.anomaly.ensemble import DEFAULT_SHORT, DEFAULT_WEIGHTS, default_members
from swarmperf.analysis.anomaly.loco import LeaveOneCategoryOut

ARTIME_STANDARD = 71.5  # best published on these files (whole set)
HTM_STANDARD = 69.9
GOAL_LOCO_STANDARD = 72.0
MEMBERS = ("robust", "seasonal", "knn")  # the order of DEFAULT_WEIGHTS
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
QUICK_FILES_PER_CATEGORY = 3


def quick_subset(corpus: nab.Corpus) -> nab.Corpus:
    """The shortest few series of each category (by length, then name), for `--quick`."""
    by_category: dict[str, list[nab.Series]] = {}
    for s in corpus.series:
        by_category.setdefault(s.category, []).append(s)
    keys = [
        s.key
        for category in sorted(by_category)
        for s in sorted(by_category[category], key=lambda s: (len(s), s.name))[
            :QUICK_FILES_PER_CATEGORY
        ]
    ]
    return nab.load_corpus(corpus.root, keys)


def candidates(
    levels: Sequence[float], shorts: Sequence[int]
) -> list[tuple[tuple[float, ...], int]]:
    """Every weighting with one candidate per distinct ratio, simplest first, x short windows."""
    seen: set[tuple[float, ...]] = set()
    weightings: list[tuple[float, ...]] = []
    for w in sorted(
        itertools.product(levels, repeat=len(MEMBERS)), key=lambda w: (sum(x > 0 for x in w), w)
    ):
        if sum(w) == 0:
            continue
        ratio = tuple(round(x / sum(w), 6) for x in w)
        if ratio not in seen:
            seen.add(ratio)
            weightings.append(w)
    return [(w, s) for s in shorts for w in weightings]


def label(weights: Sequence[float], short: int) -> str:
    return ",".join(f"{m}={w:g}" for m, w in zip(MEMBERS, weights, strict=True)) + f";short={short}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="3 series per category, coarser grid (~1 minute)"
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path(os.environ.get("SWARMPERF_NAB", dataset_dir("nab"))),
        help="NAB-layout folder (default: $SWARMPERF_NAB, else ../shared/datasets/nab)",
    )
    args = parser.parse_args()
    if not (args.corpus / "data").is_dir():
        log(f"no NAB corpus at {args.corpus}; give --corpus or set SWARMPERF_NAB")
        emit({"loco_standard": None, "goal_met": None, "reason": f"no corpus at {args.corpus}"})
        return
    corpus = nab.load_corpus(args.corpus)
    if args.quick:
        corpus = quick_subset(corpus)
    log(f"{len(corpus.series)} files, {corpus.points:,} points, {corpus.window_count} windows")
    figures: dict[str, object] = {}

    # The default detector, streamed live: the whole-set figures and the speed.
    started = time.perf_counter()
    default_scores = nab.run_corpus(corpus, Ensemble)
    elapsed = time.perf_counter() - started
    whole = nab.score_all(corpus, default_scores)
    points_per_second = corpus.points / elapsed
    log(f"default ensemble: {points_per_second:,.0f} points/s")

    # The members once per series, then every candidate replayed through the ensemble.
    started = time.perf_counter()
    recorded = {
        s.key: [nab.run_series(member, s) for member in default_members()] for s in corpus.series
    }
    log(f"members recorded in {time.perf_counter() - started:.1f} s")
    grid = (
        candidates((0.0, 0.25, 2.0), (20,))
        if args.quick
        else candidates((0.0, 0.25, 1.0, 2.0), (10, 20, 40))
    )
    loco = LeaveOneCategoryOut(corpus)
    started = time.perf_counter()
    for i, (weights, short) in enumerate(grid, start=1):
        scores = {
            s.key: nab.run_series(
                Ensemble([Recorded(r) for r in recorded[s.key]], weights, short=short), s
            )
            for s in corpus.series
        }
        loco.add(label(weights, short), scores)
        if i % 10 == 0 or i == len(grid):
            log(f"  {i}/{len(grid)} candidates, {time.perf_counter() - started:.0f} s")
    for profile in PROFILES:
        held = loco.result(profile)
        figures[f"loco_{profile}"] = round(held.normalized, 2)
        log(f"held out {profile:20s} {held.normalized:6.2f}")
        for fold in held.folds:
            r = fold.held_out_score
            log(
                f"  {fold.held_out:22s} <- {fold.candidate:36s} t={fold.threshold}  "
                f"tp {r.true_positives} fn {r.false_negatives} fp {r.false_positives}"
            )
    # What a live user should expect: the held-out alarms, per window and per scored point.
    held = loco.result("standard")
    scored_points = sum(len(s) - nab.probation_length(len(s)) for s in corpus.series)
    hits = sum(f.held_out_score.true_positives for f in held.folds)
    false_alarms = sum(f.held_out_score.false_positives for f in held.folds)
    figures["loco_windows_hit_standard"] = hits
    figures["loco_false_alarms_standard"] = false_alarms
    figures["loco_points_per_false_alarm"] = round(scored_points / max(false_alarms, 1))
    figures["loco_choices_standard"] = {
        f.held_out: {"settings": f.candidate, "threshold": f.threshold}
        for f in loco.result("standard").folds
    }
    procedure, _ = loco.chosen("standard")
    shipped = label(DEFAULT_WEIGHTS, DEFAULT_SHORT)
    for profile, r in whole.items():
        figures[profile] = round(r.normalized, 2)
        log(
            f"whole set {profile:20s} {r.normalized:6.2f}  threshold {r.threshold}  "
            f"tp {r.true_positives} fn {r.false_negatives} fp {r.false_positives}"
        )
    figures["threshold_standard"] = whole["standard"].threshold
    figures["windows_hit_standard"] = whole["standard"].true_positives
    figures["false_alarms_standard"] = whole["standard"].false_positives
    figures["points_per_second"] = round(points_per_second, 1)
    figures["default_settings"] = shipped
    figures["procedure_on_all_categories"] = procedure
    # The goal and the defaults are about the full protocol; a quick run only exercises it.
    figures["default_matches_procedure"] = None if args.quick else procedure == shipped
    figures["candidates"] = len(grid)
    figures["selection"] = loco.select

    started = time.perf_counter()
    baseline = nab.score_all(corpus, nab.run_corpus(corpus, WindowedGaussian))
    for profile, r in baseline.items():
        figures[f"windowed_gaussian.{profile}"] = round(r.normalized, 2)
    figures["windowed_gaussian.points_per_second"] = round(
        corpus.points / (time.perf_counter() - started), 1
    )
    loco_standard = float(figures["loco_standard"])  # type: ignore[arg-type]
    figures.update(
        {
            "files": len(corpus.series),
            "points": corpus.points,
            "windows": corpus.window_count,
            "categories": len(loco.categories),
            "quick": args.quick,
            "published_artime_standard": ARTIME_STANDARD,
            "published_htm_standard": HTM_STANDARD,
            "goal_loco_standard": GOAL_LOCO_STANDARD,
            "goal_met": None if args.quick else loco_standard >= GOAL_LOCO_STANDARD,
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "python": python_version(),
        }
    )
    if args.quick:
        figures["reason"] = (
            f"quick: {QUICK_FILES_PER_CATEGORY} series per category and a coarser grid; "
            "goal_met and default_matches_procedure need the full run"
        )
    emit(figures)


if __name__ == "__main__":
    main()

"""NAB: the ensemble anomaly detector over the 42 series of ../shared/datasets/nab, NAB v1.1 rules.

One fixed configuration for every file, a fresh detector per file, streaming (each score uses
only the rows up to its own). Scored with swarmperf.analysis.nab for the three profiles. NAB's
Windowed Gaussian baseline is run and scored in the same run as the peer: its published figure
on these files (30.6 / 16.4 / 37.3) checks the harness end to end.

Published on these 42 files (REFERENCES.md, standard profile): ARTime 71.5, Numenta HTM 69.9.

`--quick` runs the 7 realTraffic series only (about 16k points), which is not comparable with
the published figures; `goal_met` is then null.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, python_version
from swarmperf.analysis import nab
from swarmperf.analysis.anomaly import Ensemble, WindowedGaussian

ROOT = Path(__file__).resolve().parent.parent
ARTIME_STANDARD = 71.5  # best published on these files
HTM_STANDARD = 69.9
QUICK_CATEGORY = "realTraffic"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only the {QUICK_CATEGORY} files")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path(os.environ.get("SWARMPERF_NAB", ROOT.parent / "shared" / "datasets" / "nab")),
        help="NAB-layout folder (default: $SWARMPERF_NAB, else ../shared/datasets/nab)",
    )
    args = parser.parse_args()
    if not (args.corpus / "data").is_dir():
        parser.error(f"no NAB corpus at {args.corpus}; give --corpus or set SWARMPERF_NAB")
    corpus = nab.load_corpus(args.corpus)
    if args.quick:
        keys = [s.key for s in corpus.series if s.category == QUICK_CATEGORY]
        corpus = nab.load_corpus(args.corpus, keys)
    log(f"{len(corpus.series)} files, {corpus.points:,} points, {corpus.window_count} windows")

    figures: dict[str, object] = {}
    for label, factory in (("ensemble", Ensemble), ("windowed_gaussian", WindowedGaussian)):
        started = time.perf_counter()
        done = 0

        def tick(series: nab.Series, label: str = label) -> None:
            nonlocal done
            done += 1
            log(f"  {label} {done}/{len(corpus.series)} {series.key}")

        scores = nab.run_corpus(corpus, factory, on_file=tick)
        elapsed = time.perf_counter() - started
        results = nab.score_all(corpus, scores)
        for profile, r in results.items():
            log(
                f"{label:18s} {profile:20s} {r.normalized:6.2f}  threshold {r.threshold}  "
                f"tp {r.true_positives} fn {r.false_negatives} fp {r.false_positives}"
            )
        prefix = "" if label == "ensemble" else f"{label}."
        for profile, r in results.items():
            figures[f"{prefix}{profile}"] = round(r.normalized, 2)
        figures[f"{prefix}points_per_second"] = round(corpus.points / elapsed, 1)
        if label == "ensemble":
            figures["threshold_standard"] = results["standard"].threshold
            figures["windows_hit_standard"] = results["standard"].true_positives
            figures["false_alarms_standard"] = results["standard"].false_positives
    standard = float(figures["standard"])  # type: ignore[arg-type]
    figures.update(
        {
            "files": len(corpus.series),
            "points": corpus.points,
            "windows": corpus.window_count,
            "quick": args.quick,
            "subset": QUICK_CATEGORY if args.quick else "all",
            "published_artime_standard": ARTIME_STANDARD,
            "published_htm_standard": HTM_STANDARD,
            "above_htm": None if args.quick else standard > HTM_STANDARD,
            "goal_met": None if args.quick else standard > ARTIME_STANDARD,
            "python": python_version(),
        }
    )
    emit(figures)


if __name__ == "__main__":
    main()

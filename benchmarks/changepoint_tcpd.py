"""Change-point detection on TCPD: one fixed configuration per method, F1 (margin 5) and cover.

Runs every method's shipped configuration (`swarmperf.bench.changepoint.METHOD_CONFIGS`, the
same for all series, no per-series tuning) over the 13 univariate series of the published
comparison in `../shared/datasets/tcpd`, and scores each with the TCPD metrics. The peer
measured in the same run is "zero" (predicts no change at all): a detector shows skill only
where it beats it on both metrics. The goal is the best published default on this set:
F1 > 0.704 (binary segmentation) and cover > 0.645 (AMOC), both for the default method.

`--quick` is the same run (it already takes well under a minute); the corpus can be given with
`--corpus` or $SWARMPERF_TCPD_DIR.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, python_version
from swarmperf.bench.changepoint import (
    DEFAULT_METHOD,
    METHOD_CONFIGS,
    DetectorConfig,
    detect_changes,
)
from swarmperf.bench.tcpd import TcpdCorpus, load_corpus, score_corpus

PUBLISHED_BEST_F1 = 0.704  # binary segmentation, default (REFERENCES.md)
PUBLISHED_BEST_COVER = 0.645  # AMOC, default (REFERENCES.md)
DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "tcpd"


def evaluate(corpus: TcpdCorpus, config: DetectorConfig | None) -> dict[str, Any]:
    """Mean F1 and cover over the evaluation series; `None` config predicts no change."""
    started = time.perf_counter()
    per_series: dict[str, list[int]] = {}
    for name in corpus.evaluation_names():
        s = corpus.series[name]
        pts = [] if config is None else [cp.index for cp in detect_changes(s.values, config=config)]
        per_series[name] = pts
    # Scored as `swarmperf changepoint-eval` scores, so that the two report the same figures.
    scored = score_corpus(corpus, per_series)
    seconds = time.perf_counter() - started
    if scored.f1 is None or scored.cover is None:
        raise SystemExit(f"nothing to score: {scored.reason}")
    return {
        "f1": round(scored.f1, 4),
        "cover": round(scored.cover, 4),
        "seconds": round(seconds, 3),
        "change_points": per_series,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same run (already under a minute)")
    parser.add_argument("--corpus", type=Path, default=None)
    args = parser.parse_args()
    root = args.corpus or Path(os.environ.get("SWARMPERF_TCPD_DIR", DEFAULT_CORPUS))
    if not root.is_dir():
        log(f"no TCPD corpus at {root}")
        emit({"f1": None, "cover": None, "goal_met": None, "reason": f"no corpus at {root}"})
        return
    corpus = load_corpus(root)
    if corpus.annotations is None:
        emit({"f1": None, "cover": None, "goal_met": None, "reason": "no annotations.json"})
        return
    names = corpus.evaluation_names()
    log(f"{len(names)} series: {', '.join(names)}")
    zero = evaluate(corpus, None)
    log(f"{'zero (peer)':12s} F1 {zero['f1']:.3f}  cover {zero['cover']:.3f}")
    methods: dict[str, dict[str, Any]] = {}
    for method, config in METHOD_CONFIGS.items():
        result = evaluate(corpus, config)
        methods[method] = result
        log(
            f"{method:12s} F1 {result['f1']:.3f}  cover {result['cover']:.3f}  "
            f"{result['seconds']:.2f} s"
        )
    # How much the default depends on its one chosen setting: the same detector at other
    # penalties (reported, never used to pick per series).
    default = METHOD_CONFIGS[DEFAULT_METHOD]
    sweep: dict[str, list[float]] = {}
    for penalty in (3.0, 4.0, 5.0, 6.0, 8.0):
        r = evaluate(corpus, replace(default, penalty=penalty))
        sweep[f"{penalty:g}"] = [r["f1"], r["cover"]]
        log(f"  penalty {penalty:g} x log n: F1 {r['f1']:.3f}  cover {r['cover']:.3f}")
    best = methods[DEFAULT_METHOD]
    goal_met = best["f1"] > PUBLISHED_BEST_F1 and best["cover"] > PUBLISHED_BEST_COVER
    log(f"default = {DEFAULT_METHOD} {METHOD_CONFIGS[DEFAULT_METHOD]}")
    emit(
        {
            "benchmark": "changepoint_tcpd",
            "series": len(names),
            "default_method": DEFAULT_METHOD,
            "f1": best["f1"],
            "cover": best["cover"],
            "zero_f1": zero["f1"],
            "zero_cover": zero["cover"],
            **{f"{m}_f1": r["f1"] for m, r in methods.items()},
            **{f"{m}_cover": r["cover"] for m, r in methods.items()},
            **{f"{m}_seconds": r["seconds"] for m, r in methods.items()},
            "target_f1": PUBLISHED_BEST_F1,
            "target_cover": PUBLISHED_BEST_COVER,
            "goal_met": goal_met,
            "default_penalty_sweep": sweep,
            "quick": bool(args.quick),
            "python": python_version(),
        }
    )


if __name__ == "__main__":
    main()

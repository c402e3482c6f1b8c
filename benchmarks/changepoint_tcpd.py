"""Change-point detection on TCPD: the default's penalty chosen without the series it is scored on.

The headline is held out (`loo_f1`, `loo_cover`): for each of the 13 univariate series of the
published comparison in `../shared/datasets/tcpd`, the default method's penalty is the one with
the best mean F1 + cover on the other 12 series, and the series is scored with it. The
candidates are penalties from 2.5 x log n up (below that pure noise gets confident changes;
`swarmperf.bench.changepoint`), each with a slope priced at half a change. The same
procedure on all 13 series gives the shipped default (`default_matches_procedure`), whose
F1 and cover on the 13 are reported beside (`f1`, `cover`), with every method's shipped
configuration. Goals: held out, F1 >= 0.72 and cover >= 0.68 (the best published default
configurations reach 0.704 and 0.645 on these series). Peer measured in the same run: "zero"
(no change at all); a detector shows skill only where it beats it on both.

Libraries beside ours, in the same run:
- `ruptures` (PELT and binary segmentation) searching the very cost ours minimises (plugged in
  as a ruptures cost), same penalty: `ruptures_f1`, `ruptures_cover`, `ruptures_seconds` for
  the default, `ruptures_binseg_*` for binary segmentation; and ruptures' own "l2" cost
  against our "mean" cost on the same scaled series (`ruptures_l2_*`, `ours_mean_*`).
- `pymannkendall`'s original test against `swarmperf.bench.trend.mann_kendall` on the same
  series plus seeded synthetic ones: agreement of the verdicts, largest p-value difference,
  seconds.

Set-up: `pip install ruptures pymannkendall` (used only here; without them their figures are
null with the reason). `--quick` is the same run without repeats of the timings.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import dataset_dir, emit, log, python_version
from swarmperf.bench.changepoint import (
    DEFAULT_METHOD,
    METHOD_CONFIGS,
    PENALTY_FLOOR,
    SLOPE_TO_PENALTY,
    DetectorConfig,
    detect_changes,
    penalty_for,
    prepare,
    segment_cost,
)
from swarmperf.bench.tcpd import TcpdCorpus, load_corpus, score_corpus, score_series
from swarmperf.bench.trend import mann_kendall

PUBLISHED_BEST_F1 = 0.704  # binary segmentation, default (REFERENCES.md)
PUBLISHED_BEST_COVER = 0.645  # AMOC, default (REFERENCES.md)
GOAL_LOO_F1 = 0.72
GOAL_LOO_COVER = 0.68
PENALTIES = (2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0)
DEFAULT_CORPUS = dataset_dir("tcpd")

Detect = Callable[[Sequence[float | None]], list[int]]


def ours(config: DetectorConfig) -> Detect:
    return lambda values: [cp.index for cp in detect_changes(values, config=config)]


def evaluate(corpus: TcpdCorpus, detect: Detect | None, repeats: int = 1) -> dict[str, Any]:
    """Mean F1 and cover over the evaluation series (`None` predicts no change), and the
    median seconds of `repeats` runs over all of them."""
    times: list[float] = []
    per_series: dict[str, list[int]] = {}
    for _ in range(repeats):
        started = time.perf_counter()
        for name in corpus.evaluation_names():
            s = corpus.series[name]
            per_series[name] = [] if detect is None else detect(s.values)
        times.append(time.perf_counter() - started)
    # Scored as `swarmperf changepoint-eval` scores, so that the two report the same figures.
    scored = score_corpus(corpus, per_series)
    if scored.f1 is None or scored.cover is None:
        raise SystemExit(f"nothing to score: {scored.reason}")
    return {
        "f1": round(scored.f1, 4),
        "cover": round(scored.cover, 4),
        "seconds": round(statistics.median(times), 4),
    }


def candidate(penalty: float) -> DetectorConfig:
    base = METHOD_CONFIGS[DEFAULT_METHOD]
    return replace(base, penalty=penalty, slope_penalty=penalty * SLOPE_TO_PENALTY)


def leave_one_series_out(corpus: TcpdCorpus) -> dict[str, Any]:
    """Each series scored with the penalty best (mean F1 + cover) on the other series."""
    names = corpus.evaluation_names()
    assert corpus.annotations is not None
    table: dict[float, dict[str, tuple[float, float]]] = {}
    for penalty in PENALTIES:
        detect = ours(candidate(penalty))
        row = {}
        for name in names:
            s = corpus.series[name]
            sc = score_series(name, corpus.annotations[name], detect(s.values), s.n_obs)
            row[name] = (sc.f1, sc.cover)
        table[penalty] = row

    def best(on: list[str]) -> float:
        # Ties go to the lower penalty (first in PENALTIES).
        return max(
            PENALTIES, key=lambda p: sum(table[p][n][0] + table[p][n][1] for n in on) / len(on)
        )

    picks = {name: best([n for n in names if n != name]) for name in names}
    return {
        "loo_f1": round(statistics.fmean(table[picks[n]][n][0] for n in names), 4),
        "loo_cover": round(statistics.fmean(table[picks[n]][n][1] for n in names), 4),
        "loo_penalties": picks,
        "procedure_penalty": best(names),
        "penalty_sweep": {
            f"{p:g}": [
                round(statistics.fmean(v[0] for v in table[p].values()), 4),
                round(statistics.fmean(v[1] for v in table[p].values()), 4),
            ]
            for p in PENALTIES
        },
    }


def ruptures_detectors(config: DetectorConfig) -> dict[str, Detect]:
    """ruptures' PELT and binary segmentation over our cost, and over its own l2 cost."""
    import ruptures as rpt
    from ruptures.base import BaseCost

    class SameCost(BaseCost):  # type: ignore[misc]
        """The cost `detect_changes` minimises, as a ruptures cost."""

        model = "swarmperf"
        min_size = config.min_size

        def fit(self, signal: np.ndarray) -> SameCost:
            self.signal = np.asarray(signal, dtype=np.float64).reshape(-1, 1)
            self.cost = segment_cost(self.signal.ravel(), config)
            return self

        def error(self, start: int, end: int) -> float:
            return self.cost.one(start, end)

    def run(algo: Any, values: Sequence[float | None]) -> list[int]:
        y = prepare(values)
        if len(y) < 2 * config.min_size:
            return []
        algo.fit(y.reshape(-1, 1))
        return [int(b) for b in algo.predict(pen=penalty_for(y, config))[:-1]]

    def pelt_same(values: Sequence[float | None]) -> list[int]:
        return run(rpt.Pelt(custom_cost=SameCost(), min_size=config.min_size, jump=1), values)

    def binseg_same(values: Sequence[float | None]) -> list[int]:
        return run(rpt.Binseg(custom_cost=SameCost(), min_size=config.min_size, jump=1), values)

    def pelt_l2(values: Sequence[float | None]) -> list[int]:
        y = prepare(values)
        if len(y) < 2 * config.min_size:
            return []
        mean_config = replace(config, cost="mean")
        # ruptures' l2 cost on the series in the units our "mean" cost uses.
        scale = segment_cost(y, mean_config).scale
        z = y / scale if scale > 0 else y
        algo = rpt.Pelt(model="l2", min_size=config.min_size, jump=1).fit(z)
        return [int(b) for b in algo.predict(pen=penalty_for(y, config))[:-1]]

    return {"pelt": pelt_same, "binseg": binseg_same, "l2": pelt_l2}


def mann_kendall_peer(corpus: TcpdCorpus, repeats: int) -> dict[str, Any]:
    """Our Mann-Kendall against pymannkendall's original test on the same series."""
    import pymannkendall

    rng = np.random.default_rng(7)
    series: list[list[float]] = []
    for s in corpus.series.values():
        if s.n_dim == 1:
            series.append([float(v) for v in s.values if v is not None])
    for k in range(40):  # seeded: noise, and noise with a trend of varying strength
        n = int(rng.integers(20, 300))
        slope = 0.0 if k % 2 == 0 else float(rng.uniform(-0.02, 0.02))
        series.append((rng.normal(0, 1, n) + slope * np.arange(n)).tolist())
    ours_verdicts: list[str] = []
    theirs_verdicts: list[str] = []
    p_gap = 0.0
    for y in series:
        a = mann_kendall(y, alpha=0.05)
        b = pymannkendall.original_test(y, alpha=0.05)
        ours_verdicts.append(a.direction)
        theirs_verdicts.append({"no trend": "none"}.get(b.trend, b.trend))
        if a.p_value is not None:
            p_gap = max(p_gap, abs(a.p_value - float(b.p)))

    def timed(fn: Callable[[list[float]], object]) -> float:
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            for y in series:
                fn(y)
            runs.append(time.perf_counter() - started)
        return round(statistics.median(runs), 4)

    agree = sum(a == b for a, b in zip(ours_verdicts, theirs_verdicts, strict=True))
    return {
        "mann_kendall_series": len(series),
        "mann_kendall_agreement": round(agree / len(series), 4),
        "mann_kendall_max_p_gap": float(f"{p_gap:.3g}"),
        "mann_kendall_seconds": timed(lambda y: mann_kendall(y)),
        "pymannkendall_seconds": timed(lambda y: pymannkendall.original_test(y)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="timings run once, not 5 times")
    parser.add_argument("--corpus", type=Path, default=None)
    args = parser.parse_args()
    repeats = 1 if args.quick else 5
    root = args.corpus or Path(os.environ.get("SWARMPERF_TCPD_DIR", DEFAULT_CORPUS))
    if not root.is_dir():
        log(f"no TCPD corpus at {root}")
        emit(
            {"loo_f1": None, "loo_cover": None, "goal_met": None, "reason": f"no corpus at {root}"}
        )
        return
    corpus = load_corpus(root)
    if corpus.annotations is None:
        emit({"loo_f1": None, "loo_cover": None, "goal_met": None, "reason": "no annotations"})
        return
    names = corpus.evaluation_names()
    log(f"{len(names)} series: {', '.join(names)}")
    figures: dict[str, Any] = {"benchmark": "changepoint_tcpd", "series": len(names)}

    loo = leave_one_series_out(corpus)
    log(f"held out: F1 {loo['loo_f1']:.3f}  cover {loo['loo_cover']:.3f}  {loo['loo_penalties']}")
    shipped = METHOD_CONFIGS[DEFAULT_METHOD]
    figures.update(
        {
            "loo_f1": loo["loo_f1"],
            "loo_cover": loo["loo_cover"],
            "default_method": DEFAULT_METHOD,
            "default_penalty": shipped.penalty,
            "procedure_penalty": loo["procedure_penalty"],
            "default_matches_procedure": candidate(loo["procedure_penalty"]) == shipped,
        }
    )
    zero = evaluate(corpus, None)
    log(f"{'zero (peer)':14s} F1 {zero['f1']:.3f}  cover {zero['cover']:.3f}")
    methods: dict[str, dict[str, Any]] = {}
    for method, config in METHOD_CONFIGS.items():
        methods[method] = r = evaluate(
            corpus, ours(config), 1 if method == "edivisive" else repeats
        )
        log(f"{method:14s} F1 {r['f1']:.3f}  cover {r['cover']:.3f}  {r['seconds']:.3f} s")
    best = methods[DEFAULT_METHOD]
    figures.update(
        {
            "f1": best["f1"],
            "cover": best["cover"],
            "zero_f1": zero["f1"],
            "zero_cover": zero["cover"],
            **{f"{m}_f1": r["f1"] for m, r in methods.items()},
            **{f"{m}_cover": r["cover"] for m, r in methods.items()},
            **{f"{m}_seconds": r["seconds"] for m, r in methods.items()},
        }
    )
    ours_mean = evaluate(corpus, ours(replace(shipped, cost="mean")), repeats)
    figures.update({f"ours_mean_{k}": v for k, v in ours_mean.items()})
    if importlib.util.find_spec("ruptures") is None:
        figures.update({"ruptures_f1": None, "ruptures_reason": "ruptures not installed"})
    else:
        import ruptures

        for label, config in (("", shipped), ("binseg_", METHOD_CONFIGS["binseg"])):
            detect = ruptures_detectors(config)["binseg" if label else "pelt"]
            r = evaluate(corpus, detect, repeats)
            figures.update({f"ruptures_{label}{k}": v for k, v in r.items()})
            log(f"ruptures {label or 'pelt_'}same cost  F1 {r['f1']:.3f}  cover {r['cover']:.3f}")
        r = evaluate(corpus, ruptures_detectors(shipped)["l2"], repeats)
        figures.update({f"ruptures_l2_{k}": v for k, v in r.items()})
        log(
            f"ours mean F1 {ours_mean['f1']:.3f} cover {ours_mean['cover']:.3f} "
            f"{ours_mean['seconds']:.3f} s; ruptures l2 F1 {r['f1']:.3f} cover {r['cover']:.3f} "
            f"{r['seconds']:.3f} s"
        )
        figures["ruptures_version"] = ruptures.__version__
    if importlib.util.find_spec("pymannkendall") is None:
        figures.update({"mann_kendall_agreement": None, "mann_kendall_reason": "not installed"})
    else:
        figures.update(mann_kendall_peer(corpus, repeats))
    figures.update(
        {
            "penalty_floor": PENALTY_FLOOR,
            "loo_penalties": loo["loo_penalties"],
            "penalty_sweep": loo["penalty_sweep"],
            "target_f1": PUBLISHED_BEST_F1,
            "target_cover": PUBLISHED_BEST_COVER,
            "goal_met": loo["loo_f1"] >= GOAL_LOO_F1 and loo["loo_cover"] >= GOAL_LOO_COVER,
            "quick": bool(args.quick),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "python": python_version(),
        }
    )
    emit(figures)


if __name__ == "__main__":
    main()

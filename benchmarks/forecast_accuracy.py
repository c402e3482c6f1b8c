"""Forecast accuracy on the dev traces: rolling-origin MASE, scaled by seasonal naive.

Every forecaster (`swarmperf.autoscale.forecast.FORECASTERS`) forecasts tasks per minute from
origins spread over each trace in `../shared/datasets/traces`, fitted each time on the history
before the origin only (at most `MAX_FIT` intervals), over the horizon the predictive policy
uses at the defaults (`ceil(startup / interval) + 1` = 2 intervals). MASE here is a
forecaster's mean absolute error over those origins and steps divided by seasonal naive's over
the same ones (so seasonal naive scores 1.0; its season is the one found in the history).

Headline: `worst_mase`, the default forecaster on its worst trace (goal <= 0.8). The default
is the forecaster with the best worst MASE, seasonal naive aside (it is the scale, 1.0 by
construction). That rule is also checked leave-one-trace-out: for each trace, the forecaster
with the best worst MASE on the other two, scored on it (`held_out`). The combination is the
median of every other forecaster; `combination.members_chosen_held_out` shows what choosing
its members would give, leave-one-trace-out (scored from the members' forecasts, which the
real `Combination` is checked to match). `hindsight_linear_mase` is not a forecaster: the best
linear function of the last 1 to 5 counts fitted on the scored actuals themselves, a bound on
what forecasting from the latest counts could reach. `coverage` is the share of actuals at or
below the 0.9 quantile (0.9 if the quantiles are calibrated). `lstm` gathers the LSTM's figures, and
`fine_interval` scores every forecaster again on the one-hour request traces at 10 s, seven
steps ahead (the same start-up horizon), refitting every 6 origins and updating between.

`--quick`: 6 origins on NASA and every other minute of the Azure traces; the full run, 60 on
NASA and every minute of the Azure traces from the tenth.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from _common import dataset_dir, emit, log, package_versions
from swarmperf.autoscale.forecast import (
    DEFAULT_FORECASTER,
    FORECASTERS,
    MAX_FIT,
    Combination,
    Lstm,
    Paths,
    combine,
    naive_paths,
    origins_for,
    rolling_paths,
    score,
)
from swarmperf.autoscale.traces import read_trace

TRACES = dataset_dir("traces")
FILES = {
    "nasa": "nasa_http_1995_requests_per_minute.csv",
    "azure_code": "AzureLLMInferenceTrace_code.csv",
    "azure_conv": "AzureLLMInferenceTrace_conv.csv",
}
HORIZON = 2  # ceil(60 s start-up / 60 s interval) + 1: what the predictive policy asks for
FIRST_SHORT = 10  # the predictive policy's min_history
GOAL = 0.8
FINE_INTERVAL = 10.0
FINE_HORIZON = 7  # ceil(60 s start-up / 10 s) + 1
SCALE = "seasonal-naive"  # what MASE divides by
SUBSETS = [
    subset
    for size in range(2, len(Combination.MEMBERS) + 1)
    for subset in itertools.combinations(Combination.MEMBERS, size)
]


def hindsight(y: np.ndarray, origins: list[int], naive: np.ndarray) -> float:
    """Not a forecaster: the MASE of the best linear function of the last 1 to 5 counts,
    fitted by least squares on the scored origins' own actuals (the future). What forecasting
    from the latest counts could reach at best, as a bound beside the goal."""
    actual = np.array([y[o : o + HORIZON] for o in origins])
    scale = float(np.mean(np.abs(naive - actual)))
    best = math.inf
    for lags in range(1, 6):
        x = np.array([np.r_[1.0, y[o - lags : o]] for o in origins])
        if len(origins) <= 2 * (lags + 1):
            break
        fitted = x @ np.linalg.lstsq(x, actual, rcond=None)[0]
        best = min(best, float(np.mean(np.abs(fitted - actual))) / scale)
    return best


def forecast_all(
    y: np.ndarray, origins: list[int], horizon: int, *, refit_every: int = 1
) -> tuple[dict[str, Paths], dict[str, float], dict[str, Any]]:
    """Every forecaster's paths from these origins, with the seconds each took.

    The combination's are the median of its members' (what `Combination` computes from the
    same fits); the real `Combination`, run from the first two origins, must agree.
    """
    paths: dict[str, Paths] = {}
    seconds: dict[str, float] = {}
    for fname, make in FORECASTERS.items():
        if fname == Combination.name:
            continue
        t0 = time.perf_counter()
        paths[fname] = rolling_paths(
            y, make, horizon=horizon, origins=origins, refit_every=refit_every
        )
        seconds[fname] = round(time.perf_counter() - t0, 2)
    combined = combine([paths[m] for m in Combination.MEMBERS])
    paths[Combination.name] = combined
    seconds[Combination.name] = round(sum(seconds[m] for m in Combination.MEMBERS), 2)
    first = origins[:2]
    real = rolling_paths(y, Combination, horizon=horizon, origins=first, refit_every=refit_every)
    gap = float(np.max(np.abs(real.median - combined.median[: len(first)])))
    if gap > 1e-6 * max(1.0, float(np.max(np.abs(real.median)))):
        raise AssertionError(f"the combination's paths differ from its members' median by {gap}")
    return paths, seconds, {"origins": len(first), "max_difference": gap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="6 origins on NASA, not 60; half the Azure ones"
    )
    parser.add_argument("--traces", type=Path, default=None, help=f"default {TRACES}")
    args = parser.parse_args()
    root = args.traces or Path(os.environ.get("SWARMPERF_TRACES_DIR", TRACES))
    missing = [name for name in FILES.values() if not (root / name).is_file()]
    if missing:
        emit(
            {
                "worst_mase": None,
                "goal_met": None,
                "reason": f"traces missing in {root}: {', '.join(missing)}",
            }
        )
        return
    started = time.perf_counter()
    mase: dict[str, dict[str, float]] = {}
    details: dict[str, Any] = {}
    # Each member's forecasts, kept to score every subset of the combination's members.
    member_mase: dict[str, dict[tuple[str, ...], float]] = {}
    for key, name in FILES.items():
        y = read_trace(root / name).counts.astype(float)
        long = len(y) > 2 * MAX_FIT
        count = (6 if args.quick else 60) if long else (len(y) // 2 if args.quick else len(y))
        origins = origins_for(
            len(y), first=MAX_FIT if long else FIRST_SHORT, horizon=HORIZON, count=count
        )
        naive = naive_paths(y, origins, HORIZON)
        paths, seconds, check = forecast_all(y, origins, HORIZON)
        mase[key] = {}
        details[key] = {"origins": len(origins), "combination_check": check, "forecasters": {}}
        for fname, path in paths.items():
            ev = score(y, path, naive=naive)
            mase[key][fname] = round(ev.mase, 4)
            details[key]["forecasters"][fname] = {
                "mase": round(ev.mase, 4),
                "mae": round(ev.mae, 3),
                "naive_mae": round(ev.naive_mae, 3),
                "coverage_q90": None if ev.coverage is None else round(ev.coverage, 3),
                "seconds": seconds[fname],
            }
            log(f"{key:11} {fname:15} MASE {ev.mase:6.3f}  ({len(origins)} origins)")
        details[key]["hindsight_linear_mase"] = round(hindsight(y, origins, naive), 4)
        member_mase[key] = {
            subset: score(y, combine([paths[m] for m in subset]), naive=naive).mase
            for subset in SUBSETS
        }

    # The one-hour request traces again at a finer interval (what a policy forecasting every
    # 10 s would see): the same start-up horizon in steps, refits every 6 origins with updates
    # in between, as the predictive policy runs.
    fine: dict[str, Any] = {"interval": FINE_INTERVAL, "horizon": FINE_HORIZON, "mase": {}}
    for key, name in FILES.items():
        trace = read_trace(root / name, interval=FINE_INTERVAL)
        if trace.layout != "requests":
            continue
        y = trace.counts.astype(float)
        count = len(y) // 4 if args.quick else len(y)
        origins = origins_for(len(y), first=6 * FIRST_SHORT, horizon=FINE_HORIZON, count=count)
        naive = naive_paths(y, origins, FINE_HORIZON)
        paths, _, check = forecast_all(y, origins, FINE_HORIZON, refit_every=6)
        fine["mase"][key] = {}
        fine.setdefault("combination_check", {})[key] = check
        for fname, path in paths.items():
            ev = score(y, path, naive=naive)
            fine["mase"][key][fname] = round(ev.mase, 4)
            log(f"{key:11} {fname:15} MASE {ev.mase:6.3f} at {FINE_INTERVAL:g}s")
    fine["worst_mase"] = {
        f: max(fine["mase"][k][f] for k in fine["mase"]) for f in FORECASTERS if fine["mase"]
    }

    # The combination's members, were they chosen: for each trace, the subset with the best
    # worst MASE on the other two, scored on it (every member is the shipped choice).
    members_held_out: dict[str, Any] = {}
    for key in member_mase:
        train = [k for k in member_mase if k != key]
        chosen = min(SUBSETS, key=lambda s: (max(member_mase[t][s] for t in train), -len(s)))
        members_held_out[key] = {
            "members": list(chosen),
            "mase": round(member_mase[key][chosen], 4),
        }

    def worst(fname: str) -> float:
        return max(mase[k][fname] for k in mase)

    # Seasonal naive is the scale (1.0 everywhere by construction), not a candidate.
    candidates = [f for f in FORECASTERS if f != SCALE]
    held_out: dict[str, Any] = {}
    for key in mase:
        train = [k for k in mase if k != key]
        pick = min(candidates, key=lambda f: max(mase[t][f] for t in train))
        held_out[key] = {"forecaster": pick, "mase": mase[key][pick]}
    best = min(candidates, key=worst)
    worst_mase = worst(DEFAULT_FORECASTER)
    emit(
        {
            "worst_mase": worst_mase,
            "goal": GOAL,
            "goal_met": worst_mase <= GOAL if not math.isnan(worst_mase) else None,
            "default_forecaster": DEFAULT_FORECASTER,
            "best_forecaster_by_worst_mase": best,
            "best_worst_mase": worst(best),
            "mean_mase": {
                f: round(sum(mase[k][f] for k in mase) / len(mase), 4) for f in FORECASTERS
            },
            "held_out": {
                "worst_mase": max(h["mase"] for h in held_out.values()),
                "per_trace": held_out,
            },
            "mase": mase,
            "details": details,
            "horizon": HORIZON,
            "lstm": {
                "worst_mase": worst("lstm"),
                "mase": {k: mase[k]["lstm"] for k in mase},
                "parameters": Lstm().parameters_for(),
            },
            "lstm_reason": None,
            "combination": {
                "members": list(Combination.MEMBERS),
                "worst_mase": worst("combination"),
                "members_chosen_held_out": {
                    "worst_mase": max(h["mase"] for h in members_held_out.values()),
                    "per_trace": members_held_out,
                },
            },
            "fine_interval": fine,
            "quick": args.quick,
            "seconds": round(time.perf_counter() - started, 1),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "versions": package_versions("numpy", "scipy", "statsmodels"),
        }
    )


if __name__ == "__main__":
    main()

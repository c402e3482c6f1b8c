"""Forecast accuracy on the dev traces: rolling-origin MASE, scaled by seasonal naive.

Every forecaster (`swarmperf.autoscale.forecast.FORECASTERS`) forecasts tasks per minute from
origins spread over each trace in `../shared/datasets/traces`, fitted each time on the history
before the origin only (at most `MAX_FIT` intervals), over the horizon the predictive policy
uses at the defaults (`ceil(startup / interval) + 1` = 2 intervals). MASE here is a
forecaster's mean absolute error over those origins and steps divided by seasonal naive's over
the same ones (so seasonal naive scores 1.0; its season is the one found in the history).

Headline: `worst_mase`, the default forecaster on its worst trace (goal <= 0.8). The default
is also checked leave-one-trace-out: for each trace, the forecaster with the best worst MASE on
the other two, scored on it (`held_out`). `coverage` is the share of actuals at or below the
0.9 quantile (0.9 if the quantiles are calibrated). `lstm` gathers the LSTM's figures, and
`fine_interval` scores every forecaster again on the one-hour request traces at 10 s, seven
steps ahead (the same start-up horizon), refitting every 6 origins and updating between.

`--quick`: 6 origins on NASA and every other minute of the Azure traces; the full run, 60 on
NASA and every minute of the Azure traces from the tenth.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, package_versions
from swarmperf.autoscale.forecast import (
    DEFAULT_FORECASTER,
    FORECASTERS,
    MAX_FIT,
    Lstm,
    origins_for,
    rolling_origin,
)
from swarmperf.autoscale.traces import read_trace

TRACES = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "traces"
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
    for key, name in FILES.items():
        y = read_trace(root / name).counts.astype(float)
        long = len(y) > 2 * MAX_FIT
        count = (6 if args.quick else 60) if long else (len(y) // 2 if args.quick else len(y))
        origins = origins_for(
            len(y), first=MAX_FIT if long else FIRST_SHORT, horizon=HORIZON, count=count
        )
        mase[key] = {}
        details[key] = {"origins": len(origins), "forecasters": {}}
        for fname, make in FORECASTERS.items():
            t0 = time.perf_counter()
            ev = rolling_origin(y, make, horizon=HORIZON, origins=origins)
            mase[key][fname] = round(ev.mase, 4)
            details[key]["forecasters"][fname] = {
                "mase": round(ev.mase, 4),
                "mae": round(ev.mae, 3),
                "naive_mae": round(ev.naive_mae, 3),
                "coverage_q90": None if ev.coverage is None else round(ev.coverage, 3),
                "seconds": round(time.perf_counter() - t0, 2),
            }
            log(f"{key:11} {fname:15} MASE {ev.mase:6.3f}  ({len(origins)} origins)")

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
        fine["mase"][key] = {}
        for fname, make in FORECASTERS.items():
            ev = rolling_origin(y, make, horizon=FINE_HORIZON, origins=origins, refit_every=6)
            fine["mase"][key][fname] = round(ev.mase, 4)
            log(f"{key:11} {fname:15} MASE {ev.mase:6.3f} at {FINE_INTERVAL:g}s")
    fine["worst_mase"] = {
        f: max(fine["mase"][k][f] for k in fine["mase"]) for f in FORECASTERS if fine["mase"]
    }

    def worst(fname: str) -> float:
        return max(mase[k][fname] for k in mase)

    held_out: dict[str, Any] = {}
    for key in mase:
        train = [k for k in mase if k != key]
        pick = min(FORECASTERS, key=lambda f: max(mase[t][f] for t in train))
        held_out[key] = {"forecaster": pick, "mase": mase[key][pick]}
    best = min(FORECASTERS, key=worst)
    worst_mase = worst(DEFAULT_FORECASTER)
    emit(
        {
            "worst_mase": worst_mase,
            "goal": GOAL,
            "goal_met": worst_mase <= GOAL if not math.isnan(worst_mase) else None,
            "default_forecaster": DEFAULT_FORECASTER,
            "best_forecaster_by_worst_mase": best,
            "best_worst_mase": worst(best),
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
            "fine_interval": fine,
            "quick": args.quick,
            "seconds": round(time.perf_counter() - started, 1),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "versions": package_versions("numpy", "scipy", "statsmodels"),
        }
    )


if __name__ == "__main__":
    main()

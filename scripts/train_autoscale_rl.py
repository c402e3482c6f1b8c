"""Rebuild the `rl` policy's weights (src/swarmperf/autoscale/models/rl.json) from the dev traces.

One model is trained on every trace in `--traces` (the default the policy ships with) and one
on every trace but each (what `benchmarks/autoscale_traces.py` scores on the trace left out).
Traces longer than `--days` days train on `--days` one-day slices spread evenly over them,
which keeps a search of a few hundred replays within minutes. Deterministic for a seed: the
same traces and flags write the same file.

    python scripts/train_autoscale_rl.py --traces ../shared/datasets/traces
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from swarmperf.autoscale.learned import DEFAULT_MODEL, MODEL_FILE, RuleWeights
from swarmperf.autoscale.replay import ReplaySettings
from swarmperf.autoscale.traces import Trace, read_trace
from swarmperf.autoscale.training import OVER, PRICE, Course, SearchSettings, prepare, search

OUT = (
    Path(__file__).resolve().parents[1] / "src" / "swarmperf" / "autoscale" / "models" / MODEL_FILE
)
DAY = 86_400.0


def slices(trace: Trace, days: int) -> list[Trace]:
    """`days` one-day slices spread evenly over a long counts trace; a short one whole."""
    per_day = round(DAY / trace.interval)
    if trace.layout != "counts" or len(trace.counts) <= days * per_day:
        return [trace]
    gap = (len(trace.counts) - per_day) // max(days - 1, 1)
    return [
        Trace(trace.name, trace.layout, trace.interval, trace.counts[i * gap : i * gap + per_day])
        for i in range(days)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, required=True, help="a folder of CSV traces")
    parser.add_argument("--out", type=Path, default=OUT, help=f"default {OUT}")
    parser.add_argument("--days", type=int, default=3, help="one-day slices of a long trace")
    parser.add_argument("--iterations", type=int, default=SearchSettings.iterations)
    parser.add_argument("--population", type=int, default=SearchSettings.population)
    parser.add_argument("--seed", type=int, default=SearchSettings.seed)
    args = parser.parse_args()
    files = sorted(args.traces.glob("*.csv"))
    if not files:
        parser.error(f"no CSV traces in {args.traces}")
    settings = ReplaySettings()
    search_settings = SearchSettings(
        iterations=args.iterations, population=args.population, seed=args.seed
    )
    courses: dict[str, list[Course]] = {}
    for path in files:
        trace = read_trace(path, interval=settings.interval)
        courses[trace.name] = [prepare(part, settings) for part in slices(trace, args.days)]
        print(f"{trace.name}: {len(courses[trace.name])} part(s)", file=sys.stderr, flush=True)
    names = list(courses)
    groups = {DEFAULT_MODEL: names}
    if len(names) > 1:
        groups.update({f"without {n}": [m for m in names if m != n] for n in names})
    models: dict[str, Any] = {}
    for group, train in groups.items():
        started = time.perf_counter()

        def progress(i: int, best: float, _w: RuleWeights, g: str = group) -> None:
            print(f"{g}: iteration {i}: cost {best:.4f}", file=sys.stderr, flush=True)

        weights, report = search(
            [c for n in train for c in courses[n]], settings, search_settings, progress=progress
        )
        models[group] = {"trained_on": train, "weights": weights.as_dict(), "training": report}
        # Time goes to the log, not the file, which the same flags rebuild byte for byte.
        print(f"{group}: {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    data = {
        "policy": "rl",
        "method": "cross-entropy method over the rule's weights, in the trace replay",
        "reward": f"-(violation minutes / HPA's + {PRICE} x agent-hours / HPA's "
        f"+ {OVER} x max(0, agent-hours / HPA's - 1)), the worst training trace",
        "rebuilt_by": "scripts/train_autoscale_rl.py",
        "arguments": {
            "days": args.days,
            "iterations": args.iterations,
            "population": args.population,
            "seed": args.seed,
        },
        "replay": {
            "interval": settings.interval,
            "peak_agents": settings.peak_agents,
            "slo_factor": settings.slo_factor,
            "startup": settings.startup,
        },
        "models": models,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

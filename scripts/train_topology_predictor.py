"""Rebuild the topology predictor the package ships (src/swarmperf/topology/predictor.json).

Every generated workload (pipeline, map/reduce, all-to-all, hierarchical fan-out, sparse
random; 8, 32 and 128 agents, the last with fewer seeds since each takes a minute; one
machine, two zones, four regions) is simulated under each topology with its best
placement, with the TRAINING seeds only (1000 and up; the benchmark judges on seeds below
1000). One ridge regression per topology (several penalties) and nearest neighbours
(several counts) are scored by leave-one-seed-out regret on the training rows; the best is
fitted on them all. Deterministic: the same arguments write the same file. `--rows PATH`
keeps the simulated rows, so that a second run only fits.

    python scripts/train_topology_predictor.py [--seeds 6] [--sizes 8,32,128]
        [--large-seeds 4] [-o PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from swarmperf.app.selection import FAMILIES, LAYOUTS, select_topology, slot_latency, synthetic_spec
from swarmperf.topology.predictor import Predictor, features, fit, fit_neighbours

TRAIN_SEED_BASE = 1000
OBJECTIVE = "makespan"
LARGE = 64  # workloads of more agents take minutes each: fewer seeds of them
RIDGES = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
NEIGHBOURS = (1, 3, 5, 9)
SHIPPED = Path(__file__).resolve().parents[1] / "src" / "swarmperf" / "topology" / "predictor.json"


def kind(topology: str) -> str:
    return topology.split("(")[0]


def simulate_row(
    family: str, agents: int, layout: str, seed: int, objective: str = OBJECTIVE
) -> tuple[npt.NDArray[np.float64], dict[str, float]]:
    """One workload's features, and each topology's simulated objective."""
    spec, connection_cost = synthetic_spec(family, agents, seed)
    chosen = select_topology(
        spec,
        slot_latency(layout, agents),
        layout=layout,
        objective=objective,
        connection_cost=connection_cost,
        seed=seed,
    )
    figures = {kind(f.topology): f.objective(objective) for f in chosen.plan.figures}
    return features(chosen.summary), {k: float(v) for k, v in figures.items() if v is not None}


def regret(predictor: Predictor, rows: list[Any], objectives: list[dict[str, float]]) -> float:
    """Mean relative excess of the predicted topology's objective over the best's."""
    excess = []
    for row, objective in zip(rows, objectives, strict=True):
        best = min(objective.values())
        chosen = objective[predictor.choose(row)]
        excess.append(chosen / best - 1.0 if best > 0 else 0.0)
    return float(np.mean(excess))


Rows = tuple[list[npt.NDArray[np.float64]], list[dict[str, float]], list[str]]


def simulate_rows(
    seeds: int,
    sizes: tuple[int, ...],
    families: tuple[str, ...],
    layouts: tuple[str, ...],
    large_seeds: int,
) -> Rows:
    """Every training workload's features, its objectives per topology, and its seed."""
    rows: list[npt.NDArray[np.float64]] = []
    objectives: list[dict[str, float]] = []
    groups: list[str] = []
    for seed in range(TRAIN_SEED_BASE, TRAIN_SEED_BASE + seeds):
        for family in families:
            for agents in sizes:
                if agents > LARGE and seed >= TRAIN_SEED_BASE + large_seeds:
                    continue
                for layout in layouts:
                    row, objective = simulate_row(family, agents, layout, seed)
                    if len(objective) < 5:
                        continue  # a topology without a figure: nothing to rank
                    rows.append(row)
                    objectives.append(objective)
                    groups.append(str(seed))
                    print(f"{family} n={agents} {layout} seed={seed}", file=sys.stderr)
    return rows, objectives, groups


def load_rows(path: Path) -> Rows:
    data = json.loads(path.read_text())
    return [np.asarray(r, dtype=float) for r in data["rows"]], data["objectives"], data["groups"]


def save_rows(path: Path, rows: Rows) -> None:
    features_, objectives, groups = rows
    data = {"rows": [r.tolist() for r in features_], "objectives": objectives, "groups": groups}
    path.write_text(json.dumps(data))


def candidates() -> dict[str, Callable[..., Predictor]]:
    """Each model the training may pick, by name: ridge penalties and neighbour counts."""
    models: dict[str, Callable[..., Predictor]] = {}
    for ridge in RIDGES:
        models[f"ridge={ridge:g}"] = partial(fit, ridge=ridge)
    for k in NEIGHBOURS:
        models[f"neighbours={k}"] = partial(fit_neighbours, neighbours=k)
    return models


def train(rows_: Rows, meta: dict[str, Any]) -> Predictor:
    """Pick the model by leave-one-seed-out regret on the training rows alone, then fit it
    on them all."""
    rows, objectives, groups = rows_
    topologies = tuple(sorted(objectives[0]))
    models = candidates()
    held: dict[str, float] = {}
    for name, make in models.items():
        losses = []
        for held_out in sorted(set(groups)):
            inside = [k for k, g in enumerate(groups) if g != held_out]
            outside = [k for k, g in enumerate(groups) if g == held_out]
            if not inside or not outside:
                continue
            model = make([rows[k] for k in inside], [objectives[k] for k in inside], topologies)
            losses.append(
                regret(model, [rows[k] for k in outside], [objectives[k] for k in outside])
            )
        held[name] = float(np.mean(losses)) if losses else 0.0
    # One seed leaves nothing to hold out: every model scores 0 and the first listed wins.
    chosen = min(models, key=lambda name: held[name])
    meta = {
        **meta,
        "rows": len(rows),
        "model": chosen,
        "leave_one_seed_out_regret": {k: round(v, 6) for k, v in held.items()},
    }
    model = models[chosen](rows, objectives, topologies, meta=meta)
    model.meta["training_regret"] = round(regret(model, rows, objectives), 6)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="training seeds per workload")
    parser.add_argument("--sizes", default="8,32,128", help="agents per workload")
    parser.add_argument(
        "--large-seeds", type=int, default=4, help=f"seeds for more than {LARGE} agents"
    )
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("-o", "--output", type=Path, default=SHIPPED)
    parser.add_argument(
        "--rows", type=Path, default=None, help="keep the simulated rows here (and reuse them)"
    )
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    families = tuple(args.families.split(","))
    layouts = tuple(args.layouts.split(","))
    if args.rows is not None and args.rows.exists():
        rows = load_rows(args.rows)
    else:
        rows = simulate_rows(args.seeds, sizes, families, layouts, args.large_seeds)
        if args.rows is not None:
            save_rows(args.rows, rows)
    meta = {
        "objective": OBJECTIVE,
        "train_seeds": [TRAIN_SEED_BASE, TRAIN_SEED_BASE + args.seeds - 1],
        "sizes": list(sizes),
        "large_seeds": args.large_seeds,
        "families": list(families),
        "layouts": list(layouts),
    }
    model = train(rows, meta)
    model.save(args.output)
    print(f"wrote {args.output}: {model.meta}", file=sys.stderr)


if __name__ == "__main__":
    main()

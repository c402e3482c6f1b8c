"""Resource allocation: NSGA-II's front against the exact one, and its cost against sizing
every pool proportionally.

(a) Small generated instances (2–3 pools, 2–3 kinds) whose true front is found by
enumerating every allocation: `hypervolume_ratio` is the hypervolume of NSGA-II's front
over the true front's (objectives normalised by the true front's range, reference point
1.1), median over the instances (goal >= 0.99).
(b) Larger instances (4–5 pools): `cost_saving_vs_proportional` is 1 - the cost of our
cheapest allocation that meets every SLO in the simulator over the cost of the baseline
that sizes every pool at the same fraction of its max (the smallest fraction whose
allocation meets every SLO in the simulator), median over the instances (goal >= 0.2);
`slo_met_in_sim` is the share of instances whose recommendation met every SLO when
simulated (must be 1.0).

    python benchmarks/allocation_pareto.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import numpy as np

from _common import emit, log, package_versions, parse_args
from swarmperf.allocation.confirm import simulate
from swarmperf.allocation.optimise import enumerate_front, nsga2_front, proportional
from swarmperf.allocation.queueing import Model, evaluate

Ints = np.ndarray[Any, np.dtype[np.int64]]


def instance(
    rng: np.random.Generator, pools: int, kinds: int, top: int, load: tuple[float, float]
) -> tuple[Model, Ints]:
    """A random allocation problem: pools of differing price-performance, a mix, SLOs; the
    arrival rate is a `load` share (drawn between the two) of every pool at its max."""
    base = rng.uniform(0.2, 2.0, kinds)  # seconds per task kind on a reference slot
    speed = rng.uniform(0.5, 3.0, pools)  # how much faster than the reference
    slots = rng.integers(1, 5, pools).astype(float)
    # Price roughly follows capacity, with a spread that makes some pools the better buy.
    price = speed * slots * 0.05 * rng.uniform(0.6, 1.6, pools)
    service = base[None, :] / speed[:, None] * rng.uniform(0.8, 1.25, (pools, kinds))
    mix = rng.dirichlet(np.ones(kinds))
    capacity = float(((top * slots) / (service @ mix)).sum())
    rate = capacity * rng.uniform(load[0], load[1])
    slo = np.array([b * rng.uniform(3.0, 6.0) for b in base])
    model = Model(
        service=service,
        cv=rng.uniform(0.5, 1.2, pools),
        slots=slots,
        price=price,
        rate=rate,
        mix=mix,
        slo=slo,
        max_utilisation=0.9,
    )
    return model, np.full(pools, top, dtype=np.int64)


def hypervolume(
    points: np.ndarray[Any, Any], low: np.ndarray[Any, Any], span: np.ndarray[Any, Any]
) -> float:
    from pymoo.indicators.hv import HV

    if len(points) == 0:
        return 0.0
    normal = np.minimum((points - low) / span, 1.1)
    return float(HV(ref_point=np.full(points.shape[1], 1.1))(normal))


def sim_meets(model: Model, counts: Ints, tasks: int, seed: int) -> bool:
    kinds = [f"k{k}" for k in range(model.kinds)]
    figures = simulate(
        [f"p{p}" for p in range(model.pools)],
        [int(n) for n in counts],
        [int(s) for s in model.slots],
        [
            {kinds[k]: float(model.service[p, k]) for k in range(model.kinds)}
            for p in range(model.pools)
        ],
        [float(c) for c in model.cv],
        model.rate,
        {kinds[k]: float(model.mix[k]) for k in range(model.kinds)},
        tasks=tasks,
        seed=seed,
    )
    return not figures.failed and all(
        figures.p99_kind[kinds[k]] <= model.slo[k] for k in range(model.kinds)
    )


def part_a(instances: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ratios: list[float] = []
    evaluated: list[int] = []
    for i in range(instances):
        pools, kinds = int(rng.integers(2, 4)), int(rng.integers(2, 4))
        model, high = instance(rng, pools, kinds, top=int(rng.integers(8, 14)), load=(0.25, 0.45))
        low = np.zeros(pools, dtype=np.int64)
        true = enumerate_front(model, low, high)
        if not len(true):
            log(f"  (a) instance {i}: infeasible, skipped")
            continue
        ours = nsga2_front(model, low, high, seed=i, population=40, generations=40)
        t_obj, o_obj = true.evaluation.objectives(), ours.evaluation.objectives()
        lo, hi = t_obj.min(axis=0), t_obj.max(axis=0)
        span = np.maximum(hi - lo, 1e-9)
        ratio = hypervolume(o_obj, lo, span) / max(hypervolume(t_obj, lo, span), 1e-300)
        ratios.append(ratio)
        evaluated.append(ours.evaluated)
        log(
            f"  (a) instance {i}: {pools} pools, {kinds} kinds, true front {len(true)} points "
            f"of {true.evaluated}; NSGA-II {len(ours)} points from {ours.evaluated} "
            f"evaluations; hypervolume ratio {ratio:.4f}"
        )
    return {
        "hypervolume_ratio": statistics.median(ratios) if ratios else None,
        "hypervolume_ratio_min": min(ratios) if ratios else None,
        "instances": len(ratios),
        "nsga2_evaluations_median": statistics.median(evaluated) if evaluated else None,
    }


def part_b(instances: int, seed: int, tasks: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 1000)
    savings: list[float] = []
    met: list[bool] = []
    for i in range(instances):
        while True:  # an instance some allocation within the bounds can serve
            pools = int(rng.integers(4, 6))
            # Quotas well above the need, as cloud instance types have: the load is
            # 10-30% of every pool at its max.
            model, high = instance(rng, pools, int(rng.integers(2, 4)), top=40, load=(0.1, 0.3))
            if evaluate(model, high[None, :]).feasible[0]:
                break
        low = np.zeros(pools, dtype=np.int64)
        started = time.perf_counter()
        front = nsga2_front(model, low, high, seed=i)
        ours = None
        for j in range(min(len(front), 12)):
            if sim_meets(model, front.counts[j], tasks, seed=i):
                ours = front.counts[j]
                break
        base = proportional(model, low, high)
        while base is not None and not sim_meets(model, base, tasks, seed=i):
            bigger = np.minimum(high, base + 1)
            base = None if np.array_equal(bigger, base) else bigger
        if base is None:
            log(f"  (b) instance {i}: the baseline meets no SLO set, skipped")
            continue
        met.append(ours is not None)
        if ours is None:
            log(f"  (b) instance {i}: no front point met the SLOs in simulation")
            continue
        ours_cost = float(evaluate(model, ours[None, :]).cost[0])
        base_cost = float(evaluate(model, base[None, :]).cost[0])
        saving = 1.0 - ours_cost / base_cost
        savings.append(saving)
        log(
            f"  (b) instance {i}: {pools} pools, ours {ours.tolist()} at {ours_cost:.3f}/h, "
            f"proportional {base.tolist()} at {base_cost:.3f}/h: saving {saving:.1%} "
            f"({time.perf_counter() - started:.1f} s)"
        )
    return {
        "cost_saving_vs_proportional": statistics.median(savings) if savings else None,
        "cost_saving_min": min(savings) if savings else None,
        "slo_met_in_sim": (sum(met) / len(met)) if met else None,
        "instances": len(met),
    }


def main() -> None:
    settings = parse_args(__doc__ or "", n=20, repeats=1, quick_n=8, quick_repeats=1)
    small = 20 if not settings.quick else settings.n
    large = 10 if not settings.quick else 4
    tasks = 20_000 if not settings.quick else 8_000
    started = time.perf_counter()
    log(f"(a) {small} small instances against enumeration")
    a = part_a(small, seed=0)
    log(f"(b) {large} larger instances against proportional sizing, {tasks:,} simulated tasks")
    b = part_b(large, seed=0, tasks=tasks)
    emit(
        {
            "benchmark": "allocation_pareto",
            "quick": settings.quick,
            "hypervolume_ratio": a["hypervolume_ratio"],
            "hypervolume_ratio_min": a["hypervolume_ratio_min"],
            "small_instances": a["instances"],
            "nsga2_evaluations_median": a["nsga2_evaluations_median"],
            "cost_saving_vs_proportional": b["cost_saving_vs_proportional"],
            "cost_saving_min": b["cost_saving_min"],
            "slo_met_in_sim": b["slo_met_in_sim"],
            "large_instances": b["instances"],
            "simulated_tasks": tasks,
            "seconds": round(time.perf_counter() - started, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "versions": package_versions("swarmperf", "pymoo", "numpy", "scipy"),
        }
    )


if __name__ == "__main__":
    main()

"""Searching allocations: NSGA-II (pymoo) for the Pareto front, enumeration, a baseline.

NSGA-II searches pool sizes (integers within each pool's min and max) for the front of
cost against p99 latency and SLA-violation risk under the constraints, with the queueing
model evaluating each generation at once. Every candidate it evaluates goes into an
archive, and the front is the archive's feasible non-dominated set: the final population
alone can drop points found earlier. Small problems are enumerated instead, exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from swarmperf.allocation.queueing import Evaluation, Floats, Model, evaluate

Ints = NDArray[np.int64]
ENUMERATE_UP_TO = 4096  # allocations: below this the front is found by enumeration


@dataclass(frozen=True, slots=True)
class Front:
    """Feasible, non-dominated allocations, cheapest first, with the model's figures;
    `evaluated` is how many allocations the search looked at, `method` how it searched."""

    counts: Ints  # (M, P)
    evaluation: Evaluation
    evaluated: int
    method: str

    def __len__(self) -> int:
        return int(self.counts.shape[0])


def non_dominated(points: Floats) -> NDArray[np.bool_]:
    """Which rows of `points` (objectives, minimised) no other row dominates (duplicates:
    the first is kept)."""
    n = points.shape[0]
    keep = np.ones(n, dtype=bool)
    order = np.lexsort(points.T[::-1])
    kept: list[int] = []
    for i in order:
        p = points[i]
        for j in kept:
            q = points[j]
            if np.all(q <= p):
                keep[i] = False
                break
        if keep[i]:
            kept.append(int(i))
    return keep


def _select(model: Model, counts: Ints, evaluated: int, method: str) -> Front:
    counts = np.unique(counts, axis=0)
    ev = evaluate(model, counts)
    ok = ev.feasible
    counts, ev = counts[ok], _rows(ev, ok)
    best = non_dominated(_rounded(ev.objectives()))
    counts, ev = counts[best], _rows(ev, best)
    order = np.lexsort((ev.p99, ev.cost))
    return Front(counts[order], _rows(ev, order), evaluated, method)


def _rounded(objectives: Floats) -> Floats:
    # Differences below a tenth of a per cent of latency or risk are the model's noise.
    return np.column_stack(
        [objectives[:, 0], np.round(objectives[:, 1], 4), np.round(objectives[:, 2], 5)]
    )


def _rows(ev: Evaluation, which: NDArray[np.bool_] | NDArray[np.intp]) -> Evaluation:
    return Evaluation(
        cost=ev.cost[which],
        p99=ev.p99[which],
        p99_kind=ev.p99_kind[which],
        risk=ev.risk[which],
        utilisation=ev.utilisation[which],
        wait_probability=ev.wait_probability[which],
        violations=ev.violations[which],
    )


def space_size(low: Ints, high: Ints) -> int:
    return math.prod(int(h - lo + 1) for lo, h in zip(low, high, strict=True))


def enumerate_front(model: Model, low: Ints, high: Ints) -> Front:
    """The exact front: every allocation within the bounds, evaluated."""
    axes = [np.arange(lo, h + 1) for lo, h in zip(low, high, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
    return _select(model, grid.astype(np.int64), int(grid.shape[0]), "enumeration")


def nsga2_front(
    model: Model,
    low: Ints,
    high: Ints,
    *,
    seed: int = 0,
    population: int = 60,
    generations: int = 80,
) -> Front:
    """The front NSGA-II finds (pymoo; integer pool sizes by rounding repair)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    archive: list[Ints] = []
    names = model.constraint_names()

    class _Allocation(Problem):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(
                n_var=len(low),
                n_obj=3,
                n_ieq_constr=len(names),
                xl=low.astype(float),
                xu=high.astype(float),
                vtype=int,
            )

        def _evaluate(self, x: Floats, out: dict[str, object], *args: object, **kw: object) -> None:
            counts = np.rint(x).astype(np.int64)
            archive.append(counts)
            ev = evaluate(model, counts)
            out["F"] = ev.objectives()
            out["G"] = ev.violations

    algorithm = NSGA2(
        pop_size=population,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    minimize(_Allocation(), algorithm, ("n_gen", generations), seed=seed, verbose=False)
    # The corners (every pool at its min, at its max) join the archive: both ends count.
    counts = np.concatenate([*archive, low[None, :], high[None, :]])
    return _select(model, counts, int(counts.shape[0]), "nsga2")


def search(model: Model, low: Ints, high: Ints, *, seed: int = 0, exact: bool = False) -> Front:
    """The front: enumerated when the space is small (or `exact`), else NSGA-II's."""
    if exact or space_size(low, high) <= ENUMERATE_UP_TO:
        return enumerate_front(model, low, high)
    return nsga2_front(model, low, high, seed=seed)


def proportional(model: Model, low: Ints, high: Ints, *, start: float = 0.0) -> Ints | None:
    """The baseline: every pool at the same fraction of its max (at least its min), the
    smallest fraction from `start` up whose allocation the model says meets every
    constraint; None if none does."""
    fractions = np.arange(max(int(start * 1000), 1), 1001) / 1000.0
    counts = np.maximum(low[None, :], np.ceil(fractions[:, None] * high[None, :]))
    counts = np.unique(counts.astype(np.int64), axis=0)
    # Each pool grows with the fraction, so sorting by the total keeps the fractions' order.
    counts = counts[np.argsort(counts.sum(axis=1), kind="stable")]
    ok = np.flatnonzero(evaluate(model, counts).feasible)
    return counts[ok[0]] if ok.size else None


def recommended(front: Front) -> int | None:
    """The index of the cheapest allocation on the front (it meets every constraint)."""
    return 0 if len(front) else None

"""The front: non-dominated, every point within every constraint, and NSGA-II's as good as
the enumerated one on small problems."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.allocation.optimise import enumerate_front, non_dominated, nsga2_front, proportional
from swarmperf.allocation.queueing import Model, evaluate


@st.composite
def models(draw: st.DrawFn) -> tuple[Model, np.ndarray, np.ndarray]:
    pools = draw(st.integers(1, 3))
    kinds = draw(st.integers(1, 3))
    floats = st.floats(0.01, 0.5)
    service = np.array([[draw(floats) for _ in range(kinds)] for _ in range(pools)])
    mix = np.array([draw(st.floats(0.1, 1.0)) for _ in range(kinds)])
    mix /= mix.sum()
    slo = np.array([draw(st.one_of(st.just(math.nan), st.floats(0.2, 3.0))) for _ in range(kinds)])
    model = Model(
        service=service,
        cv=np.array([draw(st.floats(0.0, 1.5)) for _ in range(pools)]),
        slots=np.array([float(draw(st.integers(1, 4))) for _ in range(pools)]),
        price=np.array([draw(st.floats(0.0, 2.0)) for _ in range(pools)]),
        rate=draw(st.floats(1.0, 80.0)),
        mix=mix,
        slo=slo,
        budget=draw(st.one_of(st.none(), st.floats(0.5, 20.0))),
        max_utilisation=draw(st.floats(0.5, 0.95)),
    )
    low = np.array([draw(st.integers(0, 2)) for _ in range(pools)], dtype=np.int64)
    high = low + np.array([draw(st.integers(0, 8)) for _ in range(pools)], dtype=np.int64)
    return model, low, high


@settings(max_examples=40, deadline=None)
@given(models())
def test_the_front_is_non_dominated_and_meets_every_constraint(
    problem: tuple[Model, np.ndarray, np.ndarray],
) -> None:
    model, low, high = problem
    front = enumerate_front(model, low, high)
    if not len(front):
        # Then no allocation within the bounds meets the constraints.
        axes = [np.arange(lo, h + 1) for lo, h in zip(low, high, strict=True)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
        assert not evaluate(model, grid).feasible.any()
        return
    again = evaluate(model, front.counts)
    assert again.feasible.all()
    assert np.all((front.counts >= low) & (front.counts <= high))
    if model.budget is not None:
        assert np.all(again.cost <= model.budget + 1e-9)
    assert np.all(again.utilisation <= model.max_utilisation + 1e-9)
    for k in np.flatnonzero(~np.isnan(model.slo)):
        assert np.all(again.p99_kind[:, k] <= model.slo[k] + 1e-9)
    objectives = again.objectives()
    for i in range(len(objectives)):
        others = np.delete(objectives, i, axis=0)
        dominated = np.all(others <= objectives[i], axis=1) & np.any(
            others < objectives[i] - 1e-9, axis=1
        )
        assert not dominated.any()
    # The cheapest feasible allocation is the front's first point.
    axes = [np.arange(lo, h + 1) for lo, h in zip(low, high, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
    every = evaluate(model, grid)
    assert front.evaluation.cost[0] == every.cost[every.feasible].min()


def test_nsga2_finds_the_enumerated_front_on_a_small_problem() -> None:
    model = Model(
        service=np.array([[0.4, 0.06], [0.25, 0.04], [0.08, 0.01]]),
        cv=np.array([1.0, 0.8, 0.5]),
        slots=np.array([1.0, 4.0, 8.0]),
        price=np.array([0.1, 0.34, 1.2]),
        rate=60.0,
        mix=np.array([0.3, 0.7]),
        slo=np.array([1.5, 0.5]),
        budget=8.0,
    )
    low, high = np.zeros(3, dtype=np.int64), np.array([20, 10, 4])
    exact = enumerate_front(model, low, high)
    found = nsga2_front(model, low, high, seed=1, population=40, generations=40)
    assert found.method == "nsga2"
    assert {tuple(c) for c in exact.counts} <= {tuple(c) for c in found.counts}
    cheapest = proportional(model, low, high)
    assert cheapest is not None
    assert evaluate(model, cheapest[None, :]).cost[0] >= exact.evaluation.cost[0]


def test_non_dominated_keeps_the_trade_offs() -> None:
    points = np.array([[1.0, 5.0], [2.0, 3.0], [2.0, 4.0], [3.0, 3.0], [1.0, 5.0]])
    assert non_dominated(points).tolist() == [True, True, False, False, False]

"""The QAP's cost and swap deltas: every fast way agrees with recomputing the cost."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError
from swarmperf.topology import _kernels
from swarmperf.topology.qap import (
    MAX_N,
    Budget,
    Problem,
    cost,
    delta_matrix,
    swap_delta,
    update_deltas,
)
from swarmperf.topology.tabu import TabuSearch


@st.composite
def problems(draw: st.DrawFn, min_n: int = 2, max_n: int = 8) -> tuple[Problem, np.ndarray]:
    """A random QAP (symmetric or not, integer entries, any diagonal) and a permutation."""
    n = draw(st.integers(min_n, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    symmetric = draw(st.booleans())
    rng = np.random.default_rng(seed)
    a = rng.integers(-5, 20, size=(n, n)).astype(float)
    b = rng.integers(0, 20, size=(n, n)).astype(float)
    if symmetric:
        a, b = a + a.T, b + b.T
    return Problem(a, b), rng.permutation(n)


def swapped(perm: np.ndarray, r: int, s: int) -> np.ndarray:
    q = perm.copy()
    q[[r, s]] = q[[s, r]]
    return q


def brute_cost(problem: Problem, perm: np.ndarray) -> float:
    n = problem.n
    return float(
        sum(
            problem.flow[i, j] * problem.distance[perm[i], perm[j]]
            for i in range(n)
            for j in range(n)
        )
    )


# No deadline: the machine may be busy, and the work per example is small and bounded.
@settings(deadline=None)
@given(problems())
def test_cost_is_the_double_sum(case: tuple[Problem, np.ndarray]) -> None:
    problem, perm = case
    assert cost(problem, perm) == brute_cost(problem, perm)


@settings(deadline=None)
@given(problems())
def test_every_delta_equals_recomputing_the_cost(case: tuple[Problem, np.ndarray]) -> None:
    problem, perm = case
    before = cost(problem, perm)
    matrix = delta_matrix(problem, perm)
    for r in range(problem.n):
        for s in range(problem.n):
            exact = cost(problem, swapped(perm, r, s)) - before
            assert swap_delta(problem, perm, r, s) == exact
            assert matrix[r, s] == exact
            kernel = _kernels.swap_delta(problem.flow, problem.distance, perm, r, s)
            assert kernel == exact


@settings(deadline=None)
@given(problems(), st.data())
def test_the_update_after_a_swap_equals_recomputing(
    case: tuple[Problem, np.ndarray], data: st.DataObject
) -> None:
    problem, perm = case
    r = data.draw(st.integers(0, problem.n - 1))
    s = data.draw(st.integers(0, problem.n - 1).filter(lambda v: v != r))
    deltas = delta_matrix(problem, perm)
    after = swapped(perm, r, s)
    update_deltas(problem, after, deltas, r, s)
    np.testing.assert_array_equal(deltas, delta_matrix(problem, after))


@settings(max_examples=30, deadline=None)
@given(problems(min_n=3), st.integers(1, 300))
def test_the_compiled_tabu_keeps_its_costs_exact(
    case: tuple[Problem, np.ndarray], steps: int
) -> None:
    # The compiled step keeps the current cost by adding deltas that it updates in O(1):
    # after many steps, both must still be what recomputing gives.
    problem, perm = case
    search = TabuSearch(problem, perm, np.random.default_rng(0))
    search.run(Budget(1e9, steps))
    assert search.steps == steps
    assert search.costs[0] == cost(problem, search.perm)
    assert search.best_cost == cost(problem, search.best_perm)
    assert search.best_cost <= cost(problem, perm)


@pytest.mark.parametrize(
    ("flow", "distance", "field"),
    [
        ([[1, 2, 3]], [[0]], "flow"),
        ([[0, 1], [1, 0]], [[0, 1, 2], [1, 0, 1], [2, 1, 0]], "distance"),
        ([[0, float("nan")], [1, 0]], [[0, 1], [1, 0]], "flow"),
        ([[0, 1], [1, 0]], [[0, float("inf")], [1, 0]], "distance"),
        ([], [], "flow"),
        ([["a", "b"], ["c", "d"]], [[0, 1], [1, 0]], "flow"),
    ],
)
def test_a_problem_must_be_two_square_finite_matrices_of_one_size(
    flow: object, distance: object, field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Problem(flow, distance)
    assert caught.value.field == field


def test_a_problem_is_limited_in_size() -> None:
    big = np.zeros((MAX_N + 1, MAX_N + 1))
    with pytest.raises(ConfigError, match="at most"):
        Problem(big, big)


def test_a_placement_needs_non_negative_traffic_and_latency() -> None:
    with pytest.raises(ConfigError) as caught:
        Problem.placement([[0, -1], [1, 0]], [[0, 1], [1, 0]])
    assert caught.value.field == "traffic"
    with pytest.raises(ConfigError) as caught:
        Problem.placement([[0, 1], [1, 0]], [[0, -1], [1, 0]])
    assert caught.value.field == "latency"


def test_a_placement_needs_a_slot_per_agent_and_pads_idle_agents() -> None:
    with pytest.raises(ConfigError, match="at least one slot per agent"):
        Problem.placement(np.ones((3, 3)), np.ones((2, 2)))
    problem = Problem.placement(np.ones((2, 2)), np.ones((4, 4)))
    assert problem.n == 4
    assert problem.flow[2:].sum() == problem.flow[:, 2:].sum() == 0


def test_the_budget_stops_at_its_steps_or_its_time(clock: object) -> None:
    from tests.conftest import FakeClock

    assert isinstance(clock, FakeClock)
    steps = Budget(10.0, 25, clock)
    assert [steps.take(10) for _ in range(4)] == [10, 10, 5, 0]
    timed = Budget(10.0, None, clock)
    assert timed.take(7) == 7
    clock.advance(10.0)
    assert timed.take(7) == 0
    assert timed.progress() == 1.0
    with pytest.raises(ConfigError):
        Budget(0.0, None)

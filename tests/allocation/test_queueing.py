"""The queueing model: Erlang C against hand-worked and published values, and the model's
figures behaving as queues do (more agents never slower, cost linear in the counts)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.allocation.queueing import Model, erlang_b, erlang_c, erlang_c_vec, evaluate


@pytest.mark.parametrize(
    ("c", "a", "expected"),
    [
        (1, 0.5, 0.5),  # M/M/1: the probability of waiting is the utilisation
        (2, 1.0, 1 / 3),  # by hand: (a^2/2 * 2/(2-1)) / (1 + 1 + 1)
        (3, 2.0, 4 / 9),  # by hand: B(3, 2) = 4/19, C = 3B / (3 - 2(1 - B))
        (10, 8.0, 0.4092),  # published Erlang C tables (10 agents, 8 Erlangs)
        (100, 95.0, 0.5065),
    ],
)
def test_erlang_c_matches_known_values(c: int, a: float, expected: float) -> None:
    assert erlang_c(c, a) == pytest.approx(expected, abs=5e-4)
    assert float(erlang_c_vec(np.array([c]), np.array([a]))[0]) == pytest.approx(expected, abs=5e-4)


def test_erlang_b_by_hand() -> None:
    assert erlang_b(3, 2.0) == pytest.approx(4 / 19)
    assert erlang_c(4, 4.0) == 1.0  # overloaded: everyone waits


@given(c=st.integers(1, 400), load=st.floats(0.01, 0.999))
def test_vectorised_erlang_c_agrees_with_the_recursion(c: int, load: float) -> None:
    a = c * load
    assert float(erlang_c_vec(np.array([c]), np.array([a]))[0]) == pytest.approx(
        erlang_c(c, a), rel=1e-6, abs=1e-9
    )


def _model(rate: float) -> Model:
    return Model(
        service=np.array([[0.2, 0.05], [0.1, 0.02]]),
        cv=np.array([1.0, 0.5]),
        slots=np.array([1.0, 2.0]),
        price=np.array([0.1, 0.3]),
        rate=rate,
        mix=np.array([0.4, 0.6]),
        slo=np.array([1.0, math.nan]),
    )


def test_m_m_1_response_time_matches_the_closed_form() -> None:
    # Constant-free check: an exponential-like M/M/1 has p99 = ln(100) / (mu - lambda); a
    # log-normal service with cv 1 is close to it.
    model = Model(
        service=np.array([[1.0]]),
        cv=np.array([1.0]),
        slots=np.array([1.0]),
        price=np.array([1.0]),
        rate=0.5,
        mix=np.array([1.0]),
        slo=np.array([math.nan]),
    )
    ev = evaluate(model, np.array([[1]]))
    assert float(ev.wait_probability[0]) == pytest.approx(0.5)
    assert float(ev.p99[0]) == pytest.approx(math.log(100) / 0.5, rel=0.05)


@settings(max_examples=40, deadline=None)
@given(a=st.integers(1, 20), more=st.integers(1, 5), rate=st.floats(1, 60))
def test_more_agents_of_a_pool_are_never_slower(a: int, more: int, rate: float) -> None:
    # Within one pool. (Adding a slower pool's agent can slow the tail: some tasks go there.)
    model = _model(rate)
    for pool in (0, 1):
        counts = np.zeros((2, 2), dtype=np.int64)
        counts[0, pool], counts[1, pool] = a, a + more
        ev = evaluate(model, counts)
        assert ev.p99[1] <= ev.p99[0] * (1 + 1e-4)  # the bisection's resolution
        assert ev.risk[1] <= ev.risk[0] + 1e-9
        assert ev.wait_probability[1] <= ev.wait_probability[0] + 1e-12


@given(a=st.integers(0, 20), b=st.integers(0, 10))
def test_cost_is_linear_in_the_counts(a: int, b: int) -> None:
    assert evaluate(_model(10.0), np.array([[a, b]])).cost[0] == pytest.approx(0.1 * a + 0.3 * b)


def test_an_overloaded_allocation_violates_utilisation() -> None:
    ev = evaluate(_model(100.0), np.array([[1, 1]]))
    assert not ev.feasible[0]
    assert ev.risk[0] == 1.0

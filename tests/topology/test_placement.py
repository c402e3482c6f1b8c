"""The solvers behind `solve`: valid, reproducible, better than chance, optimal when small."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.topology import SOLVERS, Problem, cost, place, solve
from swarmperf.topology.genetic import crossover
from swarmperf.topology.qaplib import read_dat, read_sln
from tests.conftest import FakeClock
from tests.support import unavailable

QAPLIB = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "qaplib"
NAMES = sorted(SOLVERS)
# Steps for a small instance, per solver: what each calls one iteration differs (a tabu
# move, a random swap, a tabu move inside a child).
STEPS = {"tabu": 300, "annealing": 20_000, "genetic": 2_000}
DEFAULT_STEPS = 2_000
NO_TIME_LIMIT = 1e9


def random_problem(n: int, seed: int) -> Problem:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10, size=(n, n))
    b = rng.integers(0, 10, size=(n, n))
    return Problem(a + a.T, b + b.T, f"random{n}")


def brute_force(problem: Problem) -> float:
    return min(cost(problem, p) for p in itertools.permutations(range(problem.n)))


@settings(max_examples=15, deadline=None)
@given(
    st.sampled_from(NAMES),
    st.integers(2, 9),
    st.integers(0, 2**16),
    st.integers(0, 2**16),
)
def test_a_solution_is_a_permutation_with_its_own_cost_never_worse_than_its_start(
    name: str, n: int, instance: int, seed: int
) -> None:
    problem = random_problem(n, instance)
    start = np.random.default_rng(seed).permutation(n)
    found = solve(
        problem, solver=name, seed=seed, start=start, iterations=50, time_limit_s=NO_TIME_LIMIT
    )
    assert sorted(found.perm) == list(range(n))
    assert found.cost == cost(problem, found.perm)
    assert found.cost <= cost(problem, start)
    assert found.solver == name


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_and_steps_give_the_same_solution(name: str) -> None:
    problem = random_problem(25, 1)

    def run(seed: int) -> tuple[int, ...]:
        # A short run, so that different seeds end in different places.
        found = solve(
            problem,
            solver=name,
            seed=seed,
            iterations=STEPS.get(name, DEFAULT_STEPS) // 10,
            time_limit_s=NO_TIME_LIMIT,
        )
        return found.perm

    assert run(3) == run(3)
    assert len({run(seed) for seed in range(4)}) > 1, "the seed changes nothing"


@pytest.mark.parametrize("name", NAMES)
def test_every_solver_beats_random_permutations(name: str) -> None:
    problem = random_problem(20, 2)
    rng = np.random.default_rng(0)
    randoms = [cost(problem, rng.permutation(20)) for _ in range(200)]
    found = solve(
        problem, solver=name, iterations=STEPS.get(name, DEFAULT_STEPS), time_limit_s=NO_TIME_LIMIT
    )
    assert found.cost < min(randoms)


@pytest.mark.parametrize("name", NAMES)
def test_every_solver_finds_the_optimum_of_a_small_instance(name: str) -> None:
    problem = random_problem(7, 5)
    assert solve(
        problem, solver=name, iterations=STEPS.get(name, DEFAULT_STEPS), time_limit_s=NO_TIME_LIMIT
    ).cost == brute_force(problem)


def test_tabu_search_solves_nug12() -> None:
    if not (QAPLIB / "nug12.dat").is_file():
        unavailable(f"the shared QAPLIB data set is not at {QAPLIB}")
    problem = read_dat(QAPLIB / "nug12.dat")
    found = solve(problem, solver="tabu", iterations=20_000, time_limit_s=NO_TIME_LIMIT)
    assert found.cost == read_sln(QAPLIB / "nug12.sln").value == 578


def test_the_cost_is_qaplibs_on_its_published_solutions() -> None:
    # perm[i] is the location of facility i: each .sln's permutation costs its value (two
    # files list the inverse permutation, as best_known.csv says).
    if not (QAPLIB / "best_known.csv").is_file():
        unavailable(f"the shared QAPLIB data set is not at {QAPLIB}")
    with (QAPLIB / "best_known.csv").open() as table:
        rows = list(csv.DictReader(table))
    assert len(rows) == 22
    for row in rows:
        problem = read_dat(QAPLIB / f"{row['name']}.dat")
        known = read_sln(QAPLIB / f"{row['name']}.sln")
        perm = np.array(known.perm)
        if row["sln_permutation_convention"].startswith("inverse"):
            perm = np.argsort(perm)
        assert cost(problem, perm) == known.value == float(row["best_known_value"])


def test_the_time_limit_cuts_a_run_short() -> None:
    clock = FakeClock()

    def ticking() -> float:
        clock.advance(1.0)
        return clock()

    problem = random_problem(12, 3)
    for name in NAMES:
        # No step cap: only the (fake) clock ends the run, after a few looks at it.
        found = solve(problem, solver=name, time_limit_s=5.0, clock=ticking)
        assert found.iterations > 0
        assert 5.0 <= found.seconds < 50.0


def test_unknown_solvers_and_bad_settings_are_config_errors() -> None:
    problem = random_problem(4, 0)
    with pytest.raises(UnknownName, match="annealing, genetic, tabu"):
        solve(problem, solver="greedy")
    with pytest.raises(ConfigError, match="seed"):
        solve(problem, seed=-1)
    with pytest.raises(ConfigError, match="time_limit_s"):
        solve(problem, time_limit_s=0)
    with pytest.raises(ConfigError, match="perm"):
        solve(problem, start=[0, 0, 1, 2])


def test_place_puts_the_chattiest_agents_on_the_closest_slots() -> None:
    # Agents 0 and 1 talk a lot, 2 and 3 little; slots 0 and 3 are close, the rest far.
    traffic = np.array([[0, 100, 1], [100, 0, 1], [1, 1, 0]])
    latency = np.array([[0, 9, 9, 1], [9, 0, 9, 9], [9, 9, 0, 9], [1, 9, 9, 0]])
    placed = place(traffic, latency, iterations=100, time_limit_s=NO_TIME_LIMIT)
    assert len(placed.slots) == 3
    assert set(placed.slots[:2]) == {0, 3}
    assert placed.cost == 2 * 100 * 1 + 4 * 9


@given(st.integers(2, 12), st.integers(0, 2**16))
def test_crossover_gives_a_permutation_keeping_what_the_parents_share(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.permutation(n), rng.permutation(n)
    child = crossover(a, b, rng)
    assert sorted(child) == list(range(n))
    assert (child[a == b] == a[a == b]).all()


@pytest.mark.parametrize("name", NAMES)
def test_the_result_does_not_depend_on_how_the_clock_split_the_steps(name: str) -> None:
    # A clock that stands still grants many steps at a time; one that races grants one
    # or a few. With the same seed and step cap, the solution must be the same.
    problem = random_problem(14, 4)
    racing = FakeClock()

    def fast() -> float:
        racing.advance(1e-3)
        return racing()

    steps = STEPS.get(name, DEFAULT_STEPS) // 3
    found = [
        solve(problem, solver=name, seed=9, iterations=steps, time_limit_s=1e9, clock=clock)
        for clock in (FakeClock(), fast)
    ]
    assert found[0].perm == found[1].perm
    assert found[0].iterations == found[1].iterations == steps

"""Placement of agents onto slots as a quadratic assignment problem: the solvers, one way in.

`solve(problem, time_limit_s=..., seed=...)` runs one solver of `SOLVERS` and returns a
`Solution`; `place(traffic, latency, ...)` does the same from a traffic matrix between
agents and a latency matrix between slots (processes, Ray nodes, zones), and says which
slot each agent goes to.

Why these solvers are written here: scipy's `quadratic_assignment` has only FAQ (a
continuous relaxation) and 2-opt (local swaps), which on the 22 QAPLIB instances of the
benchmark leave a mean gap of 3.0% (FAQ, best of 20 starts) and 2.45% (2-opt, best of 20
starts, 7 of 22 at the optimum, measured by `benchmarks/qap_qaplib.py`), where tabu search
and the genetic algorithm here reach all 22 optima in 10 s each; no well-kept Python
library offers robust tabu search or a hybrid genetic algorithm for the QAP. The default
is the solver that measured best there (ties: the one that got to its best sooner).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.topology import _kernels
from swarmperf.topology.annealing import solve_annealing
from swarmperf.topology.genetic import solve_genetic
from swarmperf.topology.qap import Budget, Clock, Perm, Problem, Solution, as_perm
from swarmperf.topology.tabu import solve_tabu


class Solver(Protocol):
    """A QAP solver: from a random start drawn with `seed` (or `start`) until `budget` ends."""

    def __call__(
        self, problem: Problem, *, budget: Budget, seed: int, start: Perm | None = None
    ) -> Solution: ...


@dataclass(frozen=True, slots=True)
class SolverEntry:
    solve: Solver
    description: str
    step: str  # what one of its iterations is


SOLVERS: dict[str, SolverEntry] = {
    "tabu": SolverEntry(
        solve_tabu,
        "robust tabu search (Taillard 1991): best allowed swap of the whole neighbourhood",
        "one move (n(n-1)/2 swaps evaluated)",
    ),
    "annealing": SolverEntry(
        solve_annealing,
        "simulated annealing: random swaps, Connolly's temperatures, geometric cooling",
        "one random swap",
    ),
    "genetic": SolverEntry(
        solve_genetic,
        "hybrid genetic algorithm: uniform crossover, every child improved by tabu search",
        "one tabu move inside a child's improvement",
    ),
}

# The solver that measured best in benchmarks/qap_qaplib.py (README, "Topology Optimizer").
DEFAULT_SOLVER = "tabu"
DEFAULT_TIME_LIMIT_S = 10.0


def solve(
    problem: Problem,
    *,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    seed: int = 0,
    iterations: int | None = None,
    start: Sequence[int] | NDArray[np.integer] | None = None,
    clock: Clock = time.perf_counter,
) -> Solution:
    """Solve `problem` with `solver` for at most `time_limit_s` seconds and, when given, at
    most `iterations` of the solver's steps (see `SOLVERS`). The same seed and iterations
    give the same solution; the time limit only ever cuts a run short. Never worse than
    `start`, when one is given."""
    entry = SOLVERS.get(solver)
    if entry is None:
        raise UnknownName("solver", solver, SOLVERS)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError("seed", seed, "Give an integer >= 0.")
    first = None if start is None else as_perm(problem, start)
    _kernels.warm_up()
    budget = Budget(time_limit_s, iterations, clock)
    return entry.solve(problem, budget=budget, seed=int(seed), start=first)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where each agent goes: `slots[i]` is agent i's slot (0-based); `cost` is
    sum traffic(i, j) x latency(slot(i), slot(j)); `solution` is the solver's account."""

    slots: tuple[int, ...]
    cost: float
    solution: Solution


def place(
    traffic: object,
    latency: object,
    *,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    seed: int = 0,
    iterations: int | None = None,
) -> Placement:
    """Place agents (rows of `traffic`) onto slots (rows of `latency`) minimising
    sum traffic(i, j) x latency(slot(i), slot(j)); see `Problem.placement`."""
    problem = Problem.placement(traffic, latency)
    agents = np.asarray(traffic).shape[0]
    found = solve(
        problem, solver=solver, time_limit_s=time_limit_s, seed=seed, iterations=iterations
    )
    return Placement(found.perm[:agents], found.cost, found)

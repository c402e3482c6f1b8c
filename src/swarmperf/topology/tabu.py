"""Robust tabu search for the QAP (Taillard 1991), with his published settings.

Each step takes the best swap of the whole neighbourhood (n(n-1)/2 swaps, their deltas kept
in a matrix and brought up to date in O(1) per pair after each move), except swaps that put
both facilities back on locations they held within their tabu tenure. A tenure is drawn
uniformly in [0.9 n, 1.1 n] for each entry ("robust": no single tenure to tune); a tabu move
is taken all the same if it beats the best cost found (aspiration), and a move neither of
whose facilities has been to the other's location for 2 n^2 steps is forced (the long-term
aspiration that diversifies). Tenure range and aspiration are those of Taillard's own
implementation; nothing here was tuned on the instances it is measured on.
"""

from __future__ import annotations

import numpy as np

from swarmperf.topology import _kernels
from swarmperf.topology.qap import Budget, Draws, Perm, Problem, Solution, cost

# Every this many steps per facility the deltas and the cost are recomputed from scratch
# (O(n^3), about 1% of the O(n^2) steps between): with integer data the O(1) updates are
# exact, with fractional data they gather rounding error. At fixed step counts, so that the
# result does not depend on how the budget split the steps.
RESYNC_STEPS_PER_N = 100


def tenure_range(n: int) -> tuple[int, int]:
    """Taillard's tenure bounds: 0.9 n .. 1.1 n (at least 1 .. 2)."""
    low = max(1, (9 * n) // 10)
    return low, max(low + 1, (11 * n) // 10)


class TabuSearch:
    """One robust tabu search, continued chunk by chunk (`run`), keeping its tabu list."""

    def __init__(self, problem: Problem, start: Perm, rng: np.random.Generator) -> None:
        n = problem.n
        self.problem = problem
        self.rng = rng
        self.perm = np.array(start, dtype=np.intp)
        self.best_perm = self.perm.copy()
        first = cost(problem, self.perm)
        self.costs = np.array([first, first])  # current, best
        self.low, self.high = tenure_range(n)
        self.aspiration = 2 * n * n
        self.delta = np.zeros((n, n))
        # tabu[i, loc]: until which step facility i may not go back to location loc.
        self.tabu = np.full((n, n), -(self.aspiration + 1), dtype=np.int64)
        self.steps = 0
        self.evaluations = 0
        self.found_at = 0.0  # budget seconds when the best was found
        self.tenures = Draws(lambda k: rng.integers(self.low, self.high + 1, size=(k, 2)))

    @property
    def best_cost(self) -> float:
        return float(self.costs[1])

    def run(self, budget: Budget, steps: int | None = None) -> None:
        """Take up to `steps` more steps (None: until the budget ends), each counted
        against `budget`."""
        n = self.problem.n
        if n < 2:
            return
        resync = RESYNC_STEPS_PER_N * n
        done = 0
        while steps is None or done < steps:
            wanted = resync - self.steps % resync
            if steps is not None:
                wanted = min(wanted, steps - done)
            granted = budget.take(wanted)
            if granted == 0:
                return
            before = self.costs[1]
            _kernels.tabu_chunk(
                self.problem.flow,
                self.problem.distance,
                self.perm,
                self.delta,
                self.tabu,
                self.best_perm,
                self.costs,
                self.steps + 1,
                self.tenures.take(granted),
                self.aspiration,
                self.steps % resync == 0,
            )
            if self.costs[1] < before:
                self.found_at = budget.elapsed()
            self.steps += granted
            self.evaluations += granted * (n * (n - 1) // 2)
            done += granted


def solve_tabu(
    problem: Problem, *, budget: Budget, seed: int, start: Perm | None = None
) -> Solution:
    """Robust tabu search from a random permutation (or `start`) until the budget ends."""
    rng = np.random.default_rng(seed)
    first = rng.permutation(problem.n) if start is None else start
    search = TabuSearch(problem, first, rng)
    search.run(budget)
    return Solution(
        perm=tuple(int(v) for v in search.best_perm),
        cost=cost(problem, search.best_perm),
        seconds=budget.elapsed(),
        evaluations=search.evaluations,
        iterations=search.steps,
        solver="tabu",
        seconds_to_best=search.found_at,
    )

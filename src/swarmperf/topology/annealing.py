"""Simulated annealing for the QAP: random swaps, Metropolis acceptance, geometric cooling.

The temperatures come from the instance, as in Connolly (1990): from the deltas of 50 n
random swaps of a random permutation, the start is `d_min + (d_max - d_min) / 10` and the
end `d_min` (the smallest positive delta), so a worsening as large as a typical one is
taken often at first and almost never at the end. The temperature falls geometrically from
one to the other over the budget (steps, or the time limit when no step cap is given);
the best permutation seen is kept. Nothing here was tuned on the instances it is measured on.
"""

from __future__ import annotations

import numpy as np

from swarmperf.topology import _kernels
from swarmperf.topology.qap import Budget, Draws, Matrix, Perm, Problem, Solution, cost

# Moves asked for at a time (the budget may grant fewer).
CHUNK = 4096
SAMPLE_PER_N = 50


def random_pairs(rng: np.random.Generator, n: int, count: int) -> Perm:
    """`count` pairs (r, s) of distinct facilities, uniformly."""
    r = rng.integers(0, n, size=count)
    s = rng.integers(0, n - 1, size=count)
    s = s + (s >= r)
    return np.stack([r, s], axis=1).astype(np.intp)


def temperatures(problem: Problem, rng: np.random.Generator) -> tuple[float, float]:
    """Connolly's start and end temperatures for `problem` (both > 0)."""
    n = problem.n
    p = rng.permutation(n).astype(np.intp)
    pairs = random_pairs(rng, n, SAMPLE_PER_N * n)
    deltas = np.array(
        [_kernels.swap_delta(problem.flow, problem.distance, p, int(r), int(s)) for r, s in pairs]
    )
    positive = deltas[deltas > 0]
    if positive.size == 0:  # every swap sampled was neutral or better: nothing to climb
        return 1.0, 1e-3
    d_min, d_max = float(positive.min()), float(positive.max())
    start = d_min + (d_max - d_min) / 10
    return max(start, d_min), d_min


def solve_annealing(
    problem: Problem, *, budget: Budget, seed: int, start: Perm | None = None
) -> Solution:
    """Anneal from a random permutation (or `start`) until the budget ends."""
    rng = np.random.default_rng(seed)
    n = problem.n
    p = np.array(rng.permutation(n) if start is None else start, dtype=np.intp)
    best = p.copy()
    first = cost(problem, p)
    costs = np.array([first, first])  # current, best
    moves = 0
    found_at = 0.0
    if n >= 2:
        t_start, t_end = temperatures(problem, rng)
        ratio = t_end / t_start

        def draw(k: int) -> Matrix:
            pairs = random_pairs(rng, n, k)
            return np.column_stack([pairs, rng.random(k)])

        draws = Draws(draw)
        # With a step cap the schedule runs over the steps (the same result whatever the
        # clock); without, over the time limit.
        total = budget.iterations or 0
        while True:
            progress = budget.progress()
            granted = budget.take(CHUNK)
            if granted == 0:
                break
            before = costs[1]
            _kernels.anneal_chunk(
                problem.flow,
                problem.distance,
                p,
                best,
                costs,
                draws.take(granted),
                t_start,
                ratio,
                moves,
                total,
                progress,
            )
            moves += granted
            if costs[1] < before:
                found_at = budget.elapsed()
    return Solution(
        perm=tuple(int(v) for v in best),
        cost=cost(problem, best),
        seconds=budget.elapsed(),
        evaluations=moves,
        iterations=moves,
        solver="annealing",
        seconds_to_best=found_at,
    )

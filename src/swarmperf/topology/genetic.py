"""A genetic algorithm with local search for the QAP: a hybrid in the manner of Fleurent and
Ferland (1994), where every individual is improved by a short robust tabu search.

The population is `POPULATION` permutations, each a random one improved by tabu search.
Each generation picks two parents at random and crosses them with the uniform crossover
for permutations (a facility keeps the location both parents give it; the others take one
parent's location at random when it is free, then the free locations in random order),
improves the child by `4 n` tabu steps, and lets it replace the worst individual if it is
better and not already there. When `STAGNATION` children in a row bring no new best, all
but the best are drawn again (the usual restart against a converged population). The
settings were fixed before measuring and not tuned on the instances measured.
"""

from __future__ import annotations

import numpy as np

from swarmperf.topology.qap import Budget, Perm, Problem, Solution, cost
from swarmperf.topology.tabu import TabuSearch

POPULATION = 20
CHILD_STEPS_PER_N = 4
STAGNATION = 10 * POPULATION


def crossover(a: Perm, b: Perm, rng: np.random.Generator) -> Perm:
    """The uniform crossover for permutations: common locations kept, the rest from either
    parent where free, then the free locations at random."""
    n = a.shape[0]
    child = np.full(n, -1, dtype=np.intp)
    same = a == b
    child[same] = a[same]
    used = np.zeros(n, dtype=bool)
    used[a[same]] = True
    for i in rng.permutation(np.flatnonzero(~same)):
        first, second = (a[i], b[i]) if rng.random() < 0.5 else (b[i], a[i])
        for loc in (first, second):
            if not used[loc]:
                child[i] = loc
                used[loc] = True
                break
    missing = np.flatnonzero(child < 0)
    child[missing] = rng.permutation(np.flatnonzero(~used))
    return child


class _Individual:
    __slots__ = ("cost", "perm")

    def __init__(self, perm: Perm, cost: float) -> None:
        self.perm = perm
        self.cost = cost


def _improve(
    problem: Problem, start: Perm, rng: np.random.Generator, budget: Budget, steps: int
) -> tuple[_Individual, int, int] | None:
    """`start` after `steps` tabu steps: the individual, steps and evaluations used; None
    when the budget had no step left."""
    search = TabuSearch(problem, start, rng)
    search.run(budget, steps)
    if search.steps == 0:
        return None
    return _Individual(search.best_perm, search.best_cost), search.steps, search.evaluations


def solve_genetic(
    problem: Problem, *, budget: Budget, seed: int, start: Perm | None = None
) -> Solution:
    """The hybrid genetic algorithm until the budget ends (`start`, if given, is one of
    the first population)."""
    rng = np.random.default_rng(seed)
    n = problem.n
    steps = CHILD_STEPS_PER_N * max(n, 1)
    first = np.array(rng.permutation(n) if start is None else start, dtype=np.intp)
    best = _Individual(first, cost(problem, first))
    population: list[_Individual] = []
    total_steps = evaluations = 0
    seeds = [first]
    found_at = 0.0

    def fill() -> bool:
        nonlocal total_steps, evaluations, best, found_at
        while len(population) < POPULATION:
            perm = seeds.pop() if seeds else rng.permutation(n).astype(np.intp)
            made = _improve(problem, perm, rng, budget, steps)
            if made is None:
                return False
            individual, used, evaluated = made
            total_steps += used
            evaluations += evaluated
            population.append(individual)
            if individual.cost < best.cost:
                best = individual
                found_at = budget.elapsed()
        return True

    running = n >= 2 and fill()
    quiet = 0
    while running:
        i, j = rng.choice(len(population), size=2, replace=False)
        child = crossover(population[i].perm, population[j].perm, rng)
        made = _improve(problem, child, rng, budget, steps)
        if made is None:
            break
        individual, used, evaluated = made
        total_steps += used
        evaluations += evaluated
        quiet += 1
        if individual.cost < best.cost:
            best = individual
            found_at = budget.elapsed()
            quiet = 0
        worst = max(range(len(population)), key=lambda k: population[k].cost)
        if individual.cost < population[worst].cost and not any(
            np.array_equal(individual.perm, other.perm) for other in population
        ):
            population[worst] = individual
        if quiet >= STAGNATION:
            population = [best]
            quiet = 0
            running = fill()
    return Solution(
        perm=tuple(int(v) for v in best.perm),
        cost=cost(problem, best.perm),
        seconds=budget.elapsed(),
        evaluations=evaluations,
        iterations=total_steps,
        solver="genetic",
        seconds_to_best=found_at,
    )

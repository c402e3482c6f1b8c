"""The Topology Optimizer: placement of agents onto slots (a quadratic assignment problem).

`place(traffic, latency)` puts each agent on a slot so that sum traffic(i, j) x
latency(slot(i), slot(j)) is near its minimum; `solve(problem)` does it for any QAP
`Problem`, with one of `SOLVERS` (robust tabu search, simulated annealing, a hybrid
genetic algorithm) under a time limit and a seed.
"""

from swarmperf.topology.placement import (
    DEFAULT_SOLVER,
    SOLVERS,
    Placement,
    Solver,
    place,
    solve,
)
from swarmperf.topology.qap import Problem, Solution, cost

__all__ = [
    "DEFAULT_SOLVER",
    "SOLVERS",
    "Placement",
    "Problem",
    "Solution",
    "Solver",
    "cost",
    "place",
    "solve",
]

"""The question both front-ends answer about placement: the solvers on a folder of QAPLIB
instances, each placement scored against the known optimum.

The input is checked here (the same fields and messages as the command line), every file
before any is solved; the payload is what `placement-eval -o json` prints and the MCP tool
returns.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmperf.core.durations import parse_duration
from swarmperf.core.errors import ConfigError, UserError

if TYPE_CHECKING:
    from swarmperf.topology.qaplib import Instance

QAPLIB_SOURCE = (
    "QAPLIB instances are `.dat` files (n, then matrix A, then matrix B), with optional "
    "`.sln` files (n value, then the permutation) or a best_known.csv beside them."
)


@dataclass(frozen=True)
class Placement:
    """A `placement-eval` question, checked: the instances and how to solve them."""

    instances: list[Instance]
    solver: str
    time_limit_s: float
    seed: int
    iterations: int | None


def placement_question(
    corpus: Path | None,
    *,
    time_limit: str = "10s",
    solver: str | None = None,
    seed: int = 0,
    iterations: int | None = None,
    max_total_s: float | None = None,
) -> Placement:
    """Check the options and every file of `corpus`; with `max_total_s`, refuse a folder
    whose instances' time limits add up to more."""
    from swarmperf.topology.placement import DEFAULT_SOLVER, SOLVERS
    from swarmperf.topology.qaplib import list_corpus, read_dat, read_sln

    if corpus is None:
        raise UserError(
            f"--corpus: none given, and SWARMPERF_QAPLIB_DIR is not set. {QAPLIB_SOURCE}"
        )
    limit = parse_duration(time_limit, "--time-limit")
    if not limit > 0:
        raise ConfigError("--time-limit", time_limit, "Give a time above 0, e.g. 10s.")
    name = DEFAULT_SOLVER if solver is None else solver
    if name not in SOLVERS:
        raise ConfigError("--solver", name, f"Choose one of: {', '.join(sorted(SOLVERS))}.")
    if seed < 0:
        raise ConfigError("--seed", seed, "Give an integer >= 0.")
    if iterations is not None and iterations < 0:
        raise ConfigError("--iterations", iterations, "Give a count >= 0.")
    instances = list_corpus(corpus)
    if max_total_s is not None and len(instances) * limit > max_total_s:
        raise ConfigError(
            "--time-limit",
            time_limit,
            f"{len(instances)} instances at {limit:g} s each take up to "
            f"{len(instances) * limit:g} s; here at most {max_total_s:g} s in all: give a "
            "shorter time, or a folder of fewer instances.",
        )
    # Every file is checked before any is solved: a bad one fails at once, not after the
    # others' time limits. They are read again one at a time to solve them, so memory holds
    # one instance whatever the folder.
    for instance in instances:
        problem = read_dat(instance.path)
        sln = instance.path.with_suffix(".sln")
        if sln.is_file() and (known := read_sln(sln)).n != problem.n:
            raise ConfigError(
                f"{sln}:1",
                f"n = {known.n}",
                f"Its instance {instance.path.name} has n = {problem.n}.",
            )
        del problem
    return Placement(instances, name, limit, seed, iterations)


def placement_eval(
    asked: Placement, solved: Callable[[str, dict[str, Any], float], None] | None = None
) -> dict[str, Any]:
    """`placement-eval -o json`: each instance solved, its placement, cost and gap, and the
    mean gap. `solved(name, solution, seconds)` is called as each instance is done."""
    from swarmperf.topology.placement import solve
    from swarmperf.topology.qaplib import gap_pct, read_dat

    solutions: dict[str, dict[str, Any]] = {}
    gaps: dict[str, float | None] = {}
    for instance in asked.instances:
        problem = read_dat(instance.path)
        found = solve(
            problem,
            solver=asked.solver,
            time_limit_s=asked.time_limit_s,
            seed=asked.seed,
            iterations=asked.iterations,
        )
        gap = gap_pct(found.cost, instance.optimum)
        solutions[instance.name] = {
            "perm": [p + 1 for p in found.perm],
            "cost": _number(found.cost),
            "seconds": round(found.seconds, 3),
            "seconds_to_best": round(found.seconds_to_best, 3),
            "n": problem.n,
            "optimum": None if instance.optimum is None else _number(instance.optimum),
            "gap_pct": gap,
        }
        if instance.optimum is not None:
            gaps[instance.name] = gap
        if solved is not None:
            solved(instance.name, solutions[instance.name], found.seconds)

    scored = [g for g in gaps.values() if g is not None]
    reason = None
    if not gaps:
        reason = "no .sln file or best_known.csv entry for any instance"
    elif len(scored) < len(gaps):
        reason = "an optimum of 0 not reached: no percentage for it"
    return {
        "solver": asked.solver,
        "time_limit_s": asked.time_limit_s,
        "seed": asked.seed,
        "iterations": asked.iterations,
        "solutions": solutions,
        "gaps": gaps,
        "mean_gap_pct": statistics.fmean(scored) if scored else None,
        "at_optimum": sum(1 for g in scored if g <= 0) if scored else None,
        "gap_reason": reason,
    }


def _number(value: float) -> float | int:
    """A whole number as an int (QAPLIB costs are), anything else as it is."""
    return (
        int(value) if math.isfinite(value) and value == int(value) and abs(value) < 2**53 else value
    )

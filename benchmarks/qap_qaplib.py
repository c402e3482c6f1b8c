"""Placement solvers on QAPLIB: every solver of `swarmperf.topology` against scipy's 2-opt.

The 22 instances of `../shared/datasets/qaplib` (or $SWARMPERF_QAPLIB_DIR), each solved by
every solver with the same time limit on one core (10 s; `--quick`: 1 s on 8 of them), seed
0. The peer, in the same run: scipy's `quadratic_assignment(method="2opt")` from 20 random
starts, the best of the 20 kept (its wall time is reported beside). Gaps are to the optima
in `best_known.csv`, in percent. `-n` sets the seconds per instance.

Figures: `mean_gap_pct` (the default solver), `per_solver` (mean gap of each),
`scipy_2opt_mean_gap_pct`, `at_optimum` (instances the default solver solved to the
optimum), `gaps` (per instance, the default solver), `gaps_per_solver`, `best_solver` (the
lowest mean gap measured here; ties to the one more often at the optimum, then to the one
that got to its best sooner: `mean_seconds_to_best`), the load average, and tabu moves a
second at n = 30, compiled (the solver, median over those instances) and written with numpy
alone (`numpy_tabu_moves_per_second_n30`, 2 s each), which is why the loops are compiled.
Goal: `mean_gap_pct` <= 0.1.
"""

from __future__ import annotations

import os

# One core: BLAS threads would share the work of scipy's 2-opt (and of nothing of ours).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import quadratic_assignment  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import dataset_dir, emit, log, package_versions, parse_args  # noqa: E402
from swarmperf.topology import DEFAULT_SOLVER, SOLVERS, Problem, cost, solve  # noqa: E402
from swarmperf.topology.qap import delta_matrix, update_deltas  # noqa: E402
from swarmperf.topology.qaplib import gap_pct, list_corpus, read_dat  # noqa: E402
from swarmperf.topology.tabu import tenure_range  # noqa: E402

DEFAULT_CORPUS = dataset_dir("qaplib")
QUICK_INSTANCES = ("chr12a", "esc16a", "had20", "kra30a", "nug20", "scr20", "tai20a", "tho30")
SCIPY_STARTS = 20
SEED = 0
GOAL_PCT = 0.1
SPEED_N = 30  # the size at which compiled and numpy tabu moves a second are compared


def scipy_2opt(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Best cost of scipy's 2-opt over `SCIPY_STARTS` random starts, and the wall time."""
    started = time.perf_counter()
    best = float("inf")
    for start in range(SCIPY_STARTS):
        result = quadratic_assignment(
            a, b, method="2opt", options={"rng": np.random.default_rng(start)}
        )
        best = min(best, float(result.fun))
    return best, time.perf_counter() - started


def numpy_moves_per_second(problem: Problem, seconds: float) -> float:
    """Robust tabu moves a second written with numpy alone (the reference delta functions
    of `swarmperf.topology.qap`, the whole neighbourhood chosen with array operations):
    the peer of the compiled step, to show what compiling it buys."""
    n = problem.n
    rng = np.random.default_rng(SEED)
    p = rng.permutation(n).astype(np.intp)
    delta = delta_matrix(problem, p)
    current = best = cost(problem, p)
    tabu = np.full((n, n), -(2 * n * n + 1), dtype=np.int64)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    low, high = tenure_range(n)
    steps = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        steps += 1
        tp = tabu[:, p]
        newest = np.minimum(tp, tp.T)
        aspired = upper & ((newest < steps - 2 * n * n) | (delta < best - current))
        allowed = aspired if aspired.any() else upper & (newest < steps)
        r, s = divmod(int(np.argmin(np.where(allowed, delta, np.inf))), n)
        current += float(delta[r, s])
        p[r], p[s] = p[s], p[r]
        tabu[r, p[s]] = steps + int(rng.integers(low, high + 1))
        tabu[s, p[r]] = steps + int(rng.integers(low, high + 1))
        update_deltas(problem, p, delta, r, s)
        best = min(best, current)
    return steps / (time.perf_counter() - started)


def mean(values: list[float]) -> float:
    return float(statistics.fmean(values))


def main() -> None:
    settings = parse_args(__doc__ or "", n=10, repeats=1, quick_n=1, quick_repeats=1)
    seconds = float(settings.n)
    root = Path(os.environ.get("SWARMPERF_QAPLIB_DIR", DEFAULT_CORPUS))
    if not root.is_dir():
        emit({"mean_gap_pct": None, "goal_met": None, "reason": f"no corpus at {root}"})
        return
    instances = [i for i in list_corpus(root) if not settings.quick or i.name in QUICK_INSTANCES]
    names = sorted(SOLVERS)
    gaps: dict[str, dict[str, float]] = {name: {} for name in names}
    solver_seconds: dict[str, dict[str, float]] = {name: {} for name in names}
    to_best: dict[str, dict[str, float]] = {name: {} for name in names}
    scipy_gaps: dict[str, float] = {}
    scipy_seconds = 0.0
    compiled_speed: list[float] = []
    numpy_speed: list[float] = []
    for instance in instances:
        problem = read_dat(instance.path)
        assert instance.optimum is not None, f"{instance.name}: no optimum known"
        for name in names:
            found = solve(problem, solver=name, time_limit_s=seconds, seed=SEED)
            assert found.cost == cost(problem, found.perm)
            gap = gap_pct(found.cost, instance.optimum)
            assert gap is not None
            gaps[name][instance.name] = gap
            solver_seconds[name][instance.name] = found.seconds
            to_best[name][instance.name] = found.seconds_to_best
            if name == "tabu" and problem.n == SPEED_N:
                compiled_speed.append(found.iterations / found.seconds)
        if problem.n == SPEED_N:
            numpy_speed.append(numpy_moves_per_second(problem, min(seconds, 2.0)))
        value, took = scipy_2opt(np.array(problem.flow), np.array(problem.distance))
        scipy_seconds += took
        scipy_gap = gap_pct(value, instance.optimum)
        assert scipy_gap is not None
        scipy_gaps[instance.name] = scipy_gap
        shown = ", ".join(f"{name} {gaps[name][instance.name]:.3f}%" for name in names)
        log(f"{instance.name:8} n={problem.n:3d}  {shown}, scipy 2-opt {scipy_gap:.3f}%")

    per_solver = {name: mean(list(gaps[name].values())) for name in names}
    at_optimum = {name: sum(1 for g in gaps[name].values() if g <= 0) for name in names}
    seconds_to_best = {name: mean(list(to_best[name].values())) for name in names}
    best = min(names, key=lambda name: (per_solver[name], -at_optimum[name], seconds_to_best[name]))
    figures: dict[str, Any] = {
        "default_solver": DEFAULT_SOLVER,
        "best_solver": best,
        "mean_gap_pct": per_solver[DEFAULT_SOLVER],
        "goal_met": per_solver[DEFAULT_SOLVER] <= GOAL_PCT,
        "per_solver": per_solver,
        "scipy_2opt_mean_gap_pct": mean(list(scipy_gaps.values())),
        "at_optimum": at_optimum[DEFAULT_SOLVER],
        "at_optimum_per_solver": at_optimum,
        "mean_seconds_to_best": seconds_to_best,
        "tabu_moves_per_second_n30": statistics.median(compiled_speed) if compiled_speed else None,
        "numpy_tabu_moves_per_second_n30": statistics.median(numpy_speed) if numpy_speed else None,
        "scipy_2opt_at_optimum": sum(1 for g in scipy_gaps.values() if g <= 0),
        "instances": len(instances),
        "gaps": gaps[DEFAULT_SOLVER],
        "gaps_per_solver": gaps,
        "scipy_2opt_gaps": scipy_gaps,
        "time_limit_s": seconds,
        "solver_seconds_max": max(max(s.values()) for s in solver_seconds.values()),
        "scipy_2opt_starts": SCIPY_STARTS,
        "scipy_2opt_seconds": scipy_seconds,
        "seed": SEED,
        "quick": settings.quick,
        "load_average": list(os.getloadavg()),
        "versions": package_versions("numpy", "scipy", "numba"),
    }
    emit(figures)


if __name__ == "__main__":
    main()

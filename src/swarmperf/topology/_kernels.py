"""The solvers' inner loops, compiled with numba: a tabu step and an annealing move.

Why compiled: a tabu step at n = 20..30 is a few hundred small array operations. Written
with numpy (the reference versions in `qap.py`, which the tests hold these to) nearly all
of a step's time is per-call overhead: `benchmarks/qap_qaplib.py` measured about 7,500
moves a second at n = 30 that way (`numpy_tabu_moves_per_second_n30`) against about
112,000 compiled (`tabu_moves_per_second_n30`), and an early numpy version left 0.6% mean
gap on five of the QAPLIB instances in 1 s each. numba is the well-kept way to compile such
loops without a C extension; the functions are cached on disk after their first compile.

Each function does a bounded chunk of work and returns, so that the caller checks its
clock and its step budget between chunks; all randomness is drawn by the caller (numpy's
seeded generator) and passed in, so a run is the same for the same seed and step budget.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from swarmperf.topology.qap import Matrix, Perm


def _swap_delta(a: Any, b: Any, p: Any, r: int, s: int) -> float:  # pragma: no cover
    """Taillard's compute_delta: the change of cost when r and s swap locations, O(n)."""
    pr = p[r]
    ps = p[s]
    d = (a[r, r] - a[s, s]) * (b[ps, ps] - b[pr, pr]) + (a[r, s] - a[s, r]) * (
        b[ps, pr] - b[pr, ps]
    )
    for k in range(p.shape[0]):
        if k != r and k != s:
            pk = p[k]
            d += (a[k, r] - a[k, s]) * (b[pk, ps] - b[pk, pr]) + (a[r, k] - a[s, k]) * (
                b[ps, pk] - b[pr, pk]
            )
    return d  # type: ignore[no-any-return]


_swap_delta_jit = numba.njit(cache=True)(_swap_delta)


def _cost(a: Any, b: Any, p: Any) -> float:  # pragma: no cover
    n = p.shape[0]
    total = 0.0
    for i in range(n):
        pi = p[i]
        for j in range(n):
            total += a[i, j] * b[pi, p[j]]
    return total


_cost_jit = numba.njit(cache=True)(_cost)


def _all_deltas(a: Any, b: Any, p: Any, delta: Any) -> None:  # pragma: no cover
    n = p.shape[0]
    for i in range(n - 1):
        for j in range(i + 1, n):
            delta[i, j] = _swap_delta_jit(a, b, p, i, j)


_all_deltas_jit = numba.njit(cache=True)(_all_deltas)


def _tabu_chunk(  # pragma: no cover
    a: Any,
    b: Any,
    p: Any,
    delta: Any,
    tabu: Any,
    best_p: Any,
    costs: Any,
    first_step: int,
    tenures: Any,
    aspiration: int,
    fresh: bool,
) -> int:
    """`len(tenures)` steps of robust tabu search, as in Taillard's implementation.

    `delta` (upper triangle) is kept up to date in O(1) per pair, and recomputed (with the
    current cost) on entry when `fresh`; `costs` holds [current, best] and `best_p` the
    best permutation, all updated in place. Returns how many steps found no allowed move
    (all tabu; rare)."""
    n = p.shape[0]
    if fresh:
        _all_deltas_jit(a, b, p, delta)
        costs[0] = _cost_jit(a, b, p)
    current = costs[0]
    best = costs[1]
    stuck = 0
    x = np.empty(n)
    y = np.empty(n)
    x2 = np.empty(n)
    y2 = np.empty(n)
    for step in range(tenures.shape[0]):
        it = first_step + step
        ir = -1
        jr = -1
        min_delta = math.inf
        already_aspired = False
        for i in range(n - 1):
            for j in range(i + 1, n):
                tij = tabu[i, p[j]]
                tji = tabu[j, p[i]]
                d = delta[i, j]
                authorized = tij < it or tji < it
                aspired = tij < it - aspiration or tji < it - aspiration or current + d < best
                if (
                    (aspired and not already_aspired)
                    or (aspired and already_aspired and d < min_delta)
                    or (not aspired and not already_aspired and authorized and d < min_delta)
                ):
                    ir = i
                    jr = j
                    min_delta = d
                    if aspired:
                        already_aspired = True
        if ir < 0:
            stuck += 1
            continue
        pi = p[ir]
        p[ir] = p[jr]
        p[jr] = pi
        current += min_delta
        # Each facility may not go back to where it was for a tenure of its own.
        tabu[ir, p[jr]] = it + tenures[step, 0]
        tabu[jr, p[ir]] = it + tenures[step, 1]
        if current < best:
            best = current
            best_p[:] = p
        # Taillard's O(1) update from the move just made (p already swapped), its four
        # differences taken once per facility, so the pair loop reads four short vectors.
        pr = p[ir]
        ps = p[jr]
        for k in range(n):
            pk = p[k]
            x[k] = a[ir, k] - a[jr, k]
            y[k] = b[ps, pk] - b[pr, pk]
            x2[k] = a[k, ir] - a[k, jr]
            y2[k] = b[pk, ps] - b[pk, pr]
        for i in range(n - 1):
            for j in range(i + 1, n):
                if i != ir and i != jr and j != ir and j != jr:
                    delta[i, j] += (x[i] - x[j]) * (y[i] - y[j]) + (x2[i] - x2[j]) * (y2[i] - y2[j])
                else:
                    delta[i, j] = _swap_delta_jit(a, b, p, i, j)
    costs[0] = current
    costs[1] = best
    return stuck


_tabu_chunk_jit = numba.njit(cache=True)(_tabu_chunk)


def _anneal_chunk(  # pragma: no cover
    a: Any,
    b: Any,
    p: Any,
    best_p: Any,
    costs: Any,
    draws: Any,
    t_start: float,
    ratio: float,
    first_move: int,
    total: int,
    progress: float,
) -> int:
    """One annealing move per row of `draws` (r, s, a uniform number), with Metropolis
    acceptance. The temperature is `t_start * ratio ** x`, x being the move's place in
    `total` moves (when `total` > 0: the same whatever the chunks), else `progress`.
    `costs` holds [current, best]. Returns how many moves were accepted."""
    current = costs[0]
    best = costs[1]
    accepted = 0
    temperature = t_start * ratio**progress
    for m in range(draws.shape[0]):
        if total > 0:
            temperature = t_start * ratio ** ((first_move + m) / total)
        r = int(draws[m, 0])
        s = int(draws[m, 1])
        d = _swap_delta_jit(a, b, p, r, s)
        if d <= 0.0 or draws[m, 2] < math.exp(-d / temperature):
            pr = p[r]
            p[r] = p[s]
            p[s] = pr
            current += d
            accepted += 1
            if current < best:
                best = current
                best_p[:] = p
    costs[0] = current
    costs[1] = best
    return accepted


_anneal_chunk_jit = numba.njit(cache=True)(_anneal_chunk)


def tabu_chunk(
    a: Matrix,
    b: Matrix,
    p: Perm,
    delta: Matrix,
    tabu: np.ndarray[Any, np.dtype[np.int64]],
    best_p: Perm,
    costs: Matrix,
    first_step: int,
    tenures: np.ndarray[Any, np.dtype[np.int64]],
    aspiration: int,
    fresh: bool,
) -> int:
    """See `_tabu_chunk`."""
    return int(
        _tabu_chunk_jit(a, b, p, delta, tabu, best_p, costs, first_step, tenures, aspiration, fresh)
    )


def anneal_chunk(
    a: Matrix,
    b: Matrix,
    p: Perm,
    best_p: Perm,
    costs: Matrix,
    draws: Matrix,
    t_start: float,
    ratio: float,
    first_move: int,
    total: int,
    progress: float,
) -> int:
    """See `_anneal_chunk`."""
    return int(
        _anneal_chunk_jit(
            a, b, p, best_p, costs, draws, t_start, ratio, first_move, total, progress
        )
    )


def swap_delta(a: Matrix, b: Matrix, p: Perm, r: int, s: int) -> float:
    """See `_swap_delta` (the compiled one)."""
    return float(_swap_delta_jit(a, b, p, r, s))


_warm = False


def warm_up() -> None:
    """Compile (or load from the disk cache) every kernel now, on a 3 x 3 problem, so that
    no solver's time limit pays for it: the first compile takes seconds."""
    global _warm
    if _warm:
        return
    a = np.arange(9, dtype=np.float64).reshape(3, 3)
    a.setflags(write=False)  # as a `Problem`'s matrices are: numba compiles for that
    p = np.arange(3, dtype=np.intp)
    costs = np.zeros(2)
    tenures = np.ones((1, 2), dtype=np.int64)
    tabu_chunk(
        a,
        a,
        p.copy(),
        np.zeros((3, 3)),
        np.zeros((3, 3), np.int64),
        p.copy(),
        costs,
        1,
        tenures,
        18,
        True,
    )
    draws = np.array([[0.0, 1.0, 0.5]])
    anneal_chunk(a, a, p.copy(), p.copy(), costs, draws, 1.0, 0.5, 0, 1, 0.0)
    swap_delta(a, a, p, 0, 1)
    _warm = True

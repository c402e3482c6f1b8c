"""The quadratic assignment problem: its data, its cost, swap deltas and a solver's budget.

A placement puts n facilities (agents) on n locations (slots). `perm[i]` is the location
of facility i, and the cost is ``sum_ij flow[i, j] * distance[perm[i], perm[j]]``. Every
solver in this package moves by swapping the locations of two facilities, so the swap delta
is the quantity they all evaluate: `swap_delta` for one swap in O(n), `delta_matrix` for all
of them at once (vectorised, O(n^3) through two matrix products), and `update_deltas` for
the O(1)-per-pair update after a swap (Taillard 1991), which makes a full neighbourhood
O(n^2) per step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from swarmperf.core.errors import ConfigError

Matrix = NDArray[np.float64]
Perm = NDArray[np.intp]

# Beyond this the matrices alone take 2 x 8 MB and one tabu step O(n^2) work: larger
# placements are beyond what this package is measured on.
MAX_N = 1000


def _matrix(field_name: str, value: object, *, non_negative: bool) -> Matrix:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(field_name, value, "Give a square matrix of numbers.") from exc
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ConfigError(
            field_name, f"shape {array.shape}", "Give a square matrix: n rows of n numbers."
        )
    if array.shape[0] < 1:
        raise ConfigError(field_name, "an empty matrix", "Give at least one row.")
    if array.shape[0] > MAX_N:
        raise ConfigError(field_name, f"n = {array.shape[0]}", f"n may be at most {MAX_N}.")
    if not np.isfinite(array).all():
        raise ConfigError(field_name, "a NaN or infinite entry", "Every entry must be finite.")
    if non_negative and (array < 0).any():
        raise ConfigError(
            field_name, f"a negative entry ({array.min():g})", "Every entry must be >= 0."
        )
    array.setflags(write=False)
    return array


@dataclass(frozen=True, slots=True, eq=False)
class Problem:
    """A quadratic assignment problem: `flow` between facilities, `distance` between
    locations, both n x n and finite (validated when made; the arrays are read-only copies).

    For a placement, `flow` is the traffic between agents and `distance` the latency
    between slots (see `Problem.placement`, which also requires them non-negative)."""

    flow: Matrix
    distance: Matrix
    name: str = ""
    symmetric: bool = field(init=False)

    def __init__(self, flow: object, distance: object, name: str = "") -> None:
        a = _matrix("flow", flow, non_negative=False)
        b = _matrix("distance", distance, non_negative=False)
        if a.shape != b.shape:
            raise ConfigError(
                "distance",
                f"{b.shape[0]} x {b.shape[0]}",
                f"It must have the flow matrix's size, {a.shape[0]} x {a.shape[0]}.",
            )
        object.__setattr__(self, "flow", a)
        object.__setattr__(self, "distance", b)
        object.__setattr__(self, "name", name)
        object.__setattr__(
            self, "symmetric", bool(np.array_equal(a, a.T) and np.array_equal(b, b.T))
        )

    @classmethod
    def placement(cls, traffic: object, latency: object, name: str = "") -> Problem:
        """Agents onto slots: `traffic[i, j]` from agent i to agent j (messages or bytes),
        `latency[k, l]` from slot k to slot l. Both non-negative. With fewer agents than
        slots, the missing agents are idle (no traffic); with more, give a slot that takes
        several agents once per agent it takes, with latency 0 between its copies."""
        t = _matrix("traffic", traffic, non_negative=True)
        lat = _matrix("latency", latency, non_negative=True)
        agents, slots = t.shape[0], lat.shape[0]
        if agents > slots:
            raise ConfigError(
                "latency",
                f"{slots} slots for {agents} agents",
                "Give at least one slot per agent; a slot that takes several agents appears "
                "once per agent, with latency 0 between its copies.",
            )
        if agents < slots:
            padded = np.zeros((slots, slots))
            padded[:agents, :agents] = t
            t = padded
        return cls(t, lat, name)

    @property
    def n(self) -> int:
        return int(self.flow.shape[0])


def as_perm(problem: Problem, perm: Sequence[int] | NDArray[np.integer]) -> Perm:
    """`perm` as an index array, checked to be a permutation of 0..n-1."""
    p = np.asarray(perm, dtype=np.intp)
    if p.shape != (problem.n,) or not np.array_equal(np.sort(p), np.arange(problem.n)):
        raise ConfigError("perm", list(p.ravel()[:8]), f"Give a permutation of 0..{problem.n - 1}.")
    return p


def cost(problem: Problem, perm: Sequence[int] | NDArray[np.integer]) -> float:
    """sum_ij flow[i, j] * distance[perm[i], perm[j]], vectorised."""
    p = as_perm(problem, perm)
    return float((problem.flow * problem.distance[np.ix_(p, p)]).sum())


def swap_delta(problem: Problem, perm: Perm, r: int, s: int) -> float:
    """The change of cost when facilities r and s swap locations, in O(n)."""
    a, b, p = problem.flow, problem.distance, perm
    if r == s:
        return 0.0
    pr, ps = p[r], p[s]
    k = np.ones(problem.n, dtype=bool)
    k[[r, s]] = False
    pk = p[k]
    d = (a[r, r] - a[s, s]) * (b[ps, ps] - b[pr, pr]) + (a[r, s] - a[s, r]) * (
        b[ps, pr] - b[pr, ps]
    )
    d += float(
        ((a[k, r] - a[k, s]) * (b[pk, ps] - b[pk, pr])).sum()
        + ((a[r, k] - a[s, k]) * (b[ps, pk] - b[pr, pk])).sum()
    )
    return float(d)


def delta_matrix(problem: Problem, perm: Perm) -> Matrix:
    """Every swap's delta at once: `[r, s]` is `swap_delta(problem, perm, r, s)`;
    symmetric, zero diagonal. Two matrix products and elementwise work, O(n^3)."""
    a = problem.flow
    bp = problem.distance[np.ix_(perm, perm)]  # bp[i, j] = distance[perm[i], perm[j]]
    m = a.T @ bp  # m[r, s] = sum_k a[k, r] bp[k, s]
    nn = a @ bp.T  # nn[r, s] = sum_k a[r, k] bp[s, k]
    dm, dn = np.diag(m), np.diag(nn)
    da, db = np.diag(a), np.diag(bp)
    # The sums over every k (including r and s) ...
    d = (m + m.T - dm[:, None] - dm[None, :]) + (nn + nn.T - dn[:, None] - dn[None, :])
    # ... less the k = r and k = s terms, which the swap treats apart ...
    d -= (da[:, None] - a) * (bp - db[:, None])  # k = r of the first sum
    d -= (a.T - da[None, :]) * (db[None, :] - bp.T)  # k = s of the first sum
    d -= (da[:, None] - a.T) * (bp.T - db[:, None])  # k = r of the second sum
    d -= (a - da[None, :]) * (db[None, :] - bp)  # k = s of the second sum
    # ... plus those two terms.
    d += (da[:, None] - da[None, :]) * (db[None, :] - db[:, None])
    d += (a - a.T) * (bp.T - bp)
    np.fill_diagonal(d, 0.0)
    return d


def update_deltas(problem: Problem, perm: Perm, delta: Matrix, r: int, s: int) -> None:
    """Bring `delta` (all swap deltas before the swap of r and s) up to date for `perm`,
    which already has r and s swapped: O(1) per pair that does not involve r or s (Taillard
    1991), O(n) per pair that does. In place."""
    a, b = problem.flow, problem.distance
    pr, ps = perm[r], perm[s]
    x = a[r] - a[s]
    y = b[ps, perm] - b[pr, perm]
    term = np.subtract.outer(x, x) * np.subtract.outer(y, y)
    if problem.symmetric:
        # The second term equals the first when both matrices are symmetric.
        delta += 2.0 * term
    else:
        delta += term
        x2 = a[:, r] - a[:, s]
        y2 = b[perm, ps] - b[perm, pr]
        delta += np.subtract.outer(x2, x2) * np.subtract.outer(y2, y2)
    bp = b[np.ix_(perm, perm)]
    col_sums, row_sums = (a * bp).sum(axis=0), (a * bp).sum(axis=1)
    for t in (r, s):
        row = _delta_row(a, bp, col_sums, row_sums, t)
        delta[t, :] = row
        delta[:, t] = row


def _delta_row(a: Matrix, bp: Matrix, col_sums: Matrix, row_sums: Matrix, r: int) -> Matrix:
    """`[v]` is the delta of swapping r and v, for every v (0 at v = r): row r of
    `delta_matrix`, in O(n^2). `bp` is the distance matrix permuted (`bp[i, j]` =
    `distance[perm[i], perm[j]]`); `col_sums` and `row_sums` are those of `a * bp`."""
    ar, acr = a[r], a[:, r]
    bp_r, bp_col_r = bp[r], bp[:, r]
    da, db = np.diag(a), np.diag(bp)
    arr, dbr = a[r, r], db[r]
    d: Matrix = (acr @ bp - acr @ bp_col_r - col_sums + bp_col_r @ a) + (
        bp @ ar - ar @ bp_r - row_sums + a @ bp_r
    )
    # Less the k = r and k = v terms of both sums, plus the swap's own two terms.
    d -= (arr - ar) * (bp_r - dbr) + (acr - da) * (db - bp_col_r)
    d -= (arr - acr) * (bp_col_r - dbr) + (ar - da) * (db - bp_r)
    d += (arr - da) * (db - dbr) + (ar - acr) * (bp_col_r - bp_r)
    d[r] = 0.0
    return d


@dataclass(frozen=True, slots=True)
class Solution:
    """What a solver found: `perm[i]` is the (0-based) location of facility i; `cost` its
    cost; `seconds` the wall time; `evaluations` how many swap deltas it looked at;
    `iterations` how many steps it took (the solver's own unit); `seconds_to_best` when it
    first held `cost` (to within one compiled chunk of work, a few milliseconds)."""

    perm: tuple[int, ...]
    cost: float
    seconds: float
    evaluations: int
    iterations: int
    solver: str
    seconds_to_best: float


Clock = Callable[[], float]


# How long one grant of steps should last: short enough that a time limit is kept to
# within a few milliseconds, long enough that asking costs nothing.
SLICE_S = 0.005
# Steps granted before the pace is known.
FIRST_GRANT = 16


@dataclass(slots=True)
class Budget:
    """A solver's allowance: at most `iterations` steps (None: no cap) and at most
    `time_limit_s` seconds by `clock`. The step cap makes runs reproducible for a seed; the
    time limit only ever cuts a run short.

    Steps are granted a few at a time (`take`), as many as fit in `SLICE_S` at the pace of
    the previous grant, so a solver looks at the clock every few milliseconds whatever a
    step costs. Solvers keep their results independent of how the steps were split."""

    time_limit_s: float
    iterations: int | None
    clock: Clock = time.perf_counter
    started: float = 0.0
    used: int = 0
    _asked_at: float = 0.0
    _last_grant: int = 0

    def __post_init__(self) -> None:
        if not self.time_limit_s > 0 or not np.isfinite(self.time_limit_s):
            raise ConfigError(
                "time_limit_s", self.time_limit_s, "Give a positive number of seconds."
            )
        if self.iterations is not None and self.iterations < 0:
            raise ConfigError("iterations", self.iterations, "Give a count >= 0, or none.")
        self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def take(self, wanted: int) -> int:
        """Up to `wanted` more steps, counted as used: fewer when the step cap is near or
        the time left (or `SLICE_S`) holds fewer at the last grant's pace; 0 once the cap
        is reached or the time is up."""
        now = self.clock()
        left = self.time_limit_s - (now - self.started)
        if left <= 0:
            return 0
        granted = wanted if self.iterations is None else min(wanted, self.iterations - self.used)
        if self._last_grant == 0:
            granted = min(granted, FIRST_GRANT)
        else:
            per_step = (now - self._asked_at) / self._last_grant
            if per_step > 0:
                granted = min(granted, max(1, int(min(left, SLICE_S) / per_step)))
        granted = max(granted, 0)
        self.used += granted
        self._asked_at = now
        self._last_grant = granted
        return granted

    def progress(self) -> float:
        """How much of the budget is spent, 0..1: the larger of steps and time."""
        by_time = self.elapsed() / self.time_limit_s
        by_steps = 0.0 if self.iterations is None else self.used / max(self.iterations, 1)
        return min(1.0, max(by_time, by_steps))


class Draws:
    """Random rows drawn in fixed blocks, handed out in any split: the rows a solver gets
    for its steps k..k+m are the same however its steps were granted, so a seed and a
    step cap give one result whatever the clock did."""

    BLOCK = 1024

    def __init__(
        self,
        draw: Callable[[int], NDArray[Any]],
    ) -> None:
        self._draw = draw
        self._buffer: NDArray[Any] | None = None
        self._at = 0

    def take(self, count: int) -> NDArray[Any]:
        parts: list[NDArray[Any]] = []
        while count > 0:
            if self._buffer is None or self._at == len(self._buffer):
                self._buffer = self._draw(self.BLOCK)
                self._at = 0
            part = self._buffer[self._at : self._at + count]
            self._at += len(part)
            count -= len(part)
            parts.append(part)
        if not parts:
            return self._draw(0)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

"""The queueing model that prices and times a candidate allocation: M/G/c with Erlang C.

The pools of an allocation share one queue (any agent runs any kind), so the swarm is taken
as one M/G/c queue whose c servers are every agent's slots and whose service rate is the
pools' total: the probability of waiting is Erlang C, the wait given waiting is
exponential with the Allen–Cunneen correction for the service times' spread, and a task
of kind k takes the wait plus a service time drawn on a pool in proportion to the pool's
share of capacity (log-normal with the pool's mean and spread for that kind). The tail
P(latency > t) is exact for that model up to a fixed quadrature; its 99th percentile is
found by bisection. Everything is vectorised over candidates, so NSGA-II evaluates a whole
population, and exhaustive enumeration thousands of allocations, in one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

Floats = NDArray[np.float64]
# Gauss–Legendre nodes for E[exp(-theta (t - S)); S < t] over the standard normal of log S.
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)
_Z_LOW = -8.0
_BISECTIONS = 16
QUANTILE = 0.99
UNSTABLE = 1e9  # the latency given to an allocation that cannot keep up (finite, for NSGA-II)


def erlang_b(c: int, a: float) -> float:
    """Erlang B: the blocking probability of `c` servers offered `a` Erlangs (recursion)."""
    if c < 0 or a < 0:
        raise ValueError("c and a must be >= 0")
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C: the probability that an arrival waits, `c` servers offered `a` Erlangs."""
    if a >= c:
        return 1.0
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def erlang_c_vec(c: Floats, a: Floats) -> Floats:
    """Erlang C for arrays of server counts and loads (1 where a >= c or c == 0).

    Erlang B is the Poisson pmf over its cdf at c, both from scipy in log space, so large c
    neither overflows nor loops.
    """
    c = np.asarray(c, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    out = np.ones(np.broadcast(c, a).shape)
    ok = (c > 0) & (a < c) & (a > 0)
    cc, aa = np.broadcast_to(c, out.shape)[ok], np.broadcast_to(a, out.shape)[ok]
    log_pmf = cc * np.log(aa) - aa - special.gammaln(cc + 1.0)
    cdf = special.pdtr(cc, aa)
    b = np.exp(log_pmf) / np.maximum(cdf, 1e-300)
    out[ok] = cc * b / (cc - aa * (1.0 - b))
    out[(c > 0) & (a <= 0)] = 0.0
    return np.clip(out, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Model:
    """An allocation problem as arrays: `service[p, k]` mean seconds of kind k on one slot of
    pool p, `cv[p]` their spread, `slots[p]` an agent's concurrency, `price[p]` an agent-hour,
    `rate` tasks per second split by `mix[k]`; `slo[k]` the p99 objective (nan: none);
    `tenant_load[t]` a tenant's share of arrivals over its guaranteed share of capacity."""

    service: Floats
    cv: Floats
    slots: Floats
    price: Floats
    rate: float
    mix: Floats
    slo: Floats
    max_utilisation: float = 0.95
    budget: float | None = None
    tenant_load: Floats | None = None
    kind_names: tuple[str, ...] = ()
    tenant_names: tuple[str, ...] = ()

    @property
    def pools(self) -> int:
        return int(self.service.shape[0])

    @property
    def kinds(self) -> int:
        return int(self.service.shape[1])

    def constraint_names(self) -> list[str]:
        """What each column of `Evaluation.violations` holds, as resources-file fields."""
        kinds = self.kind_names or tuple(str(k) for k in range(self.kinds))
        names = [
            f"constraints.slo.{kinds[k]}.p99"
            for k in range(self.kinds)
            if not math.isnan(self.slo[k])
        ]
        names.append("constraints.max_utilisation")
        if self.budget is not None:
            names.append("constraints.budget_per_hour")
        if self.tenant_load is not None:
            tenants = self.tenant_names or tuple(str(t) for t in range(len(self.tenant_load)))
            names.extend(f"constraints.tenant_shares.{t}" for t in tenants)
        return names


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The model's figures for N candidates: cost per hour, p99 per kind and over the mix
    (seconds), SLA-violation risk (the share of tasks slower than their kind's objective),
    utilisation, and each constraint's violation (<= 0: met)."""

    cost: Floats  # (N,)
    p99: Floats  # (N,)
    p99_kind: Floats  # (N, K)
    risk: Floats  # (N,)
    utilisation: Floats  # (N,)
    wait_probability: Floats  # (N,)
    violations: Floats  # (N, constraints)

    @property
    def feasible(self) -> NDArray[np.bool_]:
        ok: NDArray[np.bool_] = np.all(self.violations <= 1e-12, axis=1)
        return ok

    def objectives(self) -> Floats:
        """(cost, p99, risk) per candidate: what the allocator minimises."""
        return np.column_stack([self.cost, self.p99, self.risk])


def _lognormal(mean: Floats, cv: Floats) -> tuple[Floats, Floats]:
    sigma = np.sqrt(np.log1p(np.maximum(cv, 1e-3) ** 2))
    return np.log(mean) - sigma * sigma / 2.0, sigma


def evaluate(model: Model, counts: NDArray[np.integer] | Floats) -> Evaluation:
    """The model's figures for each row of `counts` (agents per pool)."""
    x = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    n = x.shape[0]
    mix = model.mix
    per_pool_mean = model.service @ mix  # (P,) mean seconds of the mix on one slot
    slots = x * model.slots  # (N, P)
    capacity = slots / per_pool_mean  # tasks per second each pool can do
    total = capacity.sum(axis=1)
    servers = slots.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(total > 0, model.rate / total, np.inf)
        share = np.where(total[:, None] > 0, capacity / total[:, None], 0.0)  # (N, P)
    # Second moment of a service time, over pools (by share) and kinds (by mix).
    second = (model.service**2 * (1.0 + model.cv[:, None] ** 2)) @ mix  # (P,)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_s = np.where(total > 0, servers / total, np.inf)
        scv = np.maximum((share @ second) / mean_s**2 - 1.0, 0.0)
    stable = (rho < 1.0) & (servers > 0)
    wait = erlang_c_vec(servers, np.where(stable, model.rate * mean_s, servers))
    # Rate of the exponential wait given waiting: M/M/c's (c mu - lambda), Allen–Cunneen.
    theta = np.where(stable, (total - model.rate) * 2.0 / (1.0 + scv), 0.0)

    mu, sigma = _lognormal(model.service, model.cv[:, None] * np.ones_like(model.service))

    def tail(t: Floats, k: NDArray[np.intp]) -> Floats:
        """P(latency of kind k[j] > t[i, j]) for candidates i: shape of t."""
        m = mu[:, k]  # (P, J)
        s = sigma[:, k]
        tt = t[:, None, :]  # (N, 1, J)
        log_t = np.log(tt)
        z_t = np.clip((log_t - m[None]) / s[None], _Z_LOW, 8.0)  # (N, P, J)
        survive = special.ndtr(-(log_t - m[None]) / s[None])
        # Quadrature of exp(-theta (t - S)) phi(z) over z in [Z_LOW, z_t].
        half = (z_t - _Z_LOW) / 2.0
        z = _Z_LOW + half[..., None] * (_NODES + 1.0)  # (N, P, J, Q)
        svc = np.exp(m[None, :, :, None] + s[None, :, :, None] * z)
        th = theta[:, None, None, None]
        dens = np.exp(-0.5 * z * z - th * np.maximum(tt[..., None] - svc, 0.0)) / math.sqrt(
            2.0 * math.pi
        )
        waited = half * (dens @ _WEIGHTS)
        per_pool = survive + wait[:, None, None] * waited  # (N, P, J)
        return np.einsum("np,npj->nj", share, per_pool)  # type: ignore[no-any-return]

    kinds = model.kinds
    # Columns 0..K-1: each kind; column K: the whole mix.
    # The latency is at least the service time, whose 99th percentile over a mixture of
    # pools is at least the least of theirs: a narrow bracket, so few steps suffice.
    svc_q = np.exp(mu + 2.3263 * sigma).min(axis=0)  # (K,)
    lo = np.broadcast_to(np.concatenate([svc_q, [svc_q.min()]]) * 0.999, (n, kinds + 1)).copy()
    svc_hi = np.exp(mu + 3.1 * sigma).max(axis=0)  # beyond the 99.9th percentile of any pool
    with np.errstate(divide="ignore"):
        wait_hi = np.where(theta > 0, math.log(1000.0) / np.maximum(theta, 1e-300), UNSTABLE)
    hi = np.concatenate([svc_hi, [svc_hi.max()]])[None, :] + wait_hi[:, None]
    hi = np.where(stable[:, None], np.minimum(hi, UNSTABLE), lo * 2.0)
    target = 1.0 - QUANTILE
    all_kinds = np.arange(kinds)
    # One call per step: each kind at its own t, then each kind at the mix's t.
    both = np.concatenate([all_kinds, all_kinds])
    for _ in range(_BISECTIONS):
        mid = np.sqrt(lo * hi)
        at = np.concatenate([mid[:, :kinds], np.repeat(mid[:, kinds:], kinds, axis=1)], axis=1)
        late = tail(at, both)
        over = np.concatenate([late[:, :kinds], (late[:, kinds:] @ mix)[:, None]], axis=1)
        bigger = over > target
        lo = np.where(bigger, mid, lo)
        hi = np.where(bigger, hi, mid)
    p99_all = np.where(stable[:, None], hi, UNSTABLE)
    p99_kind, p99 = p99_all[:, :kinds], p99_all[:, kinds]

    has_slo = ~np.isnan(model.slo)
    if has_slo.any():
        idx = np.flatnonzero(has_slo)
        at = np.broadcast_to(model.slo[idx], (n, idx.size)).copy()
        late = tail(at, idx)
        risk = np.where(stable, late @ mix[idx], 1.0)
    else:
        risk = np.where(stable, 0.0, 1.0)
    cost = x @ model.price

    columns = [p99_kind[:, k] - model.slo[k] for k in np.flatnonzero(has_slo)]
    columns.append(np.where(np.isfinite(rho), rho, UNSTABLE) - model.max_utilisation)
    if model.budget is not None:
        columns.append(cost - model.budget)
    if model.tenant_load is not None:
        columns.extend(
            np.where(np.isfinite(rho), rho, UNSTABLE) * load - model.max_utilisation
            for load in model.tenant_load
        )
    return Evaluation(
        cost=cost,
        p99=p99,
        p99_kind=p99_kind,
        risk=risk,
        utilisation=np.where(np.isfinite(rho), rho, UNSTABLE),
        wait_probability=wait,
        violations=np.column_stack(columns),
    )

"""An allocation plan: a resources file and the store's measurements in, the front and the
recommended allocation (confirmed in the simulator) out, as the JSON `resource-alloc` prints."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swarmperf.allocation.confirm import SimFigures, simulate
from swarmperf.allocation.optimise import Front, search
from swarmperf.allocation.queueing import Model
from swarmperf.allocation.resources import ResourcesSpec
from swarmperf.core.errors import ConfigError
from swarmperf.core.model import TaskStatus
from swarmperf.core.pools import pool_of
from swarmperf.store import Store

MIN_SAMPLES = 20  # results of a kind on a pool before its measured speed replaces the declared
CONFIRMED = 5  # front points checked in the simulator, spread along it
MAX_TRIES = 12  # the cheapest points tried in the simulator for the recommendation


@dataclass(frozen=True, slots=True)
class Speeds:
    """Mean service seconds and spread per pool and kind, and where each came from."""

    service: dict[str, dict[str, float]]
    cv: dict[str, float]
    source: dict[str, dict[str, str]]  # "measured" or "declared"
    run_id: int | None = None  # the stored run measured, if any


@dataclass(frozen=True, slots=True)
class Workload:
    rate: float
    mix: dict[str, float]
    tenants: dict[str, float]
    source: str


@dataclass(slots=True)
class Plan:
    """What `resource-alloc` found."""

    resources: ResourcesSpec
    speeds: Speeds
    workload: Workload
    model: Model
    front: Front
    recommended: int | None
    confirmed: dict[int, SimFigures] = field(default_factory=dict)


def measured(
    store: Store | None, swarm_id: str | None, res: ResourcesSpec
) -> tuple[Speeds, Workload | None]:
    """Pools' speeds per kind from the swarm's latest run where it has `MIN_SAMPLES`, else
    the declared ones; and the mix that run recorded."""
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    run_id: int | None = None
    kinds: Counter[str] = Counter()
    tenants: Counter[str] = Counter()
    first = last = None
    if store is not None and swarm_id is not None:
        run = store.latest_run(swarm_id)
        if run is not None:
            run_id = run.id
            ids = [p.id for p in res.pools]
            for r in store.iter_results(run.id):
                kinds[r.kind] += 1
                tenants[r.tenant] += 1
                first = r.queued_at if first is None else min(first, r.queued_at)
                last = r.queued_at if last is None else max(last, r.queued_at)
                pool = None if r.agent is None else pool_of(r.agent, ids)
                if (
                    pool is not None
                    and r.status is TaskStatus.SUCCEEDED
                    and r.started_at is not None
                    and r.finished_at is not None
                ):
                    times[pool, r.kind].append(r.finished_at - r.started_at)
    service: dict[str, dict[str, float]] = {}
    source: dict[str, dict[str, str]] = {}
    cv: dict[str, float] = {}
    for spec in res.pools:
        service[spec.id] = dict(spec.service_time)
        source[spec.id] = dict.fromkeys(spec.service_time, "declared")
        spreads = []
        for (name, kind), values in times.items():
            if name == spec.id and len(values) >= MIN_SAMPLES and statistics.fmean(values) > 0:
                mean = statistics.fmean(values)
                service[spec.id][kind] = mean
                source[spec.id][kind] = "measured"
                spreads.append(statistics.pstdev(values) / mean)
        cv[spec.id] = statistics.fmean(spreads) if spreads else spec.cv
    recorded = None
    total = sum(kinds.values())
    if total >= MIN_SAMPLES and first is not None and last is not None and last > first:
        recorded = Workload(
            rate=total / (last - first),
            mix={k: n / total for k, n in kinds.items()},
            tenants={t: n / total for t, n in tenants.items()},
            source=f"swarm {swarm_id}",
        )
    return Speeds(service, cv, source, run_id), recorded


def workload_of(
    res: ResourcesSpec, recorded: Workload | None, traced: Workload | None = None
) -> Workload:
    """The workload the allocation is for: the file's, its spec's, its trace's (`traced`,
    as the caller read it: traces are read above this layer), or the swarm's record."""
    w = res.workload
    if w.trace is not None:
        if traced is None:
            raise ConfigError(
                "workload.trace",
                str(w.trace.file),
                "Plan with the workload read from the trace (swarmperf.queries.allocation "
                "reads it), or give workload.rate here instead.",
            )
        return traced
    if w.rate is not None and w.mix is not None:
        return Workload(w.rate, dict(w.mix), dict(w.tenants), "declared")
    if w.spec is not None:
        from swarmperf.spec import load_spec

        spec = load_spec(w.spec)
        rate = getattr(spec.workload.arrival, "rate", None)
        if rate is None:
            raise ConfigError(
                "workload.spec",
                str(w.spec),
                "Its workload arrives all at once (batch): give it a poisson or constant "
                "arrival rate, or give workload.rate and mix here.",
            )
        return Workload(
            float(rate), {spec.workload.kind: 1.0}, dict(spec.workload.tenants), f"spec {w.spec}"
        )
    if recorded is None:
        raise ConfigError(
            "workload",
            "(none)",
            "Give workload.rate and workload.mix, or workload.spec, or --swarm-id of a swarm "
            "whose recorded runs give the mix.",
        )
    return recorded


def build_model(res: ResourcesSpec, speeds: Speeds, work: Workload) -> Model:
    """The queueing model of the allocation problem; `ConfigError` for a speed nobody gave."""
    kinds = list(work.mix)
    for kind in res.constraints.slo:
        if kind not in work.mix:
            raise ConfigError(
                f"constraints.slo.{kind}",
                kind,
                f"The workload ({work.source}) has no such kind; it has {', '.join(kinds)}.",
            )
    service = np.empty((len(res.pools), len(kinds)))
    for p, pool in enumerate(res.pools):
        for k, kind in enumerate(kinds):
            value = speeds.service[pool.id].get(kind)
            if value is None:
                raise ConfigError(
                    f"pools[{p}].service_time.{kind}",
                    "(missing)",
                    f"Declare how long a {kind} task takes on one slot of pool {pool.id}, e.g. "
                    f"{kind}: 200ms, or give --swarm-id of a swarm that ran it there.",
                )
            service[p, k] = value
    c = res.constraints
    shares = c.tenant_shares
    tenant_load = None
    if shares:
        tenant_load = np.array(
            [
                work.tenants.get(t, 0.0) / s
                if s > 0
                else (math.inf if work.tenants.get(t) else 0.0)
                for t, s in shares.items()
            ]
        )
    return Model(
        service=service,
        cv=np.array([speeds.cv[p.id] for p in res.pools]),
        slots=np.array([float(p.concurrency) for p in res.pools]),
        price=np.array([p.cost_per_hour for p in res.pools]),
        rate=work.rate,
        mix=np.array([work.mix[k] for k in kinds]),
        slo=np.array([c.slo[k].p99 if k in c.slo else math.nan for k in kinds]),
        max_utilisation=c.max_utilisation,
        budget=c.budget_per_hour,
        tenant_load=tenant_load,
        kind_names=tuple(kinds),
        tenant_names=tuple(shares),
    )


def bounds(
    res: ResourcesSpec,
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]]]:
    return (
        np.array([p.min for p in res.pools], dtype=np.int64),
        np.array([p.max for p in res.pools], dtype=np.int64),
    )


def explain_infeasible(res: ResourcesSpec, model: Model, kinds: list[str]) -> ConfigError:
    """Which constraint no allocation within the pools' bounds meets, with the values."""
    from swarmperf.allocation.queueing import evaluate

    _, high = bounds(res)
    top = evaluate(model, high[None, :])
    names = model.constraint_names()
    slos = [n for n in names if n.startswith("constraints.slo.")]
    for column, name in enumerate(names):
        if top.violations[0, column] > 1e-12 and name != "constraints.budget_per_hour":
            if name in slos:
                kind = name.split(".")[2]
                k = kinds.index(kind)
                return ConfigError(
                    name,
                    f"{model.slo[k]:g}s",
                    f"Even every pool at its max gives a p99 of {top.p99_kind[0, k]:.3g}s for "
                    f"{kind} in the model: raise the pools' max, add a faster pool, or relax it.",
                )
            return ConfigError(
                name,
                _value_of(res, name),
                f"Even every pool at its max runs at {top.utilisation[0]:.0%} utilisation "
                "(more than allowed): raise the pools' max or add a pool.",
            )
    return ConfigError(
        "constraints.budget_per_hour",
        res.constraints.budget_per_hour,
        f"Every allocation that meets the other constraints costs more; every pool at its max "
        f"costs {top.cost[0]:.4g} {res.currency}/h. Raise the budget or relax an SLO.",
    )


def _value_of(res: ResourcesSpec, name: str) -> object:
    if name == "constraints.max_utilisation":
        return res.constraints.max_utilisation
    if name.startswith("constraints.tenant_shares"):
        return dict(res.constraints.tenant_shares)
    return None


def plan(
    res: ResourcesSpec,
    *,
    store: Store | None = None,
    swarm_id: str | None = None,
    seed: int = 0,
    sim_tasks: int = 20_000,
    traced: Workload | None = None,
) -> Plan:
    """Search the front, recommend its cheapest point, and confirm a few points in the
    simulator (the recommendation moves to the next one if the simulator misses an SLO).
    `traced`: the workload of the file's trace, read by the caller."""
    speeds, recorded = measured(store, swarm_id, res)
    work = workload_of(res, recorded, traced)
    model = build_model(res, speeds, work)
    low, high = bounds(res)
    front = search(model, low, high, seed=seed)
    if not len(front):
        raise explain_infeasible(res, model, list(work.mix))
    result = Plan(res, speeds, work, model, front, None)
    picks = sorted({0, *np.linspace(0, len(front) - 1, CONFIRMED).round().astype(int).tolist()})
    for i in picks:
        result.confirmed[i] = confirm(result, i, seed=seed, tasks=sim_tasks)
    for i in range(min(len(front), MAX_TRIES)):
        if i not in result.confirmed:
            result.confirmed[i] = confirm(result, i, seed=seed, tasks=sim_tasks)
        if meets_in_sim(result, i):
            result.recommended = i
            break
    return result


def confirm(p: Plan, i: int, *, seed: int = 0, tasks: int = 20_000) -> SimFigures:
    """Front point `i` run in the simulator."""
    pools = [q.id for q in p.resources.pools]
    return simulate(
        pools,
        [int(n) for n in p.front.counts[i]],
        [q.concurrency for q in p.resources.pools],
        [p.speeds.service[q] for q in pools],
        [p.speeds.cv[q] for q in pools],
        p.workload.rate,
        p.workload.mix,
        tasks=tasks,
        seed=seed,
    )


def meets_in_sim(p: Plan, i: int) -> bool:
    """Whether front point `i`, simulated, meets every SLO (False: not simulated)."""
    figures = p.confirmed.get(i)
    if figures is None or figures.failed:
        return False
    return all(
        figures.p99_kind.get(k, math.inf) <= s.p99 for k, s in p.resources.constraints.slo.items()
    )


def payload(p: Plan) -> dict[str, Any]:
    """The plan as `resource-alloc -o json` prints it."""
    pools = [q.id for q in p.resources.pools]
    kinds = list(p.workload.mix)
    ev = p.front.evaluation
    cost_model = p.resources.cost_model()

    def point(i: int) -> dict[str, Any]:
        counts = {pool: int(n) for pool, n in zip(pools, p.front.counts[i], strict=True)}
        sim = p.confirmed.get(i)
        hourly = cost_model.hourly(counts)
        return {
            "counts": counts,
            "cost_per_hour": hourly,
            "cost_per_1000_tasks": 1000.0 * hourly / (3600.0 * p.workload.rate),
            "predicted": {
                "p99_s": float(ev.p99[i]),
                "p99_kind_s": {k: float(ev.p99_kind[i, j]) for j, k in enumerate(kinds)},
                "sla_violation_risk": float(ev.risk[i]),
                "utilisation": float(ev.utilisation[i]),
                "wait_probability": float(ev.wait_probability[i]),
            },
            "simulated": None if sim is None else sim.to_data(),
            "slo_met_in_sim": None if sim is None else meets_in_sim(p, i),
        }

    rec = p.recommended
    return {
        "currency": p.resources.currency,
        "workload": {
            "rate_per_s": p.workload.rate,
            "mix": p.workload.mix,
            "tenants": p.workload.tenants,
            "source": p.workload.source,
        },
        "pools": [
            {
                "id": q.id,
                "machine": q.machine,
                "cost_per_hour": q.cost_per_hour,
                "concurrency": q.concurrency,
                "min": q.min,
                "max": q.max,
                "service_time_s": p.speeds.service[q.id],
                "speed_source": p.speeds.source[q.id],
                "cv": p.speeds.cv[q.id],
            }
            for q in p.resources.pools
        ],
        "speeds_from": (
            {"run_id": p.speeds.run_id, "reason": None}
            if p.speeds.run_id is not None
            else {"run_id": None, "reason": "no --swarm-id, or no stored run of it: declared"}
        ),
        "constraints": p.resources.constraints.model_dump(mode="json"),
        "method": p.front.method,
        "evaluated": p.front.evaluated,
        "front": [point(i) for i in range(len(p.front))],
        "recommended": None if rec is None else point(rec),
        "recommended_reason": (
            "the cheapest point of the front that meets every SLO in the simulator"
            if rec is not None
            else "no point of the front met every SLO in the simulator"
        ),
    }

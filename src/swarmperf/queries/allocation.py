"""`resource-alloc` as both front-ends ask it: plan a resources file, and apply the plan to a
live swarm as a trial (kept or rolled back on the figures measured after it).

The workload of a trace is read here: traces are the autoscaler's (`autoscale/`, a layer
above `allocation/`), so the two meet in this layer and nowhere below it.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmperf.core.durations import format_duration, parse_duration
from swarmperf.core.errors import ConfigError, UserError

if TYPE_CHECKING:
    from swarmperf.allocation.plan import Plan, Workload
    from swarmperf.allocation.resources import ResourcesSpec
    from swarmperf.client import SyncSwarmClient
    from swarmperf.core.trial import TrialRule

# A pool change settles slower than a strategy switch: new agents start, queues even out.
DEFAULT_OBSERVE = "30s"
DEFAULT_TOLERANCE = 0.5
VERDICT_SLACK_S = 15.0  # past the window: the service measures, judges and rolls back
VERDICT_POLL_S = 0.25


def traced_workload(res: ResourcesSpec) -> Workload | None:
    """The workload of the file's trace: its rate at the asked percentile of the
    per-interval rates, the file's mix; None without a trace. A bad trace is a
    `ConfigError` naming the file and line."""
    import numpy as np

    from swarmperf.allocation.plan import Workload
    from swarmperf.autoscale.traces import read_trace

    source = res.workload.trace
    if source is None:
        return None
    assert res.workload.mix is not None  # the resources file insists on a mix with a trace
    trace = read_trace(source.file, interval=source.interval)
    rates = trace.counts / trace.interval
    rate = float(np.percentile(rates, source.percentile)) if len(rates) else 0.0
    if not rate > 0:
        raise ConfigError(
            "workload.trace.percentile",
            source.percentile,
            f"The trace {source.file} has no arrivals at that percentile of its "
            f"{format_duration(source.interval)} intervals: raise it, or use a longer interval.",
        )
    mean = trace.tasks / trace.duration
    return Workload(
        rate,
        dict(res.workload.mix),
        dict(res.workload.tenants),
        f"trace {source.file} (p{source.percentile:g} of {len(rates)} "
        f"{format_duration(source.interval)} intervals; mean {mean:.4g}/s)",
    )


def plan_resources(
    resources: Path,
    swarm_id: str | None,
    data_dir: Path | None,
    *,
    seed: int = 0,
) -> Plan:
    """The plan of a resources file: speeds measured from `swarm_id`'s latest stored run
    where it has enough results, else declared."""
    from swarmperf.allocation.plan import plan
    from swarmperf.allocation.resources import load_resources
    from swarmperf.store import Store, database_path, resolve_data_dir

    res = load_resources(resources)
    traced = traced_workload(res)
    store = None
    if swarm_id is not None:
        where = database_path(resolve_data_dir(data_dir, os.environ))
        store = Store.open(where, read_only=True)
    try:
        return plan(res, store=store, swarm_id=swarm_id, seed=seed, traced=traced)
    finally:
        if store is not None:
            store.close()


def check_apply(
    apply: bool, swarm_id: str | None, observe_text: str | None, tolerance: float
) -> float:
    """The window a trial is judged on, once `--apply`'s options make sense (before the
    plan, which takes seconds)."""
    if not apply:
        return 0.0
    if swarm_id is None:
        raise UserError("--apply: give --swarm-id of the live swarm whose pools to resize.")
    observe = parse_duration(DEFAULT_OBSERVE if observe_text is None else observe_text, "--observe")
    if not observe > 0:
        raise ConfigError(
            "--observe",
            observe_text,
            "The change is judged on the window after it: give a duration > 0, e.g. 30s.",
        )
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ConfigError(
            "--tolerance", tolerance, "Give how much worse than predicted may pass, e.g. 0.5."
        )
    return observe


def resource_alloc(
    resources: Path,
    swarm_id: str | None,
    data_dir: Path | None,
    *,
    apply: bool = False,
    observe_text: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    on_watch: Callable[[float], None] | None = None,
    client: SyncSwarmClient | None = None,
) -> dict[str, Any]:
    """`resource-alloc -o json`: the front and the recommendation; with `apply`, the live
    swarm's pools resized to it on trial, and the trial's verdict (`applied`)."""
    from swarmperf.allocation.plan import payload

    observe = check_apply(apply, swarm_id, observe_text, tolerance)
    found = plan_resources(resources, swarm_id, data_dir, seed=seed)
    data = payload(found)
    if apply:
        assert swarm_id is not None  # check_apply saw to it
        slos = [slo.p99 for slo in found.resources.constraints.slo.values()]
        data["applied"] = apply_plan(
            data,
            max(slos) if slos else None,
            swarm_id,
            data_dir,
            resources=resources,
            observe=observe,
            tolerance=tolerance,
            on_watch=on_watch,
            client=client,
        )
    return data


def trial_rule(rec: dict[str, Any], loosest_slo: float | None, tolerance: float) -> TrialRule:
    """How the applied recommendation `rec` is judged: the measured p99 within `tolerance`
    of the model's, and within the loosest SLO (every kind meeting its own SLO keeps the
    overall p99 there)."""
    from swarmperf.core.trial import TrialRule

    return TrialRule(
        objective="latency_p99_s",
        predicted=rec["predicted"]["p99_s"],
        tolerance=tolerance,
        limit=loosest_slo,
    )


def apply_plan(
    data: dict[str, Any],
    loosest_slo: float | None,
    swarm_id: str,
    data_dir: Path | None,
    *,
    resources: Path,
    observe: float,
    tolerance: float,
    on_watch: Callable[[float], None] | None = None,
    client: SyncSwarmClient | None = None,
) -> dict[str, Any]:
    """Resize the live swarm's pools to the recommendation of `data` (a plan's payload) as
    a trial, wait for its verdict, and say what happened."""
    from swarmperf.queries.live import connect

    rec = data.get("recommended")
    if rec is None:
        raise UserError("--apply: there is no recommendation to apply (see the front).")
    rule = trial_rule(rec, loosest_slo, tolerance)
    counts = {pool: int(n) for pool, n in rec["counts"].items()}
    concurrency = {p["id"]: int(p["concurrency"]) for p in data["pools"]}
    allocation = ", ".join(f"{n} × {pool}" for pool, n in counts.items())
    reason = (
        f"resource-alloc: {allocation}, the cheapest allocation that meets every SLO "
        f"({rec['cost_per_hour']:.4g} {data['currency']}/h; predicted p99 "
        f"{rec['predicted']['p99_s']:.3g} s)"
    )
    inputs = {
        "resources": str(resources),
        "workload": data["workload"],
        "speeds_from": data["speeds_from"],
        "speed_source": {p["id"]: p["speed_source"] for p in data["pools"]},
        "recommended": {k: rec[k] for k in ("counts", "cost_per_hour", "predicted")},
    }
    with (
        contextlib.nullcontext(client)
        if client is not None
        else connect(swarm_id, data_dir) as using
    ):
        change = using.scale_pools(
            counts,
            concurrency=concurrency,
            observe_s=observe,
            trial=rule,
            reason=reason,
            inputs=inputs,
        )
        decision_id = int(change["decision_id"])
        if on_watch is not None:
            on_watch(observe)
        decision = verdict_of(using, decision_id, observe)
    trial = decision.get("trial") or {}
    verdict = trial.get("verdict")
    return {
        "decision_id": decision_id,
        "pools_before": change.get("pools_before"),
        "pools_after": change.get("pools_after"),
        "added": change.get("added"),
        "removed": change.get("removed"),
        "observe_s": observe,
        "rule": rule.to_data(),
        "figures_before": change.get("figures_before"),
        "figures_after": decision.get("after"),
        "verdict": verdict,
        "why": trial.get("why")
        if verdict is not None
        else (
            f"the service had not judged it {format_duration(VERDICT_SLACK_S)} after the "
            f"window; the verdict will be in decision {decision_id}"
        ),
        "reverted": trial.get("reverted"),
    }


def verdict_of(
    client: SyncSwarmClient,
    decision_id: int,
    observe: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The decision once its trial is judged (or as it is when that takes too long)."""
    sleep(observe)
    give_up = time.monotonic() + VERDICT_SLACK_S
    while True:
        decision = dict(client.decision(decision_id).get("decision") or {})
        if (decision.get("trial") or {}).get("verdict") is not None:
            return decision
        if time.monotonic() >= give_up:
            return decision
        sleep(VERDICT_POLL_S)

"""Bottleneck detection: pure detectors over snapshots and histories, with ranked findings.

Each detector looks at one kind of evidence and returns `Finding`s that carry the numbers
they rest on. `analyze` runs them all and ranks the findings by `score`: the severity
(critical 3, warning 2, info 1) plus a magnitude in [0, 1) that orders findings of the same
severity. Detectors that explain rather than diagnose (the latency split, correlations,
recurrences) stay below the direct diagnoses of the same severity.

- USE per resource (Brendan Gregg's method): utilisation, saturation and errors of the CPU,
  memory, network and the agents' slots.
- Queueing: utilisation near 1 with waiting dominating latency, or a backlog that Little's
  law (L = lambda W) says is building (the tasks present exceed arrivals times time in system).
- Slow agent: an agent whose weight-normalised median service time is an outlier among its
  peers by the robust z-score 0.6745 (x - median) / MAD (Iglewicz and Hoaglin; cut-off 3.5)
  and at least 1.25 times their median.
- Failing agent: an agent whose error rate stands out from its peers', or whose breaker is open.
- Critical path: the share of latency spent waiting versus being served.
- Correlation of latency with resource metrics over a history (Spearman, scipy).
- Recurrence: the same finding type and component recorded before (decisions of kind
  "bottleneck"): how often, when last, and when next if the interval holds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from swarmperf.analysis.figures import agent_shapes, run_figures, snapshots, system_from_rows
from swarmperf.monitor.snapshot import SwarmFigures, SystemFigures
from swarmperf.store import DecisionRecord, RunRecord, Store

Severity = Literal["info", "warning", "critical"]
SEVERITY_WEIGHT: dict[str, float] = {"info": 1.0, "warning": 2.0, "critical": 3.0}
DECISION_KIND = "bottleneck"
LATENCY_TARGETS = ("swarm.latency.p99", "swarm.latency.p95", "swarm.latency.mean")
History = Mapping[str, Sequence[tuple[float, float]]]  # metric name -> (ts, value), oldest first


@dataclass(frozen=True, slots=True)
class Finding:
    """One diagnosed bottleneck, or one piece of explanation, with the numbers behind it."""

    type: str
    severity: Severity
    component: str
    evidence: dict[str, Any]
    root_cause: str
    recommendation: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Where each detector starts to speak; defaults follow common operational practice."""

    cpu_utilization: float = 0.85  # fraction of all cores busy
    cpu_load_per_core: float = 1.0  # 1-minute load average per core: above 1, work waits
    memory_percent: float = 90.0
    memory_pressure: float = 10.0  # PSI "some avg10", percent of time stalled on memory
    swap_percent: float = 50.0
    slot_utilization: float = 0.85
    queue_utilization: float = 0.9
    wait_share: float = 0.5
    backlog_ratio: float = 1.5  # L / (lambda W) above this: tasks pile up faster than served
    robust_z: float = 3.5
    slow_factor: float = 1.25  # and at least this many times the peers' median to matter
    min_samples: int = 5  # tasks per agent before its service time or error rate counts
    agent_error_excess: float = 0.2  # an agent's error rate above its peers' median by this
    correlation_rho: float = 0.6
    correlation_p: float = 0.01
    min_history: int = 8

    @classmethod
    def default(cls) -> Thresholds:
        return cls()


def _score(severity: Severity, magnitude: float) -> float:
    return SEVERITY_WEIGHT[severity] + min(0.999, max(0.0, magnitude))


def _finding(
    type_: str,
    severity: Severity,
    component: str,
    evidence: dict[str, Any],
    root_cause: str,
    recommendation: str,
    magnitude: float,
) -> Finding:
    return Finding(
        type_,
        severity,
        component,
        evidence,
        root_cause,
        recommendation,
        _score(severity, magnitude),
    )


# -- USE ------------------------------------------------------------------------------------


def detect_cpu(system: SystemFigures | None, t: Thresholds = Thresholds()) -> list[Finding]:
    if system is None or system.cpu_percent is None:
        return []
    cores = len(system.cpu_per_core) or os.cpu_count() or 1
    util = system.cpu_percent / 100.0
    load = system.load_avg[0] / cores if system.load_avg is not None else None
    saturated = load is not None and load >= t.cpu_load_per_core
    if util < t.cpu_utilization and not saturated:
        return []
    critical = util >= 0.95 or (load is not None and load >= 1.5 * t.cpu_load_per_core)
    busiest = max(system.cpu_per_core) if system.cpu_per_core else None
    return [
        _finding(
            "use",
            "critical" if critical else "warning",
            "cpu",
            {
                "utilization": util,
                "load1_per_core": load,
                "cores": cores,
                "busiest_core_percent": busiest,
            },
            f"The CPU is {util:.0%} busy"
            + (f" with {load:.2f} runnable tasks per core" if load is not None else "")
            + ": work waits for a core.",
            "Run fewer CPU-bound agents per machine, move agents to more cores or machines, "
            "or make the task handlers cheaper.",
            max(util, min(1.0, (load or 0.0) / 2.0)),
        )
    ]


def detect_memory(system: SystemFigures | None, t: Thresholds = Thresholds()) -> list[Finding]:
    if system is None:
        return []
    used, psi, swap = system.memory_percent, system.memory_pressure, system.swap_percent
    over_used = used is not None and used >= t.memory_percent
    stalled = psi is not None and psi >= t.memory_pressure
    swapping = swap is not None and swap >= t.swap_percent and (psi is None or psi > 0)
    if not (over_used or stalled or swapping):
        return []
    critical = (used is not None and used >= 95.0) or (
        psi is not None and psi >= 2 * t.memory_pressure
    )
    return [
        _finding(
            "use",
            "critical" if critical else "warning",
            "memory",
            {
                "memory_percent": used,
                "pressure_some_avg10": psi,
                "swap_percent": swap,
                "available_bytes": system.memory_available_bytes,
                "process_rss_bytes": system.process_rss_bytes,
            },
            "Memory is short: "
            + ", ".join(
                part
                for part in (
                    f"{used:.0f}% used" if used is not None else "",
                    f"tasks stalled on memory {psi:.0f}% of the last 10 s" if psi else "",
                    f"swap {swap:.0f}% full" if swap is not None and swapping else "",
                )
                if part
            )
            + ".",
            "Lower the concurrency of memory-hungry agents, bound queue sizes, or add memory.",
            max((used or 0.0) / 100.0, min(1.0, (psi or 0.0) / 40.0)),
        )
    ]


def detect_network(system: SystemFigures | None, t: Thresholds = Thresholds()) -> list[Finding]:
    if system is None or system.net_errors_per_s is None or system.net_drops_per_s is None:
        return []
    bad = system.net_errors_per_s + system.net_drops_per_s
    if bad <= 0:
        return []
    return [
        _finding(
            "use",
            "warning",
            "network",
            {
                "errors_per_s": system.net_errors_per_s,
                "drops_per_s": system.net_drops_per_s,
                "sent_bytes_per_s": system.net_sent_bytes_per_s,
                "recv_bytes_per_s": system.net_recv_bytes_per_s,
            },
            f"The network loses or corrupts {bad:.1f} packets per second.",
            "Check the interfaces and links (errors), and socket buffers or bandwidth (drops).",
            min(1.0, bad / 100.0),
        )
    ]


def detect_slots(swarm: SwarmFigures, t: Thresholds = Thresholds()) -> list[Finding]:
    util = _mean_utilization(swarm)
    if util is None or util < t.slot_utilization:
        return []
    slots = sum(a.slots for a in swarm.agents.values())
    saturation = swarm.queue_depth / slots if slots else None
    # Half the magnitude: busy slots are the symptom that the queueing finding explains.
    return [
        _finding(
            "use",
            "warning",
            "agent slots",
            {
                "utilization": util,
                "queued_per_slot": saturation,
                "error_rate": swarm.error_rate,
                "slots": slots,
            },
            f"The agents' slots are {util:.0%} busy"
            + (f" with {saturation:.1f} tasks queued per slot" if saturation else "")
            + ".",
            "Add agents or raise their concurrency, if the machine has room for it.",
            0.5 * util,
        )
    ]


# -- queueing -------------------------------------------------------------------------------


def detect_queueing(swarm: SwarmFigures, t: Thresholds = Thresholds()) -> list[Finding]:
    rho = _mean_utilization(swarm)
    share = _wait_share(swarm)
    in_system = swarm.queue_depth + sum(a.in_flight for a in swarm.agents.values())
    arrivals = swarm.completed / swarm.window_s if swarm.window_s > 0 else None
    time_in = swarm.latency.mean
    little = arrivals * time_in if arrivals is not None and time_in is not None else None
    ratio = in_system / little if little else None
    slots = sum(a.slots for a in swarm.agents.values())
    saturated = rho is not None and rho >= t.queue_utilization and (share or 0.0) >= t.wait_share
    backlog = ratio is not None and ratio >= t.backlog_ratio and swarm.queue_depth > slots
    if not (saturated or backlog):
        return []
    critical = (saturated and (rho or 0.0) >= 0.95) or (backlog and (ratio or 0.0) >= 2.0)
    return [
        _finding(
            "queueing",
            "critical" if critical else "warning",
            "queue",
            {
                "utilization": rho,
                "wait_share": share,
                "queue_depth": swarm.queue_depth,
                "little_L": in_system,
                "little_lambda_per_s": arrivals,
                "little_W_s": time_in,
                "little_L_over_lambda_W": ratio,
            },
            "Tasks arrive about as fast as the agents can serve them"
            + (f" (utilisation {rho:.0%})" if rho is not None else "")
            + (f", so {share:.0%} of latency is waiting in the queue" if share else "")
            + (
                f"; {in_system} tasks are in the system, {ratio:.1f}x what the throughput "
                "and latency of the window account for: the backlog is growing"
                if backlog and ratio is not None
                else ""
            )
            + ".",
            "Add capacity (agents or concurrency) or shed/shape load at admission "
            "(queue.max_queued, rate limits); near utilisation 1 waits grow without bound.",
            max(share or 0.0, min(1.0, (ratio or 0.0) / 4.0)),
        )
    ]


def detect_critical_path(swarm: SwarmFigures, t: Thresholds = Thresholds()) -> list[Finding]:
    share = _wait_share(swarm)
    if share is None:
        return []
    waiting = share >= t.wait_share
    return [
        _finding(
            "critical_path",
            "info",
            "queue wait" if waiting else "service",
            {
                "wait_share": share,
                "service_share": 1.0 - share,
                "wait_mean_s": swarm.wait.mean,
                "service_mean_s": swarm.service.mean,
                "latency_mean_s": swarm.latency.mean,
            },
            f"{max(share, 1 - share):.0%} of the mean latency is spent "
            + ("waiting in the queue." if waiting else "being served by agents."),
            "Shorten the queue (capacity, admission) first."
            if waiting
            else "Make the work itself faster, or route it to faster agents.",
            max(share, 1.0 - share),
        )
    ]


# -- agents ---------------------------------------------------------------------------------


def robust_z(values: Sequence[float]) -> list[float]:
    """Robust z-scores 0.6745 (x - median) / MAD; MAD 0 falls back to the mean deviation.

    With no spread at all every score is 0.
    """
    x = np.asarray(values, dtype=float)
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med)))
    if mad > 0:
        return [float(v) for v in 0.6745 * (x - med) / mad]
    # Half or more of the values tie: the mean absolute deviation (scaled to estimate the
    # standard deviation of a normal, 1.2533) still sees one that stands out.
    meanad = float(np.mean(np.abs(x - med)))
    if meanad > 0:
        return [float(v) for v in (x - med) / (1.2533 * meanad)]
    return [0.0] * len(values)


def detect_slow_agents(
    swarm: SwarmFigures,
    weights: Mapping[str, float] | None = None,
    t: Thresholds = Thresholds(),
) -> list[Finding]:
    """Agents whose median service time, times their declared weight, stands out."""
    weights = weights or {}
    measured = [
        (a.agent_id, a.service.p50 * weights.get(a.agent_id, 1.0))
        for a in swarm.agents.values()
        if a.service.p50 is not None and a.service.count >= t.min_samples
    ]
    if len(measured) < 3:
        return []
    scores = robust_z([value for _, value in measured])
    median = float(np.median([value for _, value in measured]))
    found = []
    for (agent, value), z in zip(measured, scores, strict=True):
        times = value / median if median > 0 else math.inf
        # Peers alike to within a percent make the MAD tiny and any agent 5% slower an
        # "outlier": it must also be slower by a margin that matters.
        if z < t.robust_z or times < t.slow_factor:
            continue
        figures = swarm.agents[agent]
        found.append(
            _finding(
                "slow_agent",
                "critical" if times >= 2.0 else "warning",
                agent,
                {
                    "service_p50_s": figures.service.p50,
                    "weight": weights.get(agent, 1.0),
                    "normalised_p50_s": value,
                    "peer_median_s": median,
                    "times_peer_median": times,
                    "robust_z": z,
                    "utilization": figures.utilization,
                    "tasks": figures.completed,
                },
                f"Agent {agent!r} takes {times:.1f}x its peers' median service time for its "
                f"declared weight (robust z {z:.1f}).",
                f"Lower {agent!r}'s weight to what it delivers, use a strategy that measures "
                "speed (capacity-aware, least-loaded), or replace its host.",
                1.0 - 1.0 / (1.0 + z / 10.0),
            )
        )
    return found


def detect_failing_agents(swarm: SwarmFigures, t: Thresholds = Thresholds()) -> list[Finding]:
    rates = {
        a.agent_id: a.failed / a.completed
        for a in swarm.agents.values()
        if a.completed >= t.min_samples
    }
    peer_median = float(np.median(list(rates.values()))) if rates else 0.0
    found = []
    for agent in swarm.agents.values():
        rate = rates.get(agent.agent_id)
        erring = rate is not None and rate - peer_median >= t.agent_error_excess
        tripped = agent.breaker == "open" or not agent.alive
        if not (erring or tripped):
            continue
        critical = tripped or (rate or 0.0) >= 0.5
        state = "down" if not agent.alive else f"breaker {agent.breaker}"
        found.append(
            _finding(
                "failing_agent",
                "critical" if critical else "warning",
                agent.agent_id,
                {
                    "error_rate": rate,
                    "peer_median_error_rate": peer_median,
                    "failed": agent.failed,
                    "tasks": agent.completed,
                    "breaker": agent.breaker,
                    "alive": agent.alive,
                },
                f"Agent {agent.agent_id!r} fails "
                + (f"{rate:.0%} of its tasks " if rate is not None else "")
                + f"(peers {peer_median:.0%}); {state}.",
                f"Look at {agent.agent_id!r}'s errors and host; keep its breaker on so retries "
                "go elsewhere, or take it out of the swarm.",
                max(rate or 0.0, 0.99 if tripped else 0.0),
            )
        )
    return found


# -- history --------------------------------------------------------------------------------


def detect_correlations(history: History, t: Thresholds = Thresholds()) -> list[Finding]:
    """Resource metrics whose history moves with latency's (Spearman's rank correlation)."""
    target = next((name for name in LATENCY_TARGETS if len(history.get(name, ())) > 0), None)
    if target is None:
        return []
    latency = dict(history[target])
    found = []
    for name, series in sorted(history.items()):
        if not name.startswith("system.") or "#" in name:
            continue
        pairs = [(latency[ts], value) for ts, value in series if ts in latency]
        if len(pairs) < t.min_history:
            continue
        x, y = np.array(pairs, dtype=float).T
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        result = stats.spearmanr(x, y)
        rho, p = float(result.statistic), float(result.pvalue)
        if abs(rho) < t.correlation_rho or p > t.correlation_p:
            continue
        direction = "rises" if rho > 0 else "falls"
        found.append(
            _finding(
                "correlation",
                "warning" if abs(rho) >= 0.85 else "info",
                name,
                {"target": target, "spearman_rho": rho, "p_value": p, "samples": len(pairs)},
                f"{target} rises as {name} {direction} (Spearman rho {rho:+.2f}, "
                f"p {p:.1g}, {len(pairs)} snapshots).",
                f"Look at what drives {name}: it moves with latency, a hint of the cause "
                "(correlation, not proof).",
                0.5 * abs(rho),
            )
        )
    return found


def detect_recurring(
    findings: Sequence[Finding],
    past: Sequence[DecisionRecord],
    now: float,
    run_id: int | None = None,
) -> list[Finding]:
    """Findings whose type and component were recorded before, with when they may recur.

    An occurrence is a run (its first record), or a record that names no run; records of
    the run being analysed (`run_id`) are not earlier occurrences.
    """
    firsts: dict[tuple[str, str], dict[object, float]] = {}
    for record in past:
        if record.kind != DECISION_KIND:
            continue
        recorded_run = record.decision.get("run_id")
        if run_id is not None and recorded_run == run_id:
            continue
        key = (str(record.decision.get("type")), str(record.decision.get("component")))
        occurrence = ("run", recorded_run) if recorded_run is not None else ("id", record.id)
        seen = firsts.setdefault(key, {})
        seen[occurrence] = min(seen.get(occurrence, record.created_at), record.created_at)
    seen_at = {key: list(v.values()) for key, v in firsts.items()}
    found = []
    for finding in findings:
        times = sorted(seen_at.get((finding.type, finding.component), []))
        if not times:
            continue
        interval = float(np.mean(np.diff([*times, now])))
        expected = now + interval if interval is not None and interval > 0 else None
        count = len(times) + 1
        found.append(
            _finding(
                "recurring",
                "warning" if count >= 3 else "info",
                f"{finding.type}/{finding.component}",
                {
                    "occurrences": count,
                    "first_seen": times[0],
                    "last_seen": times[-1],
                    "mean_interval_s": interval,
                    "expected_next": expected,
                },
                f"This {finding.type} finding on {finding.component!r} has now been seen "
                f"{count} times.",
                "A recurring bottleneck is structural: fix its cause rather than its symptom, "
                "or schedule capacity before it is expected again.",
                min(0.9, count / 20.0),
            )
        )
    return found


# -- all together ---------------------------------------------------------------------------


def analyze(
    swarm: SwarmFigures | None,
    system: SystemFigures | None = None,
    *,
    weights: Mapping[str, float] | None = None,
    history: History | None = None,
    past: Sequence[DecisionRecord] = (),
    now: float | None = None,
    run_id: int | None = None,
    thresholds: Thresholds = Thresholds(),
) -> list[Finding]:
    """Every detector's findings, highest score first (ties: by type, then component)."""
    t = thresholds
    found: list[Finding] = [*detect_cpu(system, t), *detect_memory(system, t)]
    found += detect_network(system, t)
    if swarm is not None:
        found += detect_slots(swarm, t)
        found += detect_queueing(swarm, t)
        found += detect_critical_path(swarm, t)
        found += detect_slow_agents(swarm, weights, t)
        found += detect_failing_agents(swarm, t)
    if history:
        found += detect_correlations(history, t)
    if past:
        stamp = now if now is not None else (swarm.ts if swarm is not None else 0.0)
        found += detect_recurring(found, past, stamp, run_id)
    return rank(found)


def analyze_stored(
    store: Store, swarm_id: str, run: RunRecord | None, *, window_s: float, now: float
) -> list[Finding]:
    """`analyze` over what the store holds of a swarm: `run`'s figures over its last
    `window_s` seconds (none if it has no results), its agents' declared weights, the
    latest system snapshot and the metric history of the `window_s` seconds up to `now`,
    and the findings recorded before."""
    swarm = None
    weights: dict[str, float] = {}
    if run is not None and store.count_results(run.id):
        swarm = run_figures(store, run.id, window_s=window_s)
        weights = {name: shape.weight for name, shape in agent_shapes(run).items()}
    rows = store.metrics(swarm_id, since=now - window_s)
    snaps = snapshots(rows)
    system = system_from_rows(max(snaps), snaps[max(snaps)]) if snaps else None
    return analyze(
        swarm,
        system,
        weights=weights,
        history=history_from_rows(rows),
        past=store.decisions(swarm_id, DECISION_KIND),
        now=now,
        run_id=None if run is None else run.id,
    )


def rank(findings: Sequence[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.score, f.type, f.component))


def record_findings(
    store: Store, swarm_id: str, findings: Sequence[Finding], run_id: int | None = None
) -> list[int]:
    """Record the diagnoses (not the explanations) as decisions of kind "bottleneck"."""
    with store.transaction():
        return [
            store.record_decision(
                swarm_id, DECISION_KIND, {**f.to_dict(), "run_id": run_id}, f.root_cause
            )
            for f in findings
            if f.type not in ("recurring", "critical_path")
        ]


def history_from_rows(rows: Sequence[Any]) -> dict[str, list[tuple[float, float]]]:
    """Stored metric rows (`Store.metrics`) as a `History`; empty values are left out."""
    history: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row.value is not None and "#" not in row.name:
            history.setdefault(row.name, []).append((row.ts, row.value))
    return history


def _mean_utilization(swarm: SwarmFigures) -> float | None:
    """Busy slots over all slots (agents weighted by their slots)."""
    pairs = [(a.utilization, a.slots) for a in swarm.agents.values() if a.utilization is not None]
    slots = sum(s for _, s in pairs)
    if not slots:
        return None
    return sum(u * s for u, s in pairs) / slots


def _wait_share(swarm: SwarmFigures) -> float | None:
    wait, service = swarm.wait.mean, swarm.service.mean
    if wait is None or service is None or wait + service <= 0:
        return None
    return wait / (wait + service)

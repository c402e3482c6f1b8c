"""Performance reports over a timeframe: percentiles, trends, bottlenecks, SLAs and cost.

Percentiles, throughput and per-agent utilisation are exact, from the stored task results of
the runs that overlap the timeframe. Trends and SLA compliance are over snapshots: the
monitor's stored metric rows when there are any, else snapshots computed from the results
(`source` says which). The HTML format is one self-contained file whose charts are inline
SVG drawn here: a few polylines and bars do not justify a charting library, and no script
or stylesheet is fetched from anywhere.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import stats

# CostModel is defined with the allocator, which optimises the same cost; kept importable here.
from swarmperf.allocation.cost import CostModel as CostModel
from swarmperf.allocation.cost import idle_cost, per_dollar
from swarmperf.analysis.bottleneck import Finding, analyze, history_from_rows
from swarmperf.analysis.figures import (
    Columns,
    agent_shapes,
    compute_figures,
    figure_series,
    quantiles,
    snapshots,
    system_from_rows,
)
from swarmperf.core.errors import ConfigError
from swarmperf.core.latency import LatencySummary
from swarmperf.core.model import TaskStatus
from swarmperf.monitor.snapshot import flatten
from swarmperf.runtime.report import nodes_text
from swarmperf.store import RUN_RUNNING, RunRecord, Store

NO_COST_MODEL = "no cost model given"
SERIES = (
    "swarm.throughput_per_s",
    "swarm.latency.p50",
    "swarm.latency.p95",
    "swarm.latency.p99",
    "swarm.error_rate",
    "swarm.availability",
)


@dataclass(frozen=True, slots=True)
class SlaThresholds:
    """The SLA a snapshot is held to (defaults: the project's standard objectives)."""

    availability: float = 0.999
    p99_s: float = 1.0
    throughput_per_s: float = 100.0
    error_rate: float = 0.001


def load_cost_model(path: Path) -> CostModel:
    """Read a cost model from YAML or JSON: `per_agent_hour`, `per_task`, `currency`."""
    from swarmperf.core.safe_yaml import YamlProblem, load_yaml_text, looks_like, read_text

    try:
        data = load_yaml_text(read_text(path), str(path))
    except OSError as exc:
        raise ConfigError(
            "--cost-model", str(path), f"It cannot be read ({exc.strerror})."
        ) from exc
    except (YamlProblem, UnicodeDecodeError) as exc:
        # The problem names the line, never its text: the file may be a secret one.
        reason = f"{exc.where}: {exc.problem}" if isinstance(exc, YamlProblem) else "not UTF-8"
        fix = f"It is not YAML or JSON ({reason})."
        raise ConfigError("--cost-model", str(path), fix) from None
    example = "Write e.g. `per_agent_hour: 0.05` and/or `per_task: 0.0001`."
    keys = ("per_agent_hour", "per_task", "currency")
    if not isinstance(data, dict) or not looks_like(data, keys):
        raise ConfigError("--cost-model", str(path), f"It is not a cost model. {example}")
    unknown = sorted(str(key) for key in data if key not in keys)
    if unknown:
        # The key is named (bounded by ConfigError); its value is not shown.
        raise ConfigError("cost model key", unknown[0], "Use per_agent_hour, per_task, currency.")
    prices: dict[str, float | None] = {}
    for key in ("per_agent_hour", "per_task"):
        value = data.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0
        ):
            raise ConfigError(f"cost model {key}", value, "Use a number >= 0.")
        prices[key] = None if value is None else float(value)
    if prices["per_agent_hour"] is None and prices["per_task"] is None:
        raise ConfigError("--cost-model", str(path), f"It names no price. {example}")
    currency = data.get("currency", "USD")
    if not isinstance(currency, str) or not currency:
        raise ConfigError("cost model currency", currency, "Use a currency code such as USD.")
    return CostModel(prices["per_agent_hour"], prices["per_task"], currency)


def sla_compliance(
    snaps: Sequence[Mapping[str, float | None]], t: SlaThresholds = SlaThresholds()
) -> dict[str, dict[str, Any]]:
    """For each objective: in how many snapshots it was measured, met, and the share met."""
    checks: dict[str, tuple[str, str, float]] = {
        "availability": ("swarm.availability", ">=", t.availability),
        "latency_p99": ("swarm.latency.p99", "<=", t.p99_s),
        "throughput": ("swarm.throughput_per_s", ">=", t.throughput_per_s),
        "error_rate": ("swarm.error_rate", "<=", t.error_rate),
    }

    def meets(value: float, op: str, threshold: float) -> bool:
        return value >= threshold if op == ">=" else value <= threshold

    result: dict[str, dict[str, Any]] = {}
    all_met = all_measured = 0
    for snap in snaps:
        values = [snap.get(metric) for metric, _, _ in checks.values()]
        known = [v for v in values if v is not None]
        if len(known) == len(values):
            all_measured += 1
            all_met += all(
                meets(v, op, threshold)
                for (_, op, threshold), v in zip(checks.values(), known, strict=True)
            )
    for name, (metric, op, threshold) in checks.items():
        measured = [v for snap in snaps if (v := snap.get(metric)) is not None]
        met = sum(1 for v in measured if meets(v, op, threshold))
        result[name] = {
            "metric": metric,
            "objective": f"{op} {threshold:g}",
            "threshold": threshold,
            "measured": len(measured),
            "met": met,
            "share": met / len(measured) if measured else None,
        }
    result["all"] = {
        "measured": all_measured,
        "met": all_met,
        "share": all_met / all_measured if all_measured else None,
    }
    return result


def trend(points: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Least-squares slope of a series, with its p-value and the change it implies."""
    if len(points) < 3:
        return {"slope_per_hour": None, "reason": f"needs 3 snapshots, has {len(points)}"}
    x, y = np.array(points, dtype=float).T
    if np.ptp(x) == 0:
        return {"slope_per_hour": None, "reason": "all snapshots share one time"}
    if np.ptp(y) == 0:
        return {"slope_per_hour": 0.0, "p_value": None, "direction": "flat", "change": 0.0}
    fit = stats.linregress(x - x[0], y)
    slope, p = float(fit.slope), float(fit.pvalue)
    change = slope * float(np.ptp(x))
    mean = float(np.mean(y))
    direction = "flat" if p >= 0.05 else ("rising" if slope > 0 else "falling")
    return {
        "slope_per_hour": slope * 3600.0,
        "p_value": p,
        "direction": direction,
        "change": change,
        "relative_change": change / mean if mean else None,
    }


@dataclass
class PerformanceReport:
    """A swarm's performance over `[since, until]` (UNIX seconds)."""

    swarm_id: str
    since: float
    until: float
    source: str  # "metrics" (the monitor's snapshots) or "task results"
    runs: list[int]
    snapshots: int
    tasks: dict[str, int]
    throughput_per_s: float | None
    error_rate: float | None
    availability: float | None
    latency: LatencySummary
    wait: LatencySummary
    service: LatencySummary
    agents: dict[str, dict[str, Any]]
    trends: dict[str, dict[str, Any]]
    sla: dict[str, dict[str, Any]]
    sla_thresholds: SlaThresholds
    cost: dict[str, Any]
    findings: list[Finding]
    series: dict[str, list[tuple[float, float]]]
    reasons: dict[str, str] = field(default_factory=dict)
    # The allocator's recommendation, when the report was asked with a resources file.
    allocation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["allocation"] is None:
            del data["allocation"]  # reports without a resources file keep their shape
        for name in ("latency", "wait", "service"):
            # Snapshots keep no minimum; the report's JSON has never had the key.
            del data[name]["min"]
        data["findings"] = [f.to_dict() for f in self.findings]
        data["series"] = {k: [list(p) for p in v] for k, v in self.series.items()}
        return data


def _runs_in(
    store: Store, swarm_id: str, since: float, until: float, *, include_simulated: bool = False
) -> list[RunRecord]:
    # Simulated runs (virtual agents, virtual time) stay out of a real swarm's figures
    # unless asked for.
    kind = None if include_simulated else "real"
    runs = [
        run
        for run in store.list_runs(swarm_id, limit=10_000, kind=kind)
        # A run still going reaches to now; one ended or aborted, to when it was last seen.
        if run.started_at <= until and (run.status == RUN_RUNNING or run.last_seen >= since)
    ]
    return sorted(runs, key=lambda r: r.id)


def build_report(
    store: Store,
    swarm_id: str,
    *,
    since: float,
    until: float,
    thresholds: SlaThresholds = SlaThresholds(),
    cost_model: CostModel | None = None,
    steps: int = 50,
    include_simulated: bool = False,
) -> PerformanceReport | None:
    """The report, or None when the swarm has neither runs nor metrics in the timeframe.
    Only real runs count, unless `include_simulated`."""
    runs = _runs_in(store, swarm_id, since, until, include_simulated=include_simulated)
    rows = [r for r in store.metrics(swarm_id, since=since) if r.ts <= until]
    if not runs and not rows:
        return None
    reasons: dict[str, str] = {}
    lat, wait, service = [], [], []
    counts = dict.fromkeys((s.value for s in TaskStatus), 0)
    running_s = 0.0
    unreachable = 0  # failed without reaching an agent
    agent_busy: dict[str, list[float]] = {}  # name -> [busy slot-seconds, offered, tasks, failed]
    derived: dict[float, dict[str, float | None]] = {}
    nodes: dict[str, list[str]] = {}  # agent -> the nodes it ran on, in order (Ray)
    for run in runs:
        for placed in store.agent_nodes(run.id):
            nodes.setdefault(placed.agent, []).append(placed.node_id)
        cols = Columns.of(store.iter_results(run.id))
        first, last = cols.first, cols.last
        if first is None or last is None or not last > first:
            continue
        offset = run.started_at - first  # swarm clock -> wall clock
        lo, hi = max(first, since - offset), min(last, until - offset)
        if not hi > lo:
            continue
        shapes = agent_shapes(run)
        figures = compute_figures(cols, shapes, lo, hi, ts=hi + offset, include_start=True)
        running_s += hi - lo
        with np.errstate(invalid="ignore"):
            ended = (cols.finished >= lo) & (cols.finished <= hi)
        for status in TaskStatus:
            counts[status.value] += int(np.count_nonzero(ended & (cols.status == _code(status))))
        # Availability's definition (as in the snapshots): failing with no agent to run the
        # task is unavailability too, not only a rejection.
        unreachable += int(np.count_nonzero(ended & _failed(cols) & (cols.agent < 0)))
        ran = ended & ((cols.status == _code(TaskStatus.SUCCEEDED)) | _failed(cols))
        lat.append(cols.finished[ran] - cols.queued[ran])
        wait.append(cols.started[ran] - cols.queued[ran])
        service.append(cols.finished[ran] - cols.started[ran])
        for name, agent in figures.agents.items():
            acc = agent_busy.setdefault(name, [0.0, 0.0, 0.0, 0.0])
            if agent.utilization is not None:
                acc[0] += agent.utilization * agent.slots * (hi - lo)
                acc[1] += agent.slots * (hi - lo)
            acc[2] += agent.completed
            acc[3] += agent.failed
        if not rows:
            step = max((hi - lo) / steps, 1e-3)
            for snap in figure_series(cols, shapes, step, run=run):
                if since <= snap.ts <= until:
                    derived[snap.ts] = flatten(snap, None)
    source = "metrics" if rows else "task results"
    snaps = snapshots(rows) if rows else derived
    ordered = [snaps[ts] for ts in sorted(snaps)]
    series = {
        name: [(ts, v) for ts in sorted(snaps) if (v := snaps[ts].get(name)) is not None]
        for name in SERIES
    }
    ran_count = counts["succeeded"] + counts["failed"]
    asked = ran_count + counts["rejected"]
    if not running_s:
        reasons["throughput_per_s"] = "no stored task ended in the timeframe"
    aborted = [str(run.id) for run in runs if run.aborted]
    if aborted:
        reasons["aborted_runs"] = (
            f"run {', '.join(aborted)} aborted: its process is gone and never recorded the "
            "run's end, so what it stored is partial (its unstored tasks are counted nowhere)"
        )
    findings = _findings(store, swarm_id, runs, rows, snaps, until)
    return PerformanceReport(
        swarm_id=swarm_id,
        since=since,
        until=until,
        source=source,
        runs=[r.id for r in runs],
        snapshots=len(ordered),
        tasks=counts,
        throughput_per_s=ran_count / running_s if running_s else None,
        error_rate=counts["failed"] / ran_count if ran_count else None,
        availability=1.0 - (counts["rejected"] + unreachable) / asked if asked else None,
        latency=quantiles(_cat(lat)),
        wait=quantiles(_cat(wait)),
        service=quantiles(_cat(service)),
        agents={
            name: {
                "utilization": acc[0] / acc[1] if acc[1] else None,
                "tasks": int(acc[2]),
                "failed": int(acc[3]),
                "nodes": nodes.get(name, []),
            }
            for name, acc in sorted(agent_busy.items())
        },
        trends={
            "throughput_per_s": trend(series["swarm.throughput_per_s"]),
            "latency_p99_s": trend(series["swarm.latency.p99"]),
        },
        sla=sla_compliance(ordered, thresholds),
        sla_thresholds=thresholds,
        cost=_cost(cost_model, runs, since, until, counts, agent_busy),
        findings=findings,
        series=series,
        reasons=reasons,
    )


def _code(status: TaskStatus) -> int:
    return list(TaskStatus).index(status)


def _failed(cols: Columns) -> Any:
    return cols.status == _code(TaskStatus.FAILED)


def _cat(parts: list[Any]) -> Any:
    return np.concatenate(parts) if parts else np.array([], dtype=float)


def _findings(
    store: Store,
    swarm_id: str,
    runs: list[RunRecord],
    rows: list[Any],
    snaps: Mapping[float, Mapping[str, float | None]],
    until: float,
) -> list[Finding]:
    from swarmperf.analysis.figures import run_figures

    swarm = None
    weights: dict[str, float] = {}
    if runs:
        try:
            swarm = run_figures(store, runs[-1].id)
            weights = {k: v.weight for k, v in agent_shapes(runs[-1]).items()}
        except ConfigError:
            swarm = None  # the latest run has no finished task to judge by
    system = None
    if snaps:
        latest = max(snaps)
        system = system_from_rows(latest, snaps[latest])
    return analyze(
        swarm,
        system,
        weights=weights,
        history=history_from_rows(rows),
        past=store.decisions(swarm_id, "bottleneck"),
        now=until,
        run_id=runs[-1].id if runs else None,
    )


def _cost(
    model: CostModel | None,
    runs: list[RunRecord],
    since: float,
    until: float,
    counts: Mapping[str, int],
    busy: Mapping[str, list[float]],
) -> dict[str, Any]:
    if model is None:
        return {"total": None, "reason": NO_COST_MODEL}
    # Priced by the allocator's cost model: each agent at its pool's price (or the flat
    # per-agent-hour one), so a report and an allocation agree on what a run costs.
    agent_hours = 0.0
    agents_cost: float | None = 0.0 if model.prices_agents else None
    for run in runs:
        shapes = agent_shapes(run)
        end = run.last_seen if run.aborted else run.finished_at
        end = end if end is not None else until
        hours = max(0.0, min(end, until) - max(run.started_at, since)) / 3600.0
        agent_hours += len(shapes) * hours
        if agents_cost is not None:
            agents_cost += sum((model.agent_hour_price(a) or 0.0) * hours for a in shapes)
    ran = counts["succeeded"] + counts["failed"]
    parts: dict[str, float | None] = {
        "agents": agents_cost,
        "tasks": None if model.per_task is None else model.per_task * ran,
    }
    total = sum(v for v in parts.values() if v is not None)
    offered = sum(acc[1] for acc in busy.values())
    used = sum(acc[0] for acc in busy.values())
    busy_share = used / offered if offered else None
    return {
        "currency": model.currency,
        "agent_hours": agent_hours,
        "tasks_run": ran,
        "agents_cost": parts["agents"],
        "tasks_cost": parts["tasks"],
        "total": total,
        "per_1000_succeeded": 1000.0 * total / counts["succeeded"] if counts["succeeded"] else None,
        "busy_share": busy_share,
        "idle_cost": (
            None
            if parts["agents"] is None or busy_share is None
            else idle_cost(parts["agents"], busy_share)
        ),
        "succeeded_per_unit": per_dollar(counts["succeeded"], total),
    }


# -- rendering ------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1e3:,.1f} ms"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None, template: str = "{:,.2f}") -> str:
    return "n/a" if value is None else template.format(value)


def _when(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _headline_rows(r: PerformanceReport) -> list[tuple[str, str]]:
    return [
        ("timeframe", f"{_when(r.since)} .. {_when(r.until)}"),
        ("runs / snapshots", f"{len(r.runs)} / {r.snapshots} (from {r.source})"),
        (
            "tasks run / failed / rejected",
            f"{r.tasks['succeeded'] + r.tasks['failed']:,} / "
            f"{r.tasks['failed']:,} / {r.tasks['rejected']:,}",
        ),
        ("throughput", _num(r.throughput_per_s, "{:,.1f} tasks/s")),
        (
            "latency p50 / p95 / p99",
            " / ".join(_ms(v) for v in (r.latency.p50, r.latency.p95, r.latency.p99)),
        ),
        ("error rate", _pct(r.error_rate, 2)),
        ("availability", _pct(r.availability, 3)),
        ("SLA met (all objectives)", _pct(r.sla["all"]["share"])),
        ("cost", _cost_text(r.cost)),
    ]


def _cost_text(cost: Mapping[str, Any]) -> str:
    if cost.get("total") is None:
        return f"n/a ({cost.get('reason', NO_COST_MODEL)})"
    per = cost.get("per_1000_succeeded")
    tail = f", {per:,.4f} per 1,000 succeeded" if per is not None else ""
    return f"{cost['total']:,.4f} {cost['currency']}{tail}"


def render_summary(r: PerformanceReport, console: Console) -> None:
    table = Table(title=f"Performance of swarm {r.swarm_id!r}", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for name, value in _headline_rows(r):
        table.add_row(name, value)
    console.print(table)
    top = [f for f in r.findings if f.severity != "info"][:3]
    if top:
        console.print("[bold]Top bottlenecks[/bold]")
        for f in top:
            console.print(f"  [{_colour(f.severity)}]{f.severity}[/] {f.component}: {f.root_cause}")
    else:
        console.print("[green]No bottleneck found.[/green]")
    if "aborted_runs" in r.reasons:
        console.print(f"[yellow]partial data:[/yellow] {r.reasons['aborted_runs']}")
    rec = (r.allocation or {}).get("recommended")
    if rec is not None:
        counts = ", ".join(f"{n} × {pool}" for pool, n in rec["counts"].items() if n)
        console.print(
            f"Allocator's recommendation: {counts} at {rec['cost_per_hour']:.4g} "
            f"{r.allocation['currency'] if r.allocation else ''}/h, predicted p99 "
            f"{rec['predicted']['p99_s'] * 1e3:,.0f} ms",
            highlight=False,
            markup=False,
        )


def render_detailed(r: PerformanceReport, console: Console) -> None:
    render_summary(r, console)
    q = Table(title="Latency, wait and service (exact, from task results)")
    for col in ("", "count", "p50", "p90", "p95", "p99", "max", "mean"):
        q.add_column(col, justify="right" if col else "left")
    for name, qs in (("latency", r.latency), ("wait", r.wait), ("service", r.service)):
        q.add_row(
            name,
            str(qs.count),
            *(_ms(v) for v in (qs.p50, qs.p90, qs.p95, qs.p99, qs.max, qs.mean)),
        )
    console.print(q)
    a = Table(title="Agents")
    placed = any(row.get("nodes") for row in r.agents.values())
    for col in ("agent", "utilisation", "tasks", "failed", *(("node",) if placed else ())):
        a.add_column(col, justify="left" if col in ("agent", "node") else "right")
    for name, row in r.agents.items():
        cells = [name, _pct(row["utilization"]), f"{row['tasks']:,}", f"{row['failed']:,}"]
        a.add_row(*cells, *((nodes_text(row.get("nodes", ())),) if placed else ()))
    console.print(a)
    s = Table(title="SLA compliance (share of snapshots meeting each objective)")
    for col in ("objective", "threshold", "met / measured", "share"):
        s.add_column(col, justify="left" if col == "objective" else "right")
    for name, row in r.sla.items():
        s.add_row(
            name,
            _num(row.get("threshold"), "{:g}"),
            f"{row['met']} / {row['measured']}",
            _pct(row["share"]),
        )
    console.print(s)
    t = Table(title="Trends over the timeframe (least squares; flat unless p < 0.05)")
    for col in ("series", "direction", "slope per hour", "change", "p"):
        t.add_column(col, justify="left" if col == "series" else "right")
    for name, row in r.trends.items():
        t.add_row(
            name,
            row.get("direction", row.get("reason", "")),
            _num(row.get("slope_per_hour"), "{:+.4g}"),
            _num(row.get("relative_change"), "{:+.1%}"),
            _num(row.get("p_value"), "{:.2g}"),
        )
    console.print(t)
    console.print("[bold]Findings, most important first[/bold]")
    render_findings(r.findings, console)
    if r.cost.get("total") is not None:
        c = Table(title="Cost")
        c.add_column("figure")
        c.add_column("value", justify="right")
        for key, value in r.cost.items():
            c.add_row(key, value if isinstance(value, str) else _num(value, "{:,.4f}"))
        console.print(c)
    for key, why in r.reasons.items():
        console.print(f"[dim]{key}: n/a, {why}[/dim]")


def render_findings(findings: Sequence[Finding], console: Console) -> None:
    """Each finding as a headline, its cause and its recommendation, with its evidence."""
    if not findings:
        console.print("[green]No bottleneck found.[/green]")
    for f in findings:
        console.print(
            f"[{_colour(f.severity)}]{f.severity}[/] [bold]{f.type}[/bold] on "
            f"[bold]{f.component}[/bold] (score {f.score:.2f})",
            highlight=False,
        )
        console.print(f"  {f.root_cause}", highlight=False)
        console.print(f"  [dim]fix:[/dim] {f.recommendation}", highlight=False)
        evidence = ", ".join(f"{k}={_evidence(v)}" for k, v in f.evidence.items())
        console.print(f"  [dim]evidence: {evidence}[/dim]", highlight=False)


def _evidence(value: Any) -> str:
    if isinstance(value, float) and value > 1e9:  # a UNIX time
        return _when(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)


def _colour(severity: str) -> str:
    return {"critical": "bold red", "warning": "yellow"}.get(severity, "cyan")


def to_json(r: PerformanceReport) -> str:
    return json.dumps(_finite(r.to_dict()), allow_nan=False)


def _finite(value: Any) -> Any:
    """The same data with every NaN or infinity as null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# -- HTML with inline SVG charts ------------------------------------------------------------

_PALETTE = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd")
_BARS_SHOWN = 40  # at most this many agents in the bar chart: the busiest and the idlest half

# Advance widths (in em) of DejaVu Sans, the widest of the faces a browser commonly picks for
# sans-serif: margins sized by them leave room for a label in any face the reader has. A
# browser cannot be asked from a file with no script, so the layout estimates.
_EM_NARROW = frozenset(" .,:;'!|ijlfrtI-()[]/")
_EM_WIDE = frozenset("mwMW%…@")
_EM_BROAD = frozenset("+#=<>~_")


def _text_width(text: str, size: float, bold: bool = False) -> float:
    """A generous estimate of how wide `text` is drawn at font size `size` (px)."""
    em = 0.0
    for ch in text:
        if ch in _EM_NARROW:
            em += 0.4
        elif ch in _EM_WIDE:
            em += 1.0
        elif ch in _EM_BROAD:
            em += 0.84
        elif ch.isupper():
            em += 0.8
        else:
            em += 0.66
    return em * size * (1.15 if bold else 1.05)


def _cut(text: str, room: float, size: float, tail_share: float) -> str:
    """`text`'s head and tail around an ellipsis, within `room` px; the tail takes its share."""
    budget = room - _text_width("…", size)
    tail = ""
    for ch in reversed(text):
        if _text_width(ch + tail, size) > budget * tail_share:
            break
        tail = ch + tail
    head = ""
    for ch in text[: len(text) - len(tail)]:
        if _text_width(head + ch + tail, size) > budget:
            break
        head += ch
    return head + "…" + tail


def _fit_labels(names: Sequence[str], room: float, size: float) -> dict[str, str]:
    """Each name, cut in the middle where wider than `room`, and never cut into another's
    label: names alike at both ends keep more of their tail, where they usually differ."""
    labels = {n: n if _text_width(n, size) <= room else _cut(n, room, size, 0.4) for n in names}
    for share in (0.6, 0.8, 1.0, None):
        seen: dict[str, int] = {}
        for label in labels.values():
            seen[label] = seen.get(label, 0) + 1
        clash = [n for n in names if seen[labels[n]] > 1 and labels[n] != n]
        if not clash:
            break
        for i, name in enumerate(clash, 1):
            if share is None:  # the tails are alike too: number them
                mark = f"{i}:"
                labels[name] = mark + _cut(name, room - _text_width(mark, size), size, 1.0)
            else:
                labels[name] = _cut(name, room, size, share)
    return labels


def _label(x: float, y: float, text: str, *, size: int = 11, anchor: str = "start") -> str:
    """An SVG text, whole as given."""
    end = "" if anchor == "start" else f' text-anchor="{anchor}"'
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}"{end}>{html.escape(text)}</text>'


def _svg_head(title: str, width: int, height: int) -> str:
    """The opening of a chart that scales down, never clipped, to fit a narrow page."""
    esc = html.escape
    title_room = width - 16
    shown = _fit_labels([title], title_room / 1.1, 14)[title]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" style="max-width:100%;height:auto" '
        f'role="img" aria-label="{esc(title)}">'
        f'<text x="8" y="20" font-size="14" font-weight="bold">{esc(shown)}</text>'
    )


def _ticks(top: float, most: int = 5) -> tuple[list[float], int]:
    """Round values from 0 to at least `top`, at most `most` steps, and their decimals."""
    raw = top / most
    magnitude = 10.0 ** math.floor(math.log10(raw))
    factor = next(m for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw * (1 - 1e-9))
    step = factor * magnitude
    steps = max(1, math.ceil(top / step - 1e-9))
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if factor == 2.5 else 0)
    return [i * step for i in range(steps + 1)], decimals


def _span(seconds: float) -> str:
    """A time span as a reader counts it: seconds, minutes, hours or days."""
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"+{seconds / size:,.1f} {unit}"
    return f"+{seconds:,.3g} s"


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    title: str,
    unit: str,
    scale: float = 1.0,
    width: int = 640,
    height: int = 240,
) -> str:
    """An SVG line chart of time series (x: UNIX seconds), values times `scale`.

    The margins are sized from the widest label on each side, so no label is cut at the
    chart's edge; the y axis has round ticks and its unit above them.
    """
    size = 11
    series = {
        label: [(x, y) for x, y in s if math.isfinite(x) and math.isfinite(y * scale)]
        for label, s in series.items()
    }
    points = [(x, y * scale) for s in series.values() for x, y in s]
    if not points:
        return (
            _svg_head(title, width, height)
            + _label(8, height // 2, "no data in the timeframe")
            + "</svg>"
        )
    xs = [p[0] for p in points]
    x0, x1 = min(xs), max(xs)
    highest = max(p[1] for p in points)
    ticks, decimals = _ticks(highest if highest > 0 else 1.0)
    y1 = ticks[-1]
    tick_labels = [f"{t:,.{decimals}f}" for t in ticks]
    legend_w = max(_text_width(label, size) for label in series)
    left = 8 + math.ceil(max(_text_width(t, size) for t in tick_labels)) + 6
    # At least the room of a short legend: charts one above another keep one plot width.
    right = max(90, math.ceil(legend_w) + 34)
    top, bottom = 46, 30
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (0.5 if x1 == x0 else (x - x0) / (x1 - x0)) * plot_w

    def py(y: float) -> float:
        return top + plot_h - y / y1 * plot_h

    parts = [_svg_head(title, width, height), _label(8, top - 12, unit, size=size)]
    for tick, text in zip(ticks, tick_labels, strict=True):
        y = py(tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'stroke="{"#888" if tick == 0 else "#e4e4e4"}"/>'
            + _label(left - 6, y + 4, text, size=size, anchor="end")
        )
    parts += [
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
        _label(left, height - 8, _when(x0), size=size),
        _label(left + plot_w, height - 8, _span(x1 - x0), size=size, anchor="end"),
    ]
    for i, (label, s) in enumerate(series.items()):
        colour = _PALETTE[i % len(_PALETTE)]
        if len(s) == 1:
            x, y = s[0]
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y * scale):.1f}" r="3" fill="{colour}"/>'
            )
        elif s:
            coords = " ".join(f"{px(x):.1f},{py(y * scale):.1f}" for x, y in s)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}"/>'
            )
        ly = top + 12 + 16 * i
        lx = width - right + 10
        parts.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
            + _label(lx + 14, ly, label, size=size)
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(values: Mapping[str, float | None], title: str, width: int = 640) -> str:
    """Horizontal bars of fractions in [0, 1] (per-agent utilisation); None shows n/a.

    Names wider than 40% of the chart are cut in the middle, uniquely, with the whole name
    as the label's tooltip. Past `_BARS_SHOWN` agents, the busiest and the idlest are drawn
    and a row says how many lie between them.
    """
    size, row = 11, 20
    rows: list[tuple[str, float | None] | int] = list(values.items())
    if len(rows) > _BARS_SHOWN:
        ranked = sorted(values.items(), key=lambda kv: -1.0 if kv[1] is None else kv[1])
        ranked.reverse()
        half = _BARS_SHOWN // 2
        rows = [*ranked[:half], len(ranked) - 2 * half, *ranked[-half:]]
    names = [r[0] for r in rows if not isinstance(r, int)]
    room = width * 0.4
    labels = _fit_labels(names, room, size)
    left = 10 + math.ceil(max((_text_width(s, size) for s in labels.values()), default=0)) + 8
    value_w = math.ceil(_text_width("100.0%", size))
    span = width - left - 4 - value_w - 10
    height = 40 + row * max(1, len(rows))
    parts = [_svg_head(title, width, height)]
    for i, item in enumerate(rows):
        y = 30 + i * row
        if isinstance(item, int):
            parts.append(_label(left, y + 12, f"… {item:,} agents between these …", size=size))
            continue
        name, value = item
        text = _label(left - 6, y + 12, labels[name], size=size, anchor="end")
        if labels[name] != name:
            text = f"<g><title>{html.escape(name)}</title>{text}</g>"
        parts.append(text)
        if value is None:
            parts.append(_label(left, y + 12, "n/a", size=size))
            continue
        w = max(0.0, min(1.0, value)) * span
        parts.append(
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{row - 6}" fill="#1f77b4"/>'
            + _label(left + w + 4, y + 12, f"{value:.1%}", size=size)
        )
    parts.append("</svg>")
    return "".join(parts)


def to_html(r: PerformanceReport) -> str:
    esc = html.escape
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _headline_rows(r))
    latency = line_chart(
        {
            "p50": r.series["swarm.latency.p50"],
            "p95": r.series["swarm.latency.p95"],
            "p99": r.series["swarm.latency.p99"],
        },
        "Latency percentiles over time",
        "ms",
        scale=1e3,
    )
    throughput = line_chart(
        {"tasks/s": r.series["swarm.throughput_per_s"]}, "Throughput over time", "tasks/s"
    )
    bars = bar_chart({k: v["utilization"] for k, v in r.agents.items()}, "Utilisation per agent")
    findings = "".join(
        f"<tr><td>{f.score:.2f}</td><td class='{esc(f.severity)}'>{esc(f.severity)}</td>"
        f"<td>{esc(f.type)}</td><td>{esc(f.component)}</td><td>{esc(f.root_cause)}</td>"
        f"<td>{esc(f.recommendation)}</td></tr>"
        for f in r.findings
    )
    sla = "".join(
        f"<tr><td>{esc(k)}</td><td>{v['met']} / {v['measured']}</td>"
        f"<td>{esc(_pct(v['share']))}</td></tr>"
        for k, v in r.sla.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>swarmperf: performance of {esc(r.swarm_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: clamp(0.5em, 3vw, 2em); color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; display: block; max-width: 100%;
         overflow-x: auto; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
td {{ overflow-wrap: break-word; }}
.critical {{ color: #b00; font-weight: bold; }} .warning {{ color: #a60; }}
</style></head><body>
<h1>Performance of swarm {esc(r.swarm_id)}</h1>
<table>{rows}</table>
<h2>Over time</h2>
{latency}
{throughput}
<h2>Agents</h2>
{bars}
<h2>SLA compliance</h2>
<table><tr><th>objective</th><th>met / measured snapshots</th><th>share</th></tr>{sla}</table>
<h2>Bottlenecks</h2>
<table><tr><th>score</th><th>severity</th><th>type</th><th>component</th><th>root cause</th>
<th>recommendation</th></tr>{findings}</table>
</body></html>
"""

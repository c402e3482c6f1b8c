"""The questions both front-ends (the command line and the MCP server) answer from the store.

Each takes what a user gives (ids, durations as text), checks it, and returns the JSON-able
payload that `-o json` prints and the MCP tool returns; a mistake is a `UserError` or
`ConfigError` naming the option, the value and the fix.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmperf.core.durations import parse_duration
from swarmperf.core.errors import ConfigError, UserError
from swarmperf.store import Store, database_path, resolve_data_dir
from swarmperf.store.records import RUN_REAL, RUN_SIMULATED, RunRecord

if TYPE_CHECKING:
    from swarmperf.alerting.sla import RuleResult, RuleSet
    from swarmperf.analysis.bottleneck import Finding
    from swarmperf.analysis.report import PerformanceReport
    from swarmperf.monitor.snapshot import SwarmFigures, SystemFigures


def open_store(data_dir: Path | None, *, read_only: bool = True) -> Store:
    """The data directory's store (`data_dir`, else $SWARMPERF_DATA_DIR, else ./.swarmperf)."""
    return Store.open(database_path(resolve_data_dir(data_dir, os.environ)), read_only=read_only)


# How many of a swarm's runs an unknown --run lists: the latest, enough to pick from.
RUNS_LISTED = 20


def find_run(store: Store, swarm_id: str, run: str) -> RunRecord:
    """The swarm's run that `--run` names: `N` (its run N, as "run N of swarm 'prod'" says),
    `sim:N` (its simulated run N) or `id:N` (the store's id, as JSON gives it)."""
    prefix, _, digits = run.strip().rpartition(":")
    if prefix not in ("", "sim", "id") or not (digits.isascii() and digits.isdigit()):
        raise ConfigError(
            "--run",
            run,
            f"Give N for run N of swarm {swarm_id!r}, sim:N for its simulated run N, or "
            "id:N for the store's id N.",
        )
    number = int(digits)
    if number >= 2**63:  # beyond SQLite's integers: no run has it
        found = None
    elif prefix == "id":
        record = store.get_run(number)
        found = record if record is not None and record.swarm_id == swarm_id else None
    else:
        found = store.run_by_number(
            swarm_id, number, kind=RUN_SIMULATED if prefix == "sim" else RUN_REAL
        )
    if found is None:
        raise ConfigError("--run", run, _runs_of(store, swarm_id))
    return found


def _runs_of(store: Store, swarm_id: str) -> str:
    """The swarm's runs as `--run` takes them: "1 (id 3), 2 (id 5), sim:1 (id 4)"."""
    runs = store.list_runs(swarm_id, limit=RUNS_LISTED + 1, kind=None)
    if not runs:
        return (
            f"Swarm {swarm_id!r} has no stored runs in {store.path}. Run it with "
            "`swarmperf run`, or check --swarm-id and --data-dir."
        )
    shown = sorted(runs[:RUNS_LISTED], key=lambda r: (r.simulated, r.id))
    names = ", ".join(
        f"{'sim:' if r.simulated else ''}{r.id if r.number is None else r.number} (id {r.id})"
        for r in shown
    )
    latest = f"latest {RUNS_LISTED} runs" if len(runs) > RUNS_LISTED else "runs"
    return (
        f"That is not a run of swarm {swarm_id!r}, whose {latest} are: {names}. Give one of "
        "these, or leave --run out for its latest run."
    )


def sla_rules(path: Path | None) -> RuleSet:
    """The SLA rules of the alerting file at `path`, or the built-in ones."""
    from swarmperf.alerting.sinks import AlertingFile
    from swarmperf.alerting.sla import default_rules

    if path is None:
        return default_rules()
    if not path.exists():
        raise UserError(f"--sla: {str(path)!r} does not exist. Give the path of an alerting file.")
    return AlertingFile.load(path).rules


def latest_swarm(store: Store, swarm_id: str | None) -> str:
    """The swarm asked for, or else the one that ran or was sampled last."""
    if swarm_id is not None:
        return swarm_id
    latest = store.latest_swarm()
    if latest is None:
        raise UserError(
            f"--swarm-id: none given, and the store at {store.path} holds no swarm yet. Run "
            "one with `swarmperf run` (or check --data-dir), or give --swarm-id ID."
        )
    return latest


COMPONENTS = ("cpu", "memory", "disk", "network", "process", "agents")
FIELDS: dict[str, tuple[str, ...]] = {
    "cpu": ("cpu_percent", "cpu_per_core", "load_avg"),
    "memory": ("memory_percent", "memory_available_bytes", "memory_pressure", "swap_percent"),
    "disk": ("disk_read_bytes_per_s", "disk_write_bytes_per_s"),
    "network": (
        "net_sent_bytes_per_s",
        "net_recv_bytes_per_s",
        "net_errors_per_s",
        "net_drops_per_s",
    ),
    "process": ("process_rss_bytes", "process_threads", "process_fds"),
}


def duration(text: str, option: str, *, positive: bool = True) -> float:
    seconds = parse_duration(text, option)
    if positive and seconds <= 0:
        raise UserError(f"{option}: {text!r} is not valid. Use a duration > 0, e.g. 30s.")
    return seconds


def components(text: str, rest: list[str] | None = None) -> list[str]:
    """The chosen components, from `cpu,memory` or a JSON list `["cpu", "memory"]`.

    An unquoted list in a shell arrives split at its spaces (`["cpu",` `"memory"]` become
    `[cpu,` and `memory]`): those pieces come in `rest` and are joined back."""
    pieces = [text, *(rest or [])]
    if rest and not text.lstrip().startswith("["):
        raise UserError(
            f"{' '.join(rest)!r}: this command takes no arguments. Give --components as a "
            'comma-separated list (cpu,memory) or a JSON list (\'["cpu", "memory"]\').'
        )
    joined = " ".join(pieces).strip()
    if joined.startswith("["):
        try:
            items = json.loads(joined)
        except json.JSONDecodeError:
            # The shell took the quotes away: `[cpu, memory]` is the list all the same.
            items = [part.strip(" \t'\"") for part in joined.strip("[] ").split(",")]
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            items = []
    else:
        items = joined.split(",")
    chosen = [c.strip().lower() for c in items if c.strip()]
    unknown = [c for c in chosen if c not in COMPONENTS]
    if unknown or not chosen:
        raise UserError(
            f"--components: {joined!r} is not valid. Use a comma-separated list "
            f"(cpu,memory) or a JSON list of: {', '.join(COMPONENTS)}."
        )
    return list(dict.fromkeys(chosen))


def no_data(store: Store, swarm_id: str, *, hint_simulated: bool = True) -> UserError:
    known = sorted({run.swarm_id for run in store.list_runs(limit=1000)})
    listed = f" Swarms with data: {', '.join(known)}." if known else ""
    simulated = (
        " It has simulated runs only: add --include-simulated to look at those."
        if hint_simulated and store.latest_run(swarm_id, kind="simulated") is not None
        else ""
    )
    return UserError(
        f"--swarm-id: {swarm_id!r} has no runs or metrics in {store.path}.{simulated} Produce "
        f"data with `swarmperf run --swarm-id {swarm_id}`, or check --data-dir.{listed}"
    )


def run_kind(include_simulated: bool) -> str | None:
    """The kind of runs a reader looks at: real ones, or every kind when asked."""
    return None if include_simulated else "real"


def require_data(store: Store, swarm_id: str, *, include_simulated: bool = False) -> None:
    kind = run_kind(include_simulated)
    if store.latest_run(swarm_id, kind=kind) is None and store.latest_metrics(swarm_id) is None:
        raise no_data(store, swarm_id, hint_simulated=not include_simulated)


def system_part(system: SystemFigures, components: list[str]) -> dict[str, Any]:
    part: dict[str, Any] = {}
    for component in components:
        for name in FIELDS.get(component, ()):
            value = getattr(system, name)
            part[name] = list(value) if isinstance(value, tuple) else value
    return part


def agents_part(figures: SwarmFigures) -> dict[str, Any]:
    return {
        "throughput_per_s": figures.throughput_per_s,
        "error_rate": figures.error_rate,
        "latency_p99_s": figures.latency.p99,
        "queue_depth": figures.queue_depth,
        "agents": {
            a.agent_id: {
                "utilization": a.utilization,
                "completed": a.completed,
                "failed": a.failed,
                "in_flight": a.in_flight,
                "service_p50_s": a.service.p50,
            }
            for a in figures.agents.values()
        },
    }


def samples(
    components: list[str],
    interval: float,
    count: int | None,
    store: Store | None,
    swarm_id: str | None,
    window: float,
) -> Iterator[dict[str, Any]]:
    from swarmperf.analysis.figures import StoreAgentsCollector
    from swarmperf.monitor.collectors import SystemCollector

    system = SystemCollector()
    agents = StoreAgentsCollector(store, swarm_id, window) if store and swarm_id else None
    wants_system = any(c != "agents" for c in components)
    if wants_system:
        system.sample()  # rates need a previous sample: take it now, report from the next
    taken = 0
    while count is None or taken < count:
        time.sleep(interval)
        sample: dict[str, Any] = {"ts": time.time()}
        if wants_system:
            figures = system.sample()
            sample["ts"] = figures.ts
            sample["system"] = system_part(figures, components)
            fields = set(sample["system"])
            reasons = {k: v for k, v in figures.reasons.items() if k in fields}
            if reasons:
                sample["reasons"] = reasons
        if agents is not None:
            try:
                found = agents.sample()
            except ConfigError as exc:
                if exc.field != "run":
                    raise
                # The latest run has no finished task yet: say so, and keep watching it.
                sample["run_id"], sample["swarm"] = exc.value, None
                sample.setdefault("reasons", {})["swarm"] = str(exc)
            else:
                if found is None:
                    sample["swarm"] = None
                else:
                    sample["run_id"], swarm = found
                    sample["swarm"] = agents_part(swarm)
        taken += 1
        yield sample


MONITOR_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("swarm.throughput_per_s", "throughput", "tasks/s"),
    ("swarm.latency.p50", "latency p50", "ms"),
    ("swarm.latency.p99", "latency p99", "ms"),
    ("swarm.error_rate", "error rate", "ratio"),
    ("swarm.availability", "availability", "ratio"),
    ("swarm.queue_depth", "queue depth", "tasks"),
    ("system.cpu_percent", "cpu", "%"),
    ("system.memory_percent", "memory", "%"),
)


def monitor_data(
    store: Store, swarm_id: str, interval: float, *, include_simulated: bool = False
) -> dict[str, Any]:
    """One refresh of the view as data: the latest run, and the latest figures with units
    (from the newest stored snapshot, else from the run's stored results)."""
    from swarmperf.analysis.figures import run_figures

    now = time.time()
    data: dict[str, Any] = {"swarm_id": swarm_id, "at": now, "run": None, "figures": None}
    run = store.latest_run(swarm_id, kind=run_kind(include_simulated))
    if run is not None:
        workload = run.spec.get("workload", {})
        total = workload.get("tasks") if isinstance(workload, dict) else None
        # An aborted run (its process is gone) stopped when it was last seen, not now.
        end = run.last_seen if run.finished_at is not None or run.aborted else now
        data["run"] = {
            "id": run.id,
            "number": run.number,
            "kind": run.kind,
            "label": run.label(),
            "status": run.status,
            "strategy": run.strategy,
            "backend": run.backend,
            "started_at": run.started_at,
            "tasks_stored": store.count_results(run.id),
            "tasks_total": total if isinstance(total, int) else None,
            "elapsed_s": end - run.started_at,
        }
    latest = store.latest_metrics(swarm_id)
    figures: list[dict[str, Any]] = []
    if latest is not None:
        ts, rows = latest
        source = "snapshot"
        for name, label, unit in MONITOR_FIGURES:
            if name in rows:
                figures.append({"name": name, "label": label, "value": rows[name], "unit": unit})
        for name in sorted(n for n in rows if n.startswith("agent.") and n.endswith("utilization")):
            label = f"{name.removeprefix('agent.').removesuffix('.utilization')} utilisation"
            figures.append({"name": name, "label": label, "value": rows[name], "unit": "ratio"})
    elif run is not None:
        ts, source = now, f"the last {interval:g} s of stored results"
        try:
            found = run_figures(store, run.id, window_s=interval)
        except ConfigError as exc:  # a run with nothing finished yet: say so in the view
            data["reason"] = str(exc)
        else:
            ts = found.ts
            values = {
                "swarm.throughput_per_s": found.throughput_per_s,
                "swarm.latency.p50": found.latency.p50,
                "swarm.latency.p99": found.latency.p99,
                "swarm.error_rate": found.error_rate,
                "swarm.queue_depth": found.queue_depth,
            }
            for name, label, unit in MONITOR_FIGURES:
                if name in values:
                    value = values[name]
                    figures.append({"name": name, "label": label, "value": value, "unit": unit})
            for agent in found.agents.values():
                name = f"agent.{agent.agent_id}.utilization"
                label = f"{agent.agent_id} utilisation"
                value = agent.utilization
                figures.append({"name": name, "label": label, "value": value, "unit": "ratio"})
    else:
        return data
    data["figures"] = {"ts": ts, "source": source, "values": figures}
    return data


def swarm_monitor(
    data_dir: Path | None,
    swarm_id: str | None,
    interval: str = "30s",
    *,
    include_simulated: bool = False,
) -> dict[str, Any]:
    """One refresh of `swarm-monitor` from the store: the latest run and latest figures."""
    every = duration(interval, "--interval")
    with open_store(data_dir) as store:
        swarm = latest_swarm(store, swarm_id)
        require_data(store, swarm, include_simulated=include_simulated)
        return monitor_data(store, swarm, every, include_simulated=include_simulated)


# -- performance-report ---------------------------------------------------------------------


def build_performance_report(
    data_dir: Path | None,
    swarm_id: str | None,
    timeframe: str = "24h",
    *,
    cost_model: Path | None = None,
    include_simulated: bool = False,
    now: float | None = None,
    resources: Path | None = None,
) -> PerformanceReport:
    """The performance report of a swarm (default: the most recent) over the `timeframe`
    up to `now`: percentiles, trends, bottlenecks, SLA compliance and cost."""
    from swarmperf.analysis import report as rep

    span = duration(timeframe, "--timeframe")
    model = None
    if cost_model is not None:
        if not cost_model.exists():
            raise UserError(
                f"--cost-model: {str(cost_model)!r} does not exist. Give the path of a "
                "YAML or JSON file with per_agent_hour and/or per_task."
            )
        model = rep.load_cost_model(cost_model)
    spec = None
    if resources is not None:
        from swarmperf.allocation.resources import load_resources

        spec = load_resources(resources)
        # The pools' prices are the cost model, unless --cost-model gives another.
        model = model if model is not None else spec.cost_model()
    with open_store(data_dir) as store:
        swarm = latest_swarm(store, swarm_id)
        require_data(store, swarm, include_simulated=include_simulated)
        until = time.time() if now is None else now
        built = rep.build_report(
            store,
            swarm,
            since=until - span,
            until=until,
            cost_model=model,
            include_simulated=include_simulated,
        )
        if built is not None and spec is not None:
            from swarmperf.allocation.plan import payload, plan
            from swarmperf.queries.allocation import traced_workload

            traced = traced_workload(spec)
            built.allocation = payload(plan(spec, store=store, swarm_id=swarm, traced=traced))
    if built is None:
        raise UserError(
            f"--timeframe: {timeframe!r} holds no runs or metrics of swarm {swarm!r}. "
            f"Widen it, or produce data with `swarmperf run --swarm-id {swarm}`."
        )
    return built


def report_payload(report: PerformanceReport) -> dict[str, Any]:
    """The report as `performance-report -o json` prints it (NaN and infinities as null)."""
    from swarmperf.analysis.report import to_json

    data: dict[str, Any] = json.loads(to_json(report))
    return data


def performance_report(
    data_dir: Path | None,
    swarm_id: str | None,
    timeframe: str = "24h",
    *,
    cost_model: Path | None = None,
    include_simulated: bool = False,
    resources: Path | None = None,
) -> dict[str, Any]:
    """`performance-report -o json`."""
    return report_payload(
        build_performance_report(
            data_dir,
            swarm_id,
            timeframe,
            cost_model=cost_model,
            include_simulated=include_simulated,
            resources=resources,
        )
    )


def report_part(
    data_dir: Path | None,
    swarm_id: str | None,
    part: str,
    timeframe: str = "24h",
    *,
    cost_model: Path | None = None,
    include_simulated: bool = False,
) -> dict[str, Any]:
    """One part of the performance report (`trends`, `cost`, `agents`, ...), with what it
    covers: the same figures `performance-report -o json` holds under that key."""
    report = performance_report(
        data_dir,
        swarm_id,
        timeframe,
        cost_model=cost_model,
        include_simulated=include_simulated,
    )
    covered = ("swarm_id", "since", "until", "source", "runs")
    data = {key: report[key] for key in covered}
    data[part] = report[part]
    reasons = report.get("reasons") or {}
    data["reasons"] = {k: v for k, v in reasons.items() if k == part or k.startswith(part)}
    return data


def agent_metrics(
    data_dir: Path | None,
    swarm_id: str | None,
    agent_id: str,
    timeframe: str = "24h",
    *,
    include_simulated: bool = False,
) -> dict[str, Any]:
    """One agent's figures from the performance report."""
    data = report_part(data_dir, swarm_id, "agents", timeframe, include_simulated=include_simulated)
    agents: dict[str, Any] = data.pop("agents")
    if agent_id not in agents:
        known = ", ".join(sorted(agents)[:20]) or "none"
        raise ConfigError(
            "agent_id",
            agent_id,
            f"Swarm {data['swarm_id']!r} has no such agent in the timeframe; its agents are: "
            f"{known}.",
        )
    data["agent_id"] = agent_id
    data["agent"] = agents[agent_id]
    return data


# -- bottleneck-analyze ---------------------------------------------------------------------


def find_bottlenecks(
    data_dir: Path | None,
    swarm_id: str,
    run: str | None = None,
    timeframe: str = "1h",
    *,
    record: bool = True,
) -> tuple[RunRecord | None, list[Finding]]:
    """What limits the swarm, found over its latest run (or the one `run` names) and the
    `timeframe`: the run looked at and the findings, recorded as decisions if `record`."""
    from swarmperf.analysis.bottleneck import analyze_stored, record_findings

    span = duration(timeframe, "--timeframe")
    with open_store(data_dir, read_only=not record) as store:
        require_data(store, swarm_id)
        # A simulated run is looked at only when named with --run.
        found = find_run(store, swarm_id, run) if run is not None else store.latest_run(swarm_id)
        findings = analyze_stored(store, swarm_id, found, window_s=span, now=time.time())
        if record:
            record_findings(store, swarm_id, findings, None if found is None else found.id)
    return found, findings


def bottleneck_payload(
    swarm_id: str, found: RunRecord | None, findings: list[Finding]
) -> dict[str, Any]:
    """`bottleneck-analyze -o json`."""
    return {
        "swarm_id": swarm_id,
        "run_id": None if found is None else found.id,
        "run_status": None if found is None else found.status,
        "findings": [f.to_dict() for f in findings],
    }


def bottleneck_analyze(
    data_dir: Path | None,
    swarm_id: str,
    run: str | None = None,
    timeframe: str = "1h",
    *,
    record: bool = True,
) -> dict[str, Any]:
    """`bottleneck-analyze -o json`: see `find_bottlenecks`."""
    found, findings = find_bottlenecks(data_dir, swarm_id, run, timeframe, record=record)
    return bottleneck_payload(swarm_id, found, findings)


# -- anomalies, SLA -------------------------------------------------------------------------


def anomaly_events(
    data_dir: Path | None,
    swarm_id: str | None,
    timeframe: str = "24h",
    *,
    include_simulated: bool = False,
) -> dict[str, Any]:
    """The anomalies the detectors flagged in a swarm's runs over the `timeframe`, oldest
    first, as the store recorded them (events of kind `anomaly`)."""
    from swarmperf.core.events import ANOMALY

    span = duration(timeframe, "--timeframe")
    with open_store(data_dir) as store:
        swarm = latest_swarm(store, swarm_id)
        require_data(store, swarm, include_simulated=include_simulated)
        now = time.time()
        events = store.events(
            swarm, kind=ANOMALY, since=now - span, run_kind=run_kind(include_simulated)
        )
    return {
        "swarm_id": swarm,
        "since": now - span,
        "until": now,
        "events": [
            {
                "id": e.id,
                "run_id": e.run_id,
                "ts": e.ts,
                "subject": e.subject,
                "detail": e.detail,
            }
            for e in events
        ],
    }


def judge_sla(
    data_dir: Path | None,
    swarm_id: str,
    sla: Path | None = None,
    window: str | None = None,
) -> tuple[RuleSet, float, list[RuleResult]]:
    """The swarm's latest stored snapshots judged against the SLA rules (the built-in ones,
    or the alerting file `sla`), optionally all over `window`: the rules, the time judged
    (the newest snapshot) and each rule's result."""
    from swarmperf.alerting.sla import evaluate, snapshots_from_rows

    rules = sla_rules(sla)
    if window is not None:
        seconds = parse_duration(window, "--window")
        if seconds <= 0:
            raise UserError(f"--window: {window!r} is not valid. Use a duration > 0.")
        rules = rules.with_window(seconds)
    longest = max(r.window for r in rules.rules)
    with open_store(data_dir) as store:
        # The newest snapshot fixes the evaluation time; read only what the windows need.
        marks = store.metrics(swarm_id, name="swarm.completed")
        since = marks[-1].ts - longest if marks else None
        rows = store.metrics(swarm_id, since=since)
    if not rows:
        raise UserError(
            f"--swarm-id: no snapshots are stored for swarm {swarm_id!r}. Check the id, or run "
            "the swarm with monitoring so that snapshots are recorded."
        )
    snapshots = snapshots_from_rows(rows)
    at = snapshots[-1][0]
    return rules, at, evaluate(rules, snapshots, now=at)


def sla_payload(swarm_id: str, at: float, results: list[RuleResult]) -> dict[str, Any]:
    """`sla-check -o json`."""
    return {
        "swarm_id": swarm_id,
        "at": at,
        "critical": any(r.state == "critical" for r in results),
        "results": [r.to_dict() for r in results],
    }


def sla_check(
    data_dir: Path | None,
    swarm_id: str,
    sla: Path | None = None,
    window: str | None = None,
) -> dict[str, Any]:
    """`sla-check -o json`: see `judge_sla`."""
    _, at, results = judge_sla(data_dir, swarm_id, sla, window)
    return sla_payload(swarm_id, at, results)

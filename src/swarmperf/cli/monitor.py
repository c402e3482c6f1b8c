"""Monitoring commands: collect metrics, watch a swarm live, report on it, find its bottlenecks."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from swarmperf.cli._support import (
    DataDirOption,
    Output,
    OutputOption,
    RunOption,
    SwarmIdFilterOption,
    SwarmIdOption,
    UserError,
    err,
    open_store,
    out,
    user_errors,
)
from swarmperf.core.durations import parse_duration
from swarmperf.core.errors import ConfigError
from swarmperf.core.files import write_atomic

if TYPE_CHECKING:
    from rich.console import RenderableType

    from swarmperf.monitor.snapshot import SwarmFigures, SystemFigures
    from swarmperf.store import Store

COMPONENTS = ("cpu", "memory", "disk", "network", "process", "agents")
_FIELDS: dict[str, tuple[str, ...]] = {
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


class ReportFormat(StrEnum):
    summary = "summary"
    detailed = "detailed"
    json = "json"
    html = "html"


def _duration(text: str, option: str, *, positive: bool = True) -> float:
    seconds = parse_duration(text, option)
    if positive and seconds <= 0:
        raise UserError(f"{option}: {text!r} is not valid. Use a duration > 0, e.g. 30s.")
    return seconds


def _components(text: str) -> list[str]:
    chosen = [c.strip().lower() for c in text.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in COMPONENTS]
    if unknown or not chosen:
        raise UserError(
            f"--components: {text!r} is not valid. Use a comma-separated list of: "
            f"{', '.join(COMPONENTS)}."
        )
    return list(dict.fromkeys(chosen))


def _no_data(store: Store, swarm_id: str) -> UserError:
    known = sorted({run.swarm_id for run in store.list_runs(limit=1000)})
    listed = f" Swarms with data: {', '.join(known)}." if known else ""
    return UserError(
        f"--swarm-id: {swarm_id!r} has no runs or metrics in {store.path}. Produce data with "
        f"`swarmperf run --swarm-id {swarm_id}`, or check --data-dir.{listed}"
    )


def _require_data(store: Store, swarm_id: str) -> None:
    if store.latest_run(swarm_id) is None and store.latest_metrics(swarm_id) is None:
        raise _no_data(store, swarm_id)


def _opened(data_dir: Path | None, *, read_only: bool = True) -> Store:
    store = open_store(data_dir, True, read_only=read_only)
    assert store is not None  # enabled=True always opens one
    return store


# -- metrics-collect ------------------------------------------------------------------------


def _system_part(system: SystemFigures, components: list[str]) -> dict[str, Any]:
    part: dict[str, Any] = {}
    for component in components:
        for name in _FIELDS.get(component, ()):
            value = getattr(system, name)
            part[name] = list(value) if isinstance(value, tuple) else value
    return part


def _agents_part(figures: SwarmFigures) -> dict[str, Any]:
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


def _samples(
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
            sample["system"] = _system_part(figures, components)
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
                    sample["swarm"] = _agents_part(swarm)
        taken += 1
        yield sample


def _sample_table(sample: Mapping[str, Any]) -> Table:
    table = Table(title=f"Sample at {time.strftime('%H:%M:%S', time.localtime(sample['ts']))}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    reasons = sample.get("reasons", {})
    for name, value in sample.get("system", {}).items():
        table.add_row(name, _show(value, reasons.get(name)))
    swarm = sample.get("swarm")
    if swarm is None and "swarm" in reasons:
        table.add_row("swarm", _show(None, reasons["swarm"]))
    if swarm is not None:
        for name in ("throughput_per_s", "error_rate", "latency_p99_s", "queue_depth"):
            table.add_row(f"swarm.{name}", _show(swarm[name]))
        for agent, figures in swarm["agents"].items():
            table.add_row(f"agent.{agent}.utilization", _show(figures["utilization"]))
    return table


def _show(value: Any, reason: str | None = None) -> str:
    if value is None:
        return f"[dim]n/a ({reason})[/dim]" if reason else "[dim]n/a[/dim]"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, float):
        return f"{int(value):,}" if value.is_integer() else f"{value:,.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def metrics_collect(
    components: Annotated[
        str, typer.Option("--components", help=f"Comma-separated: {', '.join(COMPONENTS)}.")
    ] = "cpu,memory,network",
    interval: Annotated[str, typer.Option("--interval", help="Between samples, e.g. 1s.")] = "1s",
    count: Annotated[
        int | None, typer.Option("--count", help="How many samples (default: until Ctrl-C).")
    ] = None,
    swarm_id: SwarmIdFilterOption = None,
    window: Annotated[
        str, typer.Option("--window", help="The span agents' figures cover, e.g. 30s.")
    ] = "30s",
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Sample the machine (and a swarm's agents from the store); a table or JSON lines."""
    with user_errors():
        chosen = _components(components)
        every = _duration(interval, "--interval", positive=False)
        span = _duration(window, "--window")
        if count is not None and count < 1:
            raise UserError(f"--count: {count} is not valid. Use an integer >= 1.")
        if "agents" in chosen and swarm_id is None:
            raise UserError(
                "--swarm-id: none given. The agents component reads a swarm from the store: "
                "add --swarm-id ID, or leave agents out of --components."
            )
        store = _opened(data_dir) if "agents" in chosen else None
        try:
            if store is not None and swarm_id is not None:
                _require_data(store, swarm_id)
            for sample in _samples(chosen, every, count, store, swarm_id, span):
                if output is Output.json:
                    print(json.dumps(sample), flush=True)
                else:
                    out.print(_sample_table(sample))
        finally:
            if store is not None:
                store.close()


# -- swarm-monitor --------------------------------------------------------------------------


def _monitor_view(store: Store, swarm_id: str, interval: float) -> RenderableType:
    from rich.console import Group
    from rich.panel import Panel

    from swarmperf.analysis.figures import run_figures

    parts: list[RenderableType] = []
    run = store.latest_run(swarm_id)
    if run is not None:
        stored = store.count_results(run.id)
        workload = run.spec.get("workload", {})
        total = workload.get("tasks") if isinstance(workload, dict) else None
        # An aborted run (its process is gone) stopped when it was last seen, not now.
        end = run.last_seen if run.finished_at is not None or run.aborted else time.time()
        progress = f"{stored:,} / {total:,} tasks" if isinstance(total, int) else f"{stored:,}"
        status = (
            "[red]aborted[/red] (its process is gone; what it stored is partial)"
            if run.aborted
            else run.status
        )
        parts.append(
            f"[bold]run {run.id}[/bold] {status}, {run.strategy} on {run.backend}: "
            f"{progress} stored, {end - run.started_at:,.1f} s"
        )
    latest = store.latest_metrics(swarm_id)
    table = Table(show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    if latest is not None:
        ts, rows = latest
        table.title = f"Latest snapshot, {time.strftime('%H:%M:%S', time.localtime(ts))}"
        for name in (
            "swarm.throughput_per_s",
            "swarm.latency.p50",
            "swarm.latency.p99",
            "swarm.error_rate",
            "swarm.availability",
            "swarm.queue_depth",
            "system.cpu_percent",
            "system.memory_percent",
        ):
            if name in rows:
                table.add_row(name, _show(rows[name]))
        for name in sorted(n for n in rows if n.startswith("agent.") and n.endswith("utilization")):
            table.add_row(name, _show(rows[name]))
    elif run is not None:
        table.title = f"From stored results, last {interval:g} s of run {run.id}"
        try:
            figures = run_figures(store, run.id, window_s=interval)
        except ConfigError as exc:  # a run with nothing finished yet: say so in the view
            table.add_row("figures", f"[dim]n/a ({exc})[/dim]")
        else:
            table.add_row("throughput", _show(figures.throughput_per_s))
            table.add_row("latency p50 (s)", _show(figures.latency.p50))
            table.add_row("latency p99 (s)", _show(figures.latency.p99))
            table.add_row("error rate", _show(figures.error_rate))
            table.add_row("queue depth", _show(figures.queue_depth))
            for agent in figures.agents.values():
                table.add_row(f"agent.{agent.agent_id}.utilization", _show(agent.utilization))
    parts.append(table)
    return Panel(Group(*parts), title=f"swarm {swarm_id}")


def swarm_monitor(
    swarm_id: SwarmIdOption,
    interval: Annotated[
        str, typer.Option("--interval", help="Between refreshes, e.g. 30s.")
    ] = "30s",
    count: Annotated[
        int | None, typer.Option("--count", help="Refreshes before exiting (default: forever).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """A live view of a swarm, read from the store: its latest snapshot and run progress."""
    from rich.live import Live

    with user_errors():
        every = _duration(interval, "--interval")
        if count is not None and count < 1:
            raise UserError(f"--count: {count} is not valid. Use an integer >= 1.")
        store = _opened(data_dir)
        try:
            _require_data(store, swarm_id)
            shown = 0
            with Live(
                _monitor_view(store, swarm_id, every), console=out, auto_refresh=False
            ) as live:
                shown += 1
                while count is None or shown < count:
                    time.sleep(every)
                    live.update(_monitor_view(store, swarm_id, every), refresh=True)
                    shown += 1
        finally:
            store.close()


# -- performance-report ---------------------------------------------------------------------


def performance_report(
    swarm_id: SwarmIdOption,
    format_: Annotated[
        ReportFormat, typer.Option("--format", help="summary, detailed, json or html.")
    ] = ReportFormat.summary,
    timeframe: Annotated[
        str, typer.Option("--timeframe", help="How far back from now, e.g. 24h.")
    ] = "24h",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the report to this file.")
    ] = None,
    cost_model: Annotated[
        Path | None,
        typer.Option("--cost-model", help="YAML/JSON: per_agent_hour, per_task, currency."),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """A performance report: percentiles, trends, bottlenecks, SLA compliance and cost."""
    from rich.console import Console

    from swarmperf.analysis import report as rep

    with user_errors():
        span = _duration(timeframe, "--timeframe")
        model = None
        if cost_model is not None:
            if not cost_model.exists():
                raise UserError(
                    f"--cost-model: {str(cost_model)!r} does not exist. Give the path of a "
                    "YAML or JSON file with per_agent_hour and/or per_task."
                )
            model = rep.load_cost_model(cost_model)
        store = _opened(data_dir)
        try:
            _require_data(store, swarm_id)
            now = time.time()
            built = rep.build_report(store, swarm_id, since=now - span, until=now, cost_model=model)
        finally:
            store.close()
        if built is None:
            raise UserError(
                f"--timeframe: {timeframe!r} holds no runs or metrics of swarm {swarm_id!r}. "
                f"Widen it, or produce data with `swarmperf run --swarm-id {swarm_id}`."
            )
        if format_ in (ReportFormat.json, ReportFormat.html):
            text = rep.to_json(built) if format_ is ReportFormat.json else rep.to_html(built)
            if out_file is None:
                print(text)
            else:
                _write_report(out_file, text + "\n")
                err.print(f"Wrote {format_.value} report to {out_file}.")
            return
        render = rep.render_summary if format_ is ReportFormat.summary else rep.render_detailed
        if out_file is None:
            render(built, out)
            return
        with tempfile.TemporaryFile("w+", encoding="utf-8") as buffer:
            render(built, Console(file=buffer, width=120, color_system=None))
            buffer.seek(0)
            _write_report(out_file, buffer.read())
        err.print(f"Wrote {format_.value} report to {out_file}.")


def _write_report(path: Path, text: str) -> None:
    """`text` to `path` in full or not at all; a place that cannot be written is a user error."""
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise UserError(
            f"--out: {str(path)!r} cannot be written ({exc.strerror or exc}). "
            "Give a file path in a writable folder."
        ) from exc


# -- bottleneck-analyze ---------------------------------------------------------------------


def bottleneck_analyze(
    swarm_id: SwarmIdOption,
    run: RunOption = None,
    timeframe: Annotated[
        str,
        typer.Option("--timeframe", help="The run's last stretch, and history, e.g. 1h."),
    ] = "1h",
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Store findings as decisions.")
    ] = True,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Find what limits a swarm: resources, queueing, slow or failing agents, correlations."""
    from swarmperf.analysis.bottleneck import analyze_stored, record_findings

    with user_errors():
        span = _duration(timeframe, "--timeframe")
        store = _opened(data_dir, read_only=False)  # records its finding
        try:
            _require_data(store, swarm_id)
            record_ = store.get_run(run) if run is not None else store.latest_run(swarm_id)
            if run is not None and (record_ is None or record_.swarm_id != swarm_id):
                raise UserError(
                    f"--run: {run} is not a run of swarm {swarm_id!r}. Leave --run out for the "
                    "latest run, or give the id `swarmperf run` printed."
                )
            findings = analyze_stored(store, swarm_id, record_, window_s=span, now=time.time())
            if record:
                record_findings(store, swarm_id, findings, None if record_ is None else record_.id)
        finally:
            store.close()
    if output is Output.json:
        print(
            json.dumps(
                {
                    "swarm_id": swarm_id,
                    "run_id": None if record_ is None else record_.id,
                    "run_status": None if record_ is None else record_.status,
                    "findings": [f.to_dict() for f in findings],
                }
            )
        )
        return
    from swarmperf.analysis.report import render_findings

    out.print(f"[bold]Bottlenecks of swarm {swarm_id!r}[/bold]", highlight=False)
    if record_ is not None and record_.aborted:
        out.print(
            f"[yellow]partial data:[/yellow] run {record_.id} was aborted (its process is "
            "gone before it recorded its end): the figures cover only what it stored.",
            highlight=False,
        )
    render_findings(findings, out)


# -- metrics-retention ----------------------------------------------------------------------


def metrics_retention(
    raw_for: Annotated[
        str, typer.Option("--raw-for", help="Keep snapshots as they are for this long, e.g. 1h.")
    ] = "1h",
    bucket: Annotated[
        str, typer.Option("--bucket", help="Fold older ones into buckets this wide, e.g. 1m.")
    ] = "1m",
    keep_for: Annotated[
        str | None,
        typer.Option("--keep-for", help="Delete rows older than this, e.g. 168h (none: keep)."),
    ] = None,
    swarm_id: SwarmIdFilterOption = None,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Downsample old metric snapshots (mean, max, count per bucket) and delete the oldest."""
    from swarmperf.analysis.history import RetentionPolicy, apply_policy

    with user_errors():
        policy = RetentionPolicy(
            raw_for_s=_duration(raw_for, "--raw-for", positive=False),
            bucket_s=_duration(bucket, "--bucket"),
            keep_for_s=None if keep_for is None else _duration(keep_for, "--keep-for"),
        )
        store = _opened(data_dir, read_only=False)
        try:
            outcome = apply_policy(store, policy, time.time(), swarm_id)
            left = store.count_metrics(swarm_id)
        finally:
            store.close()
    figures = {
        "deleted": outcome.deleted,
        "downsampled": outcome.replaced,
        "written": outcome.written,
        "rows_left": left,
    }
    if output is Output.json:
        print(json.dumps(figures))
        return
    out.print(
        f"Deleted {outcome.deleted:,} rows, folded {outcome.replaced:,} into "
        f"{outcome.written:,} bucket rows; {left:,} metric rows remain."
    )


def register(app: typer.Typer) -> None:
    app.command("metrics-collect")(metrics_collect)
    app.command("swarm-monitor")(swarm_monitor)
    app.command("performance-report")(performance_report)
    app.command("bottleneck-analyze")(bottleneck_analyze)
    app.command("metrics-retention")(metrics_retention)

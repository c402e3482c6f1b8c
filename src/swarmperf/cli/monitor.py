"""Monitoring commands: collect metrics, watch a swarm live, report on it, find its bottlenecks."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from swarmperf.cli._support import (
    DataDirOption,
    IncludeSimulatedOption,
    LatestSwarmIdOption,
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
from swarmperf.core.durations import format_timestamp, plural
from swarmperf.core.errors import ConfigError
from swarmperf.core.files import write_atomic
from swarmperf.queries.stored import COMPONENTS, latest_swarm
from swarmperf.queries.stored import components as _components
from swarmperf.queries.stored import duration as _duration
from swarmperf.queries.stored import monitor_data as _monitor_data
from swarmperf.queries.stored import no_data as _no_data
from swarmperf.queries.stored import require_data as _require_data
from swarmperf.queries.stored import samples as _samples

if TYPE_CHECKING:
    from rich.console import RenderableType

    from swarmperf.client import SyncSwarmClient
    from swarmperf.store import Store


class ReportFormat(StrEnum):
    summary = "summary"
    detailed = "detailed"
    json = "json"
    html = "html"


def _swarm_or_latest(store: Store, swarm_id: str | None) -> str:
    """The swarm asked for, or else the one that ran or was sampled last (saying so)."""
    chosen = latest_swarm(store, swarm_id)
    if swarm_id is None:
        err.print(
            f"Using swarm {chosen!r}, the most recent in {store.path} (choose with --swarm-id).",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    return chosen


def _opened(data_dir: Path | None, *, read_only: bool = True) -> Store:
    store = open_store(data_dir, True, read_only=read_only)
    assert store is not None  # enabled=True always opens one
    return store


# -- metrics-collect ------------------------------------------------------------------------


def _sample_table(sample: Mapping[str, Any]) -> Table:
    table = Table(title=f"Sample at {format_timestamp(sample['ts'])}")
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
        str,
        typer.Option(
            "--components",
            help=f"Comma-separated, or a JSON list: {', '.join(COMPONENTS)}.",
        ),
    ] = "cpu,memory,network",
    rest: Annotated[
        list[str] | None,
        # The rest of a JSON list the shell split at its spaces; never given on purpose.
        typer.Argument(hidden=True, show_default=False),
    ] = None,
    interval: Annotated[str, typer.Option("--interval", help="Between samples, e.g. 1s.")] = "1s",
    count: Annotated[
        int | None, typer.Option("--count", help="How many samples (default: until Ctrl-C).")
    ] = None,
    swarm_id: LatestSwarmIdOption = None,
    window: Annotated[
        str, typer.Option("--window", help="The span agents' figures cover, e.g. 30s.")
    ] = "30s",
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Sample the machine (and a swarm's agents from the store); a table or JSON lines."""
    with user_errors():
        chosen = _components(components, rest)
        every = _duration(interval, "--interval")
        span = _duration(window, "--window")
        if count is not None and count < 1:
            raise UserError(f"--count: {count} is not valid. Use an integer >= 1.")
        store = _opened(data_dir) if "agents" in chosen else None
        try:
            if store is not None:
                # The agents component reads a swarm from the store: the one named, else
                # the most recent there.
                swarm_id = _swarm_or_latest(store, swarm_id)
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


# The figures the view shows, in order: (stored name, label, unit). A ratio is shown as a
# percentage; a latency, stored in seconds, in milliseconds.
def _with_unit(value: float | None, unit: str) -> str:
    """A figure with its unit: `12.5 tasks/s`, `3.20 ms`, `0.5%`."""
    if value is None:
        return "[dim]n/a[/dim]"
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "ms":
        return f"{value * 1e3:,.2f} ms"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "tasks":
        return f"{value:,.0f} tasks"
    return f"{value:,.1f} {unit}"


def _monitor_view(data: Mapping[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.panel import Panel

    parts: list[RenderableType] = []
    run = data["run"]
    if run is not None:
        total = run["tasks_total"]
        stored = run["tasks_stored"]
        progress = f"{stored:,} / {total:,} tasks" if total is not None else f"{stored:,} tasks"
        status = (
            "[red]aborted[/red] (its process is gone; what it stored is partial)"
            if run["status"] == "aborted"
            else run["status"]
        )
        clock = "virtual time" if run["kind"] == "simulated" else "elapsed"
        parts.append(
            f"[bold]{escape(run['label'])}[/bold] {status}, {run['strategy']} on "
            f"{run['backend']}: {progress} stored, {clock} {run['elapsed_s']:,.1f} s; "
            f"started {format_timestamp(run['started_at'], data['at'])}"
        )
    table = Table(show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("stored as", style="dim")
    shown = data["figures"]
    if shown is not None:
        when = format_timestamp(shown["ts"], data["at"])
        table.title = (
            f"Latest snapshot, {when}"
            if shown["source"] == "snapshot"
            else f"From {shown['source']}, {when}"
        )
        for figure in shown["values"]:
            table.add_row(
                figure["label"], _with_unit(figure["value"], figure["unit"]), figure["name"]
            )
    if "reason" in data:
        table.add_row("figures", f"[dim]n/a ({escape(data['reason'])})[/dim]", "")
    parts.append(table)
    return Panel(Group(*parts), title=f"swarm {data['swarm_id']}")


def swarm_monitor(
    swarm_id: LatestSwarmIdOption = None,
    interval: Annotated[
        str, typer.Option("--interval", help="Between refreshes, e.g. 30s.")
    ] = "30s",
    count: Annotated[
        int | None, typer.Option("--count", help="Refreshes before exiting (default: forever).")
    ] = None,
    include_simulated: IncludeSimulatedOption = False,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """A live view of a swarm: from its service while it is served, else from the store.

    Attached to a swarm started with swarmperf serve, it shows the service's status;
    otherwise the store's latest snapshot and run progress (saying so when --swarm-id names
    a swarm that is not served). With -o json, one JSON object per refresh, a line each."""
    with user_errors():
        every = _duration(interval, "--interval")
        if count is not None and count < 1:
            raise UserError(f"--count: {count} is not valid. Use an integer >= 1.")
    not_running: ConfigError | None = None
    if swarm_id is not None:
        from swarmperf.queries.live import running_client

        client, not_running = running_client(swarm_id, data_dir)
        if client is not None:
            _attached(client, every, count, output)
            return
    with user_errors():
        store = _opened(data_dir)
        try:
            swarm_id = _swarm_or_latest(store, swarm_id)
            try:
                _require_data(store, swarm_id, include_simulated=include_simulated)
            except UserError as exc:
                if not_running is None:
                    raise
                # Neither live nor stored: what runs, how to start one, and the store's hint.
                raise UserError(f"{not_running} {str(exc).partition(': ')[2]}") from exc
            if not_running is not None:
                err.print(
                    f"swarm {swarm_id!r} is not running; showing the store's latest data.",
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )

            def refresh() -> dict[str, Any]:
                assert swarm_id is not None
                return _monitor_data(store, swarm_id, every, include_simulated=include_simulated)

            _refreshing(refresh, every, count, output)
        finally:
            store.close()


def _refreshing(
    refresh: Callable[[], dict[str, Any]], every: float, count: int | None, output: Output
) -> None:
    """Show `refresh()` every `every` seconds, `count` times (None: until stopped)."""
    from rich.live import Live

    shown = 0
    if output is Output.json:
        while count is None or shown < count:
            if shown:
                time.sleep(every)
            print(json.dumps(refresh()), flush=True)
            shown += 1
        return
    with Live(_monitor_view(refresh()), console=out, auto_refresh=False) as live:
        shown += 1
        while count is None or shown < count:
            time.sleep(every)
            live.update(_monitor_view(refresh()), refresh=True)
            shown += 1


def _attached(client: SyncSwarmClient, every: float, count: int | None, output: Output) -> None:
    """`swarm-monitor` on a running swarm: its service's status every `every` seconds. When
    the service stops meanwhile, the view ends saying so (its run is in the store)."""
    from swarmperf.cli.live import live_errors
    from swarmperf.core.errors import ServiceUnavailable
    from swarmperf.queries.live import monitor_data

    def refresh() -> dict[str, Any]:
        return monitor_data(client.status(), time.time())

    with live_errors(), client:
        try:
            _refreshing(refresh, every, count, output)
        except ServiceUnavailable:
            swarm = client.swarm_id
            err.print(
                f"swarm {swarm!r} stopped serving; its run is in the store (swarmperf "
                f"swarm-monitor --swarm-id {swarm} shows it).",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )


# -- performance-report ---------------------------------------------------------------------


def performance_report(
    swarm_id: LatestSwarmIdOption = None,
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
    include_simulated: IncludeSimulatedOption = False,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
    resources: Annotated[
        Path | None,
        typer.Option(
            "--resources",
            help="A resources file: prices the agents by pool and adds the allocator's "
            "recommendation (see resource-alloc).",
        ),
    ] = None,
) -> None:
    """A performance report: percentiles, trends, bottlenecks, SLA compliance and cost.

    -o json is --format json."""
    from rich.console import Console

    from swarmperf.analysis import report as rep
    from swarmperf.queries.stored import build_performance_report

    with user_errors():
        _duration(timeframe, "--timeframe")
        if output is Output.json:
            if format_ not in (ReportFormat.summary, ReportFormat.json):
                raise UserError(
                    f"-o/--output: json gives the report as JSON, which --format "
                    f"{format_.value} contradicts. Give one of them."
                )
            format_ = ReportFormat.json
        if swarm_id is None:
            store = _opened(data_dir)
            try:
                swarm_id = _swarm_or_latest(store, swarm_id)
            finally:
                store.close()
        built = build_performance_report(
            data_dir,
            swarm_id,
            timeframe,
            cost_model=cost_model,
            include_simulated=include_simulated,
            resources=resources,
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
    from swarmperf.queries.stored import bottleneck_payload, find_bottlenecks

    with user_errors():
        record_, findings = find_bottlenecks(data_dir, swarm_id, run, timeframe, record=record)
    if output is Output.json:
        print(json.dumps(bottleneck_payload(swarm_id, record_, findings)))
        return
    from swarmperf.analysis.report import render_findings

    out.print(f"[bold]Bottlenecks of swarm {swarm_id!r}[/bold]", highlight=False)
    if record_ is not None and record_.aborted:
        out.print(
            f"[yellow]partial data:[/yellow] {record_.label()} was aborted (its process is "
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
            if swarm_id is not None and (
                store.latest_run(swarm_id, kind=None) is None
                and store.latest_metrics(swarm_id) is None
            ):
                # A typo would otherwise read as "nothing to do" and exit 0.
                raise _no_data(store, swarm_id, hint_simulated=False)
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
    # Each bucket is stored as three rows (mean, max, count): count buckets, not rows, so
    # that downsampling never reads as if it added data.
    buckets = outcome.written // 3
    folded = (
        f"downsampled {plural(outcome.replaced, 'old row')} into "
        f"{plural(buckets, 'bucket')} (mean, max and count each)"
        if outcome.replaced
        else "nothing to downsample"
    )
    out.print(
        f"Deleted {plural(outcome.deleted, 'expired row')}; {folded}; "
        f"{plural(left, 'metric row')} remain{'s' if left == 1 else ''}."
    )


def register(app: typer.Typer) -> None:
    app.command("metrics-collect")(metrics_collect)
    app.command("swarm-monitor")(swarm_monitor)
    app.command("performance-report")(performance_report)
    app.command("bottleneck-analyze")(bottleneck_analyze)
    app.command("metrics-retention")(metrics_retention)

"""Monitoring commands: collect metrics, watch a swarm live, report on it, find its bottlenecks."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
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
    find_run,
    open_store,
    out,
    user_errors,
)
from swarmperf.core.durations import format_timestamp, parse_duration, plural
from swarmperf.core.errors import ConfigError
from swarmperf.core.files import write_atomic

if TYPE_CHECKING:
    from rich.console import RenderableType

    from swarmperf.client import SyncSwarmClient
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


def _components(text: str, rest: list[str] | None = None) -> list[str]:
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


def _no_data(store: Store, swarm_id: str, *, hint_simulated: bool = True) -> UserError:
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


def _run_kind(include_simulated: bool) -> str | None:
    """The kind of runs a reader looks at: real ones, or every kind when asked."""
    return None if include_simulated else "real"


def _require_data(store: Store, swarm_id: str, *, include_simulated: bool = False) -> None:
    kind = _run_kind(include_simulated)
    if store.latest_run(swarm_id, kind=kind) is None and store.latest_metrics(swarm_id) is None:
        raise _no_data(store, swarm_id, hint_simulated=not include_simulated)


def _swarm_or_latest(store: Store, swarm_id: str | None) -> str:
    """The swarm asked for, or else the one that ran or was sampled last (saying so)."""
    if swarm_id is not None:
        return swarm_id
    latest = store.latest_swarm()
    if latest is None:
        raise UserError(
            f"--swarm-id: none given, and the store at {store.path} holds no swarm yet. Run "
            "one with `swarmperf run` (or check --data-dir), or give --swarm-id ID."
        )
    err.print(
        f"Using swarm {latest!r}, the most recent in {store.path} (choose with --swarm-id).",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return latest


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
_MONITOR_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("swarm.throughput_per_s", "throughput", "tasks/s"),
    ("swarm.latency.p50", "latency p50", "ms"),
    ("swarm.latency.p99", "latency p99", "ms"),
    ("swarm.error_rate", "error rate", "ratio"),
    ("swarm.availability", "availability", "ratio"),
    ("swarm.queue_depth", "queue depth", "tasks"),
    ("system.cpu_percent", "cpu", "%"),
    ("system.memory_percent", "memory", "%"),
)


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


def _monitor_data(
    store: Store, swarm_id: str, interval: float, *, include_simulated: bool = False
) -> dict[str, Any]:
    """One refresh of the view as data: the latest run, and the latest figures with units
    (from the newest stored snapshot, else from the run's stored results)."""
    from swarmperf.analysis.figures import run_figures

    now = time.time()
    data: dict[str, Any] = {"swarm_id": swarm_id, "at": now, "run": None, "figures": None}
    run = store.latest_run(swarm_id, kind=_run_kind(include_simulated))
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
        for name, label, unit in _MONITOR_FIGURES:
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
            for name, label, unit in _MONITOR_FIGURES:
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
        from swarmperf.cli.live import running_client

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
    from swarmperf.cli.live import live_errors, monitor_data
    from swarmperf.core.errors import ServiceUnavailable

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
) -> None:
    """A performance report: percentiles, trends, bottlenecks, SLA compliance and cost.

    -o json is --format json."""
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
        if output is Output.json:
            if format_ not in (ReportFormat.summary, ReportFormat.json):
                raise UserError(
                    f"-o/--output: json gives the report as JSON, which --format "
                    f"{format_.value} contradicts. Give one of them."
                )
            format_ = ReportFormat.json
        store = _opened(data_dir)
        try:
            swarm_id = _swarm_or_latest(store, swarm_id)
            _require_data(store, swarm_id, include_simulated=include_simulated)
            now = time.time()
            built = rep.build_report(
                store,
                swarm_id,
                since=now - span,
                until=now,
                cost_model=model,
                include_simulated=include_simulated,
            )
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
            # A simulated run is looked at only when named with --run.
            record_ = (
                find_run(store, swarm_id, run) if run is not None else store.latest_run(swarm_id)
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

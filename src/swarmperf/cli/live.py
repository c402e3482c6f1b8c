"""Commands on a live swarm (`swarmperf serve`): status, a strategy switch, scaling, stopping."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from swarmperf.cli._support import (
    DataDirOption,
    Output,
    OutputOption,
    SwarmIdOption,
    err,
    fail,
    out,
    output_mode,
)
from swarmperf.core.durations import format_duration, parse_duration, plural
from swarmperf.core.errors import ServiceError, SwarmError
from swarmperf.queries import live as queries
from swarmperf.queries.live import (
    DEFAULT_OBSERVE,
    SERVICE_OBSERVE_S,
    connect,
    data_dir_of,
)
from swarmperf.queries.live import figure as _figure

if TYPE_CHECKING:
    pass

# How long `stop` waits for the process to end beyond its drain deadline (the service's
# own drain time when none is given).
STOP_WAIT_S = 60.0
STOP_POLL_S = 0.1
# Above this many agents the status shows them by group with the extremes, as run reports do.
AGENT_ROWS_SHOWN = 20
EXTREME_AGENTS_SHOWN = 3
NAMES_SHOWN = 8

ObserveOption = Annotated[
    str | None,
    typer.Option(
        "--observe",
        help="How long to watch the swarm after the change before reporting the figures "
        f"after, e.g. 30s (default {DEFAULT_OBSERVE}; 0: return at once, the service records "
        "them).",
    ),
]


# -- errors ---------------------------------------------------------------------------------


@contextmanager
def live_errors() -> Iterator[None]:
    """A mistake (no such swarm, a bad value) is one line and exit 2; a service that fails or
    cannot be reached is one line and exit 1. Never a traceback."""
    try:
        yield
    except ServiceError as exc:
        _service_failed(exc)
    except (SwarmError, ValueError) as exc:
        fail(exc)


def _service_failed(exc: ServiceError) -> None:
    failed(str(exc))


def failed(message: str) -> None:
    """Report that the service failed us (not the user's mistake): one line, exit 1."""
    if output_mode.get() is Output.json:
        print(
            json.dumps({"error": {"field": None, "value": None, "fix": None, "message": message}})
        )
    err.print(
        f"[bold red]error:[/bold red] {escape(message)}",
        highlight=False,
        markup=True,
        soft_wrap=True,
    )
    raise typer.Exit(code=1)


# -- figures --------------------------------------------------------------------------------

# The figures a decision and a status show, in order: (key, label, unit).
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("throughput_per_s", "throughput", "tasks/s"),
    ("latency_p50_s", "latency p50", "s"),
    ("latency_p95_s", "latency p95", "s"),
    ("latency_p99_s", "latency p99", "s"),
    ("error_rate", "error rate", "ratio"),
    ("queue_depth", "queue depth", "tasks"),
    ("agents", "agents", "count"),
    ("window_s", "window", "window"),
)


def shown(value: Any, unit: str) -> str:
    if value is None:
        return "[dim]n/a[/dim]"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return escape(str(value))
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "s":
        return f"{value * 1e3:,.1f} ms" if value < 1 else f"{value:,.2f} s"
    if unit == "window":
        return f"{value:,.1f} s"
    if unit == "tasks/s":
        return f"{value:,.1f} tasks/s"
    return f"{value:,.0f}"


def _reason(figures: Mapping[str, Any] | None, key: str) -> str:
    if figures is None:
        return "not measured"
    reasons = figures.get("reasons") or {}
    for name in (key, key.removesuffix("_s"), key.removesuffix("_per_s")):
        if name in reasons:
            return str(reasons[name])
    if key.startswith("latency_") and "latency" in reasons:
        return str(reasons["latency"])
    return "not measured"


class Missing:
    """Why figures are n/a, said once under the table for all the figures it covers."""

    def __init__(self) -> None:
        self._labels: dict[str, list[str]] = {}

    def add(self, figures: Mapping[str, Any] | None, key: str, label: str) -> None:
        if _figure(figures, key) is None:
            labels = self._labels.setdefault(_reason(figures, key), [])
            if label not in labels:
                labels.append(label)

    def lines(self) -> list[str]:
        return [f"n/a: {', '.join(labels)}: {why}." for why, labels in self._labels.items()]


def print_missing(missing: Missing) -> None:
    for line in missing.lines():
        out.print(f"[dim]{escape(line)}[/dim]", highlight=False)


def figures_table(
    title: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None = None
) -> tuple[Table, Missing]:
    """The figures before a change and, when measured, after it; and why any is n/a."""
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("before", justify="right")
    with_after = after is not None
    if with_after:
        table.add_column("after", justify="right")
    missing = Missing()
    for key, label, unit in FIGURES:
        row = [label, shown(_figure(before, key), unit)]
        missing.add(before, key, label)
        if with_after:
            row.append(shown(_figure(after, key), unit))
            missing.add(after, key, label)
        table.add_row(*row)
    return table, missing


# -- swarm-status ---------------------------------------------------------------------------


def _uptime(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        return "not started"
    return format_duration(round(seconds))


def _status_lines(status: Mapping[str, Any]) -> list[str]:
    queue = status.get("queue") or {}
    levels = queue.get("by_priority") or {}
    by_level = ", ".join(f"{name} {count:,}" for name, count in levels.items())
    return [
        f"[bold]Swarm {escape(repr(status.get('swarm_id')))}[/bold]: "
        f"{escape(str(status.get('state')))}, {escape(str(status.get('strategy')))} on "
        f"{escape(str(status.get('backend')))}, up {_uptime(status.get('uptime_s'))}"
        + (f" (run id {status['run_id']})" if status.get("run_id") is not None else ""),
        f"Tasks: {status.get('accepted', 0):,} accepted, {status.get('finished', 0):,} "
        f"finished, {status.get('pending', 0):,} pending"
        + (
            f" ({status['recovered']:,} recovered after a restart)"
            if status.get("recovered")
            else ""
        ),
        f"Queue: {plural(int(queue.get('depth') or 0), 'task')} waiting"
        + (f" ({by_level})" if by_level else ""),
        *_autoscale_line(status.get("autoscale")),
    ]


def _autoscale_line(autoscale: Any) -> list[str]:
    """The autoscaler, on or off (nothing from a service that has none)."""
    if not isinstance(autoscale, Mapping):
        return []
    if not autoscale.get("on"):
        return ["Autoscaler: off (swarm-scale --target-size auto turns it on)"]
    bounds = f"{autoscale.get('min_agents')} to {autoscale.get('max_agents')} agents"
    return [
        f"Autoscaler: on, {escape(str(autoscale.get('policy')))} ({bounds}), "
        f"{plural(int(autoscale.get('decisions') or 0), 'decision')}"
    ]


def _figures_now(figures: Mapping[str, Any]) -> tuple[Table, Missing]:
    window = figures.get("window_s")
    span = f" (last {window:.0f} s)" if isinstance(window, int | float) else ""
    table = Table(title=f"Figures now{span}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    missing = Missing()
    for key, label, unit in FIGURES:
        if key in ("window_s", "agents"):
            continue
        table.add_row(label, shown(_figure(figures, key), unit))
        missing.add(figures, key, label)
    return table, missing


def _agent_state(agent: Mapping[str, Any]) -> str:
    if not agent.get("alive", True):
        return "[red]down[/red]"
    return "paused" if agent.get("paused") else "ok"


def _utilisation(agent: Mapping[str, Any]) -> str:
    value = agent.get("utilization")
    return "[dim]n/a[/dim]" if value is None else f"{value:.0%}"


def _agents_table(agents: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=f"Agents ({len(agents)})")
    for name in ("agent", "weight", "conc", "in flight", "done", "failed", "util", "state"):
        table.add_column(name, justify="left" if name in ("agent", "state") else "right")
    for agent in agents:
        table.add_row(
            escape(str(agent.get("id"))),
            f"{agent.get('weight', 0):g}",
            f"{agent.get('concurrency', 0):,}",
            f"{agent.get('in_flight', 0):,}",
            f"{agent.get('completed', 0):,}",
            f"{agent.get('failed', 0):,}",
            _utilisation(agent),
            _agent_state(agent),
        )
    return table


def _agent_groups(agents: Sequence[Mapping[str, Any]]) -> Table:
    from swarmperf.runtime.report import agent_group

    groups: dict[str, list[Mapping[str, Any]]] = {}
    for agent in agents:
        groups.setdefault(agent_group(str(agent.get("id"))), []).append(agent)
    table = Table(title=f"Agents by group ({len(agents):,})")
    for name in ("group", "agents", "in flight", "done", "failed", "util (min-max)", "down"):
        table.add_column(name, justify="left" if name == "group" else "right")
    for group, rows in groups.items():
        used = [float(a["utilization"]) for a in rows if a.get("utilization") is not None]
        spread = "[dim]n/a[/dim]"
        if used:
            spread = f"{math.fsum(used) / len(used):.0%} ({min(used):.0%}-{max(used):.0%})"
        table.add_row(
            escape(group),
            f"{len(rows):,}",
            f"{sum(int(a.get('in_flight', 0)) for a in rows):,}",
            f"{sum(int(a.get('completed', 0)) for a in rows):,}",
            f"{sum(int(a.get('failed', 0)) for a in rows):,}",
            spread,
            f"{sum(not a.get('alive', True) for a in rows):,}",
        )
    return table


def _extremes(agents: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    ranked = sorted(
        agents,
        key=lambda a: (
            -1.0 if a.get("utilization") is None else float(a["utilization"]),
            str(a.get("id")),
        ),
    )
    busiest = list(reversed(ranked[-EXTREME_AGENTS_SHOWN:]))
    idlest = [a for a in ranked[:EXTREME_AGENTS_SHOWN] if a not in busiest]
    return busiest + idlest


def render_status(status: Mapping[str, Any], per_agent: bool | None = None) -> None:
    for line in _status_lines(status):
        out.print(line, highlight=False)
    figures = status.get("figures")
    if isinstance(figures, Mapping):
        table, missing = _figures_now(figures)
        out.print(table)
        print_missing(missing)
    agents = list(status.get("agents") or [])
    if per_agent is None:
        per_agent = len(agents) <= AGENT_ROWS_SHOWN
    if per_agent:
        out.print(_agents_table(agents))
        return
    out.print(_agent_groups(agents))
    extremes = _agents_table(_extremes(agents))
    extremes.title = (
        f"The {EXTREME_AGENTS_SHOWN} busiest and {EXTREME_AGENTS_SHOWN} least busy agents"
    )
    out.print(extremes)
    out.print(
        f"[dim]{len(agents):,} agents, summarised by group; --per-agent shows every one.[/dim]"
    )


def swarm_status(
    swarm_id: SwarmIdOption,
    per_agent: Annotated[
        bool,
        typer.Option(
            "--per-agent",
            help=f"One row per agent (default above {AGENT_ROWS_SHOWN} agents: by group, "
            "with the extremes).",
        ),
    ] = False,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """A live swarm now: state, strategy, tasks, queue, figures and agents."""
    with live_errors():
        status = queries.swarm_status(swarm_id, data_dir)
    if output is Output.json:
        print(json.dumps(status))
        return
    render_status(status, per_agent or None)


# -- decisions: load-balance --swarm-id, swarm-scale ----------------------------------------


def _after_note(observe: float, decision_id: int, reason: str | None) -> str | None:
    if observe <= 0:
        return (
            f"The service records the figures after in {format_duration(SERVICE_OBSERVE_S)} "
            f"(decision {decision_id})."
        )
    if reason is not None:
        return f"Figures after: {reason}."
    return None


def switch_strategy(
    swarm_id: str,
    strategy: str,
    observe_text: str | None,
    output: Output,
    data_dir: Path | None,
) -> None:
    """`load-balance --swarm-id`: switch a live swarm's strategy and show the figures
    before and after."""
    with live_errors():
        data = queries.switch_strategy(
            swarm_id, strategy, observe_text, data_dir, on_watch=_watching
        )
    observe = data["observe_s"]
    decision_id = data["decision_id"]
    if output is Output.json:
        print(json.dumps(data))
        return
    previous, new = data["previous"], data["strategy"]
    same = " (it was running it already)" if previous == new else ""
    out.print(
        f"Swarm {escape(repr(swarm_id))}: strategy {escape(str(previous))} -> "
        f"[bold]{escape(str(new))}[/bold]{same}; decision {decision_id}.",
        highlight=False,
    )
    _decision_figures(data, observe, decision_id)


def _watching(observe: float) -> None:
    err.print(
        f"Watching the swarm for {format_duration(observe)} ...",
        highlight=False,
        markup=False,
    )


def _decision_figures(data: Mapping[str, Any], observe: float, decision_id: int) -> None:
    before, after = data["figures_before"], data["figures_after"]
    title = (
        f"Figures before, and over the {format_duration(observe)} after"
        if after is not None
        else "Figures before the change"
    )
    table, missing = figures_table(title, before, after)
    out.print(table)
    print_missing(missing)
    note = _after_note(observe, decision_id, data["after_reason"])
    if note is not None:
        out.print(f"[dim]{escape(note)}[/dim]")


def _names(ids: Sequence[str]) -> str:
    if not ids:
        return "none"
    listed = ", ".join(ids[:NAMES_SHOWN])
    more = len(ids) - NAMES_SHOWN
    return listed + (f" and {more:,} more" if more > 0 else "")


def swarm_scale(
    swarm_id: SwarmIdOption,
    target_size: Annotated[
        str,
        typer.Option(
            "--target-size",
            help="How many agents the swarm should run, e.g. 12; auto: let the autoscaler "
            "decide (a number turns it off again).",
        ),
    ],
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="With auto: hpa, keda, predictive, rl or static-peak (default: the spec's "
            "autoscale.policy, else predictive).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Say what would be done (for auto: the policy's recommendation now, with "
            "its inputs) and change nothing.",
        ),
    ] = False,
    observe_text: ObserveOption = None,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Add or remove agents of a live swarm, or let its autoscaler decide (auto)."""
    with live_errors():
        data = queries.swarm_scale(
            swarm_id,
            target_size,
            observe_text,
            data_dir,
            on_watch=_watching,
            policy=policy,
            dry_run=dry_run,
        )
    if output is Output.json:
        print(json.dumps(data))
        return
    name = escape(repr(swarm_id))
    if "target_size" in data:  # auto, or a dry run
        _render_auto_or_plan(name, data)
        return
    observe = data["observe_s"]
    decision_id = data["decision_id"]
    out.print(
        f"Swarm {name}: {data['before']} -> [bold]{data['after']}[/bold] "
        f"agents; decision {decision_id}.",
        highlight=False,
    )
    out.print(f"  added   {escape(_names(data['added']))}", highlight=False)
    out.print(f"  removed {escape(_names(data['removed']))}", highlight=False)
    if data.get("autoscale_turned_off"):
        out.print(
            "  Autoscaling is off now: a size set by hand ends it (--target-size auto turns "
            "it on again).",
            highlight=False,
        )
    _decision_figures(data, observe, decision_id)


def _render_auto_or_plan(name: str, data: Mapping[str, Any]) -> None:
    """A dry run, or the autoscaler turned on."""
    if data["target_size"] != "auto":
        out.print(
            f"Swarm {name}: dry run, nothing changed. {data['before']} -> {data['after']} "
            f"agents would add {data['adds']} and remove {escape(_names(data['removed']))}.",
            highlight=False,
        )
        return
    status = data["autoscale"]
    if data.get("dry_run"):
        rec = data["recommendation"]
        limited = f", limited by {rec['limited_by']}" if rec.get("limited_by") else ""
        out.print(
            f"Swarm {name}: dry run, nothing changed. {escape(str(rec['policy']))} would run "
            f"[bold]{rec['desired']}[/bold] agent{'' if rec['desired'] == 1 else 's'} "
            f"(now {rec['current']}; raw "
            f"{rec['raw']}{escape(limited)}).",
            highlight=False,
        )
        for key, value in rec["inputs"].items():
            shown = f"{value:.3g}" if isinstance(value, float) else str(value)
            out.print(f"  {key:<16} {escape(shown)}", highlight=False)
        return
    measured = status.get("startup_measured_s")
    startup = format_duration(status["startup_s"]) if status["startup_s"] else "0s"
    how = "measured" if measured is not None and status["startup_s"] == measured else "set"
    out.print(
        f"Swarm {name}: autoscaling on with [bold]{escape(str(status['policy']))}[/bold] "
        f"({status['min_agents']} to {status['max_agents']} agents, every "
        f"{format_duration(status['period_s'])}, start-up {startup} {how}); decision "
        f"{data['decision_id']}.",
        highlight=False,
    )
    out.print(
        "  A number (--target-size N) turns it off; its decisions are recorded under the "
        "swarm's decisions.",
        highlight=False,
    )


# -- stop -----------------------------------------------------------------------------------


def _gone(data_dir: Path, swarm_id: str, pid: int) -> bool:
    """Whether the service `pid` has ended: its registry entry is gone (or another's), or
    its process is."""
    from swarmperf.service import registry

    if not any(e.swarm_id == swarm_id and e.pid == pid for e in registry.entries(data_dir)):
        return True
    from swarmperf.store.records import pid_alive

    return not pid_alive(pid)


def stop(
    swarm_id: SwarmIdOption,
    deadline: Annotated[
        str | None,
        typer.Option(
            "--deadline",
            help="How long running tasks may finish before they are cancelled, e.g. 30s "
            "(default: the spec's timeouts.drain).",
        ),
    ] = None,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Stop a live swarm: drain it, record its run, and wait until its process has ended.

    It takes no new tasks; running ones finish (for up to --deadline), the rest are
    cancelled with a reason."""
    with live_errors():
        limit = None if deadline is None else parse_duration(deadline, "--deadline")
        folder = data_dir_of(data_dir)
        with connect(swarm_id, data_dir) as client:
            entry = client.entry
            assert entry is not None  # found by id: always an entry
            started = time.monotonic()
            client.stop(limit)
        wait = (STOP_WAIT_S if limit is None else limit) + STOP_WAIT_S
        while not _gone(folder, swarm_id, entry.pid):
            if time.monotonic() - started > wait:
                failed(
                    f"swarm {swarm_id!r} (pid {entry.pid}) is still running "
                    f"{format_duration(round(wait))} after it was asked to stop: its tasks may "
                    f"still be finishing. Run swarmperf stop again later, or end the process "
                    f"(kill {entry.pid}); tasks without a result run again when the swarm is "
                    "served again."
                )
            time.sleep(STOP_POLL_S)
        took = time.monotonic() - started
    if output is Output.json:
        print(json.dumps({"swarm_id": swarm_id, "pid": entry.pid, "stopped": True, "took_s": took}))
        return
    out.print(
        f"Swarm {escape(repr(swarm_id))} stopped in {took:.1f} s (pid {entry.pid}).",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("swarm-status")(swarm_status)
    app.command("swarm-scale")(swarm_scale)
    app.command("stop")(stop)

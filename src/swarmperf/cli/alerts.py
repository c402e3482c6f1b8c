"""SLA and alerting commands: check stored snapshots, print defaults, export rules, dashboards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from swarmperf.cli._support import (
    DataDirOption,
    Output,
    OutputOption,
    SwarmIdOption,
    UserError,
    err,
    out,
    user_errors,
)
from swarmperf.core.files import write_atomic

if TYPE_CHECKING:
    from swarmperf.alerting.sla import RuleResult, RuleSet

SlaOption = Annotated[
    Path | None,
    typer.Option(
        "--sla",
        help="An alerting file (rules, alerting, sinks); none: the built-in rules.",
        dir_okay=False,
    ),
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Write to this file instead of stdout.", dir_okay=False)
]

_CRITICAL_EXIT = 1


def _rules(path: Path | None) -> RuleSet:
    from swarmperf.queries.stored import sla_rules

    return sla_rules(path)


def _write(text: str, path: Path | None) -> None:
    """`text` to `path` in full or not at all (a temporary file renamed), or to stdout."""
    if path is None:
        print(text, end="" if text.endswith("\n") else "\n")
        return
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UserError(f"--out: {str(path)!r} is in no existing directory. Create it first.")
    try:
        write_atomic(path, text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise UserError(
            f"--out: {str(path)!r} cannot be written ({exc.strerror or exc}). "
            "Give a file path in a writable folder."
        ) from exc
    err.print(f"[dim]Wrote {path}.[/dim]")


def _fmt(value: float | None, unit: str) -> str:
    from swarmperf.alerting.sla import format_value

    return "[dim]n/a[/dim]" if value is None else format_value(value, unit)  # type: ignore[arg-type]


def _table(rules: RuleSet, results: list[RuleResult], at: float, swarm_id: str) -> None:
    from rich.table import Table

    from swarmperf.alerting.sla import threshold_text

    by_name = {r.name: r for r in rules.rules}
    colour = {"ok": "green", "warning": "yellow", "critical": "red", "no_data": "dim"}
    table = Table(title=f"SLA check of swarm {swarm_id!r}")
    for col in ("rule", "value", "objective", "budget", "state", "note"):
        table.add_column(col, justify="right" if col in ("value", "budget") else "left")
    for r in results:
        rule = by_name[r.rule]
        objective = f"{rule.comparison} {threshold_text(rule.threshold, rule.unit)}"
        used = "[dim]n/a[/dim]" if r.budget_used is None else f"{r.budget_used:.0%}"
        note = r.reason or ("breached" if r.breached else "")
        agent = r.labels.get("agent")
        table.add_row(
            r.rule if agent is None else f"{r.rule} [{agent}]",
            _fmt(r.value, rule.unit),
            objective,
            used,
            f"[{colour[r.state]}]{r.state}[/{colour[r.state]}]",
            note,
        )
    out.print(table)
    import time

    from swarmperf.core.durations import format_timestamp

    when = format_timestamp(at, time.time())
    out.print(f"[dim]Evaluated at the newest stored snapshot, {when}.[/dim]", highlight=False)


def register(app: typer.Typer) -> None:
    export = typer.Typer(
        name="export",
        help="Export SLA rules to Prometheus and a dashboard to Grafana.",
        no_args_is_help=True,
    )
    app.add_typer(export)

    @export.command("prometheus-rules")
    def prometheus_rules_command(sla: SlaOption = None, out_file: OutOption = None) -> None:
        """Write the SLA rules as a Prometheus alerting-rules file (check it with promtool)."""
        from swarmperf.alerting.exports import prometheus_rules, unexportable

        with user_errors():
            rules = _rules(sla)
            for rule in unexportable(rules):
                err.print(
                    f"[yellow]warning:[/yellow] rule {rule.name!r} is left out: "
                    f"{rule.metric} has no Prometheus metric."
                )
            _write(prometheus_rules(rules), out_file)

    @export.command("grafana-dashboard")
    def grafana_dashboard_command(out_file: OutOption = None) -> None:
        """Write a Grafana dashboard (JSON) over the swarm's Prometheus metrics."""
        from swarmperf.alerting.exports import grafana_dashboard

        with user_errors():
            _write(json.dumps(grafana_dashboard(), indent=2), out_file)

    @app.command("sla-defaults")
    def sla_defaults() -> None:
        """Print the built-in SLA rules as YAML, a starting point for an alerting file."""
        from swarmperf.alerting.sla import DEFAULT_RULES_YAML

        print(DEFAULT_RULES_YAML, end="")

    @app.command("sla-check")
    def sla_check(
        swarm_id: SwarmIdOption,
        sla: SlaOption = None,
        window: Annotated[
            str | None,
            typer.Option("--window", help="Judge every rule over this window, e.g. 300s."),
        ] = None,
        output: OutputOption = Output.table,
        data_dir: DataDirOption = None,
    ) -> None:
        """Judge a swarm's stored snapshots against the SLA rules (exit 1 if any is critical)."""
        from swarmperf.queries.stored import judge_sla, sla_payload

        with user_errors():
            rules, at, results = judge_sla(data_dir, swarm_id, sla, window)
        critical = any(r.state == "critical" for r in results)
        if output is Output.json:
            print(json.dumps(sla_payload(swarm_id, at, results)))
        else:
            _table(rules, results, at, swarm_id)
        if critical:
            raise typer.Exit(code=_CRITICAL_EXIT)

"""`swarmperf workload-analyze` and `autoscale-eval`: trace patterns, and policies replayed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from swarmperf.cli._support import Output, OutputOption, err, out, user_errors

TraceArgument = Annotated[
    Path,
    typer.Argument(
        help="A CSV trace: interval index or timestamp, then tasks per interval (NASA-HTTP "
        "layout); or one row per request with a timestamp column (Azure LLM layout).",
        show_default=False,
    ),
]
IntervalOption = Annotated[
    str, typer.Option("--interval", help="Seconds per interval of the trace (and per count).")
]


def workload_analyze(
    trace: TraceArgument,
    interval: IntervalOption = "60s",
    output: OutputOption = Output.table,
) -> None:
    """Periods, trend, burstiness and regime changes of a trace, and the policy they suggest."""
    from swarmperf.queries.autoscale import workload_analysis

    with user_errors():
        found = workload_analysis(trace, interval)
    if output is Output.json:
        print(json.dumps(found))
        return
    periods = ", ".join(
        f"{p['period']:g} intervals ({p['seconds']:g}s, ACF {p['acf']:.2f})"
        for p in found["periods"]
    )
    out.print(
        f"[bold]{found['trace']}[/bold]: {found['tasks']:,} tasks in "
        f"{found['intervals']:,} intervals"
    )
    out.print(
        f"  mean {found['mean']:.1f} per interval, peak {found['peak']} "
        f"({found['peak_to_mean']:.1f}x)"
    )
    out.print(f"  index of dispersion {found['index_of_dispersion']:.1f} (Poisson: 1)")
    out.print(f"  periods: {periods or 'none confirmed'}")
    out.print(f"  trend: {found['trend_relative']:+.0%} over the trace")
    out.print(f"  regime changes: {len(found['regime_changes'])}")
    out.print(
        f"  recommended policy: [bold]{found['recommended_policy']}[/bold] ({found['reason']})"
    )


def autoscale_eval(
    trace: TraceArgument,
    policy: Annotated[
        str,
        typer.Option("--policy", help="hpa, keda, predictive, rl, static-peak, oracle, or all."),
    ] = "all",
    interval: IntervalOption = "60s",
    peak_agents: Annotated[
        int,
        typer.Option(
            "--peak-agents",
            help="Agents the busiest interval needs at 70% utilisation (sets the service time).",
        ),
    ] = 50,
    slo_factor: Annotated[
        float,
        typer.Option(
            "--slo-factor", help="A task violates when its latency exceeds this x its service time."
        ),
    ] = 2.0,
    startup: Annotated[
        str, typer.Option("--startup", help="Time from asking for an agent to its first task.")
    ] = "60s",
    forecaster: Annotated[
        str,
        typer.Option(
            "--forecaster",
            help="The policies' forecaster: default (holt-winters), seasonal-naive, sarima, lstm, "
            "theta or combination.",
        ),
    ] = "default",
    seed: Annotated[int, typer.Option("--seed", help="Seeds the arrivals within intervals.")] = 0,
    output: OutputOption = Output.table,
) -> None:
    """Replay a trace through a simulated swarm under each scaling policy."""
    from swarmperf.queries.autoscale import autoscale_eval as evaluate
    from swarmperf.queries.autoscale import replay_question

    with user_errors():
        asked = replay_question(
            trace,
            policy=policy,
            interval=interval,
            peak_agents=peak_agents,
            slo_factor=slo_factor,
            startup=startup,
            forecaster=forecaster,
            seed=seed,
        )
        loaded = asked.trace
        console = err if output is Output.json else out
        with console.status("replaying") as status:

            def progress(name: str, done: int) -> None:
                status.update(f"replaying {loaded.name} under {name}")

            result = evaluate(asked, progress)
    if output is Output.json:
        print(json.dumps(result))
        return
    from rich.table import Table

    table = Table(title=f"{loaded.name}: {loaded.tasks:,} tasks, SLO {result['slo_seconds']:.2f}s")
    for col in ("policy", "violation minutes", "agent-hours", "scale events", "tasks"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, figures in result["policies"].items():
        mark = " (default)" if name == result["default_policy"] else ""
        table.add_row(
            name + mark,
            str(figures["violation_minutes"]),
            f"{figures['agent_hours']:.1f}",
            str(figures["scale_events"]),
            f"{figures['tasks']:,}",
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("workload-analyze")(workload_analyze)
    app.command("autoscale-eval")(autoscale_eval)

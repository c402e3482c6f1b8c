"""`swarmperf placement-eval` (the placement solvers on QAPLIB instances) and
`swarmperf topology-optimize SPEC` (each topology simulated on a spec's traffic)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from swarmperf.cli._support import Output, OutputOption, err, out, user_errors


def placement_eval(
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus",
            envvar="SWARMPERF_QAPLIB_DIR",
            show_envvar=False,
            help="A folder of QAPLIB .dat files, with .sln files or a best_known.csv to "
            "score against (default: $SWARMPERF_QAPLIB_DIR).",
        ),
    ] = None,
    time_limit: Annotated[
        str, typer.Option("--time-limit", help="Time per instance, e.g. 10s or 500ms.")
    ] = "10s",
    solver: Annotated[
        str | None,
        typer.Option("--solver", help="tabu, annealing or genetic (default: the best measured)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="The random seed.")] = 0,
    iterations: Annotated[
        int | None,
        typer.Option(
            "--iterations",
            help="Also stop each instance after this many solver steps: with --seed, the "
            "same result on every run (when the time limit does not cut it first).",
        ),
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """Solve every QAPLIB instance in a folder; report the placements and their gaps."""
    from rich.table import Table

    from swarmperf.queries.placement import placement_eval as evaluate
    from swarmperf.queries.placement import placement_question

    with user_errors():
        asked = placement_question(
            corpus, time_limit=time_limit, solver=solver, seed=seed, iterations=iterations
        )
    console = err if output is Output.json else out

    def solved(name: str, solution: dict[str, Any], seconds: float) -> None:
        gap = solution["gap_pct"]
        shown = "-" if gap is None else f"{gap:.3f}%"
        console.print(
            f"{name}: cost {solution['cost']} in {seconds:.2f} s, gap {shown}",
            highlight=False,
            markup=False,
        )

    with user_errors():
        figures = evaluate(asked, solved)
    if output is Output.json:
        print(json.dumps(figures))
        return
    name, limit, mean = figures["solver"], figures["time_limit_s"], figures["mean_gap_pct"]
    scored = sum(gap is not None for gap in figures["gaps"].values())
    table = Table(title=f"Placement ({name}, {limit:g} s per instance)")
    for column in ("instance", "n", "cost", "optimum", "gap", "seconds"):
        table.add_column(column, justify="left" if column == "instance" else "right")
    for key, row in figures["solutions"].items():
        table.add_row(
            key,
            str(row["n"]),
            str(row["cost"]),
            "-" if row["optimum"] is None else str(row["optimum"]),
            "-" if row["gap_pct"] is None else f"{row['gap_pct']:.3f}%",
            f"{row['seconds']:.2f}",
        )
    out.print(table)
    if mean is not None:
        out.print(
            f"mean gap {mean:.3f}% over {scored} instances, {figures['at_optimum']} at the optimum"
        )
    else:
        out.print(f"not scored: {figures['gap_reason']}")


def topology_optimize(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="A YAML swarm spec.")],
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="p99 (tasks' latency), makespan, or traffic (messages x latency).",
        ),
    ] = "p99",
    latency: Annotated[
        str | None,
        typer.Option(
            "--latency",
            help="Place agents on slots of machine, zones (2) or regions (4) latency, each "
            "topology with its best placement (default: no placement).",
        ),
    ] = None,
    connection_cost: Annotated[
        float,
        typer.Option(
            "--connection-cost",
            help="The share of an agent's time each open connection costs (with --latency).",
        ),
    ] = 0.0,
    predict: Annotated[
        bool,
        typer.Option(
            "--predict",
            help="Ask the learned predictor instead of simulating every topology.",
        ),
    ] = False,
    output: OutputOption = Output.table,
) -> None:
    """Simulate each topology on a spec; name the best one."""
    from rich import box
    from rich.table import Table

    from swarmperf.app.selection import place_and_plan
    from swarmperf.spec import load_spec

    with user_errors():
        plan, payload = place_and_plan(
            load_spec(spec_path), objective, latency, connection_cost, predict=predict
        )
    if output is Output.json:
        print(json.dumps(payload))
        return
    if plan is None:
        for name, score in sorted(payload["scores"].items(), key=lambda kv: kv[1]):
            out.print(f"{name}: predicted {score:+.3f} (log {objective}, relative)")
        out.print(f"predicted best by {objective}: {payload['best']} (method: predicted)")
        return
    table = Table(
        title=f"Topologies for {spec_path.name}, simulated (virtual seconds)",
        box=box.SIMPLE_HEAD,  # one line per topology in 80 columns
        pad_edge=False,
    )
    table.add_column("topology", no_wrap=True)
    for column in ("p99", "makespan", "traffic", "hops", "relays", "links"):
        table.add_column(column, justify="right", min_width=len(column))
    for figures in plan.figures:
        table.add_row(
            ("* " if figures.topology == plan.current else "") + figures.topology,
            _seconds(figures.p99),
            _seconds(figures.makespan),
            _seconds(figures.traffic),
            f"{figures.hops:,}",
            f"{figures.relayed_max:,}",
            f"{figures.connections:,}",
        )
    out.print(table)
    out.print("[dim]* the spec's own topology; relays: the most one agent forwarded[/dim]")
    gain = "-" if plan.gain is None else f"{plan.gain:.1%}"
    out.print(f"best by {plan.objective}: {plan.best}; predicted gain over {plan.current}: {gain}")
    if latency is not None:
        out.print(f"[dim]each topology placed on {latency} slots (method: simulated)[/dim]")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def register(app: typer.Typer) -> None:
    app.command("placement-eval")(placement_eval)
    app.command("topology-optimize")(topology_optimize)

"""`swarmperf placement-eval` (the placement solvers on QAPLIB instances) and
`swarmperf topology-optimize SPEC | --swarm-id ID` (each topology simulated on a spec's
traffic or a live swarm's measured workload; live, the pick switched on trial)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from swarmperf.cli._support import DataDirOption, Output, OutputOption, err, out, user_errors


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
    spec_path: Annotated[
        Path | None,
        typer.Argument(metavar="SPEC", help="A YAML swarm spec to plan offline."),
    ] = None,
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="p99 (tasks' latency), makespan, or traffic (messages x latency).",
        ),
    ] = "p99",
    swarm_id: Annotated[
        str | None,
        typer.Option(
            "--swarm-id",
            help="A live swarm: plan from its measured workload and switch on trial.",
        ),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy",
            help="With --swarm-id: adaptive (the planner's best; default) or "
            "fixed:<topology> (star, hierarchical, ring, mesh or hybrid).",
        ),
    ] = None,
    min_gain: Annotated[
        float,
        typer.Option(
            "--min-gain",
            help="With --swarm-id: the least predicted and measured improvement to keep a "
            "change (0.1: 10%).",
        ),
    ] = 0.1,
    observe: Annotated[
        str | None,
        typer.Option("--observe", help="With --swarm-id: the window the trial is judged on."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="With --swarm-id: print the plan; change nothing."),
    ] = False,
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
    data_dir: DataDirOption = None,
) -> None:
    """Simulate each topology on a spec, or on a live swarm's measured workload; name the
    best one.

    With --swarm-id the pick is applied on trial: only if the plan predicts at least
    --min-gain on the objective, and kept only if the figure measured over --observe after
    the switch improves as much (else switched back); each attempt is a decision."""
    from swarmperf.queries.topology import topology_optimize as optimise

    def watching(seconds: float) -> None:
        if output is not Output.json:
            err.print(f"Switched on trial; judging it over the next {seconds:g} s...")

    with user_errors():
        data = optimise(
            spec_path,
            swarm_id,
            data_dir,
            strategy=strategy,
            objective=objective,
            min_gain=min_gain,
            observe_text=observe,
            dry_run=dry_run,
            on_watch=watching,
            latency=latency,
            connection_cost=connection_cost,
            predict=predict,
        )
    if output is Output.json:
        print(json.dumps(data))
        return
    if data.get("method") == "predicted":
        for name, score in sorted(data["scores"].items(), key=lambda kv: kv[1]):
            out.print(f"{name}: predicted {score:+.3f} (log {objective}, relative)")
        out.print(f"predicted best by {objective}: {data['best']} (method: predicted)")
        return
    plan = data["plan"] if data["live"] else data
    title = f"{swarm_id}'s measured workload" if data["live"] else Path(str(spec_path)).name
    _plan_table(plan, title, bool(data["live"]))
    gain = plan["predicted_gain"]
    shown = "-" if gain is None else f"{gain:.1%}"
    out.print(
        f"best by {plan['objective']}: {plan['best']}; predicted gain over "
        f"{plan['current']}: {shown}",
        highlight=False,
    )
    if not data["live"] and data.get("latency") is not None:
        out.print(f"[dim]each topology placed on {data['latency']} slots (method: simulated)[/dim]")
    if data["live"]:
        verdict = data.get("verdict")
        decision = data.get("decision_id")
        tail = "" if decision is None else f" (decision {decision})"
        head = f"{data['target']}: {verdict or 'no verdict yet'}" if data["applied"] else ""
        line = f"{head}{tail}: {data['why']}" if head else f"{data['why']}{tail}"
        out.print(line, highlight=False, markup=False)


def _plan_table(plan: dict[str, Any], title: str, live: bool) -> None:
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"Topologies for {title}, simulated (virtual seconds)",
        box=box.SIMPLE_HEAD,  # one line per topology in 80 columns
        pad_edge=False,
    )
    table.add_column("topology", no_wrap=True)
    for column in ("p99", "makespan", "traffic", "hops", "relays", "links"):
        table.add_column(column, justify="right", min_width=len(column))
    for figures in plan["topologies"]:
        table.add_row(
            ("* " if figures["topology"] == plan["current"] else "") + figures["topology"],
            _seconds(figures["p99"]),
            _seconds(figures["makespan"]),
            _seconds(figures["traffic"]),
            f"{figures['hops']:,}",
            f"{figures['relayed_max']:,}",
            f"{figures['connections']:,}",
        )
    out.print(table)
    now = "the topology in force" if live else "the spec's own topology"
    out.print(f"[dim]* {now}; relays: the most one agent forwarded[/dim]")
    runs = sorted({int(f.get("runs", 1)) for f in plan["topologies"]})
    if runs[-1] > 1:
        shown = " or ".join(str(r) for r in runs)
        out.print(f"[dim]p99, makespan, traffic: means over {shown} runs (seeds) each[/dim]")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def register(app: typer.Typer) -> None:
    app.command("placement-eval")(placement_eval)
    app.command("topology-optimize")(topology_optimize)

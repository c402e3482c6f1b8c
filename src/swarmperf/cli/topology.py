"""`swarmperf placement-eval` (the placement solvers on QAPLIB instances) and
`swarmperf topology-optimize SPEC` (each topology simulated on a spec's traffic)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Annotated, Any

import typer

from swarmperf.cli._support import Output, OutputOption, UserError, err, out, user_errors
from swarmperf.core.durations import parse_duration
from swarmperf.core.errors import ConfigError

QAPLIB_SOURCE = (
    "QAPLIB instances are `.dat` files (n, then matrix A, then matrix B), with optional "
    "`.sln` files (n value, then the permutation) or a best_known.csv beside them."
)


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

    from swarmperf.topology.placement import DEFAULT_SOLVER, SOLVERS, solve
    from swarmperf.topology.qaplib import gap_pct, list_corpus, read_dat, read_sln

    with user_errors():
        if corpus is None:
            raise UserError(
                f"--corpus: none given, and SWARMPERF_QAPLIB_DIR is not set. {QAPLIB_SOURCE}"
            )
        limit = parse_duration(time_limit, "--time-limit")
        if not limit > 0:
            raise ConfigError("--time-limit", time_limit, "Give a time above 0, e.g. 10s.")
        name = DEFAULT_SOLVER if solver is None else solver
        if name not in SOLVERS:
            raise ConfigError("--solver", name, f"Choose one of: {', '.join(sorted(SOLVERS))}.")
        if seed < 0:
            raise ConfigError("--seed", seed, "Give an integer >= 0.")
        if iterations is not None and iterations < 0:
            raise ConfigError("--iterations", iterations, "Give a count >= 0.")
        instances = list_corpus(corpus)
        # Every file is checked before any is solved: a bad one fails at once, not after
        # the others' time limits. They are read again one at a time to solve them, so
        # memory holds one instance whatever the folder.
        for instance in instances:
            problem = read_dat(instance.path)
            sln = instance.path.with_suffix(".sln")
            if sln.is_file() and (known := read_sln(sln)).n != problem.n:
                raise ConfigError(
                    f"{sln}:1",
                    f"n = {known.n}",
                    f"Its instance {instance.path.name} has n = {problem.n}.",
                )
            del problem

    console = err if output is Output.json else out
    solutions: dict[str, dict[str, Any]] = {}
    gaps: dict[str, float | None] = {}
    for instance in instances:
        with user_errors():
            problem = read_dat(instance.path)
            found = solve(
                problem, solver=name, time_limit_s=limit, seed=seed, iterations=iterations
            )
        gap = gap_pct(found.cost, instance.optimum)
        solutions[instance.name] = {
            "perm": [p + 1 for p in found.perm],
            "cost": _number(found.cost),
            "seconds": round(found.seconds, 3),
            "seconds_to_best": round(found.seconds_to_best, 3),
            "n": problem.n,
            "optimum": None if instance.optimum is None else _number(instance.optimum),
            "gap_pct": gap,
        }
        if instance.optimum is not None:
            gaps[instance.name] = gap
        shown = "-" if gap is None else f"{gap:.3f}%"
        console.print(
            f"{instance.name}: cost {_number(found.cost)} in {found.seconds:.2f} s, gap {shown}",
            highlight=False,
            markup=False,
        )

    scored = [g for g in gaps.values() if g is not None]
    mean = statistics.fmean(scored) if scored else None
    reason = None
    if not gaps:
        reason = "no .sln file or best_known.csv entry for any instance"
    elif len(scored) < len(gaps):
        reason = "an optimum of 0 not reached: no percentage for it"
    figures: dict[str, Any] = {
        "solver": name,
        "time_limit_s": limit,
        "seed": seed,
        "iterations": iterations,
        "solutions": solutions,
        "gaps": gaps,
        "mean_gap_pct": mean,
        "at_optimum": sum(1 for g in scored if g <= 0) if scored else None,
        "gap_reason": reason,
    }
    if output is Output.json:
        print(json.dumps(figures))
        return
    table = Table(title=f"Placement ({name}, {limit:g} s per instance)")
    for column in ("instance", "n", "cost", "optimum", "gap", "seconds"):
        table.add_column(column, justify="left" if column == "instance" else "right")
    for key, row in solutions.items():
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
            f"mean gap {mean:.3f}% over {len(scored)} instances, "
            f"{figures['at_optimum']} at the optimum"
        )
    else:
        out.print(f"not scored: {reason}")


def _number(value: float) -> float | int:
    """A whole number as an int (QAPLIB costs are), anything else as it is."""
    return (
        int(value) if math.isfinite(value) and value == int(value) and abs(value) < 2**53 else value
    )


def topology_optimize(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="A YAML swarm spec.")],
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="p99 (tasks' latency), makespan, or traffic (messages x latency).",
        ),
    ] = "p99",
    output: OutputOption = Output.table,
) -> None:
    """Simulate each topology on a spec; name the best one."""
    from rich import box
    from rich.table import Table

    from swarmperf.app.topologies import plan_topologies
    from swarmperf.spec import load_spec

    with user_errors():
        plan = plan_topologies(load_spec(spec_path), objective)
    if output is Output.json:
        print(json.dumps(plan.to_dict()))
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


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def register(app: typer.Typer) -> None:
    app.command("placement-eval")(placement_eval)
    app.command("topology-optimize")(topology_optimize)

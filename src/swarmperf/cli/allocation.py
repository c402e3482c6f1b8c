"""`swarmperf resource-alloc` (alias `daa-resource-alloc`): the cost/latency front of a
resources file and the cheapest allocation that meets every SLO."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from swarmperf.cli._support import (
    DataDirOption,
    Output,
    OutputOption,
    UserError,
    err,
    out,
    user_errors,
)

ResourcesArg = Annotated[
    Path,
    typer.Option(
        "--resources", help="YAML/JSON: pools, their prices and speeds, constraints, workload."
    ),
]


def resource_alloc(
    resources: ResourcesArg,
    swarm_id: Annotated[
        str | None,
        typer.Option(
            "--swarm-id",
            help="Measure the pools' speeds (and the mix, if the file gives none) from this "
            "swarm's latest stored run; with --apply, the live swarm to change.",
        ),
    ] = None,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Resize the live swarm's pools to the recommendation, on trial: rolled back "
            "unless the p99 measured over --observe meets the prediction and the SLOs.",
        ),
    ] = False,
    observe: Annotated[
        str | None,
        typer.Option("--observe", help="With --apply: the window the trial is judged on."),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="With --apply: how much worse than the predicted p99 the measured one may "
            "be (0.5: 50%).",
        ),
    ] = 0.5,
    svg_out: Annotated[
        Path | None, typer.Option("--svg", help="Write the front as an SVG picture here.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="The random seed.")] = 0,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """The cheapest allocation of agent pools that meets every SLO, and the cost/p99 front.

    The front of cost against p99 latency and SLA-violation risk comes from NSGA-II on an
    M/G/c model; its cheapest points are confirmed in the simulator. --apply resizes a live
    swarm's pools (agents <pool>-<n>) and keeps the change only if the figures measured
    after it bear the prediction out; else it is rolled back. Both are recorded as a
    decision."""
    from swarmperf.allocation.plot import svg, terminal
    from swarmperf.queries.allocation import resource_alloc

    def watching(seconds: float) -> None:
        if output is not Output.json:
            err.print(f"Applied on trial; judging it over the next {seconds:g} s...")

    with user_errors():
        data = resource_alloc(
            resources,
            swarm_id,
            data_dir,
            apply=apply,
            observe_text=observe,
            tolerance=tolerance,
            seed=seed,
            on_watch=watching,
        )
        costs = [p["cost_per_hour"] for p in data["front"]]
        p99s = [p["predicted"]["p99_s"] for p in data["front"]]
        rec = data["recommended"]
        recommended = None if rec is None else data["front"].index(rec)
        if svg_out is not None:
            try:
                svg_out.write_text(
                    svg(costs, p99s, recommended, currency=data["currency"]), encoding="utf-8"
                )
            except OSError as exc:
                raise UserError(
                    f"--svg: {str(svg_out)!r} cannot be written ({exc.strerror})."
                ) from None
            data["svg"] = str(svg_out)
    if output is Output.json:
        print(json.dumps(data, allow_nan=False, default=_finite))
        return
    _render(data)
    out.print(terminal(costs, p99s, recommended), highlight=False, markup=False)
    if data.get("applied"):
        _render_applied(data["applied"])
    if svg_out is not None:
        err.print(f"Wrote the front to {svg_out}.")


def _finite(value: Any) -> Any:
    return None


def _render(data: dict[str, Any]) -> None:
    from rich.table import Table

    w = data["workload"]
    mix = ", ".join(f"{k} {v:.0%}" for k, v in w["mix"].items())
    out.print(
        f"Workload ({w['source']}): {w['rate_per_s']:.4g} tasks/s, {mix}. "
        f"Front by {data['method']} over {data['evaluated']:,} allocations.",
        highlight=False,
        markup=False,
    )
    run = data["speeds_from"]["run_id"]
    speeds = "; ".join(
        f"{p['id']} "
        + ", ".join(
            f"{kind} {seconds * 1e3:,.4g} ms {p['speed_source'].get(kind, 'declared')}"
            for kind, seconds in p["service_time_s"].items()
        )
        for p in data["pools"]
    )
    where = f" (measured: from run id {run})" if run is not None else ""
    out.print(f"Speeds{where}: {speeds}.", highlight=False, markup=False)
    table = Table(title="Pareto front: cost against p99 latency and SLA-violation risk")
    for col in ("allocation", "cost/h", "p99 (model)", "p99 (sim)", "risk", "util", "SLOs in sim"):
        table.add_column(col)
    for point in data["front"]:
        sim = point["simulated"]
        table.add_row(
            ", ".join(f"{k} {v}" for k, v in point["counts"].items() if v),
            f"{point['cost_per_hour']:.4g}",
            f"{point['predicted']['p99_s'] * 1e3:,.0f} ms",
            "-" if sim is None else f"{sim['p99_s'] * 1e3:,.0f} ms",
            f"{point['predicted']['sla_violation_risk']:.2%}",
            f"{point['predicted']['utilisation']:.0%}",
            {None: "-", True: "met", False: "missed"}[point["slo_met_in_sim"]],
        )
    out.print(table)
    rec = data["recommended"]
    if rec is None:
        out.print(f"No recommendation: {data['recommended_reason']}.", markup=False)
        return
    kinds = ", ".join(f"{k} {v * 1e3:,.0f} ms" for k, v in rec["predicted"]["p99_kind_s"].items())
    sim = rec["simulated"] or {}
    simk = ", ".join(f"{k} {v * 1e3:,.0f} ms" for k, v in (sim.get("p99_kind_s") or {}).items())
    allocation = ", ".join(f"{v} × {k}" for k, v in rec["counts"].items() if v)
    out.print(
        f"Recommended: {allocation} at {rec['cost_per_hour']:.4g} {data['currency']}/h "
        f"({rec['cost_per_1000_tasks']:.4g} per 1,000 tasks); p99 per kind {kinds} "
        f"(simulated: {simk}); utilisation {rec['predicted']['utilisation']:.0%}.",
        highlight=False,
        markup=False,
    )
    # An applied plan's verdict is said after the plot, as the last word.
    if not data.get("applied") and math.isfinite(rec["cost_per_hour"]):
        out.print("[dim]A plan only: --apply --swarm-id ID resizes a live swarm's pools.[/dim]")


def _render_applied(applied: dict[str, Any]) -> None:
    def sizes(counts: dict[str, int] | None) -> str:
        return ", ".join(f"{n} × {pool}" for pool, n in (counts or {}).items())

    verdict = applied["verdict"] or "not judged yet"
    out.print(
        f"Applied on trial (decision {applied['decision_id']}): {sizes(applied['pools_before'])}"
        f" → {sizes(applied['pools_after'])}; {verdict}: {applied['why']}.",
        highlight=False,
        markup=False,
    )
    if applied["reverted"]:
        out.print(f"Rolled back to {sizes(applied['reverted']['pools'])}.", markup=False)


def register(app: typer.Typer) -> None:
    app.command("resource-alloc")(resource_alloc)
    app.command("daa-resource-alloc", help="Alias of resource-alloc.")(resource_alloc)


def validate_resources(path: Path, output: Output) -> bool:
    """`swarmperf validate` on a resources file (one with a top-level `pools:` key): check it
    and say what it holds; False when `path` is not one (then it is taken as a spec)."""
    from swarmperf.allocation.resources import is_resources, parse_resources, read_data

    try:
        data = read_data(path)
    except Exception:
        return False  # the spec loader says what is wrong with the file
    if not is_resources(data):
        return False
    with user_errors():
        res = parse_resources(data, str(path))
    if output is Output.json:
        print(
            json.dumps(
                {"valid": True, "kind": "resources", "resources": res.model_dump(mode="json")}
            )
        )
        return True
    pools = ", ".join(
        f"{p.id} ({p.cost_per_hour:g} {res.currency}/h, {p.min}–{p.max}, speeds "
        + (", ".join(f"{k} {v * 1e3:g} ms declared" for k, v in p.service_time.items()) or "none")
        + ")"
        for p in res.pools
    )
    out.print(
        f"[green]valid[/green]: resources file, {len(res.pools)} pools: {pools}; "
        f"{len(res.constraints.slo)} SLOs.",
        highlight=False,
    )
    return True

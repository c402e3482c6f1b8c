"""The `swarmperf` command line: a thin front-end over the runner, spec and store."""

from __future__ import annotations

import json
import pkgutil
import sys
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.measure import Measurement
from rich.table import Table

from swarmperf import cli
from swarmperf.app.backends import BACKENDS
from swarmperf.app.build import load_alerting
from swarmperf.app.compare import best_strategy, ranked
from swarmperf.app.run import RunOutcome, compare_strategies, run_spec
from swarmperf.balancing.strategies import STRATEGIES
from swarmperf.cli._support import (
    BackendOption,
    DataDirOption,
    DurationOption,
    Group,
    Output,
    OutputOption,
    SeedOption,
    SpecSwarmIdOption,
    StoreOption,
    UserError,
    err,
    load_spec_or_demo,
    open_store,
    out,
    output_mode,
    override,
    progress_bar,
    run_async,
    user_errors,
)
from swarmperf.core.durations import parse_duration
from swarmperf.queries.runs import comparison_payload, outcome_payload
from swarmperf.spec import AUTO, DEMO_SPEC_YAML, SwarmSpec

T = TypeVar("T")

app = typer.Typer(
    name="swarmperf",
    help="Fast, balanced and resilient swarms of agents, with measurements to prove it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=Group,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        from swarmperf.runtime import compiled

        build = "compiled" if compiled() else "pure Python"
        print(f"swarmperf {version('swarmperf')} ({build})")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Fast, balanced and resilient swarms of agents, with measurements to prove it."""
    # One process can run several command lines (tests do): each starts as asked.
    output_mode.set(Output.table)


PerAgentOption = Annotated[
    bool,
    typer.Option(
        "--per-agent",
        help="One row per agent (default above 20 agents: by group, with the extremes).",
    ),
]


AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster address for --backend ray: ray://<head>:10001, or auto.",
    ),
]


def _with_address(spec: SwarmSpec, address: str | None) -> SwarmSpec:
    """The spec with its Ray cluster address set from the command line, if one was given."""
    if address is None:
        return spec
    if spec.backend != "ray":
        raise UserError(
            f"--address: {address!r} only applies to the ray backend, and this run uses "
            f"{spec.backend!r}. Add --backend ray, or leave --address out."
        )
    return override(spec, ray={**spec.ray.model_dump(mode="json"), "address": address})


@app.command()
def run(
    spec_path: Annotated[
        Path | None, typer.Argument(metavar="[SPEC]", help="A YAML swarm spec; none: the demo.")
    ] = None,
    swarm_id: SpecSwarmIdOption = None,
    duration: DurationOption = None,
    strategy: Annotated[
        str | None, typer.Option("--strategy", help="Overrides the spec's.")
    ] = None,
    backend: BackendOption = None,
    address: AddressOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve Prometheus /metrics on this port while the run lasts (0: a free port).",
        ),
    ] = None,
    seed: SeedOption = None,
    drain: Annotated[
        str | None,
        typer.Option(
            "--drain",
            help="On SIGTERM or SIGINT, how long running tasks may finish before they are "
            "cancelled, e.g. 10s; overrides the spec's timeouts.drain.",
        ),
    ] = None,
    per_agent: PerAgentOption = False,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
    store: StoreOption = True,
) -> None:
    """Start a swarm, run its workload, and report how it went. The main job.

    SIGTERM or SIGINT drains the run (see --drain; a second signal cuts the drain short),
    cancels what is left, records the run as interrupted and exits 143 or 130.
    """
    with user_errors():
        spec = override(
            load_spec_or_demo(spec_path),
            swarm_id=swarm_id,
            duration=None if duration is None else parse_duration(duration, "--duration"),
            strategy=strategy,
            backend=backend,
            seed=seed,
        )
        if drain is not None:
            timeouts = spec.timeouts.model_dump(mode="json")
            timeouts["drain"] = parse_duration(drain, "--drain")
            spec = override(spec, timeouts=timeouts)
        spec = _with_address(spec, address)
        if metrics_port is not None:
            monitor = spec.monitor.model_dump(mode="json")
            spec = override(spec, monitor={**monitor, "metrics_port": metrics_port})
        outcome = _run_with_progress(spec, spec.strategy, output, data_dir, store)
    if outcome.interrupted is not None:
        # One line, and the shell's exit code for the signal: a supervisor that stopped
        # the run sees it stopped as asked; the report is in the store (and in JSON).
        _print_json(outcome, output)
        line = outcome.interrupted.describe()
        if outcome.run_id is not None:
            line += f"; run {outcome.run_id} recorded as interrupted"
        err.print(line, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(code=outcome.interrupted.exit_code)
    if _print_json(outcome, output):
        return
    outcome.report.render(out, per_agent=per_agent or None)
    if outcome.run_id is not None:
        out.print(f"[dim]Stored as {_run_label(data_dir, outcome.run_id)}.[/dim]")


def _run_label(data_dir: Path | None, run_id: int) -> str:
    """ "run 3 of swarm 'prod' (id 12)": runs are numbered within their swarm."""
    db = open_store(data_dir, True, read_only=True)
    assert db is not None  # enabled: always a store
    with db:
        record = db.get_run(run_id)
    return record.label() if record is not None else f"run id {run_id}"


def _run_with_progress(
    spec: SwarmSpec, label: str, output: Output, data_dir: Path | None, store: bool
) -> RunOutcome:
    """Run `spec` with its progress on stderr (a bar on a terminal, else lines now and then)."""
    db = open_store(data_dir, store)
    bar, update = progress_bar(spec.workload.tasks, label)
    try:
        with bar:
            outcome: RunOutcome = run_async(
                lambda: run_spec(spec, store=db, on_progress=update, on_monitor=_say_where)
            )
    finally:
        if db is not None:
            db.close()
    return outcome


def _say_where(monitor: Any, server: Any) -> None:
    # With metrics_port 0 the port is picked when the run starts: this is the only place
    # a user learns it.
    if server is not None:
        err.print(f"Serving metrics at {server.url}", highlight=False, markup=False)


def _print_json(outcome: RunOutcome, output: Output) -> bool:
    if output is not Output.json:
        return False
    print(json.dumps(outcome_payload(outcome)))
    return True


@app.command("load-balance")
def load_balance(
    strategy: Annotated[
        str, typer.Option("--strategy", help=f"A strategy name, or {AUTO} to compare them all.")
    ] = AUTO,
    workload: Annotated[
        Path | None, typer.Option("--workload", help="A YAML swarm spec; none: the demo.")
    ] = None,
    seed: SeedOption = None,
    backend: BackendOption = None,
    address: AddressOption = None,
    swarm_id: Annotated[
        str | None,
        typer.Option(
            "--swarm-id",
            help="A live swarm (swarmperf serve): switch its strategy now, instead of running "
            "a workload.",
        ),
    ] = None,
    observe: Annotated[
        str | None,
        typer.Option(
            "--observe",
            help="With --swarm-id: how long to watch after the switch before reporting the "
            "figures after, e.g. 30s (default 10s; 0: return at once).",
        ),
    ] = None,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
    store: StoreOption = True,
) -> None:
    """Run a workload under one strategy, or all, and compare; or switch a live swarm's.

    With --swarm-id (a swarm started with swarmperf serve) the switch is live, recorded as a
    decision, and shown with the figures before and over --observe after."""
    if swarm_id is not None:
        from swarmperf.cli.live import switch_strategy

        with user_errors():
            _only_workload_options(
                workload=workload, seed=seed, backend=backend, address=address, store=store
            )
        switch_strategy(swarm_id, strategy, observe, output, data_dir)
        return
    with user_errors():
        if observe is not None:
            raise UserError(
                f"--observe: {observe!r} applies to a live swarm's switch only. Add --swarm-id "
                "ID (a swarm started with swarmperf serve), or leave --observe out."
            )
        spec = override(load_spec_or_demo(workload), strategy=strategy, seed=seed, backend=backend)
        spec = _with_address(spec, address)
        names = spec.strategy_names()
        db = open_store(data_dir, store)
        outcomes: dict[str, RunOutcome] = {}
        try:
            for name in names:
                bar, update = progress_bar(spec.workload.tasks, name)
                with bar:
                    outcomes.update(
                        run_async(
                            lambda n=name, u=update: compare_strategies(  # type: ignore[misc]
                                spec, [n], store=db, on_progress=u
                            )
                        )
                    )
        finally:
            if db is not None:
                db.close()
    best = best_strategy(outcomes)
    if output is Output.json:
        print(json.dumps(comparison_payload(outcomes)))
        return
    _comparison_table(outcomes, best)


def _only_workload_options(**given: object) -> None:
    """With --swarm-id, load-balance switches a running swarm: options that shape a
    workload run have nothing to act on."""
    for name, value in given.items():
        if value is not None and value is not True:
            flag = "--no-store" if name == "store" else f"--{name}"
            raise UserError(
                f"{flag}: applies to a workload run, and --swarm-id switches a live swarm, "
                f"which runs its own. Leave {flag} out, or --swarm-id."
            )


def _fmt(value: float | None, template: str) -> str:
    return "[dim]n/a[/dim]" if value is None else template.format(value)


def _latency(seconds: float | None) -> str:
    if seconds is None:
        return "[dim]n/a[/dim]"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def _comparison_table(outcomes: dict[str, RunOutcome], best: str | None) -> None:
    rows = []
    for name in ranked(outcomes):
        r = outcomes[name].report
        rows.append(
            (
                f"* {name}" if name == best else f"  {name}",
                _fmt(r.makespan, "{:.3f} s"),
                _fmt(r.makespan_ratio, "{:.2f}x"),
                _fmt(r.throughput, "{:,.0f}"),
                _latency(r.latency_p50),
                _latency(r.latency_p99),
                _fmt(r.jain_index, "{:.3f}"),
                f"{r.tasks_failed:,}",
            )
        )
    title = "Strategies on the same workload (best marked *)"
    headers = ("strategy", "makespan", "vs bound", "tasks/s", "p50", "p99", "Jain", "failed")
    table = Table(title=title, box=None, pad_edge=False, collapse_padding=True)
    for col in headers:
        # A strategy's name is never cut: two cut names can look the same.
        table.add_column(
            col,
            justify="left" if col == "strategy" else "right",
            no_wrap=col == "strategy",
            overflow="fold",
        )
    for row in rows:
        table.add_row(*row)
    unbounded = out.options.update_width(10_000)
    if Measurement.get(out, unbounded, table).maximum <= out.width:
        out.print(table)
        return
    # Too narrow for the table: one block per strategy, each figure named.
    out.print(title, highlight=False)
    for row in rows:
        out.print(row[0], highlight=False, markup=False)
        for header, value in zip(headers[1:], row[1:], strict=True):
            out.print(f"    {header:<9} {value}", highlight=False)


@app.command()
def simulate(
    spec_path: Annotated[
        Path | None, typer.Argument(metavar="[SPEC]", help="A YAML swarm spec; none: the demo.")
    ] = None,
    agents: Annotated[
        int | None,
        typer.Option("--agents", help="Scale the spec's agent groups to this many agents."),
    ] = None,
    tasks: Annotated[int | None, typer.Option("--tasks", help="How many tasks to run.")] = None,
    seed: SeedOption = None,
    strategy: Annotated[str | None, typer.Option("--strategy")] = None,
    per_agent: PerAgentOption = False,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
    store: StoreOption = True,
) -> None:
    """Run a swarm spec in virtual time: the same strategies, queue and breakers, at scale."""
    from swarmperf.queries.runs import simulation_spec

    with user_errors():
        spec, note = simulation_spec(
            spec_path, agents=agents, tasks=tasks, seed=seed, strategy=strategy
        )
        if note is not None:
            err.print(note, highlight=False, markup=False, soft_wrap=True)
        outcome = _run_with_progress(spec, f"simulating {spec.strategy}", output, data_dir, store)
    if _print_json(outcome, output):
        return
    outcome.report.render(out, per_agent=per_agent or None)
    out.print("[dim]Times are virtual: what the swarm would take, not how long this took.[/dim]")


def _check_runnable_here(spec: SwarmSpec) -> None:
    """What `run` checks beyond the spec itself (is its task kind registered here?)."""
    from swarmperf.app.build import check_runnable
    from swarmperf.core.errors import ConfigError
    from swarmperf.core.handlers import HandlerRegistry

    try:
        check_runnable(spec, HandlerRegistry())
    except ConfigError as exc:
        # `auto` is refused by `run` but is what `load-balance` runs: a valid spec.
        if exc.field != "strategy" or spec.strategy != AUTO:
            raise


@app.command()
def validate(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="A YAML swarm spec.")],
    output: OutputOption = Output.table,
) -> None:
    """Check a swarm spec or a resources file and explain every problem (exit code 2 if any).

    A resources file is one with a top-level `pools:` key."""
    from swarmperf.cli.allocation import validate_resources

    if validate_resources(spec_path, output):
        return
    with user_errors():
        spec = load_spec_or_demo(spec_path)
        load_alerting(spec)
        _check_runnable_here(spec)
    agents = spec.agent_specs()
    if output is Output.json:
        print(json.dumps({"valid": True, "spec": spec.to_data()}))
        return
    out.print(
        f"[green]valid[/green]: swarm {spec.swarm_id!r}, {len(agents)} agents, strategy "
        f"{spec.strategy}, backend {spec.backend}, "
        f"{spec.workload.tasks} {spec.workload.kind} tasks."
    )


@app.command("demo-spec")
def demo_spec_command() -> None:
    """Print the embedded demo spec, to copy and edit."""
    print(DEMO_SPEC_YAML, end="")


@app.command()
def strategies(output: OutputOption = Output.table) -> None:
    """List the load-balancing strategies."""
    rows = [
        (name, "late" if cls.late_binding else "early", cls.summary)
        for name, cls in sorted(STRATEGIES.items())
    ]
    if output is Output.json:
        print(json.dumps([{"name": n, "binding": b, "summary": s} for n, b, s in rows]))
        return
    table = Table(title="Strategies")
    for col in ("name", "binding", "what it does"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    out.print(table)
    backends = "; ".join(f"{e.name} ({e.description})" for e in BACKENDS.values())
    out.print(f"[dim]Backends: {backends}.[/dim]")


def _register_commands() -> None:
    # Each other module in `swarmperf.cli` adds its own commands (`register(app)`); heavy
    # imports stay inside the commands, so that `--help` is quick.
    for info in pkgutil.iter_modules(cli.__path__):
        if not info.name.startswith("_") and info.name != "main":
            import_module(f"{cli.__name__}.{info.name}").register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":  # `python -m swarmperf.cli.main`, as `python -m swarmperf`
    main()

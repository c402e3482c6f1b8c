"""`benchmark-run` and `benchmark-suites`: run a benchmark suite, write and store its results.

`benchmark-run` exits 1 when not one request of the whole suite succeeded (as a failed
threshold would): a target that is down must not pass for a measured one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from swarmperf.cli._support import (
    DataDirOption,
    IterationDurationOption,
    Output,
    OutputOption,
    ProgressLines,
    SpecSwarmIdOption,
    StoreOption,
    err,
    live_progress,
    out,
    run_async,
    user_errors,
)
from swarmperf.queries.suites import benchmark_payload
from swarmperf.queries.suites import run_benchmark as benchmark_run_query

if TYPE_CHECKING:
    from swarmperf.bench.results import ScenarioResult, SuiteResult


def register(app: typer.Typer) -> None:
    app.command("benchmark-run")(benchmark_run)
    app.command("benchmark-suites")(benchmark_suites)


def benchmark_run(
    suite: Annotated[
        str, typer.Option("--suite", help="A built-in suite (quick, comprehensive) or a YAML file.")
    ] = "quick",
    duration: IterationDurationOption = None,
    iterations: Annotated[
        int | None, typer.Option("--iterations", help="Measured iterations per scenario.")
    ] = None,
    warmup: Annotated[
        str | None, typer.Option("--warmup", help="Unmeasured load first, e.g. 30s.")
    ] = None,
    cooldown: Annotated[
        str | None, typer.Option("--cooldown", help="Pause between iterations, e.g. 10s.")
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option("--spec", help="A swarm spec whose agents take the load (default: the demo)."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="Instead of a swarm: an http(s) URL or module:function."),
    ] = None,
    request_timeout: Annotated[
        str | None,
        typer.Option(
            "--request-timeout",
            help="How long an HTTP request may wait for its answer, e.g. 5s (default 10s).",
        ),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the results JSON (default: the data dir)."),
    ] = None,
    swarm_id: SpecSwarmIdOption = None,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
    store: StoreOption = True,
) -> None:
    """Run a benchmark suite against a swarm, a callable or a URL; write and store the results."""
    from swarmperf.bench.suite import every_request_failed

    with user_errors():
        result, path, benchmark_id = benchmark_run_query(
            suite,
            duration=duration,
            iterations=iterations,
            warmup=warmup,
            cooldown=cooldown,
            spec=spec,
            target=target,
            request_timeout=request_timeout,
            out_path=out_path,
            swarm_id=swarm_id,
            data_dir=data_dir,
            store=store,
            run=_run_with_bar,
        )
    all_failed = every_request_failed(result)
    if output is Output.json:
        print(json.dumps(benchmark_payload(result, path, benchmark_id)))
    else:
        _render(result)
        out.print(f"Results written to {path}")
        if benchmark_id is not None:
            out.print(f"[dim]Stored as benchmark {benchmark_id} (suite:{result.suite}).[/dim]")
    if all_failed is not None:
        err.print(
            f"[bold red]failed:[/bold red] {escape(all_failed)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1)


def _run_with_bar(
    suite: Any, make: Any, description: str, overrides: Any, total: float
) -> SuiteResult:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from swarmperf.bench.suite import SuiteProgress, run_suite

    if not live_progress():
        return _run_with_lines(suite, make, description, overrides, total)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[phase]}"),
        TextColumn("{task.fields[sent]}"),
        TextColumn("[red]{task.fields[failed]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    task_id = bar.add_task(suite.suite, total=total or 1.0, phase="", sent="", failed="")

    def update(p: SuiteProgress) -> None:
        bar.update(
            task_id,
            completed=p.done_s,
            description=f"{p.suite}: {p.scenario}",
            phase=p.phase,
            sent=f"{p.sent:,} sent",
            failed=f"{p.failed:,} failed" if p.failed else "",
        )

    with bar:
        result: SuiteResult = run_async(
            lambda: run_suite(
                suite,
                make,
                target_description=description,
                overrides=overrides,
                on_progress=update,
            )
        )
    return result


def _run_with_lines(
    suite: Any, make: Any, description: str, overrides: Any, total: float
) -> SuiteResult:
    """`_run_with_bar` off a terminal: a plain progress line now and then, for logs."""
    from swarmperf.bench.suite import SuiteProgress, run_suite

    lines = ProgressLines()

    def update(p: SuiteProgress) -> None:
        share = f" ({min(p.done_s / total, 1.0):.0%} of the plan)" if total > 0 else ""
        failed = f", {p.failed:,} failed" if p.failed else ""
        lines.show(f"{p.suite}: {p.scenario} {p.phase}{share}, {p.sent:,} sent{failed}")

    with lines:
        result: SuiteResult = run_async(
            lambda: run_suite(
                suite,
                make,
                target_description=description,
                overrides=overrides,
                on_progress=update,
            )
        )
    return result


def _ms(value: float | None) -> str:
    return "[dim]n/a[/dim]" if value is None else f"{value * 1e3:,.1f} ms"


def _headline(s: ScenarioResult) -> str:
    """The figure each kind is about."""
    x = s.extra
    if s.kind == "stress":
        point = x.get("breaking_point")
        held = x.get("max_rate_held_per_s")
        held_text = "none" if held is None else f"{held:,.0f}/s"
        if point is None:
            return f"held up to {held_text}, did not break"
        return f"held {held_text}; broke at {point['asked_rate_per_s']:,.0f}/s"
    if s.kind == "spike":
        rec = s.summary.get("recovery_s")
        return "did not always recover" if rec is None else f"recovered in {rec:.2f} s (median)"
    if s.kind == "endurance":
        drift = x.get("latency_drift_s_per_s")
        leak = x.get("leak_suspected")
        drift_text = "n/a" if drift is None else f"{drift * 1e3:+.3f} ms/s"
        return f"drift {drift_text}; leak {'suspected' if leak else 'not suspected'}"
    if s.kind == "volume":
        return f"{x.get('tasks', 0):,} tasks per iteration"
    return f"{len(s.iterations)} iteration(s), {x.get('model', 'open')} model"


def _render(result: SuiteResult) -> None:
    # No borders and one space between columns: it fits 80 columns, the finding wraps and
    # a scenario's name is never cut.
    table = Table(title=f"Suite {result.suite!r}", box=None, collapse_padding=True)
    for col in ("scenario", "kind", "tasks/s", "p50", "p99", "errors", "achieved", "finding"):
        table.add_column(
            col,
            justify="left" if col in ("scenario", "kind", "finding") else "right",
            no_wrap=col != "finding",
            overflow="fold",
            ratio=1 if col == "finding" else None,
        )
    for s in result.scenarios:
        m = s.summary
        tput = m.get("throughput_per_s")
        rate = m.get("error_rate")
        ratio = m.get("achieved_ratio")
        table.add_row(
            s.name,
            s.kind,
            "[dim]n/a[/dim]" if tput is None else f"{tput:,.0f}",
            _ms(m.get("latency_p50_s")),
            _ms(m.get("latency_p99_s")),
            "[dim]n/a[/dim]" if rate is None else f"{rate:.2%}",
            "[dim]n/a[/dim]" if ratio is None else f"{ratio:.3f}",
            _headline(s),
        )
    out.print(table)
    for s in result.scenarios:
        for note in s.notes:
            out.print(f"[yellow]{s.name}[/yellow]: {note}", highlight=False)


def benchmark_suites(output: OutputOption = Output.table) -> None:
    """List the built-in benchmark suites and their scenarios."""
    from swarmperf.bench.scenarios import Overrides, builtin_suites, run_settings
    from swarmperf.bench.suite import planned_seconds
    from swarmperf.core.durations import format_duration

    rows: list[dict[str, Any]] = []
    for name, suite in builtin_suites().items():
        planned = sum(
            planned_seconds(s, run_settings(s, suite.defaults, Overrides()))
            for s in suite.scenarios
        )
        rows.append(
            {
                "name": name,
                "description": suite.description,
                "scenarios": [f"{s.name} ({s.kind})" for s in suite.scenarios],
                "planned_s": planned,
            }
        )
    if output is Output.json:
        print(json.dumps(rows))
        return
    table = Table(title="Benchmark suites (or give --suite a YAML file)")
    for col in ("name", "scenarios", "planned", "what it is for"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["name"],
            "\n".join(row["scenarios"]),
            format_duration(round(row["planned_s"])),
            row["description"],
        )
    out.print(table)

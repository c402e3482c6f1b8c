"""Judging suite results: quality-assess, detect-regression, benchmark-compare, error-analysis.

Exit codes: 0 every check passed, 1 a check failed (or had no data), 2 bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from swarmperf.cli._support import (
    DataDirOption,
    Output,
    OutputOption,
    RunOption,
    SwarmIdFilterOption,
    err,
    out,
    user_errors,
)
from swarmperf.core.durations import plural
from swarmperf.queries import suites as q
from swarmperf.queries.suites import SWARM_TARGET

if TYPE_CHECKING:
    from swarmperf.bench.ci import CheckReport
    from swarmperf.bench.error_patterns import ErrorAnalysis
    from swarmperf.bench.gate import GateReport
    from swarmperf.bench.quality import QualityReport

_STATUS_STYLE = {"pass": "green", "fail": "bold red", "no data": "yellow", "skipped": "dim"}

JunitOption = Annotated[
    Path | None, typer.Option("--junit", help="Also write the checks as JUnit XML here.")
]
MarkdownOption = Annotated[
    Path | None,
    typer.Option("--markdown", help="Also write a Markdown summary here (e.g. a CI step summary)."),
]


def register(app: typer.Typer) -> None:
    app.command("quality-assess")(quality_assess)
    app.command("detect-regression")(detect_regression)
    app.command("benchmark-compare")(benchmark_compare)
    app.command("error-analysis")(error_analysis)


# -- quality-assess -------------------------------------------------------------------------


def quality_assess(
    target: Annotated[
        str,
        typer.Option(
            "--target",
            help="A results file from benchmark-run; or 'swarm' (also 'swarm-performance'): "
            "the latest suite result stored in the data directory; or a swarm id: that "
            "swarm's latest stored suite result.",
        ),
    ] = SWARM_TARGET,
    criteria: Annotated[
        str,
        typer.Option(
            "--criteria", help="Comma-separated: throughput, latency, reliability, scalability."
        ),
    ] = "throughput,latency,reliability",
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            help="A threshold such as 'p(95)<200ms', 'rate<1%', 'throughput>500/s'; replaces "
            "the default with the same aggregate. Repeatable.",
        ),
    ] = None,
    suite: Annotated[
        str | None, typer.Option("--suite", help="With --target swarm: the suite's name.")
    ] = None,
    swarm_id: SwarmIdFilterOption = None,
    junit: JunitOption = None,
    markdown: MarkdownOption = None,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Check a suite result against SLA criteria: pass/fail per criterion, a 0-100 score, advice."""
    from swarmperf.bench.ci import write_outputs

    with user_errors():
        report = q.assess_quality(target, criteria, threshold or [], suite, swarm_id, data_dir)
        checks = q.quality_checks(report)
        write_outputs(checks, junit=junit, markdown=markdown)
    if output is Output.json:
        print(json.dumps(q.quality_payload(report, checks)))
    else:
        _quality_table(report)
    _exit(checks)


def _quality_table(report: QualityReport) -> None:
    from swarmperf.bench.thresholds import format_value

    table = Table(title=f"Quality of suite {report.suite}")
    for col in ("scenario", "group", "threshold", "measured", "margin", "status"):
        table.add_column(col, justify="right" if col in ("measured", "margin") else "left")
    for c in report.criteria:
        r = c.result
        kind = r.threshold.kind
        measured = "n/a" if r.value is None else format_value(kind, r.value)
        margin = "" if r.margin is None else format_value(kind, r.margin)
        status = f"[{_STATUS_STYLE[c.status]}]{c.status}[/]"
        table.add_row(c.scenario, c.group, r.expression, measured, margin, status)
    out.print(table)
    score = "n/a" if report.score is None else f"{report.score:.1f}/100"
    verdict = "[green]passed[/]" if report.passed else "[bold red]failed[/]"
    out.print(f"Score {score} (coverage {report.coverage:.0%}): {verdict}")
    for line in report.recommendations:
        out.print(f"  - {line}", highlight=False)
    for note in report.notes:
        out.print(f"[dim]{note}[/dim]")


def _exit(report: CheckReport) -> None:
    if report.exit_code:
        raise typer.Exit(code=report.exit_code)


# -- detect-regression ----------------------------------------------------------------------


def detect_regression(
    current: Annotated[
        Path, typer.Option("--current", help="The results file to judge (benchmark-run --out).")
    ],
    historical: Annotated[
        list[Path] | None,
        typer.Option(
            "--historical",
            help="A baseline results file; repeat it to give a history (ordered by start time).",
        ),
    ] = None,
    history: Annotated[
        str | None,
        typer.Option(
            "--history",
            metavar="SWARM",
            help="Use the store's earlier results of the same suite for this swarm id.",
        ),
    ] = None,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Significance level of the Mann-Whitney test.")
    ] = 0.01,
    min_change: Annotated[
        str,
        typer.Option("--min-change", help="Smallest change of the median that counts, e.g. 5%."),
    ] = "5%",
    recent: Annotated[
        int,
        typer.Option(
            "--recent", help="History: a worse change point in this many last runs fails."
        ),
    ] = 3,
    junit: JunitOption = None,
    markdown: MarkdownOption = None,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Gate a results file against a baseline file or the stored history (exit 1 on regression)."""
    from swarmperf.bench.ci import write_outputs

    with user_errors():
        gate = q.regression_gate(
            current,
            historical,
            history,
            data_dir,
            alpha=alpha,
            min_change=min_change,
            recent=recent,
        )
        checks = gate.to_check_report()
        write_outputs(checks, junit=junit, markdown=markdown)
    if output is Output.json:
        print(json.dumps(q.gate_payload(gate, checks)))
    else:
        _gate_table(gate)
    _exit(checks)


def _gate_table(gate: GateReport) -> None:
    table = Table(title=f"Regression gate ({gate.mode}), suite {gate.suite}")
    for col in ("scenario", "metric", "check", "baseline", "current", "change", "p", "status"):
        table.add_column(
            col, justify="right" if col in ("baseline", "current", "change", "p") else "left"
        )
    for c in gate.checks:
        cmp = c.comparison
        row = [c.scenario, c.metric, c.kind, *_comparison_cells(cmp)]
        table.add_row(*row, f"[{_STATUS_STYLE[c.status]}]{c.status}[/]")
    out.print(table)
    for c in gate.checks:
        if c.status in ("fail", "no data") or (c.kind == "changepoint" and c.change_points):
            out.print(f"  - {c.scenario}/{c.metric}: {c.message}", highlight=False)
    verdict = "[green]no regression[/]" if gate.passed else "[bold red]regression gate failed[/]"
    out.print(verdict)
    for note in gate.notes:
        out.print(f"[dim]{note}[/dim]")


def _comparison_cells(cmp: Any) -> list[str]:
    if cmp is None:
        return ["", "", "", ""]
    return [
        _num(cmp.baseline_median),
        _num(cmp.current_median),
        "" if cmp.change is None else f"{cmp.change:+.1%}",
        "" if cmp.p_value is None else f"{cmp.p_value:.2g}",
    ]


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


# -- benchmark-compare ----------------------------------------------------------------------


def benchmark_compare(
    baseline: Annotated[Path, typer.Argument(metavar="A.json", help="The baseline results.")],
    current: Annotated[Path, typer.Argument(metavar="B.json", help="The results to compare.")],
    alpha: Annotated[float, typer.Option("--alpha")] = 0.01,
    min_change: Annotated[str, typer.Option("--min-change")] = "5%",
    output: OutputOption = Output.table,
) -> None:
    """Two results side by side: medians, changes and Mann-Whitney verdicts (exit 1 if worse)."""
    with user_errors():
        gate = q.compare_files(baseline, current, alpha=alpha, min_change=min_change)
    if output is Output.json:
        print(json.dumps(gate.to_dict()))
    else:
        table = Table(title=f"{baseline.name} → {current.name}")
        for col in ("scenario", "metric", "A median", "B median", "change", "p", "verdict"):
            table.add_column(col, justify="left" if col in ("scenario", "metric") else "right")
        for c in gate.checks:
            verdict = _verdict(c)
            table.add_row(c.scenario, c.metric, *_comparison_cells(c.comparison), verdict)
        out.print(table)
        for note in gate.notes:
            out.print(f"[dim]{note}[/dim]")
    if gate.regressions:
        raise typer.Exit(code=1)


def _verdict(check: Any) -> str:
    cmp = check.comparison
    if check.status == "fail":
        return "[bold red]regression[/]"
    if cmp is None or check.status != "pass":
        return f"[{_STATUS_STYLE[check.status]}]{check.status}[/]"
    return {"better": "[green]better[/]", "worse": "[yellow]worse (n.s.)[/]"}.get(
        cmp.direction, "unchanged"
    )


# -- error-analysis -------------------------------------------------------------------------


def error_analysis(
    results: Annotated[
        Path | None, typer.Option("--results", help="A results file from benchmark-run.")
    ] = None,
    swarm_id: SwarmIdFilterOption = None,
    run: RunOption = None,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Group failures by message template and type: counts, first/last seen, trend."""
    with user_errors():
        analysis, source = q.analyse_errors(results, swarm_id, run, data_dir)
    if output is Output.json:
        print(json.dumps(q.error_payload(analysis, source)))
        return
    _analysis_table(analysis, source)


def _analysis_table(analysis: ErrorAnalysis, source: str) -> None:
    if not analysis.patterns:
        tasks = "" if analysis.tasks is None else f" of {analysis.tasks} tasks"
        out.print(f"No failures{tasks} in {source}.")
        return
    table = Table(title=f"Failures in {source}")
    for col in ("type", "template", "count", "share", "span", "trend"):
        table.add_column(col, justify="right" if col in ("count", "share", "span") else "left")
    for p in analysis.patterns:
        trend = "n/a" if p.trend is None else f"{p.trend.direction}"
        if p.trend is not None and p.trend.p_value is not None:
            trend += f" (p {p.trend.p_value:.2g})"
        span = f"{p.last_seen - p.first_seen:.3g} s"
        table.add_row(p.type, p.template, str(p.count), f"{p.share:.0%}", span, trend)
    out.print(table)
    rate = "" if analysis.error_rate is None else f" ({analysis.error_rate:.2%} of tasks)"
    failures = plural(analysis.failures, "failure")
    out.print(f"{failures}{rate}, {plural(len(analysis.patterns), 'pattern')}.")
    reasons = {p.trend_reason for p in analysis.patterns if p.trend_reason}
    for reason in sorted(reasons):
        err.print(f"[dim]no trend: {reason}[/dim]")

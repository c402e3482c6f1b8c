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
    UserError,
    err,
    find_run,
    open_store,
    out,
    user_errors,
)
from swarmperf.core.durations import plural

if TYPE_CHECKING:
    from swarmperf.bench.ci import CheckReport
    from swarmperf.bench.error_patterns import ErrorAnalysis
    from swarmperf.bench.gate import GateReport
    from swarmperf.bench.quality import QualityReport
    from swarmperf.bench.results import SuiteResult
    from swarmperf.store import RunRecord, Store

SWARM_TARGET = "swarm"
# Names --target takes for the latest stored suite result, beside a results file;
# `swarm-performance` is how the original command line spelled it.
STORED_TARGETS = (SWARM_TARGET, "swarm-performance")
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
    from swarmperf.bench.quality import assess, parse_criteria

    with user_errors():
        groups = parse_criteria(criteria)
        result = _target_result(target, suite, swarm_id, data_dir)
        report = assess(result, groups, threshold or [])
        checks = quality_checks(report)
        write_outputs(checks, junit=junit, markdown=markdown)
    if output is Output.json:
        print(json.dumps({**report.to_dict(), "exit_code": checks.exit_code}))
    else:
        _quality_table(report)
    _exit(checks)


def quality_checks(report: QualityReport) -> CheckReport:
    """The assessment as CI checks: one per criterion and scenario."""
    from swarmperf.bench.ci import Check, CheckReport
    from swarmperf.bench.thresholds import format_value

    checks = []
    for c in report.criteria:
        r = c.result
        value = "" if r.value is None else format_value(r.threshold.kind, r.value)
        message = c.recommendation or r.reason
        name = f"{c.group}: {r.expression}"
        checks.append(Check(c.scenario, name, c.status, message, value, r.expression, c.group))
    summary: dict[str, Any] = {
        "score (0-100)": None if report.score is None else round(report.score, 1),
        "coverage": f"{report.coverage:.0%}",
    }
    for group, score in report.group_scores.items():
        summary[f"{group} score"] = None if score is None else round(score, 1)
    title = f"Quality of suite {report.suite}"
    return CheckReport(title, tuple(checks), summary, report.notes)


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


def _target_result(
    target: str, suite: str | None, swarm_id: str | None, data_dir: Path | None
) -> SuiteResult:
    from swarmperf.bench.results import load_result

    if target not in STORED_TARGETS and not _is_name(target):
        if suite is not None or swarm_id is not None:
            raise UserError(
                "--suite/--swarm-id: they choose a stored result and only go with --target swarm."
            )
        return load_result(Path(target))
    if target not in STORED_TARGETS:
        # A name, not a file: a swarm's latest stored suite result.
        if swarm_id is not None and swarm_id != target:
            raise UserError(
                f"--swarm-id: {swarm_id!r} contradicts --target {target!r}, which names a "
                "swarm. Give one of them."
            )
        swarm_id = target
    db = open_store(data_dir, True, read_only=True)
    if db is None:  # pragma: no cover - open_store returns a store when enabled
        raise UserError("--data-dir: the store could not be opened.")
    with db:
        return _latest_stored(db, suite, swarm_id, target)


def _is_name(target: str) -> bool:
    """Whether --target names something stored rather than a results file: no such file,
    no folder in it and no file extension."""
    path = Path(target)
    return bool(target) and not path.exists() and len(path.parts) == 1 and not path.suffix


def _latest_stored(
    db: Store, suite: str | None, swarm_id: str | None, target: str = SWARM_TARGET
) -> SuiteResult:
    name = None if suite is None else f"suite:{suite}"
    for record in db.benchmarks(name, limit=1000):
        if not record.name.startswith("suite:"):
            continue
        if swarm_id is not None and record.swarm_id != swarm_id:
            continue
        return _stored_result(record.result, f"benchmark {record.id} in {db.path}")
    which = " ".join(
        part
        for part in (suite and f"of suite {suite}", swarm_id and f"for swarm {swarm_id}")
        if part
    )
    known = sorted(
        {
            r.swarm_id
            for r in db.benchmarks(limit=1000)
            if r.name.startswith("suite:") and r.swarm_id
        }
    )
    listed = f" Swarms with suite results: {', '.join(known)}." if known else ""
    raise UserError(
        f"--target {target}: the store at {db.path} holds no suite result {which}. Record one "
        "with `swarmperf benchmark-run`, or give a results file (no such file is there "
        f"either).{listed}"
    )


def _stored_result(data: dict[str, Any], where: str) -> SuiteResult:
    from pydantic import ValidationError

    from swarmperf.bench.results import SuiteResult

    try:
        return SuiteResult.model_validate(data)
    except ValidationError as exc:
        raise UserError(
            f"{where} is not a readable suite result ({exc.error_count()} problem(s)): it was "
            "written by another version. Run the suite again."
        ) from None


def _exit(report: CheckReport) -> None:
    if report.exit_code:
        raise typer.Exit(code=report.exit_code)


# -- detect-regression ----------------------------------------------------------------------


def parse_share(text: str, field: str) -> float:
    """0.05 from `5%` or `0.05`."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UserError(f"{field}: {text!r} is not valid. Use a share like 5% or 0.05.") from None
    if not 0 <= value < 10:
        raise UserError(f"{field}: {text!r} is not valid. Use a share >= 0 like 5% or 0.05.")
    return value


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
    from swarmperf.bench.gate import compare_results, gate_history
    from swarmperf.bench.results import load_result

    with user_errors():
        if bool(historical) == (history is not None):
            raise UserError(
                "--historical/--history: give exactly one: a baseline file (--historical "
                "baseline.json) or a swarm id whose stored results make the history."
            )
        share = parse_share(min_change, "--min-change")
        now = load_result(current)
        if historical and len(historical) == 1:
            base = load_result(historical[0])
            gate = compare_results(base, now, alpha=alpha, min_change=share)
        else:
            past = (
                _file_history(now, historical)
                if historical
                else _stored_history(now, history or "", data_dir)
            )
            gate = gate_history(past, now, alpha=alpha, min_change=share, recent=recent)
        checks = gate.to_check_report()
        write_outputs(checks, junit=junit, markdown=markdown)
    if output is Output.json:
        print(json.dumps({**gate.to_dict(), "exit_code": checks.exit_code}))
    else:
        _gate_table(gate)
    _exit(checks)


def _file_history(now: SuiteResult, paths: list[Path]) -> list[SuiteResult]:
    from swarmperf.bench.results import load_result

    # A glob over the results folder often catches the current file: it is not its own history.
    key = (now.started_at, now.finished_at)
    past = [r for r in map(load_result, paths) if (r.started_at, r.finished_at) != key]
    return sorted(past, key=lambda r: r.started_at)


def _stored_history(now: SuiteResult, swarm_id: str, data_dir: Path | None) -> list[SuiteResult]:
    db = open_store(data_dir, True, read_only=True)
    if db is None:  # pragma: no cover - open_store returns a store when enabled
        raise UserError("--data-dir: the store could not be opened.")
    with db:
        records = db.benchmarks(f"suite:{now.suite}", limit=1000)
        path = db.path
    past = [
        _stored_result(r.result, f"benchmark {r.id} in {path}")
        for r in records
        if r.swarm_id == swarm_id
    ]
    # The current run is usually stored too: it is not its own history.
    key = (now.started_at, now.finished_at)
    past = [r for r in past if (r.started_at, r.finished_at) != key]
    if not past:
        raise UserError(
            f"--history: {swarm_id!r} has no earlier results of suite {now.suite} in {path}. "
            f"Record some with `swarmperf benchmark-run --suite {now.suite} --swarm-id "
            f"{swarm_id}`, or give --historical baseline.json."
        )
    return sorted(past, key=lambda r: r.started_at)


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
    from swarmperf.bench.gate import compare_results
    from swarmperf.bench.results import load_result

    with user_errors():
        a, b = load_result(baseline), load_result(current)
        gate = compare_results(
            a, b, alpha=alpha, min_change=parse_share(min_change, "--min-change")
        )
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
    from swarmperf.bench.error_patterns import analyse_records, analyse_results
    from swarmperf.bench.results import load_result

    with user_errors():
        if (results is None) == (swarm_id is None):
            raise UserError("--results/--swarm-id: give exactly one: a results file or a swarm id.")
        if results is not None:
            if run is not None:
                raise UserError("--run: it chooses a stored run and only goes with --swarm-id.")
            suite = load_result(results)
            analysis = analyse_records((s.name, e) for s in suite.scenarios for e in s.errors)
            source = str(results)
        else:
            db = open_store(data_dir, True, read_only=True)
            if db is None:  # pragma: no cover - open_store returns a store when enabled
                raise UserError("--data-dir: the store could not be opened.")
            with db:
                record = _run_record(db, swarm_id or "", run)
                analysis = analyse_results(db.iter_results(record.id))
            source = record.label()
    if output is Output.json:
        print(json.dumps({"source": source, **_analysis_dict(analysis)}))
        return
    _analysis_table(analysis, source)


def _run_record(db: Store, swarm_id: str, run: str | None) -> RunRecord:
    if run is None:
        # The latest real run: a simulated one is looked at only when named with --run.
        latest = db.latest_run(swarm_id)
        if latest is None:
            raise UserError(
                f"--swarm-id: {swarm_id!r} has no stored runs in {db.path}. Run it with "
                "`swarmperf run`, or check --data-dir."
            )
        return latest
    return find_run(db, swarm_id, run)


def _analysis_dict(analysis: ErrorAnalysis) -> dict[str, Any]:
    return {
        "failures": analysis.failures,
        "tasks": analysis.tasks,
        "error_rate": analysis.error_rate,
        "notes": list(analysis.notes),
        "patterns": [
            {
                "type": p.type,
                "template": p.template,
                "count": p.count,
                "share": p.share,
                "first_seen": p.first_seen,
                "last_seen": p.last_seen,
                "examples": list(p.examples),
                "scenarios": list(p.scenarios),
                "trend": None
                if p.trend is None
                else {
                    "direction": p.trend.direction,
                    "p_value": p.trend.p_value,
                    "tau": p.trend.tau,
                    "buckets": p.trend.buckets,
                },
                "trend_reason": p.trend_reason,
            }
            for p in analysis.patterns
        ],
    }


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

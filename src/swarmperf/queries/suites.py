"""The questions both front-ends answer about benchmark suites: run one, judge its results.

Each checks what it is given and returns the JSON-able payload `-o json` prints (and the MCP
tool returns); the objects behind it are there for the command line's tables and exit codes.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmperf.core.errors import UserError
from swarmperf.queries.stored import find_run, open_store

if TYPE_CHECKING:
    from swarmperf.bench.ci import CheckReport
    from swarmperf.bench.error_patterns import ErrorAnalysis
    from swarmperf.bench.gate import GateReport
    from swarmperf.bench.quality import QualityReport
    from swarmperf.bench.results import ScenarioResult, SuiteResult
    from swarmperf.bench.suite import SuiteProgress
    from swarmperf.store import RunRecord, Store

SWARM_TARGET = "swarm"
# Names --target takes for the latest stored suite result, beside a results file;
# `swarm-performance` is how the original command line spelled it.
STORED_TARGETS = (SWARM_TARGET, "swarm-performance")


def target_result(
    target: str, suite: str | None, swarm_id: str | None, data_dir: Path | None
) -> SuiteResult:
    from swarmperf.bench.results import load_result

    if target not in STORED_TARGETS and not is_name(target):
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
    db = open_store(data_dir)
    with db:
        return latest_stored(db, suite, swarm_id, target)


def is_name(target: str) -> bool:
    """Whether --target names something stored rather than a results file: no such file,
    no folder in it and no file extension."""
    path = Path(target)
    return bool(target) and not path.exists() and len(path.parts) == 1 and not path.suffix


def latest_stored(
    db: Store, suite: str | None, swarm_id: str | None, target: str = SWARM_TARGET
) -> SuiteResult:
    name = None if suite is None else f"suite:{suite}"
    for record in db.benchmarks(name, limit=1000):
        if not record.name.startswith("suite:"):
            continue
        if swarm_id is not None and record.swarm_id != swarm_id:
            continue
        return stored_result(record.result, f"benchmark {record.id} in {db.path}")
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


def stored_result(data: dict[str, Any], where: str) -> SuiteResult:
    from pydantic import ValidationError

    from swarmperf.bench.results import SuiteResult

    try:
        return SuiteResult.model_validate(data)
    except ValidationError as exc:
        raise UserError(
            f"{where} is not a readable suite result ({exc.error_count()} problem(s)): it was "
            "written by another version. Run the suite again."
        ) from None


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


def file_history(now: SuiteResult, paths: list[Path]) -> list[SuiteResult]:
    from swarmperf.bench.results import load_result

    # A glob over the results folder often catches the current file: it is not its own history.
    key = (now.started_at, now.finished_at)
    past = [r for r in map(load_result, paths) if (r.started_at, r.finished_at) != key]
    return sorted(past, key=lambda r: r.started_at)


def stored_history(now: SuiteResult, swarm_id: str, data_dir: Path | None) -> list[SuiteResult]:
    db = open_store(data_dir)
    with db:
        records = db.benchmarks(f"suite:{now.suite}", limit=1000)
        path = db.path
    past = [
        stored_result(r.result, f"benchmark {r.id} in {path}")
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


def run_record(db: Store, swarm_id: str, run: str | None) -> RunRecord:
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


def analysis_dict(analysis: ErrorAnalysis) -> dict[str, Any]:
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


def check_writable(path: Path, option: str) -> None:
    """Refuse a results path that cannot be written before the suite runs, not after it."""
    if path.is_dir():
        problem = "it is a directory"
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Writing is the only sure test (permissions, a read-only file system, quotas).
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}."):
                pass
            if path.exists() and not os.access(path, os.W_OK):
                raise PermissionError(errno.EACCES, "the file is not writable")
        except OSError as exc:
            problem = exc.strerror or str(exc)
        else:
            return
    raise UserError(
        f"{option}: {str(path)!r} cannot be written ({problem}). Give a path in a writable "
        "directory."
    )


def scenario_data(s: ScenarioResult) -> dict[str, Any]:
    extra = {k: v for k, v in s.extra.items() if k not in ("curve", "windows")}
    return {
        "name": s.name,
        "kind": s.kind,
        "target": s.target,
        "summary": s.summary,
        "extra": extra,
        "errors": [e.model_dump(mode="json") for e in s.errors],
        "notes": s.notes,
    }


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


def assess_quality(
    target: str,
    criteria: str,
    thresholds: list[str],
    suite: str | None,
    swarm_id: str | None,
    data_dir: Path | None,
) -> QualityReport:
    """A suite result (a file, or the latest stored one) judged against SLA criteria."""
    from swarmperf.bench.quality import assess, parse_criteria

    groups = parse_criteria(criteria)
    result = target_result(target, suite, swarm_id, data_dir)
    return assess(result, groups, thresholds)


def quality_payload(report: QualityReport, checks: CheckReport) -> dict[str, Any]:
    """`quality-assess -o json`."""
    return {**report.to_dict(), "exit_code": checks.exit_code}


def regression_gate(
    current: Path,
    historical: list[Path] | None,
    history: str | None,
    data_dir: Path | None,
    *,
    alpha: float = 0.01,
    min_change: str = "5%",
    recent: int = 3,
) -> GateReport:
    """A results file gated against a baseline file, a history of files, or the store's
    earlier results of the same suite for the swarm `history`."""
    from swarmperf.bench.gate import compare_results, gate_history
    from swarmperf.bench.results import load_result

    if bool(historical) == (history is not None):
        raise UserError(
            "--historical/--history: give exactly one: a baseline file (--historical "
            "baseline.json) or a swarm id whose stored results make the history."
        )
    share = parse_share(min_change, "--min-change")
    now = load_result(current)
    if historical and len(historical) == 1:
        base = load_result(historical[0])
        return compare_results(base, now, alpha=alpha, min_change=share)
    past = (
        file_history(now, historical)
        if historical
        else stored_history(now, history or "", data_dir)
    )
    return gate_history(past, now, alpha=alpha, min_change=share, recent=recent)


def gate_payload(gate: GateReport, checks: CheckReport) -> dict[str, Any]:
    """`detect-regression -o json`."""
    return {**gate.to_dict(), "exit_code": checks.exit_code}


def compare_files(
    baseline: Path, current: Path, *, alpha: float = 0.01, min_change: str = "5%"
) -> GateReport:
    """`benchmark-compare`: two results files, scenario by scenario (its `to_dict` is the
    `-o json` payload)."""
    from swarmperf.bench.gate import compare_results
    from swarmperf.bench.results import load_result

    a, b = load_result(baseline), load_result(current)
    return compare_results(a, b, alpha=alpha, min_change=parse_share(min_change, "--min-change"))


def analyse_errors(
    results: Path | None, swarm_id: str | None, run: str | None, data_dir: Path | None
) -> tuple[ErrorAnalysis, str]:
    """The failures of a results file, or of a swarm's stored run, grouped by message
    template and type; with where they came from."""
    from swarmperf.bench.error_patterns import analyse_records, analyse_results
    from swarmperf.bench.results import load_result

    if (results is None) == (swarm_id is None):
        raise UserError("--results/--swarm-id: give exactly one: a results file or a swarm id.")
    if results is not None:
        if run is not None:
            raise UserError("--run: it chooses a stored run and only goes with --swarm-id.")
        suite = load_result(results)
        analysis = analyse_records((s.name, e) for s in suite.scenarios for e in s.errors)
        return analysis, str(results)
    with open_store(data_dir) as db:
        record = run_record(db, swarm_id or "", run)
        analysis = analyse_results(db.iter_results(record.id))
    return analysis, record.label()


def error_payload(analysis: ErrorAnalysis, source: str) -> dict[str, Any]:
    """`error-analysis -o json`."""
    return {"source": source, **analysis_dict(analysis)}


def run_benchmark(
    suite: str = "quick",
    *,
    duration: str | None = None,
    iterations: int | None = None,
    warmup: str | None = None,
    cooldown: str | None = None,
    spec: Path | None = None,
    target: str | None = None,
    request_timeout: str | None = None,
    out_path: Path | None = None,
    swarm_id: str | None = None,
    data_dir: Path | None = None,
    store: bool = True,
    run: Callable[..., SuiteResult] | None = None,
    on_progress: Callable[[SuiteProgress], None] | None = None,
) -> tuple[SuiteResult, Path, int | None]:
    """Run a benchmark suite against a swarm, a callable or a URL; write the results file
    and store them. `run(suite, make, description, overrides, total)` runs it (the command
    line's shows a bar); by default it runs here, telling `on_progress`."""
    import asyncio

    from swarmperf.bench.results import save_result
    from swarmperf.bench.scenarios import Overrides, load_suite, run_settings
    from swarmperf.bench.suite import (
        healthy_demo_spec,
        make_target_factory,
        planned_seconds,
        run_suite,
        store_result,
    )
    from swarmperf.core.durations import parse_duration
    from swarmperf.core.redact import redact_url
    from swarmperf.queries.runs import load_spec_or_demo
    from swarmperf.store import resolve_data_dir

    chosen = load_suite(suite)
    overrides = Overrides(
        duration=None if duration is None else parse_duration(duration, "--duration"),
        iterations=iterations,
        warmup=None if warmup is None else parse_duration(warmup, "--warmup"),
        cooldown=None if cooldown is None else parse_duration(cooldown, "--cooldown"),
    )
    swarm_spec = None
    if target is None:
        # No --spec: the demo swarm without its planted failures (a healthy first gate).
        swarm_spec = healthy_demo_spec() if spec is None else load_spec_or_demo(spec)
    elif spec is not None:
        raise UserError(
            f"--target: {redact_url(target)!r} and --spec were both given. Use --spec for "
            "a swarm, --target for a URL or a callable."
        )
    make, description = make_target_factory(
        target,
        swarm_spec,
        scenarios=chosen.scenarios,
        request_timeout=None
        if request_timeout is None
        else parse_duration(request_timeout, "--request-timeout"),
    )
    if swarm_id is None and swarm_spec is not None:
        swarm_id = swarm_spec.swarm_id
    directory = resolve_data_dir(data_dir, os.environ)
    path = out_path or directory / "results" / (
        f"{chosen.suite}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    # Everything the results go to is checked before the first scenario: a suite can
    # take hours, and results that cannot be written at the end are lost.
    check_writable(path, "--out" if out_path is not None else "--data-dir")
    total = sum(
        planned_seconds(s, run_settings(s, chosen.defaults, overrides)) for s in chosen.scenarios
    )
    benchmark_id = None
    db = open_store(data_dir, read_only=False) if store else None
    try:
        if run is not None:
            result = run(chosen, make, description, overrides, total)
        else:
            result = asyncio.run(
                run_suite(
                    chosen,
                    make,
                    target_description=description,
                    overrides=overrides,
                    on_progress=on_progress,
                )
            )
        save_result(result, path)
        if db is not None:
            benchmark_id = store_result(db, result, swarm_id)
    finally:
        if db is not None:
            db.close()
    return result, path, benchmark_id


def benchmark_payload(result: SuiteResult, path: Path, benchmark_id: int | None) -> dict[str, Any]:
    """`benchmark-run -o json`."""
    from swarmperf.bench.suite import every_request_failed

    all_failed = every_request_failed(result)
    return {
        "path": str(path),
        "benchmark_id": benchmark_id,
        "suite": result.suite,
        "all_failed": all_failed is not None,
        "scenarios": [scenario_data(s) for s in result.scenarios],
    }

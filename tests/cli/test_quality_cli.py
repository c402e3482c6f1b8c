"""The judging commands through the real CLI: files, the store, exit codes and CI outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmperf.bench.results import ErrorRecord, SuiteResult, save_result
from swarmperf.cli.main import app
from swarmperf.core.model import TaskResult, TaskStatus
from swarmperf.store import Store, database_path
from tests.bench.test_gate import _run
from tests.bench.test_quality import iteration, scenario, suite

runner = CliRunner()


def _save(result: SuiteResult, path: Path) -> Path:
    save_result(result, path)
    return path


def _healthy(tmp_path: Path) -> Path:
    return _save(suite(scenario()), tmp_path / "healthy.json")


def _failing(tmp_path: Path) -> Path:
    its = [iteration(i, failed=4) for i in range(5)]
    errors = [
        ErrorRecord(
            type="TimeoutError",
            message="task t1 timed out after 2 s",
            count=20,
            first_seen=1.0,
            last_seen=9.0,
        )
    ]
    return _save(suite(scenario(iterations=its, errors=errors)), tmp_path / "failing.json")


def test_quality_assess_passes_a_healthy_result(tmp_path: Path) -> None:
    result = runner.invoke(app, ["quality-assess", "--target", str(_healthy(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "Score 100.0/100" in result.output
    assert "passed" in result.output


def test_quality_assess_fails_with_exit_1_and_writes_ci_outputs(tmp_path: Path) -> None:
    junit, markdown = tmp_path / "junit.xml", tmp_path / "summary.md"
    result = runner.invoke(
        app,
        [
            "quality-assess", "--target", str(_failing(tmp_path)),
            "--criteria", "reliability,latency",
            "--threshold", "p(95)<1ms",
            "--junit", str(junit), "--markdown", str(markdown),
            "--output", "json",
        ],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["passed"] is False
    assert data["exit_code"] == 1
    statuses = {c["threshold"]: c["status"] for c in data["criteria"]}
    assert statuses == {
        "availability>=99.9%": "fail",
        "rate<=0.1%": "fail",
        "p(99)<=1000ms": "pass",
        "p(95)<1ms": "fail",
    }
    assert any("TimeoutError" in r for r in data["recommendations"])
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures")) == ("4", "3")
    assert "❌ failed" in markdown.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--threshold", "p(95)<<1ms"], "At column 7"),
        (["--criteria", "speed"], "--criteria"),
        (["--target", "missing.json"], "does not exist"),
        (["--threshold", "rate<1%", "--criteria", "latency"], "add reliability"),
    ],
)
def test_quality_assess_bad_input_is_exit_2_without_a_traceback(
    tmp_path: Path, args: list[str], says: str
) -> None:
    target = ["--target", str(_healthy(tmp_path))] if "--target" not in args else []
    result = runner.invoke(app, ["quality-assess", *target, *args])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("option", ["--junit", "--markdown"])
def test_an_unwritable_report_path_is_exit_2_not_a_failed_check(
    tmp_path: Path, option: str
) -> None:
    (tmp_path / "a-file").write_text("")
    bad = str(tmp_path / "a-file" / "report")
    healthy = str(_healthy(tmp_path))
    for args in (
        ["quality-assess", "--target", healthy],
        ["detect-regression", "--current", healthy, "--historical", healthy],
    ):
        result = runner.invoke(app, [*args, option, bad])
        assert result.exit_code == 2, result.output
        assert option in result.output
        assert "Traceback" not in result.output


def test_quality_assess_swarm_reads_the_latest_stored_suite(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    empty = runner.invoke(app, ["quality-assess", "--data-dir", str(data_dir)])
    assert empty.exit_code == 2
    assert "benchmark-run" in empty.output
    with Store.open(database_path(data_dir)) as store:
        slow = suite(scenario(latencies=[2.0] * 50))
        store.record_benchmark("suite:quick", slow.model_dump(mode="json"), "s1")
        store.record_benchmark("suite:quick", suite(scenario()).model_dump(mode="json"), "s2")
    latest = runner.invoke(app, ["quality-assess", "--data-dir", str(data_dir)])
    assert latest.exit_code == 0, latest.output
    older = runner.invoke(app, ["quality-assess", "--data-dir", str(data_dir), "--swarm-id", "s1"])
    assert older.exit_code == 1, older.output


def test_detect_regression_against_a_baseline_file(tmp_path: Path) -> None:
    base = _save(_run(0.1, seed=1), tmp_path / "base.json")
    same = _save(_run(0.1, seed=2), tmp_path / "same.json")
    slow = _save(_run(0.13, seed=3), tmp_path / "slow.json")
    ok = runner.invoke(
        app, ["detect-regression", "--current", str(same), "--historical", str(base)]
    )
    assert ok.exit_code == 0, ok.output
    assert "no regression" in ok.output
    junit = tmp_path / "gate.xml"
    bad = runner.invoke(
        app,
        ["detect-regression", "--current", str(slow), "--historical", str(base),
         "--min-change", "10%", "--junit", str(junit), "--output", "json"],
    )  # fmt: skip
    assert bad.exit_code == 1, bad.output
    data = json.loads(bad.stdout)
    assert data["regressions"] == ["steady/latency_p95_s"]
    latency = next(c for c in data["checks"] if c["metric"] == "latency_p95_s")
    assert latency["comparison"]["direction"] == "worse"
    failures = ET.parse(junit).getroot().findall(".//failure")
    assert len(failures) == 1
    lax = runner.invoke(
        app,
        ["detect-regression", "--current", str(slow), "--historical", str(base),
         "--min-change", "50%"],
    )  # fmt: skip
    assert lax.exit_code == 0, lax.output


def test_detect_regression_over_history_files_and_the_store(tmp_path: Path) -> None:
    paths = [
        _save(_run(0.1, seed=i, started=1000.0 + i), tmp_path / f"h{i}.json") for i in range(6)
    ]
    slow = _run(0.13, seed=50, started=2000.0)
    slow_path = _save(slow, tmp_path / "slow.json")
    history_args = [arg for p in paths for arg in ("--historical", str(p))]
    by_files = runner.invoke(app, ["detect-regression", "--current", str(slow_path), *history_args])
    assert by_files.exit_code == 1, by_files.output
    data_dir = tmp_path / "data"
    with Store.open(database_path(data_dir)) as store:
        for i in range(6):
            result = _run(0.1, seed=i, started=1000.0 + i)
            store.record_benchmark("suite:quick", result.model_dump(mode="json"), "prod")
        store.record_benchmark("suite:quick", slow.model_dump(mode="json"), "prod")
    by_store = runner.invoke(
        app,
        ["detect-regression", "--current", str(slow_path), "--history", "prod",
         "--data-dir", str(data_dir), "--output", "json"],
    )  # fmt: skip
    assert by_store.exit_code == 1, by_store.output
    assert json.loads(by_store.stdout)["mode"] == "history"
    unknown = runner.invoke(
        app,
        ["detect-regression", "--current", str(slow_path), "--history", "nobody",
         "--data-dir", str(data_dir)],
    )  # fmt: skip
    assert unknown.exit_code == 2
    assert "no earlier results" in unknown.output


def test_the_current_file_among_the_historical_ones_is_not_its_own_history(
    tmp_path: Path,
) -> None:
    paths = [
        _save(_run(0.1, seed=i, started=1000.0 + i), tmp_path / f"h{i}.json") for i in range(6)
    ]
    slow = _save(_run(0.13, seed=50, started=2000.0), tmp_path / "slow.json")
    history_args = [arg for p in [*paths, slow] for arg in ("--historical", str(p))]
    result = runner.invoke(
        app, ["detect-regression", "--current", str(slow), *history_args, "--output", "json"]
    )
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["notes"] == ["6 earlier results of suite quick"]
    latency = next(
        c for c in data["checks"] if c["metric"] == "latency_p95_s" and c["kind"] == "history"
    )
    assert latency["status"] == "fail"  # against the six earlier runs, not against itself


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ([], "give exactly one"),
        (["--historical", "x.json", "--history", "s"], "give exactly one"),
        (["--historical", "{base}", "--min-change", "lots"], "--min-change"),
        (["--historical", "{base}", "--alpha", "2"], "--alpha"),
    ],
)
def test_detect_regression_bad_input_is_exit_2(tmp_path: Path, extra: list[str], says: str) -> None:
    base = _save(_run(0.1), tmp_path / "base.json")
    args = [a.replace("{base}", str(base)) for a in extra]
    result = runner.invoke(app, ["detect-regression", "--current", str(base), *args])
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_benchmark_compare_shows_both_sides_and_the_verdicts(tmp_path: Path) -> None:
    a = _save(_run(0.1, 200.0, seed=1), tmp_path / "a.json")
    b = _save(_run(0.1, 260.0, seed=2), tmp_path / "b.json")
    table = runner.invoke(app, ["benchmark-compare", str(a), str(b)])
    assert table.exit_code == 0, table.output
    assert "better" in table.output
    assert "a.json → b.json" in table.output
    data = json.loads(
        runner.invoke(app, ["benchmark-compare", str(b), str(a), "-o", "json"]).stdout
    )
    assert data["regressions"] == ["steady/throughput_per_s"]
    worse = runner.invoke(app, ["benchmark-compare", str(b), str(a)])
    assert worse.exit_code == 1
    assert "regression" in worse.output


def test_error_analysis_of_a_results_file(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["error-analysis", "--results", str(_failing(tmp_path)), "--output", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (pattern,) = data["patterns"]
    assert pattern["template"] == "task <id> timed out after <num> s"
    assert pattern["count"] == 20
    assert pattern["trend"] is None


def test_error_analysis_of_a_stored_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with Store.open(database_path(data_dir)) as store:
        run_id = store.start_run("s1", {}, "local", "round-robin")
        results = [
            TaskResult(
                task_id=f"t{i}",
                status=TaskStatus.FAILED if i % 4 == 0 else TaskStatus.SUCCEEDED,
                agent="a1",
                attempts=1,
                queued_at=float(i),
                started_at=float(i),
                finished_at=float(i) + 0.5,
                error=f"ValueError: bad payload {i}" if i % 4 == 0 else None,
            )
            for i in range(100)
        ]
        store.record_results(run_id, results)
        store.finish_run(run_id, {}, "finished")
    args = ["error-analysis", "--swarm-id", "s1", "--data-dir", str(data_dir)]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "bad payload <num>" in table.output
    data = json.loads(runner.invoke(app, [*args, "--run", str(run_id), "-o", "json"]).stdout)
    assert data["failures"] == 25
    assert data["tasks"] == 100
    assert data["patterns"][0]["type"] == "ValueError"
    assert data["patterns"][0]["trend"]["direction"] == "none"
    wrong = runner.invoke(app, [*args, "--run", "999"])
    assert wrong.exit_code == 2
    assert "not a run of swarm" in wrong.output
    nobody = runner.invoke(app, ["error-analysis", "--swarm-id", "x", "--data-dir", str(data_dir)])
    assert nobody.exit_code == 2


def test_quality_assess_takes_a_name_for_the_stored_suite(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with Store.open(database_path(data_dir)) as store:
        slow = suite(scenario(latencies=[2.0] * 50))
        store.record_benchmark("suite:quick", slow.model_dump(mode="json"), "slowpoke")
        store.record_benchmark("suite:quick", suite(scenario()).model_dump(mode="json"), "prod")
    base = ["quality-assess", "--data-dir", str(data_dir), "--target"]
    # The original command line's name for the latest suite result of the swarm.
    named = runner.invoke(app, [*base, "swarm-performance"])
    assert named.exit_code == 0, named.output
    # A swarm id: that swarm's latest suite result.
    assert runner.invoke(app, [*base, "prod"]).exit_code == 0
    assert runner.invoke(app, [*base, "slowpoke"]).exit_code == 1
    unknown = runner.invoke(app, [*base, "nosuch"])
    assert unknown.exit_code == 2
    assert "nosuch" in unknown.output
    assert "prod, slowpoke" in unknown.output
    assert "Traceback" not in unknown.output


def _store_failing_run(data_dir: Path, swarm: str, failures: int, kind: str = "real") -> int:
    with Store.open(database_path(data_dir)) as store:
        run_id = store.start_run(swarm, {}, "local", "round-robin", kind=kind)
        results = [
            TaskResult(
                task_id=f"t{i}",
                status=TaskStatus.FAILED if i < failures else TaskStatus.SUCCEEDED,
                agent="a1",
                attempts=1,
                queued_at=float(i),
                started_at=float(i),
                finished_at=float(i) + 0.5,
                error="ValueError: bad payload" if i < failures else None,
            )
            for i in range(10)
        ]
        store.record_results(run_id, results)
        store.finish_run(run_id, {}, "completed")
    return run_id


def test_error_analysis_counts_agree_and_names_the_run_per_swarm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _store_failing_run(data_dir, "other", 3)
    _store_failing_run(data_dir, "prod", 1)
    result = runner.invoke(
        app, ["error-analysis", "--swarm-id", "prod", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "1 failure (10.00% of tasks), 1 pattern." in text
    assert "run 1 of swarm 'prod' (id 2)" in text


def test_error_analysis_looks_at_the_latest_real_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    real = _store_failing_run(data_dir, "prod", 2)
    simulated = _store_failing_run(data_dir, "prod", 7, kind="simulated")
    args = ["error-analysis", "--swarm-id", "prod", "--data-dir", str(data_dir), "-o", "json"]
    latest = json.loads(runner.invoke(app, args).stdout)
    assert latest["failures"] == 2
    assert latest["source"] == f"run 1 of swarm 'prod' (id {real})"
    named = json.loads(runner.invoke(app, [*args, "--run", "sim:1"]).stdout)
    assert named["failures"] == 7
    assert named["source"] == f"simulated run 1 of swarm 'prod' (id {simulated})"


def test_error_analysis_run_is_the_swarms_number_or_an_id(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    other = _store_failing_run(data_dir, "other", 1)
    _store_failing_run(data_dir, "other", 1)
    first = _store_failing_run(data_dir, "prod", 2)
    simulated = _store_failing_run(data_dir, "prod", 4, kind="simulated")
    second = _store_failing_run(data_dir, "prod", 3)
    args = ["error-analysis", "--swarm-id", "prod", "--data-dir", str(data_dir), "-o", "json"]

    def source(run: str) -> str:
        result = runner.invoke(app, [*args, "--run", run])
        assert result.exit_code == 0, result.output
        return str(json.loads(result.stdout)["source"])

    assert source("2") == f"run 2 of swarm 'prod' (id {second})"
    assert source("1") == f"run 1 of swarm 'prod' (id {first})"
    assert source("sim:1") == f"simulated run 1 of swarm 'prod' (id {simulated})"
    assert source(f"id:{first}") == f"run 1 of swarm 'prod' (id {first})"
    for unknown in ("3", "sim:2", f"id:{other}", "0", "id:" + "9" * 30):
        result = runner.invoke(app, [*args, "--run", unknown])
        assert result.exit_code == 2, unknown
        error = json.loads(result.stdout)["error"]
        assert (error["field"], error["value"]) == ("--run", unknown)
        # The swarm's runs, as the user may name them.
        assert f"1 (id {first}), 2 (id {second})" in error["fix"]
        assert f"sim:1 (id {simulated})" in error["fix"]
        assert error["fix"] in " ".join(result.stderr.split())
    wrong = runner.invoke(app, [*args, "--run", "latest"])
    assert wrong.exit_code == 2
    assert "id:N" in json.loads(wrong.stdout)["error"]["fix"]

"""`swarmperf benchmark-run` and `benchmark-suites` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmperf.bench.results import load_result
from swarmperf.cli.main import app
from swarmperf.store import Store

runner = CliRunner()
calls = 0


def noop() -> None:
    global calls
    calls += 1


def test_suites_are_listed() -> None:
    result = runner.invoke(app, ["benchmark-suites", "--output", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"quick", "comprehensive"}
    assert rows["quick"]["planned_s"] < 60
    assert "burst (spike)" in rows["quick"]["scenarios"]
    table = runner.invoke(app, ["benchmark-suites"])
    assert table.exit_code == 0
    assert "comprehensive" in table.stdout


def test_a_user_suite_against_a_callable(tmp_path: Path) -> None:
    suite = tmp_path / "mine.yaml"
    suite.write_text(
        "suite: mine\n"
        "defaults: {duration: 300ms, iterations: 2, warmup: 0s, cooldown: 0s}\n"
        "scenarios:\n"
        "  - {name: paced, kind: load, rate: 100/s, arrival: constant}\n"
    )
    out = tmp_path / "out" / "r.json"
    before = calls
    result = runner.invoke(
        app,
        [
            "benchmark-run",
            "--suite",
            str(suite),
            "--target",
            f"{__name__}:noop",
            "--out",
            str(out),
            "--data-dir",
            str(tmp_path / "data"),
            "--output",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    reply = json.loads(result.stdout.strip().splitlines()[-1])
    assert reply["path"] == str(out)
    saved = load_result(out)
    (scenario,) = saved.scenarios
    assert [it.asked for it in scenario.iterations] == [30, 30]
    assert calls - before == 60
    assert scenario.target == f"{__name__}:noop"
    with Store.open(tmp_path / "data" / "swarmperf.db") as store:
        (record,) = store.benchmarks("suite:mine")
    assert record.id == reply["benchmark_id"]
    assert record.swarm_id is None


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--suite", "nope"], "--suite: 'nope'"),
        (["--duration", "soon"], "--duration: 'soon'"),
        (["--iterations", "0"], "--iterations: 0"),
        (["--target", "nonsense"], "module:function"),
        (["--target", "http://127.0.0.1:1/", "--spec", "x.yaml"], "--target"),
        (["--spec", "does-not-exist.yaml"], "does not exist"),
    ],
)
def test_user_errors_exit_2_without_a_traceback(args: list[str], says: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["benchmark-run", "--data-dir", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "results").exists()  # nothing half-written


def test_an_unwritable_out_path_is_exit_2_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    before = calls
    result = runner.invoke(
        app,
        [
            "benchmark-run",
            "--target",
            f"{__name__}:noop",
            "--out",
            str(tmp_path / "a-file" / "r.json"),
            "--data-dir",
            str(tmp_path / "data"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "--out" in result.output
    assert "Traceback" not in result.output
    assert calls == before  # refused before the suite ran, not after


def test_a_bad_suite_file_lists_its_problems(tmp_path: Path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text("suite: bad\nscenarios:\n  - {name: a, kind: spike, baseline_rate: 5}\n")
    result = runner.invoke(app, ["benchmark-run", "--suite", str(suite)])
    assert result.exit_code == 2
    assert "scenarios[0].spike_rate" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_the_quick_suite_end_to_end_on_the_local_swarm(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "benchmark-run",
            "--suite",
            "quick",
            "--iterations",
            "1",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--cooldown",
            "0s",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Results written to" in result.stdout
    (path,) = (tmp_path / "results").glob("quick-*.json")
    saved = load_result(path)
    assert [s.kind for s in saved.scenarios] == ["load", "stress", "volume", "endurance", "spike"]
    for scenario in saved.scenarios:
        assert scenario.target == "swarm:demo:sleep"
        assert scenario.iterations
        assert scenario.summary["throughput_per_s"] is not None
    with Store.open(tmp_path / "swarmperf.db") as store:
        (record,) = store.benchmarks("suite:quick")
    assert record.swarm_id == "demo"


@pytest.mark.parametrize("where", ["--out", "--data-dir"])
def test_every_place_results_go_is_checked_before_anything_runs(where: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    blocked = tmp_path / "a-file" / "below"
    paths = {"--out": tmp_path / "r.json", "--data-dir": tmp_path / "data"}
    paths[where] = blocked / "r.json" if where == "--out" else blocked
    before = calls
    result = runner.invoke(
        app,
        [
            "benchmark-run",
            "--target",
            f"{__name__}:noop",
            "--out",
            str(paths["--out"]),
            "--data-dir",
            str(paths["--data-dir"]),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert calls == before  # refused before the suite ran, not after
    assert not (tmp_path / "r.json").exists()


def test_an_out_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    before = calls
    result = runner.invoke(
        app,
        ["benchmark-run", "--target", f"{__name__}:noop", "--out", str(tmp_path)],
    )
    assert result.exit_code == 2, result.output
    assert "directory" in result.output
    assert calls == before


def test_a_target_module_in_the_current_directory_needs_no_pythonpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    (tmp_path / "mytarget_here.py").write_text("def handle():\n    return 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        "suite: tiny\n"
        "defaults: {duration: 100ms, iterations: 1, warmup: 0s, cooldown: 0s}\n"
        "scenarios:\n"
        "  - {name: paced, kind: load, rate: 50/s, arrival: constant}\n"
    )
    result = runner.invoke(
        app,
        [
            "benchmark-run",
            "--suite",
            str(suite),
            "--target",
            "mytarget_here:handle",
            "--out",
            str(tmp_path / "r.json"),
            "--no-store",
        ],
    )
    assert result.exit_code == 0, result.output
    assert load_result(tmp_path / "r.json").scenarios[0].target == "mytarget_here:handle"


def test_the_results_table_fits_80_columns(tmp_path: Path) -> None:
    suite = tmp_path / "mine.yaml"
    suite.write_text(
        "suite: mine\n"
        "defaults: {duration: 100ms, iterations: 1, warmup: 0s, cooldown: 0s}\n"
        "scenarios:\n"
        "  - {name: a-rather-long-scenario-name, kind: load, rate: 50/s, arrival: constant}\n"
    )
    narrow = CliRunner(env={"COLUMNS": "80"})
    result = narrow.invoke(
        app,
        [
            "benchmark-run",
            "--suite",
            str(suite),
            "--target",
            f"{__name__}:noop",
            "--out",
            str(tmp_path / "r.json"),
            "--no-store",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert any("a-rather-long-scenario-name" in line for line in lines)

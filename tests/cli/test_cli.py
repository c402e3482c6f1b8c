"""The command line: every command, good and bad input, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmperf.cli.main import app
from swarmperf.store import Store, database_path

runner = CliRunner(env={"COLUMNS": "200"})

SMALL_SPEC = """\
swarm_id: small
strategy: least-loaded
seed: 3
agents:
  - id: a
    count: 3
  - id: slow
    slowdown: 4
workload:
  tasks: 200
  kind: sleep
  size: {distribution: pareto, mean: 1ms, alpha: 1.5}
  failure_rate: 0.05
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SPEC)
    return path


def test_run_stores_the_run_and_reports_json(spec_file: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = runner.invoke(
        app, ["run", str(spec_file), "--output", "json", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["tasks_total"] == 200
    assert report["tasks_failed"] > 0  # the spec asks for 5% failing tasks
    assert report["tasks_succeeded"] + report["tasks_failed"] == 200
    assert report["latency_p99"] >= report["latency_p50"] > 0
    assert 0 < report["jain_index"] <= 1
    assert {row["id"] for row in report["agents"]} == {"a-0", "a-1", "a-2", "slow"}
    with Store.open(database_path(data_dir)) as store:
        run = store.get_run(report["run_id"])
        assert run is not None
        assert run.status == "completed"
        assert run.swarm_id == "small"
        assert store.count_results(report["run_id"]) == 200


def test_run_overrides_from_the_command_line(spec_file: Path) -> None:
    result = runner.invoke(
        app,
        [
            "run",
            str(spec_file),
            "--no-store",
            "-o",
            "json",
            "--strategy",
            "round-robin",
            "--swarm-id",
            "other",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["strategy"] == "round-robin"
    assert report["swarm_id"] == "other"
    assert report["run_id"] is None


def test_run_duration_cancels_what_has_not_started(tmp_path: Path) -> None:
    spec = tmp_path / "long.yaml"
    spec.write_text(SMALL_SPEC.replace("tasks: 200", "tasks: 5000").replace("1ms", "20ms"))
    result = runner.invoke(
        app, ["run", str(spec), "--no-store", "-o", "json", "--duration", "0.3s"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["tasks_cancelled"] > 0
    assert report["tasks_total"] == 5000  # every task accounted for
    assert report["wall_seconds"] < 5


def test_demo_runs_with_no_spec(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "makespan / lower bound" in result.stdout
    assert "slow" in result.stdout


def test_load_balance_compares_and_marks_the_best(spec_file: Path) -> None:
    result = runner.invoke(
        app,
        [
            "load-balance",
            "--strategy",
            "auto",
            "--workload",
            str(spec_file),
            "--no-store",
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data["strategies"]) >= {"round-robin", "capacity-aware", "work-stealing"}
    best = data["best"]
    makespans = {n: r["makespan"] for n, r in data["strategies"].items()}
    assert makespans[best] == min(makespans.values())


def test_load_balance_table_marks_the_best(spec_file: Path) -> None:
    result = runner.invoke(
        app,
        ["load-balance", "--strategy", "power-of-two", "--workload", str(spec_file), "--no-store"],
    )
    assert result.exit_code == 0, result.output
    assert "* power-of-two" in result.stdout


def test_validate_accepts_a_good_spec(spec_file: Path) -> None:
    result = runner.invoke(app, ["validate", str(spec_file)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("least-loaded", "fastest"), ["strategy", "'fastest'", "capacity-aware"]),
        (("slowdown: 4", "slowdown: -4"), ["agents[1].slowdown", "-4"]),
        (("mean: 1ms", "mean: soon"), ["workload.size.mean", "'soon'", "30s"]),
        (("seed: 3", "seeed: 3"), ["seeed", "seed"]),
    ],
)
def test_bad_specs_are_explained(
    spec_file: Path, change: tuple[str, str], expected: list[str]
) -> None:
    spec_file.write_text(SMALL_SPEC.replace(*change))
    for command in (["validate", str(spec_file)], ["run", str(spec_file), "--no-store"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        for fragment in expected:
            assert fragment in result.output
        assert "Traceback" not in result.output


def test_unknown_strategy_on_the_command_line(spec_file: Path) -> None:
    result = runner.invoke(
        app, ["load-balance", "--strategy", "random", "--workload", str(spec_file)]
    )
    assert result.exit_code == 2
    assert "'random'" in result.output
    assert "work-stealing" in result.output


def test_bad_duration_flag(spec_file: Path) -> None:
    result = runner.invoke(app, ["run", str(spec_file), "--duration", "forever", "--no-store"])
    assert result.exit_code == 2
    assert "--duration" in result.output
    assert "'forever'" in result.output


def test_missing_spec_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml" in result.output
    assert "does not exist" in result.output


def test_unknown_task_kind_is_caught_before_running(spec_file: Path) -> None:
    spec_file.write_text(SMALL_SPEC.replace("kind: sleep", "kind: teleport"))
    result = runner.invoke(app, ["run", str(spec_file), "--no-store"])
    assert result.exit_code == 2
    assert "workload.kind" in result.output
    assert "'teleport'" in result.output


def test_strategies_and_demo_spec_commands() -> None:
    listed = runner.invoke(app, ["strategies", "-o", "json"])
    assert listed.exit_code == 0
    names = {row["name"] for row in json.loads(listed.stdout)}
    assert "cfs" in names
    demo = runner.invoke(app, ["demo-spec"])
    assert demo.exit_code == 0
    assert "slowdown" in demo.stdout


def test_console_script_reports_user_errors_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents: []\nstrategy: nope\n")
    proc = subprocess.run(
        [sys.executable, "-m", "swarmperf", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "strategy" in proc.stderr
    assert "agents" in proc.stderr


def test_simulate_scales_agents_and_tasks_in_virtual_time(spec_file: Path) -> None:
    result = runner.invoke(
        app,
        [
            "simulate",
            str(spec_file),
            "--agents",
            "40",
            "--tasks",
            "5000",
            "--no-store",
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "sim"
    assert report["tasks_total"] == 5000
    assert len(report["agents"]) == 40
    assert report["makespan"] > 0


def test_load_balance_on_the_sim_backend(spec_file: Path) -> None:
    result = runner.invoke(
        app,
        [
            "load-balance",
            "--backend",
            "sim",
            "--workload",
            str(spec_file),
            "--no-store",
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(r["backend"] == "sim" for r in data["strategies"].values())
    assert (
        data["strategies"]["round-robin"]["makespan"] > data["strategies"][data["best"]]["makespan"]
    )


def test_simulate_rejects_a_bad_agent_count(spec_file: Path) -> None:
    result = runner.invoke(app, ["simulate", str(spec_file), "--agents", "0"])
    assert result.exit_code == 2
    assert "--agents" in result.output


def test_address_without_the_ray_backend_is_a_user_error(spec_file: Path) -> None:
    result = runner.invoke(app, ["run", str(spec_file), "--address", "auto", "--no-store"])
    assert result.exit_code == 2
    assert "--address: 'auto' only applies to the ray backend" in result.output
    assert "Traceback" not in result.output


def test_error_messages_keep_their_square_brackets(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents: [{id: w, weight: -1}]\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "agents[w].weight" in result.output or "agents[0].weight" in result.output


def test_metrics_port_out_of_range_names_the_field(spec_file: Path) -> None:
    result = runner.invoke(app, ["run", str(spec_file), "--metrics-port", "70000", "--no-store"])
    assert result.exit_code == 2
    assert "monitor.metrics_port" in result.output

"""The command line: every command, good and bad input, exit codes and messages."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# -- output that reads well in a terminal, a pipe and a CI log -----------------------------


def test_load_balance_fits_80_columns_with_every_name_whole(spec_file: Path) -> None:
    from swarmperf.balancing.strategies import STRATEGIES

    narrow = CliRunner(env={"COLUMNS": "80"})
    args = ["load-balance", "--workload", str(spec_file), "--backend", "sim", "--no-store"]
    result = narrow.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines
    assert lines[0].strip(), "no blank lines before the table"
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    for name in STRATEGIES:
        assert sum(name in line.split() for line in lines) == 1, name  # whole, and once
    assert "…" not in result.stdout


def test_load_balance_below_the_table_width_lists_each_strategy(spec_file: Path) -> None:
    from swarmperf.balancing.strategies import STRATEGIES

    narrow = CliRunner(env={"COLUMNS": "50"})
    args = ["load-balance", "--workload", str(spec_file), "--backend", "sim", "--no-store"]
    result = narrow.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 50 for line in lines), "\n".join(lines)
    for name in STRATEGIES:
        assert any(line.split()[-1:] == [name] for line in lines), name


def test_progress_off_a_terminal_is_plain_lines_now_and_then() -> None:
    import io

    from rich.console import Console

    from swarmperf.app.run import Progress
    from swarmperf.cli._support import ProgressLines, progress_bar

    buffer = io.StringIO()
    console = Console(file=buffer, width=80)
    assert not console.is_terminal
    bar, update = progress_bar(200, "run", console, every=0.0)
    with bar:
        update(Progress(200, 50, 2, 2.0))
    assert buffer.getvalue() == "run: 50/200 tasks (25%), 25 tasks/s, 2 failed, 0:00:02 elapsed\n"
    now = [0.0]
    lines = ProgressLines(Console(file=(buffer := io.StringIO())), 5.0, lambda: now[0])
    with lines:
        for tick in range(1, 21):  # ten seconds, a report every half second
            now[0] = tick / 2
            lines.show(f"at {now[0]}")
    assert buffer.getvalue().splitlines() == ["at 5.0", "at 10.0"]


def test_simulate_of_many_agents_summarises_them_by_group(spec_file: Path) -> None:
    args = ["simulate", str(spec_file), "--agents", "60", "--tasks", "2000", "--no-store"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) < 60
    assert "Agents by group" in result.stdout
    assert "busiest" in result.stdout
    assert "least busy" in result.stdout
    assert "--per-agent" in result.stdout
    full = runner.invoke(app, [*args, "--per-agent"])
    assert full.exit_code == 0, full.output
    assert len(full.stdout.splitlines()) > 60
    # The spec's groups, 3 to 1, scaled to 60.
    for agent in [*(f"a-{i}" for i in range(45)), *(f"slow-{i}" for i in range(15))]:
        assert f" {agent} " in full.stdout


def test_simulate_says_when_it_cannot_give_as_few_agents_as_asked(spec_file: Path) -> None:
    result = runner.invoke(app, ["simulate", str(spec_file), "--agents", "1", "--no-store"])
    assert result.exit_code == 0, result.output
    assert "--agents 1 gives 2 agents" in result.output


# -- errors as JSON, version, help --------------------------------------------------------


def test_errors_under_json_output_are_a_json_object_on_stdout(spec_file: Path) -> None:
    result = runner.invoke(
        app, ["run", str(spec_file), "--duration", "soon", "-o", "json", "--no-store"]
    )
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["field"] == "--duration"
    assert error["value"] == "soon"
    assert error["fix"]
    assert "--duration" in error["message"]
    # Without -o json, stdout stays empty: the error is on stderr only.
    plain = runner.invoke(app, ["run", str(spec_file), "--duration", "soon", "--no-store"])
    assert plain.exit_code == 2
    assert plain.stdout == ""
    assert "--duration" in plain.output


@pytest.mark.parametrize(
    ("args", "field", "value"),
    [
        (["simulate", "--agents", "many", "--no-store", "-o", "json"], "--agents", "many"),
        (["simulate", "--output=json", "--agents=many", "--no-store"], "--agents", "many"),
        (["strategies", "--output", "json", "--bogus"], "--bogus", None),
        (["bottleneck-analyze", "-o", "json"], "--swarm-id", None),
    ],
    ids=["not-an-integer", "equals-form", "unknown-option", "missing-option"],
)
def test_usage_errors_under_json_output_are_a_json_object_too(
    args: list[str], field: str, value: str | None
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["field"] == field
    assert error["value"] == value
    assert error["fix"]
    assert error["fix"] in " ".join(result.stderr.replace("│", " ").split())
    assert field in error["message"]


def test_usage_errors_without_json_output_stay_on_stderr() -> None:
    result = runner.invoke(app, ["simulate", "--agents", "many", "--no-store"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--agents" in result.stderr


def test_the_console_script_answers_usage_errors_in_json() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "swarmperf", "simulate", "--agents", "x", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["field"] == "--agents"
    assert "--agents" in proc.stderr


@pytest.mark.parametrize("module", ["swarmperf", "swarmperf.cli.main"])
def test_both_modules_run_the_command_line(module: str) -> None:
    import swarmperf

    proc = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"swarmperf {swarmperf.__version__} (")


def test_a_spec_with_problems_lists_them_in_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents: []\nstrategy: nope\n")
    result = runner.invoke(app, ["validate", str(bad), "-o", "json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert len(error["problems"]) >= 2
    assert {"field", "value", "fix"} <= set(error["problems"][0])


def test_version() -> None:
    import swarmperf

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"swarmperf {swarmperf.__version__} (")


def test_help_shows_no_type_beside_flags() -> None:
    for args in (["--help"], ["run", "--help"], ["benchmark-run", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.stdout, args
    assert "<path>" in runner.invoke(app, ["run", "--help"]).stdout  # other types stay


def test_run_says_where_it_serves_metrics(spec_file: Path) -> None:
    result = runner.invoke(app, ["run", str(spec_file), "--metrics-port", "0", "--no-store"])
    assert result.exit_code == 0, result.output
    assert "Serving metrics at http://127.0.0.1:" in result.output
    assert "127.0.0.1:0/" not in result.output


def _commands() -> list[list[str]]:
    import typer

    group: Any = typer.main.get_command(app)
    ctx = group.make_context("swarmperf", ["--help"], resilient_parsing=True)
    found: list[list[str]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if hasattr(command, "list_commands"):
            found += [[name, sub] for sub in command.list_commands(ctx)]
        else:
            found.append([name])
    return found


@pytest.mark.parametrize("width", [60, 80])
def test_every_commands_help_fills_a_narrow_terminals_lines(width: int) -> None:
    # A paragraph wrapped by the terminal fills each line but its last: the next word
    # would not have fitted on it. Line breaks kept from the source leave ragged ones.
    narrow = CliRunner(env={"COLUMNS": str(width)})
    for words in _commands():
        result = narrow.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        usage = next(i for i, line in enumerate(lines) if "Usage:" in line)
        box = next((i for i, line in enumerate(lines) if line.lstrip().startswith("╭")), None)
        text = [line.strip() for line in lines[usage + 1 : box]]
        for line, following in itertools.pairwise(text):
            if line and following:
                room = width - 2 - len(line)
                assert len(following.split()[0]) + 1 > room, (words, line, following)

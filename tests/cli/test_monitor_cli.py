"""The monitoring commands, against a store filled by a real short run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from swarmperf.analysis.figures import stored_series
from swarmperf.app.run import run_spec
from swarmperf.cli.main import app
from swarmperf.monitor.collectors import SystemCollector
from swarmperf.monitor.snapshot import flatten
from swarmperf.spec import parse_spec_yaml
from swarmperf.store import Store, database_path

runner = CliRunner(env={"COLUMNS": "200"})

SPEC = """\
swarm_id: watched
strategy: round-robin
monitor: {enabled: false}
agents:
  - id: a
    count: 3
  - id: slow
    slowdown: 4
workload:
  tasks: 120
  kind: sleep
  size: {value: 4ms}
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one run of `watched` and a snapshot per 50 ms of it (swarm and system)."""
    directory = tmp_path_factory.mktemp("monitor-cli")
    with Store.open(database_path(directory)) as store:
        outcome = asyncio.run(run_spec(parse_spec_yaml(SPEC), store=store))
        assert outcome.run_id is not None
        system = SystemCollector()
        system.sample()
        for figures in stored_series(store, outcome.run_id, 0.05):
            rows = flatten(figures, system.sample(now=figures.ts))
            store.record_metrics("watched", outcome.run_id, figures.ts, rows)
    return directory


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.output


def test_metrics_collect_streams_json_lines() -> None:
    code, stdout, output = invoke(
        "metrics-collect", "--components", "cpu,memory,network", "--interval", "50ms",
        "--count", "2", "--output", "json",
    )  # fmt: skip
    assert code == 0, output
    lines = [json.loads(line) for line in stdout.strip().splitlines()]
    assert len(lines) == 2
    assert lines[0]["ts"] < lines[1]["ts"]
    for sample in lines:
        system = sample["system"]
        assert 0.0 <= system["cpu_percent"] <= 100.0  # measured: the first sample primes
        assert system["memory_percent"] > 0
        assert system["net_recv_bytes_per_s"] >= 0
        assert "process_rss_bytes" not in system


def test_metrics_collect_reads_a_swarms_agents(data_dir: Path) -> None:
    code, stdout, output = invoke(
        "metrics-collect", "--components", "agents", "--swarm-id", "watched", "--count", "1",
        "--interval", "1ms", "--data-dir", str(data_dir), "--output", "json",
    )  # fmt: skip
    assert code == 0, output
    sample = json.loads(stdout)
    assert "system" not in sample
    assert set(sample["swarm"]["agents"]) == {"a-0", "a-1", "a-2", "slow"}
    code, stdout, output = invoke(
        "metrics-collect", "--components", "cpu,agents", "--swarm-id", "watched", "--count", "1",
        "--interval", "0.05", "--data-dir", str(data_dir),
    )  # fmt: skip
    assert code == 0, output
    assert "cpu_percent" in stdout
    assert "agent.slow.utilization" in stdout


def test_metrics_collect_waits_for_a_run_with_nothing_finished_yet(tmp_path: Path) -> None:
    with Store.open(database_path(tmp_path)) as store:
        store.start_run("starting", parse_spec_yaml(SPEC).to_data(), "local", "round-robin")
    for output in ("json", "table"):
        code, stdout, out = invoke(
            "metrics-collect", "--components", "agents", "--swarm-id", "starting", "--count", "2",
            "--interval", "1ms", "--data-dir", str(tmp_path), "--output", output,
        )  # fmt: skip
        assert code == 0, out
        assert "no finished task yet" in stdout
    samples = [json.loads(line) for line in invoke(
        "metrics-collect", "--components", "agents", "--swarm-id", "starting", "--count", "2",
        "--interval", "1ms", "--data-dir", str(tmp_path), "--output", "json",
    )[1].splitlines()]  # fmt: skip
    assert [s["swarm"] for s in samples] == [None, None]
    assert [s["run_id"] for s in samples] == [1, 1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--components", "cpu,gpu"], ["--components", "'cpu,gpu'", "agents"]),
        (["--interval", "soon"], ["--interval", "'soon'"]),
        (["--interval", "0s"], ["--interval", "'0s'"]),
        (["--count", "0"], ["--count", "0"]),
    ],
)
def test_metrics_collect_explains_bad_options(args: list[str], expected: list[str]) -> None:
    code, _, output = invoke("metrics-collect", *args)
    assert code == 2
    for fragment in expected:
        assert fragment in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "command",
    [
        ["metrics-collect", "--components", "agents", "--count", "1"],
        ["swarm-monitor", "--count", "1"],
        ["performance-report"],
        ["bottleneck-analyze"],
    ],
)
def test_an_unknown_swarm_is_named_with_how_to_make_data(
    data_dir: Path, command: list[str]
) -> None:
    code, _, output = invoke(*command, "--swarm-id", "ghost", "--data-dir", str(data_dir))
    assert code == 2
    assert "'ghost'" in output
    assert "swarmperf run --swarm-id ghost" in output
    assert "watched" in output  # the swarms that do have data
    assert "Traceback" not in output


def test_swarm_monitor_shows_the_latest_snapshot_and_run(data_dir: Path) -> None:
    code, stdout, output = invoke(
        "swarm-monitor", "--swarm-id", "watched", "--interval", "50ms", "--count", "2",
        "--data-dir", str(data_dir),
    )  # fmt: skip
    assert code == 0, output
    assert "run 1 of swarm 'watched' (id 1) completed" in stdout
    assert "120 / 120 tasks" in stdout
    assert "swarm.throughput_per_s" in stdout
    assert "agent.slow.utilization" in stdout


@pytest.mark.parametrize("fmt", ["summary", "detailed"])
def test_performance_report_in_the_terminal(data_dir: Path, fmt: str) -> None:
    code, stdout, output = invoke(
        "performance-report", "--swarm-id", "watched", "--format", fmt, "--timeframe", "1h",
        "--data-dir", str(data_dir),
    )  # fmt: skip
    assert code == 0, output
    assert "Performance of swarm 'watched'" in stdout
    assert "slow_agent" in stdout or "Agent 'slow'" in stdout


def test_performance_report_json_and_cost(data_dir: Path, tmp_path: Path) -> None:
    cost = tmp_path / "cost.yaml"
    cost.write_text("per_task: 0.01\n")
    code, stdout, output = invoke(
        "performance-report", "--swarm-id", "watched", "--format", "json",
        "--cost-model", str(cost), "--data-dir", str(data_dir),
    )  # fmt: skip
    assert code == 0, output
    data = json.loads(stdout)
    assert data["source"] == "metrics"
    assert data["tasks"]["succeeded"] == 120
    assert data["cost"]["tasks_cost"] == pytest.approx(1.2)
    assert data["sla"]["all"]["measured"] == data["snapshots"]


def test_performance_report_html_to_a_file(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    code, _, output = invoke(
        "performance-report", "--swarm-id", "watched", "--format", "html", "--out", str(target),
        "--data-dir", str(data_dir),
    )  # fmt: skip
    assert code == 0, output
    text = target.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<svg") == 3
    assert "report.html" in output
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temporary left


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--format", "pdf"], ["--format", "pdf"]),
        (["--timeframe", "0s"], ["--timeframe", "'0s'"]),
        (["--cost-model", "/no/such/cost.yaml"], ["--cost-model", "does not exist"]),
    ],
)
def test_performance_report_explains_bad_options(
    data_dir: Path, args: list[str], expected: list[str]
) -> None:
    code, _, output = invoke(
        "performance-report", "--swarm-id", "watched", "--data-dir", str(data_dir), *args
    )
    assert code == 2
    for fragment in expected:
        assert fragment in output


def test_bottleneck_analyze_names_the_slow_agent_and_records_it(data_dir: Path) -> None:
    code, stdout, output = invoke(
        "bottleneck-analyze", "--swarm-id", "watched", "--output", "json",
        "--data-dir", str(data_dir),
    )  # fmt: skip
    assert code == 0, output
    data = json.loads(stdout)
    assert data["run_id"] == 1
    diagnoses = [f for f in data["findings"] if f["severity"] != "info"]
    slow = [f for f in diagnoses if f["type"] == "slow_agent"]
    assert [f["component"] for f in slow] == ["slow"]
    assert all(f["type"] != "recurring" for f in data["findings"])
    with Store.open(database_path(data_dir)) as store:
        recorded = store.decisions("watched", "bottleneck")
    assert any(d.decision["component"] == "slow" and d.decision["run_id"] == 1 for d in recorded)
    code, stdout, _ = invoke(
        "bottleneck-analyze", "--swarm-id", "watched", "--no-record", "--data-dir", str(data_dir)
    )
    assert code == 0
    assert "slow_agent on slow" in stdout


def test_bottleneck_analyze_refuses_a_run_of_another_swarm(data_dir: Path) -> None:
    code, _, output = invoke(
        "bottleneck-analyze", "--swarm-id", "watched", "--run", "99", "--data-dir", str(data_dir)
    )
    assert code == 2
    assert "--run" in output
    assert "99" in output


def test_metrics_retention_downsamples_old_rows_once(tmp_path: Path) -> None:
    # 1000 .. 1119 s: three whole 1-minute buckets, long ago; then one row far in the future.
    with Store.open(database_path(tmp_path)) as store:
        for i in range(120):
            store.record_metrics("old", None, 1000.0 + i, {"swarm.queue_depth": float(i)})
        store.record_metrics("old", None, 4e9, {"swarm.queue_depth": 1.0})
    args = ["metrics-retention", "--raw-for", "1h", "--bucket", "1m", "--data-dir", str(tmp_path)]
    code, stdout, output = invoke(*args, "--output", "json")
    assert code == 0, output
    assert json.loads(stdout) == {"deleted": 0, "downsampled": 120, "written": 9, "rows_left": 10}
    code, stdout, _ = invoke(*args, "--output", "json")
    assert json.loads(stdout)["downsampled"] == 0
    code, stdout, _ = invoke(*args, "--keep-for", "2h")
    assert code == 0
    assert "Deleted 9 expired rows" in stdout
    code, _, output = invoke(*args, "--keep-for", "30m")
    assert code == 2
    assert "keep_for" in output


@pytest.mark.parametrize("fmt", ["json", "summary"])
def test_performance_report_to_a_place_that_cannot_be_written_exits_2(
    data_dir: Path, tmp_path: Path, fmt: str
) -> None:
    for target in (tmp_path, tmp_path / ("r" * 300 + ".json")):  # a folder; too long a name
        code, _, output = invoke(
            "performance-report", "--swarm-id", "watched", "--format", fmt, "--out", str(target),
            "--data-dir", str(data_dir),
        )  # fmt: skip
        assert code == 2, output
        assert "--out" in output
        assert str(target)[:40] in output
        assert list(tmp_path.iterdir()) == []


def test_metrics_retention_says_buckets_not_rows(tmp_path: Path) -> None:
    with Store.open(database_path(tmp_path)) as store:
        for i in range(120):
            store.record_metrics("old", None, 1000.0 + i, {"swarm.queue_depth": float(i)})
    code, stdout, output = invoke("metrics-retention", "--data-dir", str(tmp_path))
    assert code == 0, output
    assert "downsampled 120 old rows into 3 buckets (mean, max and count each)" in stdout
    assert "9 metric rows remain" in stdout


def test_metrics_retention_of_an_unknown_swarm_exits_2(data_dir: Path) -> None:
    code, _, output = invoke(
        "metrics-retention", "--swarm-id", "nosuch", "--data-dir", str(data_dir)
    )
    assert code == 2, output
    assert "'nosuch'" in output
    assert "watched" in output


def run_invoke(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr apart."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "given",
    [
        ['["cpu", "memory", "network", "agents"]'],  # quoted: one argument
        ["[cpu,", "memory,", "network,", "agents]"],  # unquoted: the shell splits it
        ["cpu,memory,network,agents"],
    ],
)
def test_metrics_collect_takes_the_components_as_a_list_and_the_latest_swarm(
    data_dir: Path, given: list[str]
) -> None:
    code, stdout, stderr = run_invoke(
        "metrics-collect", "--components", *given, "--count", "1", "--interval", "1ms",
        "--data-dir", str(data_dir), "--output", "json",
    )  # fmt: skip
    assert code == 0, stderr
    sample = json.loads(stdout)
    assert "memory_percent" in sample["system"]
    assert set(sample["swarm"]["agents"]) == {"a-0", "a-1", "a-2", "slow"}
    assert "Using swarm 'watched', the most recent" in stderr


def test_metrics_collect_refuses_stray_arguments() -> None:
    code, _, output = invoke("metrics-collect", "--components", "cpu", "memory")
    assert code == 2
    assert "'memory'" in output


def test_metrics_collect_with_agents_in_an_empty_store_says_how_to_fill_it(
    tmp_path: Path,
) -> None:
    code, _, output = invoke(
        "metrics-collect", "--components", "agents", "--count", "1", "--data-dir", str(tmp_path)
    )
    assert code == 2
    assert "--swarm-id: none given" in output
    assert "swarmperf run" in output


def test_swarm_monitor_json_is_one_object_per_refresh_with_units(data_dir: Path) -> None:
    code, stdout, stderr = run_invoke(
        "swarm-monitor", "--interval", "1ms", "--count", "2", "-o", "json",
        "--data-dir", str(data_dir),
    )  # fmt: skip
    assert code == 0, stderr
    refreshes = [json.loads(line) for line in stdout.splitlines()]
    assert len(refreshes) == 2
    first = refreshes[0]
    assert first["swarm_id"] == "watched"
    assert (first["run"]["number"], first["run"]["kind"]) == (1, "real")
    units = {f["name"]: f["unit"] for f in first["figures"]["values"]}
    assert units["swarm.throughput_per_s"] == "tasks/s"
    assert units["swarm.latency.p99"] == "ms"
    assert units["agent.slow.utilization"] == "ratio"


def test_swarm_monitor_shows_figures_with_units_and_readable_times(data_dir: Path) -> None:
    code, stdout, output = invoke(
        "swarm-monitor", "--swarm-id", "watched", "--count", "1", "--data-dir", str(data_dir)
    )
    assert code == 0, output
    assert " tasks/s" in stdout
    assert " ms" in stdout
    assert "%" in stdout
    assert "ago)" in stdout  # when the snapshot was taken, and how long ago


def test_performance_report_takes_o_json_and_the_latest_swarm(data_dir: Path) -> None:
    code, stdout, stderr = run_invoke(
        "performance-report", "-o", "json", "--timeframe", "1h", "--data-dir", str(data_dir)
    )
    assert code == 0, stderr
    assert json.loads(stdout)["tasks"]["succeeded"] == 120
    assert "Using swarm 'watched'" in stderr
    code, _, stderr = run_invoke(
        "performance-report", "-o", "json", "--format", "html", "--data-dir", str(data_dir)
    )
    assert code == 2
    assert "--format html" in stderr


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store where swarm `watched` ran once for real and once, at scale, simulated."""
    directory = tmp_path_factory.mktemp("mixed")
    spec_file = directory / "swarm.yaml"
    spec_file.write_text(SPEC)
    with Store.open(database_path(directory)) as store:
        asyncio.run(run_spec(parse_spec_yaml(SPEC), store=store))
    code, _, output = invoke(
        "simulate", str(spec_file), "--agents", "40", "--tasks", "3000",
        "--data-dir", str(directory),
    )  # fmt: skip
    assert code == 0, output
    return directory


def test_a_simulated_run_is_stored_apart_and_labelled_virtual(mixed_dir: Path) -> None:
    with Store.open(database_path(mixed_dir)) as store:
        [real] = store.list_runs("watched")
        [simulated] = store.list_runs("watched", kind="simulated")
    assert real.number == simulated.number == 1
    assert simulated.report is not None
    assert simulated.report["virtual_time"] is True
    code, stdout, output = invoke(
        "simulate", "--tasks", "50", "--agents", "5", "--data-dir", str(mixed_dir)
    )
    assert code == 0, output
    assert "virtual time" in stdout
    assert "wall time" not in stdout


def test_bottleneck_analyze_names_a_run_by_its_number_in_the_swarm(mixed_dir: Path) -> None:
    with Store.open(database_path(mixed_dir)) as store:
        [real] = store.list_runs("watched")
        [simulated] = store.list_runs("watched", kind="simulated")
    args = ["bottleneck-analyze", "--swarm-id", "watched", "--no-record", "-o", "json"]
    args += ["--data-dir", str(mixed_dir)]
    for run, expected in (("1", real.id), ("sim:1", simulated.id), (f"id:{real.id}", real.id)):
        code, stdout, output = invoke(*args, "--run", run)
        assert code == 0, output
        assert json.loads(stdout)["run_id"] == expected
    code, stdout, output = invoke(*args, "--run", "2")
    assert code == 2
    assert json.loads(stdout)["error"]["field"] == "--run"
    assert f"1 (id {real.id})" in output
    assert f"sim:1 (id {simulated.id})" in output


@pytest.mark.parametrize(
    ("command", "read"),
    [
        (
            ["performance-report", "-o", "json"],
            lambda d: d["tasks"]["succeeded"] + d["tasks"]["failed"],
        ),
        (["swarm-monitor", "--count", "1", "-o", "json"], lambda d: d["run"]["tasks_stored"]),
    ],
)
def test_readers_leave_simulated_runs_out_unless_asked(
    mixed_dir: Path, command: list[str], read: Any
) -> None:
    code, stdout, output = invoke(*command, "--swarm-id", "watched", "--data-dir", str(mixed_dir))
    assert code == 0, output
    assert read(json.loads(stdout)) == 120
    code, stdout, output = invoke(
        *command, "--swarm-id", "watched", "--include-simulated", "--data-dir", str(mixed_dir)
    )
    assert code == 0, output
    assert read(json.loads(stdout)) > 120


def test_bottleneck_analyze_looks_at_the_real_run(mixed_dir: Path) -> None:
    code, stdout, output = invoke(
        "bottleneck-analyze", "--swarm-id", "watched", "--no-record", "-o", "json",
        "--data-dir", str(mixed_dir),
    )  # fmt: skip
    assert code == 0, output
    assert json.loads(stdout)["run_id"] == 1

"""Traces are read in both layouts, and bad ones exit 2 through the CLI naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmperf.autoscale.traces import read_trace
from swarmperf.cli.main import app
from swarmperf.core.errors import ConfigError

runner = CliRunner()


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_counts_layout_with_an_index(tmp_path: Path) -> None:
    trace = read_trace(write(tmp_path, "minute_index,requests,max\n0,3,1\n1,0,0\n2,5,2\n"))
    assert trace.layout == "counts"
    assert trace.counts.tolist() == [3, 0, 5]
    assert trace.offsets is None


def test_counts_layout_with_timestamps_fills_gaps(tmp_path: Path) -> None:
    text = "time,count\n2024-01-01 00:00:00,4\n2024-01-01 00:02:00,6\n"
    trace = read_trace(write(tmp_path, text), interval=60.0)
    assert trace.counts.tolist() == [4, 0, 6]


def test_requests_layout_buckets_and_sizes_tasks(tmp_path: Path) -> None:
    text = (
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,90,10\n"
        "2023-11-16 18:17:30.0000000,290,10\n"
        "2023-11-16 18:18:10.5000000,0,0\n"
    )
    trace = read_trace(write(tmp_path, text))
    assert trace.layout == "requests"
    assert trace.counts.tolist() == [2, 1]
    assert trace.sizes is not None
    # Sizes are tokens over the mean (100, 300 and 0 tokens; mean 400/3).
    assert trace.sizes.tolist() == pytest.approx([0.75, 2.25, 0.0])


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "empty"),
        ("minute_index,requests\n0,4\n", 2, "at least two intervals"),
        ("minute_index,requests\n0,4\n1,many\n", 3, "must be a number"),
        ("minute_index,requests\n0,4\n1,-2\n", 3, ">= 0"),
        ("minute_index,requests\n0,4\n0,2\n", 3, "increasing order"),
        ("TIMESTAMP,Tokens\nyesterday,4\n", 2, "ISO 8601"),
    ],
)
def test_bad_traces_exit_2_with_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        read_trace(path)
    assert caught.value.field == f"{path} line {line}"
    for command in ("autoscale-eval", "workload-analyze"):
        result = runner.invoke(app, [command, str(path), "-o", "json"])
        assert result.exit_code == 2, result.output
        error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
        assert error["field"] == f"{path} line {line}"
        assert words in error["message"]
        assert "Traceback" not in result.output


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["autoscale-eval", str(tmp_path / "none.csv")])
    assert result.exit_code == 2
    assert "Cannot read the file" in result.output


def test_autoscale_eval_prints_one_json_object_last(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{20 if i % 10 < 5 else 2}" for i in range(30))
    path = write(tmp_path, "minute_index,requests\n" + rows + "\n")
    result = runner.invoke(app, ["autoscale-eval", str(path), "--peak-agents", "5", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data["policies"]) == {"hpa", "keda", "predictive", "rl", "static-peak", "oracle"}
    assert data["default_policy"] in data["policies"]
    for figures in data["policies"].values():
        assert {"violation_minutes", "agent_hours", "scale_events", "tasks"} <= set(figures)
        assert figures["tasks"] == sum(20 if i % 10 < 5 else 2 for i in range(30))


@pytest.mark.parametrize("option", ["--policy", "--forecaster"])
def test_an_unknown_name_is_a_clean_error_naming_the_option(tmp_path: Path, option: str) -> None:
    path = write(tmp_path, "minute_index,requests\n0,1\n1,1\n")
    result = runner.invoke(app, ["autoscale-eval", str(path), option, "magic"])
    assert result.exit_code == 2
    assert f"{option}: 'magic' is not valid. Choose one of" in result.output


def test_workload_analyze_finds_a_planted_period(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{100 if i % 24 < 12 else 10}" for i in range(24 * 20))
    path = write(tmp_path, "minute_index,requests\n" + rows + "\n")
    result = runner.invoke(app, ["workload-analyze", str(path), "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["periods"][0]["period"] == 24
    assert data["recommended_policy"] == "predictive"
    assert data["peak_to_mean"] == pytest.approx(100 / 55)

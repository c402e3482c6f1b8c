"""`resource-alloc`, `validate` on a resources file and `performance-report --resources`,
through the command line: good input gives the front and a recommendation confirmed in the
simulator; bad input exits 2 naming the field, the value and the fix."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmperf.app.run import run_spec
from swarmperf.cli.main import app
from swarmperf.spec import parse_spec_yaml
from swarmperf.store import Store, database_path

runner = CliRunner(env={"COLUMNS": "200"})

RESOURCES = """\
currency: EUR
pools:
  - id: small
    cost_per_hour: 0.10
    max: 12
    service_time: {summarise: 400ms, embed: 60ms}
  - id: large
    cost_per_hour: 0.34
    concurrency: 4
    max: 4
    service_time: {summarise: 250ms, embed: 40ms}
    cv: 0.8
workload:
  rate: 20/s
  mix: {summarise: 0.3, embed: 0.7}
constraints:
  budget_per_hour: 3
  slo:
    summarise: {p99: 1.5s}
    embed: {p99: 500ms}
"""


def invoke(*args: str) -> tuple[int, str]:
    """The exit code and stdout (under -o json: the JSON alone), or all output otherwise."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout if "json" in args else result.output


def test_resource_alloc_gives_the_front_and_a_confirmed_recommendation(tmp_path: Path) -> None:
    path = tmp_path / "resources.yaml"
    path.write_text(RESOURCES)
    svg = tmp_path / "front.svg"
    code, text = invoke("resource-alloc", "--resources", str(path), "--svg", str(svg), "-o", "json")
    assert code == 0, text
    data = json.loads(text)
    front = data["front"]
    assert front
    costs = [p["cost_per_hour"] for p in front]
    assert costs == sorted(costs)
    for point in front:
        assert point["cost_per_hour"] <= 3
        assert point["predicted"]["p99_kind_s"]["summarise"] <= 1.5
        assert point["predicted"]["p99_kind_s"]["embed"] <= 0.5
        assert sum(point["counts"].values()) >= 1
    rec = data["recommended"]
    assert rec["slo_met_in_sim"] is True
    assert rec["simulated"]["p99_kind_s"]["embed"] <= 0.5
    # The cheapest point that met every SLO in the simulator.
    assert rec["cost_per_hour"] == min(p["cost_per_hour"] for p in front if p["slo_met_in_sim"])
    assert data["pools"][0]["speed_source"] == {"summarise": "declared", "embed": "declared"}
    assert svg.read_text().startswith("<svg")
    assert svg.read_text().count("<circle") == len(front)


def test_the_alias_and_the_table(tmp_path: Path) -> None:
    path = tmp_path / "resources.yaml"
    path.write_text(RESOURCES)
    code, text = invoke("daa-resource-alloc", "--resources", str(path))
    assert code == 0, text
    assert "Pareto front" in text
    assert "Recommended:" in text
    assert "@" in text  # the terminal plot marks the recommendation


def test_validate_explains_a_resources_file(tmp_path: Path) -> None:
    path = tmp_path / "resources.yaml"
    path.write_text(RESOURCES)
    code, text = invoke("validate", str(path))
    assert code == 0, text
    assert "resources file, 2 pools" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(RESOURCES.replace("cost_per_hour: 0.10", "cost_per_hour: -1"))
    code, text = invoke("validate", str(bad))
    assert code == 2
    assert "pools[0].cost_per_hour: -1" in text
    assert "Use a number >= 0" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (("cost_per_hour: 0.34", "cost_per_hour: -0.34"), "pools[1].cost_per_hour", ">= 0"),
        (("max: 4", "max: 4\n    min: 6"), "pools[1]", "min (6) is above max (4)"),
        (("    cv: 0.8", "    cv: 0.8\n    gpus: 2"), "pools[1].gpus", "not a known key"),
        (("embed: {p99: 500ms}", "embd: {p99: 500ms}"), "constraints", "Did you mean 'embed'"),
        (("- id: large", "- id: small"), "pools", "names pool 'small' twice"),
        (("budget_per_hour: 3", "budget_per_hour: 0.05"), "constraints.budget_per_hour", "0.05"),
        (("embed: {p99: 500ms}", "embed: {p99: 20ms}"), "constraints.slo.embed.p99", "max"),
        (
            ("service_time: {summarise: 250ms, embed: 40ms}", "service_time: {summarise: 250ms}"),
            "pools[1].service_time.embed",
            "Declare how long",
        ),
    ],
)
def test_bad_input_exits_2_saying_which_field(
    tmp_path: Path, change: tuple[str, str], field: str, words: str
) -> None:
    path = tmp_path / "resources.yaml"
    path.write_text(RESOURCES.replace(*change))
    code, text = invoke("resource-alloc", "--resources", str(path), "-o", "json")
    assert code == 2, text
    error = json.loads(text)["error"]
    assert error["field"].startswith(field), error
    assert words in error["message"] or words in str(error.get("fix")), error
    code, text = invoke("resource-alloc", "--resources", str(path))
    assert code == 2
    assert "Traceback" not in text


def test_a_missing_file_and_apply_without_a_swarm(tmp_path: Path) -> None:
    code, text = invoke("resource-alloc", "--resources", str(tmp_path / "none.yaml"))
    assert code == 2
    assert "cannot be read" in text
    path = tmp_path / "resources.yaml"
    path.write_text(RESOURCES)
    code, text = invoke("resource-alloc", "--resources", str(path), "--apply")
    assert code == 2
    assert "--swarm-id" in text


SPEC = """\
swarm_id: priced
strategy: round-robin
monitor: {enabled: false}
agents:
  - id: fast
    count: 3
  - id: slow
    slowdown: 4
workload:
  tasks: 200
  kind: sleep
  size: {value: 4ms}
"""

PRICED = """\
pools:
  - id: fast
    cost_per_hour: 3600
    max: 6
  - id: slow
    cost_per_hour: 7200
    max: 2
workload: {rate: 100/s, mix: {sleep: 1}}
constraints:
  slo: {sleep: {p99: 200ms}}
"""


def test_performance_report_prices_runs_with_the_allocators_cost_model(tmp_path: Path) -> None:
    with Store.open(database_path(tmp_path)) as store:
        asyncio.run(run_spec(parse_spec_yaml(SPEC), store=store))
    path = tmp_path / "resources.yaml"
    path.write_text(PRICED)
    code, text = invoke(
        "performance-report", "--swarm-id", "priced", "--data-dir", str(tmp_path),
        "--resources", str(path), "-o", "json",
    )  # fmt: skip
    assert code == 0, text
    report = json.loads(text)
    cost = report["cost"]
    # Three fast agents at one unit per second and one slow at two: five per second.
    seconds = cost["agent_hours"] * 3600 / 4
    assert cost["agents_cost"] == pytest.approx(5 * seconds, rel=1e-6)
    allocation = report["allocation"]
    assert allocation["pools"][0]["speed_source"] == {"sleep": "measured"}
    assert (
        allocation["pools"][1]["service_time_s"]["sleep"]
        > 3 * (allocation["pools"][0]["service_time_s"]["sleep"])
    )
    assert allocation["recommended"]["slo_met_in_sim"] is True
    code, text = invoke(
        "performance-report", "--swarm-id", "priced", "--data-dir", str(tmp_path),
        "--resources", str(path),
    )  # fmt: skip
    assert code == 0, text
    assert "Allocator's recommendation:" in text
    # The same pools for a trace's rate: 6,000 tasks in the busiest minute, 100 per second.
    (tmp_path / "arrivals.csv").write_text("minute,requests\n0,6000\n1,3000\n")
    traced = tmp_path / "traced.yaml"
    traced.write_text(
        PRICED.replace("{rate: 100/s,", "{trace: {file: arrivals.csv, percentile: 100},")
    )
    code, text = invoke(
        "performance-report", "--swarm-id", "priced", "--data-dir", str(tmp_path),
        "--resources", str(traced), "-o", "json",
    )  # fmt: skip
    assert code == 0, text
    workload = json.loads(text)["allocation"]["workload"]
    assert workload["rate_per_s"] == pytest.approx(100.0)
    assert workload["source"].startswith("trace ")
    # Without a resources file the report keeps its shape.
    code, text = invoke(
        "performance-report", "--swarm-id", "priced", "--data-dir", str(tmp_path), "-o", "json"
    )
    assert code == 0
    assert "allocation" not in json.loads(text)


TRACED = RESOURCES.replace(
    "  rate: 20/s\n", "  trace: {file: arrivals.csv, interval: 1m, percentile: 100}\n"
)


def test_a_trace_gives_the_rate_the_pools_are_sized_for(tmp_path: Path) -> None:
    # Tasks per minute: the busiest minute is 1,200 tasks, 20 per second.
    (tmp_path / "arrivals.csv").write_text("minute,requests\n0,600\n1,1200\n2,900\n3,300\n")
    path = tmp_path / "resources.yaml"
    path.write_text(TRACED)
    code, text = invoke("resource-alloc", "--resources", str(path), "-o", "json")
    assert code == 0, text
    data = json.loads(text)
    assert data["workload"]["rate_per_s"] == pytest.approx(20.0)
    assert data["workload"]["source"].startswith(f"trace {tmp_path / 'arrivals.csv'} (p100")
    assert data["workload"]["mix"] == {"summarise": 0.3, "embed": 0.7}
    declared = tmp_path / "declared.yaml"
    declared.write_text(RESOURCES)
    code, same = invoke("resource-alloc", "--resources", str(declared), "-o", "json")
    assert json.loads(same)["recommended"]["counts"] == data["recommended"]["counts"]
    (tmp_path / "arrivals.csv").write_text("minute,requests\n0,600\n1,1200\n2,5\n3,30\n")
    path.write_text(TRACED.replace("percentile: 100", "percentile: 50"))
    code, text = invoke("resource-alloc", "--resources", str(path), "-o", "json")
    assert json.loads(text)["workload"]["rate_per_s"] == pytest.approx(315 / 60)


@pytest.mark.parametrize(
    ("trace", "change", "field", "words"),
    [
        ("minute,requests\n0,600\n1,many\n", None, "arrivals.csv line 3", "must be a number"),
        ("minute,requests\n0,6\n", None, "arrivals.csv line 2", "at least two intervals"),
        (None, None, "arrivals.csv", "Cannot read the file"),
        (
            "minute,requests\n0,6\n1,6\n",
            ("  mix: {summarise: 0.3, embed: 0.7}\n", ""),
            "workload",
            "no mix",
        ),
        (
            "minute,requests\n0,6\n1,6\n",
            ("  trace:", "  rate: 5/s\n  trace:"),
            "workload",
            "a trace and a rate",
        ),
    ],
)
def test_a_bad_trace_exits_2_naming_the_file_and_line(
    tmp_path: Path, trace: str | None, change: tuple[str, str] | None, field: str, words: str
) -> None:
    if trace is not None:
        (tmp_path / "arrivals.csv").write_text(trace)
    path = tmp_path / "resources.yaml"
    path.write_text(TRACED.replace(*change) if change else TRACED)
    code, text = invoke("resource-alloc", "--resources", str(path), "-o", "json")
    assert code == 2, text
    error = json.loads(text)["error"]
    assert field in error["field"] or field in error["message"], error
    assert words in error["message"], error

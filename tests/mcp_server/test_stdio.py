"""`swarmperf mcp` over stdio, through the SDK's own client: schemas, every tool against a real
recorded run and a served swarm (figures equal to the CLI's `-o json`), errors, read-only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.types import CallToolResult

from tests.mcp_server.data import (
    BAD_CALLS,
    CHANGING,
    LIVE_SWARM,
    RUN_SWARM,
    World,
    cli_for,
    cli_json,
    stdio,
    valid_calls,
)

pytestmark = pytest.mark.slow

EVERY_TOOL = set(BAD_CALLS)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("mcp"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def session(world: World) -> dict[str, Any]:
    """One stdio server, asked everything the tests below check."""

    async def ask() -> dict[str, Any]:
        heard: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            heard.append((progress, total, message))

        found: dict[str, Any] = {"valid": {}, "bad": {}, "progress": heard}
        async with stdio(world.data) as client:
            found["tools"] = (await client.list_tools()).tools
            for name, args in valid_calls(world):
                callback = on_progress if name == "benchmark_run" else None
                found["valid"][name] = await client.call_tool(
                    name, args, progress_callback=callback
                )
            for name, (args, _) in BAD_CALLS.items():
                found["bad"][name] = await client.call_tool(name, args)
            found["auto_dry_run"] = await client.call_tool(
                "swarm_scale",
                {"swarm_id": LIVE_SWARM, "target_size": "auto", "policy": "hpa", "dry_run": True},
            )
            found["resources"] = (await client.list_resources()).resources
            found["templates"] = (await client.list_resource_templates()).resource_templates
            reads = {}
            run_id = world.run["run_id"]
            for uri in (
                "swarmperf://swarms",
                f"swarmperf://swarms/{RUN_SWARM}/snapshot",
                f"swarmperf://swarms/{LIVE_SWARM}/snapshot",
                f"swarmperf://swarms/{RUN_SWARM}/runs",
                f"swarmperf://runs/{run_id}/report",
            ):
                result = await client.read_resource(uri)
                reads[uri] = json.loads(result.contents[0].text)  # type: ignore[union-attr]
            found["reads"] = reads
        async with stdio(world.data, "--read-only") as client:
            found["read_only_tools"] = (await client.list_tools()).tools
            found["read_only_store"] = await client.call_tool("simulate", {"store": True})
        return found

    return asyncio.run(ask())


def _data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    data = result.structured_content
    assert data is not None
    # The text a client without structured output reads is the same JSON.
    text = result.content[0].text  # type: ignore[union-attr]
    assert json.loads(text) == data
    return dict(data)


def test_every_tool_has_described_input_and_an_output_schema(session: dict[str, Any]) -> None:
    tools = {t.name: t for t in session["tools"]}
    assert set(tools) == EVERY_TOOL
    for tool in tools.values():
        assert "CLI" in (tool.description or ""), tool.name
        assert tool.output_schema is not None
        assert tool.output_schema["type"] == "object"
        for schema in (tool.input_schema, tool.output_schema):
            for field, spec in schema.get("properties", {}).items():
                assert spec.get("description"), f"{tool.name}.{field} is not described"


def test_changing_tools_are_annotated_and_read_only_hides_them(session: dict[str, Any]) -> None:
    tools = {t.name: t for t in session["tools"]}
    for name, tool in tools.items():
        hints = tool.annotations
        assert hints is not None
        if name in CHANGING:
            assert hints.read_only_hint is False
            assert hints.destructive_hint is (name != "task_submit")
        elif name in ("swarm_status", "performance_report", "sla_check"):
            assert hints.read_only_hint is True
    served = {t.name for t in session["read_only_tools"]}
    assert served == EVERY_TOOL - CHANGING
    refused = session["read_only_store"]
    assert refused.is_error
    assert "read-only" in refused.content[0].text


def test_every_tool_answers_valid_input(session: dict[str, Any]) -> None:
    assert set(session["valid"]) == EVERY_TOOL
    for result in session["valid"].values():
        _data(result)


def _without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def test_stored_figures_equal_the_cli_json(session: dict[str, Any], world: World) -> None:
    valid = {name: _data(result) for name, result in session["valid"].items()}
    args = dict(valid_calls(world))
    report = cli_for(world, "performance_report", {})
    # Each side reads "now" for its timeframe: everything else is the same stored data.
    assert _without(valid["performance_report"], "since", "until") == _without(
        report, "since", "until"
    )
    assert valid["trend_analysis"]["trends"] == report["trends"]
    assert valid["cost_analysis"]["cost"] == report["cost"]
    assert valid["agent_metrics"]["agent"] == report["agents"]["a1"]
    assert {a["id"]: _without(a, "id") for a in valid["agent_list"]["agents"]} == report["agents"]
    for name in (
        "bottleneck_analyze",
        "sla_check",
        "benchmark_compare",
        "quality_assess",
        "detect_regression",
        "error_analysis",
    ):
        assert valid[name] == cli_for(world, name, args[name]), name
    monitor = cli_for(world, "swarm_monitor", {})
    assert _without(valid["swarm_monitor"], "at") == _without(monitor, "at")
    sample = cli_json(
        "metrics-collect",
        "--components",
        "cpu,agents",
        "--count",
        "1",
        "--interval",
        "50ms",
        "--swarm-id",
        RUN_SWARM,
        "--data-dir",
        str(world.data),
    )
    (mine,) = valid["metrics_collect"]["samples"]
    assert mine["run_id"] == sample["run_id"] == world.run["run_id"]
    assert mine["swarm"] == sample["swarm"]
    assert set(mine["system"]) == set(sample["system"])


def test_runs_equal_the_cli_json(session: dict[str, Any], world: World) -> None:
    simulated = _data(session["valid"]["simulate"])
    cli = cli_for(world, "simulate", {})
    # Virtual time: the same seed gives the same figures; only the wall clock differs.
    for key in ("tasks_succeeded", "tasks_failed", "makespan", "latency_p50", "latency_p99"):
        assert simulated[key] == cli[key], key
    compared = _data(session["valid"]["load_balance"])
    cli = cli_for(world, "load_balance", {})
    assert compared["best"] == cli["best"] == "round-robin"
    for side in (compared, cli):
        assert side["strategies"]["round-robin"]["tasks_succeeded"] > 0


def test_benchmark_run_reports_progress_and_writes_results(
    session: dict[str, Any], world: World
) -> None:
    ran = _data(session["valid"]["benchmark_run"])
    assert Path(ran["path"]) == world.folder / "c.json"
    assert json.loads((world.folder / "c.json").read_text())["suite"] == "tiny"
    assert ran["benchmark_id"] is not None
    (scenario,) = ran["scenarios"]
    assert scenario["summary"]["throughput_per_s"] > 0
    progress = session["progress"]
    assert progress, "no progress notification while the suite ran"
    assert all(message and "tiny: paced" in message for _, _, message in progress)
    assert [done for done, _, _ in progress] == sorted(done for done, _, _ in progress)


def test_live_tools_act_on_the_served_swarm(session: dict[str, Any], world: World) -> None:
    valid = session["valid"]
    status = _data(valid["swarm_status"])
    assert status["swarm_id"] == LIVE_SWARM
    assert [a["id"] for a in status["agents"]] == ["a1", "a2"]
    submitted = _data(valid["task_submit"])
    assert len(submitted["submitted"]) == 3
    assert {o["status"] for o in submitted["outcomes"]} == {"succeeded"}
    switched = _data(valid["switch_strategy"])
    assert (switched["previous"], switched["strategy"]) == ("least-loaded", "round-robin")
    scaled = _data(valid["swarm_scale"])
    assert (scaled["before"], scaled["after"]) == (2, 3)
    auto = _data(session["auto_dry_run"])
    assert auto["dry_run"] is True
    assert auto["recommendation"]["policy"] == "hpa"
    assert auto["autoscale"]["on"] is False
    # The CLI sees what the tools did.
    now = cli_for(world, "swarm_status", {})
    assert now["strategy"] == "round-robin"
    assert len(now["agents"]) == 3
    assert now["accepted"] >= 3


def test_bad_input_to_every_tool_is_a_tool_error_with_the_fix(session: dict[str, Any]) -> None:
    assert set(session["bad"]) == EVERY_TOOL
    wrong = []
    for name, result in session["bad"].items():
        text = result.content[0].text
        if not result.is_error or BAD_CALLS[name][1].lower() not in text.lower():
            wrong.append(f"{name}: {text}")
        assert "Traceback" not in text
    assert not wrong, "\n".join(wrong)


def test_resources_list_and_read(session: dict[str, Any], world: World) -> None:
    assert [str(r.uri) for r in session["resources"]] == ["swarmperf://swarms"]
    assert {t.uri_template for t in session["templates"]} == {
        "swarmperf://swarms/{swarm_id}/snapshot",
        "swarmperf://swarms/{swarm_id}/runs",
        "swarmperf://runs/{run_id}/report",
    }
    reads = session["reads"]
    swarms = reads["swarmperf://swarms"]
    assert [s["swarm_id"] for s in swarms["running"]] == [LIVE_SWARM]
    assert RUN_SWARM in swarms["stored"]
    assert reads[f"swarmperf://swarms/{RUN_SWARM}/snapshot"]["run"]["id"] == world.run["run_id"]
    assert reads[f"swarmperf://swarms/{LIVE_SWARM}/snapshot"]["live"] is True
    (run,) = reads[f"swarmperf://swarms/{RUN_SWARM}/runs"]["runs"]
    assert run["id"] == world.run["run_id"]
    report = reads[f"swarmperf://runs/{run['id']}/report"]["report"]
    assert report["tasks_succeeded"] == world.run["tasks_succeeded"] == 60

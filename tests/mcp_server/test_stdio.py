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

from swarmperf.autoscale.policies import POLICIES
from swarmperf.mcp_server.tools import MAX_REPLAY_TASKS, MAX_TRACE_BYTES
from tests.mcp_server.data import (
    BAD_CALLS,
    CHANGING,
    LIVE_SWARM,
    PLANNING,
    PROGRESSING,
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
        heard: dict[str, list[tuple[float, float | None, str | None]]] = {}

        def listener(name: str) -> Any:
            async def on_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                heard.setdefault(name, []).append((progress, total, message))

            return on_progress

        found: dict[str, Any] = {"valid": {}, "bad": {}, "progress": heard}
        big = world.folder / "big.csv"
        with big.open("wb") as sparse:  # its size is all that is looked at
            sparse.truncate(MAX_TRACE_BYTES + 1)
        busy = world.folder / "busy.csv"
        busy.write_text(f"minute_index,requests\n0,{MAX_REPLAY_TASKS + 1}\n1,0\n")
        async with stdio(world.data) as client:
            found["tools"] = (await client.list_tools()).tools
            for name, args in valid_calls(world):
                callback = listener(name) if name in PROGRESSING else None
                found["valid"][name] = await client.call_tool(
                    name, args, progress_callback=callback
                )
            for name, (args, _) in BAD_CALLS.items():
                found["bad"][name] = await client.call_tool(name, args)
            found["too_big"] = await client.call_tool("workload_analyze", {"trace": str(big)})
            found["too_many"] = await client.call_tool("autoscale_eval", {"trace": str(busy)})
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
            found["read_only_apply"] = await client.call_tool(
                "resource_alloc",
                {"resources": str(world.resources), "swarm_id": LIVE_SWARM, "apply": True},
            )
            found["read_only_topology"] = await client.call_tool(
                "topology_optimize", {"swarm_id": LIVE_SWARM, "strategy": "fixed:ring"}
            )
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
        elif name in ("swarm_status", "performance_report", "sla_check", *PLANNING):
            assert hints.read_only_hint is True
    served = {t.name for t in session["read_only_tools"]}
    assert served == EVERY_TOOL - CHANGING
    refused = session["read_only_store"]
    assert refused.is_error
    assert "read-only" in refused.content[0].text
    # resource_alloc plans in either mode; it applies (destructive) only where it may write.
    allocating = tools["resource_alloc"].annotations
    assert allocating is not None
    assert allocating.destructive_hint is True
    (read_only,) = [t for t in session["read_only_tools"] if t.name == "resource_alloc"]
    assert read_only.annotations is not None
    assert read_only.annotations.read_only_hint is True
    refused = session["read_only_apply"]
    assert refused.is_error
    assert "read-only" in refused.content[0].text
    # topology_optimize plans in either mode; it switches a live swarm only where it may.
    assert tools["topology_optimize"].annotations.destructive_hint is True
    refused = session["read_only_topology"]
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
        "resource_alloc",
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
    progress = session["progress"].get("benchmark_run")
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


def test_planning_tools_equal_the_cli_json(session: dict[str, Any], world: World) -> None:
    valid = {name: _data(session["valid"][name]) for name in PLANNING}
    args = dict(valid_calls(world))
    assert valid["workload_analyze"] == cli_for(world, "workload_analyze", args["workload_analyze"])
    assert valid["workload_analyze"]["periods"][0]["period"] == 24
    # The replay and the solvers are seeded: everything but the wall clock is the same.
    replayed = cli_for(world, "autoscale_eval", args["autoscale_eval"])
    assert _without(valid["autoscale_eval"], "wall_seconds") == _without(replayed, "wall_seconds")
    assert set(valid["autoscale_eval"]["wall_seconds"]) == set(replayed["policies"])
    placed = cli_for(world, "placement_eval", args["placement_eval"])
    timed = ("seconds", "seconds_to_best")
    for side in (valid["placement_eval"], placed):
        for solution in side["solutions"].values():
            assert solution["seconds"] >= 0
            for key in timed:
                solution.pop(key)
    assert valid["placement_eval"] == placed
    assert placed["at_optimum"] == 2
    # The simulator is seeded: the tool's plan is the command's.
    planned = cli_for(world, "topology_optimize", args["topology_optimize"])
    assert _data(session["valid"]["topology_optimize"]) == planned
    assert planned["live"] is False
    assert planned["current"] == "star(hub=hub)"
    assert planned["best"] != planned["current"]


def test_long_planning_tools_report_progress(session: dict[str, Any]) -> None:
    policies = session["progress"]["autoscale_eval"]
    n = len(POLICIES)  # every policy the replay knows, one notification as each starts
    assert [(done, total) for done, total, _ in policies] == [(i, n) for i in range(n)]
    assert "replaying under hpa" in str(policies[0][2])
    instances = session["progress"]["placement_eval"]
    assert [(done, total) for done, total, _ in instances] == [(1, 2), (2, 2)]
    assert [str(message).split(":")[0] for _, _, message in instances] == ["a6", "b7"]


def test_profile_writes_where_asked_and_answers_as_the_cli(
    session: dict[str, Any], world: World
) -> None:
    profiled = _data(session["valid"]["profile_performance"])
    written = profiled["written"]
    assert written == {
        "collapsed": str(world.folder / "tool.folded"),
        "svg": str(world.folder / "tool.svg"),
    }
    assert Path(written["svg"]).read_text().startswith("<?xml")
    assert Path(written["collapsed"]).exists()
    args = dict(valid_calls(world))["profile_performance"]
    cli = cli_for(world, "profile_performance", args)
    # Two windows of sampling: the same figures, not the same counts or window lengths.
    assert list(profiled) == list(cli)
    for key in ("rate_hz", "components", "memory"):
        assert profiled[key] == cli[key], key
    assert profiled["duration_s"] > 0
    assert cli["duration_s"] > 0


def test_a_trace_too_large_to_answer_in_one_call_is_refused(session: dict[str, Any]) -> None:
    refused = session["too_big"]
    assert refused.is_error
    text = refused.content[0].text
    assert f"at most {MAX_TRACE_BYTES:,} are read here" in text
    assert "big.csv" in text
    refused = session["too_many"]
    assert refused.is_error
    text = refused.content[0].text
    assert f"at most {MAX_REPLAY_TASKS:,} are replayed here" in text
    assert "busy.csv" in text

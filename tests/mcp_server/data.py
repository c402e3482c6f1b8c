"""What the MCP tests share: a data dir with a real recorded run, suite results and a served
swarm; every tool's valid and bad input; and the CLI's `-o json` for the same question."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from typer.testing import CliRunner

from swarmperf.cli.main import app
from tests.inputs import write_corpus, write_trace
from tests.serving import TWO_AGENTS, Service, service

RUN_SWARM = "mcprun"
LIVE_SWARM = "mcplive"
RUN_SPEC = """\
swarm_id: mcprun
backend: local
strategy: least-loaded
seed: 3
agents: [{id: a1, concurrency: 2}, {id: a2, concurrency: 2}]
workload: {kind: sleep, tasks: 60}
"""
TINY_SUITE = """\
suite: tiny
defaults: {duration: 200ms, iterations: 3, warmup: 0s, cooldown: 0s}
scenarios:
  - {name: paced, kind: load, rate: 100/s, arrival: constant}
"""
RESOURCES = """\
pools:
  - {id: a, cost_per_hour: 1, concurrency: 2, max: 6, service_time: {sleep: 50ms}}
  - {id: b, cost_per_hour: 3, concurrency: 8, max: 2, service_time: {sleep: 50ms}}
workload: {rate: 50/s, mix: {sleep: 1}}
constraints: {slo: {sleep: {p99: 1s}}}
"""
# Each topology simulated on all-to-all traffic through a slow hub (offline: no swarm runs).
TOPOLOGY_SPEC = """\
swarm_id: mcptopo
agents: [{id: hub, slowdown: 20}, {id: w, count: 5}]
topology: {kind: star, hub: hub}
messages: {pattern: broadcast, bytes: 256, latency: 1ms, relay_cost: 2ms}
workload: {tasks: 20, kind: sleep, size: {distribution: constant, value: 10ms}}
"""
# The tools that change a swarm or write files: never served with --read-only.
CHANGING = {"switch_strategy", "swarm_scale", "task_submit", "profile_performance"}
# The tools that plan from files (a trace, a QAPLIB folder) and change nothing.
PLANNING = {"workload_analyze", "autoscale_eval", "placement_eval"}
# The tools that send progress notifications while they run.
PROGRESSING = {"benchmark_run", "autoscale_eval", "placement_eval"}

runner = CliRunner()


def cli_json(*args: str) -> Any:
    """The CLI's `-o json` for `args` (in this process, as a user would type it)."""
    result = runner.invoke(app, [*args, "-o", "json"], catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


class World:
    """A data dir with one recorded run, two suite results and one served swarm; two
    traces and a folder of QAPLIB instances."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        spec = folder / "run.yaml"
        spec.write_text(RUN_SPEC)
        self.run = cli_json("run", str(spec), "--data-dir", str(self.data))
        suite = folder / "tiny.yaml"
        suite.write_text(TINY_SUITE)
        self.results = []
        for name in ("a", "b"):
            path = folder / f"{name}.json"
            cli_json(
                "benchmark-run",
                "--suite",
                str(suite),
                "--out",
                str(path),
                "--swarm-id",
                RUN_SWARM,
                "--data-dir",
                str(self.data),
            )
            self.results.append(path)
        self.suite = suite
        self.resources = folder / "resources.yaml"
        self.resources.write_text(RESOURCES)
        self.trace = write_trace(folder)
        self.short_trace = write_trace(folder, "short.csv", rows=24 * 5)
        self.corpus = write_corpus(folder / "qaplib")
        self.topology_spec = folder / "topology.yaml"
        self.topology_spec.write_text(TOPOLOGY_SPEC)
        self.service: Service = service(folder / "live", LIVE_SWARM, spec=TWO_AGENTS)
        self.service.data_dir = self.data
        self.service.start()

    def close(self) -> None:
        self.service.close()


def stdio(data_dir: Path, *extra: str) -> Client:
    """An SDK client of `swarmperf mcp` started as a subprocess over stdio."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMPERF_")}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "swarmperf", "mcp", "--data-dir", str(data_dir), *extra],
        env=env,
    )
    return Client(params, read_timeout_seconds=120)


def valid_calls(world: World) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every tool with valid input, against the recorded run, the results and the live swarm."""
    a, b = (str(p) for p in world.results)
    yield "swarm_status", {"swarm_id": LIVE_SWARM}
    yield "swarm_monitor", {"swarm_id": RUN_SWARM}
    yield "agent_list", {"swarm_id": RUN_SWARM}
    yield "agent_metrics", {"swarm_id": RUN_SWARM, "agent_id": "a1"}
    yield "metrics_collect", {"components": "cpu,agents", "interval": "50ms", "swarm_id": RUN_SWARM}
    yield "performance_report", {"swarm_id": RUN_SWARM}
    yield "trend_analysis", {"swarm_id": RUN_SWARM}
    yield "cost_analysis", {"swarm_id": RUN_SWARM}
    yield "bottleneck_analyze", {"swarm_id": RUN_SWARM, "record": False}
    yield "sla_check", {"swarm_id": RUN_SWARM}
    yield "anomaly_events", {"swarm_id": RUN_SWARM}
    yield "load_balance", {"strategy": "round-robin", "seed": 1, "store": False}
    yield "simulate", {"tasks": 300, "seed": 2, "store": False}
    yield "benchmark_run", {"suite": str(world.suite), "out": str(world.folder / "c.json")}
    yield "benchmark_compare", {"baseline": a, "current": b}
    yield "quality_assess", {"target": b}
    yield "detect_regression", {"current": b, "historical": [a]}
    yield "error_analysis", {"swarm_id": RUN_SWARM}
    yield "resource_alloc", {"resources": str(world.resources), "seed": 1}
    yield "workload_analyze", {"trace": str(world.trace)}
    yield "autoscale_eval", {"trace": str(world.short_trace), "peak_agents": 5}
    yield "placement_eval", {"corpus": str(world.corpus), "iterations": 300, "seed": 4}
    yield "topology_optimize", {"spec": str(world.topology_spec), "objective": "traffic"}
    yield (
        "profile_performance",
        {
            "swarm_id": LIVE_SWARM,
            "duration": "1s",
            "formats": ["collapsed", "svg"],
            "out": str(world.folder / "tool.folded"),
        },
    )
    yield "task_submit", {"swarm_id": LIVE_SWARM, "tasks": [{"kind": "noop"}] * 3, "wait_s": 30}
    yield "switch_strategy", {"swarm_id": LIVE_SWARM, "strategy": "round-robin", "observe": "0"}
    yield "swarm_scale", {"swarm_id": LIVE_SWARM, "target_size": "3", "observe": "0"}


# Each tool with a bad value, and a piece of the fix its error must carry.
BAD_CALLS: dict[str, tuple[dict[str, Any], str]] = {
    "swarm_status": ({"swarm_id": "nobody"}, "Start one with: swarmperf serve"),
    "swarm_monitor": ({"swarm_id": RUN_SWARM, "interval": "-1s"}, "use one like 30s"),
    "agent_list": ({"swarm_id": "nobody"}, "swarmperf run --swarm-id nobody"),
    "agent_metrics": ({"swarm_id": RUN_SWARM, "agent_id": "zz"}, "its agents are: a1, a2"),
    "metrics_collect": ({"components": "gpu"}, "comma-separated list"),
    "performance_report": ({"swarm_id": RUN_SWARM, "timeframe": "soon"}, "duration like 30s"),
    "trend_analysis": ({"swarm_id": RUN_SWARM, "timeframe": "0s"}, "duration > 0"),
    "cost_analysis": ({"swarm_id": RUN_SWARM, "cost_model": "/nope.yaml"}, "per_agent_hour"),
    "bottleneck_analyze": ({"swarm_id": RUN_SWARM, "run": "x:1"}, "sim:N for its simulated"),
    "sla_check": ({"swarm_id": RUN_SWARM, "window": "0s"}, "Use a duration > 0"),
    "anomaly_events": ({"swarm_id": "nobody"}, "swarmperf run --swarm-id nobody"),
    "load_balance": ({"strategy": "fastest"}, "Choose one of"),
    "simulate": ({"agents": 0}, "Use an integer >= 1"),
    "benchmark_run": ({"suite": "nope"}, "nope"),
    "benchmark_compare": ({"baseline": "/a.json", "current": "/b.json"}, "the path benchmark-run"),
    "quality_assess": ({"target": "/nope/r.json"}, "nope"),
    "detect_regression": ({"current": "/nope.json"}, "give exactly one"),
    "error_analysis": ({}, "give exactly one"),
    "resource_alloc": ({"resources": "/nope/resources.yaml"}, "cannot be read"),
    "workload_analyze": ({"trace": "/nope/trace.csv"}, "Cannot read the file"),
    "autoscale_eval": ({"trace": "/nope.csv", "policy": "magic"}, "Choose one of: all, hpa"),
    "placement_eval": ({"corpus": "/nope", "time_limit": "0s"}, "Give a time above 0"),
    "topology_optimize": (
        {"spec": "/nope.yaml", "swarm_id": LIVE_SWARM},
        "Give a SPEC (plan offline) or --swarm-id",
    ),
    "profile_performance": ({"swarm_id": LIVE_SWARM, "duration": "2h"}, "at most 300 s here"),
    "task_submit": ({"swarm_id": LIVE_SWARM, "tasks": []}, "at least one task"),
    "switch_strategy": ({"swarm_id": LIVE_SWARM, "strategy": "auto"}, "name it"),
    "swarm_scale": ({"swarm_id": LIVE_SWARM, "target_size": "many"}, "give a number"),
}


def cli_for(world: World, name: str, args: dict[str, Any]) -> Any:
    """The CLI's `-o json` for the question a tool call asks, where it has a command."""
    d = ("--data-dir", str(world.data))
    if name == "swarm_monitor":
        return cli_json("swarm-monitor", "--swarm-id", RUN_SWARM, "--count", "1", *d)
    if name in ("performance_report", "trend_analysis", "cost_analysis", "agent_metrics"):
        return cli_json("performance-report", "--swarm-id", RUN_SWARM, *d)
    if name == "agent_list":
        return cli_json("performance-report", "--swarm-id", RUN_SWARM, *d)["agents"]
    if name == "bottleneck_analyze":
        return cli_json("bottleneck-analyze", "--swarm-id", RUN_SWARM, "--no-record", *d)
    if name == "sla_check":
        return cli_json("sla-check", "--swarm-id", RUN_SWARM, *d)
    if name == "load_balance":
        return cli_json("load-balance", "--strategy", "round-robin", "--seed", "1", "--no-store")
    if name == "simulate":
        return cli_json("simulate", "--tasks", "300", "--seed", "2", "--no-store")
    if name == "benchmark_compare":
        return cli_json("benchmark-compare", args["baseline"], args["current"])
    if name == "quality_assess":
        return cli_json("quality-assess", "--target", args["target"], *d)
    if name == "detect_regression":
        return cli_json(
            "detect-regression", "--current", args["current"], "--historical", *args["historical"]
        )
    if name == "error_analysis":
        return cli_json("error-analysis", "--swarm-id", RUN_SWARM, *d)
    if name == "resource_alloc":
        return cli_json("resource-alloc", "--resources", args["resources"], "--seed", "1")
    if name == "swarm_status":
        return cli_json("swarm-status", "--swarm-id", LIVE_SWARM, *d)
    if name == "workload_analyze":
        return cli_json("workload-analyze", args["trace"])
    if name == "autoscale_eval":
        return cli_json("autoscale-eval", args["trace"], "--peak-agents", "5")
    if name == "placement_eval":
        return cli_json(
            "placement-eval", "--corpus", args["corpus"], "--iterations", "300", "--seed", "4"
        )
    if name == "topology_optimize":
        return cli_json("topology-optimize", args["spec"], "--objective", "traffic")
    if name == "profile_performance":
        out = str(world.folder / "cli.folded")
        formats = ("--format", "collapsed", "--format", "svg")
        return cli_json("profile-performance", "--swarm-id", LIVE_SWARM, "--duration", "1s",
                        *formats, "--out", out, *d)  # fmt: skip
    return None

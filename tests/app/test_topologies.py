"""`topology-optimize SPEC`: every topology simulated on the spec's traffic, the best named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmperf.app.topologies import plan_topologies
from swarmperf.cli.main import app
from swarmperf.routing import TOPOLOGIES
from swarmperf.spec import parse_spec_yaml

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mapreduce.yaml"

# All-to-all traffic through a star whose hub is slow: every relay waits on the hub.
SLOW_HUB = """\
swarm_id: slow-hub
agents: [{id: hub, slowdown: 20}, {id: w, count: 7}]
topology: {kind: star, hub: hub}
messages: {pattern: broadcast, bytes: 256, latency: 1ms, relay_cost: 2ms}
workload: {tasks: 40, kind: sleep, size: {distribution: constant, value: 10ms}}
"""


def test_a_slow_hub_on_all_to_all_traffic_is_found_and_avoided() -> None:
    plan = plan_topologies(parse_spec_yaml(SLOW_HUB), "traffic")
    assert plan.current == "star(hub=hub)"
    assert plan.best != plan.current
    assert plan.gain is not None
    assert plan.gain > 0.5
    by_name = {f.topology: f for f in plan.figures}
    assert by_name[plan.best].traffic == min(f.traffic or 0.0 for f in plan.figures)
    # The hub relays every message between two others: one hop more than direct each.
    star = by_name["star(hub=hub)"]
    assert star.messages == 40 * 7
    assert star.relayed_max == star.hops - star.messages > 0


def test_the_plan_as_json_has_every_topology_and_the_gain() -> None:
    result = runner.invoke(app, ["topology-optimize", str(EXAMPLE), "-o", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output.strip().splitlines()[-1])
    kinds = {row["topology"].split("(")[0] for row in plan["topologies"]}
    assert kinds == set(TOPOLOGIES)
    rows = {row["topology"]: row for row in plan["topologies"]}
    best, current = rows[plan["best"]]["p99"], rows[plan["current"]]["p99"]
    assert best == min(row["p99"] for row in rows.values())
    assert plan["predicted_gain"] == pytest.approx((current - best) / current)
    # The same workload under each: only the routes differ.
    assert {row["messages"] for row in rows.values()} == {600}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--objective", "speed"], "--objective"),
        ([], "send no messages"),
    ],
)
def test_bad_input_exits_2_and_says_why(tmp_path: Path, args: list[str], words: str) -> None:
    spec = tmp_path / "swarm.yaml"
    text = SLOW_HUB if args else "agents: [{id: a, count: 3}]\n"
    spec.write_text(text)
    result = runner.invoke(app, ["topology-optimize", str(spec), *args])
    assert result.exit_code == 2
    assert words in result.output
    assert "Traceback" not in result.output

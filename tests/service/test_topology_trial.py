"""`topology-optimize --swarm-id` against a real `swarmperf serve` under load: a star whose
hub is slow, on all-to-all traffic, is found, switched and kept on the messages' measured
latency (on `local` and `process`); a switch the simulator overrates (it is told relays
cost what they do not) is rolled back; no message is lost across either; a dry run
changes nothing; every attempt is a decision in the store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from swarmperf.cli.main import app
from swarmperf.client import SyncSwarmClient
from swarmperf.core.errors import SwarmError
from swarmperf.store import Store
from swarmperf.store.paths import database_path
from tests.serving import Service, service

pytestmark = pytest.mark.slow

runner = CliRunner(env={"COLUMNS": "120"})
SWARM = "topology-live"
# Every task tells every other agent (broadcast); in a star each message between two
# workers waits at the hub, which takes 20 times as long as the others over its tasks.
SLOW_HUB = """\
swarm_id: {swarm_id}
backend: local
strategy: least-loaded
seed: 5
agents: [{{id: hub, slowdown: 20}}, {{id: w, count: 7}}]
topology: {{kind: star, hub: hub}}
messages: {{pattern: broadcast, bytes: 256, latency: 1ms, relay_cost: 2ms}}
timeouts: {{drain: 5s}}
"""
# A hub with room to spare, but the spec says each relay costs it 200 ms: the simulator sees
# the hub swamped and predicts a mesh much better. Live, a relay costs next to nothing, and
# a message waits mostly at its receiver, behind a task of 200 ms: in a mesh it waits alike.
OVERRATED = """\
swarm_id: {swarm_id}
backend: local
strategy: least-loaded
seed: 5
agents: [{{id: hub, concurrency: 4}}, {{id: w, count: 7}}]
topology: {{kind: star, hub: hub}}
messages: {{pattern: broadcast, bytes: 256, latency: 1ms, relay_cost: 200ms}}
timeouts: {{drain: 5s}}
"""
# The spec declares messages to the hub alone, which a star takes straight there; the
# tasks' handler (`CHATTER`) also tells every other worker, through the slow hub.
CHATTY = """\
swarm_id: {swarm_id}
backend: local
strategy: least-loaded
seed: 5
agents: [{{id: hub, slowdown: 20}}, {{id: w, count: 7}}]
topology: {{kind: star, hub: hub}}
messages: {{pattern: gather, to: [hub], bytes: 256, latency: 1ms, relay_cost: 2ms}}
timeouts: {{drain: 5s}}
"""
CHATTER = """\
import time


def chatter(payload, agent):
    time.sleep(payload)
    for i in range(7):
        if f"w-{i}" != agent.id:
            agent.send(f"w-{i}", "noop", b"")


HANDLERS = {"chatter": chatter}
"""
TASK_S = 0.01
RATE = 20.0
WINDOW = "4s"


class Load:
    """`sleep` tasks of `task_s` seconds at `RATE` per second from a thread."""

    def __init__(self, served: Service, task_s: float = TASK_S, kind: str = "sleep") -> None:
        self.served = served
        self.task_s = task_s
        self.kind = kind
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with SyncSwarmClient(SWARM, data_dir=self.served.data_dir, retries=0) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                with contextlib.suppress(SwarmError):  # a full queue: the load goes on
                    client.submit_many([{"kind": self.kind, "payload": self.task_s}] * 2)
                next_at += 2 / RATE
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Load:
        self._thread.start()
        time.sleep(4.0)  # a window of results and messages before any change
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def serve(tmp_path: Path, spec: str) -> Iterator[Service]:
    running = service(tmp_path / "served", SWARM, spec=spec).start()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def slow_hub(tmp_path: Path) -> Iterator[Service]:
    yield from serve(tmp_path, SLOW_HUB)


@pytest.fixture(params=["local", "process"])
def slow_hub_on(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    yield from serve(tmp_path, SLOW_HUB.replace("backend: local", f"backend: {request.param}"))


@pytest.fixture
def overrated(tmp_path: Path) -> Iterator[Service]:
    yield from serve(tmp_path, OVERRATED)


@pytest.fixture
def chatty(tmp_path: Path) -> Iterator[Service]:
    (tmp_path / "chatter.py").write_text(CHATTER)
    paths = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    running = service(
        tmp_path / "served",
        SWARM,
        "--handlers",
        "chatter:HANDLERS",
        spec=CHATTY,
        env={"PYTHONPATH": paths},
    ).start()
    try:
        yield running
    finally:
        running.close()


def optimise(served: Service, *args: str) -> dict[str, Any]:
    result = runner.invoke(
        app,
        [
            "topology-optimize",
            "--swarm-id",
            SWARM,
            "--data-dir",
            str(served.data_dir),
            "--observe",
            WINDOW,
            *args,
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def topology(served: Service) -> dict[str, Any]:
    with SyncSwarmClient(SWARM, data_dir=served.data_dir) as client:
        return client.topology()


def settled(served: Service) -> dict[str, Any]:
    """The message counts once every message sent has ended (the load stopped)."""
    deadline = time.monotonic() + 30
    while True:
        messages: dict[str, Any] = topology(served)["messages"]
        if messages["in_flight"] == 0 or time.monotonic() > deadline:
            return messages
        time.sleep(0.1)


def stored(served: Service) -> list[dict[str, Any]]:
    with Store.open(database_path(served.data_dir), read_only=True) as store:
        return [d.decision for d in store.decisions(SWARM, "topology")]


def test_a_slow_hub_is_found_switched_and_kept(slow_hub_on: Service) -> None:
    with Load(slow_hub_on):
        data = optimise(slow_hub_on, "--objective", "traffic")
        assert topology(slow_hub_on)["topology"] == data["target"]
    assert data["current"] == "star(hub=hub)"
    assert data["target"] != data["current"]
    assert data["predicted_gain"] >= 0.1
    assert data["verdict"] == "kept", data
    before = data["figures_before"]["message_latency_mean_s"]
    after = data["figures_after"]["message_latency_mean_s"]
    assert after <= 0.9 * before
    # Routed by the new rule: fewer hops per message than through the hub.
    assert data["figures_after"]["message_hops_mean"] < data["figures_before"]["message_hops_mean"]
    messages = settled(slow_hub_on)
    assert messages["failed"] == messages["dropped"] == messages["in_flight"] == 0
    assert messages["delivered"] == messages["sent"] > 0
    (decision,) = stored(slow_hub_on)
    assert decision["trial"]["verdict"] == "kept"
    assert decision["inputs"]["prediction"]["topology"] == data["target"]
    assert decision["inputs"]["prediction"]["gain"] == data["predicted_gain"]
    assert decision["inputs"]["communication"]["messages"] > 0
    assert decision["before"]["message_latency_mean_s"] == before
    assert decision["after"]["message_latency_mean_s"] == after


def test_a_change_that_does_not_help_is_rolled_back(overrated: Service) -> None:
    with Load(overrated, task_s=0.2):
        data = optimise(
            overrated, "--strategy", "fixed:mesh", "--objective", "traffic", "--min-gain", "0.5"
        )
        now = topology(overrated)["topology"]
    assert data["current"] == "star(hub=hub)"
    assert data["target"] == "mesh"
    assert data["predicted_gain"] >= 0.5  # the simulator believes in it...
    assert data["verdict"] == "rolled-back", (
        data["why"],
        data["figures_before"],
        data["figures_after"],
    )
    assert data["reverted"] == {"topology": "star(hub=hub)"}
    assert now == "star(hub=hub)"
    assert "message_latency_mean_s went from" in data["why"]
    messages = settled(overrated)
    assert messages["failed"] == messages["dropped"] == messages["in_flight"] == 0
    assert messages["delivered"] == messages["sent"] > 0
    (decision,) = stored(overrated)
    assert decision["trial"]["verdict"] == "rolled-back"
    assert decision["after"]["message_latency_mean_s"] is not None


def test_the_live_plan_simulates_the_traffic_the_swarm_measured(chatty: Service) -> None:
    """The declared messages all go to the hub, where a star sends them straight; the
    measured ones mostly go from worker to worker through the slow hub. The plan is made
    from the measured matrix, and says so."""
    with Load(chatty, kind="chatter"):
        data = optimise(chatty, "--objective", "traffic", "--dry-run")
    assert data["traffic"] == "measured"
    assert data["current"] == "star(hub=hub)"
    assert data["target"] != data["current"]
    assert data["predicted_gain"] >= 0.1, data["plan"]


def test_the_declared_traffic_alone_would_keep_the_star() -> None:
    """The same plan from the declared messages (to the hub only) finds no topology
    much better than the star: the measured matrix is what makes the difference."""
    from swarmperf.service.topology import live_plan
    from swarmperf.spec import parse_spec_yaml

    spec = parse_spec_yaml(CHATTY.format(swarm_id=SWARM))
    workload = {
        "tasks": 200,
        "kind": "sleep",
        "size": {"distribution": "constant", "value": TASK_S},
        "arrival": {"process": "poisson", "rate": RATE},
    }
    plan = live_plan(spec, spec.topology.to_settings(), workload, "traffic")
    assert plan.current == "star(hub=hub)"
    assert plan.gain is None or plan.gain < 0.1, plan.to_dict()


async def through_the_clients(served: Service) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dry run asked through the MCP SDK's client of `swarmperf mcp --read-only`, and the
    topology told to the async client."""
    from swarmperf.client import SwarmClient
    from tests.mcp_server.data import stdio

    async with stdio(served.data_dir, "--read-only") as mcp:
        asked = await mcp.call_tool(
            "topology_optimize",
            {"swarm_id": SWARM, "objective": "traffic", "dry_run": True},
        )
    assert not asked.is_error, asked.content
    assert asked.structured_content is not None
    async with SwarmClient(SWARM, data_dir=served.data_dir) as client:
        told = await client.topology()
    return dict(asked.structured_content), told


def test_a_dry_run_and_a_change_predicted_too_small_change_nothing(slow_hub: Service) -> None:
    with Load(slow_hub):
        dry = optimise(slow_hub, "--objective", "traffic", "--dry-run")
        where = ("--swarm-id", SWARM, "--data-dir", str(slow_hub.data_dir))
        shown = runner.invoke(
            app, ["topology-optimize", *where, "--objective", "traffic", "--dry-run"]
        )
        tool, told = asyncio.run(through_the_clients(slow_hub))
        assert told["topology"] == topology(slow_hub)["topology"] == "star(hub=hub)"
        assert stored(slow_hub) == []
        # No topology is predicted to gain 99% here: recorded as an attempt, not applied.
        small = optimise(slow_hub, "--strategy", "fixed:ring", "--min-gain", "0.99")
        assert topology(slow_hub)["topology"] == "star(hub=hub)"
    assert dry["dry_run"] is True
    assert dry["applied"] is False
    assert dry["decision_id"] is None
    assert {row["topology"].split("(")[0] for row in dry["plan"]["topologies"]} == {
        "hierarchical",
        "hybrid",
        "mesh",
        "ring",
        "star",
    }
    assert dry["target"] == dry["plan"]["best"]
    assert shown.exit_code == 0, shown.output
    assert "* star(hub=hub)" in shown.output
    assert f"dry run: {dry['target']} would be tried" in shown.output
    # The tool asks what the command asks (the measured workload moves between the two).
    assert tool["live"] is True
    assert tool["dry_run"] is True
    assert tool["applied"] is False
    assert tool["decision_id"] is None
    assert tool["current"] == dry["current"] == "star(hub=hub)"
    assert tool["target"] == dry["target"]
    assert small["applied"] is False
    assert "less than the 99%" in small["why"]
    (decision,) = stored(slow_hub)
    assert decision["trial"]["verdict"] == "not-applied"
    assert decision["inputs"]["prediction"]["topology"] == "ring"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["SPEC", "--swarm-id", SWARM], "not both"),
        ([], "Give a SPEC"),
        (["--swarm-id", SWARM, "--strategy", "fixed:blob"], "fixed:mesh"),
        (["--swarm-id", SWARM, "--strategy", "best"], "adaptive, or fixed:<topology>"),
        (["--swarm-id", SWARM, "--objective", "speed"], "--objective"),
        (["--swarm-id", SWARM, "--min-gain", "1.5"], "--min-gain"),
        (["--swarm-id", SWARM, "--observe", "0s"], "--observe"),
        (["SPEC", "--strategy", "adaptive"], "goes with --swarm-id"),
        (["--swarm-id", SWARM, "--latency", "zones"], "goes with a SPEC"),
        (["--swarm-id", SWARM, "--predict"], "--predict"),
        (["--swarm-id", "nobody-serves-this"], "nobody-serves-this"),
    ],
)
def test_bad_input_exits_2_and_says_why(tmp_path: Path, args: list[str], words: str) -> None:
    spec = tmp_path / "swarm.yaml"
    spec.write_text(SLOW_HUB.format(swarm_id=SWARM))
    asked = [str(spec) if a == "SPEC" else a for a in args]
    result = runner.invoke(app, ["topology-optimize", *asked, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert "Traceback" not in result.output

"""The live commands against a real `swarmperf serve` process, and against ids that do not run."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from swarmperf.cli.main import app
from swarmperf.client import SyncSwarmClient
from swarmperf.service import registry
from tests.serving import Service, service

runner = CliRunner(env={"COLUMNS": "80"})
SWARM = "cli-live"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = service(tmp_path_factory.mktemp("served"), SWARM).start()
    try:
        yield running
    finally:
        running.close()


def invoke(served: Service, *args: str) -> Result:
    result = runner.invoke(app, [*args, "--data-dir", str(served.data_dir)])
    assert "Traceback" not in result.output
    return result


def last_json(result: Result) -> dict[str, object]:
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(data, dict)
    return data


def widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


# -- swarm-status ---------------------------------------------------------------------------


def test_status_shows_the_swarm_now(served: Service) -> None:
    result = invoke(served, "swarm-status", "--swarm-id", SWARM)
    assert result.exit_code == 0, result.output
    assert f"Swarm '{SWARM}': running, least-loaded on local" in result.stdout
    assert "accepted" in result.stdout
    assert "Queue:" in result.stdout
    assert "throughput" in result.stdout
    assert "a-0" in result.stdout
    assert "a-1" in result.stdout
    assert widest(result.stdout) <= 80


def test_status_in_json_is_the_services(served: Service) -> None:
    result = invoke(served, "swarm-status", "--swarm-id", SWARM, "-o", "json")
    assert result.exit_code == 0, result.output
    status = last_json(result)
    assert status["swarm_id"] == SWARM
    assert status["state"] == "running"
    assert status["strategy"] == "least-loaded"
    assert isinstance(status["agents"], list)
    assert {"accepted", "finished", "pending", "queue", "figures"} <= set(status)


def test_status_summarises_many_agents(served: Service) -> None:
    with SyncSwarmClient(SWARM, data_dir=served.data_dir) as client:
        client.scale(25, observe_s=0)
        try:
            result = invoke(served, "swarm-status", "--swarm-id", SWARM)
            every = invoke(served, "swarm-status", "--swarm-id", SWARM, "--per-agent")
        finally:
            client.scale(2, observe_s=0)
    assert result.exit_code == 0, result.output
    assert "Agents by group" in result.stdout
    assert "25 agents, summarised by group" in result.stdout
    assert "busiest" in result.stdout
    assert widest(result.stdout) <= 80
    assert every.exit_code == 0, every.output
    assert "Agents (25)" in every.stdout


# -- load-balance --swarm-id ----------------------------------------------------------------


def test_load_balance_switches_the_live_swarm(served: Service) -> None:
    result = invoke(
        served, "load-balance", "--swarm-id", SWARM, "--strategy", "work-stealing", "--observe", "0"
    )
    try:
        assert result.exit_code == 0, result.output
        assert "least-loaded -> work-stealing" in result.stdout
        assert "Figures before" in result.stdout
        assert "records the figures after" in result.stdout
        assert widest(result.stdout) <= 80
        with SyncSwarmClient(SWARM, data_dir=served.data_dir) as client:
            assert client.strategy()["name"] == "work-stealing"
    finally:
        back = invoke(
            served,
            "load-balance",
            "--swarm-id",
            SWARM,
            "--strategy",
            "least-loaded",
            "--observe",
            "0",
        )
        assert back.exit_code == 0, back.output


def test_load_balance_waits_for_the_figures_after(served: Service) -> None:
    result = invoke(
        served,
        "load-balance",
        "--swarm-id",
        SWARM,
        "--strategy",
        "least-loaded",
        "--observe",
        "300ms",
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    data = last_json(result)
    assert data["strategy"] == "least-loaded"
    assert data["previous"] == "least-loaded"
    assert isinstance(data["decision_id"], int)
    assert isinstance(data["figures_before"], dict)
    assert isinstance(data["figures_after"], dict)
    assert data["observe_s"] == 0.3


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--strategy", "fastest"), "--strategy"),
        ((), "one strategy"),  # auto, the default, compares on a workload run
        (("--strategy", "cfs", "--seed", "3"), "--seed"),
        (("--strategy", "cfs", "--observe", "soon"), "--observe"),
    ],
)
def test_load_balance_live_mistakes_exit_2(
    served: Service, args: tuple[str, ...], words: str
) -> None:
    result = invoke(served, "load-balance", "--swarm-id", SWARM, *args)
    assert result.exit_code == 2, result.output
    assert words in result.stderr
    assert result.stderr.startswith("error:")


def test_observe_without_a_swarm_id_is_a_mistake(served: Service) -> None:
    result = invoke(served, "load-balance", "--observe", "5s")
    assert result.exit_code == 2
    assert "--swarm-id" in result.stderr


# -- swarm-scale ----------------------------------------------------------------------------


def test_scale_adds_then_removes_agents(served: Service) -> None:
    grown = invoke(
        served,
        "swarm-scale",
        "--swarm-id",
        SWARM,
        "--target-size",
        "3",
        "-o",
        "json",
        "--observe",
        "0",
    )
    assert grown.exit_code == 0, grown.output
    data = last_json(grown)
    assert data["before"] == 2
    assert data["after"] == 3
    assert isinstance(data["added"], list)
    assert len(data["added"]) == 1
    shrunk = invoke(
        served, "swarm-scale", "--swarm-id", SWARM, "--target-size", "2", "--observe", "200ms"
    )
    assert shrunk.exit_code == 0, shrunk.output
    assert "3 -> 2 agents" in shrunk.stdout
    assert f"removed {data['added'][0]}" in " ".join(shrunk.stdout.split())
    assert "after" in shrunk.stdout
    assert widest(shrunk.stdout) <= 80


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--target-size", "many"), "Give a number of agents, e.g. 12, or auto"),
        (("--target-size", "0"), "at least 1"),
        (("--target-size", "20000"), "at most 10,000"),
        (("--target-size", "auto", "--policy", "hpaa"), "Choose one of: hpa, keda, predictive"),
        (("--target-size", "auto", "--policy", "oracle"), "autoscale-eval"),
        (("--target-size", "3", "--policy", "hpa"), "goes with --target-size auto"),
    ],
)
def test_scale_needs_a_number_of_agents_or_auto(
    served: Service, args: tuple[str, ...], message: str
) -> None:
    result = invoke(served, "swarm-scale", "--swarm-id", SWARM, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())


def agent_count(served: Service) -> int:
    status = last_json(invoke(served, "swarm-status", "--swarm-id", SWARM, "-o", "json"))
    agents = status["agents"]
    assert isinstance(agents, list)
    return len(agents)


def test_dry_runs_say_what_would_be_done_and_change_nothing(served: Service) -> None:
    before = agent_count(served)
    plan = invoke(
        served, "swarm-scale", "--swarm-id", SWARM, "--target-size", "5", "--dry-run", "-o", "json"
    )
    assert plan.exit_code == 0, plan.output
    data = last_json(plan)
    assert (data["dry_run"], data["before"], data["after"], data["adds"]) == (True, 2, 5, 3)
    auto = invoke(
        served,
        "swarm-scale",
        "--swarm-id",
        SWARM,
        "--target-size",
        "auto",
        "--policy",
        "keda",
        "--dry-run",
    )
    assert auto.exit_code == 0, auto.output
    text = " ".join(auto.stdout.split())
    assert "dry run, nothing changed. keda would run" in text
    assert "queue" in text
    assert widest(auto.stdout) <= 80
    status = last_json(invoke(served, "swarm-status", "--swarm-id", SWARM, "-o", "json"))
    autoscale = status["autoscale"]
    assert isinstance(autoscale, dict)
    assert autoscale["on"] is False
    assert agent_count(served) == before


def test_auto_turns_the_autoscaler_on_and_a_size_turns_it_off(served: Service) -> None:
    on = invoke(
        served, "swarm-scale", "--swarm-id", SWARM, "--target-size", "auto", "--policy", "hpa"
    )
    assert on.exit_code == 0, on.output
    assert "autoscaling on with hpa" in " ".join(on.stdout.split())
    assert widest(on.stdout) <= 80
    shown = invoke(served, "swarm-status", "--swarm-id", SWARM)
    assert "Autoscaler: on, hpa (1 to 10 agents)" in shown.stdout
    status = last_json(invoke(served, "swarm-status", "--swarm-id", SWARM, "-o", "json"))
    autoscale = status["autoscale"]
    assert isinstance(autoscale, dict)
    assert (autoscale["on"], autoscale["policy"]) == (True, "hpa")
    off = invoke(served, "swarm-scale", "--swarm-id", SWARM, "--target-size", "2", "--observe", "0")
    assert off.exit_code == 0, off.output
    assert "Autoscaling is off now" in " ".join(off.stdout.split())
    status = last_json(invoke(served, "swarm-status", "--swarm-id", SWARM, "-o", "json"))
    autoscale = status["autoscale"]
    assert isinstance(autoscale, dict)
    assert autoscale["on"] is False


# -- swarm-monitor --------------------------------------------------------------------------


def test_monitor_attaches_to_the_running_swarm(served: Service) -> None:
    result = invoke(
        served,
        "swarm-monitor",
        "--swarm-id",
        SWARM,
        "--interval",
        "100ms",
        "--count",
        "2",
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(lines) == 2
    assert all(line["live"] for line in lines)
    assert lines[0]["run"]["strategy"] == "least-loaded"
    assert "not running" not in result.stderr
    table = invoke(served, "swarm-monitor", "--swarm-id", SWARM, "--count", "1")
    assert table.exit_code == 0, table.output
    assert "live swarm" in table.stdout
    assert "From the live service" in table.stdout


# -- ids that do not run --------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("swarm-status",),
        ("load-balance", "--strategy", "cfs"),
        ("swarm-scale", "--target-size", "3"),
        ("stop",),
        ("swarm-monitor", "--count", "1"),
    ],
)
def test_an_id_that_does_not_run_lists_those_that_do(
    served: Service, command: tuple[str, ...]
) -> None:
    result = invoke(served, *command, "--swarm-id", "not-served")
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert "'not-served'" in message
    assert f"Running in {served.data_dir}: {SWARM}." in message
    assert "swarmperf serve" in message


def test_not_running_in_json_is_a_json_error(served: Service) -> None:
    result = invoke(served, "swarm-status", "--swarm-id", "not-served", "-o", "json")
    assert result.exit_code == 2
    error = last_json(result)["error"]
    assert isinstance(error, dict)
    assert error["field"] == "--swarm-id"
    assert error["value"] == "not-served"
    assert SWARM in str(error["fix"])


def test_a_stale_entry_is_not_trusted(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # A pid that ran once and is gone: a child that has exited and been reaped.
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    registry.register(data_dir, "crashed", "http://127.0.0.1:9", dead, "t" * 32)
    result = runner.invoke(
        app, ["swarm-status", "--swarm-id", "crashed", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 2
    assert f"pid {dead}" in result.stderr
    assert "no longer running" in " ".join(result.stderr.split())


def test_a_service_that_cannot_be_reached_exits_1(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Registered by a live pid (this one) at an address where nothing listens.
    registry.register(data_dir, "unreachable", f"http://127.0.0.1:{port}", os.getpid(), "t" * 32)
    result = runner.invoke(
        app, ["swarm-status", "--swarm-id", "unreachable", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 1, result.output
    assert "cannot be reached" in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr
    assert "t" * 32 not in result.output
    assert "Traceback" not in result.output


# -- stop, and the store afterwards ---------------------------------------------------------


def test_stop_drains_and_waits_for_the_process_then_monitor_reads_the_store(
    tmp_path: Path,
) -> None:
    stopping = service(tmp_path, "stopping").start()
    try:
        with SyncSwarmClient("stopping", data_dir=stopping.data_dir) as client:
            receipts = client.submit_many([{"kind": "noop"} for _ in range(50)])
            for receipt in receipts:
                client.wait(receipt.id, timeout=30)
        result = runner.invoke(
            app,
            [
                "stop",
                "--swarm-id",
                "stopping",
                "--deadline",
                "5s",
                "--data-dir",
                str(stopping.data_dir),
            ],
        )
        assert result.exit_code == 0, result.output
        assert "Swarm 'stopping' stopped in" in result.stdout
        assert stopping.process is not None
        assert stopping.process.wait(timeout=30) == 0
        assert registry.entries(stopping.data_dir) == []

        after = runner.invoke(
            app,
            [
                "swarm-monitor",
                "--swarm-id",
                "stopping",
                "--count",
                "1",
                "--data-dir",
                str(stopping.data_dir),
            ],
        )
        assert after.exit_code == 0, after.output
        assert "swarm 'stopping' is not running; showing the store's latest data" in " ".join(
            after.stderr.split()
        )
        assert "run 1 of swarm 'stopping'" in after.stdout
    finally:
        stopping.close()

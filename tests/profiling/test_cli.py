"""`swarmperf profile-performance`: against a real served swarm, a real command, and bad input."""

from __future__ import annotations

import json
import os
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from swarmperf.cli.main import app
from swarmperf.client import SyncSwarmClient
from tests.serving import TWO_AGENTS, Service, service

runner = CliRunner(env={"COLUMNS": "120"})
HERE = Path(__file__).resolve().parent


def invoke(*args: str) -> Result:
    result = runner.invoke(app, ["profile-performance", *args])
    assert "Traceback" not in result.output
    return result


def last_json(result: Result) -> dict[str, object]:
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--swarm-id", "s", "--duration", "-1s"], "--duration"),
        (["--swarm-id", "s", "--duration", "2h"], "--duration"),
        (["--swarm-id", "s", "--rate", "0"], "--rate"),
        (["--swarm-id", "s", "--rate", "5000"], "--rate"),
        (["--swarm-id", "s", "--format", "pdf"], "--format"),
        (["--duration", "1s"], "--swarm-id"),
        (["--swarm-id", "s", "--", "python", "x.py"], "--swarm-id"),
        (["--memory", "--", sys.executable, "-c", "pass"], "--memory"),
        (["--components", "agents", "--", sys.executable, "-c", "pass"], "--components"),
        (["--", "no-such-program-here"], "COMMAND"),
    ],
)
def test_bad_input_exits_2_naming_the_field(args: list[str], field: str) -> None:
    result = invoke("-o", "json", *args)
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error["field"] == field
    assert error["fix"]


def test_no_such_swarm_exits_2(tmp_path: Path) -> None:
    result = invoke("--swarm-id", "ghost", "--duration", "1s", "--data-dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "ghost" in result.output


def test_a_command_is_profiled_with_py_spy(tmp_path: Path) -> None:
    script = tmp_path / "busy.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(HERE.parent.parent)!r})\n"
        "from tests.profiling.hot_handlers import planted_hot_spin_loop\n"
        "planted_hot_spin_loop(4.0)\n"
    )
    out = tmp_path / "cmd.folded"
    result = invoke(
        "--duration", "1500ms", "--format", "collapsed", "--out", str(out), "-o", "json",
        "--", sys.executable, str(script),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = last_json(result)
    top = data["top_self"]
    assert isinstance(top, list)
    assert top[0]["function"] == "planted_hot_spin_loop"
    assert "planted_hot_spin_loop" in out.read_text()


# -- a served swarm ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    paths = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    running = service(
        tmp_path_factory.mktemp("profiled"),
        "profiled",
        "--handlers",
        "hot_handlers:HANDLERS",
        spec=TWO_AGENTS,
        env={"PYTHONPATH": paths},
    ).start()
    try:
        yield running
    finally:
        running.close()


@pytest.mark.slow
def test_a_served_swarm_profile_finds_the_hot_handler(served: Service, tmp_path: Path) -> None:
    stop = threading.Event()

    def load() -> None:
        with SyncSwarmClient(served.swarm_id, data_dir=served.data_dir) as client:
            while not stop.is_set():
                client.submit_many([{"kind": "hot", "payload": 0.003}] * 40 + [{"kind": "cool"}])
                stop.wait(0.05)

    feeder = threading.Thread(target=load, daemon=True)
    feeder.start()
    try:
        result = invoke(
            "--swarm-id", served.swarm_id, "--duration", "3s", "--memory",
            "--format", "svg", "--format", "speedscope", "--out", str(tmp_path / "p.svg"),
            "-o", "json", "--data-dir", str(served.data_dir),
        )  # fmt: skip
    finally:
        stop.set()
        feeder.join(timeout=60)
    assert result.exit_code == 0, result.output
    data = last_json(result)
    top = data["top_self"]
    assert isinstance(top, list)
    assert top[0]["function"] == "planted_hot_spin_loop", top[:3]
    handlers = data["handlers"]
    assert isinstance(handlers, list)
    # Time in no handler (dispatch, the journal, HTTP) is a row of its own, whose size
    # depends on the machine; among the handlers, the hot one leads.
    named = [row for row in handlers if row["handler"] is not None]
    assert named[0]["handler"] == "hot", handlers[:4]
    agents = {row["agent"] for row in data["agents"]}  # type: ignore[attr-defined]
    assert agents & {"a1", "a2"}
    memory = data["memory"]
    assert isinstance(memory, dict)
    assert {"top_growth", "top_sites", "growth_bytes"} <= set(memory)
    ET.parse(tmp_path / "p.svg")
    assert json.loads((tmp_path / "p.speedscope.json").read_text())["profiles"]


@pytest.mark.slow
def test_an_unknown_agent_of_a_served_swarm_exits_2(served: Service) -> None:
    result = invoke(
        "--swarm-id", served.swarm_id, "--components", "ghost", "--duration", "1s",
        "--data-dir", str(served.data_dir),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--components" in result.output
    assert "a1" in result.output


PROCESS_AGENTS = """\
swarm_id: {swarm_id}
backend: process
strategy: least-loaded
agents: [{{id: p1, concurrency: 1}}, {{id: p2, concurrency: 1}}]
timeouts: {{drain: 10s}}
"""


@pytest.mark.slow
def test_process_backend_workers_are_sampled_by_agent(tmp_path: Path) -> None:
    paths = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    running = service(
        tmp_path / "svc",
        "workers",
        "--handlers",
        "hot_handlers:HANDLERS",
        spec=PROCESS_AGENTS,
        env={"PYTHONPATH": paths},
    ).start()
    stop = threading.Event()

    def load() -> None:
        with SyncSwarmClient(running.swarm_id, data_dir=running.data_dir) as client:
            while not stop.is_set():
                client.submit_many([{"kind": "hot", "payload": 0.005}] * 40)
                stop.wait(0.1)

    feeder = threading.Thread(target=load, daemon=True)
    try:
        feeder.start()
        result = invoke(
            "--swarm-id", running.swarm_id, "--duration", "2s", "--components", "agents",
            "--format", "collapsed", "--out", str(tmp_path / "w.folded"), "-o", "json",
            "--data-dir", str(running.data_dir),
        )  # fmt: skip
    finally:
        stop.set()
        feeder.join(timeout=60)
        running.close()
    assert result.exit_code == 0, result.output
    data = last_json(result)
    assert data["notes"] == [], data["notes"]
    assert any("py-spy" in source for source in data["sources"])  # type: ignore[attr-defined]
    agents = {row["agent"]: row["samples"] for row in data["agents"]}  # type: ignore[attr-defined]
    assert set(agents) <= {"p1", "p2"}
    assert sum(agents.values()) > 0
    handlers = data["handlers"]
    assert isinstance(handlers, list)
    # Time in no handler (dispatch, the journal, HTTP) is a row of its own, whose size
    # depends on the machine; among the handlers, the hot one leads.
    named = [row for row in handlers if row["handler"] is not None]
    assert named[0]["handler"] == "hot", handlers[:4]
    assert "planted_hot_spin_loop" in (tmp_path / "w.folded").read_text()

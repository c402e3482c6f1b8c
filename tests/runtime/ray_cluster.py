"""A real two-node Ray cluster on this machine, started as docs/ray.md has a user start one.

Two `ray start ... --block` processes on loopback: the head, then a second node joining it.
Each keeps its node's processes as children and takes them down when it ends, so the
cluster stops with the processes this module started and nothing else (never `ray stop`,
which would stop every Ray on the machine). Own ports, own temp dir, own token.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
# Ray notices a lost node when its health checks fail this often in a row, this far apart:
# about 1.5 s here, rather than Ray's default of some 15 s, so the runs stay short.
HEALTH_CHECK = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_failure_threshold": "3",
    "RAY_health_check_timeout_ms": "500",
}
DETECTION_S = 0.5 * 3 + 0.5  # the above: period x threshold, plus one timeout


# Each node's `ray start` stays in the foreground (`--block`) and takes its processes down
# when it ends: the cluster is the processes started here, and nothing else.
_COMMON = ("--block", f"--node-ip-address={HOST}", "--disable-usage-stats")


def _ray() -> str:
    """The `ray` command of this Python's environment."""
    return shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class TwoNodeCluster:
    """The head (`head_cpus` CPUs) and a second node (`second_cpus`), token authentication
    on (`RAY_AUTH_MODE=token`, the token in `env`)."""

    head_cpus: int = 2
    second_cpus: int = 2
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    client_port: int = 0
    head_id: str = ""
    second_id: str = ""
    _head: subprocess.Popen[bytes] | None = None
    _second: subprocess.Popen[bytes] | None = None
    _temp: Path | None = None
    # Every process of the cluster seen so far: a killed raylet's children outlive it,
    # no longer anyone's children, and `stop` ends them too (and only them).
    _seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """The head's GCS address, as `ray start --address` and `ray.init` take it."""
        return f"{HOST}:{self.port}"

    @property
    def client_address(self) -> str:
        return f"ray://{HOST}:{self.client_port}"

    def start(self, timeout: float = 90.0) -> TwoNodeCluster:
        """Start both nodes; on any failure, stop what started and raise."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> TwoNodeCluster:
        ray = _ray()
        # Short: Ray's socket paths must fit in 107 bytes.
        self._temp = Path(tempfile.mkdtemp(prefix="spray-", dir="/tmp"))
        self.port, self.client_port = free_port(), free_port()
        self.env = {
            **os.environ,
            **HEALTH_CHECK,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
            # Handlers are pickled by reference: their modules must import on every node.
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
            ),
        }
        self._head = self._spawn(
            [
                ray,
                "start",
                "--head",
                f"--port={self.port}",
                f"--ray-client-server-port={self.client_port}",
                f"--num-cpus={self.head_cpus}",
                '--resources={"head": 100}',
                "--include-dashboard=False",
                f"--temp-dir={self._temp}",
                *_COMMON,
            ],
            "head",
        )
        self.head_id = self._wait_for_nodes(1, timeout)[0]
        self._second = self._spawn(self._second_command(), "second")
        ids = self._wait_for_nodes(2, timeout)
        self.second_id = next(i for i in ids if i != self.head_id)
        self._remember()
        return self

    def _second_command(self) -> list[str]:
        return [
            _ray(),
            "start",
            f"--address={self.address}",
            f"--num-cpus={self.second_cpus}",
            '--resources={"second": 100}',
            *_COMMON,
        ]

    def _spawn(self, command: list[str], name: str) -> subprocess.Popen[bytes]:
        assert self._temp is not None
        # Appended to, so a second node started after a loss keeps the first one's log.
        with open(self._temp / f"{name}.log", "ab") as log:  # the child keeps its own copy
            return subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def nodes(self) -> list[dict[str, Any]]:
        """`swarmperf ray-nodes -o json` against this cluster: the nodes as a user sees them."""
        swarmperf = str(Path(sys.executable).parent / "swarmperf")
        done = subprocess.run(
            [swarmperf, "ray-nodes", "--address", self.address, "-o", "json"],
            env=self.env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ray-nodes failed: {done.stdout!r} {done.stderr[-2000:]!r}")
        nodes: list[dict[str, Any]] = json.loads(done.stdout)["nodes"]
        return nodes

    def _wait_for_nodes(self, n: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            for proc, name in ((self._head, "head"), (self._second, "second")):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"`ray start` ({name}) exited:\n{self.log(name)}")
            try:
                alive = [node for node in self.nodes() if node["alive"]]
            except (RuntimeError, ValueError, subprocess.TimeoutExpired):
                alive = []
            self._remember()
            if len(alive) >= n:
                return [node["node_id"] for node in alive]
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} Ray nodes did not come up:\n{self.log('head')}")
            time.sleep(0.5)

    def log(self, name: str) -> str:
        assert self._temp is not None
        path = self._temp / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def _remember(self) -> None:
        for proc in (self._head, self._second):
            if proc is not None:
                self._seen.update((p.pid, p) for p in _family(proc.pid))

    def raylet_of_second(self) -> int:
        """The process id of the second node's raylet (to `kill -9` it: the node is lost,
        as when its machine dies)."""
        assert self._second is not None
        self._remember()
        for child in psutil.Process(self._second.pid).children(recursive=True):
            if child.name() == "raylet":
                pid: int = child.pid
                return pid
        raise RuntimeError("the second node has no raylet")

    def forget_second(self) -> None:
        """The second node was killed: end what is left of it, so that `add_second` can
        start a new one."""
        second, self._second = self._second, None
        if second is not None and second.poll() is None:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(timeout=30)
            except subprocess.TimeoutExpired:
                second.kill()

    def add_second(self, timeout: float = 90.0) -> str:
        """Start a new second node (after a loss); returns its node id."""
        self._second = self._spawn(self._second_command(), "second")
        known = {self.head_id, self.second_id}
        alive = self._wait_for_nodes(2, timeout)
        self.second_id = next(i for i in alive if i not in known)
        self._remember()
        return self.second_id

    def stop(self) -> None:
        self._remember()
        for proc in (self._second, self._head):
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        _gone, alive = psutil.wait_procs(list(self._seen.values()), timeout=10)
        for leftover in alive:  # ours alone: processes of the nodes this cluster started
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)

    def environment(self) -> Mapping[str, str]:
        """What a process needs to join this cluster as a driver: the token settings."""
        return {name: self.env[name] for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}


def _family(pid: int) -> list[psutil.Process]:
    try:
        family: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
        return family
    except psutil.NoSuchProcess:
        return []


# -- the node-loss scenario ----------------------------------------------------------------
# Run in a process of its own (`python -m tests.runtime.ray_cluster`), as a user's driver
# would be: its Ray connection and token settings are the cluster's, not the caller's.

GROUPS = ("head", "far", "soft")  # pinned to the head; pinned to the second node; soft pin
PER_GROUP = 2


def whereami(payload: Any, agent: Any) -> str:
    """Sleep `payload` seconds on the actor, and say which node ran it (Ray's own word)."""
    import ray

    time.sleep(float(payload or 0.0))
    return str(ray.get_runtime_context().get_node_id())


def scenario_spec(
    address: str, head_id: str, second_id: str, tasks: int, task_s: float, restarts: int
) -> dict[str, Any]:
    """The spec a user writes for the walkthrough: a group per node and a soft-pinned one."""
    agents = [
        {"id": group, "count": PER_GROUP, "concurrency": 2, "prefetch": 4} for group in GROUPS
    ]
    return {
        "swarm_id": "node-loss",
        "backend": "ray",
        "strategy": "least-loaded",
        "agents": agents,
        "ray": {
            "address": address,
            "start_timeout": "10s",
            "groups": {
                "head": {"node": head_id},
                "far": {"node": second_id},
                "soft": {"node": second_id, "node_soft": True},
            },
        },
        "resilience": {
            "restart": {"max_restarts": restarts, "base_delay": "100ms", "max_delay": "1s"}
        },
        "workload": {"tasks": tasks, "kind": "whereami", "size": task_s},
        "monitor": {"interval": "500ms", "anomalies": False},
    }


def run_scenario(
    spec_data: dict[str, Any], data_dir: Path, kill_pid: int | None, kill_at: float
) -> dict[str, Any]:
    """Run the spec through `swarmperf.app.run.run_spec` with a store; `kill -9` `kill_pid`
    (the second node's raylet) once `kill_at` of the tasks have results. Measures what the
    caller checks: results per task, dispatches to agents that were never placed and how
    long their tasks waited there, restart events per agent, where agents ran."""
    import asyncio

    from swarmperf.app.run import run_spec
    from swarmperf.core.handlers import HandlerRegistry
    from swarmperf.monitor.exposition import SwarmCollector
    from swarmperf.spec import parse_spec
    from swarmperf.store import Store

    spec = parse_spec(spec_data)
    total = spec.workload.tasks
    results: dict[str, int] = {}
    dispatches: list[tuple[str, str, Any, float]] = []  # task, agent, its actor record, when
    killed_at: list[float] = []
    labels: list[dict[str, str]] = []
    clock = time.perf_counter

    def on_monitor(monitor: Any, server: Any) -> None:
        swarm = monitor.metrics.swarm
        backend = swarm.backend
        original = backend.run

        def run(starts: Any) -> None:
            now = clock()
            for agent_id, task in starts:
                dispatches.append((task.id, agent_id, backend._agents.get(agent_id), now))
            original(starts)

        backend.run = run

        def on_result(result: Any) -> None:
            results[result.task_id] = results.get(result.task_id, 0) + 1
            dispatches.append((result.task_id, "", None, clock()))
            if kill_pid is not None and not killed_at and len(results) >= kill_at * total:
                # What /metrics shows just before the loss: per-agent series and their labels.
                for family in SwarmCollector(monitor.metrics).collect():
                    for sample in family.samples:
                        if "agent" in sample.labels:
                            labels.append(dict(sample.labels))
                os.kill(kill_pid, signal.SIGKILL)
                killed_at.append(clock())

        swarm.on_result(on_result)

    handlers = HandlerRegistry({"whereami": whereami})
    with Store.open(data_dir / "swarmperf.db") as store:
        began = clock()
        outcome = asyncio.run(
            run_spec(
                spec, store=store, handlers=handlers, on_monitor=on_monitor, handle_signals=False
            )
        )
        ended = clock()
        assert outcome.run_id is not None
        events = [
            {"ts": e.ts, "kind": e.kind, "subject": e.subject, "detail": e.detail}
            for e in store.events(spec.swarm_id)
            if e.run_id == outcome.run_id
        ]
        placed = [
            {"agent": r.agent, "node": r.node_id, "at": r.placed_at}
            for r in store.agent_nodes(outcome.run_id)
        ]
        run = store.get_run(outcome.run_id)
    # A dispatch to an agent whose actor never came up: how long until its task moved on
    # (sent again, or a result). Never placed: no placement when the run ended.
    stall = 0.0
    unplaced = 0
    pending: dict[str, tuple[Any, float]] = {}
    for task_id, agent_id, record, at in dispatches:
        previous = pending.pop(task_id, None)
        if previous is not None and previous[0] is not None and previous[0].placement is None:
            unplaced += 1
            stall = max(stall, at - previous[1])
        if agent_id:
            pending[task_id] = (record, at)
    for record, _at in pending.values():
        if record is not None and record.placement is None:
            unplaced += 1
            stall = max(stall, ended - _at)
    ran_on: dict[str, list[str]] = {}
    for result in outcome.results:
        if result.agent is not None and isinstance(result.value, str):
            nodes = ran_on.setdefault(result.agent, [])
            if result.value not in nodes:
                nodes.append(result.value)
    return {
        "tasks": total,
        "results": len(outcome.results),
        "lost": total - len(results),
        "duplicated_results": sum(n - 1 for n in results.values()),
        "failed": sum(1 for r in outcome.results if not r.ok),
        "stall_s": stall,
        "unplaced_dispatches": unplaced,
        "makespan_s": outcome.report.makespan,
        "wall_s": ended - began,
        "killed": bool(killed_at),
        "events": events,
        "agent_nodes": placed,
        "report_agents": outcome.report.to_dict()["agents"],
        "ran_on": ran_on,
        "labels": labels,
        "run_started_at": None if run is None else run.started_at,
    }


def main(argv: list[str]) -> None:
    """`python -m tests.runtime.ray_cluster SPEC_JSON DATA_DIR KILL_PID KILL_AT`: the
    scenario's figures as JSON in DATA_DIR/figures.json (stdout carries Ray's logs)."""
    spec_data = json.loads(argv[0])
    kill_pid = int(argv[2]) or None
    data_dir = Path(argv[1])
    figures = run_scenario(spec_data, data_dir, kill_pid, float(argv[3]))
    (data_dir / "figures.json").write_text(json.dumps(figures))


def scenario(
    cluster: TwoNodeCluster,
    data_dir: Path,
    *,
    tasks: int,
    task_s: float,
    kill_at: float | None,
    restarts: int = 2,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Run the node-loss scenario against `cluster` in a driver process of its own; with
    `kill_at`, the second node's raylet is killed once that share of tasks has results."""
    spec = scenario_spec(
        cluster.address, cluster.head_id, cluster.second_id, tasks, task_s, restarts
    )
    pid = 0
    if kill_at is not None:
        pid = cluster.raylet_of_second()
    data_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.runtime.ray_cluster",
            json.dumps(spec),
            str(data_dir),
            str(pid),
            str(kill_at or 0.0),
        ],
        env=cluster.env,
        cwd=REPO,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the scenario failed:\n{done.stderr.decode(errors='replace')[-6000:]}")
    if kill_at is not None:
        cluster.forget_second()
    figures: dict[str, Any] = json.loads((data_dir / "figures.json").read_text())
    figures["second_id"] = spec["ray"]["groups"]["far"]["node"]
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])

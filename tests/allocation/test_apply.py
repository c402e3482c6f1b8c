"""`resource-alloc --apply` against a real `swarmperf serve` under load: the recommendation is
applied on trial, kept when the p99 measured after it bears the prediction out, and rolled
back (the pools as they were) when it does not; both verdicts are in the store's decisions."""

from __future__ import annotations

import contextlib
import json
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
SWARM = "alloc-live"
# Pool a: three agents of two slots; a `sleep` task of 50 ms, so one agent does 40 tasks/s.
SPEC = """\
swarm_id: {swarm_id}
backend: local
strategy: least-loaded
seed: 5
agents: [{{id: a, count: 3, concurrency: 2}}]
timeouts: {{drain: 5s}}
"""
# The declared rate is what the plan sizes for; the test's load is what really arrives.
RESOURCES = """\
pools:
  - {{id: a, cost_per_hour: 1, concurrency: 2, max: 6, service_time: {{sleep: 50ms}}, cv: 0.2}}
workload: {{rate: {rate}/s, mix: {{sleep: 1}}}}
constraints: {{slo: {{sleep: {{p99: 1s}}}}}}
"""
TASK_S = 0.05
WINDOW = "4s"


class Load:
    """Tasks of `TASK_S` seconds submitted at `rate` per second from a thread, in batches."""

    def __init__(self, served: Service, rate: float) -> None:
        self.served = served
        self.rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        batch = max(1, round(self.rate / 10))
        with SyncSwarmClient(SWARM, data_dir=self.served.data_dir, retries=0) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                # A full queue refuses a batch: the load goes on.
                with contextlib.suppress(SwarmError):
                    client.submit_many([{"kind": "sleep", "payload": TASK_S}] * batch)
                next_at += batch / self.rate
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Service]:
    running = service(tmp_path / "served", SWARM, spec=SPEC).start()
    try:
        yield running
    finally:
        running.close()


def apply(served: Service, tmp_path: Path, declared_rate: int, rate: float) -> dict[str, Any]:
    path = tmp_path / "resources.yaml"
    path.write_text(RESOURCES.format(rate=declared_rate))
    args = ["resource-alloc", "--resources", str(path), "--data-dir", str(served.data_dir)]
    with Load(served, rate):
        time.sleep(3.0)  # results enough to measure the pool's speed, and a window before
        result = runner.invoke(
            app,
            [*args, "--swarm-id", SWARM, "--apply", "--observe", WINDOW, "-o", "json"],
        )
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def agents(served: Service) -> set[str]:
    with served.client() as client:
        return {row["id"] for row in client.get("/v1/agents").json()["agents"]}


def stored_trial(served: Service, decision_id: int) -> dict[str, Any]:
    with Store.open(database_path(served.data_dir), read_only=True) as store:
        decisions = store.decisions(SWARM, "pools")
    (record,) = [d for d in decisions if d.id == decision_id]
    trial: dict[str, Any] = record.decision["trial"]
    return trial


def test_an_allocation_the_figures_bear_out_is_kept(served: Service, tmp_path: Path) -> None:
    # 20 tasks/s declared and sent: one agent (40 tasks/s) is the cheapest that meets the SLO.
    data = apply(served, tmp_path, declared_rate=20, rate=20)
    assert data["pools"][0]["speed_source"] == {"sleep": "measured"}
    assert data["recommended"]["counts"] == {"a": 1}
    applied = data["applied"]
    assert applied["pools_before"] == {"a": 3}
    assert applied["pools_after"] == {"a": 1}
    assert applied["removed"] == ["a-2", "a-1"]
    assert applied["verdict"] == "kept", applied
    assert applied["reverted"] is None
    assert agents(served) == {"a-0"}
    trial = stored_trial(served, applied["decision_id"])
    assert trial["verdict"] == "kept"
    assert trial["rule"]["predicted"] == data["recommended"]["predicted"]["p99_s"]


def test_an_allocation_the_figures_belie_is_rolled_back(served: Service, tmp_path: Path) -> None:
    # 20 tasks/s declared, 60 sent: the one agent planned for falls behind at once.
    data = apply(served, tmp_path, declared_rate=20, rate=60)
    applied = data["applied"]
    assert applied["pools_after"] == {"a": 1}
    assert applied["verdict"] == "rolled-back", applied
    assert applied["figures_after"]["latency_p99_s"] > applied["rule"]["predicted"]
    assert applied["reverted"] == {"added": ["a-2", "a-1"], "removed": [], "pools": {"a": 3}}
    assert agents(served) == {"a-0", "a-1", "a-2"}
    trial = stored_trial(served, applied["decision_id"])
    assert trial["verdict"] == "rolled-back"
    assert "latency_p99_s measured" in trial["why"]

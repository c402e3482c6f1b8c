"""`resource-alloc --apply` against a real `swarmperf serve`: the live swarm's pools end up
at the recommended sizes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmperf.cli.main import app
from tests.serving import Service, service

runner = CliRunner(env={"COLUMNS": "120"})
SWARM = "alloc-live"

# Pool a: one agent does 40 tasks/s (4 slots of 100 ms). At 100 tasks/s the cheapest
# allocation under 95% utilisation is 3 agents of a; pool b is dearer for the same speed.
RESOURCES = """\
pools:
  - {id: a, cost_per_hour: 1, concurrency: 4, max: 6, service_time: {work: 100ms}, cv: 0.5}
  - {id: b, cost_per_hour: 10, concurrency: 4, max: 2, service_time: {work: 100ms}, cv: 0.5}
workload: {rate: 100/s, mix: {work: 1}}
constraints: {slo: {work: {p99: 2s}}}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = service(tmp_path_factory.mktemp("alloc-served"), SWARM).start()
    try:
        yield running
    finally:
        running.close()


@pytest.mark.slow
def test_apply_resizes_the_live_swarms_pools(served: Service, tmp_path: Path) -> None:
    path = tmp_path / "resources.yaml"
    path.write_text(RESOURCES)
    args = ["resource-alloc", "--resources", str(path), "--data-dir", str(served.data_dir)]
    result = runner.invoke(app, [*args, "--swarm-id", SWARM, "--apply", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["recommended"]["counts"] == {"a": 3, "b": 0}
    # The served swarm had a-0 and a-1 (the test service's spec): one more of pool a.
    assert data["applied"] == {"before": 2, "after": 3, "added": ["a-2"], "removed": []}
    with served.client() as client:
        agents = {row["id"] for row in client.get("/v1/agents").json()["agents"]}
    assert agents == {"a-0", "a-1", "a-2"}

"""A real Prometheus scrapes a working swarm's /metrics and reports what the swarm did."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from swarmperf.core.model import AgentSpec, Task
from swarmperf.monitor.exposition import MetricsServer, SwarmCollector, make_registry, serve
from swarmperf.monitor.swarm_metrics import SwarmMetrics
from swarmperf.runtime.swarm import Swarm
from tests.support import unavailable

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SWARM_ID = "scraped"


def _require_prometheus() -> None:
    if not Path(PROMETHEUS).exists():
        unavailable("the prometheus binary is not installed (Debian package 'prometheus')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def exporter() -> Iterator[tuple[SwarmMetrics, MetricsServer]]:
    metrics = SwarmMetrics(SWARM_ID, window=60.0)
    server = serve(0, registry=make_registry(SwarmCollector(metrics, net=None)))
    try:
        yield metrics, server
    finally:
        server.close()


@pytest.fixture
def prometheus(tmp_path: Path, exporter: tuple[SwarmMetrics, MetricsServer]) -> Iterator[str]:
    _require_prometheus()
    _, server = exporter
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: swarmperf\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{server.port}']\n",
        encoding="utf-8",
    )
    port = _free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                text = (tmp_path / "prometheus.log").read_text(errors="replace")
                pytest.fail(f"prometheus did not start:\n{text[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert reply["status"] == "success", reply
    result: list[dict[str, Any]] = reply["data"]["result"]
    return result


@pytest.mark.slow
def test_prometheus_sees_what_the_swarm_did(
    exporter: tuple[SwarmMetrics, MetricsServer], prometheus: str
) -> None:
    metrics, _ = exporter

    async def scraped(client: httpx.AsyncClient) -> bool:
        query = f'count(swarmperf_tasks_total{{swarm="{SWARM_ID}"}})'
        reply = await client.get(f"{prometheus}/api/v1/query", params={"query": query})
        return bool(reply.json()["data"]["result"])

    async def work() -> float:
        swarm = Swarm([AgentSpec("a", concurrency=2), AgentSpec("b")], clock=metrics.clock)
        metrics.attach(swarm)
        async with swarm, httpx.AsyncClient(timeout=5) as client:
            loop = asyncio.get_running_loop()
            give_up = loop.time() + 10.0
            end = None
            # Work until Prometheus has scraped us, then through a few more scrapes.
            while end is None or loop.time() < end:
                await swarm.run([Task("sleep", 0.003) for _ in range(6)] + [Task("fail")])
                if end is None and (await scraped(client) or loop.time() > give_up):
                    end = loop.time() + 2.5
        return metrics.clock()

    finished = asyncio.run(work())
    metrics.clock = lambda: finished  # the window stays put while Prometheus catches up
    expected = {
        (agent, status): value for (agent, status), s in metrics.tasks.series()
        for value in (s.value,)
    }  # fmt: skip
    p99 = metrics.figures().latency.p99
    assert expected
    assert p99 is not None

    deadline = time.monotonic() + 10
    while True:
        rows = _query(prometheus, f'swarmperf_tasks_total{{swarm="{SWARM_ID}"}}')
        seen = {(r["metric"]["agent"], r["metric"]["status"]): float(r["value"][1]) for r in rows}
        if seen == expected or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert seen == expected
    quantile = _query(
        prometheus, f'swarmperf_task_latency_seconds{{swarm="{SWARM_ID}",quantile="0.99"}}'
    )
    assert len(quantile) == 1
    assert float(quantile[0]["value"][1]) == pytest.approx(p99, rel=1e-9)
    # The counter grew between scrapes while the swarm worked: Prometheus saw a rate.
    rate = _query(prometheus, f'sum(increase(swarmperf_tasks_total{{swarm="{SWARM_ID}"}}[1m]))')
    assert rate
    assert float(rate[0]["value"][1]) > 0
    # The exported SLA expressions evaluate in Prometheus, with the snapshot's definitions:
    # every failure here reached an agent, so availability is 1; one task in seven failed.
    from swarmperf.alerting.exports import _rate_expr

    availability = _query(prometheus, _rate_expr("swarm.availability", "1m") or "")
    assert len(availability) == 1
    assert float(availability[0]["value"][1]) == pytest.approx(1.0)
    errors = _query(prometheus, _rate_expr("swarm.error_rate", "1m") or "")
    assert len(errors) == 1
    assert 0.05 < float(errors[0]["value"][1]) < 0.3

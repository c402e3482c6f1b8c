"""`/v1/live` on a served swarm, and a stopped swarm's replay, over real WebSockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.serving import TWO_AGENTS, Service, service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = service(tmp_path_factory.mktemp("feed"), "feed", spec=TWO_AGENTS).start()
    try:
        yield running
    finally:
        running.close()


async def read(url: str, first: dict[str, Any], until: float) -> list[dict[str, Any]]:
    """Messages from `/v1/live` for `until` seconds (or until it closes)."""
    got: list[dict[str, Any]] = []
    async with websockets.connect(url.replace("http", "ws", 1) + "/v1/live") as socket:
        await socket.send(json.dumps(first))
        deadline = time.monotonic() + until
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(json.loads(await asyncio.wait_for(socket.recv(), left)))
            except (TimeoutError, websockets.ConnectionClosed):
                break
    return got


def close_code(url: str, first: str) -> int | None:
    async def attempt() -> int | None:
        async with websockets.connect(url.replace("http", "ws", 1) + "/v1/live") as socket:
            await socket.send(first)
            try:
                await asyncio.wait_for(socket.recv(), 10)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else None
        return None

    return asyncio.run(attempt())


def test_a_page_gets_figures_events_and_decisions_as_they_happen(served: Service) -> None:
    with served.client() as client:
        client.post("/v1/tasks/batch", json={"tasks": [{"kind": "sleep", "payload": 0.001}] * 50})
        reading = asyncio.run(asyncio.wait_for(_read_while(served, client), timeout=30))
    kinds = [m["type"] for m in reading]
    assert kinds[0] == "hello"
    assert reading[0]["swarm_id"] == "feed"
    assert reading[0]["live"] is True
    seqs = [m["seq"] for m in reading[1:]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gaps, no repeats
    metrics = [m for m in reading if m["type"] == "metrics"]
    assert len(metrics) >= 2
    latest = metrics[-1]
    assert {"swarm.throughput_per_s", "swarm.latency.p99"} <= set(latest["metrics"])
    assert {a["id"] for a in latest["agents"]} >= {"a1", "a2"}
    assert set(latest["queue"]["by_priority"]) == {"critical", "high", "normal", "low"}
    assert latest["totals"]["completed"] >= 50
    # The same series as /metrics, by their Prometheus names.
    exposed = latest["prometheus"]
    done = sum(v for k, v in exposed.items() if k.startswith("swarmperf_tasks_total{"))
    assert done >= 50
    assert 'swarmperf_queue_depth{priority="normal"}' in exposed
    decisions = [m for m in reading if m["type"] == "decision"]
    assert decisions
    assert decisions[0]["kind"] == "strategy"
    assert any(m["kind"] == "strategy-changed" for m in reading if m["type"] == "event")


async def _read_while(served: Service, client: httpx.Client) -> list[dict[str, Any]]:
    reader = asyncio.create_task(read(served.url, {"token": served.token(), "after": None}, 3.5))
    await asyncio.sleep(0.5)
    await asyncio.to_thread(
        client.put, "/v1/strategy", json={"name": "work-stealing", "observe_s": 0.5}
    )
    got = await reader
    await asyncio.to_thread(
        client.put, "/v1/strategy", json={"name": "least-loaded", "observe_s": 0}
    )
    return got


def test_a_page_that_reconnects_after_a_seq_misses_nothing(served: Service) -> None:
    first = asyncio.run(read(served.url, {"token": served.token(), "after": None}, 1.5))
    last = first[-1]["seq"]
    again = asyncio.run(read(served.url, {"token": served.token(), "after": last - 2}, 0.5))
    assert again[0]["type"] == "hello"
    assert [m["seq"] for m in again[1:3]] == [last - 1, last]


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ('{"token": "wrong", "after": null}', 4401),
        ('{"after": null}', 4401),
        ("not json", 4400),
        ('{"token": "x", "after": -3}', 4400),
    ],
)
def test_a_page_without_the_token_gets_nothing(served: Service, first: str, code: int) -> None:
    assert close_code(served.url, first) == code


def test_the_page_itself_needs_no_token_and_holds_no_data(served: Service) -> None:
    page = httpx.get(f"{served.url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert served.token() not in page.text


def test_a_stopped_swarm_is_replayed_from_the_store(tmp_path: Path) -> None:
    svc = service(tmp_path, "gone", spec=TWO_AGENTS).start()
    with svc.client() as client:
        client.post("/v1/tasks/batch", json={"tasks": [{"kind": "noop"}] * 20})
        time.sleep(2.5)  # a few snapshots
    svc.close()
    replay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "swarmperf",
            "dashboard",
            "--swarm-id",
            "gone",
            "--data-dir",
            str(svc.data_dir),
            "--no-browser",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert replay.stdout is not None
        address = json.loads(replay.stdout.readline())["address"]
        url, token = address.split("/#token=")
        messages = asyncio.run(read(url, {"token": token, "after": None}, 10))
    finally:
        replay.terminate()
        replay.wait(10)
        if replay.stdout is not None:
            replay.stdout.close()
    assert messages[0]["type"] == "hello"
    assert messages[0]["live"] is False
    assert messages[-1]["type"] == "end"
    metrics = [m for m in messages if m["type"] == "metrics"]
    assert len(metrics) >= 2
    assert max(m["metrics"]["swarm.completed"] or 0 for m in metrics) >= 20

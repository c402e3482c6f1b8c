"""`swarmperf mcp --transport http`: a real uvicorn on loopback, behind the bearer token,
answered through the SDK's own streamable HTTP client."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.mcp_server.data import BAD_CALLS, RUN_SPEC, RUN_SWARM, cli_json

pytestmark = pytest.mark.slow
READY_WITHIN_S = 60.0
READY = re.compile(r"Serving MCP at (?P<url>\S+) \((?P<how>.*)\)\.")


class HttpServer:
    def __init__(self, data_dir: Path, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMPERF_")}
        command = [sys.executable, "-m", "swarmperf", "mcp", "--transport", "http"]
        self.log = data_dir.parent / f"mcp-http-{len(list(data_dir.parent.glob('*.log')))}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*command, "--port", "0", "--data-dir", str(data_dir), *extra],
                stderr=log,
                stdout=subprocess.DEVNULL,
                env=env,
            )
        give_up = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < give_up and self.process.poll() is None:
            found = READY.search(self.log.read_text())
            if found:
                self.url = found["url"]
                return
            time.sleep(0.05)
        self.close()
        raise AssertionError(f"no address in {self.log.read_text()!r}")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mcp-http")
    spec = folder / "run.yaml"
    spec.write_text(RUN_SPEC)
    cli_json("run", str(spec), "--data-dir", str(folder / "data"))
    return folder / "data"


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[HttpServer]:
    served = HttpServer(data_dir)
    try:
        yield served
    finally:
        served.close()


def _ask(url: str, token: str) -> dict[str, Any]:
    async def ask() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            tools = (await client.list_tools()).tools
            report = await client.call_tool("performance_report", {"swarm_id": RUN_SWARM})
            bad = await client.call_tool("performance_report", {"timeframe": "soon"})
            return {"tools": tools, "report": report, "bad": bad}

    return asyncio.run(ask())


def test_http_needs_the_token_from_the_data_dir(server: HttpServer, data_dir: Path) -> None:
    token_file = data_dir / "mcp.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    for headers in ({}, {"Authorization": "Bearer not-the-token-at-all"}):
        answer = httpx.post(server.url, json={}, headers=headers, timeout=30)
        assert answer.status_code == 401
        assert "mcp.token" in answer.json()["error"]
    asked = _ask(server.url, token_file.read_text().strip())
    assert {t.name for t in asked["tools"]} == set(BAD_CALLS)
    report = asked["report"].structured_content
    cli = cli_json("performance-report", "--swarm-id", RUN_SWARM, "--data-dir", str(data_dir))
    drop = ("since", "until")
    assert {k: v for k, v in report.items() if k not in drop} == {
        k: v for k, v in cli.items() if k not in drop
    }
    assert asked["bad"].is_error
    assert "duration like 30s" in asked["bad"].content[0].text


def test_a_token_file_is_used_and_no_token_only_on_loopback(data_dir: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("a-token-of-enough-characters\n")
    served = HttpServer(data_dir, "--token-file", str(token_file))
    try:
        asked = _ask(served.url, "a-token-of-enough-characters")
        assert asked["report"].structured_content["swarm_id"] == RUN_SWARM
    finally:
        served.close()
    refused = subprocess.run(
        [
            *(sys.executable, "-m", "swarmperf", "mcp", "--transport", "http", "--no-token"),
            *("--host", "0.0.0.0", "--data-dir", str(data_dir)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "needs the bearer token" in refused.stderr
    assert "Traceback" not in refused.stderr

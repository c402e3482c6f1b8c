"""Build the MCP server (tools and resources) and serve it over stdio or streamable HTTP."""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from swarmperf.core.errors import ConfigError, SwarmError
from swarmperf.core.files import write_atomic
from swarmperf.mcp_server.tools import Clients, Settings, register
from swarmperf.queries import live, stored

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8765
PATH = "/mcp"
TOKEN_FILE = "mcp.token"
# How many of a swarm's runs its runs resource lists, newest first.
RUNS_LISTED = 100

INSTRUCTIONS = (
    "swarmperf measures swarms of agents. Stored runs (swarmperf run, simulate) answer "
    "performance_report, bottleneck_analyze, trend_analysis and the rest; live swarms "
    "(swarmperf serve) answer swarm_status and take switch_strategy, swarm_scale and "
    "task_submit. Every figure is measured; a missing one is null with a reason."
)


def build_server(data_dir: Path | None = None, *, read_only: bool = False) -> MCPServer:
    """The server over the store in `data_dir` (default: $SWARMPERF_DATA_DIR, else
    ./.swarmperf); with `read_only`, no tool that changes a swarm or writes the store."""
    from importlib.metadata import version

    server: MCPServer = MCPServer(
        "swarmperf",
        version=version("swarmperf"),
        instructions=INSTRUCTIONS,
        log_level="WARNING",
    )
    clients = Clients(data_dir)
    register(server, Settings(data_dir=data_dir, read_only=read_only), clients)
    _resources(server, data_dir, clients)
    return server


def _resources(server: MCPServer, data_dir: Path | None, clients: Clients) -> None:
    def answered(fn: Any, *args: Any) -> str:
        try:
            return json.dumps(fn(*args))
        except (SwarmError, ValueError) as exc:
            raise ResourceError(str(exc)) from exc

    @server.resource(
        "swarmperf://swarms",
        name="swarms",
        description="The swarms served from the data directory (swarmperf serve): id, "
        "address, process; and the swarms the store holds data of.",
        mime_type="application/json",
    )
    def swarms() -> str:
        def listed() -> dict[str, Any]:
            with stored.open_store(data_dir) as db:
                known = sorted({r.swarm_id for r in db.list_runs(limit=1000, kind=None)})
            return {"running": live.running_swarms(data_dir), "stored": known}

        return answered(listed)

    @server.resource(
        "swarmperf://swarms/{swarm_id}/snapshot",
        name="swarm-snapshot",
        description="A swarm's latest view: its live status while served, else the store's "
        "latest snapshot and run (as swarm_monitor gives it).",
        mime_type="application/json",
    )
    def snapshot(swarm_id: str) -> str:
        def latest() -> dict[str, Any]:
            client = clients.running(swarm_id)
            if client is not None:
                return live.monitor_data(client.status(), time.time())
            return stored.swarm_monitor(data_dir, swarm_id, include_simulated=True)

        return answered(latest)

    @server.resource(
        "swarmperf://swarms/{swarm_id}/runs",
        name="swarm-runs",
        description=f"A swarm's stored runs, newest first (at most {RUNS_LISTED}): id, "
        "label, kind, status, strategy, backend, start and end.",
        mime_type="application/json",
    )
    def swarm_runs(swarm_id: str) -> str:
        def listed() -> dict[str, Any]:
            with stored.open_store(data_dir) as db:
                found = db.list_runs(swarm_id, limit=RUNS_LISTED, kind=None)
            return {
                "swarm_id": swarm_id,
                "runs": [
                    {
                        "id": r.id,
                        "number": r.number,
                        "label": r.label(),
                        "kind": r.kind,
                        "status": r.status,
                        "strategy": r.strategy,
                        "backend": r.backend,
                        "started_at": r.started_at,
                        "finished_at": r.finished_at,
                        "report": f"swarmperf://runs/{r.id}/report",
                    }
                    for r in found
                ],
            }

        return answered(listed)

    @server.resource(
        "swarmperf://runs/{run_id}/report",
        name="run-report",
        description="A stored run's report (as `swarmperf run -o json` printed it), by the "
        "store's run id.",
        mime_type="application/json",
    )
    def run_report(run_id: str) -> str:
        def found() -> dict[str, Any]:
            if not (run_id.isascii() and run_id.isdigit()) or int(run_id) >= 2**63:
                raise ConfigError("run_id", run_id, "Give the store's id of a run, e.g. 3.")
            with stored.open_store(data_dir) as db:
                record = db.get_run(int(run_id))
            if record is None:
                raise ConfigError(
                    "run_id", run_id, "No run has that id; swarmperf://swarms/{id}/runs lists them."
                )
            return {
                "run_id": record.id,
                "swarm_id": record.swarm_id,
                "label": record.label(),
                "status": record.status,
                "report": record.report,
            }

        return answered(found)


# -- HTTP -----------------------------------------------------------------------------------


def http_token(data_dir: Path, token_file: Path | None, no_token: bool, host: str) -> str | None:
    """The bearer token the HTTP transport asks for, as `swarmperf serve` does: read from
    `token_file`, else made once and kept in the data dir (0600); None with `no_token`, which
    only a loopback host allows. Prints where the token is kept on stderr."""
    from swarmperf.service.server import check_host, read_token

    if no_token and token_file is not None:
        raise ConfigError("--no-token", True, "Give --token-file or --no-token, not both.")
    warning = check_host(host, not no_token)
    if warning is not None:
        logging.getLogger(__name__).warning(warning)
    if no_token:
        return None
    if token_file is not None:
        return read_token(token_file)
    path = data_dir / TOKEN_FILE
    if path.exists():
        return read_token(path)
    token = secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, token + "\n", mode=0o600)
    return token


class BearerToken:
    """ASGI middleware: every request needs `Authorization: Bearer <token>`, compared in
    constant time (the service's rule); else 401 with what to send."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = json.dumps(
                    {
                        "error": "A valid bearer token is required. Send 'Authorization: "
                        "Bearer <token>' with the token from the data dir's mcp.token "
                        "(or --token-file)."
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, token: str | None, host: str) -> Any:
    """The server's streamable HTTP app at /mcp, behind the token when there is one."""
    from mcp.server.transport_security import TransportSecuritySettings

    # On loopback the SDK checks the Host header against DNS rebinding (its default for a
    # loopback host); beyond it, names are not known in advance and the token guards.
    security = (
        None
        if _loopback(host)
        else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    app = server.streamable_http_app(
        streamable_http_path=PATH, transport_security=security, host=host
    )
    return app if token is None else BearerToken(app, token)


def _loopback(host: str) -> bool:
    from swarmperf.service.server import is_loopback

    return is_loopback(host)


def serve_http(
    server: MCPServer,
    *,
    host: str,
    port: int,
    token: str | None,
    on_ready: Any = None,
) -> None:
    """Serve over streamable HTTP on uvicorn until interrupted. `on_ready(url)` is called
    once the socket is bound (with the port it got, for port 0)."""
    import asyncio

    import uvicorn

    from swarmperf.service.server import bind

    if not 0 <= port <= 65535:
        raise ConfigError("--port", port, "Use 0 (any free port) to 65535.")
    sock = bind(host, port)
    config = uvicorn.Config(
        http_app(server, token, host),
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    runner = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(runner.serve([sock]))
        while not runner.started and not task.done():
            await asyncio.sleep(0.01)
        if runner.started and on_ready is not None:
            bound = sock.getsockname()[1]
            shown = LOOPBACK if host in ("0.0.0.0", "::") else host
            on_ready(f"http://{shown}:{bound}{PATH}")
        await task

    try:
        asyncio.run(main())
    finally:
        sock.close()


def environment_data_dir(data_dir: Path | None) -> Path:
    from swarmperf.store import resolve_data_dir

    return resolve_data_dir(data_dir, os.environ)

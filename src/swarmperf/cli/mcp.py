"""`swarmperf mcp`: serve the MCP tools and resources over stdio or streamable HTTP."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from swarmperf.cli._support import DataDirOption, err, user_errors


class Transport(StrEnum):
    stdio = "stdio"
    http = "http"


def mcp(
    transport: Annotated[
        Transport,
        typer.Option("--transport", help="stdio (an MCP client starts it) or http."),
    ] = Transport.stdio,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="With http: the address to bind; beyond loopback needs the token."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="With http: the port (0: a free one).")
    ] = 8765,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only",
            help="Serve only the tools that change nothing: no switch, scale or submit, and "
            "nothing recorded in the store.",
        ),
    ] = False,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="With http: the bearer token, from this file (default: made once, kept in "
            "the data dir's mcp.token, 0600).",
        ),
    ] = None,
    no_token: Annotated[
        bool,
        typer.Option("--no-token", help="With http on loopback: no bearer token."),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Serve swarmperf's tools to MCP clients, e.g. `claude mcp add swarmperf -- swarmperf mcp`.

    Every tool answers as its command does under -o json; errors carry the same fix."""
    from swarmperf.core.errors import UserError
    from swarmperf.mcp_server.server import (
        DEFAULT_PORT,
        LOOPBACK,
        TOKEN_FILE,
        build_server,
        environment_data_dir,
        http_token,
        serve_http,
    )

    with user_errors():
        if transport is Transport.stdio:
            given = [
                flag
                for flag, value in (
                    ("--host", host != LOOPBACK),
                    ("--port", port != DEFAULT_PORT),
                    ("--token-file", token_file is not None),
                    ("--no-token", no_token),
                )
                if value
            ]
            if given:
                raise UserError(
                    f"{given[0]}: applies to --transport http only. Add --transport http, or "
                    f"leave {given[0]} out."
                )
        folder = environment_data_dir(data_dir)
        server = build_server(folder, read_only=read_only)
        token = (
            http_token(folder, token_file, no_token, host) if transport is Transport.http else None
        )
    if transport is Transport.stdio:
        server.run("stdio")
        return

    kept = token_file or folder / TOKEN_FILE
    where = "no token" if token is None else f"bearer token in {kept}"

    def ready(url: str) -> None:
        err.print(f"Serving MCP at {url} ({where}).", markup=False, soft_wrap=True)

    with user_errors():
        serve_http(server, host=host, port=port, token=token, on_ready=ready)


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)

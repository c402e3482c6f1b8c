"""`swarmperf dashboard`: a swarm's live page in the browser, or a finished swarm's replay."""

from __future__ import annotations

import contextlib
import json
import os
import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from swarmperf.cli._support import (
    DataDirOption,
    Output,
    OutputOption,
    SwarmIdOption,
    err,
    out,
    user_errors,
)


def dashboard(
    swarm_id: SwarmIdOption,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Print the address; open no browser.")
    ] = False,
    port: Annotated[
        int, typer.Option("--port", help="For a replay: the port to serve it on (0: a free one).")
    ] = 0,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Open a swarm's dashboard: live figures, agents, alerts, events and decisions.

    A served swarm's page is its service's (`/`); the browser gets the token in the address's
    fragment, which is never sent to a server. A swarm that is no longer served is replayed
    from the store by a server on this machine, until Ctrl-C.
    """
    from swarmperf.core.errors import SwarmNotRunning
    from swarmperf.service import registry
    from swarmperf.store.paths import database_path, resolve_data_dir

    with user_errors():
        folder = resolve_data_dir(data_dir, os.environ)
        try:
            entry = registry.find(folder, swarm_id)
        except SwarmNotRunning:
            entry = None
        if entry is not None:
            _show(entry.url, entry.token(), "live", swarm_id, no_browser, output)
            return
        if not database_path(folder).exists():
            registry.find(folder, swarm_id)  # raises, naming what runs and how to start
        _replay(database_path(folder), swarm_id, port, no_browser, output)


def _show(url: str, token: str, mode: str, swarm_id: str, no_browser: bool, output: Output) -> None:
    address = f"{url}/#token={token}"
    if output is Output.json:
        data = {"swarm_id": swarm_id, "mode": mode, "url": url}
        if mode == "replay":
            # This replay's own token, made now and gone with it, for a program to open it.
            data["address"] = address
        print(json.dumps(data), flush=True)
    elif mode == "live":
        out.print(
            f"Dashboard of swarm {swarm_id!r} (live): {url}/ (the page asks for the token in "
            "the data dir's swarms/ folder, if the browser was not opened from here)",
            highlight=False,
            soft_wrap=True,
        )
    else:
        # This replay's own token, made now and gone with it: the address opens as it is.
        out.print(
            f"Dashboard of swarm {swarm_id!r} (a replay of its latest run): {address}",
            highlight=False,
            soft_wrap=True,
        )
    if not no_browser and not webbrowser.open(address):
        err.print(
            "no browser could be opened here: open the address above and give the token",
            highlight=False,
        )


def _replay(store_path: Path, swarm_id: str, port: int, no_browser: bool, output: Output) -> None:
    import asyncio

    import uvicorn

    from swarmperf.service.replay import replay_app
    from swarmperf.service.server import LOOPBACK, bind

    app, token = replay_app(store_path, swarm_id)
    sock = bind(LOOPBACK, port)
    url = f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    _show(url, token, "replay", swarm_id, no_browser, output)
    err.print("serving the replay until Ctrl-C", highlight=False)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a replay ends
        asyncio.run(server.serve([sock]))


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)

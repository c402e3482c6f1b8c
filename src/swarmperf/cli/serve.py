"""`swarmperf serve`: run a swarm as a long-lived service that other processes submit work to."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from swarmperf.cli._support import (
    BackendOption,
    DataDirOption,
    Output,
    OutputOption,
    err,
    load_spec_or_demo,
    override,
    user_errors,
)
from swarmperf.core.durations import parse_duration
from swarmperf.store.paths import resolve_data_dir


def serve(
    spec_path: Annotated[
        Path | None, typer.Argument(metavar="[SPEC]", help="A YAML swarm spec; none: the demo.")
    ] = None,
    swarm_id: Annotated[
        str | None,
        typer.Option(
            "--swarm-id", help="The id it is served and found under (default: the spec's)."
        ),
    ] = None,
    handlers: Annotated[
        str | None,
        typer.Option(
            "--handlers",
            help="Your handler registry as module:attr (a dict of task kind -> function), "
            "loaded once at start; the built-in kinds are always there.",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="The address to bind (default: loopback only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port (0: a free one).")] = 0,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="Use the token in this file (default: a new one, kept in the data dir, 0600).",
        ),
    ] = None,
    no_token: Annotated[
        bool,
        typer.Option("--no-token", help="No authentication: allowed on loopback only."),
    ] = False,
    max_pending: Annotated[
        int | None,
        typer.Option(
            "--max-pending",
            help="Tasks accepted but not finished before submissions get 503 (default: the "
            "spec's queue.max_queued).",
        ),
    ] = None,
    retain: Annotated[
        str,
        typer.Option(
            "--retain",
            help="How long a finished task's result and idempotency key are kept, e.g. 24h "
            "(a key sent again later is a new task).",
        ),
    ] = "168h",
    strategy: Annotated[
        str | None, typer.Option("--strategy", help="Overrides the spec's.")
    ] = None,
    backend: BackendOption = None,
    drain: Annotated[
        str | None,
        typer.Option(
            "--drain",
            help="On SIGTERM/SIGINT or a stop request, how long tasks may finish before they "
            "are cancelled, e.g. 30s; overrides the spec's timeouts.drain.",
        ),
    ] = None,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Serve a swarm until stopped: an HTTP API (/v1) to submit tasks and steer it.

    Accepted tasks are stored before the reply; after a crash, a restart with the same
    --swarm-id and data dir runs every accepted task that has no result. SIGTERM or SIGINT
    (or `swarmperf stop`) stops intake, drains, cancels what is left and records the run.
    """
    from swarmperf.service.server import Serving, load_handlers, main_loop_policy, read_token
    from swarmperf.service.server import serve as serve_swarm

    with user_errors():
        spec = override(
            load_spec_or_demo(spec_path), swarm_id=swarm_id, strategy=strategy, backend=backend
        )
        if drain is not None:
            timeouts = spec.timeouts.model_dump(mode="json")
            timeouts["drain"] = parse_duration(drain, "--drain")
            spec = override(spec, timeouts=timeouts)
        registry = load_handlers(handlers)
        token: str | None = ""
        if no_token:
            token = None
        elif token_file is not None:
            token = read_token(token_file)
        directory = resolve_data_dir(data_dir, os.environ)
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

        def ready(serving: Serving) -> None:
            if output is Output.json:
                print(
                    json.dumps(
                        {
                            "swarm_id": serving.swarm_id,
                            "url": serving.url,
                            "token_file": None
                            if serving.token_file is None
                            else str(serving.token_file),
                            "run_id": serving.run_id,
                            "recovered": serving.recovered,
                            "pid": os.getpid(),
                        }
                    ),
                    flush=True,
                )
                return
            token_note = (
                f"token in {serving.token_file}"
                if serving.token_file is not None
                else "no token (loopback only)"
            )
            err.print(
                f"serving swarm {serving.swarm_id!r} at {serving.url} ({token_note}); "
                f"API docs: {serving.url}/v1/openapi.json",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            if serving.recovered:
                err.print(
                    f"{serving.recovered:,} tasks accepted before a crash had no result: "
                    "running them again",
                    highlight=False,
                    markup=False,
                )
            err.print(
                f"stop with: swarmperf stop --swarm-id {serving.swarm_id}"
                + ("" if data_dir is None else f" --data-dir {directory}"),
                highlight=False,
                markup=False,
                soft_wrap=True,
            )

        main_loop_policy()
        live = asyncio.run(
            serve_swarm(
                spec,
                directory,
                handlers=registry,
                host=host,
                port=port,
                token=token,
                max_pending=max_pending,
                retain=parse_duration(retain, "--retain"),
                on_ready=ready,
            )
        )
    summary = (
        f"swarm {spec.swarm_id!r} stopped: {live.accepted:,} tasks accepted, "
        f"{live.recorded:,} results recorded"
    )
    if output is Output.json:
        print(json.dumps({"stopped": True, **live.report()}), flush=True)
    else:
        err.print(summary, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)

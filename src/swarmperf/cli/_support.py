"""What every command-line module shares: output options, user-error handling, store, progress."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from swarmperf.app.backends import backend_choices
from swarmperf.app.run import Progress as RunProgress
from swarmperf.core.errors import SwarmError
from swarmperf.spec import SwarmSpec, demo_spec, load_spec
from swarmperf.store import Store, database_path, resolve_data_dir

out = Console()
err = Console(stderr=True)


class Output(StrEnum):
    table = "table"
    json = "json"


# The options many commands share, each declared once so that its flag, type and help
# read the same everywhere. Where a command needs a different meaning it gets its own alias
# here (a required swarm id is not an optional one), never a local copy.
OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for programs.")
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where the memory store lives (default: $SWARMPERF_DATA_DIR, else ./.swarmperf).",
    ),
]
StoreOption = Annotated[
    bool, typer.Option("--store/--no-store", help="Record the results in the store.")
]
SwarmIdOption = Annotated[str, typer.Option("--swarm-id", help="The swarm to look at.")]
SwarmIdFilterOption = Annotated[
    str | None, typer.Option("--swarm-id", help="Only this swarm's stored data.")
]
SpecSwarmIdOption = Annotated[
    str | None,
    typer.Option("--swarm-id", help="The id the store records it under (default: the spec's)."),
]
RunOption = Annotated[
    int | None, typer.Option("--run", help="A stored run's id (default: the swarm's latest).")
]
SeedOption = Annotated[
    int | None, typer.Option("--seed", help="The random seed; overrides the spec's.")
]
DurationOption = Annotated[
    str | None,
    typer.Option("--duration", help="Cap on the run, e.g. 30s; overrides the spec's."),
]
IterationDurationOption = Annotated[
    str | None,
    typer.Option("--duration", help="Each iteration's length, e.g. 300s; overrides the suite's."),
]
BackendOption = Annotated[
    str | None, typer.Option("--backend", help=f"{backend_choices()}; overrides the spec's.")
]


class UserError(SwarmError):
    """A mistake in what the user asked for: reported without a traceback, exit code 2."""


def fail(exc: BaseException) -> None:
    # The message is plain text: field names like `agents[w]` must not be read as markup.
    err.print(
        f"[bold red]error:[/bold red] {escape(str(exc))}",
        highlight=False,
        markup=True,
        soft_wrap=True,
    )
    raise typer.Exit(code=2)


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except (SwarmError, ValueError) as exc:
        fail(exc)


def load_spec_or_demo(spec_path: Path | None) -> SwarmSpec:
    if spec_path is None:
        return demo_spec()
    if not spec_path.exists():
        raise UserError(f"SPEC: {str(spec_path)!r} does not exist. Give the path of a YAML spec.")
    return load_spec(spec_path)


def override(spec: SwarmSpec, **changes: Any) -> SwarmSpec:
    # Re-validate through the spec's own rules, so overrides get the same error messages.
    from swarmperf.spec import parse_spec

    data = spec.to_data()
    data.update({k: v for k, v in changes.items() if v is not None})
    return parse_spec(data, "command line")


def open_store(data_dir: Path | None, enabled: bool, *, read_only: bool = False) -> Store | None:
    """The data directory's store; `read_only` for commands that only read, so that they
    work for users who may not write it and never change it."""
    if not enabled:
        return None
    directory = resolve_data_dir(data_dir, os.environ)
    return Store.open(database_path(directory), read_only=read_only)


def run_async(coro_factory: Callable[[], Any]) -> Any:
    return asyncio.run(coro_factory())


def progress_bar(
    total: int, label: str, console: Console
) -> tuple[Progress, Callable[[RunProgress], None]]:
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("[red]{task.fields[failed]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task_id = bar.add_task(label, total=total, rate="", failed="")

    def update(p: RunProgress) -> None:
        rate = f"{p.finished / p.elapsed:,.0f} tasks/s" if p.elapsed > 0 else ""
        failed = f"{p.failed} failed" if p.failed else ""
        bar.update(task_id, completed=p.finished, rate=rate, failed=failed)

    return bar, update

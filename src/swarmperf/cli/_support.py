"""What every command-line module shares: output options, user-error handling, store, progress."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
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
from swarmperf.core.errors import ConfigError, SwarmError, preview
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
# The output the running command was asked for; `fail` answers in JSON under `-o json`.
# Set as `--output` is parsed, and back to table at the start of every command line.
output_mode: ContextVar[Output] = ContextVar("output_mode", default=Output.table)


def _remember_output(value: Output) -> Output:
    output_mode.set(value)
    return value


OutputOption = Annotated[
    Output,
    typer.Option(
        "--output",
        "-o",
        help="table for people, json for programs.",
        callback=_remember_output,
    ),
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
LatestSwarmIdOption = Annotated[
    str | None,
    typer.Option("--swarm-id", help="The swarm to look at (default: the most recent one)."),
]
IncludeSimulatedOption = Annotated[
    bool,
    typer.Option(
        "--include-simulated", help="Count simulated runs (`simulate`, --backend sim) too."
    ),
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
    """Report a user's mistake on stderr (and, under `-o json`, as JSON on stdout); exit 2."""
    if _json_requested():
        print(json.dumps({"error": error_data(exc)}))
    # The message is plain text: field names like `agents[w]` must not be read as markup.
    err.print(
        f"[bold red]error:[/bold red] {escape(str(exc))}",
        highlight=False,
        markup=True,
        soft_wrap=True,
    )
    raise typer.Exit(code=2)


def error_data(exc: BaseException) -> dict[str, Any]:
    """An error as JSON-able data: `field`, `value` and `fix` of a `ConfigError` (None for
    other errors), its whole `message`, and each `problems` entry of a spec with several."""
    data: dict[str, Any] = {"field": None, "value": None, "fix": None, "message": str(exc)}
    if isinstance(exc, ConfigError):
        data.update(field=exc.field, value=_json_value(exc.value), fix=exc.fix)
    problems = getattr(exc, "problems", None)
    if problems:
        data["problems"] = [
            {"field": p.path, "value": _json_value(p.value), "fix": p.fix} for p in problems
        ]
    return data


def _json_value(value: object) -> object:
    # A value as given when JSON has it and it is short; else the bounded preview the message
    # shows (a value can be a huge expanded YAML alias).
    if value is None or isinstance(value, bool | int | float):
        return value if not isinstance(value, int) or abs(value) < 2**63 else preview(value)
    if isinstance(value, str) and len(value) <= 200:
        return value
    return preview(value)


def _json_requested() -> bool:
    """Whether the running command was asked for `-o json`."""
    return output_mode.get() is Output.json


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


# How often, at most, progress is printed as plain lines (stderr not a terminal: a pipe, a
# file, a CI log): often enough to show the command is alive, not so often as to flood.
PROGRESS_EVERY = 5.0


class ProgressLines:
    """Progress as plain lines on stderr, for logs: at most one line every `every` seconds.

    Use as a context manager; `show(text)` prints `text` if the last line is old enough."""

    def __init__(
        self,
        console: Console | None = None,
        every: float = PROGRESS_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or err
        self.every = every
        self.clock = clock
        self._last = clock()

    def __enter__(self) -> ProgressLines:
        self._last = self.clock()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def show(self, text: str) -> None:
        now = self.clock()
        if now - self._last >= self.every:
            self._last = now
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)


def live_progress(console: Console | None = None) -> bool:
    """Whether progress may be a live bar: stderr is a terminal (else it is plain lines)."""
    return (console or err).is_terminal


def progress_bar(
    total: int,
    label: str,
    console: Console | None = None,
    *,
    unit: str = "tasks",
    every: float = PROGRESS_EVERY,
) -> tuple[AbstractContextManager[Any], Callable[[RunProgress], None]]:
    """A progress display for a run of `total` tasks and the function that updates it: a
    live bar on stderr when it is a terminal, else a plain line now and then (a CI log
    shows the run is alive). Always on stderr, so that stdout carries only the result."""
    console = console or err

    def rate_of(p: RunProgress) -> str:
        return f"{p.finished / p.elapsed:,.0f} {unit}/s" if p.elapsed > 0 else ""

    if not live_progress(console):
        lines = ProgressLines(console, every)

        def show(p: RunProgress) -> None:
            share = f" ({p.finished / p.total:.0%})" if p.total else ""
            parts = [f"{label}: {p.finished:,}/{p.total:,} {unit}{share}", rate_of(p)]
            if p.failed:
                parts.append(f"{p.failed:,} failed")
            parts.append(f"{_clock_time(p.elapsed)} elapsed")
            lines.show(", ".join(part for part in parts if part))

        return lines, show

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
        failed = f"{p.failed} failed" if p.failed else ""
        bar.update(task_id, completed=p.finished, rate=rate_of(p), failed=failed)

    return bar, update


def _clock_time(seconds: float) -> str:
    whole = int(seconds) if math.isfinite(seconds) and seconds > 0 else 0
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class Group(typer.core.TyperGroup):
    """The command group: help shows no `<bool>` type beside flags, which take no value."""

    def get_params(self, ctx: Any) -> Any:
        return _bare_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            # The command's own help option is made (and kept) here, so it is covered too.
            _bare_flags(command.get_params(ctx))
        return command


def _bare_flags(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params

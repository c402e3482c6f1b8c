"""What every command-line module shares: output options, user-error handling, store, progress."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
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
from typer._click.exceptions import (
    BadOptionUsage,
    BadParameter,
    MissingParameter,
    NoArgsIsHelpError,
    NoSuchOption,
    UsageError,
)

from swarmperf.app.backends import backend_choices
from swarmperf.app.run import Progress as RunProgress
from swarmperf.core.errors import ConfigError, SwarmError, preview
from swarmperf.core.errors import UserError as UserError
from swarmperf.queries.runs import load_spec_or_demo as load_spec_or_demo
from swarmperf.queries.runs import override as override
from swarmperf.queries.stored import find_run as find_run
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
    str | None,
    typer.Option(
        "--run",
        help="A stored run of the swarm, as its label names it: N for its run N, sim:N for "
        "its simulated run N, id:N for the store's id N (default: its latest run).",
    ),
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
        data.update(field=_json_value(exc.field), value=_json_value(exc.value), fix=exc.fix)
    problems = getattr(exc, "problems", None)
    if problems:
        data["problems"] = [
            {"field": _json_value(p.path), "value": _json_value(p.value), "fix": p.fix}
            for p in problems
        ]
    return data


def _json_value(value: object) -> object:
    # A value (or a field's path) as given when JSON has it and it is short; else the bounded
    # preview the message shows (a value can be a huge expanded YAML alias, a key a long line).
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
    """The command group: help shows no `<bool>` type beside flags, which take no value, and
    a usage error (bad value, unknown or missing option) under `-o json` is JSON too."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        # Parsing may fail before any option's callback has run: the command line says
        # whether JSON was asked for, not `output_mode`. A copy: parsing consumes `args`.
        given = tuple(args)
        with usage_errors_as_json(given):
            ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta[_ARGS] = given
        return ctx

    def invoke(self, ctx: Any) -> Any:
        # The command's own options are parsed here, and its callbacks may raise usage errors.
        with usage_errors_as_json(ctx.meta.get(_ARGS, ())):
            return super().invoke(ctx)

    def get_params(self, ctx: Any) -> Any:
        return _bare_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            # The command's own help option is made (and kept) here, so it is covered too.
            _bare_flags(command.get_params(ctx))
            if command.help:
                command.help = reflowed(command.help)
        return command


def reflowed(text: str) -> str:
    """Each paragraph of a help text on one line, for the terminal to wrap.

    The help renderer keeps the docstring's line breaks after its first paragraph, so on a
    terminal narrower than the source every line of those paragraphs wrapped on its own.
    """
    return "\n\n".join(" ".join(part.split()) for part in text.split("\n\n"))


def _bare_flags(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


_ARGS = "swarmperf.args"


def json_in(args: Sequence[str]) -> bool:
    """Whether a command line asks for JSON output: `-o json`, `--output json`,
    `--output=json` or `-ojson`, anywhere in it."""
    for i, arg in enumerate(args):
        if arg == "--":
            return False
        if arg in ("-o", "--output") and list(args[i + 1 : i + 2]) == ["json"]:
            return True
        if arg in ("--output=json", "-ojson"):
            return True
    return False


@contextmanager
def usage_errors_as_json(args: Sequence[str]) -> Iterator[None]:
    """Under `-o json`, a usage error is also a JSON object on stdout; typer then prints it
    on stderr and exits 2, as always."""
    try:
        yield
    except NoArgsIsHelpError:
        raise  # help, not an error
    except UsageError as exc:
        if json_in(args):
            print(json.dumps({"error": usage_error_data(exc, args)}))
        raise


def usage_error_data(exc: UsageError, args: Sequence[str]) -> dict[str, Any]:
    """A usage error as `fail` gives an error in JSON: the option's name, the value given
    (when there is one on the command line), and click's message as the fix."""
    message = exc.format_message()
    field: str | None = None
    value: str | None = None
    if isinstance(exc, NoSuchOption | BadOptionUsage):
        field = exc.option_name
    elif isinstance(exc, BadParameter) and exc.param is not None:
        if exc.param.param_type_name == "option":
            field = max([*exc.param.opts, *exc.param.secondary_opts], key=len)
            if not isinstance(exc, MissingParameter):
                value = _given(exc.param.opts, args)
        else:
            field = exc.param.display_name_raw  # an argument, by its metavar: SPEC
    return {"field": field, "value": value, "fix": message, "message": message}


def _given(names: Sequence[str], args: Sequence[str]) -> str | None:
    """The last value the command line gives to an option called any of `names`."""
    value: str | None = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in names and i + 1 < len(args):
            value = args[i + 1]
        for name in names:
            if arg.startswith(f"{name}=") and name.startswith("--"):
                value = arg[len(name) + 1 :]
    return value

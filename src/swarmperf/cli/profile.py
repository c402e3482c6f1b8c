"""`swarmperf profile-performance`: flame graphs of a served swarm or a command, per agent."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from swarmperf.cli._support import DataDirOption, Output, OutputOption, out, user_errors
from swarmperf.cli.live import live_errors
from swarmperf.core.errors import ConfigError
from swarmperf.profiling import pyspy
from swarmperf.profiling.stacks import Profile
from swarmperf.profiling.window import PYSPY_GRACE_S
from swarmperf.queries import profile as profiling
from swarmperf.queries.profile import TOP


def profile_performance(
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[-- COMMAND...]",
            help="A command to run and profile with py-spy (its child processes too), "
            "instead of a served swarm.",
        ),
    ] = None,
    swarm_id: Annotated[
        str | None, typer.Option("--swarm-id", help="The served swarm to profile.")
    ] = None,
    duration: Annotated[
        str, typer.Option("--duration", help="How long to sample, e.g. 60s (at most 1h).")
    ] = "60s",
    components: Annotated[
        str,
        typer.Option(
            "--components",
            help="all, coordinator (the service outside its agents), agents, or an agent's id.",
        ),
    ] = "all",
    rate: Annotated[float, typer.Option("--rate", help="Samples per second (1 to 1000).")] = 100.0,
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            help="speedscope, svg, collapsed or html; repeat for several (default: svg and "
            "speedscope).",
        ),
    ] = None,
    memory: Annotated[
        bool,
        typer.Option(
            "--memory",
            help="Also tracemalloc's top allocation sites and their growth over the window "
            "(a served swarm only; slows it while on).",
        ),
    ] = False,
    awaiting: Annotated[
        bool,
        typer.Option(
            "--awaiting/--cpu-only",
            help="Count handlers suspended in an await (wall time in handlers, the split of an "
            "I/O-bound swarm) beside the stacks on a CPU; --cpu-only: CPU stacks alone.",
        ),
    ] = True,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write (default: ./<swarm id or command>-profile.<format's suffix>); "
            "with several formats, each gets its suffix.",
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Functions shown by self time.")] = TOP,
    output: OutputOption = Output.table,
    data_dir: DataDirOption = None,
) -> None:
    """Flame graphs of a running swarm (or a command), split per agent and per handler.

    Samples the stacks, writes the flame graphs and prints the top self-time functions."""
    with user_errors():
        seconds, hz, chosen = profiling.check(duration, rate, formats, top)
        if (swarm_id is None) == (not command):
            raise ConfigError(
                "--swarm-id",
                swarm_id,
                "Give either --swarm-id of a served swarm or a command after --, not both.",
            )
    if swarm_id is not None:
        with live_errors():
            profile = profiling.sample_served(
                swarm_id, data_dir, seconds, hz, components, memory, awaiting
            )
        name = swarm_id
    else:
        assert command
        with user_errors():
            profile = _command(command, seconds, hz, components, memory)
        name = Path(command[0]).name
    with user_errors():
        summary = profiling.payload(profile, chosen, out_path, name, components, top)
    if output is Output.json:
        print(json.dumps(summary))
        return
    _render(summary)


def _command(
    command: list[str], seconds: float, hz: float, components: str, memory: bool
) -> Profile:
    if memory:
        raise ConfigError(
            "--memory",
            True,
            "tracemalloc sees only the process it runs in: serve the swarm (swarmperf serve) "
            "and profile it with --swarm-id to see memory.",
        )
    if components != "all":
        raise ConfigError(
            "--components",
            components,
            "A command's stacks carry no agent ids: use all, or serve the swarm and profile "
            "it with --swarm-id to split by agent.",
        )
    if shutil.which(command[0]) is None:
        raise ConfigError("COMMAND", command[0], "Give a command on PATH or a path to one.")
    profile = Profile(hz, seconds, sources=[f"py-spy on {' '.join(command)}"])
    with tempfile.TemporaryDirectory(prefix="swarmperf-profile-") as tmp:
        raw = Path(tmp) / "raw.txt"
        args = pyspy.command_args(raw, command, hz, seconds)
        try:
            done = subprocess.run(
                args, capture_output=True, timeout=seconds + PYSPY_GRACE_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ConfigError("COMMAND", command[0], "py-spy did not finish: try again.") from exc
        if not raw.exists():
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise ConfigError(
                "COMMAND",
                " ".join(command),
                "py-spy sampled nothing"
                + (f" ({reason[-1]})" if reason else "")
                + ": is it a Python program that runs long enough to be sampled?",
            )
        pyspy.parse_raw(raw.read_text(), profile)
    profile.notes.append(
        "a command's samples are split by handler where a frame is a built-in handler, "
        "not by agent: serve the swarm for the split by agent"
    )
    return profile


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _render(summary: dict[str, Any]) -> None:
    out.print(
        f"{summary['samples']:,} samples at {summary['rate_hz']:g} Hz over "
        f"{summary['duration_s']:.1f} s: {summary['cpu_samples']:,} on a CPU, "
        f"{summary['awaiting_samples']:,} of handlers awaiting "
        f"({summary['idle_samples']:,} idle, left out); "
        f"attributed to an agent or handler: {_pct(summary['attributed_share'])}"
    )
    table = Table(title="Top self time")
    for column in ("function", "where", "self", "total"):
        table.add_column(column, justify="left" if column in ("function", "where") else "right")
    for row in summary["top_self"]:
        where = f"{row['file']}:{row['line']}" if row["file"] else ""
        table.add_row(row["function"], where, _pct(row["self_share"]), _pct(row["total_share"]))
    out.print(table)
    for by, title in (("agents", "By agent"), ("handlers", "By handler")):
        split = Table(title=title)
        key = by[:-1]
        split.add_column(key)
        split.add_column("samples", justify="right")
        split.add_column("share", justify="right")
        for row in summary[by]:
            split.add_row(row[key] or "(none)", f"{row['samples']:,}", _pct(row["share"]))
        out.print(split)
    memory = summary.get("memory")
    if memory:
        growth = Table(title=f"Memory growth over the window ({memory['growth_bytes']:+,} bytes)")
        for column in ("where", "grew", "size", "objects +"):
            growth.add_column(column, justify="left" if column == "where" else "right")
        for row in memory["top_growth"]:
            growth.add_row(
                f"{row['file']}:{row['line']}",
                f"{row['size_diff_bytes']:+,}",
                f"{row['size_bytes']:,}",
                f"{row['count_diff']:+,}",
            )
        out.print(growth)
    for note in summary["notes"]:
        out.print(f"note: {note}")
    for fmt, path in summary["written"].items():
        out.print(f"wrote {fmt}: {path}")


def register(app: typer.Typer) -> None:
    app.command("profile-performance")(profile_performance)

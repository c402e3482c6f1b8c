"""py-spy for what the in-process sampler cannot reach: process-backend workers, commands.

py-spy (its PyPI wheel ships the binary) reads another process's stacks from outside, so it
needs nothing of the process it samples: the right tool for `profile-performance --
COMMAND`, whatever the command is, its child processes included (`--subprocesses`), and for
a served swarm's process-backend workers, one py-spy per worker pid. It sees function names
only, so its samples are attributed by process (a worker is its agent) and by handler where
a frame is a known handler function; `--nonblocking` keeps it from pausing the process it
reads, and `--function` folds samples by function, as the in-process sampler does.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from swarmperf.core.errors import ConfigError
from swarmperf.core.handlers import BUILTIN_HANDLERS, Handler
from swarmperf.profiling.sampler import is_idle
from swarmperf.profiling.stacks import AGENT, COMMAND, Frame, Profile

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
HandlerIndex = Mapping[tuple[str, str], str]  # (function, file name) -> task kind


def binary() -> str:
    """The py-spy executable: beside this interpreter (a virtualenv's), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise ConfigError(
            "py-spy",
            None,
            "Install it (pip install py-spy: its wheel ships the binary) to profile a command "
            "or process-backend workers.",
        )
    return found


def handler_index(handlers: Mapping[str, Handler] | None = None) -> dict[tuple[str, str], str]:
    """Which function is which task kind's handler, by name and file (the built-ins too)."""
    index: dict[tuple[str, str], str] = {}
    for kind, fn in {**BUILTIN_HANDLERS, **(handlers or {})}.items():
        code = getattr(fn, "__code__", None)
        if code is not None:
            index[(code.co_name, os.path.basename(code.co_filename))] = kind
    return index


def record_args(out: Path, rate: float, duration: float) -> list[str]:
    return [
        binary(),
        "record",
        "--format",
        "raw",
        "--function",
        "--nonblocking",
        "--rate",
        str(max(1, round(rate))),
        "--duration",
        str(max(1, math.ceil(duration))),
        "--output",
        str(out),
    ]


def pid_args(out: Path, pid: int, rate: float, duration: float) -> list[str]:
    return [*record_args(out, rate, duration), "--pid", str(pid)]


def command_args(out: Path, command: Sequence[str], rate: float, duration: float) -> list[str]:
    return [*record_args(out, rate, duration), "--subprocesses", "--", *command]


def parse_raw(
    text: str,
    profile: Profile,
    *,
    agent: str | None = None,
    handlers: HandlerIndex | None = None,
) -> int:
    """Add py-spy's raw output (`frame;frame;... count` lines) to `profile`; the samples read."""
    index = handler_index() if handlers is None else handlers
    read = 0
    for line in text.splitlines():
        stack_text, _, count_text = line.rstrip().rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames: list[Frame] = []
        handler: str | None = None
        for part in stack_text.split(";"):
            match = _FRAME.match(part)
            if match is None:  # `process 123:"cmd"` or `thread (0x...)`: a label
                frames.append((part, "", 0))
                continue
            name, file = match["name"], match["file"]
            frames.append((name, file, int(match["line"])))
            if handler is None:
                handler = index.get((name, os.path.basename(file)))
        name, file, _ = frames[-1] if frames else ("", "", 0)
        if is_idle(name, file):  # py-spy's own idle test misses threads blocked in C calls
            profile.idle += count
            read += count
            continue
        component = AGENT if agent is not None else COMMAND
        profile.add(frames, component, agent, handler, count)
        read += count
    return read

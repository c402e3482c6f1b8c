"""The questions both front-ends answer about a workload trace: its patterns, and scaling
policies replayed on it.

Each checks what it is given (the same fields and messages as the command line) and returns
the JSON-able payload `-o json` prints and the MCP tool returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmperf.core.durations import parse_duration
from swarmperf.core.errors import ConfigError, UnknownName

if TYPE_CHECKING:
    from swarmperf.autoscale.replay import ReplaySettings
    from swarmperf.autoscale.traces import Trace


def read_trace(path: Path, interval: str, *, max_bytes: int | None = None) -> Trace:
    """The trace at `path`, `interval` seconds per count; with `max_bytes`, a larger file is
    refused before it is read."""
    from swarmperf.autoscale.traces import read_trace as read

    seconds = parse_duration(interval, "--interval")
    if max_bytes is not None:
        check_size(path, max_bytes, "trace")
    return read(path, interval=seconds)


def check_size(path: Path, max_bytes: int, field: str) -> None:
    """A file larger than `max_bytes` is a `ConfigError` naming `field` (a missing one is
    left to the reader, which says so)."""
    try:
        size = path.stat().st_size
    except OSError:
        return
    if path.is_file() and size > max_bytes:
        raise ConfigError(
            field,
            str(path),
            f"It holds {size:,} bytes; at most {max_bytes:,} are read here. Aggregate it to "
            "counts per interval, or use the command line, which reads any size.",
        )


def workload_analysis(path: Path, interval: str, *, max_bytes: int | None = None) -> dict[str, Any]:
    """`workload-analyze -o json`: periods, trend, burstiness, regime changes and the policy
    they suggest."""
    from swarmperf.autoscale.patterns import analyse

    return analyse(read_trace(path, interval, max_bytes=max_bytes)).as_dict()


@dataclass(frozen=True)
class Replay:
    """An `autoscale-eval` question, checked: the trace, the settings, the policies."""

    trace: Trace
    settings: ReplaySettings
    policies: tuple[str, ...]
    forecaster: str


def replay_question(
    path: Path,
    *,
    policy: str = "all",
    interval: str = "60s",
    peak_agents: int = 50,
    slo_factor: float = 2.0,
    startup: str = "60s",
    forecaster: str = "default",
    seed: int = 0,
    max_bytes: int | None = None,
    max_tasks: int | None = None,
) -> Replay:
    """Check every setting (an unknown policy or forecaster fails before the trace is read),
    then read the trace; with `max_tasks`, refuse one of more tasks (replay time grows with
    them: the 3.5 million of the NASA-HTTP trace take minutes)."""
    from swarmperf.autoscale.forecast import make_forecaster
    from swarmperf.autoscale.replay import POLICIES, ReplaySettings

    settings = ReplaySettings(
        interval=parse_duration(interval, "--interval"),
        peak_agents=peak_agents,
        slo_factor=slo_factor,
        startup=parse_duration(startup, "--startup"),
        seed=seed,
    )
    chosen: tuple[str, ...]
    if policy == "all":
        chosen = POLICIES
    elif policy in POLICIES:
        chosen = (policy,)
    else:
        raise UnknownName("--policy", policy, [*POLICIES, "all"])
    try:
        make_forecaster(forecaster)
    except UnknownName as unknown:
        # The registry names its field `forecaster`; here the user typed an option.
        raise UnknownName("--forecaster", forecaster, unknown.choices) from None
    trace = read_trace(path, interval, max_bytes=max_bytes)
    if max_tasks is not None and trace.tasks > max_tasks:
        raise ConfigError(
            "trace",
            str(path),
            f"It holds {trace.tasks:,} tasks; at most {max_tasks:,} are replayed here. Replay "
            "a slice of it, or use the command line, which replays any number.",
        )
    return Replay(trace, settings, chosen, forecaster)


def autoscale_eval(
    asked: Replay, progress: Callable[[str, int], None] | None = None
) -> dict[str, Any]:
    """`autoscale-eval -o json`: the trace replayed through a simulated swarm under each
    policy. `progress(policy, done)` is called as each policy starts, `done` before it."""
    from swarmperf.autoscale.replay import evaluate

    started = 0

    def each(name: str) -> None:
        nonlocal started
        if progress is not None:
            progress(name, started)
        started += 1

    return evaluate(
        asked.trace, asked.settings, asked.policies, forecaster=asked.forecaster, progress=each
    )

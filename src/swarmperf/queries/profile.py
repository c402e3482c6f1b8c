"""The question both front-ends answer about where a served swarm spends its time: sample it,
write the flame graphs, and summarise (`profile-performance --swarm-id ID`).

The payload is what `-o json` prints and the MCP tool returns, with the paths written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmperf.core.durations import parse_duration
from swarmperf.core.errors import ConfigError
from swarmperf.queries.live import connect

if TYPE_CHECKING:
    from swarmperf.client import SyncSwarmClient
    from swarmperf.profiling.stacks import Profile

TOP = 15
DEFAULT_FORMATS = ("svg", "speedscope")


def check(
    duration: str, rate: float, formats: list[str] | None, top: int, *, max_s: float | None = None
) -> tuple[float, float, list[str]]:
    """The window (seconds, Hz) and the formats to write (duplicates dropped); a
    `ConfigError` naming the option that is wrong. With `max_s`, a longer window is one."""
    from swarmperf.profiling.window import check_window
    from swarmperf.profiling.writers import FORMATS

    seconds = parse_duration(duration, "--duration")
    if max_s is not None and seconds > max_s:
        raise ConfigError(
            "--duration", duration, f"Sample at most {max_s:g} s here; the command line goes to 1h."
        )
    seconds, hz = check_window(seconds, rate)
    chosen = list(formats or DEFAULT_FORMATS)
    for fmt in chosen:
        if fmt not in FORMATS:
            raise ConfigError("--format", fmt, f"Use one of {', '.join(FORMATS)}.")
    if top < 1:
        raise ConfigError("--top", top, "Use an integer >= 1.")
    return seconds, hz, list(dict.fromkeys(chosen))


def sample_served(
    swarm_id: str,
    data_dir: Path | None,
    seconds: float,
    hz: float,
    components: str,
    memory: bool,
    awaiting: bool,
    client: SyncSwarmClient | None = None,
) -> Profile:
    """The served swarm's stacks over the window, by agent and handler; through `client`
    if given (its owner closes it), else a client of its own."""
    from swarmperf.profiling.stacks import Profile, check_components

    if client is None:
        with connect(swarm_id, data_dir) as made:
            return sample_served(
                swarm_id, data_dir, seconds, hz, components, memory, awaiting, client=made
            )
    agents = [str(a["id"]) for a in client.agents()]
    check_components(components, agents)  # before the window, not after it
    return Profile.from_data(client.profile(seconds, hz, components, memory, awaiting))


def write(
    profile: Profile, formats: list[str], out_path: Path | None, name: str, components: str
) -> dict[str, str]:
    """Write each format (default: ./<name>-profile.<suffix>; with several formats and an
    `out_path`, each gets its suffix); the paths written, by format."""
    from swarmperf.profiling.writers import SUFFIXES, render

    title = f"{name}: profile ({components})"
    written: dict[str, str] = {}
    for fmt in formats:
        if out_path is None:
            path = Path(f"{name}-profile{SUFFIXES[fmt]}")
        elif len(formats) == 1:
            path = out_path
        else:
            path = out_path.with_name(out_path.name.split(".")[0] + SUFFIXES[fmt])
        try:
            path.write_text(render(profile, fmt, title))
        except OSError as exc:
            raise ConfigError(
                "--out", str(path), f"Give a path that can be written ({exc.strerror})."
            ) from exc
        written[fmt] = str(path)
    return written


def payload(
    profile: Profile,
    formats: list[str],
    out_path: Path | None,
    name: str,
    components: str,
    top: int,
) -> dict[str, Any]:
    """Write the flame graphs and return `profile-performance -o json`: the summary (top
    self time, the split by agent and by handler, memory), what was asked and written."""
    written = write(profile, formats, out_path, name, components)
    summary = profile.summary(top)
    summary["components"] = components
    summary["written"] = written
    return summary


def profile_served(
    swarm_id: str,
    data_dir: Path | None,
    *,
    duration: str = "60s",
    components: str = "all",
    rate: float = 100.0,
    formats: list[str] | None = None,
    memory: bool = False,
    awaiting: bool = True,
    out_path: Path | None = None,
    top: int = TOP,
    max_s: float | None = None,
    client: SyncSwarmClient | None = None,
) -> dict[str, Any]:
    """`profile-performance --swarm-id ID -o json`, all of it: check, sample, write, sum up."""
    seconds, hz, chosen = check(duration, rate, formats, top, max_s=max_s)
    profile = sample_served(
        swarm_id, data_dir, seconds, hz, components, memory, awaiting, client=client
    )
    return payload(profile, chosen, out_path, swarm_id, components, top)

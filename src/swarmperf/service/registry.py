"""The registry of live swarms in a data directory: who serves which id, where, with what token."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from swarmperf.core.errors import ConfigError, SwarmNotRunning
from swarmperf.core.files import write_atomic
from swarmperf.store.records import pid_alive

REGISTRY_DIRNAME = "swarms"
# Swarm ids name files here: letters, digits and a few separators, never a path.
_SWARM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
START_HINT = "Start one with: swarmperf serve swarm.yaml --swarm-id <id>"


@dataclass(frozen=True, slots=True)
class SwarmEntry:
    """One service that said it serves `swarm_id` at `url`."""

    swarm_id: str
    url: str
    pid: int
    host: str
    started_at: float  # UNIX time
    token_file: Path

    def token(self) -> str:
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                "token file",
                str(self.token_file),
                f"It cannot be read ({exc.strerror}); run as the user who started the swarm.",
            ) from exc

    @property
    def alive(self) -> bool:
        """Whether the process that registered it still runs. On another host this cannot
        be told from here, and the entry counts as alive (the service will answer or not)."""
        if self.host != socket.gethostname():
            return True
        return pid_alive(self.pid)


def check_swarm_id(swarm_id: str) -> str:
    if not _SWARM_ID.match(swarm_id):
        raise ConfigError(
            "--swarm-id",
            swarm_id,
            "Use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return swarm_id


def registry_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / REGISTRY_DIRNAME


def _entry_path(data_dir: str | Path, swarm_id: str) -> Path:
    return registry_dir(data_dir) / f"{check_swarm_id(swarm_id)}.json"


def token_path(data_dir: str | Path, swarm_id: str) -> Path:
    return registry_dir(data_dir) / f"{check_swarm_id(swarm_id)}.token"


def register(data_dir: str | Path, swarm_id: str, url: str, pid: int, token: str) -> SwarmEntry:
    """Record that `pid` serves `swarm_id` at `url`; the token goes to its own file, 0600.

    Refuses (SwarmAlreadyServed as a ConfigError) when a live process serves it already."""
    folder = registry_dir(data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(folder, 0o700)
    current = _read(_entry_path(data_dir, swarm_id))
    if current is not None and current.alive and current.pid != pid:
        raise ConfigError(
            "--swarm-id",
            swarm_id,
            f"Swarm {swarm_id!r} is served already by pid {current.pid} at {current.url}; "
            f"stop it first (swarmperf stop --swarm-id {swarm_id}) or choose another id.",
        )
    tokens = token_path(data_dir, swarm_id)
    write_atomic(tokens, token + "\n", mode=0o600)
    entry = SwarmEntry(swarm_id, url, pid, socket.gethostname(), time.time(), tokens)
    data = {
        "swarm_id": entry.swarm_id,
        "url": entry.url,
        "pid": entry.pid,
        "host": entry.host,
        "started_at": entry.started_at,
        "token_file": tokens.name,
    }
    write_atomic(_entry_path(data_dir, swarm_id), json.dumps(data, indent=2) + "\n", mode=0o600)
    return entry


def unregister(data_dir: str | Path, swarm_id: str, pid: int) -> None:
    """Remove the entry (and its token) if `pid` is still the one registered."""
    path = _entry_path(data_dir, swarm_id)
    current = _read(path)
    if current is None or current.pid != pid:
        return
    for stale in (path, current.token_file):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def entries(data_dir: str | Path) -> list[SwarmEntry]:
    """Every entry, stale ones too, by swarm id."""
    folder = registry_dir(data_dir)
    if not folder.is_dir():
        return []
    found = (_read(path) for path in sorted(folder.glob("*.json")))
    return [entry for entry in found if entry is not None]


def running(data_dir: str | Path) -> list[SwarmEntry]:
    return [entry for entry in entries(data_dir) if entry.alive]


def find(data_dir: str | Path, swarm_id: str) -> SwarmEntry:
    """The live entry for `swarm_id`, or `SwarmNotRunning` saying which swarms do run."""
    entry = _read(_entry_path(data_dir, swarm_id))
    if entry is not None and entry.alive:
        return entry
    others = [e.swarm_id for e in running(data_dir) if e.swarm_id != swarm_id]
    where = f"in {Path(data_dir)}"
    listed = f"Running {where}: {', '.join(others)}." if others else f"No swarm is running {where}."
    if entry is not None:
        problem = (
            f"It was registered by pid {entry.pid}, which is no longer running (it was "
            "killed or crashed); its entry is not trusted."
        )
    else:
        problem = "No service is serving it."
    raise SwarmNotRunning(swarm_id, f"{problem} {listed} {START_HINT}.")


def ready(
    data_dir: str | Path, swarm_id: str, pid: int | None = None, timeout: float = 2.0
) -> SwarmEntry | None:
    """The entry of `swarm_id` if its service (the process `pid`, when given) answers
    `/v1/ready` now; else None. For whatever starts `swarmperf serve` and waits for it."""
    import httpx

    try:
        entry = find(data_dir, swarm_id)
    except SwarmNotRunning:
        return None
    if pid is not None and entry.pid != pid:
        return None  # a stale entry of a predecessor
    try:
        reply = httpx.get(
            f"{entry.url}/v1/ready",
            headers={"Authorization": f"Bearer {entry.token()}"},
            timeout=timeout,
        )
    except httpx.HTTPError:
        return None
    return entry if reply.status_code == 200 else None


def _read(path: Path) -> SwarmEntry | None:
    try:
        data = json.loads(path.read_text())
        return SwarmEntry(
            swarm_id=str(data["swarm_id"]),
            url=str(data["url"]),
            pid=int(data["pid"]),
            host=str(data["host"]),
            started_at=float(data["started_at"]),
            token_file=path.parent / Path(str(data["token_file"])).name,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, half-written by a crash, or not ours: not an entry

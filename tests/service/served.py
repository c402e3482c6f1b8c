"""Start `swarmperf serve` as a real process for tests, and wait until it answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from swarmperf.core.errors import SwarmNotRunning
from swarmperf.service import registry

SPEC = """\
swarm_id: {swarm_id}
backend: local
strategy: least-loaded
agents: [{{id: a1, concurrency: 2}}, {{id: a2, concurrency: 2}}]
timeouts: {{drain: 10s}}
"""


def write_spec(folder: Path, swarm_id: str = "svc") -> Path:
    path = folder / f"{swarm_id}.yaml"
    path.write_text(SPEC.format(swarm_id=swarm_id))
    return path


def start(
    spec: Path,
    data_dir: Path,
    swarm_id: str = "svc",
    *args: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """The service as a process; its stderr goes to a log file beside the data dir (a pipe
    nobody reads would fill and stall it)."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"serve-{time.monotonic_ns()}.log"
    command = [sys.executable, "-m", "swarmperf", "serve", str(spec)]
    command += ["--data-dir", str(data_dir), "--swarm-id", swarm_id, *args]
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=sink, env=env)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def log_of(proc: subprocess.Popen[bytes]) -> str:
    path: Path = proc.log  # type: ignore[attr-defined]
    return path.read_text(errors="replace")


def wait_ready(
    proc: subprocess.Popen[bytes], data_dir: Path, swarm_id: str = "svc", timeout: float = 30.0
) -> registry.SwarmEntry:
    """The registry entry once `/v1/ready` answers 200; fails with the service's stderr."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {log_of(proc)[-2000:]}")
        try:
            entry = registry.find(data_dir, swarm_id)
        except SwarmNotRunning:
            time.sleep(0.05)
            continue
        if entry.pid != proc.pid:
            time.sleep(0.05)
            continue
        headers = {"Authorization": f"Bearer {entry.token()}"}
        try:
            if httpx.get(f"{entry.url}/v1/ready", headers=headers).status_code == 200:
                return entry
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("serve did not become ready in time")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return proc.returncode


@contextmanager
def served(
    tmp: Path, swarm_id: str = "svc", *args: str
) -> Iterator[tuple[subprocess.Popen[bytes], registry.SwarmEntry, httpx.Client]]:
    data_dir = tmp / "data"
    proc = start(write_spec(tmp, swarm_id), data_dir, swarm_id, *args)
    try:
        entry = wait_ready(proc, data_dir, swarm_id)
        headers = {"Authorization": f"Bearer {entry.token()}"}
        with httpx.Client(base_url=entry.url, headers=headers, timeout=30) as client:
            yield proc, entry, client
    finally:
        if proc.poll() is None:
            stop(proc)

"""A real `swarmperf serve` process for tests: started on a free loopback port, found, stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from swarmperf.service import registry

READY_WITHIN_S = 60.0

SPEC = """\
swarm_id: {swarm_id}
strategy: least-loaded
seed: 5
agents:
  - id: a
    count: 2
    concurrency: 4
"""
# Two agents named apart, with a drain long enough for the tests' short tasks.
TWO_AGENTS = """\
swarm_id: {swarm_id}
backend: local
strategy: least-loaded
agents: [{{id: a1, concurrency: 2}}, {{id: a2, concurrency: 2}}]
timeouts: {{drain: 10s}}
"""


@dataclass
class Service:
    """One served swarm: its process, where it keeps its data and how to reach it."""

    swarm_id: str
    data_dir: Path
    spec: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    extra: tuple[str, ...] = field(default=())
    env: dict[str, str] = field(default_factory=dict)  # added to the environment

    def start(self, *, ready_within: float = READY_WITHIN_S) -> Service:
        """Start `swarmperf serve` and wait until it is registered and ready."""
        command = [
            sys.executable,
            "-m",
            "swarmperf",
            "serve",
            str(self.spec),
            "--swarm-id",
            self.swarm_id,
            "--data-dir",
            str(self.data_dir),
            "--port",
            "0",
            *self.extra,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMPERF_")}
        env.update(self.env)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.data_dir.parent
            )
        self._wait_ready(ready_within)
        return self

    def _wait_ready(self, within: float) -> None:
        assert self.process is not None
        give_up = time.monotonic() + within
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"swarmperf serve exited {self.process.returncode}:\n{self.output()}"
                )
            entry = registry.ready(self.data_dir, self.swarm_id, self.process.pid, timeout=5)
            if entry is not None:
                self.url = entry.url
                return
            time.sleep(0.05)
        self.process.kill()
        self.process.wait(timeout=30)
        raise AssertionError(f"swarmperf serve was not ready in {within} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """kill -9: no drain, no unregistering, nothing recorded."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """SIGTERM (drain, record, unregister), then SIGKILL if it will not end; the exit
        code (None if it never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
                raise
        return self.process.returncode

    def token(self) -> str:
        return registry.find(self.data_dir, self.swarm_id).token()

    def client(self) -> httpx.Client:
        """A plain HTTP client with the token, for tests of the API itself."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def service(
    folder: Path,
    swarm_id: str,
    *extra: str,
    spec: str = SPEC,
    env: dict[str, str] | None = None,
) -> Service:
    """A service of a two-agent local swarm, not yet started; its data dir in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{swarm_id}.yaml"
    path.write_text(spec.format(swarm_id=swarm_id))
    data_dir = folder / "data"
    log = folder / f"{swarm_id}.log"
    return Service(swarm_id, data_dir, path, log, extra=extra, env=dict(env or {}))

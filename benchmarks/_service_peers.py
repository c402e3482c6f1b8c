"""Processes the service benchmarks run beside themselves: Redis, Celery, and `swarmperf serve`.

Also the Celery app itself (`celery -A _service_peers worker` finds `app` here when
`SWARMPERF_BENCH_REDIS_URL` is set) and the logged-sleep handler the crash benchmark serves
(`--handlers _service_peers:CRASH_HANDLERS`). The module is imported by the workers and the
service as well as by the benchmarks, so its top level stays light: no Celery, no httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REDIS_URL_ENV = "SWARMPERF_BENCH_REDIS_URL"
RUN_LOG_ENV = "SWARMPERF_BENCH_RUN_LOG"
CELERY_NOOP = "bench.noop"

# Celery's side, as a Celery user would tune it for many tiny tasks (and said in the JSON):
# acknowledgement on receipt (the default; late acks would add a round trip per task),
# a deep prefetch so each worker process is never idle waiting for the broker, no rate
# limits, no events, no gossip/mingle/heartbeat chatter between workers, JSON (the default).
CELERY_PREFETCH_MULTIPLIER = 64
CELERY_SETTINGS: dict[str, Any] = {
    "task_acks_late": False,
    "worker_prefetch_multiplier": CELERY_PREFETCH_MULTIPLIER,
    "worker_disable_rate_limits": True,
    "worker_send_task_events": False,
    "task_send_sent_event": False,
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "task_ignore_result": False,
    "result_expires": 3600,
    "broker_connection_retry_on_startup": True,
    "worker_hijack_root_logger": False,
}
CELERY_WORKER_FLAGS = ("--without-gossip", "--without-mingle", "--without-heartbeat")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it lingers: the benchmarks leave nothing running."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def tree_cpu_s(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) used so far by these processes and their children."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


# -- Celery: the app, and its workers -------------------------------------------------------


def make_celery_app(redis_url: str) -> Any:
    """A Celery 5 app with Redis as broker and result backend, and the no-op task."""
    from celery import Celery

    celery_app = Celery("swarmperf_bench", broker=redis_url, backend=redis_url)
    celery_app.conf.update(CELERY_SETTINGS)

    @celery_app.task(name=CELERY_NOOP)  # type: ignore[untyped-decorator]
    def noop() -> None:
        return None

    return celery_app


if os.environ.get(REDIS_URL_ENV):  # set for the worker processes, which look for `app`
    app = make_celery_app(os.environ[REDIS_URL_ENV])


@dataclass
class RedisServer:
    """`redis-server` on a free loopback port, no persistence, as a child process."""

    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server")
        self.port = free_port()
        log_path = self.workdir / "redis.log"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(log_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {tail(log_path)}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return self.url
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer within {timeout:g} s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


@dataclass
class CeleryWorkers:
    """`celery worker --pool prefork --concurrency N` on the Redis broker, as a subprocess."""

    redis_url: str
    workdir: Path
    concurrency: int = 2
    proc: subprocess.Popen[bytes] | None = None
    command: list[str] = field(default_factory=list)

    def start(self) -> None:
        env = dict(os.environ)
        env[REDIS_URL_ENV] = self.redis_url
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(BENCH_DIR), env.get("PYTHONPATH", "")) if p
        )
        self.command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "_service_peers",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(self.concurrency),
            "--loglevel",
            "WARNING",
            *CELERY_WORKER_FLAGS,
        ]
        log_path = self.workdir / "celery.log"
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command,
                cwd=BENCH_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so that the whole pool goes at the end
            )

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the Celery worker exited: {tail(self.workdir / 'celery.log')}")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        # The pool's children are in the worker's session; SIGTERM is a warm shutdown.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


# -- swarmperf serve ------------------------------------------------------------------------


def swarmperf_command() -> list[str]:
    """The `swarmperf` console script next to this interpreter, else `python -m swarmperf`."""
    script = Path(sys.executable).parent / "swarmperf"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "swarmperf"]


def write_spec(
    path: Path, swarm_id: str, strategy: str, agents: Sequence[Mapping[str, Any]]
) -> Path:
    lines = [f"swarm_id: {swarm_id}", "backend: local", f"strategy: {strategy}", "agents:"]
    for agent in agents:
        fields = ", ".join(f"{k}: {v}" for k, v in agent.items())
        lines.append(f"  - {{{fields}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class ServedSwarm:
    """`swarmperf serve SPEC --swarm-id ID --data-dir DIR --port P` as a user starts it."""

    spec: Path
    swarm_id: str
    data_dir: Path
    handlers: str | None = None
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    token: str = ""
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"serve-{self.starts}.log"

    def command(self) -> list[str]:
        cmd = [
            *swarmperf_command(),
            "serve",
            str(self.spec),
            "--swarm-id",
            self.swarm_id,
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
        ]
        if self.handlers:
            cmd += ["--handlers", self.handlers]
        return cmd

    def launch(self) -> float:
        """Start the process; return the moment (time.time()) the command was issued."""
        self.starts += 1
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(BENCH_DIR), env.get("PYTHONPATH", "")) if p
        )
        env.update(self.env)
        issued = time.time()
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command(), env=env, stdout=out, stderr=subprocess.STDOUT
            )
        return issued

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the registry names this process and `GET /v1/ready` answers 200."""
        from swarmperf.service import registry

        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"swarmperf serve exited with {self.proc.returncode}:\n{tail(self.log_path)}"
                )
            entry = registry.ready(self.data_dir, self.swarm_id, self.proc.pid)
            if entry is not None:
                self.url, self.token = entry.url, entry.token()
                return
            time.sleep(0.02)
        raise RuntimeError(
            f"swarmperf serve not ready within {timeout:g} s:\n{tail(self.log_path)}"
        )

    def start(self, timeout: float = 60.0) -> float:
        issued = self.launch()
        self.wait_ready(timeout)
        return issued

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (a graceful stop: drain, record the run's end); SIGKILL if it hangs."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        return proc.returncode


# -- the crash benchmark's handler ----------------------------------------------------------

_run_log_fd: int | None = None


async def logged_sleep(payload: Any, agent: Any) -> str:
    """Note the task's key in the run log, then sleep `payload["s"]` seconds.

    One unbuffered `write` per run with O_APPEND: a line written survives `kill -9` of the
    service (it is in the kernel), so the log counts every start, reruns included."""
    global _run_log_fd
    if _run_log_fd is None:
        _run_log_fd = os.open(os.environ[RUN_LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    key = str(payload["key"])
    os.write(_run_log_fd, f"{key}\n".encode())
    await asyncio.sleep(float(payload["s"]))
    return key


CRASH_HANDLERS: dict[str, Any] = {"logged-sleep": logged_sleep}

"""Service throughput: no-op tasks end to end through `swarmperf serve`, against Celery 5.

Ours: `swarmperf serve` with 2 local agents (concurrency 1 each), started as a user starts
it, driven over HTTP by `swarmperf.client.SwarmClient`. End to end means submitted over
HTTP, run by an agent, and the result recorded and read back (`GET /v1/results`).

- `tasks_per_s`: n tasks submitted 1,000 per request (`submit_many`), then every result
  collected; clock from the first request to the last result.
- `single_tasks_per_s`: n tasks, one request each, from 32 concurrent clients (each a
  SwarmClient of its own, as 32 programs would have); then every result collected. Also,
  once, `single_shared_client_tasks_per_s`: one SwarmClient shared by 32 senders.
- `p99_ms`: open loop at an offered 500 tasks/s for 10 s, 3 times (`--quick`: 3 s,
  twice), one task per request from `SyncSwarmClient.submit` in one thread, results heard
  by a thread reading `GET /v1/results/stream`: the shape of Celery's side (`apply_async`
  in one thread, a subscriber thread). Latency runs from the moment a task was due to be
  sent (so a slow sender counts against it) to the moment its result reached the reader.
- `plain_http_p99_ms` (a diagnostic): the same open loop with the standard library's
  `http.client` in place of the client package, which tells the service's own latency
  from the client's cost per request in this process.
- `cpu_us_per_task`: CPU per task on each side (this process; the service, or Celery's
  workers and redis-server), to tell a slow service from a slow load generator.

The peer: Celery 5 with Redis (a child `redis-server`, no persistence) as broker and result
backend, and 2 prefork worker processes, in the same run on the same machine. The same n
no-op tasks go 1,000 at a time (`apply_async` each, in a `ResultSet` per 1,000, then
`join_native()` on each set: real completion, results read from the backend), and the same
open-loop latency run (`apply_async` per task; a result is available when the backend
publishes it, heard by a subscriber).

Repeats go round Celery, ours in batches and ours one by one, in turn; figures are medians.
Goals: `ratio` (ours / Celery, batch) >= 5 and `p99_ms` <= `celery_p99_ms`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    RunSettings,
    compiled_core,
    emit,
    log,
    median,
    package_versions,
    parse_args,
    python_version,
    spread,
)
from _service_peers import (
    CELERY_NOOP,
    CELERY_SETTINGS,
    CELERY_WORKER_FLAGS,
    CeleryWorkers,
    RedisServer,
    ServedSwarm,
    make_celery_app,
    tail,
    tree_cpu_s,
    write_spec,
)

if TYPE_CHECKING:
    from swarmperf.client import SwarmClient

SWARM_ID = "bench"
AGENTS = ({"id": "a1", "concurrency": 1}, {"id": "a2", "concurrency": 1})
# The spec's own default: what a user gets without choosing. `--strategy` picks another.
DEFAULT_STRATEGY = "capacity-aware"
BATCH = 1000
CLIENTS = 32
SHARED_N = 1000  # at most, in the diagnostic run with one client shared by CLIENTS senders
OFFERED_PER_S = 500.0
CELERY_WORKERS = 2
RATIO_GOAL = 5.0
HEADLINE = (
    "tasks_per_s",
    "single_tasks_per_s",
    "celery_tasks_per_s",
    "ratio",
    "p99_ms",
    "celery_p99_ms",
)
WAIT_S = 120.0  # the longest any collection waits before calling the run broken
LATENCY_WAIT_S = 60.0  # after the last send; results later than this count as missing

INSTALL_HOWTO = (
    "This benchmark needs redis-server and Celery 5 with its Redis extra:\n"
    "  apt-get install redis-server\n"
    "  pip install 'celery[redis]>=5.3'   # in the benchmark's environment"
)


# -- Celery -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """One timed run: tasks per second, and the CPU it took on each side."""

    per_s: float
    client_cpu_s: float  # this process: the sending and the collecting
    peer_cpu_s: float  # the service (ours), or the workers and redis-server (Celery)
    n: int


class CeleryPeer:
    """The sending side of Celery: the app, the no-op task, and the processes it runs on."""

    def __init__(self, redis_url: str, pids: Sequence[int]) -> None:
        self.app = make_celery_app(redis_url)
        self.noop = self.app.tasks[CELERY_NOOP]
        self.redis_url = redis_url
        self.pids = list(pids)

    def batch_run(self, n: int) -> Point:
        """`n` no-op tasks sent BATCH at a time, every result got.

        Each batch is BATCH `apply_async` calls collected in a `ResultSet`; every set is
        then joined (`join_native`: results as the backend publishes them). Measured here,
        this is faster than `group(...).apply_async()`, so it is the one used."""
        from celery.result import ResultSet

        gc.collect()
        cpu, peer_cpu = time.process_time(), tree_cpu_s(self.pids)
        started = time.perf_counter()
        sets = [
            ResultSet([self.noop.apply_async() for _ in range(min(BATCH, n - first))])
            for first in range(0, n, BATCH)
        ]
        got = 0
        for results in sets:
            got += len(results.join_native(timeout=WAIT_S))
        elapsed = time.perf_counter() - started
        point = Point(n / elapsed, time.process_time() - cpu, tree_cpu_s(self.pids) - peer_cpu, n)
        for results in sets:
            results.forget()  # keep Redis small between repeats
        if got != n:
            raise RuntimeError(f"Celery returned {got} results for {n} tasks")
        return point

    def latency_run(self, rate: float, duration: float) -> dict[str, Any]:
        """Open loop: `apply_async` one task every 1/rate s; a result is available when the
        backend publishes it (Celery's Redis backend publishes every stored result on a
        channel named after its key), heard by a subscriber thread."""
        import redis

        n = max(1, round(rate * duration))
        prefix = "celery-task-meta-"
        arrived: dict[str, float] = {}
        client = redis.Redis.from_url(self.redis_url)
        pubsub = client.pubsub()
        pubsub.psubscribe(f"{prefix}*")
        # The confirmation says the subscription is in place before the first task goes.
        confirmed = pubsub.get_message(timeout=5.0)
        if confirmed is None or confirmed["type"] != "psubscribe":
            raise RuntimeError(f"PSUBSCRIBE was not confirmed: {confirmed!r}")
        stop = threading.Event()

        def listen() -> None:
            while not stop.is_set():
                message = pubsub.get_message(timeout=0.05)
                if message is not None and message["type"] == "pmessage":
                    channel = message["channel"].decode()
                    arrived[channel[len(prefix) :]] = time.perf_counter()

        listener = threading.Thread(target=listen, name="celery-results", daemon=True)
        listener.start()
        due: dict[str, float] = {}
        results = []
        try:
            start = time.perf_counter() + 0.05
            for i in range(n):
                at = start + i / rate
                delay = at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                result = self.noop.apply_async()
                due[result.id] = at
                results.append(result)
            deadline = time.monotonic() + LATENCY_WAIT_S
            while len(arrived.keys() & due.keys()) < n and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            stop.set()
            listener.join(timeout=5)
            pubsub.close()
            client.close()
        for result in results:
            result.forget()
        return _latency_figures(due, arrived, duration)


# -- ours ---------------------------------------------------------------------------------


class OursPeer:
    """The client side of `swarmperf serve`: SwarmClients and the results cursor.

    One client submits the batches and reads the results; the one-per-request runs use
    CLIENTS clients, one each (each a connection of its own, as separate programs would
    have), and once, as a diagnostic, one client shared by CLIENTS coroutines."""

    def __init__(self, served: ServedSwarm) -> None:
        from swarmperf.client import SwarmClient

        assert served.proc is not None
        self.pids = [served.proc.pid]

        def client() -> SwarmClient:
            return SwarmClient(SWARM_ID, data_dir=served.data_dir, timeout=WAIT_S)

        self.client = client()
        self.pool = [client() for _ in range(CLIENTS)]
        self.cursor = 0

    async def aclose(self) -> None:
        for client in (self.client, *self.pool):
            await client.aclose()

    async def _collect(self, ids: set[str]) -> None:
        """Read `GET /v1/results` from the cursor until every id in `ids` has come by."""
        deadline = time.monotonic() + WAIT_S
        while ids:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ids)} results never came within {WAIT_S:g} s")
            outcomes, self.cursor = await self.client.results(
                after=self.cursor, limit=10_000, wait=5.0
            )
            for outcome in outcomes:
                ids.discard(outcome.id)
                if outcome.status != "succeeded":
                    raise RuntimeError(f"task {outcome.id} {outcome.status}: {outcome.error}")

    def _marks(self) -> tuple[float, float, float]:
        gc.collect()
        return time.process_time(), tree_cpu_s(self.pids), time.perf_counter()

    def _point(self, marks: tuple[float, float, float], n: int) -> Point:
        cpu, peer_cpu, started = marks
        elapsed = time.perf_counter() - started
        return Point(n / elapsed, time.process_time() - cpu, tree_cpu_s(self.pids) - peer_cpu, n)

    async def batch_run(self, n: int) -> Point:
        tasks = [{"kind": "noop"} for _ in range(n)]
        marks = self._marks()
        submitted = await self.client.submit_many(tasks, batch=BATCH)
        await self._collect({s.id for s in submitted})
        point = self._point(marks, n)
        if len(submitted) != n or any(s.duplicate for s in submitted):
            raise RuntimeError(f"{len(submitted)} acknowledged for {n} tasks")
        return point

    async def single_run(self, n: int, shared: bool = False) -> Point:
        """`n` tasks, one `submit` each, from CLIENTS concurrent senders (each with a
        client of its own, or all sharing one), then every result collected."""
        ids: set[str] = set()
        left = n

        async def sender(client: SwarmClient) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                ids.add((await client.submit("noop")).id)

        clients = [self.client] * CLIENTS if shared else self.pool
        marks = self._marks()
        await asyncio.gather(*(sender(client) for client in clients))
        await self._collect(set(ids))
        point = self._point(marks, n)
        if len(ids) != n:
            raise RuntimeError(f"{len(ids)} acknowledged for {n} tasks")
        return point

    def latency_run(self, rate: float, duration: float, data_dir: Path) -> dict[str, Any]:
        """Open loop, shaped as Celery's is: `submit` one task every 1/rate s from this
        thread with the sync client (as `apply_async` is), results heard by a reader
        thread on `GET /v1/results/stream` (as Celery's subscriber thread)."""
        from swarmperf.client import SyncSwarmClient

        n = max(1, round(rate * duration))
        arrived: dict[str, float] = {}
        due: dict[str, float] = {}
        opened = threading.Event()
        with (
            SyncSwarmClient(SWARM_ID, data_dir=data_dir, timeout=WAIT_S) as sender,
            SyncSwarmClient(SWARM_ID, data_dir=data_dir, timeout=WAIT_S) as reader,
        ):
            stream = reader.stream(after=self.cursor)

            def listen() -> None:
                opened.set()
                for outcome in stream:
                    arrived[outcome.id] = time.perf_counter()
                    if outcome.cursor is not None:
                        self.cursor = max(self.cursor, outcome.cursor)
                    if len(due) == n and due.keys() <= arrived.keys():
                        return

            listener = threading.Thread(target=listen, name="ours-results", daemon=True)
            listener.start()
            opened.wait(5.0)
            time.sleep(0.2)  # the stream is open before the first task goes
            start = time.perf_counter() + 0.05
            for i in range(n):
                at = start + i / rate
                delay = at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                due[sender.submit("noop").id] = at
            listener.join(LATENCY_WAIT_S)
        return _latency_figures(due, arrived, duration)


def plain_http_latency_run(
    url: str, token: str, rate: float, duration: float, after: int
) -> dict[str, Any]:
    """The same open loop with the standard library's `http.client` on both threads instead
    of the client package: the service's own latency, apart from httpx's CPU cost per
    request in this process (a diagnostic beside `p99_ms`, which goes through the client)."""
    import http.client
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    n = max(1, round(rate * duration))
    arrived: dict[str, float] = {}
    due: dict[str, float] = {}
    reading = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    reading.request("GET", f"/v1/results/stream?after={after}", headers=headers)
    stream = reading.getresponse()

    def listen() -> None:
        while len(due) < n or not due.keys() <= arrived.keys():
            line = stream.readline()
            if not line:
                return
            if line.strip():
                arrived[json.loads(line)["id"]] = time.perf_counter()

    listener = threading.Thread(target=listen, name="plain-results", daemon=True)
    listener.start()
    sending = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    body = b'{"kind":"noop"}'
    try:
        time.sleep(0.2)
        start = time.perf_counter() + 0.05
        for i in range(n):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sending.request("POST", "/v1/tasks", body, headers)
            due[json.loads(sending.getresponse().read())["id"]] = at
        listener.join(LATENCY_WAIT_S)
    finally:
        sending.close()
        reading.close()
    return _latency_figures(due, arrived, duration)


# -- figures ------------------------------------------------------------------------------


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest rank: the value below which a fraction q of the samples fall."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _latency_figures(
    due: dict[str, float], arrived: dict[str, float], duration: float
) -> dict[str, Any]:
    latencies = sorted((arrived[i] - at) * 1000 for i, at in due.items() if i in arrived)
    missing = len(due) - len(latencies)
    if not latencies:
        return {
            "p50_ms": None,
            "p99_ms": None,
            "max_ms": None,
            "sent": len(due),
            "missing": missing,
        }
    return {
        "p50_ms": round(_percentile(latencies, 0.50), 3),
        "p99_ms": round(_percentile(latencies, 0.99), 3),
        "max_ms": round(latencies[-1], 3),
        "sent": len(due),
        "missing": missing,
        "duration_s": duration,
    }


def _versions() -> dict[str, str | None]:
    versions = package_versions(
        "swarmperf", "celery", "kombu", "redis", "httpx", "uvicorn", "fastapi"
    )
    binary = shutil.which("redis-server")
    if binary:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        words = [w for w in out.stdout.split() if w.startswith("v=")]
        versions["redis-server"] = words[0][2:] if words else out.stdout.strip()
    else:
        versions["redis-server"] = None
    return versions


def _missing() -> str | None:
    """What is missing for the peer, or None."""
    lacking = []
    if shutil.which("redis-server") is None:
        lacking.append("redis-server is not on PATH")
    for module in ("celery", "redis"):
        try:
            importlib.import_module(module)
        except ImportError:
            lacking.append(f"the Python package {module!r} cannot be imported")
    return "; ".join(lacking) or None


# -- the run ------------------------------------------------------------------------------


async def _ours_round(ours: OursPeer, n: int) -> tuple[Point, Point]:
    return await ours.batch_run(n), await ours.single_run(n)


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep this process's older objects out of the collector's way for a latency run:
    a full collection of the sender's heap would stall every send at once, on either side."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _cpu_us(points: Sequence[Point]) -> dict[str, float]:
    """Median CPU microseconds per task, on each side."""
    return {
        "client": round(median([p.client_cpu_s / p.n * 1e6 for p in points]), 1),
        "peer": round(median([p.peer_cpu_s / p.n * 1e6 for p in points]), 1),
    }


def _rates(points: Sequence[Point]) -> list[float]:
    return [p.per_s for p in points]


def _run(
    settings: RunSettings, strategy: str, latency_s: float, latency_repeats: int, workdir: Path
) -> dict[str, Any]:
    n, repeats = settings.n, settings.repeats
    redis_server = RedisServer(workdir)
    workers: CeleryWorkers | None = None
    served: ServedSwarm | None = None
    loop = asyncio.new_event_loop()
    ours: OursPeer | None = None
    serve_exit: int | None = None
    try:
        redis_url = redis_server.start()
        workers = CeleryWorkers(redis_url, workdir, concurrency=CELERY_WORKERS)
        workers.start()
        spec = write_spec(workdir / "swarm.yaml", SWARM_ID, strategy, AGENTS)
        data_dir = workdir / "data"
        data_dir.mkdir()
        served = ServedSwarm(spec, SWARM_ID, data_dir)
        served.start()
        log(f"swarmperf serve ready at {served.url} (strategy {strategy})")
        assert workers.proc is not None
        assert redis_server.proc is not None
        celery = CeleryPeer(redis_url, [workers.proc.pid, redis_server.proc.pid])
        celery.batch_run(min(n, BATCH // 2))  # warm-up: the workers answer, imports done
        workers.check()
        log("Celery workers ready")
        ours = OursPeer(served)
        loop.run_until_complete(_ours_round(ours, min(n, BATCH)))

        celery_points: list[Point] = []
        batch_points: list[Point] = []
        single_points: list[Point] = []
        # Repeats go round every configuration in turn, so that a noisy spell on this
        # shared machine spreads over all of them instead of skewing one.
        for r in range(repeats):
            celery_points.append(celery.batch_run(n))
            batch, single = loop.run_until_complete(_ours_round(ours, n))
            batch_points.append(batch)
            single_points.append(single)
            log(
                f"repeat {r + 1}/{repeats}: ours batch {batch.per_s:8.0f}/s, ours single "
                f"{single.per_s:7.0f}/s, Celery batch {celery_points[-1].per_s:7.0f}/s"
            )
        shared = loop.run_until_complete(ours.single_run(min(n // 4, SHARED_N), shared=True))
        log(f"ours single, one client shared by {CLIENTS} senders: {shared.per_s:.0f}/s")
        ours_latency: list[dict[str, Any]] = []
        celery_latency: list[dict[str, Any]] = []
        plain_latency: list[dict[str, Any]] = []
        for r in range(latency_repeats):
            with _frozen_heap():
                celery_latency.append(celery.latency_run(OFFERED_PER_S, latency_s))
            with _frozen_heap():
                ours_latency.append(ours.latency_run(OFFERED_PER_S, latency_s, served.data_dir))
                plain_latency.append(
                    plain_http_latency_run(
                        served.url, served.token, OFFERED_PER_S, latency_s, ours.cursor
                    )
                )
            log(
                f"latency {r + 1}/{latency_repeats} at {OFFERED_PER_S:g}/s: "
                f"ours {ours_latency[-1]}, ours over plain HTTP {plain_latency[-1]}, "
                f"Celery {celery_latency[-1]}"
            )
        workers.check()
    finally:
        if ours is not None:
            loop.run_until_complete(ours.aclose())
        loop.close()
        if served is not None:
            died = served.proc is not None and served.proc.poll() is not None
            serve_exit = served.stop()
            if died:
                log(f"swarmperf serve had exited ({serve_exit}):\n{tail(served.log_path, 40)}")
        if workers is not None:
            workers.stop()
        redis_server.stop()

    batch_rates, single_rates = _rates(batch_points), _rates(single_points)
    celery_rates = _rates(celery_points)
    log("\ntasks per second: median [min-max]")
    log(f"  ours, batches of {BATCH:<7}{spread(batch_rates)}")
    log(f"  ours, one per request  {spread(single_rates)}")
    log(f"  Celery, sets of {BATCH:<8}{spread(celery_rates)}")
    tasks_per_s = median(batch_rates)
    celery_per_s = median(celery_rates)
    ratio = tasks_per_s / celery_per_s
    p99 = _median_of(ours_latency, "p99_ms")
    celery_p99 = _median_of(celery_latency, "p99_ms")
    goals = {
        f"ratio>={RATIO_GOAL:g}": ratio >= RATIO_GOAL,
        "p99<=celery": p99 is not None and celery_p99 is not None and p99 <= celery_p99,
    }
    return {
        "tasks_per_s": round(tasks_per_s, 1),
        "single_tasks_per_s": round(median(single_rates), 1),
        "celery_tasks_per_s": round(celery_per_s, 1),
        "ratio": round(ratio, 3),
        "p99_ms": p99,
        "celery_p99_ms": celery_p99,
        "p50_ms": _median_of(ours_latency, "p50_ms"),
        "celery_p50_ms": _median_of(celery_latency, "p50_ms"),
        "plain_http_p99_ms": _median_of(plain_latency, "p99_ms"),
        "plain_http_p50_ms": _median_of(plain_latency, "p50_ms"),
        "goals": goals,
        "goals_met": all(goals.values()),
        "single_shared_client_tasks_per_s": round(shared.per_s, 1),
        "cpu_us_per_task": {
            "ours_batch": _cpu_us(batch_points),
            "ours_single": _cpu_us(single_points),
            "ours_single_shared_client": _cpu_us([shared]),
            "celery_batch": _cpu_us(celery_points),
            "sides": "client: this process (sending and collecting); peer: the service "
            "process (ours), or the Celery worker tree and redis-server",
        },
        "samples": {
            "tasks_per_s": [round(x, 1) for x in batch_rates],
            "single_tasks_per_s": [round(x, 1) for x in single_rates],
            "celery_tasks_per_s": [round(x, 1) for x in celery_rates],
            "latency": ours_latency,
            "celery_latency": celery_latency,
        },
        "serve_exit_code": serve_exit,
    }


def _median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(median(values), 3) if values else None


def _settings_figures(
    settings: RunSettings, strategy: str, latency_s: float, latency_repeats: int
) -> dict[str, Any]:
    return {
        "n_tasks": settings.n,
        "repeats": settings.repeats,
        "quick": settings.quick,
        "batch": BATCH,
        "single_clients": CLIENTS,
        "offered_per_s": OFFERED_PER_S,
        "latency_duration_s": latency_s,
        "latency_repeats": latency_repeats,
        "latency_from": "the moment each task was due to be sent (open loop)",
        "ours": {
            "command": "swarmperf serve swarm.yaml --swarm-id bench --data-dir DIR --port 0",
            "backend": "local",
            "agents": [dict(a) for a in AGENTS],
            "strategy": strategy,
            "client": f"swarmperf.client.SwarmClient (httpx) in this process: one for the "
            f"batches and for reading results, {CLIENTS} for the one-per-request runs and the "
            "latency run's sends",
            "results_read_from": "GET /v1/results (batch, single); GET /v1/results/stream "
            "(latency)",
        },
        "celery": {
            "broker": "redis",
            "result_backend": "redis",
            "pool": "prefork",
            "concurrency": CELERY_WORKERS,
            "worker_flags": list(CELERY_WORKER_FLAGS),
            "settings": CELERY_SETTINGS,
            "send": f"apply_async per task, a ResultSet per {BATCH}, then join_native() on "
            "each set (faster here than group(...).apply_async())",
            "latency_results_from": "PSUBSCRIBE celery-task-meta-* (the backend publishes "
            "each result as it stores it)",
        },
    }


def main() -> None:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--strategy", default=DEFAULT_STRATEGY)
    known, rest = extra.parse_known_args()
    settings = parse_args(
        (__doc__ or "") + f"\n--strategy NAME: ours' strategy (default {DEFAULT_STRATEGY})",
        n=20_000,
        repeats=5,
        quick_n=2_500,
        quick_repeats=3,
        argv=rest,
    )
    latency_s = 3.0 if settings.quick else 10.0
    latency_repeats = 2 if settings.quick else 3
    started = time.perf_counter()
    figures: dict[str, Any] = {"benchmark": "service_throughput"}
    missing = _missing()
    exit_code = 0
    if missing is not None:
        log(f"Celery peer not available: {missing}\n{INSTALL_HOWTO}")
        figures.update(dict.fromkeys(HEADLINE))
        figures.update({"reason": f"{missing}. {INSTALL_HOWTO}", "goals_met": False})
        exit_code = 2
    else:
        log(
            f"{settings.n:,} no-op tasks per point, {settings.repeats} repeats; latency at "
            f"{OFFERED_PER_S:g}/s for {latency_s:g} s x {latency_repeats}; {python_version()}"
        )
        try:
            with tempfile.TemporaryDirectory(prefix="swarmperf-service-") as tmp:
                figures.update(
                    _run(settings, known.strategy, latency_s, latency_repeats, Path(tmp))
                )
        except Exception as exc:  # still end with the JSON line, saying what broke
            traceback.print_exc()
            figures.update(dict.fromkeys(HEADLINE))
            figures.update({"error": f"{type(exc).__name__}: {exc}", "goals_met": False})
            exit_code = 1
        else:
            log(
                f"\nratio ours/Celery (batch) {figures['ratio']:.2f}, goal >= {RATIO_GOAL:g};"
                f" p99 {figures['p99_ms']} ms vs Celery {figures['celery_p99_ms']} ms"
            )
    figures.update(
        {
            "settings": _settings_figures(settings, known.strategy, latency_s, latency_repeats),
            "versions": _versions(),
            "compiled": compiled_core(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "wall_s": round(time.perf_counter() - started, 1),
        }
    )
    emit(figures)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()

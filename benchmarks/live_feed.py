"""Live feed: what dashboards watching a served swarm cost the swarm, and how late they hear.

`swarmperf serve` with 4 local agents runs no-op tasks offered at 5,000/s (`-n` sets another
rate): batches of 250 every 50 ms through `SwarmClient.submit_many`, open loop (a batch goes
when it is due, whether or not the one before was answered, up to 16 unanswered), from a
separate process. Meanwhile 0, 1, 10
or 50 WebSocket clients watch `/v1/live`: plain `websockets` clients, all in one separate
process, each sending the token in its first message and then reading every message.

Each point: the watchers connect (and have their `hello`), the load starts, a warm-up, then
the measured window, then the load stops and the swarm drains before the next point.

- `throughput_per_s`: per number of watchers, results recorded per second over the
  measured window (the service's count of recorded results, read at both ends), median of
  the repeats. While the swarm keeps up this is the offered rate; a feed that costs the
  swarm too much shows as a lower one.
- `slowdown_50_clients`: throughput with no watcher / throughput with 50 watchers, so that
  above 1 means slower with watchers (the issue's "with 50 / with none", turned over).
- `feed_lag_p99_ms`: with 50 watchers, each live `metrics` message's `ts` to its arrival
  at a watcher (time.time() on both sides: one machine); the p99 across every watcher of a
  window, median of the repeats. Per number of watchers under `feed_lag_ms`, with the p99
  of every repeat and of all of them pooled. The watchers of a window hear the same
  messages, so its p99 is in effect the latest of its few intervals: one stall of the
  machine in a window sets it.
- `rss_mb_50_clients`: the service's resident memory at the end of a window with 50
  watchers (median of the repeats); per number of watchers under `rss_mb`.
- Diagnostics: the service's CPU per task (`service_cpu_us_per_task`: what the watchers
  cost shows here first, while the swarm still keeps up), the rate the driver really
  offered, watchers dropped as too slow (closed with 4408) or closed otherwise.

Repeats go round the numbers of watchers in a rotated order, so that a noisy spell on this
shared machine does not fall on one of them only. Goals: slowdown <= 1.05 and feed lag
p99 <= 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

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
)
from _service_peers import ServedSwarm, tail, tree_cpu_s, write_spec

SWARM_ID = "feed"
AGENTS = tuple({"id": f"a{i}", "concurrency": 1} for i in range(1, 5))
STRATEGY = "capacity-aware"  # the spec's default
WATCHERS = (0, 1, 10, 50)
RATE_PER_S = 5000.0
BATCH = 250
MAX_IN_FLIGHT = 16  # batches the driver may have unanswered before it waits
SLOWDOWN_GOAL = 1.05
LAG_GOAL_MS = 250.0
CONNECT_WITHIN_S = 60.0
DRAIN_WITHIN_S = 120.0
HEADLINE = ("throughput_per_s", "slowdown_50_clients", "feed_lag_p99_ms", "rss_mb_50_clients")


# -- the driver: a separate process offering the load ---------------------------------------


async def _drive(data_dir: Path, rate: float, seconds: float) -> dict[str, Any]:
    """Offer `rate` no-op tasks a second for `seconds`, BATCH at a time, open loop."""
    from swarmperf.client import SwarmClient

    every = BATCH / rate
    batches = max(1, round(seconds / every))
    acknowledged = 0
    errors: list[str] = []
    late = 0  # batches sent later than due, because MAX_IN_FLIGHT were unanswered
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    async with SwarmClient(SWARM_ID, data_dir=data_dir, timeout=60.0) as client:

        async def send() -> None:
            nonlocal acknowledged
            try:
                receipts = await client.submit_many(
                    [{"kind": "noop"} for _ in range(BATCH)], batch=BATCH
                )
                acknowledged += len(receipts)
            except Exception as exc:  # reported, not raised: the point says what happened
                errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                slots.release()

        pending: set[asyncio.Task[None]] = set()
        print("sending", flush=True)
        start = time.perf_counter()
        for i in range(batches):
            delay = start + i * every - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            if time.perf_counter() - (start + i * every) > every:
                late += 1
            job = asyncio.create_task(send())
            pending.add(job)
            job.add_done_callback(pending.discard)
        sent_for = time.perf_counter() - start
        await asyncio.gather(*pending)
    return {
        "offered": batches * BATCH,
        "acknowledged": acknowledged,
        "offered_per_s": round(batches * BATCH / sent_for, 1),
        "late_batches": late,
        "errors": errors[:5],
        "error_count": len(errors),
    }


# -- the watchers: a separate process holding N WebSocket clients ---------------------------


@dataclass
class Watcher:
    """One WebSocket client: when each live metrics message arrived, and how late."""

    lags: list[tuple[float, float]] = field(default_factory=list)  # (arrival, lag ms)
    messages: int = 0
    hello_seq: int | None = None
    close_code: int | None = None
    close_reason: str = ""
    error: str | None = None


async def _watch(
    url: str, token: str, watcher: Watcher, connected: asyncio.Event, stop: asyncio.Event
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    try:
        async with connect(url, max_size=None, open_timeout=CONNECT_WITHIN_S) as socket:
            await socket.send(json.dumps({"token": token, "after": None}))
            reading = asyncio.ensure_future(_read(socket, watcher, connected))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not reading.done():
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await reading
            elif (failed := reading.exception()) is not None:
                raise failed
            watcher.close_code = socket.close_code
            watcher.close_reason = socket.close_reason or ""
    except ConnectionClosed as exc:
        watcher.close_code = exc.rcvd.code if exc.rcvd is not None else None
        watcher.close_reason = exc.rcvd.reason if exc.rcvd is not None else ""
    except Exception as exc:
        watcher.error = f"{type(exc).__name__}: {exc}"
    finally:
        connected.set()  # a watcher that failed to connect must not hold the others up


async def _read(socket: Any, watcher: Watcher, connected: asyncio.Event) -> None:
    async for raw in socket:
        arrived = time.time()
        message = json.loads(raw)
        watcher.messages += 1
        kind = message.get("type")
        if kind == "hello":
            watcher.hello_seq = int(message["seq"])
            connected.set()
        elif (
            kind == "metrics"
            and watcher.hello_seq is not None
            and message["seq"] > watcher.hello_seq  # live, not the backlog
        ):
            watcher.lags.append((arrived, (arrived - float(message["ts"])) * 1000))


async def _watchers(data_dir: Path, count: int) -> dict[str, Any]:
    """Connect `count` clients, say "ready" on stdout, read until a line on stdin, report."""
    from swarmperf.service import registry

    entry = registry.find(data_dir, SWARM_ID)
    url = entry.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/v1/live"
    token = entry.token()
    stop = asyncio.Event()
    watchers = [Watcher() for _ in range(count)]
    events = [asyncio.Event() for _ in range(count)]
    jobs = [
        asyncio.create_task(_watch(url, token, w, e, stop))
        for w, e in zip(watchers, events, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), CONNECT_WITHIN_S)
    print(f"ready {sum(w.hello_seq is not None for w in watchers)}", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    stop.set()
    await asyncio.gather(*jobs)
    codes: dict[str, int] = {}
    for w in watchers:
        if w.close_code is not None and w.close_code != 1000:
            codes[str(w.close_code)] = codes.get(str(w.close_code), 0) + 1
    return {
        "clients": count,
        "hello": sum(w.hello_seq is not None for w in watchers),
        "messages": sum(w.messages for w in watchers),
        "lags": [lag for w in watchers for lag in w.lags],
        "closed": codes,
        "reasons": sorted({w.close_reason for w in watchers if w.close_reason})[:3],
        "errors": sorted({w.error for w in watchers if w.error})[:3],
    }


# -- the orchestra ----------------------------------------------------------------------------


def _child(role: str, data_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--role", role, "--data-dir", str(data_dir), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _line(stream: IO[str] | None, expected: str, proc: subprocess.Popen[str]) -> str:
    assert stream is not None
    line = stream.readline()
    if not line.startswith(expected):
        proc.kill()
        raise RuntimeError(f"expected {expected!r} from a child process, got {line!r}")
    return line


def _last_json(proc: subprocess.Popen[str], within: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=within)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"a child process exited {proc.returncode}: {out[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass
class Point:
    """One measured window with `watchers` clients."""

    watchers: int
    per_s: float
    cpu_us_per_task: float
    rss_mb: float
    lags_ms: list[float]
    driver: dict[str, Any]
    feed: dict[str, Any]


class Bench:
    """The served swarm and a client of its HTTP API for the counts."""

    def __init__(self, served: ServedSwarm, rate: float) -> None:
        import httpx

        self.served = served
        self.rate = rate
        assert served.proc is not None
        self.pid = served.proc.pid
        self.http = httpx.Client(
            base_url=served.url, headers={"Authorization": f"Bearer {served.token}"}, timeout=30
        )

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get("/v1/status").json()
        return answer

    def drain(self) -> None:
        """Until every accepted task has its result recorded."""
        give_up = time.monotonic() + DRAIN_WITHIN_S
        while self.status()["pending"] > 0:
            if time.monotonic() > give_up:
                raise RuntimeError(f"the swarm did not drain within {DRAIN_WITHIN_S:g} s")
            time.sleep(0.1)

    def rss_mb(self) -> float:
        import psutil

        return float(psutil.Process(self.pid).memory_info().rss) / 2**20

    def point(self, watchers: int, warm_s: float, measure_s: float) -> Point:
        data_dir = self.served.data_dir
        feed_proc = None
        if watchers:
            feed_proc = _child("watch", data_dir, "--clients", str(watchers))
            ready = int(_line(feed_proc.stdout, "ready", feed_proc).split()[1])
            if ready != watchers:
                log(f"  only {ready} of {watchers} watchers had their hello")
        seconds = str(warm_s + measure_s + 1.0)
        driver = _child("drive", data_dir, "--seconds", seconds, "--rate", str(self.rate))
        try:
            _line(driver.stdout, "sending", driver)
            time.sleep(warm_s)
            before, t0, cpu0 = self.status()["finished"], time.time(), tree_cpu_s([self.pid])
            time.sleep(measure_s)
            after, t1, cpu1 = self.status()["finished"], time.time(), tree_cpu_s([self.pid])
            rss = self.rss_mb()
            driven = _last_json(driver, DRAIN_WITHIN_S)
        finally:
            if driver.poll() is None:
                driver.kill()
        feed: dict[str, Any] = {"clients": 0, "lags": []}
        if feed_proc is not None:
            assert feed_proc.stdin is not None
            feed_proc.stdin.write("stop\n")
            feed_proc.stdin.flush()
            feed = _last_json(feed_proc, 60)
        lags = [lag for arrived, lag in feed.pop("lags") if t0 <= arrived <= t1]
        done = after - before
        self.drain()
        return Point(
            watchers=watchers,
            per_s=done / (t1 - t0),
            cpu_us_per_task=(cpu1 - cpu0) / max(done, 1) * 1e6,
            rss_mb=rss,
            lags_ms=lags,
            driver=driven,
            feed=feed,
        )

    def close(self) -> None:
        self.http.close()


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest rank: the value below which a fraction q of the samples fall."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _run(settings: RunSettings, warm_s: float, measure_s: float, workdir: Path) -> dict[str, Any]:
    spec = write_spec(workdir / "swarm.yaml", SWARM_ID, STRATEGY, AGENTS)
    data_dir = workdir / "data"
    data_dir.mkdir()
    served = ServedSwarm(spec, SWARM_ID, data_dir)
    bench: Bench | None = None
    points: dict[int, list[Point]] = {n: [] for n in WATCHERS}
    serve_exit: int | None = None
    try:
        served.start()
        log(f"swarmperf serve ready at {served.url}")
        bench = Bench(served, float(settings.n))
        bench.point(0, 1.0, 1.0)  # warm-up: imports, the store's first pages, the JIT-less paths
        for r in range(settings.repeats):
            order = WATCHERS[r % len(WATCHERS) :] + WATCHERS[: r % len(WATCHERS)]
            for watchers in order:
                point = bench.point(watchers, warm_s, measure_s)
                points[watchers].append(point)
                log(
                    f"repeat {r + 1}/{settings.repeats}, {watchers:2d} watchers: "
                    f"{point.per_s:7.0f} results/s (offered {point.driver['offered_per_s']:.0f}/s"
                    f"), service {point.cpu_us_per_task:5.1f} us CPU/task, "
                    f"RSS {point.rss_mb:5.1f} MB, lag p99 "
                    f"{_rounded(_percentile(point.lags_ms, 0.99))} ms "
                    f"({len(point.lags_ms)} samples) {point.feed.get('closed') or ''}"
                )
    finally:
        if bench is not None:
            bench.close()
        died = served.proc is not None and served.proc.poll() is not None
        serve_exit = served.stop()
        if died:
            log(f"swarmperf serve had exited ({serve_exit}):\n{tail(served.log_path, 40)}")

    def per_count(fn: Any) -> dict[str, Any]:
        return {str(n): fn(points[n]) for n in WATCHERS}

    throughput = per_count(lambda ps: round(median([p.per_s for p in ps]), 1))

    def lag_median(ps: list[Point], q: float) -> float | None:
        """The median over the repeats of each window's percentile across its watchers."""
        found = [v for p in ps if (v := _percentile(p.lags_ms, q)) is not None]
        return _rounded(median(found)) if found else None

    def lag_pooled(ps: list[Point], q: float) -> float | None:
        return _rounded(_percentile([x for p in ps for x in p.lags_ms], q))

    lag_p99 = per_count(lambda ps: lag_median(ps, 0.99))
    slowdown = throughput["0"] / throughput["50"] if throughput["50"] else None
    feed_lag = lag_p99["50"]
    rss_50 = round(median([p.rss_mb for p in points[50]]), 1)
    goals = {
        f"slowdown<={SLOWDOWN_GOAL:g}": slowdown is not None and slowdown <= SLOWDOWN_GOAL,
        f"feed_lag_p99<={LAG_GOAL_MS:g}ms": feed_lag is not None and feed_lag <= LAG_GOAL_MS,
    }
    dropped = sum(
        count for ps in points.values() for p in ps for count in p.feed.get("closed", {}).values()
    )
    return {
        "throughput_per_s": throughput,
        "slowdown_50_clients": _rounded(slowdown, 4),
        "feed_lag_p99_ms": feed_lag,
        "rss_mb_50_clients": rss_50,
        "goals": goals,
        "goals_met": all(goals.values()),
        "slowdown_means": "throughput with 0 watchers / with 50: above 1 is slower with them",
        "feed_lag_ms": {
            "p50": per_count(lambda ps: lag_median(ps, 0.50)),
            "p99": lag_p99,
            "p99_pooled": per_count(lambda ps: lag_pooled(ps, 0.99)),
            "p99_per_repeat": per_count(
                lambda ps: [_rounded(_percentile(p.lags_ms, 0.99)) for p in ps]
            ),
            "max": per_count(
                lambda ps: _rounded(max((x for p in ps for x in p.lags_ms), default=None))
            ),
            "samples": per_count(lambda ps: sum(len(p.lags_ms) for p in ps)),
        },
        "rss_mb": per_count(lambda ps: round(median([p.rss_mb for p in ps]), 1)),
        "service_cpu_us_per_task": per_count(
            lambda ps: round(median([p.cpu_us_per_task for p in ps]), 1)
        ),
        "offered_per_s": per_count(
            lambda ps: round(median([p.driver["offered_per_s"] for p in ps]), 1)
        ),
        "watchers_dropped": dropped,
        "driver_errors": sum(p.driver["error_count"] for ps in points.values() for p in ps),
        "samples": {
            "throughput_per_s": per_count(lambda ps: [round(p.per_s, 1) for p in ps]),
            "feeds": per_count(lambda ps: [p.feed for p in ps]),
        },
        "serve_exit_code": serve_exit,
    }


def _child_main(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir)
    if args.role == "drive":
        result = asyncio.run(_drive(data_dir, args.rate, args.seconds))
    else:
        result = asyncio.run(_watchers(data_dir, args.clients))
    print(json.dumps(result), flush=True)


def main() -> None:
    roles = argparse.ArgumentParser(add_help=False)
    roles.add_argument("--role", choices=("drive", "watch"))
    roles.add_argument("--data-dir")
    roles.add_argument("--seconds", type=float, default=0.0)
    roles.add_argument("--clients", type=int, default=0)
    roles.add_argument("--rate", type=float, default=RATE_PER_S)
    known, rest = roles.parse_known_args()
    if known.role is not None:
        _child_main(known)
        return
    # -n is the offered rate here: tasks per second.
    settings = parse_args(
        (__doc__ or "") + "\n-n: the offered rate, tasks per second",
        n=int(RATE_PER_S),
        repeats=3,
        quick_n=int(RATE_PER_S),
        quick_repeats=1,
        argv=rest,
    )
    warm_s, measure_s = (2.0, 4.0) if settings.quick else (3.0, 10.0)
    started = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    figures: dict[str, Any] = {"benchmark": "live_feed"}
    exit_code = 0
    log(
        f"{settings.n:,} no-op tasks/s offered, watchers {list(WATCHERS)}, "
        f"{settings.repeats} repeat(s) of {warm_s:g} s warm-up + {measure_s:g} s measured; "
        f"{python_version()}"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="swarmperf-feed-") as tmp:
            figures.update(_run(settings, warm_s, measure_s, Path(tmp)))
    except Exception as exc:  # still end with the JSON line, saying what broke
        traceback.print_exc()
        figures.update(dict.fromkeys(HEADLINE))
        figures.update({"error": f"{type(exc).__name__}: {exc}", "goals_met": False})
        exit_code = 1
    else:
        log(
            f"\nslowdown with 50 watchers {figures['slowdown_50_clients']} (goal <= "
            f"{SLOWDOWN_GOAL:g}); feed lag p99 {figures['feed_lag_p99_ms']} ms (goal <= "
            f"{LAG_GOAL_MS:g}); RSS with 50 {figures['rss_mb_50_clients']} MB"
        )
    figures.update(
        {
            "settings": {
                "quick": settings.quick,
                "repeats": settings.repeats,
                "warm_up_s": warm_s,
                "measured_s": measure_s,
                "offered_per_s": settings.n,
                "batch": BATCH,
                "watchers": list(WATCHERS),
                "agents": [dict(a) for a in AGENTS],
                "strategy": STRATEGY,
                "task": "noop",
                "command": "swarmperf serve swarm.yaml --swarm-id feed --data-dir DIR --port 0",
                "driver": "SwarmClient.submit_many in a separate process, open loop",
                "watchers_run": "websockets clients in one separate process",
            },
            "versions": package_versions("swarmperf", "websockets", "uvicorn", "fastapi", "httpx"),
            "compiled": compiled_core(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "wall_s": round(time.perf_counter() - started, 1),
        }
    )
    emit(figures)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()

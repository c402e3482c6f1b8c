"""A target that accepts connections and never answers: bounded time, and an honest exit.

The server is a real socket on 127.0.0.1 that accepts every connection and holds it,
reading what it is sent and never writing a byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from swarmperf.bench.loadgen import HttpTarget, arrival_offsets, run_closed, run_open, steady
from swarmperf.bench.results import load_result
from swarmperf.cli.main import app

runner = CliRunner(env={"COLUMNS": "200"})


class Silent:
    """Accepts and holds connections; counts those the client has closed."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.closed = 0
        self.changed = threading.Condition()
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # the listening socket was closed
                return
            with self.changed:
                self.accepted += 1
            holder = threading.Thread(target=self._hold, args=(conn,), daemon=True)
            holder.start()
            self.threads.append(holder)

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            try:
                while conn.recv(65536):
                    pass  # read the request, never answer
            except OSError:
                pass
        with self.changed:
            self.closed += 1
            self.changed.notify_all()

    def wait_all_closed(self, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.closed == self.accepted, timeout)

    def close(self) -> None:
        # Shutting the listening socket down wakes the blocked accept(); closing would not.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


def test_requests_to_a_silent_target_time_out_and_fail(silent: Silent) -> None:
    async def main() -> tuple[float, object]:
        target = HttpTarget(silent.url, timeout=0.5)
        await target.open()
        try:
            offsets = arrival_offsets(steady(0.5, 20), "constant", np.random.default_rng(0))
            begun = time.monotonic()
            raw = await run_open(target, offsets, scheduled_s=0.5, drain_timeout=30.0)
            return time.monotonic() - begun, raw
        finally:
            await target.close()

    elapsed, raw = asyncio.run(main())
    # The schedule (0.5 s), then at most the request timeout (0.5 s): not the 30 s drain.
    assert elapsed < 0.5 + 0.5 + 5.0
    assert raw.asked == 10  # type: ignore[attr-defined]
    assert raw.unanswered == 0  # type: ignore[attr-defined]
    failures = raw.failures.values()  # type: ignore[attr-defined]
    assert len(failures) == 10
    assert {kind for kind, _ in failures} <= {"TimeoutError", "ReadTimeout"}


def test_many_more_requests_than_connections_time_out_together_and_cheaply(
    silent: Silent,
) -> None:
    """1,500 requests at once through 100 connections: the 1,400 waiting for one give up
    at the same timeout, and the waiting costs little CPU (in httpx's own pool queue it
    took about a minute of CPU)."""

    async def main() -> tuple[float, float, object]:
        target = HttpTarget(silent.url, timeout=1.0, max_connections=100)
        await target.open()
        try:
            cpu, wall = time.process_time(), time.monotonic()
            raw = await run_open(target, np.zeros(1500), scheduled_s=0.0, max_lag=None)
            return time.process_time() - cpu, time.monotonic() - wall, raw
        finally:
            await target.close()

    cpu, wall, raw = asyncio.run(main())
    assert len(raw.failures) == 1500  # type: ignore[attr-defined]
    assert wall < 1.0 + 9.0
    assert cpu < 10.0


@pytest.mark.parametrize("model", ["open", "closed"])
def test_no_request_outlives_its_iteration(silent: Silent, model: str) -> None:
    """With a long request timeout, the iteration's end (schedule + drain) still ends every
    request: the target's connections are closed before the target itself is."""

    async def main() -> bool:
        target = HttpTarget(silent.url, timeout=60.0)
        await target.open()
        try:
            if model == "open":
                offsets = arrival_offsets(steady(0.3, 20), "constant", np.random.default_rng(0))
                await run_open(target, offsets, scheduled_s=0.3, drain_timeout=0.3)
            else:
                await run_closed(target, 3, 0.3, drain_timeout=0.3)
            # Still open: only the iteration's own deadline can have closed them.
            return await asyncio.to_thread(silent.wait_all_closed, 10.0)
        finally:
            await target.close()

    assert asyncio.run(main())
    assert silent.accepted > 0


def test_benchmark_run_against_a_silent_target_ends_in_time_and_exits_1(
    silent: Silent, tmp_path: Path
) -> None:
    suite = tmp_path / "silent.yaml"
    suite.write_text(
        "suite: silent\n"
        "defaults: {duration: 1s, iterations: 2, warmup: 0s, cooldown: 0s}\n"
        "scenarios:\n"
        "  - {name: steady, kind: load, rate: 20/s, arrival: constant}\n"
    )
    out = tmp_path / "r.json"
    begun = time.monotonic()
    result = runner.invoke(
        app,
        [
            "benchmark-run",
            "--suite",
            str(suite),
            "--target",
            silent.url,
            "--request-timeout",
            "1s",
            "--out",
            str(out),
            "--data-dir",
            str(tmp_path / "data"),
            "--output",
            "json",
        ],
    )
    elapsed = time.monotonic() - begun
    assert result.exit_code == 1, result.output
    # Two iterations of 1 s, each waiting at most the 1 s request timeout for its answers.
    assert elapsed < 2 * (1 + 1) + 8.0
    assert "every request failed" in result.stderr
    assert len([ln for ln in result.stderr.splitlines() if "every request failed" in ln]) == 1
    assert "Traceback" not in result.output
    reply = json.loads(result.stdout.strip().splitlines()[-1])
    assert reply["all_failed"] is True
    (scenario,) = load_result(out).scenarios
    assert sum(it.succeeded for it in scenario.iterations) == 0
    assert any("every request failed" in note for note in scenario.notes)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--request-timeout", "0s", "--target", "http://127.0.0.1:1/"], "--request-timeout"),
        (["--request-timeout", "soon", "--target", "http://127.0.0.1:1/"], "--request-timeout"),
        (["--request-timeout", "1s", "--target", f"{__name__}:Silent"], "http"),
    ],
)
def test_a_bad_request_timeout_is_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["benchmark-run", *args, "--data-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "Traceback" not in result.output


def refuse() -> None:
    raise ConnectionRefusedError("no one is listening")


def test_a_suite_where_every_request_failed_exits_1_and_says_so(tmp_path: Path) -> None:
    suite = tmp_path / "down.yaml"
    suite.write_text(
        "suite: down\n"
        "defaults: {duration: 200ms, iterations: 1, warmup: 0s, cooldown: 0s}\n"
        "scenarios:\n"
        "  - {name: a, kind: load, rate: 50/s, arrival: constant}\n"
        "  - {name: b, kind: volume, tasks: 5}\n"
    )
    out = tmp_path / "r.json"
    args = ["benchmark-run", "--suite", str(suite), "--target", f"{__name__}:refuse"]
    result = runner.invoke(app, [*args, "--out", str(out), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1, result.output
    [line] = [ln for ln in result.stderr.splitlines() if "every request failed" in ln]
    assert "15 of 15" in line
    assert "ConnectionRefusedError" in line
    saved = load_result(out)  # the results are still written, with the finding
    assert all(any("every request failed" in n for n in s.notes) for s in saved.scenarios)

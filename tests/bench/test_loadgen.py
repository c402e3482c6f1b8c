"""The load generator: arrival processes, coordinated omission, closed users, real targets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from swarmperf import AgentSpec, Swarm
from swarmperf.bench.loadgen import (
    CallableTarget,
    HttpTarget,
    Stage,
    SwarmTarget,
    Target,
    arrival_offsets,
    expected_requests,
    run_closed,
    run_open,
    steady,
)
from swarmperf.core.errors import ConfigError


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- arrival processes -----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(rate=st.floats(10, 20_000), seed=st.integers(0, 2**32 - 1))
def test_poisson_gaps_have_the_asked_mean(rate: float, seed: int) -> None:
    duration = 4000 / rate  # about 4,000 arrivals whatever the rate
    offsets = arrival_offsets(steady(duration, rate), "poisson", np.random.default_rng(seed))
    gaps = np.diff(offsets)
    # The mean of ~4,000 exponential gaps has a relative standard error of ~1.6%.
    assert np.mean(gaps) == pytest.approx(1 / rate, rel=0.08)
    assert np.all(gaps >= 0)
    assert offsets[-1] < duration


def test_poisson_gaps_are_exponential() -> None:
    offsets = arrival_offsets(steady(5.0, 1000), "poisson", np.random.default_rng(3))
    gaps = np.diff(offsets)
    assert stats.kstest(gaps, "expon", args=(0, 1 / 1000)).pvalue > 0.001
    # Against evenly spaced arrivals the test must tell the difference.
    even = np.diff(arrival_offsets(steady(5.0, 1000), "constant", np.random.default_rng(3)))
    assert stats.kstest(even, "expon", args=(0, 1 / 1000)).pvalue < 1e-6


def test_same_seed_same_arrivals_other_seed_other_arrivals() -> None:
    stages = [Stage(1.0, 0, 500), Stage(2.0, 500, 500)]
    a = arrival_offsets(stages, "poisson", np.random.default_rng(11))
    b = arrival_offsets(stages, "poisson", np.random.default_rng(11))
    c = arrival_offsets(stages, "poisson", np.random.default_rng(12))
    assert np.array_equal(a, b)
    assert not np.array_equal(a[: min(len(a), len(c))], c[: min(len(a), len(c))])


def test_constant_arrivals_are_evenly_spaced() -> None:
    offsets = arrival_offsets(steady(2.0, 250), "constant", np.random.default_rng(0))
    assert len(offsets) == 500
    assert np.allclose(np.diff(offsets), 1 / 250)


def test_a_ramp_follows_the_rate_profile() -> None:
    stages = [Stage(2.0, 0, 1000)]  # 1,000 arrivals expected, density rising linearly
    offsets = arrival_offsets(stages, "constant", np.random.default_rng(0))
    assert len(offsets) == pytest.approx(expected_requests(stages), abs=1)
    # The cumulative count at t is 250 t²: a quarter of them in the first half.
    assert np.sum(offsets < 1.0) == pytest.approx(250, abs=2)


def test_a_negative_rate_is_refused_with_its_field() -> None:
    with pytest.raises(ConfigError, match=r"stage\.end_rate"):
        Stage(1.0, 10, -5)


# -- the open model --------------------------------------------------------------------------


def test_every_request_is_sent_and_answered_at_a_low_rate() -> None:
    calls = 0

    async def noop() -> None:
        nonlocal calls
        calls += 1

    offsets = arrival_offsets(steady(0.5, 400), "constant", np.random.default_rng(0))
    raw = run(run_open(CallableTarget(noop), offsets, scheduled_s=0.5))
    assert calls == raw.asked == 200
    assert raw.dropped == 0
    assert raw.unanswered == 0
    assert not raw.failures
    # Shared machines stall now and then; a stall at the very end stretches the sending.
    assert raw.achieved_ratio() == pytest.approx(1.0, abs=0.2)
    assert np.all(raw.lags() >= 0)


def test_coordinated_omission_is_not_hidden() -> None:
    """A target that stalls once for 200 ms: the requests due during the stall go out late.
    Measured from their intended start they show the stall; measured from when they were
    sent (as a generator that waits for the target would) they look fast."""
    stalled = False

    def server() -> None:
        nonlocal stalled
        if not stalled and time.perf_counter() - started > 0.1:
            stalled = True
            time.sleep(0.2)  # holds the loop: nothing can be sent meanwhile

    offsets = arrival_offsets(steady(0.6, 1000), "constant", np.random.default_rng(0))
    started = time.perf_counter()
    raw = run(run_open(CallableTarget(server), offsets, max_lag=None, scheduled_s=0.6))
    intended = raw.latencies()
    sent = raw.service_latencies()
    assert stalled
    assert raw.asked == 600
    assert raw.dropped == 0
    # About 200 requests were due during the stall; each waited up to 200 ms.
    assert np.sum(intended > 0.05) >= 100
    assert np.percentile(intended, 90) > 0.05
    assert intended.max() >= 0.15
    # Only the stalled request itself was slow once sent.
    assert np.sum(sent > 0.05) <= 2
    assert np.percentile(sent, 99) < 0.05


def test_requests_that_cannot_go_out_in_time_are_dropped() -> None:
    stalled = False

    def server() -> None:
        nonlocal stalled
        if not stalled:
            stalled = True
            time.sleep(0.15)

    offsets = arrival_offsets(steady(0.4, 500), "constant", np.random.default_rng(0))
    raw = run(run_open(CallableTarget(server), offsets, max_lag=0.05, scheduled_s=0.4))
    assert raw.dropped >= 30  # ~50 were due in the 100 ms beyond the 50 ms allowance
    assert raw.dropped + int(raw.sent_mask.sum()) == raw.asked
    assert raw.achieved_ratio() is not None
    assert raw.achieved_ratio() < 0.95
    assert np.all(raw.lags() <= 0.05 + 1e-3)


def test_failures_and_missing_answers_are_recorded() -> None:
    async def flaky(payload: bytes) -> None:
        assert len(payload) == 3
        raise RuntimeError("boom")

    async def never() -> None:
        await asyncio.sleep(10)

    offsets = np.zeros(5)
    raw = run(run_open(CallableTarget(flaky, payload=b"abc"), offsets))
    assert raw.failures == dict.fromkeys(range(5), ("RuntimeError", "boom"))
    target = CallableTarget(never)

    async def drained() -> Any:
        try:
            return await run_open(target, np.zeros(3), drain_timeout=0.05)
        finally:
            await target.close()

    raw = run(drained())
    assert raw.unanswered == 3
    assert len(raw.latencies()) == 0


# -- the closed model -------------------------------------------------------------------------


def test_closed_users_think_between_requests() -> None:
    async def noop() -> None:
        return None

    raw = run(run_closed(CallableTarget(noop), 3, 0.5, think=0.05, think_distribution="constant"))
    # Each user: a request, 50 ms of thought, and again, for 0.5 s: at most 11 requests
    # (fewer when a busy machine wakes the users late).
    assert 3 * 5 <= raw.asked <= 3 * 11
    assert raw.dropped == 0
    assert not raw.failures
    busy = run(run_closed(CallableTarget(noop), 3, 0.2, think=0.0))
    assert busy.asked > 10 * raw.asked  # without thinking they never stop asking


def test_closed_users_wait_for_the_answer() -> None:
    in_flight = 0
    most = 0

    async def slow() -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1

    raw = run(run_closed(CallableTarget(slow), 4, 0.3))
    assert most == 4
    assert np.min(raw.latencies()) >= 0.009
    with pytest.raises(ConfigError, match="users"):
        run(run_closed(CallableTarget(slow), 0, 0.1))


# -- real targets ------------------------------------------------------------------------------


def test_a_short_load_test_against_the_local_swarm() -> None:
    async def main() -> Any:
        swarm = Swarm([AgentSpec("a", concurrency=2), AgentSpec("b")], keep_results=False)
        target = SwarmTarget(swarm, "sleep", lambda i: 0.001, owned=True)
        await target.open()
        try:
            offsets = arrival_offsets(steady(0.5, 300), "poisson", np.random.default_rng(1))
            return await run_open(target, offsets, scheduled_s=0.5)
        finally:
            await target.close()

    raw = run(main())
    assert raw.asked > 100
    assert raw.unanswered == 0
    assert not raw.failures
    latencies = raw.latencies()
    assert len(latencies) == raw.asked
    assert np.min(latencies) >= 0.0009  # every task slept 1 ms


def test_swarm_task_failures_carry_their_type() -> None:
    async def main() -> Any:
        swarm = Swarm([AgentSpec("a")])
        target = SwarmTarget(swarm, "fail", owned=True)
        await target.open()
        try:
            return await run_open(target, np.zeros(4))
        finally:
            await target.close()

    raw = run(main())
    assert {f[0] for f in raw.failures.values()} == {"TaskFailure"}
    assert len(raw.failures) == 4


class _HttpServer:
    """A tiny HTTP/1.1 server on loopback that answers with the given statuses in turn."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.served = 0
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                status = self.statuses[self.served % len(self.statuses)]
                self.served += 1
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode())
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.handlers.discard(task)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        while self.handlers:
            await asyncio.sleep(0.01)


def test_an_http_endpoint_on_loopback() -> None:
    async def main() -> Any:
        server = _HttpServer([200, 200, 503])
        await server.start()
        target: Target = HttpTarget(f"http://127.0.0.1:{server.port}/")
        await target.open()
        try:
            offsets = arrival_offsets(steady(0.3, 100), "constant", np.random.default_rng(0))
            return await run_open(target, offsets, scheduled_s=0.3)
        finally:
            await target.close()
            await server.stop()

    raw = run(main())
    assert raw.asked == 30
    assert raw.unanswered == 0
    assert len(raw.failures) == 10
    assert set(raw.failures.values()) == {("HTTP 503", "X")}


def test_an_http_target_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="http://"):
        HttpTarget("localhost:80")


def test_closed_users_of_an_instant_target_take_turns() -> None:
    senders: list[int] = []

    def instant() -> None:
        """Answers before `send` returns, from within the user that sent it."""
        senders.append(id(asyncio.current_task()))

    raw = run(run_closed(CallableTarget(instant), 4, 0.1))
    assert raw.asked == len(senders) > 40
    assert len(set(senders)) == 4  # every user got its turns


def test_relaxed_pacing_sends_everything_a_little_late_at_most() -> None:
    async def noop() -> None:
        return None

    offsets = arrival_offsets(steady(0.5, 2000), "poisson", np.random.default_rng(5))
    raw = run(run_open(CallableTarget(noop), offsets, scheduled_s=0.5, spin=False))
    assert raw.dropped == 0
    assert raw.unanswered == 0
    lags = raw.lags()
    assert np.all(lags >= 0)
    # The selector's millisecond rounding shows: the typical request goes out late, by about
    # a millisecond (more when the machine is busy), unlike precise pacing.
    assert np.median(lags) > 0.0001

"""The load generator: open-model arrivals on a schedule, or closed-model virtual users.

Open model: every request has an intended start time drawn in advance (constant or seeded
Poisson arrivals, from a piecewise-linear rate profile). Latency is measured from that
intended start, not from when the request was actually sent, so a target that stalls cannot
hide the queue building up behind it (coordinated omission). The send time is recorded too:
scheduling lag = actual send - intended send shows when the generator itself could not keep up,
and `achieved_ratio` says how much of the asked rate it held.

The dispatcher is written here rather than taken from a load-testing tool because it is the
instrument: it must run in the same event loop as an in-process swarm and hold rates that one
`asyncio.sleep` per request cannot (on Linux the selector rounds timeouts up to a millisecond).
So it sleeps only while the next request is more than a couple of milliseconds away, waking a
little early and yielding to the loop (`asyncio.sleep(0)`) until the due time; every request
due by then goes out in one batch, with one yield per batch rather than per request. Times
come from `loop.time()`.

Closed model: N virtual users, each sending a request, waiting for its answer, then thinking.

Targets: a `Swarm` (tasks submitted, results taken from its result listener: no future per
task), a Python callable (sync or async), or an HTTP endpoint (httpx). An HTTP request gives
up after its timeout (connect, write, pool wait and read together), and never outlives the
iteration it belongs to: a target that accepts connections and never answers costs each
iteration at most that timeout, not its whole drain.
"""

from __future__ import annotations

import array
import asyncio
import bisect
import contextlib
import inspect
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from swarmperf.core.errors import ConfigError, DispatchError
from swarmperf.core.model import Task, TaskResult
from swarmperf.core.redact import redact_url
from swarmperf.runtime.swarm import Swarm

Floats = npt.NDArray[np.float64]
Failure = tuple[str, str]  # (error type, message)
ArrivalProcess = Literal["constant", "poisson"]

# The selector waits whole milliseconds, rounded up, so a sleep can overshoot by almost one.
# Sleep whole milliseconds that end at least WAKE_MARGIN before the due time, then yield to
# the loop until it comes.
WAKE_MARGIN = 0.0002
# Requests sent per batch before yielding to the loop, so answers keep flowing when behind.
MAX_BATCH = 512
# How long an HTTP request may wait for its answer, unless told otherwise.
REQUEST_TIMEOUT = 10.0
_NAN = float("nan")


class Sink(Protocol):
    """Where a target reports that request `index` settled (`failure` None: it succeeded)."""

    def done(self, index: int, failure: Failure | None) -> None: ...


class Target(ABC):
    """Something to put load on. `send` starts one request and returns at once; the target
    calls `sink.done(index, failure)` when it settles (possibly before `send` returns)."""

    description: str = "target"
    # Loop time by which every request must have settled: the end of the current iteration's
    # drain, set by the run functions. Targets that can abandon a request (HTTP) do so then.
    deadline: float | None = None

    async def open(self) -> None:  # noqa: B027 - most targets need no set-up
        """Get ready (start a swarm, open connections). Called once before any `send`."""

    async def close(self) -> None:  # noqa: B027
        """Release what `open` took; requests still in flight are abandoned."""

    @abstractmethod
    def send(self, index: int, sink: Sink) -> None: ...


def failure_of(exc: BaseException) -> Failure:
    return type(exc).__name__, str(exc)


def _split_error(text: str | None, status: str) -> Failure:
    # Swarm results carry errors as "Type: message".
    if not text:
        return status, status
    kind, sep, message = text.partition(": ")
    return (kind, message) if sep and kind.isidentifier() else (status, text)


class CallableTarget(Target):
    """A Python callable, sync or async. It gets `payload` if it takes an argument.

    A sync callable runs inline (it blocks the loop while it runs, as it would in any
    asyncio program); an async one runs as its own task, so requests overlap.
    """

    def __init__(self, fn: Callable[..., Any], payload: Any = None, name: str | None = None):
        self.fn = fn
        self.description = name or f"callable:{getattr(fn, '__qualname__', repr(fn))}"
        self._args: tuple[Any, ...] = (payload,) if _takes_argument(fn) else ()
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - objects with an async __call__
        )
        self._running: dict[int, asyncio.Task[None]] = {}

    def send(self, index: int, sink: Sink) -> None:
        if self._is_async:
            self._running[index] = asyncio.get_running_loop().create_task(self._run(index, sink))
            return
        try:
            value = self.fn(*self._args)
        except Exception as exc:
            sink.done(index, failure_of(exc))
            return
        if inspect.isawaitable(value):  # a sync function that returned an awaitable
            self._running[index] = asyncio.get_running_loop().create_task(
                self._finish(index, sink, value)
            )
            return
        sink.done(index, None)

    async def _run(self, index: int, sink: Sink) -> None:
        try:
            await self.fn(*self._args)
        except Exception as exc:
            failure: Failure | None = failure_of(exc)
        else:
            failure = None
        self._running.pop(index, None)
        sink.done(index, failure)

    async def _finish(self, index: int, sink: Sink, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception as exc:
            failure: Failure | None = failure_of(exc)
        else:
            failure = None
        self._running.pop(index, None)
        sink.done(index, failure)

    async def close(self) -> None:
        running = list(self._running.values())
        self._running.clear()
        for job in running:
            job.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def _takes_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params
    )


class SwarmTarget(Target):
    """A swarm: each request is a task of `kind`. Results come from the swarm's result
    listener, matched by task id, so no future or coroutine is made per request.

    With `owned`, `open` starts the swarm and `close` stops it. `payloads(i)` gives the
    i-th task's payload (None: no payload); `tasks(i)`, when given, makes the i-th task
    itself instead (its kind, payload and cost, as a spec's workload would draw them).
    """

    def __init__(
        self,
        swarm: Swarm,
        kind: str,
        payloads: Callable[[int], Any] | None = None,
        *,
        owned: bool = False,
        description: str | None = None,
        tasks: Callable[[int], Task] | None = None,
    ) -> None:
        self.swarm = swarm
        self.kind = kind
        self.payloads = payloads
        self.tasks = tasks
        self.owned = owned
        self.description = description or f"swarm:{kind}"
        self._pending: dict[str, tuple[int, Sink]] = {}
        self._sent = 0
        swarm.on_result(self._on_result)

    async def open(self) -> None:
        if self.owned:
            await self.swarm.start()

    async def close(self) -> None:
        self._pending.clear()
        if self.owned:
            self.swarm.cancel_pending("the load test is over")
            await self.swarm.stop()

    def send(self, index: int, sink: Sink) -> None:
        if self.tasks is not None:
            task = self.tasks(self._sent)
        else:
            payload = None if self.payloads is None else self.payloads(self._sent)
            task = Task(self.kind, payload)
        self._sent += 1
        self._pending[task.id] = (index, sink)
        try:
            self.swarm.submit(task)
        except DispatchError as exc:
            self._pending.pop(task.id, None)
            sink.done(index, failure_of(exc))

    def _on_result(self, result: TaskResult) -> None:
        entry = self._pending.pop(result.task_id, None)
        if entry is None:
            return
        index, sink = entry
        if result.ok:
            sink.done(index, None)
        else:
            sink.done(index, _split_error(result.error, result.status.value))


class HttpTarget(Target):
    """An HTTP endpoint: each request is one `method` call; a status >= 400 is a failure.

    A request fails with `TimeoutError` when it has no answer within `timeout` seconds
    (connecting, waiting for a pooled connection, writing and reading, all together), or by
    the target's `deadline`, whichever comes first; its connection is closed then.
    """

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        body: bytes | None = None,
        timeout: float = REQUEST_TIMEOUT,
        max_connections: int = 1000,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("target", redact_url(url), "Use an http:// or https:// URL.")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ConfigError("request_timeout", timeout, "Use a duration > 0, e.g. 5s.")
        self.url = url
        self.method = method
        self.body = body
        self.timeout = timeout
        self.max_connections = max_connections
        # Results and the store keep the description: no token of the URL goes with it.
        self.description = f"{method} {redact_url(url)}"
        self._client: Any = None
        self._running: dict[int, asyncio.Task[None]] = {}
        # Requests wait for a connection here rather than in httpx's pool, whose queue costs
        # time in proportion to its length for every request that leaves it: thousands
        # timing out against a silent target took a whole core for a minute.
        self._slots = asyncio.Semaphore(max_connections)

    async def open(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
            ),
        )

    async def close(self) -> None:
        running = list(self._running.values())
        self._running.clear()
        for job in running:
            job.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def send(self, index: int, sink: Sink) -> None:
        self._running[index] = asyncio.get_running_loop().create_task(self._run(index, sink))

    async def _run(self, index: int, sink: Sink) -> None:
        import httpx

        failure: Failure | None = None
        limit, why = self.timeout, f"no answer within the request timeout of {self.timeout:g}s"
        if self.deadline is not None:
            left = self.deadline - asyncio.get_running_loop().time()
            if left < limit:
                limit, why = left, "no answer by the end of the iteration (its drain timeout)"
        try:
            if limit <= 0:
                raise TimeoutError
            # httpx bounds each phase; this bounds the request as a whole.
            async with asyncio.timeout(limit), self._slots:
                response = await self._client.request(self.method, self.url, content=self.body)
            if response.status_code >= 400:
                failure = (f"HTTP {response.status_code}", response.reason_phrase or "")
        except (TimeoutError, httpx.TimeoutException):
            failure = ("TimeoutError", why)
        except Exception as exc:
            failure = failure_of(exc)
        self._running.pop(index, None)
        sink.done(index, failure)


# -- arrival schedules -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stage:
    """`duration` seconds during which the asked rate moves linearly from `start_rate` to
    `end_rate` (requests per second)."""

    duration: float
    start_rate: float
    end_rate: float

    def __post_init__(self) -> None:
        if not (self.duration >= 0 and math.isfinite(self.duration)):
            raise ConfigError("stage.duration", self.duration, "Use a duration >= 0.")
        for name, rate in (("start_rate", self.start_rate), ("end_rate", self.end_rate)):
            if not (rate >= 0 and math.isfinite(rate)):
                raise ConfigError(f"stage.{name}", rate, "Use a rate >= 0, e.g. 100/s.")


def steady(duration: float, rate: float) -> list[Stage]:
    return [Stage(duration, rate, rate)]


def expected_requests(stages: Sequence[Stage]) -> float:
    """The mean number of arrivals over `stages` (the area under the rate profile)."""
    return sum(s.duration * (s.start_rate + s.end_rate) / 2 for s in stages)


def arrival_offsets(
    stages: Sequence[Stage], process: ArrivalProcess, rng: np.random.Generator
) -> Floats:
    """Intended send times, in seconds after the start, for a rate profile.

    Both processes map points of a unit-rate process through the inverse of the cumulative
    rate: evenly spaced points give constant arrivals, seeded exponential gaps give a
    (non-homogeneous) Poisson process.
    """
    times: list[Floats] = []
    areas: list[Floats] = []
    t0, area0 = 0.0, 0.0
    for stage in stages:
        if stage.duration == 0:
            continue
        points = 2 if stage.start_rate == stage.end_rate else 1025
        local = np.linspace(0.0, stage.duration, points)
        slope = (stage.end_rate - stage.start_rate) / stage.duration
        area = stage.start_rate * local + 0.5 * slope * local * local
        times.append(t0 + local)
        areas.append(area0 + area)
        t0 += stage.duration
        area0 += float(area[-1])
    if not times or area0 <= 0:
        return np.zeros(0)
    grid_t = np.concatenate(times)
    grid_area = np.concatenate(areas)
    if process == "constant":
        units = np.arange(0.0, area0, 1.0)
    else:
        count = int(area0 + 10 * math.sqrt(area0) + 20)
        units = np.cumsum(rng.exponential(1.0, count))
        while units[-1] < area0:
            units = np.concatenate([units, units[-1] + np.cumsum(rng.exponential(1.0, count))])
        units = units[units < area0]
    offsets: Floats = np.interp(units, grid_area, grid_t)
    return offsets


# -- recording --------------------------------------------------------------------------------


@dataclass(slots=True)
class RawIteration:
    """Every request of one run, times in seconds after `start` (NaN: did not happen).

    `intended`: when it was due (closed model: when its user sent it); `sent`: when it went
    out (NaN: dropped, not sent on time); `finished`: when it settled (NaN: no answer by the
    end of the drain). `failures` maps request index to its error. `until_settled`: the run
    lasts until its last answer; False for a window with another after it, whose time ends
    at `scheduled_s` (its late answers land in the next window's time).
    """

    model: Literal["open", "closed"]
    started_at: float  # UNIX time of `start`
    start: float  # loop time
    scheduled_s: float  # how long the schedule (or the users' run) was meant to last
    intended: Floats
    sent: Floats
    finished: Floats
    failures: dict[int, Failure]
    unanswered: int
    until_settled: bool = True

    @property
    def asked(self) -> int:
        return len(self.intended)

    @property
    def sent_mask(self) -> npt.NDArray[np.bool_]:
        return ~np.isnan(self.sent)

    @property
    def dropped(self) -> int:
        return int(np.isnan(self.sent).sum())

    def succeeded_mask(self) -> npt.NDArray[np.bool_]:
        ok = ~np.isnan(self.finished)
        if self.failures:
            ok[list(self.failures)] = False
        return ok

    def latencies(self) -> Floats:
        """Successful requests' latencies from their intended start (coordinated-omission
        free for the open model)."""
        ok = self.succeeded_mask()
        return self.finished[ok] - self.intended[ok]

    def service_latencies(self) -> Floats:
        """Successful requests' latencies from their actual send: what a generator that
        waits for the target before sending would report."""
        ok = self.succeeded_mask()
        return self.finished[ok] - self.sent[ok]

    def lags(self) -> Floats:
        sent = self.sent_mask
        return self.sent[sent] - self.intended[sent]

    def achieved_ratio(self) -> float | None:
        """Sent requests per second over asked requests per second: below 1 when requests
        were dropped or the sending stretched beyond the schedule."""
        if self.asked == 0 or self.scheduled_s <= 0:
            return None
        sent = self.sent[self.sent_mask]
        if len(sent) == 0:
            return 0.0
        span = max(self.scheduled_s, float(sent.max()))
        return (len(sent) / span) / (self.asked / self.scheduled_s)

    def window(self, lo: float, hi: float, *, until_settled: bool = True) -> RawIteration:
        """The requests intended in [lo, hi), as a run of their own starting at `lo`."""
        keep = (self.intended >= lo) & (self.intended < hi)
        index = np.flatnonzero(keep)
        position = {int(old): new for new, old in enumerate(index)}
        return RawIteration(
            model=self.model,
            started_at=self.started_at + lo,
            start=self.start + lo,
            scheduled_s=hi - lo,
            intended=self.intended[keep] - lo,
            sent=self.sent[keep] - lo,
            finished=self.finished[keep] - lo,
            failures={position[i]: f for i, f in self.failures.items() if i in position},
            unanswered=int((np.isnan(self.finished[keep]) & ~np.isnan(self.sent[keep])).sum()),
            until_settled=until_settled,
        )


class _Recorder:
    """Collects send and finish times by request index; late answers are ignored."""

    __slots__ = (
        "closed",
        "failures",
        "finished",
        "now",
        "outstanding",
        "sent",
        "settled",
        "waiters",
        "zero",
    )

    def __init__(self, n: int, now: Callable[[], float]) -> None:
        self.now = now
        self.sent = array.array("d", [_NAN]) * n
        self.finished = array.array("d", [_NAN]) * n
        self.failures: dict[int, Failure] = {}
        self.outstanding = 0
        self.settled = 0
        self.closed = False
        self.zero: asyncio.Future[None] | None = None
        self.waiters: dict[int, asyncio.Future[None]] = {}

    def grow(self) -> int:
        self.sent.append(_NAN)
        self.finished.append(_NAN)
        return len(self.sent) - 1

    def done(self, index: int, failure: Failure | None) -> None:
        # NaN is the only value not equal to itself: anything else means already settled.
        if self.closed or self.finished[index] == self.finished[index]:
            return
        self.finished[index] = self.now()
        if failure is not None:
            self.failures[index] = failure
        self.outstanding -= 1
        self.settled += 1
        if self.waiters:
            waiter = self.waiters.pop(index, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if self.outstanding == 0 and self.zero is not None and not self.zero.done():
            self.zero.set_result(None)

    async def drain(self, timeout: float) -> None:
        if self.outstanding > 0:
            self.zero = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.zero, timeout)
        self.closed = True


@dataclass(slots=True)
class LiveCounts:
    """What a run has done so far, for progress displays."""

    asked: int = 0
    sent: int = 0
    settled: int = 0
    failed: int = 0
    recorder: Any = field(default=None, repr=False)

    def refresh(self) -> LiveCounts:
        rec = self.recorder
        if rec is not None:
            self.settled = rec.settled
            self.failed = len(rec.failures)
        return self


@contextlib.contextmanager
def _deadline(target: Target, deadline: float) -> Iterator[None]:
    """Tell `target` when the iteration ends (its schedule and drain), while it runs."""
    target.deadline = deadline
    try:
        yield
    finally:
        target.deadline = None


async def run_open(
    target: Target,
    offsets: Floats,
    *,
    max_lag: float | None = 1.0,
    drain_timeout: float = 30.0,
    scheduled_s: float | None = None,
    live: LiveCounts | None = None,
    batch: int = MAX_BATCH,
    spin: bool = True,
) -> RawIteration:
    """Send request i at `offsets[i]` seconds after now (sorted), whatever the target does,
    then wait up to `drain_timeout` for the answers.

    A request that would go out more than `max_lag` late is dropped instead (None: never).
    `spin=False` never yields-and-polls for the last millisecond: requests may go out up to
    about a millisecond late, in batches, but the generator stops using a whole core at
    rates of a few thousand per second (which matters when the target's workers are other
    processes on the same cores).
    """
    loop = asyncio.get_running_loop()
    now = loop.time
    n = len(offsets)
    rec = _Recorder(n, now)
    if live is not None:
        live.asked, live.recorder = n, rec
    # Offsets stay relative to `start`, taken after the conversion: converting a long
    # schedule takes milliseconds that would otherwise show up as lag.
    due = offsets.tolist()
    sent = rec.sent
    send = target.send
    limit = math.inf if max_lag is None else max_lag
    sleep = asyncio.sleep
    start = now()
    started_at = time.time()
    planned = scheduled_s if scheduled_s is not None else (due[-1] if n else 0.0)
    i = 0
    with _deadline(target, start + planned + drain_timeout):
        while i < n:
            t = now() - start
            wait = due[i] - t
            if wait > 0:
                if not spin:
                    await sleep(wait)
                    continue
                whole_ms = int((wait - WAKE_MARGIN) * 1000)
                # Just under whole milliseconds, so that rounding up cannot add one more.
                await sleep(whole_ms * 0.001 - 1e-6 if whole_ms > 0 else 0)
                continue
            j = bisect.bisect_right(due, t, i, min(n, i + batch))
            for k in range(i, j):
                ts = now()
                if ts - start - due[k] > limit:
                    continue
                sent[k] = ts
                rec.outstanding += 1
                send(k, rec)
            i = j
            if live is not None:
                live.sent = i
            await sleep(0)
        await rec.drain(drain_timeout)
    return _raw("open", rec, start, started_at, np.asarray(offsets, dtype=float), scheduled_s)


async def run_naive(
    target: Target,
    offsets: Floats,
    *,
    drain_timeout: float = 30.0,
    scheduled_s: float | None = None,
) -> RawIteration:
    """The plain way, for comparison: one `asyncio.sleep(until the intended start)` per
    request. Same target, same recording, same schedule; nothing is dropped."""
    loop = asyncio.get_running_loop()
    now = loop.time
    n = len(offsets)
    rec = _Recorder(n, now)
    due = offsets.tolist()
    start = now()
    started_at = time.time()
    planned = scheduled_s if scheduled_s is not None else (due[-1] if n else 0.0)
    with _deadline(target, start + planned + drain_timeout):
        for k in range(n):
            await asyncio.sleep(start + due[k] - now())
            rec.sent[k] = now()
            rec.outstanding += 1
            target.send(k, rec)
        await rec.drain(drain_timeout)
    return _raw("open", rec, start, started_at, np.asarray(offsets, dtype=float), scheduled_s)


def _raw(
    model: Literal["open", "closed"],
    rec: _Recorder,
    start: float,
    started_at: float,
    intended: Floats,
    scheduled_s: float | None,
) -> RawIteration:
    sent = np.frombuffer(rec.sent, dtype=np.float64) - start
    finished = np.frombuffer(rec.finished, dtype=np.float64) - start
    if scheduled_s is None:
        scheduled_s = float(intended[-1]) if len(intended) else 0.0
    return RawIteration(
        model=model,
        started_at=started_at,
        start=start,
        scheduled_s=scheduled_s,
        intended=intended,
        sent=sent.copy(),
        finished=finished.copy(),
        failures=dict(rec.failures),
        unanswered=int((np.isnan(finished) & ~np.isnan(sent)).sum()),
    )


ThinkTime = Callable[[], float]


def think_time(
    mean: float, distribution: Literal["constant", "exponential"], rng: np.random.Generator
) -> ThinkTime:
    """A user's pause between an answer and its next request: constant or exponential."""
    if mean < 0:
        raise ConfigError("think", mean, "Use a duration >= 0, e.g. 100ms.")
    if distribution == "constant" or mean == 0:
        return lambda: mean
    return lambda: float(rng.exponential(mean))


async def run_closed(
    target: Target,
    users: int,
    duration: float,
    *,
    think: float = 0.0,
    think_distribution: Literal["constant", "exponential"] = "constant",
    seed: int = 0,
    drain_timeout: float = 30.0,
    live: LiveCounts | None = None,
) -> RawIteration:
    """`users` virtual users, each: send, wait for the answer, think, repeat, for `duration`.

    A user's intended start is when it sends; latency is send to answer.
    """
    if users < 1:
        raise ConfigError("users", users, "Use an integer >= 1.")
    loop = asyncio.get_running_loop()
    now = loop.time
    rec = _Recorder(0, now)
    if live is not None:
        live.recorder = rec
    start = now()
    started_at = time.time()
    end = start + duration
    rngs = np.random.default_rng(seed).spawn(users)

    async def user(pause: ThinkTime) -> None:
        while now() < end:
            k = rec.grow()
            waiter: asyncio.Future[None] = loop.create_future()
            rec.waiters[k] = waiter
            rec.sent[k] = now()
            rec.outstanding += 1
            if live is not None:
                live.sent += 1
                live.asked += 1
            target.send(k, rec)
            if not waiter.done():
                remaining = end + drain_timeout - now()
                try:
                    await asyncio.wait_for(waiter, max(remaining, 0.0))
                except TimeoutError:
                    return
            # Sleep even for no think time: an answer that came at once must not let one
            # user keep the loop from the others.
            await asyncio.sleep(pause())

    with _deadline(target, end + drain_timeout):
        await asyncio.gather(*(user(think_time(think, think_distribution, r)) for r in rngs))
        await rec.drain(max(0.0, end + drain_timeout - now()))
    sent = np.frombuffer(rec.sent, dtype=np.float64) - start
    return _raw("closed", rec, start, started_at, sent.copy(), duration)

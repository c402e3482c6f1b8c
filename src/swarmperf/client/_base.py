"""What both clients hold: the service's address and token, and when a failed request is retried."""

from __future__ import annotations

import functools
import ssl
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from swarmperf.client._protocol import (
    RETRY_STATUSES,
    Call,
    backoff,
    check_target,
    data_dir_of,
    is_loopback,
    problem,
    read_json,
    retry_after,
)
from swarmperf.core.errors import ConfigError, ServiceUnavailable
from swarmperf.service import registry
from swarmperf.service.registry import SwarmEntry

USER_AGENT = "swarmperf-client"

# A client shared by concurrent callers (coroutines or threads) gives each request in
# flight a connection of its own, through an httpx client of its own: a lane, kept for the
# next request. One httpx client carrying many requests at once costs several times the
# CPU per request of one carrying a single request: at every request's start and end its
# pool walks all its connections, polling each idle socket, and it hands one idle
# connection to several queued requests, all but one of which then go round again (and
# with more connections than its keep-alive limit it closes idle ones it will reopen).
MAX_LANES = 100  # requests in flight at once; more wait, as for httpx's max_connections
IDLE_LANES = 20  # lanes kept while idle, as httpx's max_keepalive_connections
CLOSED = "Cannot send a request, as the client has been closed."  # httpx's words

L = TypeVar("L")


@functools.cache
def _untrusting() -> ssl.SSLContext:
    """The context of plain http lanes: httpx gives every client one, but a lane to an http
    URL makes no TLS connection. It trusts no certificate, so were one asked for TLS (the
    service moved to https) it would fail closed, never connect unverified."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class Target:
    """Where a swarm's service answers and with what token. A target found by swarm id is
    read again from the registry when the service may have moved (a restart on port 0
    takes a new port and may write a new token).

    The token is never part of a repr, a message or a log line."""

    __slots__ = ("_token", "data_dir", "entry", "swarm_id", "url")

    def __init__(
        self,
        swarm_id: str | None,
        url: str | None,
        token: str | None,
        data_dir: str | Path | None,
    ) -> None:
        swarm_id, url, token = check_target(swarm_id, url, token)
        self.swarm_id = swarm_id
        self.entry: SwarmEntry | None = None
        if swarm_id is not None:
            self.data_dir: Path | None = data_dir_of(data_dir)
            self.entry = registry.find(self.data_dir, swarm_id)  # SwarmNotRunning if none
            self.url = self.entry.url.rstrip("/")
            self._token = self.entry.token()
        else:
            assert url is not None  # check_target saw to it
            self.data_dir = None if data_dir is None else Path(data_dir)
            self.url = url
            self._token = token or ""

    def refresh(self) -> bool:
        """Read the registry again; whether the address or the token changed."""
        if self.swarm_id is None or self.data_dir is None:
            return False
        try:
            entry = registry.find(self.data_dir, self.swarm_id)
            token = entry.token()
        except ConfigError:  # not running right now: a restart may yet come
            return False
        changed = entry.url.rstrip("/") != self.url or token != self._token
        self.entry, self.url, self._token = entry, entry.url.rstrip("/"), token
        return changed

    def headers(self, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept, "Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self._token:  # none: a loopback service started without a token (--no-token)
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def gone(self) -> str:
        """Why the service may not answer, as far as the registry tells."""
        if self.entry is None or self.entry.alive:
            return ""
        return f"; its process (pid {self.entry.pid}) is no longer running"

    def __repr__(self) -> str:
        if self.swarm_id is not None:
            return f"swarm {self.swarm_id!r} at {self.url}"
        return self.url


class Lanes(Generic[L]):
    """The lanes (httpx clients) of one client, each carrying one request at a time: the
    bookkeeping, free of I/O and of waiting. The caller holds one of MAX_LANES slots from
    `take` to `give`, and closes what `give` and `close` hand back."""

    __slots__ = ("_free", "_make", "_open", "closed")

    def __init__(self, make: Callable[[], L]) -> None:
        self._make = make
        self._free: deque[L] = deque()  # idle, the most recently used last
        self._open: set[L] = set()
        self.closed = False

    def take(self) -> L:
        """An idle lane (the one used last: its connection is the likeliest to be alive),
        else a new one."""
        if self.closed:
            raise RuntimeError(CLOSED)
        if self._free:
            return self._free.pop()
        lane = self._make()
        self._open.add(lane)
        return lane

    def give(self, lane: L) -> L | None:
        """Take back a lane whose request is over; a lane to close, if too many are idle."""
        if self.closed:
            return None  # closed with all the others
        self._free.append(lane)
        if len(self._free) <= IDLE_LANES:
            return None
        coldest = self._free.popleft()
        self._open.discard(coldest)
        return coldest

    def close(self) -> list[L]:
        """Every lane, to close: no request is sent after this."""
        self.closed = True
        lanes = list(self._open)
        self._open.clear()
        self._free.clear()
        return lanes


class ClientBase:
    """The state and retry rules both clients share; they differ only in how they wait."""

    def __init__(
        self,
        swarm_id: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        data_dir: str | Path | None = None,
        timeout: float = 30.0,
        retries: int = 8,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError("retries", retries, "Give an integer >= 0.")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError("timeout", timeout, "Give a number of seconds > 0.")
        self._target = Target(swarm_id, url, token, data_dir)
        self.timeout = float(timeout)
        self.retries = retries
        self._tls: ssl.SSLContext | None = None  # made with the first https lane

    @property
    def url(self) -> str:
        """The service's address now (it changes if the service restarts elsewhere)."""
        return self._target.url

    @property
    def swarm_id(self) -> str | None:
        return self._target.swarm_id

    @property
    def entry(self) -> SwarmEntry | None:
        """The registry's entry for the swarm, when it was found by id."""
        return self._target.entry

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._target!r})"

    # Whether to trust proxy settings from the environment: a loopback service is reached
    # directly, whatever HTTP_PROXY says.
    def _trust_env(self) -> bool:
        return not is_loopback(self._target.url)

    def _lane_options(self) -> dict[str, Any]:
        """How a new lane (an httpx client) is made. For https, one verified TLS context
        for all the lanes (httpx would make, and load the CA bundle into, one per client:
        ~20 ms each); for plain http, none of that cost."""
        trust_env = self._trust_env()
        if not self._target.url.startswith("https://"):
            return {"trust_env": trust_env, "verify": _untrusting()}
        if self._tls is None:
            self._tls = httpx.create_ssl_context(trust_env=trust_env)
        return {"trust_env": trust_env, "verify": self._tls}

    def _no_lane_free(self, lanes: int) -> httpx.PoolTimeout:
        """What waiting longer than `timeout` for one of `lanes` lanes raises, as httpx
        does for a connection: a transport error, retried as such."""
        return httpx.PoolTimeout(f"all {lanes} connections stayed busy for {self.timeout:g} s")

    def _timeout(self, call: Call[Any]) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, read=self.timeout + (call.read_timeout or 0.0))

    def _request_args(self, call: Call[Any]) -> dict[str, Any]:
        return {
            "method": call.method,
            "url": self._target.url + call.path,
            "content": call.body,
            "params": call.params,
            "headers": self._target.headers(call.accept),
            "timeout": self._timeout(call),
        }

    def _after_transport_error(
        self, call: Call[Any], exc: httpx.TransportError, tries: int
    ) -> float:
        """The wait before trying `call` again after `exc`; raises `ServiceUnavailable` when
        it is not to be retried. `tries`: retries made so far."""
        unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        if tries >= self.retries or not (unsent or call.idempotent):
            raise self._unavailable(exc, unsent) from exc
        return backoff(tries + 1, None)

    def _unavailable(self, exc: httpx.TransportError, unsent: bool) -> ServiceUnavailable:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if not unsent:
            reason += " (the request was sent; it may have taken effect)"
        elif self.retries:
            reason += f" (after {self.retries + 1} attempts)"
        return ServiceUnavailable(self._target.url, reason + self._target.gone())

    def _retry_wait(self, response: httpx.Response, tries: int) -> float | None:
        """The wait before retrying a refused request (429/503), or None: not retried."""
        if response.status_code not in RETRY_STATUSES or tries >= self.retries:
            return None
        return backoff(tries + 1, retry_after(response.headers.get("Retry-After")))

    def _token_moved(self, response: httpx.Response, refreshed: bool) -> bool:
        """Whether a refused token is worth one more try: the registry has a new one."""
        return response.status_code == 401 and not refreshed and self._target.refresh()

    @staticmethod
    def _read(call: Call[Any], response: httpx.Response) -> Any:
        status = response.status_code
        if status >= 400 or status not in call.expect:
            raise problem(status, response.content, response.reason_phrase)
        return call.parse(read_json(response.content, status))

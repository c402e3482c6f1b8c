"""Rate limits for agents and shared providers: token buckets, all-or-nothing across several.

A provider such as an LLM API states its limits per minute (requests and tokens); many agents
share them, and an agent may have its own limit too. `Limiter.try_acquire` charges every
bucket a dispatch touches or none of them, so a refusal by one limit never uses up another.
Nothing here sleeps: a refusal returns the seconds to wait and the caller decides.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from swarmperf.core.errors import ConfigError, UnknownName

__all__ = [
    "DEFAULT_BURST",
    "BucketStatistics",
    "LimitStatistics",
    "Limiter",
    "RateLimit",
    "TokenBucket",
]

Clock = Callable[[], float]

DEFAULT_BURST = 60.0  # seconds' worth of rate: the period providers state their limits in
# A request short by less than this many seconds of refill is granted (the shortfall is kept
# as a tiny debt). Without it, a caller that waits exactly the returned time can find the
# request short by a rounding error, and on a large clock value `now + wait == now`, so a
# simulation that advances its clock by the wait would spin forever.
_GRACE = 1e-6


@dataclass(frozen=True, slots=True)
class BucketStatistics:
    """A snapshot of one bucket. Rates are per second; `blocked_for` is seconds."""

    name: str
    rate: float
    capacity: float
    available: float
    blocked_for: float
    acquired: float  # total tokens granted since creation
    refused: int  # requests refused since creation


class TokenBucket:
    """`rate` tokens per second refill up to `capacity`; the bucket starts full.

    Over any time window of length w the tokens granted never exceed
    `capacity + rate * (w + 1e-6)`: a grant may run a microsecond of refill ahead, so that
    a caller who waits exactly the returned time is served despite rounding.
    A request for more than `capacity` could never be served, so it raises `ConfigError`
    naming the bucket instead of returning an endless wait.
    """

    __slots__ = (
        "_acquired",
        "_blocked_until",
        "_capacity",
        "_clock",
        "_grace",
        "_rate",
        "_refused",
        "_stamp",
        "_tokens",
        "name",
    )

    def __init__(
        self, rate: float, capacity: float, *, clock: Clock = time.monotonic, name: str = ""
    ) -> None:
        label = name or "token_bucket"
        if not 0 < rate < math.inf:
            raise ConfigError(f"{label}.rate", rate, "Use a number of tokens per second > 0.")
        if not 0 < capacity < math.inf:
            raise ConfigError(f"{label}.capacity", capacity, "Use a number of tokens > 0.")
        self.name = name
        self._rate = float(rate)
        self._capacity = float(capacity)
        self._grace = self._rate * _GRACE
        self._clock = clock
        self._tokens = self._capacity
        # -inf: the first refill fills the bucket, so the clock is not read in __init__.
        self._stamp = -math.inf
        self._blocked_until = -math.inf
        self._acquired = 0.0
        self._refused = 0

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def capacity(self) -> float:
        return self._capacity

    def try_acquire(self, n: float = 1.0) -> float:
        """Take `n` tokens and return 0.0, or take nothing and return the seconds to wait."""
        if not 0.0 <= n <= self._capacity:
            self._reject(n)
        wait = self._wait(n, self._clock())
        if wait == 0.0:
            self._tokens -= n
            self._acquired += n
        else:
            self._refused += 1
        return wait

    def available(self) -> float:
        """Tokens that could be taken now (0.0 while penalised)."""
        now = self._clock()
        self._refill(now)
        return 0.0 if now < self._blocked_until else max(self._tokens, 0.0)

    def refund(self, n: float) -> None:
        """Give back tokens taken but not used, e.g. when a call used fewer than reserved."""
        if not 0.0 <= n < math.inf:
            raise ValueError(f"Cannot refund {n!r} tokens to {self._label}; refund a number >= 0.")
        self._refill(self._clock())
        self._tokens = min(self._capacity, self._tokens + n)

    def penalise(self, seconds: float) -> None:
        """Refuse everything for `seconds` from now, e.g. after HTTP 429 with Retry-After.

        Tokens keep refilling meanwhile: the penalty delays use, it does not drain the bucket.
        A shorter penalty never cuts a longer one short.
        """
        if not 0.0 <= seconds < math.inf:
            raise ValueError(
                f"Cannot penalise {self._label} for {seconds!r}s; use a finite number >= 0."
            )
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def statistics(self) -> BucketStatistics:
        now = self._clock()
        return BucketStatistics(
            name=self.name,
            rate=self._rate,
            capacity=self._capacity,
            available=self.available(),
            blocked_for=max(self._blocked_until - now, 0.0),
            acquired=self._acquired,
            refused=self._refused,
        )

    @property
    def _label(self) -> str:
        return f"rate limit {self.name!r}" if self.name else "the token bucket"

    def _refill(self, now: float) -> None:
        tokens = self._tokens + (now - self._stamp) * self._rate
        self._tokens = tokens if tokens < self._capacity else self._capacity
        self._stamp = now

    def _wait(self, n: float, now: float) -> float:
        """Refill to `now`; return the seconds until `n` tokens may be taken (0.0: now)."""
        self._refill(now)
        if now < self._blocked_until:
            ahead = self._blocked_until - now
            at_deadline = min(self._capacity, self._tokens + ahead * self._rate)
            return ahead + max(n - at_deadline, 0.0) / self._rate
        short = n - self._tokens
        return 0.0 if short <= self._grace else short / self._rate

    def _take(self, n: float) -> None:
        """Charge `n` tokens that `_wait` has just found available."""
        self._tokens -= n
        self._acquired += n

    def _reject(self, n: float) -> None:
        if n > self._capacity:
            raise ConfigError(
                f"tokens requested from {self._label}",
                n,
                f"The bucket holds at most {self._capacity:g} tokens, so the request could "
                "never be served. Raise the limit's burst or split the request.",
            )
        raise ValueError(f"Cannot take {n!r} tokens from {self._label}; take a number >= 0.")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One named limit: requests and/or tokens per minute, as providers state them.

    `burst` is the bucket size in seconds' worth of rate. The default, 60 s, lets a full
    minute's quota go at once, as a per-minute limit allows; the request bucket always holds
    at least one request. Providers that enforce a per-minute limit over shorter slices
    (e.g. per second) need a smaller burst. `name` is the key the limit is configured under;
    it only names fields in error messages.
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst: float | None = None  # seconds
    name: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        where = f"rate_limits.{self.name}" if self.name else "rate_limit"
        rpm, tpm, burst = self.requests_per_minute, self.tokens_per_minute, self.burst
        if rpm is None and tpm is None:
            raise ConfigError(where, None, "Set requests_per_minute, tokens_per_minute or both.")
        for key, value in (("requests_per_minute", rpm), ("tokens_per_minute", tpm)):
            if value is not None and not 0 < value < math.inf:
                raise ConfigError(f"{where}.{key}", value, "Use a number > 0, or leave it out.")
        if burst is not None and not 0 < burst < math.inf:
            raise ConfigError(f"{where}.burst", burst, "Use a duration > 0, e.g. 10s.")
        if rpm is not None and burst is not None and rpm * burst / 60 < 1 - 1e-9:
            raise ConfigError(
                f"{where}.burst",
                burst,
                f"At {rpm:g} requests per minute it holds less than one request; "
                f"use at least {60 / rpm:g}s.",
            )

    @property
    def burst_seconds(self) -> float:
        """The burst with the default applied."""
        return DEFAULT_BURST if self.burst is None else self.burst


def _buckets_for(
    key: str, limit: RateLimit, clock: Clock
) -> tuple[TokenBucket | None, TokenBucket | None]:
    """The (requests, tokens) buckets of one limit; None where that dimension is unlimited."""
    requests = tokens = None
    if limit.requests_per_minute is not None:
        rate = limit.requests_per_minute / 60
        # At least one request: a slow limit with the default burst must still admit one, and
        # an explicit burst of exactly one request must not fall short by a rounding error.
        capacity = max(rate * limit.burst_seconds, 1.0)
        requests = TokenBucket(rate, capacity, clock=clock, name=f"{key}.requests")
    if limit.tokens_per_minute is not None:
        rate = limit.tokens_per_minute / 60
        tokens = TokenBucket(rate, rate * limit.burst_seconds, clock=clock, name=f"{key}.tokens")
    return requests, tokens


@dataclass(frozen=True, slots=True)
class LimitStatistics:
    """A snapshot of one named limit; a bucket is None when that dimension is unlimited."""

    key: str
    requests: BucketStatistics | None
    tokens: BucketStatistics | None


class Limiter:
    """Named limits (a provider shared by many agents, or one agent's own), each two buckets.

    A dispatch charges one request and its tokens to every limit it names, all or nothing.
    """

    def __init__(self, limits: Mapping[str, RateLimit], *, clock: Clock = time.monotonic) -> None:
        self.limits: Mapping[str, RateLimit] = MappingProxyType(dict(limits))
        self._clock = clock
        self._buckets: dict[str, tuple[TokenBucket | None, TokenBucket | None]] = {
            key: _buckets_for(key, limit, clock) for key, limit in self.limits.items()
        }

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def try_acquire(self, keys: Sequence[str], tokens: float) -> float:
        """Charge one request and `tokens` to every limit in `keys` and return 0.0, or
        charge none and return the longest wait among the limits that refused."""
        now = self._clock()
        charges: list[tuple[TokenBucket, float]] = []
        # dict.fromkeys: a key named twice must not be checked once and charged twice.
        for key in dict.fromkeys(keys):
            requests, token_bucket = self._lookup(key)
            if requests is not None:
                charges.append((requests, 1.0))
            if token_bucket is not None:
                charges.append((token_bucket, tokens))
        wait = 0.0
        for bucket, n in charges:
            if not 0.0 <= n <= bucket.capacity:
                bucket._reject(n)
            needed = bucket._wait(n, now)
            if needed > 0.0:
                bucket._refused += 1
                wait = max(wait, needed)
        if wait > 0.0:
            return wait
        for bucket, n in charges:
            bucket._take(n)
        return 0.0

    def penalise(self, key: str, seconds: float) -> None:
        """Refuse everything charged to `key` for `seconds` (the provider's Retry-After)."""
        for bucket in self._lookup(key):
            if bucket is not None:
                bucket.penalise(seconds)

    def refund(self, key: str, tokens: float) -> None:
        """Give back tokens reserved but not used; the request itself stays counted."""
        token_bucket = self._lookup(key)[1]
        if token_bucket is not None:
            token_bucket.refund(tokens)

    def statistics(self) -> dict[str, LimitStatistics]:
        return {
            key: LimitStatistics(
                key,
                None if requests is None else requests.statistics(),
                None if token_bucket is None else token_bucket.statistics(),
            )
            for key, (requests, token_bucket) in self._buckets.items()
        }

    def _lookup(self, key: str) -> tuple[TokenBucket | None, TokenBucket | None]:
        try:
            return self._buckets[key]
        except KeyError:
            raise UnknownName("rate limit", key, self._buckets) from None

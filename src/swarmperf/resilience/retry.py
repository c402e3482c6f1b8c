"""Retry decisions: which failures to retry, how long to back off, and a budget that caps retries.

Everything here decides and nothing waits: the caller gets a delay or a yes/no and applies it.
Errors are named by their type name (`"TimeoutError"`), the form a task result records them in,
so a decision never needs the exception object itself.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias

from swarmperf.core.errors import ConfigError

__all__ = [
    "TIMEOUT_ERRORS",
    "TRANSIENT_ERRORS",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryMode",
    "RetryOn",
    "RetryPolicies",
    "RetryPolicy",
    "should_retry",
]

Clock = Callable[[], float]
RetryMode: TypeAlias = Literal["failure", "timeout", "any"]
RetryOn: TypeAlias = RetryMode | tuple[str, ...]

TIMEOUT_ERRORS = frozenset({"TimeoutError"})
# Failures that another attempt may well not repeat. A handler's own bug (ValueError,
# KeyError) fails the same way every time, so retrying it only adds load and spends budget.
TRANSIENT_ERRORS: tuple[str, ...] = (
    "TimeoutError",
    "RateLimited",
    "AgentCrashed",
    "ConnectionError",
    "ConnectionResetError",
    "ConnectionRefusedError",
    "ConnectionAbortedError",
    "BrokenPipeError",
)
_MODES: tuple[RetryMode, ...] = ("failure", "timeout", "any")
_RETRY_ON_FIX = (
    "Use 'failure' (every error but a timeout), 'timeout', 'any', "
    "or a list of error type names such as ['TimeoutError', 'RateLimited']."
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a task. Delays are seconds.

    `max_attempts` counts every attempt, the first included. `retry_on` is a mode
    ('failure': any error but a timeout; 'timeout': timeouts only; 'any') or a tuple of
    error type names matched exactly; the default, `TRANSIENT_ERRORS`, retries timeouts,
    throttling, crashed agents and dropped connections, and nothing a handler raised itself.
    Backoff is exponential with "full jitter": uniform(0, min(max_delay,
    base_delay * multiplier ** (attempt - 1))), which spreads retries of many tasks that
    failed together instead of sending them back in step.
    """

    max_attempts: int = 3
    base_delay: float = 0.05
    max_delay: float = 5.0
    multiplier: float = 2.0
    jitter: Literal["full", "none"] = "full"
    retry_on: RetryOn = TRANSIENT_ERRORS

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigError(
                "retry.max_attempts", attempts, "Use an integer >= 1 (1 means never retry)."
            )
        if not 0 <= self.base_delay < math.inf:
            raise ConfigError(
                "retry.base_delay", self.base_delay, "Use a duration >= 0, e.g. 50ms."
            )
        if not self.base_delay <= self.max_delay < math.inf:
            raise ConfigError(
                "retry.max_delay", self.max_delay, "Use a duration >= retry.base_delay, e.g. 5s."
            )
        if not 1 <= self.multiplier < math.inf:
            raise ConfigError("retry.multiplier", self.multiplier, "Use a number >= 1, e.g. 2.")
        if self.jitter not in ("full", "none"):
            raise ConfigError("retry.jitter", self.jitter, "Use 'full' or 'none'.")
        # Lists come from config files; a tuple keeps the policy hashable.
        object.__setattr__(self, "retry_on", _checked_retry_on(self.retry_on))

    def retries(self, error_type: str) -> bool:
        """Whether an error of this type is worth another attempt at all."""
        if self.retry_on == "any":
            return True
        if self.retry_on == "timeout":
            return error_type in TIMEOUT_ERRORS
        if self.retry_on == "failure":
            return error_type not in TIMEOUT_ERRORS
        return error_type in self.retry_on

    def delay_cap(self, attempt: int) -> float:
        """The longest wait after failed attempt number `attempt` (1 for the first)."""
        _check_attempt(attempt)
        try:
            growth = self.multiplier ** (attempt - 1)
        except OverflowError:  # a float power overflows instead of giving inf
            return self.max_delay
        return min(self.max_delay, self.base_delay * growth)

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt `attempt`; reproducible for a seeded `rng`."""
        cap = self.delay_cap(attempt)
        return cap * rng.random() if self.jitter == "full" else cap


def _checked_retry_on(value: object) -> RetryOn:
    if isinstance(value, str):
        for mode in _MODES:
            if value == mode:
                return mode
        raise ConfigError("retry.retry_on", value, _RETRY_ON_FIX)
    if not isinstance(value, tuple | list) or not value:
        raise ConfigError("retry.retry_on", value, _RETRY_ON_FIX)
    for name in value:
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError("retry.retry_on", name, "Name an error type, e.g. 'TimeoutError'.")
    return tuple(value)


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"Attempts are counted from 1, got attempt {attempt}.")


def should_retry(policy: RetryPolicy, attempt: int, error_type: str) -> bool:
    """Whether to try again after attempt number `attempt` (1 for the first) failed."""
    _check_attempt(attempt)
    return attempt < policy.max_attempts and policy.retries(error_type)


@dataclass(frozen=True, slots=True)
class RetryPolicies:
    """A default policy and overrides by task kind."""

    default: RetryPolicy = field(default_factory=RetryPolicy)
    per_kind: Mapping[str, RetryPolicy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, policy in self.per_kind.items():
            if not kind:
                raise ConfigError("retry.per_kind", kind, "Name the task kind the policy is for.")
            if not isinstance(policy, RetryPolicy):
                raise ConfigError(f"retry.per_kind[{kind}]", policy, "Give a retry policy.")
        # A private copy: a caller mutating its dict must not change a frozen setting.
        object.__setattr__(self, "per_kind", MappingProxyType(dict(self.per_kind)))

    def for_kind(self, kind: str) -> RetryPolicy:
        return self.per_kind.get(kind, self.default)


@dataclass(frozen=True, slots=True)
class RetryBudgetStatistics:
    """A snapshot of a retry budget. Counts in the window may reach back up to `window`."""

    requests: int  # recorded in the current window
    retries: int  # granted in the current window
    available: float  # retries that could be granted now
    total_requests: int
    granted: int
    denied: int


_SLICES = 10  # the window is kept as this many slices of counts: bounded memory at any rate
_NEVER = -(2**62)  # a slice index before any clock reading


class RetryBudget:
    """Retries may add at most `ratio` of the recent load, plus a floor for quiet times.

    Guarantee: for every retry granted at time t, the retries granted in [t - window, t]
    (that one included) number at most `ratio` x the requests recorded in [t - window, t]
    plus `min_per_second` x window. Counts are kept in tenths of the window, so a request
    may stop counting up to a tenth of the window early: the error is always towards fewer
    retries. Record only first attempts with `record_request`; if retries earned budget,
    a failing dependency would feed its own retry storm.
    """

    __slots__ = (
        "_clock",
        "_denied",
        "_granted",
        "_min_per_second",
        "_ratio",
        "_requests",
        "_reserve",
        "_retries",
        "_slice",
        "_total_requests",
        "_width",
        "_window",
    )

    def __init__(
        self,
        ratio: float = 0.1,
        min_per_second: float = 1.0,
        window: float = 10.0,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        if not 0 <= ratio < math.inf:
            raise ConfigError("retry.budget.ratio", ratio, "Use a number >= 0, e.g. 0.1 (10%).")
        if not 0 <= min_per_second < math.inf:
            raise ConfigError(
                "retry.budget.min_per_second", min_per_second, "Use a number >= 0, e.g. 1."
            )
        if not 0 < window < math.inf:
            raise ConfigError("retry.budget.window", window, "Use a duration > 0, e.g. 10s.")
        self._ratio = float(ratio)
        self._min_per_second = float(min_per_second)
        self._window = float(window)
        self._reserve = self._min_per_second * self._window
        self._width = self._window / _SLICES
        self._clock = clock
        # One slot more than the window's slices: the oldest slot holds the slice that the
        # window [t - window, t] only partly covers, whose retries still count.
        self._requests = [0] * (_SLICES + 1)
        self._retries = [0] * (_SLICES + 1)
        self._slice = _NEVER
        self._total_requests = 0
        self._granted = 0
        self._denied = 0

    @property
    def ratio(self) -> float:
        return self._ratio

    @property
    def min_per_second(self) -> float:
        return self._min_per_second

    @property
    def window(self) -> float:
        return self._window

    def record_request(self) -> None:
        """Count a first attempt; each one earns `ratio` of a retry."""
        self._requests[self._advance()] += 1
        self._total_requests += 1

    def try_retry(self) -> bool:
        """Spend one retry if the budget allows it now."""
        slot = self._advance()
        if self._balance(slot) < 1.0:
            self._denied += 1
            return False
        self._retries[slot] += 1
        self._granted += 1
        return True

    def statistics(self) -> RetryBudgetStatistics:
        slot = self._advance()
        return RetryBudgetStatistics(
            requests=self._counted_requests(slot),
            retries=sum(self._retries),
            available=max(self._balance(slot), 0.0),
            total_requests=self._total_requests,
            granted=self._granted,
            denied=self._denied,
        )

    def _counted_requests(self, slot: int) -> int:
        # The oldest slot may reach back beyond the window, so its requests earn nothing.
        return sum(self._requests) - self._requests[(slot + 1) % len(self._requests)]

    def _balance(self, slot: int) -> float:
        return self._ratio * self._counted_requests(slot) + self._reserve - sum(self._retries)

    def _advance(self) -> int:
        """Move to the clock's slice, clearing the slots of slices that left the window."""
        current = int(self._clock() // self._width)
        if current > self._slice:
            slots = len(self._requests)
            for index in range(self._slice + 1, min(current, self._slice + slots) + 1):
                self._requests[index % slots] = 0
                self._retries[index % slots] = 0
            self._slice = current
        return self._slice % len(self._requests)

"""The resilience guard: breakers, rate limits, retries, fallbacks and load shedding,
applied to a swarm through the coordinator's `Guard` hooks.

* A circuit breaker per agent: when it opens, the agent is paused (its queued tasks go to
  others); when its open time is up it is let back half-open with its slots capped at the
  trial count; enough trial successes close it and give it all its slots again.
* A circuit breaker per task kind (optional): while open, tasks of that kind are degraded
  to their fallback handler, or shed with the reason.
* Rate limits (requests and tokens per minute) per agent and per shared provider: a start
  that would exceed one pauses the agent until the budget refills, and the task goes to
  another agent, so the budget is never exceeded. A handler that raises `RateLimited`
  pauses its agent for the provider's `retry_after` and its task is retried elsewhere.
* Retries with exponential backoff and full jitter, on another agent where possible, within
  a retry budget; when retries are exhausted, the kind's fallback handler if it has one.
* Load shedding by priority: past a fill level of the queue, new tasks of a level are
  rejected at once with the reason (critical work is never shed).

Error details travel between processes as text ("TypeName: message"); the guard reads the
type name, and for `RateLimited` the retry time and provider from its message.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from swarmperf.balancing.agents import AgentState
from swarmperf.core.errors import ConfigError
from swarmperf.core.events import (
    AGENT_PROBATION,
    AGENT_REINSTATED,
    FALLBACK,
    RATE_LIMITED,
    SHED,
    breaker_kind,
)
from swarmperf.core.model import Priority, Task
from swarmperf.resilience.breaker import BreakerSettings, CircuitBreaker, State, Transition
from swarmperf.resilience.policy import Control, Fallback, Retry, Verdict
from swarmperf.resilience.ratelimit import Limiter, RateLimit
from swarmperf.resilience.retry import RetryBudget, RetryPolicies, RetryPolicy, should_retry

_RETRY_IN = re.compile(r"retry in ([0-9.eE+-]+)s")
_PROVIDER = re.compile(r"Provider '([^']+)'")
_KIND_PREFIX = "kind:"

# A sensible choice of fill levels at which new work of a level is shed (critical: never).
# Shedding is off unless asked for: a batch larger than the queue should wait, not vanish.
SUGGESTED_SHED_AT: Mapping[Priority, float] = {
    Priority.LOW: 0.5,
    Priority.NORMAL: 0.8,
    Priority.HIGH: 0.95,
}


@dataclass(frozen=True, slots=True)
class RetryBudgetSettings:
    """Retries may add at most `ratio` of the calls (and `min_per_second` always) over the
    last `window` seconds."""

    ratio: float = 0.1
    min_per_second: float = 1.0
    window: float = 10.0

    def __post_init__(self) -> None:
        if not (self.ratio >= 0 and math.isfinite(self.ratio)):
            raise ConfigError("ratio", self.ratio, "Use a number >= 0, e.g. 0.1.")
        if not (self.min_per_second >= 0 and math.isfinite(self.min_per_second)):
            raise ConfigError("min_per_second", self.min_per_second, "Use a rate >= 0, e.g. 1.")
        if not (self.window > 0 and math.isfinite(self.window)):
            raise ConfigError("window", self.window, "Use a duration > 0, e.g. 10s.")


@dataclass(frozen=True, slots=True)
class ResilienceSettings:
    """Everything the guard does, validated. None switches a part off."""

    breaker: BreakerSettings | None = field(default_factory=BreakerSettings)
    kind_breaker: BreakerSettings | None = None
    retry: RetryPolicies | None = field(default_factory=lambda: RetryPolicies(RetryPolicy()))
    retry_budget: RetryBudgetSettings | None = field(default_factory=RetryBudgetSettings)
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    agent_rate_limits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fallbacks: Mapping[str, str] = field(default_factory=dict)
    shed_at: Mapping[Priority, float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        for agent_id, keys in self.agent_rate_limits.items():
            for key in keys:
                if key not in self.rate_limits:
                    known = ", ".join(sorted(self.rate_limits)) or "none are defined"
                    raise ConfigError(
                        f"agents[{agent_id}].rate_limits",
                        key,
                        f"Name a limit defined under resilience.rate_limits ({known}).",
                    )
        for level, fill in self.shed_at.items():
            if level is Priority.CRITICAL:
                raise ConfigError(
                    "resilience.shed_at.critical", fill, "Critical work is never shed; remove it."
                )
            if not 0 < fill <= 1:
                raise ConfigError(
                    f"resilience.shed_at.{level.name.lower()}",
                    fill,
                    "Use a fraction of queue.max_queued in (0, 1], e.g. 0.8.",
                )
        for kind, fallback in self.fallbacks.items():
            if fallback == kind:
                raise ConfigError(
                    f"resilience.fallbacks.{kind}", fallback, "A fallback must be another kind."
                )


def error_type(error: str) -> str:
    """The exception type name at the head of an error string."""
    head, _, _ = error.partition(":")
    return head.strip()


class ResilienceGuard:
    """Applies `ResilienceSettings` to one swarm. Pure: time comes from `clock`."""

    def __init__(
        self,
        settings: ResilienceSettings | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings = s = settings or ResilienceSettings()
        self._clock = clock
        self._control: Control | None = None
        self._rng = random.Random(s.seed)
        self._breakers: dict[str, CircuitBreaker] = {}
        self._kind_breakers: dict[str, CircuitBreaker] = {}
        # Breakers (by name) waiting out their open time; a dict keeps insertion order, so
        # breakers that reopen together do so in the same order in every process.
        self._open: dict[str, None] = {}
        self._lost: set[str] = set()  # agents whose worker died; they come back on probation
        self._probation: dict[str, int] = {}  # agent -> trial successes still needed
        self._limiter = Limiter(s.rate_limits, clock=clock) if s.rate_limits else None
        self._budget = (
            RetryBudget(
                s.retry_budget.ratio,
                s.retry_budget.min_per_second,
                s.retry_budget.window,
                clock=clock,
            )
            if s.retry_budget is not None
            else None
        )
        self.transitions: list[Transition] = []

    # -- Guard --------------------------------------------------------------------------

    def attach(self, control: Control) -> None:
        self._control = control

    @property
    def control(self) -> Control:
        if self._control is None:
            raise RuntimeError("ResilienceGuard.attach() must be called first")
        return self._control

    def agent_added(self, agent: AgentState, now: float) -> None:
        settings = self.settings.breaker
        if settings is None:
            return
        self._breakers[agent.id] = CircuitBreaker(
            agent.id, settings, clock=self._clock, on_transition=self._on_transition
        )
        if agent.id in self._lost:
            # A restarted agent is reinstated as a half-open breaker would be: a few
            # trial calls at a time until enough of them succeed.
            self._lost.discard(agent.id)
            self._probation[agent.id] = settings.success_threshold
            self.control.limit_slots(agent.id, settings.half_open_calls)
            self.control.emit(AGENT_PROBATION, agent.id, trials=settings.success_threshold)

    def agent_lost(self, agent_id: str, now: float) -> None:
        self._lost.add(agent_id)

    def agent_removed(self, agent: AgentState) -> None:
        self._breakers.pop(agent.id, None)
        self._open.pop(agent.id, None)
        self._probation.pop(agent.id, None)

    def admit(self, task: Task, now: float) -> str | None:
        shed_at = self.settings.shed_at
        if shed_at:
            fill = shed_at.get(task.priority)
            pending = self.control.pending
            limit = self.control.max_queued
            if fill is not None and pending >= fill * limit:
                reason = (
                    f"shed under overload: {pending} tasks queued, at or above "
                    f"{fill:.0%} of queue.max_queued ({limit}) for "
                    f"{task.priority.name.lower()} work"
                )
                self.control.emit(SHED, task.id, kind=task.kind, reason=reason)
                return reason
        if self.settings.kind_breaker is not None:
            breaker = self._kind_breaker(task.kind)
            if not breaker.allow():
                fallback = self.settings.fallbacks.get(task.kind)
                reason = f"circuit for kind {task.kind!r} is open"
                if fallback is None:
                    self.control.emit(SHED, task.id, kind=task.kind, reason=reason)
                    return f"{reason}; retry in {breaker.retry_after():.1f}s"
                self.control.emit(FALLBACK, task.id, kind=task.kind, to=fallback, reason=reason)
                task.fallback_from = task.kind
                task.kind = fallback
        if self._budget is not None and task.attempts == 0:
            self._budget.record_request()
        return None

    def before_start(self, agent: AgentState, task: Task, now: float) -> float:
        if self._limiter is not None:
            keys = self.settings.agent_rate_limits.get(agent.id)
            if keys:
                wait = self._limiter.try_acquire(keys, task.tokens)
                if wait > 0:
                    self.control.emit(
                        RATE_LIMITED, agent.id, limits=list(keys), wait=round(wait, 6)
                    )
                    return wait
        # Last, because in half-open a yes takes one of the few trial slots.
        breaker = self._breakers.get(agent.id)
        if breaker is not None and not breaker.allow():
            # Half-open with every trial slot taken, or still open: wait a little.
            return max(breaker.retry_after(), 0.01)
        return 0.0

    def after_finish(
        self, agent: AgentState, task: Task, started: float, finished: float, error: str | None
    ) -> Verdict:
        duration = finished - started
        breaker = self._breakers.get(agent.id)
        kind_breaker = self._kind_breakers.get(task.kind)
        if agent.id in self._probation:
            self._on_probation(agent, error)
        if error is None:
            if breaker is not None:
                breaker.record_success(duration)
            if kind_breaker is not None:
                kind_breaker.record_success(duration)
            return None
        etype = error_type(error)
        if etype == "RateLimited":
            return self._throttled(agent, task, error)
        if breaker is not None:
            breaker.record_failure(duration)
        if kind_breaker is not None:
            kind_breaker.record_failure(duration)
        policies = self.settings.retry
        if policies is not None:
            policy = policies.for_kind(task.kind)
            if should_retry(policy, task.attempts, etype) and (
                self._budget is None or self._budget.try_retry()
            ):
                delay = policy.backoff(task.attempts, self._rng)
                return Retry(delay, error, avoid=agent.id)
        fallback = self.settings.fallbacks.get(task.kind)
        if fallback is not None and task.fallback_from is None:
            return Fallback(fallback, f"failed after {task.attempts} attempt(s): {error}")
        return None

    def tick(self, now: float) -> float | None:
        due: float | None = None
        for name in list(self._open):
            breaker = self._breaker_named(name)
            if breaker is None:
                self._open.pop(name, None)
                continue
            wait = breaker.retry_after()
            if wait <= 0:
                # The first allow() after the open time moves it to half-open; give the
                # trial slot back at once, the agent's own trial calls will take them.
                if name.startswith(_KIND_PREFIX):
                    breaker.allow()
                    self._open.pop(name, None)
                    continue
                self._half_open(name)
            else:
                when = now + wait
                due = when if due is None else min(due, when)
        return due

    # -- internals ----------------------------------------------------------------------

    def _on_probation(self, agent: AgentState, error: str | None) -> None:
        settings = self.settings.breaker
        if settings is None:
            return
        if error is not None:
            self._probation[agent.id] = settings.success_threshold
            self.control.suspend(
                agent.id, self._clock() + settings.open_for, f"failed on probation: {error}"
            )
            return
        left = self._probation[agent.id] - 1
        if left > 0:
            self._probation[agent.id] = left
            return
        del self._probation[agent.id]
        self.control.limit_slots(agent.id, None)
        self.control.emit(AGENT_REINSTATED, agent.id)

    def _throttled(self, agent: AgentState, task: Task, error: str) -> Verdict:
        match = _RETRY_IN.search(error)
        retry_after = float(match.group(1)) if match else 1.0
        provider = _PROVIDER.search(error)
        now = self._clock()
        if (
            provider is not None
            and self._limiter is not None
            and provider.group(1) in self._limiter
        ):
            self._limiter.penalise(provider.group(1), retry_after)
        self.control.suspend(agent.id, now + retry_after, f"throttled: {error}")
        self.control.emit(RATE_LIMITED, agent.id, retry_after=retry_after, task=task.id)
        return Retry(0.0, error, avoid=agent.id)

    def _kind_breaker(self, kind: str) -> CircuitBreaker:
        breaker = self._kind_breakers.get(kind)
        if breaker is None:
            settings = self.settings.kind_breaker
            if settings is None:
                raise RuntimeError("no kind breaker settings")
            breaker = CircuitBreaker(
                _KIND_PREFIX + kind, settings, clock=self._clock, on_transition=self._on_transition
            )
            self._kind_breakers[kind] = breaker
        return breaker

    def _breaker_named(self, name: str) -> CircuitBreaker | None:
        if name.startswith(_KIND_PREFIX):
            return self._kind_breakers.get(name[len(_KIND_PREFIX) :])
        return self._breakers.get(name)

    def _half_open(self, agent_id: str) -> None:
        """The open time is up: let the agent back with its slots capped for trials."""
        self._open.pop(agent_id, None)
        settings = self.settings.breaker
        trials = settings.half_open_calls if settings is not None else 1
        control = self.control
        control.limit_slots(agent_id, trials)
        # The breaker turns half-open on the agent's first trial (its allow() in
        # before_start); resuming lets that trial be bound.
        control.resume(agent_id, "breaker half-open: trial calls")

    def _on_transition(self, transition: Transition) -> None:
        self.transitions.append(transition)
        control = self.control
        name = transition.breaker
        to = transition.to_state
        control.emit(
            breaker_kind(to.value),
            name,
            reason=transition.reason,
            previous=transition.from_state.value,
        )
        if name.startswith(_KIND_PREFIX):
            if to is State.OPEN:
                self._open[name] = None
                breaker = self._breaker_named(name)
                if breaker is not None:
                    control.wake_at(self._clock() + breaker.retry_after())
            return
        if to is State.OPEN:
            self._open[name] = None
            control.suspend(name, None, f"breaker open: {transition.reason}")
            breaker = self._breakers.get(name)
            if breaker is not None:
                control.wake_at(self._clock() + breaker.retry_after())
        elif to is State.CLOSED:
            control.limit_slots(name, None)

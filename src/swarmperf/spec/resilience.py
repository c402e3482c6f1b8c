"""The `resilience:` section of the swarm spec and agents' fault and rate-limit fields."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from swarmperf.core.errors import ConfigError
from swarmperf.core.model import Fault, Priority
from swarmperf.resilience.breaker import BreakerSettings
from swarmperf.resilience.bulkheads import BulkheadSettings
from swarmperf.resilience.guard import ResilienceGuard, ResilienceSettings, RetryBudgetSettings
from swarmperf.resilience.ratelimit import RateLimit
from swarmperf.resilience.restart import RestartPolicy
from swarmperf.resilience.retry import RetryPolicies, RetryPolicy
from swarmperf.spec.types import Duration, Fraction, Name, Section

# Limits that keep a typo from becoming a run that never ends or a table that fills memory.
MAX_COUNT = 1_000_000
MAX_ATTEMPTS = 100
MAX_RESTARTS = 10_000
MAX_WINDOW = 100_000
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]


def _checked(build: Callable[[], Any]) -> Any:
    """Build a settings object; its own validation error becomes a spec problem."""
    try:
        return build()
    except ConfigError as exc:
        raise PydanticCustomError(
            "invalid",
            "{problem}",
            {
                "problem": f"{exc.field} is not valid",
                "fix": exc.fix,
                "value": exc.value,
            },
        ) from None


class FaultSpec(Section):
    """A synthetic fault window for demos and chaos tests (see `swarmperf.core.model.Fault`)."""

    start: Duration = 0.0
    end: Duration | None = None
    error_rate: Fraction = 0.0
    slowdown: Annotated[float, Field(gt=0)] = 1.0

    @model_validator(mode="after")
    def _valid(self) -> FaultSpec:
        _checked(self.fault)
        return self

    def fault(self) -> Fault:
        return Fault(self.start, self.end, self.error_rate, self.slowdown)


class BreakerSpec(Section):
    """Per-agent (or per-kind) circuit breaker; see `swarmperf.resilience.breaker`."""

    failure_threshold: Count = 5
    window: Literal["count", "time"] = "time"
    window_size: Annotated[float, Field(gt=0, le=MAX_WINDOW)] = 60.0  # a slot per call/second
    minimum_calls: Count = 10
    failure_rate_threshold: Fraction = 0.5
    slow_call_duration: Duration | None = None
    slow_call_rate_threshold: Fraction = 1.0
    open_for: Duration = 60.0
    half_open_calls: Count = 3
    success_threshold: Count = 3
    adaptive: bool = False
    adaptive_k: Annotated[float, Field(gt=0)] = 3.0
    adaptive_floor: Fraction = 0.2
    backoff_factor: Annotated[float, Field(ge=1)] = 2.0
    max_open_for: Duration = 600.0
    healthy_after: Duration = 300.0

    @model_validator(mode="after")
    def _valid(self) -> BreakerSpec:
        _checked(self.settings)
        return self

    def settings(self) -> BreakerSettings:
        return BreakerSettings(**self.model_dump())


class RetryPolicySpec(Section):
    max_attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)] = 3
    base_delay: Duration = 0.05
    max_delay: Duration = 5.0
    multiplier: Annotated[float, Field(ge=1)] = 2.0
    jitter: Literal["full", "none"] = "full"
    # 'transient' (timeouts, throttling, crashes, dropped connections), 'failure' (any error
    # but a timeout), 'timeout', 'any', or a list of error type names.
    retry_on: Literal["transient", "failure", "timeout", "any"] | tuple[Name, ...] = "transient"

    @model_validator(mode="after")
    def _valid(self) -> RetryPolicySpec:
        _checked(self.policy)
        return self

    def policy(self) -> RetryPolicy:
        data = self.model_dump(include=set(RetryPolicySpec.model_fields))
        if data["retry_on"] == "transient":
            del data["retry_on"]
        return RetryPolicy(**data)


class RetryBudgetSpec(Section):
    ratio: Annotated[float, Field(ge=0)] = 0.1
    min_per_second: Annotated[float, Field(ge=0)] = 1.0
    window: Duration = 10.0


class RetrySpec(RetryPolicySpec):
    per_kind: dict[Name, RetryPolicySpec] = Field(default_factory=dict)
    budget: RetryBudgetSpec | None = Field(default_factory=RetryBudgetSpec)

    def policies(self) -> RetryPolicies:
        per_kind = {k: v.policy() for k, v in self.per_kind.items()}
        return RetryPolicies(self.policy(), per_kind)


class RateLimitSpec(Section):
    requests_per_minute: Annotated[float, Field(gt=0)] | None = None
    tokens_per_minute: Annotated[float, Field(gt=0)] | None = None
    burst: Duration | None = None

    def limit(self, name: str) -> RateLimit:
        return RateLimit(self.requests_per_minute, self.tokens_per_minute, self.burst, name=name)


class BulkheadSpec(Section):
    max_concurrent: Count
    max_queued: Annotated[int, Field(ge=0, le=1_000_000_000)] = 10_000


class RestartSpec(Section):
    max_restarts: Annotated[int, Field(ge=0, le=MAX_RESTARTS)] = 5
    base_delay: Duration = 0.5
    max_delay: Duration = 30.0
    reset_after: Duration = 60.0

    @model_validator(mode="after")
    def _valid(self) -> RestartSpec:
        _checked(self.policy)
        return self

    def policy(self) -> RestartPolicy:
        return RestartPolicy(**self.model_dump())


class ResilienceSpec(Section):
    """Fault tolerance for the whole swarm. `null` switches a part off."""

    breaker: BreakerSpec | None = Field(default_factory=BreakerSpec)
    kind_breaker: BreakerSpec | None = None
    retry: RetrySpec | None = Field(default_factory=RetrySpec)
    rate_limits: dict[Name, RateLimitSpec] = Field(default_factory=dict)
    fallbacks: dict[Name, Name] = Field(default_factory=dict)
    shed_at: dict[Literal["high", "normal", "low"], Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=dict
    )
    bulkheads: dict[Name, BulkheadSpec] = Field(default_factory=dict)
    restart: RestartSpec | None = Field(default_factory=RestartSpec)

    @model_validator(mode="after")
    def _valid(self) -> ResilienceSpec:
        # Building the settings runs their own checks (limits, fallbacks, shed levels).
        _checked(partial(self.settings, {}, 0))
        return self

    def settings(
        self, agent_rate_limits: Mapping[str, tuple[str, ...]], seed: int
    ) -> ResilienceSettings:
        retry = self.retry
        budget = retry.budget if retry is not None else None
        return ResilienceSettings(
            breaker=self.breaker.settings() if self.breaker is not None else None,
            kind_breaker=self.kind_breaker.settings() if self.kind_breaker is not None else None,
            retry=retry.policies() if retry is not None else None,
            retry_budget=(
                RetryBudgetSettings(budget.ratio, budget.min_per_second, budget.window)
                if budget is not None
                else None
            ),
            rate_limits={name: spec.limit(name) for name, spec in self.rate_limits.items()},
            agent_rate_limits=dict(agent_rate_limits),
            fallbacks=dict(self.fallbacks),
            shed_at={Priority.parse(level): fill for level, fill in self.shed_at.items()},
            seed=seed,
        )

    def guard(
        self,
        agent_rate_limits: Mapping[str, tuple[str, ...]],
        seed: int,
        clock: Callable[[], float],
    ) -> ResilienceGuard:
        return ResilienceGuard(self.settings(agent_rate_limits, seed), clock=clock)

    def bulkhead_settings(self) -> dict[str, BulkheadSettings]:
        return {
            kind: BulkheadSettings(spec.max_concurrent, spec.max_queued)
            for kind, spec in self.bulkheads.items()
        }

    def restart_policy(self) -> RestartPolicy | None:
        return self.restart.policy() if self.restart is not None else None

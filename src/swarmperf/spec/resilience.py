"""The `resilience:` section of the swarm spec and agents' fault and rate-limit fields."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, PlainSerializer, model_validator

from swarmperf.core.model import Fault, Priority
from swarmperf.resilience.breaker import BreakerSettings
from swarmperf.resilience.bulkheads import BulkheadSettings
from swarmperf.resilience.guard import ResilienceGuard, ResilienceSettings, RetryBudgetSettings
from swarmperf.resilience.ratelimit import RateLimit
from swarmperf.resilience.restart import RestartPolicy
from swarmperf.resilience.retry import TRANSIENT_ERRORS, RetryOn, RetryPolicies, RetryPolicy
from swarmperf.spec.types import (
    FROM_SETTINGS,
    Duration,
    Fraction,
    Name,
    PositiveFraction,
    Section,
    SettingsSection,
    checked,
)

# Limits that keep a typo from becoming a run that never ends or a table that fills memory.
MAX_COUNT = 1_000_000
MAX_ATTEMPTS = 100
MAX_RESTARTS = 10_000
MAX_WINDOW = 100_000
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]

# Each section below is its settings class with YAML spellings: the fields declared here
# are those whose type says more than the settings class's (durations, bounds); every other
# field, and every default, is the settings class's own.


class FaultSpec(SettingsSection, settings=Fault):
    """A synthetic fault window for demos and chaos tests (see `swarmperf.core.model.Fault`)."""

    start: Duration = FROM_SETTINGS
    end: Duration | None = FROM_SETTINGS
    error_rate: Fraction = FROM_SETTINGS
    slowdown: Annotated[float, Field(gt=0)] = FROM_SETTINGS

    def to_settings(self) -> Fault:
        return Fault(**self.settings_arguments())


class BreakerSpec(SettingsSection, settings=BreakerSettings):
    """Per-agent (or per-kind) circuit breaker; see `swarmperf.resilience.breaker`."""

    failure_threshold: Count = FROM_SETTINGS
    window_size: Annotated[float, Field(gt=0, le=MAX_WINDOW)] = FROM_SETTINGS  # a slot per call/s
    minimum_calls: Count = FROM_SETTINGS
    failure_rate_threshold: Fraction = FROM_SETTINGS
    slow_call_duration: Duration | None = FROM_SETTINGS
    slow_call_rate_threshold: Fraction = FROM_SETTINGS
    open_for: Duration = FROM_SETTINGS
    half_open_calls: Count = FROM_SETTINGS
    success_threshold: Count = FROM_SETTINGS
    adaptive_k: Annotated[float, Field(gt=0)] = FROM_SETTINGS
    adaptive_floor: Fraction = FROM_SETTINGS
    adaptive_alpha: PositiveFraction = FROM_SETTINGS
    backoff_factor: Annotated[float, Field(ge=1)] = FROM_SETTINGS
    max_open_for: Duration = FROM_SETTINGS
    healthy_after: Duration = FROM_SETTINGS

    def to_settings(self) -> BreakerSettings:
        return BreakerSettings(**self.settings_arguments())


def _transient_by_name(value: RetryOn | Literal["transient"]) -> RetryOn:
    return TRANSIENT_ERRORS if value == "transient" else value


def _transient_as_name(value: RetryOn) -> str | tuple[str, ...]:
    return "transient" if value == TRANSIENT_ERRORS else value


# 'transient' (timeouts, throttling, crashes, dropped connections: the settings' default),
# 'failure' (any error but a timeout), 'timeout', 'any', or a list of error type names.
RetryOnSpec = Annotated[
    Literal["transient", "failure", "timeout", "any"] | tuple[Name, ...],
    AfterValidator(_transient_by_name),
    PlainSerializer(_transient_as_name),
]


class RetryPolicySpec(SettingsSection, settings=RetryPolicy):
    max_attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)] = FROM_SETTINGS
    base_delay: Duration = FROM_SETTINGS
    max_delay: Duration = FROM_SETTINGS
    multiplier: Annotated[float, Field(ge=1)] = FROM_SETTINGS
    retry_on: RetryOnSpec = FROM_SETTINGS

    def to_settings(self) -> RetryPolicy:
        return RetryPolicy(**self.settings_arguments())


class RetryBudgetSpec(SettingsSection, settings=RetryBudgetSettings):
    ratio: Annotated[float, Field(ge=0)] = FROM_SETTINGS
    min_per_second: Annotated[float, Field(ge=0)] = FROM_SETTINGS
    window: Duration = FROM_SETTINGS

    def to_settings(self) -> RetryBudgetSettings:
        return RetryBudgetSettings(**self.settings_arguments())


class RetrySpec(RetryPolicySpec):
    """The default retry policy, with overrides by task kind and a budget for them all."""

    per_kind: dict[Name, RetryPolicySpec] = Field(default_factory=dict)
    budget: RetryBudgetSpec | None = Field(default_factory=RetryBudgetSpec)

    def policies(self) -> RetryPolicies:
        per_kind = {k: v.to_settings() for k, v in self.per_kind.items()}
        return RetryPolicies(self.to_settings(), per_kind)


# A rate limit's checks name it by its key, so the resilience section runs them.
class RateLimitSpec(SettingsSection, settings=RateLimit, exclude={"name"}, checked=False):
    requests_per_minute: Annotated[float, Field(gt=0)] | None = FROM_SETTINGS
    tokens_per_minute: Annotated[float, Field(gt=0)] | None = FROM_SETTINGS
    burst: Duration | None = FROM_SETTINGS

    def to_settings(self, name: str) -> RateLimit:
        return RateLimit(**self.settings_arguments(), name=name)


class BulkheadSpec(SettingsSection, settings=BulkheadSettings):
    max_concurrent: Count
    max_queued: Annotated[int, Field(ge=0, le=1_000_000_000)] = FROM_SETTINGS

    def to_settings(self) -> BulkheadSettings:
        return BulkheadSettings(**self.settings_arguments())


class RestartSpec(SettingsSection, settings=RestartPolicy):
    max_restarts: Annotated[int, Field(ge=0, le=MAX_RESTARTS)] = FROM_SETTINGS
    base_delay: Duration = FROM_SETTINGS
    max_delay: Duration = FROM_SETTINGS
    reset_after: Duration = FROM_SETTINGS

    def to_settings(self) -> RestartPolicy:
        return RestartPolicy(**self.settings_arguments())


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
        checked(partial(self.settings, {}, 0))
        return self

    def settings(
        self, agent_rate_limits: Mapping[str, tuple[str, ...]], seed: int
    ) -> ResilienceSettings:
        retry = self.retry
        budget = retry.budget if retry is not None else None
        return ResilienceSettings(
            breaker=self.breaker.to_settings() if self.breaker is not None else None,
            kind_breaker=(
                self.kind_breaker.to_settings() if self.kind_breaker is not None else None
            ),
            retry=retry.policies() if retry is not None else None,
            retry_budget=budget.to_settings() if budget is not None else None,
            rate_limits={name: spec.to_settings(name) for name, spec in self.rate_limits.items()},
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
        return {kind: spec.to_settings() for kind, spec in self.bulkheads.items()}

    def restart_policy(self) -> RestartPolicy | None:
        return self.restart.to_settings() if self.restart is not None else None

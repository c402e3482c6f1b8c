"""Fault tolerance: circuit breakers, rate limits, retries, and the guard that applies them."""

from swarmperf.core.errors import CircuitOpen, RateLimited
from swarmperf.resilience.breaker import (
    BreakerSettings,
    BreakerStatistics,
    CircuitBreaker,
    State,
    Transition,
)
from swarmperf.resilience.guard import ResilienceGuard, ResilienceSettings, RetryBudgetSettings
from swarmperf.resilience.ratelimit import Limiter, RateLimit, TokenBucket
from swarmperf.resilience.retry import RetryBudget, RetryPolicies, RetryPolicy

__all__ = [
    "BreakerSettings",
    "BreakerStatistics",
    "CircuitBreaker",
    "CircuitOpen",
    "Limiter",
    "RateLimit",
    "RateLimited",
    "ResilienceGuard",
    "ResilienceSettings",
    "RetryBudget",
    "RetryBudgetSettings",
    "RetryPolicies",
    "RetryPolicy",
    "State",
    "TokenBucket",
    "Transition",
]

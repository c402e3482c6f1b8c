"""Resilience: circuit breakers and the other guards around calls to agents."""

from swarmperf.resilience.breaker import (
    BreakerSettings,
    BreakerStatistics,
    CircuitBreaker,
    CircuitOpen,
    State,
    Transition,
)

__all__ = [
    "BreakerSettings",
    "BreakerStatistics",
    "CircuitBreaker",
    "CircuitOpen",
    "State",
    "Transition",
]

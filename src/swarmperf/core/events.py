"""What a swarm records as it runs: an `Event`, and every kind of event as a named constant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class Event:
    """Something worth recording: a breaker trip, a retry, a shed task, a restart."""

    ts: float  # on the swarm's clock
    kind: str  # one of `KINDS`, e.g. BREAKER_OPEN
    subject: str  # the agent, task kind or task id it concerns
    detail: Mapping[str, Any] = field(default_factory=dict)


# The values are stored with each run and shown to users: they never change once released.

# Agents
AGENT_LOST: Final = "agent-lost"
AGENT_PAUSED: Final = "agent-paused"
AGENT_RESUMED: Final = "agent-resumed"
AGENT_PROBATION: Final = "agent-probation"
AGENT_REINSTATED: Final = "agent-reinstated"
AGENT_RESTARTED: Final = "agent-restarted"
AGENT_RESTART_FAILED: Final = "agent-restart-failed"
AGENT_GIVEN_UP: Final = "agent-given-up"
AGENT_PLACED: Final = "agent-placed"

# The swarm as a whole
STRATEGY_CHANGED: Final = "strategy-changed"

# Tasks
RETRY: Final = "retry"
FALLBACK: Final = "fallback"
SHED: Final = "shed"
RATE_LIMITED: Final = "rate-limited"
DUPLICATE_SUBMISSION: Final = "duplicate-submission"
DUPLICATE_RESULT_IGNORED: Final = "duplicate-result-ignored"

# Circuit breakers (per agent, or per task kind); `breaker_kind` maps a state to its kind
BREAKER_OPEN: Final = "breaker-open"
BREAKER_HALF_OPEN: Final = "breaker-half-open"
BREAKER_CLOSED: Final = "breaker-closed"

# The monitor and what watches it
MONITOR_TICK_FAILED: Final = "monitor-tick-failed"
MONITOR_STORE_FAILED: Final = "monitor-store-failed"
MONITOR_OBSERVER_FAILED: Final = "monitor-observer-failed"
ANOMALY: Final = "anomaly"

# Every kind, with what it means: the reference for readers of stored events.
KINDS: Final[Mapping[str, str]] = {
    AGENT_LOST: "an agent died or was removed; its in-flight tasks were re-queued",
    AGENT_PAUSED: "an agent takes no new tasks for now (breaker open, rate limit)",
    AGENT_RESUMED: "a paused agent takes tasks again",
    AGENT_PROBATION: "a breaker half-opened: the agent gets a few trial tasks",
    AGENT_REINSTATED: "an agent passed its trial tasks and is back in full",
    AGENT_RESTARTED: "a lost agent was started again by its restart policy",
    AGENT_RESTART_FAILED: "starting a lost agent again failed; it will be tried later",
    AGENT_GIVEN_UP: "a lost agent used up its restarts and stays down",
    AGENT_PLACED: "an agent started on a cluster node (Ray): which one, and the one before",
    STRATEGY_CHANGED: "the swarm's load-balancing strategy was replaced while it ran",
    RETRY: "a failed task was queued again under its retry policy",
    FALLBACK: "a task was turned into its fallback kind",
    SHED: "a task was dropped before it ran (open kind breaker, full bulkhead)",
    RATE_LIMITED: "a rate limit or a provider's throttling delayed an agent",
    DUPLICATE_SUBMISSION: "a task with an idempotency key already seen was not queued again",
    DUPLICATE_RESULT_IGNORED: "a second result for a finished task was ignored",
    BREAKER_OPEN: "a breaker tripped: calls are refused for a while",
    BREAKER_HALF_OPEN: "a breaker lets trial calls through",
    BREAKER_CLOSED: "a breaker closed again after its trials passed",
    MONITOR_TICK_FAILED: "a sampling tick of the monitor failed; the loop went on",
    MONITOR_STORE_FAILED: "the monitor could not write a sample to the store",
    MONITOR_OBSERVER_FAILED: "an observer of the monitor raised; the loop went on",
    ANOMALY: "the anomaly detectors flagged a figure of the run",
}

_BREAKER_KINDS: Final[Mapping[str, str]] = {
    "open": BREAKER_OPEN,
    "half-open": BREAKER_HALF_OPEN,
    "closed": BREAKER_CLOSED,
}


def breaker_kind(state: str) -> str:
    """The event kind of a breaker entering `state`: open, half-open or closed."""
    return _BREAKER_KINDS[state]

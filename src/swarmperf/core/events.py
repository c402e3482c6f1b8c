"""What a swarm records as it runs: an `Event`, such as a breaker trip, a retry or a restart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """Something worth recording: a breaker trip, a retry, a shed task, a restart."""

    ts: float  # on the swarm's clock
    kind: str  # kebab-case, e.g. "breaker-open", "retry", "shed"
    subject: str  # the agent, task kind or task id it concerns
    detail: Mapping[str, Any] = field(default_factory=dict)

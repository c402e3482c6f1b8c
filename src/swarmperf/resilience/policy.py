"""The contract between the coordinator and a fault-tolerance policy (a `Guard`).

The coordinator stays a plain dispatcher; a guard watches what happens (starts, finishes,
time passing) and steers it through a small `Control` surface: pause and resume agents,
cap an agent's slots, and record events. Verdicts on finished tasks come back as values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from swarmperf.balancing.agents import AgentState
from swarmperf.core.model import Task


@dataclass(frozen=True, slots=True)
class Retry:
    """Run the task again after `delay` seconds, elsewhere than `avoid` if possible."""

    delay: float
    reason: str
    avoid: str | None = None


@dataclass(frozen=True, slots=True)
class Fallback:
    """Run the task again now as `kind` (a cheaper handler, a cached answer)."""

    kind: str
    reason: str


Verdict = Retry | Fallback | None  # None: record the result as it is


class Control(Protocol):
    """What a guard may ask of the coordinator."""

    def suspend(self, agent_id: str, until: float | None, reason: str) -> None: ...

    def resume(self, agent_id: str, reason: str) -> None: ...

    def limit_slots(self, agent_id: str, slots: int | None) -> None:
        """Cap the agent's slots (None: back to its own), e.g. for half-open trials."""
        ...

    def emit(self, event: str, subject: str, /, **detail: Any) -> None: ...

    def wake_at(self, when: float) -> None:
        """Have the guard's `tick` called at `when`, on the coordinator's clock."""
        ...

    def reject(self, task: Task, reason: str) -> None:
        """Finish `task` now as REJECTED with `reason`, without running it."""
        ...

    @property
    def pending(self) -> int: ...

    @property
    def max_queued(self) -> int: ...


class Guard(Protocol):
    """A fault-tolerance policy. Pure: it reads the clock values it is given."""

    def attach(self, control: Control) -> None: ...

    def agent_added(self, agent: AgentState, now: float) -> None: ...

    def agent_removed(self, agent: AgentState) -> None: ...

    def agent_lost(self, agent_id: str, now: float) -> None:
        """The agent's worker died (after `agent_removed`)."""
        ...

    def admit(self, task: Task, now: float) -> str | None:
        """A reason to shed `task` instead of queueing it, or None to admit it."""
        ...

    def before_start(self, agent: AgentState, task: Task, now: float) -> float:
        """0 to start `task` on `agent` now; else seconds the agent must wait (it is
        paused that long and the task goes to another agent)."""
        ...

    def after_finish(
        self, agent: AgentState, task: Task, started: float, finished: float, error: str | None
    ) -> Verdict: ...

    def tick(self, now: float) -> float | None:
        """Act on time passing (asked for with `Control.wake_at`); return when to be
        called next (None: no need)."""
        ...

"""When and how often to restart an agent whose worker died: exponential backoff."""

from __future__ import annotations

from dataclasses import dataclass

from swarmperf.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Restart a lost agent after `base_delay * 2**(n-1)` seconds (capped at `max_delay`)
    for its n-th loss in a row; give up after `max_restarts`. An agent that stays up for
    `reset_after` seconds starts counting from zero again."""

    max_restarts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    reset_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ConfigError("restart.max_restarts", self.max_restarts, "Use an integer >= 0.")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ConfigError(
                "restart.base_delay",
                self.base_delay,
                "Use a duration >= 0 and <= restart.max_delay, e.g. 500ms.",
            )
        if not self.reset_after > 0:
            raise ConfigError("restart.reset_after", self.reset_after, "Use a duration > 0.")

    def delay(self, restarts_so_far: int) -> float | None:
        """Seconds to wait before the next restart, or None to give up."""
        if restarts_so_far >= self.max_restarts:
            return None
        return min(self.max_delay, self.base_delay * 2.0**restarts_so_far)

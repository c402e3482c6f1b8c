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


class Restarts:
    """Which restart attempt comes next for each lost agent, and when: one attempt, one count.

    A state machine on an injected clock (`now` arguments), with no I/O. `lost` starts a
    run of attempts for an agent that died while up, `failed` continues it after an attempt
    that did not bring the agent up, and `started` ends it. Each returns the attempt's
    number and its delay, or None once the policy gives up; from then on the agent is
    `given_up` and every call returns None, so nothing is tried after giving up.
    """

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._made: dict[str, int] = {}  # attempts made in the current run of losses
        self._up_since: dict[str, float] = {}
        self._given_up: set[str] = set()

    def lost(self, agent_id: str, now: float) -> tuple[int, float] | None:
        """`agent_id` died while up: the next attempt, or None to give up."""
        up_since = self._up_since.pop(agent_id, None)
        if up_since is not None and now - up_since >= self.policy.reset_after:
            self._made[agent_id] = 0  # it stayed up long enough: a fresh run of losses
        return self._next(agent_id)

    def failed(self, agent_id: str, now: float) -> tuple[int, float] | None:
        """An attempt did not bring `agent_id` up: the next attempt, or None to give up."""
        return self._next(agent_id)

    def started(self, agent_id: str, now: float) -> None:
        """An attempt brought `agent_id` up at `now`."""
        if agent_id not in self._given_up:
            self._up_since[agent_id] = now

    def given_up(self, agent_id: str) -> bool:
        return agent_id in self._given_up

    def attempts(self, agent_id: str) -> int:
        """Attempts made for `agent_id` in its current run of losses."""
        return self._made.get(agent_id, 0)

    def _next(self, agent_id: str) -> tuple[int, float] | None:
        if agent_id in self._given_up:
            return None
        made = self._made.get(agent_id, 0)
        delay = self.policy.delay(made)
        if delay is None:
            self._given_up.add(agent_id)
            return None
        self._made[agent_id] = made + 1
        return made + 1, delay

"""Resizing a live swarm's pools (agents named `<pool>-<n>`), and undoing a resize exactly."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from swarmperf.core.model import AgentSpec
from swarmperf.core.pools import plan_resize
from swarmperf.runtime.swarm import Swarm

# Makes the spec of a new agent: (pool, agent id) -> spec.
MakeSpec = Callable[[str, str], AgentSpec]


@dataclass(slots=True)
class Resized:
    """What a resize did: the pools' sizes before and after, and the agents it added and
    removed (their specs, to put them back as they were)."""

    before: dict[str, int]
    after: dict[str, int]
    added: list[AgentSpec] = field(default_factory=list)
    removed: list[AgentSpec] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return {
            "pools_before": self.before,
            "pools_after": self.after,
            "added": [s.id for s in self.added],
            "removed": [s.id for s in self.removed],
        }


async def resize(swarm: Swarm, counts: Mapping[str, int], make: MakeSpec) -> Resized:
    """Bring each pool of `counts` to its size: adds first, then removals (the newest
    agents of a pool first), so the swarm keeps agents throughout."""
    plan = plan_resize(list(swarm.coordinator.agents), counts)
    done = Resized(plan.before, plan.after)
    for pool, agent_id in plan.add:
        spec = make(pool, agent_id)
        await swarm.add_agent(spec)
        done.added.append(spec)
    for agent_id in plan.remove:
        spec = swarm.agent_spec(agent_id) or AgentSpec(agent_id)
        await swarm.remove_agent(agent_id)
        done.removed.append(spec)
    return done


async def undo(swarm: Swarm, done: Resized) -> dict[str, Any]:
    """Put the agents a resize removed back, then remove those it added (the ones still
    there): the pools as they were before it."""
    back: list[str] = []
    gone: list[str] = []
    agents = swarm.coordinator.agents
    for spec in done.removed:
        if spec.id not in agents:
            await swarm.add_agent(spec)
            back.append(spec.id)
    for spec in reversed(done.added):
        if spec.id in agents and len(agents) > 1:
            await swarm.remove_agent(spec.id)
            gone.append(spec.id)
    return {"added": back, "removed": gone, "pools": dict(done.before)}

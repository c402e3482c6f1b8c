"""The cost model: what agents and tasks cost, shared by the allocator and the reports.

One definition serves both: the allocator minimises `CostModel.hourly` over pool sizes, and
the performance report prices stored runs with `CostModel.agent_hour_price` and `per_task`,
so a report's cost per 1,000 tasks is the figure an allocation was chosen for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CostModel:
    """What running a swarm costs: per agent-hour and/or per task run.

    `per_pool_hour` prices the agents of named pools (an agent `<pool>` or `<pool>-<n>`
    belongs to pool `<pool>`); any other agent costs `per_agent_hour`.
    """

    per_agent_hour: float | None = None
    per_task: float | None = None
    currency: str = "USD"
    per_pool_hour: Mapping[str, float] = field(default_factory=dict)

    def pool_of(self, agent_id: str) -> str | None:
        """The priced pool `agent_id` belongs to (the longest matching name), if any."""
        best: str | None = None
        for pool in self.per_pool_hour:
            if (agent_id == pool or agent_id.startswith(pool + "-")) and (
                best is None or len(pool) > len(best)
            ):
                best = pool
        return best

    def agent_hour_price(self, agent_id: str) -> float | None:
        """What one hour of `agent_id` costs; None when nothing prices it."""
        pool = self.pool_of(agent_id)
        return self.per_pool_hour[pool] if pool is not None else self.per_agent_hour

    @property
    def prices_agents(self) -> bool:
        return self.per_agent_hour is not None or bool(self.per_pool_hour)

    def hourly(self, counts: Mapping[str, int]) -> float:
        """The cost of one hour of `counts[pool]` agents in each pool."""
        total = 0.0
        for pool, n in counts.items():
            price = self.per_pool_hour.get(pool, self.per_agent_hour)
            total += n * (price or 0.0)
        return total


def per_1000_tasks(hourly: float, tasks_per_s: float, per_task: float | None = None) -> float:
    """Cost of 1,000 tasks at `tasks_per_s` on agents costing `hourly` (plus `per_task`)."""
    if not tasks_per_s > 0:
        return float("inf")
    return 1000.0 * (hourly / (3600.0 * tasks_per_s) + (per_task or 0.0))


def idle_cost(agents_cost: float, busy_share: float) -> float:
    """The share of `agents_cost` paid for slots that ran nothing."""
    return agents_cost * (1.0 - min(max(busy_share, 0.0), 1.0))


def per_dollar(tasks: float, cost: float) -> float | None:
    """Performance per unit of currency: tasks done per unit spent (None: nothing spent)."""
    return tasks / cost if cost > 0 else None

"""A live swarm's topology on trial: its measured messages, the plan from its workload, the rule.

The Topology Optimizer's live half. `MessageWindow` keeps the messages a served swarm
delivered lately (when each was sent and how long it took), so a window before a change and
the window after it can be compared. `live_plan` runs the offline planner
(`app.topologies.plan_topologies`) on the swarm's own spec with the workload it measured:
tasks at the rate it finished them, each as long as its median service time, sending what
its agents measurably sent (`measured_traffic`: its communication matrix), or, before they
sent anything, what its `messages:` section says. `trial_rule` is how a switch is judged:
the measured figure of the objective over the window after it must be better by at least
`min_gain`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from swarmperf.app.topologies import OBJECTIVES as PLAN_OBJECTIVES
from swarmperf.app.topologies import TopologyPlan, candidates, plan_topologies
from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.core.trial import TrialRule
from swarmperf.monitor.snapshot import SwarmFigures
from swarmperf.routing import TOPOLOGIES, TopologySettings
from swarmperf.runtime.messaging import CommunicationMatrix, Delivery
from swarmperf.runtime.traffic import MeasuredTraffic
from swarmperf.spec import SwarmSpec
from swarmperf.spec.messages import TopologySpec

# The planner's objective -> the live figure that confirms it (lower is better for each):
# p99: tasks' p99 latency; makespan: a live swarm never ends, so the mean time a task takes
# from acceptance to its result stands for it; traffic (messages x latency): the mean
# seconds a message takes from its sending to its delivery, hops and relays included.
LIVE_FIGURES: Final = {
    "p99": "latency_p99_s",
    "makespan": "latency_mean_s",
    "traffic": "message_latency_mean_s",
}
ADAPTIVE: Final = "adaptive"
FIXED: Final = "fixed:"
DEFAULT_MIN_GAIN: Final = 0.1
KEPT_DELIVERIES: Final = 100_000  # the newest messages kept for windows: bounded memory
PLAN_TASKS: Final = (50, 400)  # the simulated workload's size, from the measured rate
PLAN_SPAN_S: Final = 20.0  # ...about this many seconds of it


@dataclass(frozen=True, slots=True)
class Strategy:
    """`adaptive` (the planner's best) or `fixed:<kind>` (that kind, shaped as the plan
    shapes it)."""

    fixed: str | None

    @classmethod
    def parse(cls, text: str) -> Strategy:
        if text == ADAPTIVE:
            return cls(None)
        if text.startswith(FIXED):
            kind = text[len(FIXED) :]
            if kind not in TOPOLOGIES:
                raise UnknownName("--strategy", text, tuple(FIXED + k for k in TOPOLOGIES))
            return cls(kind)
        raise ConfigError(
            "--strategy",
            text,
            f"Use adaptive, or fixed:<topology> with one of: {', '.join(TOPOLOGIES)}.",
        )

    def __str__(self) -> str:
        return ADAPTIVE if self.fixed is None else FIXED + self.fixed


def check_objective(objective: str) -> str:
    if objective not in PLAN_OBJECTIVES:
        raise ConfigError("--objective", objective, f"Choose one of: {', '.join(PLAN_OBJECTIVES)}.")
    return objective


def check_min_gain(min_gain: float) -> float:
    if isinstance(min_gain, bool) or not math.isfinite(min_gain) or not 0 <= min_gain < 1:
        raise ConfigError(
            "--min-gain", min_gain, "Give the least improvement to keep, from 0 to 1, e.g. 0.1."
        )
    return min_gain


def trial_rule(objective: str, min_gain: float, min_samples: int = 20) -> TrialRule:
    """The measured figure of `objective` must improve by `min_gain` over the window after."""
    return TrialRule(objective=LIVE_FIGURES[objective], min_gain=min_gain, min_samples=min_samples)


class MessageWindow:
    """The messages a swarm delivered lately: (sent, latency, hops) of the newest
    `KEPT_DELIVERIES`, for the figures of a window."""

    def __init__(self, kept: int = KEPT_DELIVERIES) -> None:
        self._kept: deque[tuple[float, float, int]] = deque(maxlen=kept)
        self.failed = 0

    def __call__(self, delivery: Delivery) -> None:
        if delivery.error is None:
            self._kept.append((delivery.sent_at, delivery.latency, delivery.hops))
        else:
            self.failed += 1

    def figures(self, start: float, end: float) -> dict[str, Any]:
        """The messages sent from `start` to `end` (swarm clock) and delivered: how many,
        their mean latency and hops; None where none was."""
        window = [(lat, hops) for sent, lat, hops in self._kept if start <= sent < end]
        n = len(window)
        return {
            "messages_delivered": n,
            "message_latency_mean_s": sum(lat for lat, _ in window) / n if n else None,
            "message_hops_mean": sum(hops for _, hops in window) / n if n else None,
        }


def topology_spec(settings: TopologySettings) -> TopologySpec:
    return TopologySpec.model_validate(
        {
            "kind": settings.kind,
            "hub": settings.hub,
            "fanout": settings.fanout,
            "cluster_size": settings.cluster_size,
        }
    )


def measured_workload(figures: SwarmFigures) -> dict[str, Any]:
    """The workload the planner simulates, from the figures of the swarm's last window."""
    rate = figures.throughput_per_s
    service = figures.service.p50
    if not figures.completed or rate is None or not rate > 0 or service is None:
        raise ConfigError(
            "workload",
            f"{figures.completed} tasks finished in the last {figures.window_s:.3g} s",
            "There is no measured workload to plan from: submit work to the swarm first.",
        )
    low, high = PLAN_TASKS
    tasks = int(min(max(round(rate * PLAN_SPAN_S), low), high))
    return {
        "tasks": tasks,
        "kind": "sleep",
        "size": {"distribution": "constant", "value": float(service)},
        "arrival": {"process": "poisson", "rate": float(rate)},
    }


def check_traffic(spec: SwarmSpec) -> None:
    """The planner simulates the traffic the spec's `messages:` section declares."""
    if spec.messages is None:
        raise ConfigError(
            "messages",
            None,
            "The swarm's spec sends no messages, so the planner has no traffic to simulate: "
            "add a `messages:` section (e.g. messages: {pattern: broadcast}) and serve it again.",
        )


def measured_traffic(
    matrix: CommunicationMatrix, completed: Mapping[str, int], agents: Sequence[str]
) -> MeasuredTraffic | None:
    """What `agents` (the spec's) sent each other, from the swarm's communication matrix,
    with what may have made each send: the tasks it finished (`completed`) and the
    messages sent to it. None when they sent each other nothing."""
    index = {agent: i for i, agent in enumerate(matrix.agents)}
    kept = [agent for agent in agents if agent in index]
    rows = [index[agent] for agent in kept]
    messages = matrix.messages[np.ix_(rows, rows)]
    if not messages.sum():
        return None
    received = matrix.messages[:, rows].sum(axis=0)
    events = np.array([completed.get(agent, 0) for agent in kept], dtype=np.int64) + received
    return MeasuredTraffic(tuple(kept), messages, matrix.bytes[np.ix_(rows, rows)], events)


def live_plan(
    spec: SwarmSpec,
    current: TopologySettings,
    workload: dict[str, Any],
    objective: str,
    measured: MeasuredTraffic | None = None,
) -> TopologyPlan:
    """Each topology simulated on the swarm's agents with `workload` (as
    `measured_workload` makes it), the one in force now first: the tasks send `measured`
    traffic (`measured_traffic`), else what the spec's messages declare; the hops cost
    what the spec's messages say."""
    check_traffic(spec)
    planned = spec.model_copy(
        update={
            "topology": topology_spec(current),
            "workload": type(spec.workload).model_validate(workload),
            "backend": "sim",
        }
    )
    return plan_topologies(planned, objective, measured=measured)


def chosen(plan: TopologyPlan, strategy: Strategy) -> tuple[str, float | None]:
    """The topology `strategy` picks from `plan` (as described) and its predicted gain."""
    if strategy.fixed is None:
        return plan.best, plan.gain
    by_kind = {f.topology.split("(")[0]: f for f in plan.figures}
    by_name = {f.topology: f for f in plan.figures}
    target, current = by_kind[strategy.fixed], by_name[plan.current]
    before, after = current.objective(plan.objective), target.objective(plan.objective)
    if before is None or after is None or before <= 0:
        return target.topology, None
    return target.topology, (before - after) / before


def settings_of(name: str, spec: SwarmSpec, current: TopologySettings) -> TopologySettings:
    """The settings of the topology `name` (as the plan describes them)."""
    planned = spec.model_copy(update={"topology": topology_spec(current)})
    for candidate in candidates(planned):
        settings = candidate.to_settings()
        if settings.describe() == name:
            return settings
    raise ConfigError("topology", name, f"Name one of: {', '.join(TOPOLOGIES)}.")

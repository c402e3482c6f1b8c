"""Live figures of a running swarm over a sliding window, from its results and events.

`SwarmMetrics` listens to a `Swarm` (`on_result`, `on_event`) and reads its coordinator's
agents and queue when asked for `figures()`. Each result lands in the time slice of its
finish on the swarm's clock; busy time is split over the slices its start..finish interval
overlaps, so utilisation is busy slot-seconds inside the window / (slots x window). A task
still running counts once it finishes (results carry its start), so the newest window
under-states the busy time of long tasks still in flight; older windows are exact.

Counts per (agent, status) are kept since attach, for Prometheus counters, in a `Registry`
whose label-set limit bounds memory when agents come and go.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from math import floor
from typing import TYPE_CHECKING

from swarmperf.core.events import (
    AGENT_LOST,
    AGENT_RESTARTED,
    BREAKER_CLOSED,
    BREAKER_HALF_OPEN,
    BREAKER_OPEN,
    Event,
)
from swarmperf.core.latency import LatencySummary
from swarmperf.core.model import Priority, TaskResult, TaskStatus
from swarmperf.monitor.metrics import OVERFLOW, CounterSeries, Registry
from swarmperf.monitor.names import NO_AGENT, TASKS_TOTAL
from swarmperf.monitor.sketch import DEFAULT_ALPHA, QuantileSketch, SlidingRing
from swarmperf.monitor.snapshot import AgentFigures, SwarmFigures
from swarmperf.resilience.guard import ResilienceGuard

if TYPE_CHECKING:
    from swarmperf.balancing.agents import AgentState
    from swarmperf.runtime.swarm import Swarm

SUCCEEDED = TaskStatus.SUCCEEDED
FAILED = TaskStatus.FAILED
REJECTED = TaskStatus.REJECTED
_BREAKER_EVENTS = {
    BREAKER_OPEN: "open",
    BREAKER_CLOSED: "closed",
    BREAKER_HALF_OPEN: "half_open",
}
_NOT_FINISHED = "no task finished in the window"


class _AgentSlice:
    __slots__ = ("busy", "completed", "failed", "service")

    def __init__(self, alpha: float) -> None:
        self.completed = 0
        self.failed = 0
        self.busy = 0.0
        self.service = QuantileSketch(alpha)


class _Slice:
    __slots__ = (
        "agents",
        "alpha",
        "failed",
        "latency",
        "rejected",
        "succeeded",
        "unavailable",
        "wait",
    )

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.latency = QuantileSketch(alpha)
        self.wait = QuantileSketch(alpha)
        self.succeeded = 0
        self.failed = 0
        self.rejected = 0
        self.unavailable = 0  # rejected, or failed without reaching an agent
        self.agents: dict[str, _AgentSlice] = {}


class Totals:
    """Cumulative sum and count since attach (a Prometheus summary's `_sum`/`_count`)."""

    __slots__ = ("count", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0

    def add(self, x: float) -> None:
        self.count += 1
        self.sum += x


def quantiles_of(sketch: QuantileSketch) -> LatencySummary:
    """The snapshot's `LatencySummary` from a sketch (count 0 and Nones when empty)."""
    if sketch.count == 0:
        return LatencySummary(0)
    p50, p90, p95, p99 = sketch.quantiles((0.5, 0.9, 0.95, 0.99))
    return LatencySummary(sketch.count, p50, p90, p95, p99, sketch.max, sketch.mean)


class SwarmMetrics:
    """Windowed swarm figures; attach to a `Swarm` before it starts running tasks.

    `window` seconds are kept in `slices` slices (a whole slice drops out at a time, so the
    window reported is between `window * (slices - 1) / slices` and `window` long, and says
    which). `clock` is the swarm's clock (results are stamped with it); `wall` gives the
    UNIX time stamped on figures.
    """

    def __init__(
        self,
        swarm_id: str,
        *,
        window: float = 10.0,
        slices: int = 10,
        clock: Callable[[], float] = time.perf_counter,
        wall: Callable[[], float] = time.time,
        alpha: float = DEFAULT_ALPHA,
        max_agents: int = 1000,
        forget_lost_after: float = 600.0,
    ) -> None:
        self.swarm_id = swarm_id
        # A lost agent that never comes back is shown down this long, then forgotten: under
        # churn, remembering every agent ever lost would grow without bound.
        self.forget_lost_after = forget_lost_after
        self.window = window
        self.clock = clock
        self.wall = wall
        self.alpha = alpha
        self.max_agents = max_agents
        self._ring: SlidingRing[_Slice] = SlidingRing(window / slices, slices, self._new_slice)
        self._inv_width = 1.0 / self._ring.width
        self._k = -(2**62)  # the newest slice, cached for the hot path
        self._part: _Slice | None = None
        self._series: dict[tuple[str | None, str], CounterSeries] = {}
        self._since = clock()  # the window never reaches back before we started counting
        self._swarm: Swarm | None = None
        self.registry = Registry()
        self.tasks = self.registry.counter(
            TASKS_TOTAL,
            "Tasks finished, by agent and outcome.",
            ("agent", "status"),
            max_series=max_agents * 4,
        )
        # The series of tasks that never reached an agent exist from the start, at 0, so that
        # availability in PromQL has both terms before the first such task (a missing series
        # would make the whole expression empty).
        for status in ("rejected", "failed"):
            self.tasks.labels(NO_AGENT, status)
        self.latency_total = Totals()
        self.wait_total = Totals()
        self.service_total: dict[str, Totals] = {}
        self.breakers: dict[str, str] = {}  # agent -> closed | half_open | open
        self._has_breakers = False
        self._lost: dict[str, float] = {}  # agent -> when it was lost (swarm clock)
        self._concurrency: dict[str, int] = {}

    @property
    def swarm(self) -> Swarm | None:
        """The swarm attached, if any."""
        return self._swarm

    def _new_slice(self) -> _Slice:
        return _Slice(self.alpha)

    # -- input --------------------------------------------------------------------------

    def attach(self, swarm: Swarm) -> None:
        """Listen to `swarm`'s results and events, and read its agents and queue."""
        self._swarm = swarm
        self._since = self.clock()
        guard = swarm.coordinator.guard
        self._has_breakers = (
            isinstance(guard, ResilienceGuard) and guard.settings.breaker is not None
        )
        swarm.on_result(self.observe_result)
        swarm.on_event(self.observe_event)

    def observe_result(self, result: TaskResult) -> None:
        """Count one result (the swarm calls this as each result is recorded).

        The hot path: one call per finished task, so lookups are cached and inlined.
        """
        status = result.status
        agent = result.agent
        # Keyed by the status's plain value: hashing an Enum member runs Python code.
        key = (agent, status._value_)
        series = self._series.get(key)
        if series is None:
            series = self.tasks.labels(agent or NO_AGENT, status.value)
            if len(self._series) < 4 * self.max_agents:
                self._series[key] = series
        series.value += 1
        finished = result.finished_at
        now = self.clock() if finished is None else finished
        k = floor(now * self._inv_width)
        if k == self._k:
            part: _Slice | None = self._part
        else:
            part = self._ring.slice(k)
            if part is not None and k > self._k:
                self._k, self._part = k, part
        if status is SUCCEEDED or status is FAILED:
            queued = result.queued_at
            latency = now - queued
            totals = self.latency_total
            totals.count += 1
            totals.sum += latency
            if part is not None:
                part.latency.observe(latency)
                if status is SUCCEEDED:
                    part.succeeded += 1
                else:
                    part.failed += 1
            started = result.started_at
            if agent is None or started is None:
                if part is not None and agent is None:
                    part.unavailable += 1
                return
            wait = started - queued
            service = now - started
            totals = self.wait_total
            totals.count += 1
            totals.sum += wait
            totals = self.service_total.get(agent) or self._service_totals(agent)
            totals.count += 1
            totals.sum += service
            if part is None:
                return
            part.wait.observe(wait)
            mine = part.agents.get(agent) or self._agent_slice(part, agent)
            mine.completed += 1
            mine.service.observe(service)
            if status is FAILED:
                mine.failed += 1
            if floor(started * self._inv_width) == k:
                mine.busy += service
            else:
                self._spread_busy(agent, started, now, part, mine)
        elif status is REJECTED and part is not None:
            part.rejected += 1
            part.unavailable += 1

    def _service_totals(self, agent: str) -> Totals:
        if len(self.service_total) >= self.max_agents:
            agent = OVERFLOW
        totals = self.service_total.get(agent)
        if totals is None:
            totals = self.service_total[agent] = Totals()
        return totals

    def _agent_slice(self, part: _Slice, agent: str) -> _AgentSlice:
        mine = part.agents.get(agent)
        if mine is None:
            if len(part.agents) >= self.max_agents:
                agent = OVERFLOW
                mine = part.agents.get(agent)
            if mine is None:
                mine = part.agents[agent] = _AgentSlice(self.alpha)
        return mine

    def _spread_busy(
        self, agent: str, started: float, finished: float, part: _Slice, mine: _AgentSlice
    ) -> None:
        """Busy time of a task that spans slices: each slice gets its overlap."""
        ring = self._ring
        width = ring.width
        for k in ring.slice_ids(started, finished):
            other = ring.slice(k)
            if other is None:
                continue  # before the window
            overlap = min(finished, (k + 1) * width) - max(started, k * width)
            if overlap > 0:
                target = mine if other is part else self._agent_slice(other, agent)
                target.busy += overlap

    def observe_event(self, event: Event) -> None:
        """Follow breaker states and agent losses from the swarm's events."""
        state = _BREAKER_EVENTS.get(event.kind)
        if state is not None:
            self.breakers[event.subject] = state
        elif event.kind == AGENT_LOST:
            self._lost[event.subject] = event.ts
        elif event.kind == AGENT_RESTARTED:
            self._lost.pop(event.subject, None)

    # -- output -------------------------------------------------------------------------

    def agent_states(self) -> list[tuple[str, int, int, bool]]:
        """(agent, in flight, slots, up) for every agent known: live, draining or lost."""
        rows: dict[str, tuple[str, int, int, bool]] = {}
        if self._swarm is not None:
            for agent in self._agents(self._swarm):
                self._concurrency[agent.id] = agent.concurrency
                up = agent.alive and agent.id not in self._lost
                rows[agent.id] = (agent.id, agent.in_flight, agent.concurrency, up)
        horizon = self.clock() - self.forget_lost_after
        for agent_id, lost_at in list(self._lost.items()):
            if lost_at < horizon:
                self._lost.pop(agent_id, None)
                self.breakers.pop(agent_id, None)
                self._concurrency.pop(agent_id, None)
            elif agent_id not in rows:
                rows[agent_id] = (agent_id, 0, self._concurrency.get(agent_id, 1), False)
        return list(rows.values())

    def queue_depths(self) -> tuple[int, dict[str, int]]:
        """Tasks submitted but not started, and those queued or bound, by priority.

        The total also holds tasks waiting on retry timers or in bulkhead lines, which have
        no place in a priority level yet.
        """
        if self._swarm is None:
            return 0, {p.name.lower(): 0 for p in Priority}
        coordinator = self._swarm.coordinator
        depths = coordinator.queue.counts()
        names = {int(p): p.name.lower() for p in Priority}
        for agent in self._agents(self._swarm):
            for task in agent.backlog:  # (a copy)
                name = names[int(task.priority)]
                depths[name] = depths.get(name, 0) + 1
        return coordinator.pending, depths

    @staticmethod
    def _agents(swarm: Swarm) -> list[AgentState]:
        """The swarm's agents, read safely from another thread (a Prometheus scrape)."""
        for _ in range(10):
            try:
                return list(swarm.coordinator.all_agents())
            except RuntimeError:  # an agent came or went on the swarm's thread meanwhile
                continue
        return []

    def breaker_of(self, agent_id: str) -> str | None:
        state = self.breakers.get(agent_id)
        if state is None and self._has_breakers:
            return "closed"  # every agent gets a breaker that starts closed
        return state

    def figures(self, now: float | None = None) -> SwarmFigures:
        """The swarm over the window ending at `now` (the swarm's clock; default: now)."""
        if now is None:
            now = self.clock()
        reasons: dict[str, str] = {}
        start, parts = self._ring.window(now)
        start = max(start, self._since)
        window_s = max(now - start, 0.0)
        latency = QuantileSketch(self.alpha)
        wait = QuantileSketch(self.alpha)
        service = QuantileSketch(self.alpha)
        succeeded = failed = rejected = unavailable = 0
        per_agent: dict[str, _AgentSlice] = {}
        for part in parts:
            latency.merge(part.latency)
            wait.merge(part.wait)
            succeeded += part.succeeded
            failed += part.failed
            rejected += part.rejected
            unavailable += part.unavailable
            for agent_id, mine in dict(part.agents).items():
                total = per_agent.get(agent_id)
                if total is None:
                    total = per_agent[agent_id] = _AgentSlice(self.alpha)
                total.completed += mine.completed
                total.failed += mine.failed
                total.busy += mine.busy
                total.service.merge(mine.service)
        for total in per_agent.values():
            service.merge(total.service)  # the swarm's service times are all its agents'
        completed = succeeded + failed
        throughput = None
        if window_s > 0:
            throughput = completed / window_s
        else:
            reasons["throughput_per_s"] = "the window is empty: no time has passed yet"
        error_rate = failed / completed if completed else None
        if error_rate is None:
            reasons["error_rate"] = _NOT_FINISHED
        asked = completed + rejected
        availability = 1.0 - unavailable / asked if asked else None
        if availability is None:
            reasons["availability"] = "no task finished or was rejected in the window"
        for name, sketch in (("latency", latency), ("wait", wait), ("service", service)):
            if sketch.count == 0:
                reasons[name] = _NOT_FINISHED
        agents = self._agent_figures(per_agent, window_s, reasons)
        depth, by_priority = self.queue_depths()
        return SwarmFigures(
            ts=self.wall(),
            window_s=window_s,
            completed=completed,
            failed=failed,
            throughput_per_s=throughput,
            error_rate=error_rate,
            availability=availability,
            latency=quantiles_of(latency),
            wait=quantiles_of(wait),
            service=quantiles_of(service),
            queue_depth=depth,
            queue_depth_by_priority=by_priority,
            balance_cv=_balance_cv(agents.values(), reasons),
            agents=agents,
            reasons=reasons,
        )

    def _agent_figures(
        self, per_agent: dict[str, _AgentSlice], window_s: float, reasons: dict[str, str]
    ) -> dict[str, AgentFigures]:
        out: dict[str, AgentFigures] = {}
        known = {row[0]: row for row in self.agent_states()}
        for agent_id in [*known, *(a for a in per_agent if a not in known)]:
            _, in_flight, slots, up = known.get(agent_id, (agent_id, 0, 0, False))
            mine = per_agent.get(agent_id)
            utilization = None
            if window_s > 0 and slots > 0:
                busy = mine.busy if mine is not None else 0.0
                # Start and finish stamps come from the worker: a hair of clock skew must
                # not report an agent as more than fully busy.
                utilization = min(busy / (slots * window_s), 1.0)
            elif slots == 0:
                reasons[f"agent.{agent_id}.utilization"] = "the agent's slots are unknown"
            else:
                reasons[f"agent.{agent_id}.utilization"] = "the window is empty"
            out[agent_id] = AgentFigures(
                agent_id=agent_id,
                completed=mine.completed if mine is not None else 0,
                failed=mine.failed if mine is not None else 0,
                in_flight=in_flight,
                slots=slots,
                utilization=utilization,
                service=quantiles_of(mine.service) if mine is not None else LatencySummary(0),
                breaker=self.breaker_of(agent_id),
                alive=up,
            )
        return out


def _balance_cv(agents: Iterable[AgentFigures], reasons: dict[str, str]) -> float | None:
    values = [a.utilization for a in agents if a.alive and a.utilization is not None]
    if len(values) < 2:
        reasons["balance_cv"] = "fewer than two live agents with a measured utilisation"
        return None
    mean = sum(values) / len(values)
    if mean == 0:
        reasons["balance_cv"] = "every agent was idle in the window"
        return None
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return math.sqrt(var) / mean

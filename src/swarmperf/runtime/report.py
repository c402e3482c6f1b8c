"""The measured outcome of a run: throughput, latency, per-agent load and balance, makespan.

Every figure comes from the task results and the agents' declared shape; a figure that
cannot be computed is None, and `RunReport.missing` says why. Nothing is filled in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from swarmperf.balancing import STRATEGIES
from swarmperf.balancing.agents import AgentState
from swarmperf.core.latency import LatencySummary
from swarmperf.core.model import AgentSpec, TaskResult, TaskStatus

LATENCY_PERCENTILES = (50, 90, 95, 99)
_FLAT_LATENCY = ("p50", "p90", "p95", "p99", "max")  # what the report's JSON holds
# Above this many agents the report shows them by group, with the extremes, not one by one.
AGENT_ROWS_SHOWN = 20
EXTREME_AGENTS_SHOWN = 3
MESSAGE_PAIRS_SHOWN = 5  # the busiest sender -> receiver pairs in the messages table


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One agent's share of a run. Times are seconds."""

    id: str
    tasks: int  # tasks it ran to an end, succeeded or failed
    failed: int
    busy_seconds: float
    utilisation: float | None  # busy / (wall * concurrency), 0..1
    mean_service: float | None
    # The nodes it ran on, in order (a restart may move it); empty when the backend does
    # not place agents on nodes (only `ray` does).
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunReport:
    """What a run achieved. Times are seconds, throughput is tasks per second."""

    swarm_id: str
    strategy: str
    backend: str
    tasks_total: int
    tasks_succeeded: int
    tasks_failed: int
    tasks_rejected: int
    tasks_cancelled: int
    wall_seconds: float
    throughput: float | None  # tasks that ran to an end (succeeded or failed) per second
    latency: LatencySummary  # queued to finished, over succeeded tasks
    queue_wait_p50: float | None  # queued to started, over tasks that started
    queue_wait_p99: float | None
    agents: tuple[AgentRow, ...]
    load_balance_variance: float | None  # population variance of agent utilisation
    jain_index: float | None  # of agent utilisation: 1 is perfectly even, 1/n is one agent
    makespan: float | None  # start of the run to the last task's end
    lower_bound: float | None  # a floor for the makespan, e.g. from `work_lower_bound`
    makespan_ratio: float | None  # makespan / lower_bound: 1 is optimal
    missing: dict[str, str] = field(default_factory=dict)  # figure -> why it is None
    # How often each kind of resilience event happened: trips, retries, sheds, restarts...
    events: dict[str, int] = field(default_factory=dict)
    # What happened when a signal (SIGTERM, SIGINT) cut the run short; "" when none did.
    # The figures then cover only what ran before the end; the cancelled tasks say why.
    interrupted: str = ""
    # Tasks an idle agent took from another's queue (work stealing); 0 for other strategies.
    stolen: int = 0
    # True for a simulated run: its times are virtual seconds, not time that passed.
    virtual_time: bool = False
    # Agents' messages (`MessageBus.summary`): counts, the topology, and the communication
    # matrix; None when no agent sent any.
    messages: dict[str, Any] | None = None

    # The latency figures by the names stored runs, baselines and `missing` use.
    @property
    def latency_p50(self) -> float | None:
        return self.latency.p50

    @property
    def latency_p90(self) -> float | None:
        return self.latency.p90

    @property
    def latency_p95(self) -> float | None:
        return self.latency.p95

    @property
    def latency_p99(self) -> float | None:
        return self.latency.p99

    @property
    def latency_max(self) -> float | None:
        return self.latency.max

    @property
    def makespan_ratio_reason(self) -> str | None:
        """Why `makespan_ratio` is None, or None when it is there."""
        return self.missing.get("makespan_ratio")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; None stands for a missing figure."""
        data: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "latency":  # flat, in its place: stored runs and baselines read it so
                data.update((f"latency_{name}", value[name]) for name in _FLAT_LATENCY)
            else:
                data[key] = value
        data["agents"] = [{**asdict(row), "nodes": list(row.nodes)} for row in self.agents]
        data["missing"] = dict(self.missing)
        return data

    def render(self, console: Console, per_agent: bool | None = None) -> None:
        """Print a summary table and the agents: one row each with `per_agent`, else by
        group with the busiest and least busy agents (the default above `AGENT_ROWS_SHOWN`
        agents, so that ten thousand agents do not print ten thousand rows)."""
        if self.interrupted:
            console.print(f"[bold yellow]interrupted:[/bold yellow] {self.interrupted}")
        console.print(self._summary_table())
        if per_agent is None:
            per_agent = len(self.agents) <= AGENT_ROWS_SHOWN
        if per_agent:
            console.print(self._agent_table())
        else:
            console.print(self._group_table())
            console.print(self._extremes_table())
            console.print(
                f"[dim]{len(self.agents):,} agents, summarised by group; --per-agent shows "
                "every one.[/dim]"
            )
        if self.events:
            console.print(self._event_table())
        if self.messages is not None:
            console.print(self._message_table())

    def _summary_table(self) -> Table:
        table = Table(title=f"Run of swarm {self.swarm_id!r}: {self.strategy} on {self.backend}")
        table.add_column("figure")
        table.add_column("value", justify="right")
        tasks = f"{self.tasks_total} ({self.tasks_succeeded} ok, {self.tasks_failed} failed"
        if self.tasks_rejected or self.tasks_cancelled:
            tasks += f", {self.tasks_rejected} rejected, {self.tasks_cancelled} cancelled"
        table.add_row("tasks", tasks + ")")
        strategy = STRATEGIES.get(self.strategy)
        if self.stolen or (strategy is not None and strategy.steals):
            table.add_row("tasks stolen", f"{self.stolen}")
        clock = "virtual time" if self.virtual_time else "wall time"
        table.add_row(clock, _seconds(self.wall_seconds))
        table.add_row("throughput", self._shown("throughput", "{:,.1f} tasks/s"))
        for name in ("latency_p50", "latency_p90", "latency_p95", "latency_p99", "latency_max"):
            table.add_row(name.replace("_", " "), self._shown(name))
        table.add_row("queue wait p50", self._shown("queue_wait_p50"))
        table.add_row("queue wait p99", self._shown("queue_wait_p99"))
        table.add_row("load-balance variance", self._shown("load_balance_variance", "{:.4f}"))
        table.add_row("Jain's fairness index", self._shown("jain_index", "{:.3f}"))
        table.add_row("makespan", self._shown("makespan"))
        table.add_row("lower bound", self._shown("lower_bound"))
        table.add_row("makespan / lower bound", self._shown("makespan_ratio", "{:.2f}x"))
        return table

    def _message_table(self) -> Table:
        """The messages' counts, and the busiest sender -> receiver pairs."""
        data = self.messages or {}
        table = Table(title=f"Messages over a {data.get('topology', '?')} topology")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for name in ("sent", "delivered", "failed", "dropped", "hops", "relayed", "rerouted"):
            table.add_row(name, f"{data.get(name, 0):,}")
        table.add_row("bytes", f"{data.get('bytes', 0):,}")
        table.add_row("connections kept open", f"{data.get('connections', 0):,}")
        matrix = data.get("matrix", {})
        agents, counts = matrix.get("agents", []), np.asarray(matrix.get("messages", []))
        pairs = matrix.get("pairs")  # a large swarm's: the busiest first
        if pairs is None and counts.size:
            flat = np.argsort(counts, axis=None, kind="stable")[::-1]
            pairs = [
                [i, j, int(counts[i, j])]
                for i, j in zip(*np.unravel_index(flat, counts.shape), strict=True)
            ]
        for i, j, count, *_ in (pairs or [])[:MESSAGE_PAIRS_SHOWN]:
            if count:
                table.add_row(f"{agents[i]} -> {agents[j]}", f"{count:,}")
        return table

    def _agent_table(self) -> Table:
        table = Table(title="Agents")
        placed = any(row.nodes for row in self.agents)
        names = ("agent", "tasks", "failed", "busy", "utilisation", "mean service")
        for name in (*names, "node") if placed else names:
            table.add_column(name, justify="left" if name in ("agent", "node") else "right")
        for row in self.agents:
            cells = [
                row.id,
                str(row.tasks),
                str(row.failed),
                _seconds(row.busy_seconds),
                "[dim]n/a[/dim]" if row.utilisation is None else f"{row.utilisation:.1%}",
                "[dim]n/a[/dim]" if row.mean_service is None else _seconds(row.mean_service),
            ]
            if placed:
                cells.append(nodes_text(row.nodes))
            table.add_row(*cells)
        return table

    def _group_table(self) -> Table:
        table = Table(title="Agents by group")
        for name in ("group", "agents", "tasks", "failed", "utilisation (min-max)"):
            table.add_column(name, justify="left" if name == "group" else "right")
        groups: dict[str, list[AgentRow]] = {}
        for row in self.agents:
            groups.setdefault(agent_group(row.id), []).append(row)
        for group, rows in groups.items():
            used = [r.utilisation for r in rows if r.utilisation is not None]
            spread = "[dim]n/a[/dim]"
            if used:
                mean = math.fsum(used) / len(used)
                spread = f"{mean:.1%} ({min(used):.1%}-{max(used):.1%})"
            table.add_row(
                group,
                f"{len(rows):,}",
                f"{sum(r.tasks for r in rows):,}",
                f"{sum(r.failed for r in rows):,}",
                spread,
            )
        return table

    def _extremes_table(self) -> Table:
        ranked = sorted(
            self.agents, key=lambda r: (-1.0 if r.utilisation is None else r.utilisation, r.id)
        )
        shown = EXTREME_AGENTS_SHOWN
        picks = [("busiest", r) for r in reversed(ranked[-shown:])]
        picks += [("least busy", r) for r in ranked[:shown]]
        table = Table(title=f"The {shown} busiest and {shown} least busy agents")
        for name in ("", "agent", "tasks", "failed", "utilisation"):
            table.add_column(name, justify="left" if name in ("", "agent") else "right")
        for label, row in picks:
            table.add_row(
                label,
                row.id,
                f"{row.tasks:,}",
                f"{row.failed:,}",
                "[dim]n/a[/dim]" if row.utilisation is None else f"{row.utilisation:.1%}",
            )
        return table

    def _event_table(self) -> Table:
        table = Table(title="Resilience events")
        table.add_column("event")
        table.add_column("count", justify="right")
        for kind, count in sorted(self.events.items()):
            table.add_row(kind, str(count))
        return table

    def _shown(self, name: str, template: str | None = None) -> str:
        value = getattr(self, name)
        if value is None:
            return f"[dim]n/a: {self.missing.get(name, 'unknown')}[/dim]"
        return _seconds(value) if template is None else template.format(value)


def agent_group(agent_id: str) -> str:
    """The group an agent id belongs to: the id without the `-<n>` a spec's group numbers
    its agents with (`worker-12` is of `worker`); an id without one is its own group."""
    stem, dash, number = agent_id.rpartition("-")
    return stem if dash and stem and number.isdigit() else agent_id


def _seconds(value: float) -> str:
    return f"{value * 1000:.2f} ms" if abs(value) < 1 else f"{value:.3f} s"


def _spec(agent: AgentState | AgentSpec) -> AgentSpec:
    return agent.spec if isinstance(agent, AgentState) else agent


def build_report(
    results: Sequence[TaskResult],
    agents: Iterable[AgentState | AgentSpec],
    started: float,
    finished: float,
    strategy: str,
    backend: str,
    swarm_id: str,
    lower_bound: float | None = None,
    events: Mapping[str, int] | None = None,
    stolen: int = 0,
    nodes: Mapping[str, Sequence[str]] | None = None,
    messages: Mapping[str, Any] | None = None,
) -> RunReport:
    """Compute a `RunReport` from a run's results.

    `agents` are those that may have run tasks (`swarm.coordinator.all_agents()`, or their
    specs); `started` and `finished` bound the run on the swarm's clock. Utilisation is
    against the whole wall time, so an agent that joined late looks less used than it was.
    `stolen` is the coordinator's count of steals (`CoordinatorStatistics.stolen`).
    `nodes` says which nodes each agent ran on, in order (`Swarm.nodes`). `messages` is
    the agents' messages (`MessageBus.summary()`), left out when none was sent.
    """
    if finished < started:
        raise ValueError(f"The run finished ({finished}) before it started ({started}).")
    missing: dict[str, str] = {}
    wall = finished - started
    by_status = dict.fromkeys(TaskStatus, 0)
    for result in results:
        by_status[result.status] += 1
    ended = by_status[TaskStatus.SUCCEEDED] + by_status[TaskStatus.FAILED]
    throughput = None
    if wall > 0:
        throughput = ended / wall
    else:
        missing["throughput"] = "the run took no measurable time"
    latencies = [r.latency for r in results if r.ok and r.latency is not None]
    latency = _latency(latencies, missing)
    waits = [r.started_at - r.queued_at for r in results if r.started_at is not None]
    wait = _percentiles(waits, (50, 99), "queue_wait", missing)
    rows = _agent_rows(results, agents, wall, missing)
    if nodes:
        rows = tuple(replace(row, nodes=tuple(nodes.get(row.id, ()))) for row in rows)
    variance, jain = _balance(rows, missing)
    makespan, ratio = _makespan(results, started, lower_bound, missing)
    if not (messages and messages.get("sent")):
        missing["messages"] = "no agent sent a message"
    return RunReport(
        swarm_id=swarm_id,
        strategy=strategy,
        backend=backend,
        tasks_total=len(results),
        tasks_succeeded=by_status[TaskStatus.SUCCEEDED],
        tasks_failed=by_status[TaskStatus.FAILED],
        tasks_rejected=by_status[TaskStatus.REJECTED],
        tasks_cancelled=by_status[TaskStatus.CANCELLED],
        wall_seconds=wall,
        throughput=throughput,
        latency=latency,
        queue_wait_p50=wait["p50"],
        queue_wait_p99=wait["p99"],
        agents=rows,
        load_balance_variance=variance,
        jain_index=jain,
        makespan=makespan,
        lower_bound=lower_bound,
        makespan_ratio=ratio,
        missing=missing,
        events=dict(events or {}),
        stolen=stolen,
        messages=dict(messages) if messages and messages.get("sent") else None,
    )


def short_node(node_id: str) -> str:
    """A node id as people read it: its first 8 hex digits (Ray's ids are 56 long), which
    tell a cluster's nodes apart; JSON and the store keep the whole id."""
    return node_id[:8]


def nodes_text(nodes: Sequence[str]) -> str:
    """Where an agent ran, in order: `5c1e0b2f`, or `5c1e0b2f -> 9a07d1c3` after a move;
    `n/a` when it was placed on no node."""
    if not nodes:
        return "[dim]n/a[/dim]"
    shown = [short_node(nodes[0])]
    for node in nodes[1:]:
        if short_node(node) != shown[-1]:
            shown.append(short_node(node))
    return " -> ".join(shown)


def _latency(latencies: Sequence[float], missing: dict[str, str]) -> LatencySummary:
    found = _percentiles(latencies, (*LATENCY_PERCENTILES, 100), "latency", missing)
    if not latencies:
        return LatencySummary(count=0)
    return LatencySummary(
        count=len(latencies),
        p50=found["p50"],
        p90=found["p90"],
        p95=found["p95"],
        p99=found["p99"],
        max=found["p100"],
        mean=math.fsum(latencies) / len(latencies),
        min=min(latencies),
    )


def _percentiles(
    values: Sequence[float], qs: Sequence[int], prefix: str, missing: dict[str, str]
) -> dict[str, float | None]:
    keys = [f"p{q}" for q in qs]
    if not values:
        why = "no task succeeded" if prefix == "latency" else "no task started"
        for key in keys:
            missing[f"{prefix}_{'max' if key == 'p100' else key}"] = why
        return dict.fromkeys(keys)
    found = np.percentile(np.asarray(values, dtype=float), qs)
    return {key: float(v) for key, v in zip(keys, found, strict=True)}


def _agent_rows(
    results: Sequence[TaskResult],
    agents: Iterable[AgentState | AgentSpec],
    wall: float,
    missing: dict[str, str],
) -> tuple[AgentRow, ...]:
    specs = {spec.id: spec for spec in map(_spec, agents)}
    tasks: dict[str, int] = dict.fromkeys(specs, 0)
    failed: dict[str, int] = dict.fromkeys(specs, 0)
    busy: dict[str, float] = dict.fromkeys(specs, 0.0)
    for r in results:
        service = r.service_time
        if r.agent is None or service is None:
            continue
        tasks[r.agent] = tasks.get(r.agent, 0) + 1
        failed[r.agent] = failed.get(r.agent, 0) + (r.status is TaskStatus.FAILED)
        busy[r.agent] = busy.get(r.agent, 0.0) + service
    rows = []
    for agent_id in tasks:
        spec = specs.get(agent_id)
        utilisation = None
        if spec is None:
            missing[f"agents.{agent_id}.utilisation"] = (
                "the agent is not among the given agents, so its concurrency is unknown"
            )
        elif wall > 0:
            utilisation = busy[agent_id] / (wall * spec.concurrency)
        else:
            missing[f"agents.{agent_id}.utilisation"] = "the run took no measurable time"
        mean_service = None
        if tasks[agent_id]:
            mean_service = busy[agent_id] / tasks[agent_id]
        else:
            missing[f"agents.{agent_id}.mean_service"] = "the agent ran no task"
        rows.append(
            AgentRow(
                agent_id,
                tasks[agent_id],
                failed[agent_id],
                busy[agent_id],
                utilisation,
                mean_service,
            )
        )
    return tuple(rows)


def _balance(
    rows: Sequence[AgentRow], missing: dict[str, str]
) -> tuple[float | None, float | None]:
    loads = [row.utilisation for row in rows if row.utilisation is not None]
    if not loads:
        why = "no agent has a known utilisation"
        missing["load_balance_variance"] = missing["jain_index"] = why
        return None, None
    x = np.asarray(loads, dtype=float)
    squares = float(np.sum(x * x))
    if squares == 0:
        missing["jain_index"] = "no agent was busy"
        return float(np.var(x)), None
    # Jain's index: (Σx)² / (n·Σx²), 1 when all loads are equal, 1/n when one agent has all.
    return float(np.var(x)), float(np.sum(x)) ** 2 / (len(x) * squares)


def _makespan(
    results: Sequence[TaskResult],
    started: float,
    lower_bound: float | None,
    missing: dict[str, str],
) -> tuple[float | None, float | None]:
    ends = [r.finished_at for r in results if r.finished_at is not None]
    makespan = max(ends) - started if ends else None
    if makespan is None:
        missing["makespan"] = "no task finished"
    if lower_bound is None:
        missing["lower_bound"] = missing["makespan_ratio"] = "no lower bound was given"
    elif not lower_bound > 0:
        missing["makespan_ratio"] = f"the lower bound is {lower_bound}, not a positive time"
    elif makespan is None:
        missing["makespan_ratio"] = "no task finished, so there is no makespan"
    else:
        return makespan, makespan / lower_bound
    return makespan, None


def work_lower_bound(
    results: Sequence[TaskResult], agents: Iterable[AgentState | AgentSpec]
) -> float | None:
    """A floor under the makespan of these results on these agents, in seconds.

    With slowdown the only difference between agents, a task that ran `t` seconds on an
    agent of slowdown `s` is `w = t / s` seconds of work on an agent of slowdown 1, and an
    agent with concurrency `c` does `c / s` seconds of such work per second. Then

        bound = max( Σ w / Σ_agents (c / s),  max(w) · min_agents(s) )

    The first term is total work over total capacity: no schedule, however well balanced,
    ends sooner. The second is the largest task on the fastest agent: no schedule ends
    before that task does. It is a bound for a batch that is all there at the start, run
    by agents that are there throughout, and the work is measured, so it includes each
    task's dispatch overhead.

    Returns None when no task ran, when there are no agents, or when a task ran on an
    agent not among `agents` (its slowdown is unknown).
    """
    specs = {spec.id: spec for spec in map(_spec, agents)}
    work = []
    for r in results:
        service = r.service_time
        if service is None or r.agent is None:
            continue
        spec = specs.get(r.agent)
        if spec is None:
            return None
        work.append(service / spec.slowdown)
    if not work or not specs:
        return None
    capacity = sum(spec.concurrency / spec.slowdown for spec in specs.values())
    fastest = min(spec.slowdown for spec in specs.values())
    return max(sum(work) / capacity, max(work) * fastest)

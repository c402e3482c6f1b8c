"""The MCP tools: each answers one question through the same function as its CLI command.

A tool's structured output is exactly what that command prints under `-o json` (the tool
descriptions name the command); a mistake in its input is a tool error carrying the same
"field: value ... fix" message the command line prints.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.from_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from swarmperf.client import SyncSwarmClient
from swarmperf.core.errors import ConfigError, ServiceError, SwarmError
from swarmperf.queries import (
    allocation,
    autoscale,
    live,
    placement,
    profile,
    runs,
    stored,
    suites,
    topology,
)

# At most this many samples per `metrics_collect` call: a tool call should answer in seconds.
MAX_SAMPLES = 10
# How often, at most, `benchmark_run` reports progress (besides every change of scenario).
PROGRESS_EVERY_S = 1.0

# A trace or instance folder is read whole; a tool call should answer in minutes, not hours.
MAX_TRACE_BYTES = 16 * 2**20
MAX_REPLAY_TASKS = 5_000_000  # the NASA-HTTP trace's 3.5 million take minutes under all
MAX_PLACEMENT_S = 600.0
MAX_PROFILE_S = 300.0

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
# Runs a workload or a simulation here and records it in the store; no swarm is changed.
RECORDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
# Changes a live swarm; doing it twice leaves it as doing it once.
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)
# Adds work to a live swarm: nothing is lost, but each call adds tasks.
ADDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)
# Writes files (overwriting any at the paths it names); the swarm it looks at is unchanged.
WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


@dataclass(frozen=True)
class Settings:
    """What every tool of one server shares: where the store is, and whether it may write."""

    data_dir: Path | None = None
    read_only: bool = False


class Clients:
    """One client per live swarm, kept for the server's life: making one costs milliseconds
    (its HTTP client), which a tool call should not pay each time. A client re-reads the
    registry itself when its service moved (a restart on another port)."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self._clients: dict[str, SyncSwarmClient] = {}
        self._lock = threading.Lock()

    def get(self, swarm_id: str) -> SyncSwarmClient:
        """The swarm's client; `SwarmNotRunning` (a `ConfigError`) when nothing serves it."""
        with self._lock:
            found = self._clients.get(swarm_id)
        if found is not None and (found.entry is None or found.entry.alive):
            return found
        if found is not None:  # its service has ended: find the one serving it now, if any
            self.forget(swarm_id)
        made = live.connect(swarm_id, self.data_dir)
        with self._lock:
            kept = self._clients.setdefault(swarm_id, made)
        if kept is not made:
            made.close()
        return kept

    def running(self, swarm_id: str) -> SyncSwarmClient | None:
        """The swarm's client if a service serves it now, else None."""
        try:
            return self.get(swarm_id)
        except ConfigError:
            return None

    def forget(self, swarm_id: str) -> None:
        with self._lock:
            gone = self._clients.pop(swarm_id, None)
        if gone is not None:
            gone.close()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


@contextmanager
def tool_errors() -> Iterator[None]:
    """A user's mistake or a failing service as a tool error with the CLI's message."""
    try:
        yield
    except (SwarmError, ServiceError, ValueError) as exc:
        raise ToolError(str(exc)) from exc


class Payload(BaseModel):
    """A tool's output: the payload's top-level keys, each described; keys a later version
    adds pass through."""

    model_config = ConfigDict(extra="allow")


def _as(model: type[Payload], data: dict[str, Any]) -> CallToolResult:
    """The payload as it is (the SDK checks it against `model`, the schema it publishes):
    the structured content is exactly what the CLI prints under `-o json`."""
    text = json.dumps(data)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _path(text: str | None) -> Path | None:
    return None if text is None else Path(text).expanduser()


def _writable(settings: Settings, field: str, asked: bool) -> bool:
    if asked and settings.read_only:
        raise ConfigError(
            field,
            asked,
            "This server is read-only (--read-only): give false, or serve without --read-only.",
        )
    return asked


SwarmId = Annotated[str, Field(description="The swarm's id (as `swarmperf run` or `serve` used).")]
OptionalSwarmId = Annotated[
    str | None, Field(description="The swarm's id; none: the most recent swarm in the store.")
]
Timeframe = Annotated[
    str, Field(description="How far back from now the figures reach, e.g. 24h, 30m.")
]
IncludeSimulated = Annotated[
    bool, Field(description="Count simulated runs (simulate, backend sim) too.")
]
Observe = Annotated[
    str | None,
    Field(
        description="How long to watch the swarm after the change before reporting the "
        "figures after, e.g. 10s (default 10s; 0: return at once)."
    ),
]
TraceFile = Annotated[
    str,
    Field(
        description="A CSV trace: interval index or timestamp, then tasks per interval (NASA-HTTP "
        f"layout); or one row per request with a timestamp column (Azure LLM layout). At most "
        f"{MAX_TRACE_BYTES // 2**20} MiB."
    ),
]
TraceInterval = Annotated[
    str, Field(description="Seconds per interval of the trace (and per count), e.g. 60s.")
]
RunName = Annotated[
    str | None,
    Field(
        description="A stored run of the swarm: N (its run N), sim:N (its simulated run N) or "
        "id:N (the store's id); none: its latest run."
    ),
]


class StatusOut(Payload):
    """A live swarm now, as `swarmperf swarm-status -o json` gives it."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    state: Any = Field(default=None, description="running, draining, stopping or stopped.")
    strategy: Any = Field(default=None, description="The load-balancing strategy it runs.")
    backend: Any = Field(default=None, description="Where its agents run (local, process, ray).")
    figures: Any = Field(
        default=None,
        description="Throughput, latency percentiles (s), error rate, queue depth over the window.",
    )
    agents: Any = Field(
        default=None,
        description="Each agent: id, state, in flight, completed, failed, utilisation.",
    )
    model_config = ConfigDict(title="SwarmStatus", extra="allow")


class MonitorOut(Payload):
    """One refresh of `swarmperf swarm-monitor -o json`: the latest run and figures."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    at: Any = Field(default=None, description="When the view was taken (UNIX seconds).")
    run: Any = Field(
        default=None,
        description="The latest run: id, label, status, strategy, backend, progress, elapsed_s.",
    )
    figures: Any = Field(
        default=None,
        description="The latest figures: ts, source (snapshot, stored results or live "
        "service), values (name, label, value, unit).",
    )
    model_config = ConfigDict(title="SwarmMonitor", extra="allow")


class AgentsOut(Payload):
    """A swarm's agents: from its service while it is served, else from the store."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    live: Any = Field(
        default=None,
        description="Whether the list comes from the live service (else the stored report).",
    )
    agents: Any = Field(
        default=None,
        description="Each agent with its id and figures (utilisation, completed, failed, latency).",
    )
    model_config = ConfigDict(title="AgentList", extra="allow")


class AgentOut(Payload):
    """One agent's figures from the performance report (`performance-report -o json`,
    under agents)."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    since: Any = Field(default=None, description="Start of the timeframe (UNIX seconds).")
    until: Any = Field(default=None, description="End of the timeframe (UNIX seconds).")
    source: Any = Field(
        default=None, description="metrics (the monitor's snapshots) or task results."
    )
    runs: Any = Field(default=None, description="The store ids of the runs covered.")
    agent_id: Any = Field(default=None, description="The agent.")
    agent: Any = Field(default=None, description="Its figures over the timeframe.")
    reasons: Any = Field(default=None, description="Why a figure is missing, by name.")
    model_config = ConfigDict(title="AgentMetrics", extra="allow")


class SamplesOut(Payload):
    """Samples as `swarmperf metrics-collect --count N -o json` prints them, one per line."""

    samples: Any = Field(
        default=None,
        description="Each sample: ts, system figures by name, the swarm's agents, reasons "
        "for gaps.",
    )
    model_config = ConfigDict(title="MetricsSamples", extra="allow")


class ReportOut(Payload):
    """The report `swarmperf performance-report -o json` prints."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    since: Any = Field(default=None, description="Start of the timeframe (UNIX seconds).")
    until: Any = Field(default=None, description="End of the timeframe (UNIX seconds).")
    source: Any = Field(
        default=None, description="metrics (the monitor's snapshots) or task results."
    )
    runs: Any = Field(default=None, description="The store ids of the runs covered.")
    tasks: Any = Field(default=None, description="Tasks by outcome.")
    throughput_per_s: Any = Field(default=None, description="Tasks finished per second.")
    error_rate: Any = Field(default=None, description="Share of tasks that failed.")
    latency: Any = Field(default=None, description="End-to-end latency percentiles (s).")
    agents: Any = Field(default=None, description="Each agent's figures.")
    trends: Any = Field(
        default=None,
        description="Each figure's trend over the timeframe (slope, direction, Mann-Kendall p).",
    )
    sla: Any = Field(default=None, description="Compliance with each SLA objective.")
    cost: Any = Field(
        default=None, description="Cost per task and per hour, when a cost model is given."
    )
    findings: Any = Field(default=None, description="The bottlenecks found.")
    model_config = ConfigDict(title="PerformanceReport", extra="allow")


class PartOut(Payload):
    """One part of the performance report, with what it covers."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    since: Any = Field(default=None, description="Start of the timeframe (UNIX seconds).")
    until: Any = Field(default=None, description="End of the timeframe (UNIX seconds).")
    source: Any = Field(
        default=None, description="metrics (the monitor's snapshots) or task results."
    )
    runs: Any = Field(default=None, description="The store ids of the runs covered.")
    reasons: Any = Field(default=None, description="Why a figure is missing, by name.")
    model_config = ConfigDict(title="ReportPart", extra="allow")


class TrendOut(PartOut):
    """The trends of the performance report, with what they cover."""

    trends: Any = Field(
        default=None,
        description="Each figure's trend: slope per hour, direction, Mann-Kendall p-value, points.",
    )
    model_config = ConfigDict(title="TrendAnalysis", extra="allow")


class CostOut(PartOut):
    """The cost of the performance report, with what it covers."""

    cost: Any = Field(
        default=None,
        description="Agent-hours, tasks, cost per task and per hour (with a cost model), or "
        "why not.",
    )
    model_config = ConfigDict(title="CostAnalysis", extra="allow")


class BottleneckOut(Payload):
    """What `swarmperf bottleneck-analyze -o json` prints."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    run_id: Any = Field(default=None, description="The store id of the run looked at.")
    run_status: Any = Field(default=None, description="Its status (finished, aborted, ...).")
    findings: Any = Field(
        default=None,
        description="Each finding: kind, severity, subject, evidence, explanation, advice.",
    )
    model_config = ConfigDict(title="Bottlenecks", extra="allow")


class SlaOut(Payload):
    """What `swarmperf sla-check -o json` prints."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    at: Any = Field(default=None, description="The newest snapshot judged (UNIX seconds).")
    critical: Any = Field(default=None, description="Whether any rule is critical.")
    results: Any = Field(
        default=None, description="Each rule: state, value, threshold, error budget used, reason."
    )
    model_config = ConfigDict(title="SlaCheck", extra="allow")


class AnomalyOut(Payload):
    """The anomalies the detectors recorded as events of kind `anomaly`."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    since: Any = Field(default=None, description="Start of the timeframe (UNIX seconds).")
    until: Any = Field(default=None, description="End of the timeframe (UNIX seconds).")
    events: Any = Field(
        default=None,
        description="Each event: id, run_id, ts, subject (the figure) and detail (score, value).",
    )
    model_config = ConfigDict(title="AnomalyEvents", extra="allow")


class CompareOut(Payload):
    """What `swarmperf load-balance -o json` prints: each strategy on the same workload."""

    best: Any = Field(
        default=None, description="The best strategy (shortest makespan, then fairness)."
    )
    strategies: Any = Field(default=None, description="Each strategy's run report.")
    model_config = ConfigDict(title="StrategyComparison", extra="allow")


class SwitchOut(Payload):
    """What `swarmperf load-balance --swarm-id ID -o json` prints."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    previous: Any = Field(default=None, description="The strategy before.")
    strategy: Any = Field(default=None, description="The strategy now.")
    decision_id: Any = Field(default=None, description="The decision recorded for the switch.")
    observe_s: Any = Field(default=None, description="How long the figures after were watched for.")
    figures_before: Any = Field(default=None, description="The figures before the switch.")
    figures_after: Any = Field(
        default=None, description="The figures over observe_s after it (null if not watched)."
    )
    after_reason: Any = Field(
        default=None, description="Why the figures after may be missing or not comparable."
    )
    model_config = ConfigDict(title="StrategySwitch", extra="allow")


class ScaleOut(Payload):
    """What `swarmperf swarm-scale -o json` prints."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    before: Any = Field(default=None, description="Agents before.")
    after: Any = Field(default=None, description="Agents after.")
    added: Any = Field(default=None, description="Ids of the agents added.")
    removed: Any = Field(default=None, description="Ids of the agents removed.")
    decision_id: Any = Field(default=None, description="The decision recorded for the change.")
    observe_s: Any = Field(default=None, description="How long the figures after were watched for.")
    figures_before: Any = Field(default=None, description="The figures before.")
    figures_after: Any = Field(
        default=None, description="The figures over observe_s after (null if not watched)."
    )
    after_reason: Any = Field(
        default=None, description="Why the figures after may be missing or not comparable."
    )
    dry_run: Any = Field(default=None, description="True: nothing was changed.")
    autoscale: Any = Field(
        default=None, description="With auto: the autoscaler's state (on, policy, bounds)."
    )
    recommendation: Any = Field(
        default=None,
        description="With auto and dry_run: the policy's decision now, with its inputs.",
    )
    model_config = ConfigDict(title="SwarmScale", extra="allow")


class SubmitOut(Payload):
    """The receipts of the submitted tasks, and their outcomes when waited for."""

    swarm_id: Any = Field(default=None, description="The swarm's id.")
    submitted: Any = Field(
        default=None, description="Each task's receipt: id, idempotency_key, duplicate."
    )
    outcomes: Any = Field(
        default=None,
        description="Each task's outcome (status, value, error, agent, latency_s) if waited for.",
    )
    model_config = ConfigDict(title="TaskSubmission", extra="allow")


class BenchmarkOut(Payload):
    """What `swarmperf benchmark-run -o json` prints."""

    path: Any = Field(default=None, description="The results file written.")
    benchmark_id: Any = Field(
        default=None, description="The store id of the stored result (null if not stored)."
    )
    suite: Any = Field(default=None, description="The suite's name.")
    all_failed: Any = Field(
        default=None,
        description="Whether every request failed (the target is down or misconfigured).",
    )
    scenarios: Any = Field(
        default=None,
        description="Each scenario: name, kind, target, summary figures, errors, notes.",
    )
    model_config = ConfigDict(title="BenchmarkRun", extra="allow")


class GateOut(Payload):
    """A regression gate: checks of each scenario's metrics against the baseline."""

    suite: Any = Field(default=None, description="The suite's name.")
    mode: Any = Field(default=None, description="baseline (one file) or history.")
    passed: Any = Field(default=None, description="Whether no check failed.")
    checks: Any = Field(
        default=None, description="Each check: scenario, metric, kind, status, comparison, message."
    )
    notes: Any = Field(default=None, description="Notes on what was compared.")
    model_config = ConfigDict(title="RegressionGate", extra="allow")


class QualityOut(Payload):
    """What `swarmperf quality-assess -o json` prints."""

    suite: Any = Field(default=None, description="The suite's name.")
    score: Any = Field(default=None, description="0-100 over the criteria.")
    coverage: Any = Field(default=None, description="Share of criteria with data.")
    criteria: Any = Field(
        default=None,
        description="Each criterion: group, scenario, status, threshold result, recommendation.",
    )
    exit_code: Any = Field(default=None, description="The command's exit code: 0 passed, 1 failed.")
    model_config = ConfigDict(title="QualityAssessment", extra="allow")


class ErrorsOut(Payload):
    """What `swarmperf error-analysis -o json` prints."""

    source: Any = Field(default=None, description="The results file or the stored run analysed.")
    failures: Any = Field(default=None, description="How many tasks or requests failed.")
    tasks: Any = Field(default=None, description="How many there were.")
    error_rate: Any = Field(default=None, description="failures / tasks.")
    patterns: Any = Field(
        default=None,
        description="Each failure pattern: type, template, count, share, first/last seen, trend.",
    )
    model_config = ConfigDict(title="ErrorAnalysis", extra="allow")


class SimulateOut(Payload):
    """What `swarmperf simulate -o json` prints: the run report in virtual time."""

    run_id: Any = Field(
        default=None, description="The store id of the recorded run (null if not stored)."
    )
    makespan: Any = Field(
        default=None, description="Virtual seconds from the first task to the last."
    )
    throughput: Any = Field(default=None, description="Tasks per virtual second.")
    latency_p50: Any = Field(default=None, description="Median end-to-end latency (virtual s).")
    latency_p99: Any = Field(default=None, description="99th percentile latency (virtual s).")
    jain_index: Any = Field(default=None, description="Fairness of the agents' load (1 is even).")
    model_config = ConfigDict(title="Simulation", extra="allow")


class AllocationOut(Payload):
    """What `swarmperf resource-alloc -o json` prints."""

    currency: Any = Field(default=None, description="The currency of the pools' prices.")
    workload: Any = Field(
        default=None,
        description="The workload planned for: rate_per_s, mix, tenants and its source "
        "(declared, a spec, a trace, or a swarm's recorded mix).",
    )
    pools: Any = Field(
        default=None,
        description="Each pool: price, concurrency, bounds, service time per kind and whether "
        "it was measured from the store or declared (speed_source).",
    )
    speeds_from: Any = Field(
        default=None, description="The stored run the speeds were measured from, or why none."
    )
    constraints: Any = Field(default=None, description="The constraints as the file gives them.")
    method: Any = Field(default=None, description="How the front was found: enumeration, nsga2.")
    evaluated: Any = Field(default=None, description="How many allocations the search evaluated.")
    front: Any = Field(
        default=None,
        description="The Pareto front, cheapest first: counts, cost per hour and per 1,000 "
        "tasks, the model's p99, risk and utilisation, and the simulator's figures.",
    )
    recommended: Any = Field(
        default=None, description="The cheapest point that meets every SLO in the simulator."
    )
    recommended_reason: Any = Field(default=None, description="Why that point, or why none.")
    applied: Any = Field(
        default=None,
        description="With apply: the decision id, pools before and after, the figures before "
        "and after, and the trial's verdict (kept, rolled-back) and why.",
    )
    model_config = ConfigDict(title="ResourceAllocation", extra="allow")


class WorkloadOut(Payload):
    """What `swarmperf workload-analyze -o json` prints."""

    trace: Any = Field(default=None, description="The trace's file name.")
    intervals: Any = Field(default=None, description="How many intervals it covers.")
    interval_seconds: Any = Field(default=None, description="Seconds per interval.")
    tasks: Any = Field(default=None, description="Tasks over the whole trace.")
    mean: Any = Field(default=None, description="Mean tasks per interval.")
    peak: Any = Field(default=None, description="Tasks in the busiest interval.")
    peak_to_mean: Any = Field(default=None, description="peak / mean.")
    index_of_dispersion: Any = Field(
        default=None, description="Variance / mean of the counts (1 for Poisson arrivals)."
    )
    periods: Any = Field(
        default=None,
        description="Confirmed periods, strongest first: period (intervals), seconds, ACF, power.",
    )
    trend_per_interval: Any = Field(
        default=None, description="Theil-Sen slope of the counts, tasks per interval."
    )
    trend_relative: Any = Field(
        default=None, description="The slope over the whole trace, as a fraction of the mean."
    )
    regime_changes: Any = Field(
        default=None,
        description="Changes of level: interval, seconds, direction, relative size, confidence.",
    )
    recommended_policy: Any = Field(
        default=None, description="The scaling policy the patterns suggest."
    )
    reason: Any = Field(default=None, description="Why that policy.")
    model_config = ConfigDict(title="WorkloadAnalysis", extra="allow")


class AutoscaleOut(Payload):
    """What `swarmperf autoscale-eval -o json` prints."""

    trace: Any = Field(default=None, description="The trace's file name.")
    policies: Any = Field(
        default=None,
        description="Each policy's figures: violation_minutes, agent_hours, scale_events, "
        "tasks, violating_tasks, minutes, max_agents_used, decisions.",
    )
    default_policy: Any = Field(default=None, description="The policy used when none is named.")
    service_time: Any = Field(default=None, description="Mean seconds of service per task.")
    slo_seconds: Any = Field(
        default=None, description="The latency a task may take before it violates (s)."
    )
    settings: Any = Field(
        default=None,
        description="interval, peak_agents, slo_factor, startup, min_agents, max_agents, seed.",
    )
    wall_seconds: Any = Field(
        default=None, description="Wall-clock seconds each policy's replay took here."
    )
    model_config = ConfigDict(title="AutoscaleEvaluation", extra="allow")


class PlacementOut(Payload):
    """What `swarmperf placement-eval -o json` prints."""

    solver: Any = Field(default=None, description="The solver used.")
    time_limit_s: Any = Field(default=None, description="Seconds allowed per instance.")
    seed: Any = Field(default=None, description="The random seed.")
    iterations: Any = Field(default=None, description="The cap on solver steps, if any.")
    solutions: Any = Field(
        default=None,
        description="Each instance: perm (1-based location of each facility), cost, seconds, "
        "seconds_to_best, n, optimum, gap_pct.",
    )
    gaps: Any = Field(
        default=None, description="Each scored instance's gap to the optimum, in percent."
    )
    mean_gap_pct: Any = Field(default=None, description="The mean gap (null: none scored).")
    at_optimum: Any = Field(default=None, description="How many reached the optimum.")
    gap_reason: Any = Field(default=None, description="Why some or all gaps are missing.")
    model_config = ConfigDict(title="PlacementEvaluation", extra="allow")


class TopologyOut(Payload):
    """What `swarmperf topology-optimize -o json` prints."""

    live: Any = Field(default=None, description="True: a live swarm's; false: a spec's plan.")
    objective: Any = Field(default=None, description="p99, makespan or traffic.")
    current: Any = Field(default=None, description="The topology in force (or the spec's).")
    best: Any = Field(default=None, description="Offline: the best topology simulated.")
    predicted_gain: Any = Field(
        default=None,
        description="The simulated gain of the best (live: of the target) over the current "
        "one on the objective, as a share (null: no figure).",
    )
    topologies: Any = Field(
        default=None,
        description="Offline: each topology's simulated p99, makespan, traffic (messages x "
        "latency), messages, hops, most relays by one agent and connections.",
    )
    plan: Any = Field(
        default=None, description="Live: the plan from the measured workload (as offline)."
    )
    target: Any = Field(default=None, description="Live: the topology the strategy picked.")
    strategy: Any = Field(default=None, description="Live: adaptive or fixed:<topology>.")
    live_figure: Any = Field(
        default=None,
        description="Live: the measured figure that must confirm the gain (latency_p99_s; "
        "latency_mean_s for makespan; message_latency_mean_s for traffic).",
    )
    workload: Any = Field(
        default=None, description="Live: the measured workload simulated (tasks, size, rate)."
    )
    traffic: Any = Field(
        default=None,
        description="Live: the traffic simulated: measured (the swarm's communication "
        "matrix) or declared (its spec's messages pattern, before any message).",
    )
    applied: Any = Field(default=None, description="Live: whether the switch was tried.")
    decision_id: Any = Field(default=None, description="Live: the decision in the store.")
    verdict: Any = Field(
        default=None, description="Live: kept, rolled-back or roll-back-failed (null: none)."
    )
    why: Any = Field(default=None, description="Live: why it was kept, undone or not tried.")
    figures_before: Any = Field(
        default=None, description="Live: the figures of the window before the switch."
    )
    figures_after: Any = Field(
        default=None, description="Live: the figures of the window after the switch."
    )
    reverted: Any = Field(
        default=None, description="Live: the topology switched back to, if rolled back."
    )
    method: Any = Field(
        default=None, description="Offline: simulated (every topology) or predicted (the model)."
    )
    latency: Any = Field(
        default=None, description="Offline: the slots' latency layout placed on (null: none)."
    )
    placements: Any = Field(
        default=None, description="Offline, with latency: each topology's slot per agent."
    )
    scores: Any = Field(
        default=None,
        description="Predicted: each topology's predicted log objective, relative (lower wins).",
    )
    model: Any = Field(default=None, description="Predicted: the model that answered.")
    note: Any = Field(default=None, description="Predicted: what was and was not simulated.")
    model_config = ConfigDict(title="TopologyPlan", extra="allow")


class ProfileOut(Payload):
    """What `swarmperf profile-performance --swarm-id ID -o json` prints."""

    rate_hz: Any = Field(default=None, description="Samples per second taken.")
    duration_s: Any = Field(default=None, description="The window sampled (s).")
    samples: Any = Field(default=None, description="Samples taken (idle ones left out).")
    cpu_samples: Any = Field(default=None, description="Samples of stacks on a CPU.")
    awaiting_samples: Any = Field(
        default=None, description="Samples of handlers suspended in an await."
    )
    idle_samples: Any = Field(default=None, description="Idle samples, left out.")
    attributed_share: Any = Field(
        default=None, description="Share of samples attributed to an agent or a handler."
    )
    attributed_reason: Any = Field(default=None, description="Why the share is missing.")
    top_self: Any = Field(
        default=None,
        description="Functions by self time: function, file, line, self_share, total_share.",
    )
    agents: Any = Field(default=None, description="Samples and share by agent.")
    handlers: Any = Field(default=None, description="Samples and share by handler.")
    sources: Any = Field(default=None, description="Where the samples came from.")
    notes: Any = Field(default=None, description="What to know when reading the figures.")
    memory: Any = Field(
        default=None, description="tracemalloc's top sites and growth (with memory), else null."
    )
    components: Any = Field(default=None, description="What was sampled.")
    written: Any = Field(
        default=None,
        description="The files written, by format (relative paths are from the server's "
        "working directory).",
    )
    model_config = ConfigDict(title="Profile", extra="allow")


def register(server: MCPServer, settings: Settings, clients: Clients) -> list[str]:
    """Add the tools to `server`, asking live swarms through `clients`; the ones that change
    a swarm only if it may write. Returns the names added."""
    data_dir = settings.data_dir
    added: list[str] = []

    def tool(
        description: str, annotations: ToolAnnotations
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            server.add_tool(
                fn,
                name=fn.__name__,
                description=description,
                annotations=annotations,
                structured_output=True,
            )
            added.append(fn.__name__)
            return fn

        return add

    @tool(
        "A live swarm (started with `swarmperf serve`) now: state, strategy, tasks accepted "
        "and finished, queue, throughput, latency percentiles, error rate and each agent. Use "
        "it to see how a running swarm is doing. CLI: swarmperf swarm-status -o json.",
        READ,
    )
    def swarm_status(swarm_id: SwarmId) -> Annotated[CallToolResult, StatusOut]:
        with tool_errors():
            return _as(StatusOut, live.swarm_status(swarm_id, data_dir, clients.get(swarm_id)))

    @tool(
        "The latest view of a swarm: from its service while it is served, else the store's "
        "latest snapshot and run progress. Use it to check on a swarm, live or finished. "
        "CLI: swarmperf swarm-monitor --count 1 -o json.",
        READ,
    )
    def swarm_monitor(
        swarm_id: OptionalSwarmId = None,
        interval: Annotated[
            str,
            Field(description="The window of stored results a view without a snapshot uses."),
        ] = "30s",
        include_simulated: IncludeSimulated = False,
    ) -> Annotated[CallToolResult, MonitorOut]:
        with tool_errors():
            client = None if swarm_id is None else clients.running(swarm_id)
            if client is not None:
                return _as(MonitorOut, live.monitor_data(client.status(), time.time()))
            return _as(
                MonitorOut,
                stored.swarm_monitor(
                    data_dir, swarm_id, interval, include_simulated=include_simulated
                ),
            )

    @tool(
        "A swarm's agents and their figures: from its service while it is served (as "
        "swarm-status lists them), else from the store's performance report over the "
        "timeframe. Use it to find idle, overloaded or failing agents. CLI: swarmperf "
        "swarm-status -o json (agents), or performance-report -o json (agents).",
        READ,
    )
    def agent_list(
        swarm_id: OptionalSwarmId = None,
        timeframe: Timeframe = "24h",
        include_simulated: IncludeSimulated = False,
    ) -> Annotated[CallToolResult, AgentsOut]:
        with tool_errors():
            client = None if swarm_id is None else clients.running(swarm_id)
            if client is not None:
                found = live.agent_list(str(swarm_id), data_dir, client)
                return _as(AgentsOut, {**found, "live": True})
            part = stored.report_part(
                data_dir, swarm_id, "agents", timeframe, include_simulated=include_simulated
            )
            agents = [{"id": name, **figures} for name, figures in part["agents"].items()]
            return _as(AgentsOut, {"swarm_id": part["swarm_id"], "live": False, "agents": agents})

    @tool(
        "One agent's figures over a timeframe, from the store: utilisation, tasks completed "
        "and failed, service and latency percentiles. Use it to look into one agent that "
        "agent_list or bottleneck_analyze pointed at. CLI: swarmperf performance-report "
        "-o json (agents.ID).",
        READ,
    )
    def agent_metrics(
        agent_id: Annotated[str, Field(description="The agent's id, as agent_list gives it.")],
        swarm_id: OptionalSwarmId = None,
        timeframe: Timeframe = "24h",
        include_simulated: IncludeSimulated = False,
    ) -> Annotated[CallToolResult, AgentOut]:
        with tool_errors():
            found = stored.agent_metrics(
                data_dir, swarm_id, agent_id, timeframe, include_simulated=include_simulated
            )
            return _as(AgentOut, found)

    @tool(
        "Sample this machine (cpu, memory, disk, network, process) and a swarm's agents from "
        "the store, `count` times `interval` apart. Use it for the resources behind a slow "
        "swarm. CLI: swarmperf metrics-collect --count N -o json.",
        READ,
    )
    def metrics_collect(
        components: Annotated[
            str,
            Field(
                description="Comma-separated: cpu, memory, disk, network, process, agents "
                "(agents reads the swarm's figures from the store)."
            ),
        ] = "cpu,memory,network",
        count: Annotated[int, Field(description=f"How many samples, 1 to {MAX_SAMPLES}.")] = 1,
        interval: Annotated[str, Field(description="Between samples, e.g. 1s.")] = "1s",
        swarm_id: OptionalSwarmId = None,
        window: Annotated[
            str, Field(description="The span the agents' figures cover, e.g. 30s.")
        ] = "30s",
    ) -> Annotated[CallToolResult, SamplesOut]:
        with tool_errors():
            chosen = stored.components(components)
            every = stored.duration(interval, "--interval")
            span = stored.duration(window, "--window")
            if not 1 <= count <= MAX_SAMPLES:
                raise ConfigError("--count", count, f"Use an integer from 1 to {MAX_SAMPLES}.")
            db = stored.open_store(data_dir) if "agents" in chosen else None
            try:
                if db is not None:
                    swarm_id = stored.latest_swarm(db, swarm_id)
                    stored.require_data(db, swarm_id)
                taken = list(stored.samples(chosen, every, count, db, swarm_id, span))
            finally:
                if db is not None:
                    db.close()
            return _as(SamplesOut, {"samples": taken})

    @tool(
        "A swarm's performance over a timeframe: tasks, throughput, latency percentiles, "
        "per-agent figures, trends, bottlenecks, SLA compliance and cost. Use it for the "
        "overall picture of a swarm. CLI: swarmperf performance-report -o json.",
        READ,
    )
    def performance_report(
        swarm_id: OptionalSwarmId = None,
        timeframe: Timeframe = "24h",
        cost_model: Annotated[
            str | None,
            Field(description="A YAML or JSON file: per_agent_hour, per_task, currency."),
        ] = None,
        include_simulated: IncludeSimulated = False,
    ) -> Annotated[CallToolResult, ReportOut]:
        with tool_errors():
            found = stored.performance_report(
                data_dir,
                swarm_id,
                timeframe,
                cost_model=_path(cost_model),
                include_simulated=include_simulated,
            )
            return _as(ReportOut, found)

    @tool(
        "Each figure's trend over a timeframe (throughput, latency, error rate, ...): slope, "
        "direction and Mann-Kendall p-value. Use it to see whether a swarm is getting "
        "better or worse. CLI: swarmperf performance-report -o json (trends).",
        READ,
    )
    def trend_analysis(
        swarm_id: OptionalSwarmId = None,
        timeframe: Timeframe = "24h",
        include_simulated: IncludeSimulated = False,
    ) -> Annotated[CallToolResult, TrendOut]:
        with tool_errors():
            found = stored.report_part(
                data_dir, swarm_id, "trends", timeframe, include_simulated=include_simulated
            )
            return _as(TrendOut, found)

    @tool(
        "What a swarm cost over a timeframe: agent-hours, tasks, cost per task and per hour "
        "under a cost model. Use it to weigh speed against spend. CLI: swarmperf "
        "performance-report --cost-model FILE -o json (cost).",
        READ,
    )
    def cost_analysis(
        swarm_id: OptionalSwarmId = None,
        timeframe: Timeframe = "24h",
        cost_model: Annotated[
            str | None,
            Field(description="A YAML or JSON file: per_agent_hour, per_task, currency."),
        ] = None,
        include_simulated: IncludeSimulated = False,
    ) -> Annotated[CallToolResult, CostOut]:
        with tool_errors():
            found = stored.report_part(
                data_dir,
                swarm_id,
                "cost",
                timeframe,
                cost_model=_path(cost_model),
                include_simulated=include_simulated,
            )
            return _as(CostOut, found)

    @tool(
        "Find what limits a swarm: saturated resources, queueing, slow or failing agents, "
        "correlated figures; each finding with its evidence and advice. Use it when a swarm "
        "is slower than it should be. CLI: swarmperf bottleneck-analyze -o json.",
        READ if settings.read_only else RECORDS,
    )
    def bottleneck_analyze(
        swarm_id: SwarmId,
        run: RunName = None,
        timeframe: Annotated[
            str, Field(description="The run's last stretch, and history, e.g. 1h.")
        ] = "1h",
        record: Annotated[
            bool,
            Field(description="Store the findings as decisions (not on a read-only server)."),
        ] = not settings.read_only,
    ) -> Annotated[CallToolResult, BottleneckOut]:
        with tool_errors():
            _writable(settings, "record", record)
            found = stored.bottleneck_analyze(data_dir, swarm_id, run, timeframe, record=record)
            return _as(BottleneckOut, found)

    @tool(
        "Judge a swarm's stored snapshots against SLA rules (latency, error rate, "
        "availability, ...): each rule's state and error budget used. Use it to check "
        "objectives. CLI: swarmperf sla-check -o json.",
        READ,
    )
    def sla_check(
        swarm_id: SwarmId,
        sla: Annotated[
            str | None,
            Field(description="An alerting file (rules, alerting, sinks); none: built-in rules."),
        ] = None,
        window: Annotated[
            str | None, Field(description="Judge every rule over this window, e.g. 300s.")
        ] = None,
    ) -> Annotated[CallToolResult, SlaOut]:
        with tool_errors():
            return _as(SlaOut, stored.sla_check(data_dir, swarm_id, _path(sla), window))

    @tool(
        "The anomalies the detectors flagged in a swarm's runs over a timeframe (figure, "
        "score, value). Use it to find unusual moments to look into. CLI: none of its own; "
        "the events are in the store (performance-report shows the findings).",
        READ,
    )
    def anomaly_events(
        swarm_id: OptionalSwarmId = None,
        timeframe: Timeframe = "24h",
        include_simulated: IncludeSimulated = False,
    ) -> Annotated[CallToolResult, AnomalyOut]:
        with tool_errors():
            found = stored.anomaly_events(
                data_dir, swarm_id, timeframe, include_simulated=include_simulated
            )
            return _as(AnomalyOut, found)

    @tool(
        "Run a workload under one strategy, or every one (auto), in this process and compare "
        "makespan, throughput, latency and fairness. Use it to choose a strategy. CLI: "
        "swarmperf load-balance -o json. (switch_strategy changes a live swarm's.)",
        READ if settings.read_only else RECORDS,
    )
    def load_balance(
        strategy: Annotated[
            str, Field(description="A strategy name, or auto to compare them all.")
        ] = "auto",
        workload: Annotated[
            str | None, Field(description="A YAML swarm spec; none: the demo.")
        ] = None,
        seed: Annotated[int | None, Field(description="The random seed.")] = None,
        store: Annotated[
            bool, Field(description="Record the runs in the store (not on a read-only server).")
        ] = not settings.read_only,
    ) -> Annotated[CallToolResult, CompareOut]:
        from swarmperf.app.run import compare_strategies

        with tool_errors():
            _writable(settings, "store", store)
            spec = runs.override(
                runs.load_spec_or_demo(_path(workload)), strategy=strategy, seed=seed
            )
            names = spec.strategy_names()
            db = stored.open_store(data_dir, read_only=False) if store else None
            try:
                # A tool runs in a worker thread of its own: the run gets its own loop.
                outcomes = asyncio.run(compare_strategies(spec, names, store=db))
            finally:
                if db is not None:
                    db.close()
            return _as(CompareOut, runs.comparison_payload(outcomes))

    @tool(
        "Run a swarm spec in virtual time (the same strategies, queue and breakers) and "
        "report makespan, throughput, latency and fairness. Use it to try a change at scale "
        "without running it. CLI: swarmperf simulate -o json.",
        READ if settings.read_only else RECORDS,
    )
    def simulate(
        spec: Annotated[str | None, Field(description="A YAML swarm spec; none: the demo.")] = None,
        agents: Annotated[
            int | None, Field(description="Scale the spec's agent groups to this many agents.")
        ] = None,
        tasks: Annotated[int | None, Field(description="How many tasks to run.")] = None,
        seed: Annotated[int | None, Field(description="The random seed.")] = None,
        strategy: Annotated[str | None, Field(description="Overrides the spec's.")] = None,
        store: Annotated[
            bool, Field(description="Record the run in the store (not on a read-only server).")
        ] = not settings.read_only,
    ) -> Annotated[CallToolResult, SimulateOut]:
        from swarmperf.app.run import run_spec

        with tool_errors():
            _writable(settings, "store", store)
            made, _ = runs.simulation_spec(
                _path(spec), agents=agents, tasks=tasks, seed=seed, strategy=strategy
            )
            db = stored.open_store(data_dir, read_only=False) if store else None
            try:
                outcome = asyncio.run(run_spec(made, store=db, handle_signals=False))
            finally:
                if db is not None:
                    db.close()
            return _as(SimulateOut, runs.outcome_payload(outcome))

    @tool(
        "Run a benchmark suite (quick, comprehensive or a YAML file) against a swarm, a "
        "callable or a URL; write and store the results. Sends progress notifications while "
        "it runs. Use it to measure, then judge with quality_assess or detect_regression. "
        "CLI: swarmperf benchmark-run -o json.",
        READ if settings.read_only else RECORDS,
    )
    async def benchmark_run(
        ctx: Context,
        suite: Annotated[
            str, Field(description="A built-in suite (quick, comprehensive) or a YAML file.")
        ] = "quick",
        duration: Annotated[
            str | None, Field(description="Each iteration's length, e.g. 30s.")
        ] = None,
        iterations: Annotated[
            int | None, Field(description="Measured iterations per scenario.")
        ] = None,
        warmup: Annotated[str | None, Field(description="Unmeasured load first, e.g. 5s.")] = None,
        cooldown: Annotated[
            str | None, Field(description="Pause between iterations, e.g. 1s.")
        ] = None,
        spec: Annotated[
            str | None, Field(description="A swarm spec whose agents take the load.")
        ] = None,
        target: Annotated[
            str | None,
            Field(description="Instead of a swarm: an http(s) URL or module:function."),
        ] = None,
        out: Annotated[
            str | None,
            Field(description="Where to write the results JSON (default: the data dir)."),
        ] = None,
        swarm_id: Annotated[
            str | None, Field(description="The id the results are stored under.")
        ] = None,
        store: Annotated[
            bool,
            Field(description="Record the results in the store (not on a read-only server)."),
        ] = not settings.read_only,
    ) -> Annotated[CallToolResult, BenchmarkOut]:
        from swarmperf.bench.suite import SuiteProgress

        with tool_errors():
            _writable(settings, "store", store)
            if out is None and settings.read_only:
                raise ConfigError(
                    "out",
                    out,
                    "A read-only server writes no results file of its own: give a path.",
                )
            last: dict[str, Any] = {"at": 0.0, "scenario": ""}

            def progress(p: SuiteProgress) -> None:
                now = time.monotonic()
                if p.scenario == last["scenario"] and now - float(last["at"]) < PROGRESS_EVERY_S:
                    return
                last.update(at=now, scenario=p.scenario)
                failed = f", {p.failed:,} failed" if p.failed else ""
                message = f"{p.suite}: {p.scenario} {p.phase}, {p.sent:,} sent{failed}"
                anyio.from_thread.run(ctx.report_progress, p.done_s, p.total_s or None, message)

            def run_it() -> Any:
                return suites.run_benchmark(
                    suite,
                    duration=duration,
                    iterations=iterations,
                    warmup=warmup,
                    cooldown=cooldown,
                    spec=_path(spec),
                    target=target,
                    out_path=_path(out),
                    swarm_id=swarm_id,
                    data_dir=data_dir,
                    store=store,
                    on_progress=progress,
                )

            result, path, benchmark_id = await anyio.to_thread.run_sync(run_it)
            return _as(BenchmarkOut, suites.benchmark_payload(result, path, benchmark_id))

    @tool(
        "Two benchmark results files side by side: each scenario's medians, the change and "
        "a Mann-Whitney verdict. Use it to compare two versions or settings. CLI: swarmperf "
        "benchmark-compare A.json B.json -o json.",
        READ,
    )
    def benchmark_compare(
        baseline: Annotated[str, Field(description="The baseline results file.")],
        current: Annotated[str, Field(description="The results file to compare with it.")],
        alpha: Annotated[
            float, Field(description="Significance level of the Mann-Whitney test.")
        ] = 0.01,
        min_change: Annotated[
            str, Field(description="Smallest change of the median that counts, e.g. 5%.")
        ] = "5%",
    ) -> Annotated[CallToolResult, GateOut]:
        with tool_errors():
            gate = suites.compare_files(
                Path(baseline), Path(current), alpha=alpha, min_change=min_change
            )
            return _as(GateOut, gate.to_dict())

    @tool(
        "Check a benchmark result against SLA criteria (throughput, latency, reliability, "
        "scalability): pass or fail per criterion, a 0-100 score and advice. Use it as a "
        "quality gate. CLI: swarmperf quality-assess -o json.",
        READ,
    )
    def quality_assess(
        target: Annotated[
            str,
            Field(
                description="A results file; or swarm: the latest stored suite result; or a "
                "swarm id: that swarm's latest stored suite result."
            ),
        ] = suites.SWARM_TARGET,
        criteria: Annotated[
            str,
            Field(description="Comma-separated: throughput, latency, reliability, scalability."),
        ] = "throughput,latency,reliability",
        thresholds: Annotated[
            list[str] | None,
            Field(description="Thresholds such as p(95)<200ms, rate<1%, throughput>500/s."),
        ] = None,
        suite: Annotated[
            str | None, Field(description="With target swarm: the suite's name.")
        ] = None,
        swarm_id: Annotated[
            str | None, Field(description="Only this swarm's stored results.")
        ] = None,
    ) -> Annotated[CallToolResult, QualityOut]:
        with tool_errors():
            report = suites.assess_quality(
                target, criteria, thresholds or [], suite, swarm_id, data_dir
            )
            checks = suites.quality_checks(report)
            return _as(QualityOut, suites.quality_payload(report, checks))

    @tool(
        "Gate a benchmark results file against a baseline file or the stored history of "
        "the same suite (Mann-Whitney and change points). Use it in CI to catch a "
        "regression. CLI: swarmperf detect-regression -o json.",
        READ,
    )
    def detect_regression(
        current: Annotated[str, Field(description="The results file to judge.")],
        historical: Annotated[
            list[str] | None,
            Field(description="Baseline results files (one: a baseline; more: a history)."),
        ] = None,
        history: Annotated[
            str | None,
            Field(description="Instead: the swarm id whose stored results make the history."),
        ] = None,
        alpha: Annotated[
            float, Field(description="Significance level of the Mann-Whitney test.")
        ] = 0.01,
        min_change: Annotated[
            str, Field(description="Smallest change of the median that counts, e.g. 5%.")
        ] = "5%",
        recent: Annotated[
            int, Field(description="History: a worse change point in this many last runs fails.")
        ] = 3,
    ) -> Annotated[CallToolResult, GateOut]:
        with tool_errors():
            gate = suites.regression_gate(
                Path(current),
                [Path(p) for p in historical or []] or None,
                history,
                data_dir,
                alpha=alpha,
                min_change=min_change,
                recent=recent,
            )
            return _as(GateOut, suites.gate_payload(gate, gate.to_check_report()))

    @tool(
        "Group the failures of a benchmark results file, or of a swarm's stored run, by "
        "message template and type: counts, first and last seen, trend. Use it to see what "
        "fails and whether it grows. CLI: swarmperf error-analysis -o json.",
        READ,
    )
    def error_analysis(
        results: Annotated[
            str | None, Field(description="A results file (give this or swarm_id).")
        ] = None,
        swarm_id: Annotated[
            str | None, Field(description="A swarm whose stored run to analyse.")
        ] = None,
        run: RunName = None,
    ) -> Annotated[CallToolResult, ErrorsOut]:
        with tool_errors():
            analysis, source = suites.analyse_errors(_path(results), swarm_id, run, data_dir)
            return _as(ErrorsOut, suites.error_payload(analysis, source))

    # -- resource allocation: a plan, and with `apply` a trial on a live swarm --------------

    @tool(
        "The cheapest allocation of agent pools that meets every SLO, and the Pareto front of "
        "cost against p99 latency and SLA-violation risk (NSGA-II on an M/G/c model, "
        "confirmed in the simulator), for a resources file. With apply, resizes the live "
        "swarm's pools to it on trial: rolled back unless the p99 measured over `observe` "
        "meets the prediction and the SLOs. Use it to size pools for a budget and SLOs. CLI: "
        "swarmperf resource-alloc -o json.",
        READ if settings.read_only else CHANGES,
    )
    def resource_alloc(
        resources: Annotated[
            str, Field(description="The resources file (YAML/JSON): pools, constraints, workload.")
        ],
        swarm_id: Annotated[
            str | None,
            Field(
                description="Measure the pools' speeds (and the mix, if the file gives none) "
                "from this swarm's latest stored run; with apply, the live swarm to change."
            ),
        ] = None,
        apply: Annotated[
            bool,
            Field(description="Resize the live swarm's pools to the recommendation, on trial."),
        ] = False,
        observe: Annotated[
            str | None,
            Field(description="With apply: the window the trial is judged on (default 30s)."),
        ] = None,
        tolerance: Annotated[
            float,
            Field(description="With apply: how much worse than the predicted p99 may pass."),
        ] = 0.5,
        seed: Annotated[int, Field(description="The random seed of the search.")] = 0,
    ) -> Annotated[CallToolResult, AllocationOut]:
        with tool_errors():
            _writable(settings, "apply", apply)
            client = clients.get(swarm_id) if apply and swarm_id is not None else None
            return _as(
                AllocationOut,
                allocation.resource_alloc(
                    Path(resources).expanduser(),
                    swarm_id,
                    data_dir,
                    apply=apply,
                    observe_text=observe,
                    tolerance=tolerance,
                    seed=seed,
                    client=client,
                ),
            )

    @tool(
        "A workload trace's patterns: periods (ACF-confirmed), trend, burstiness (index of "
        "dispersion, peak to mean), changes of level, and the scaling policy they suggest. "
        "Use it before choosing how to scale. CLI: swarmperf workload-analyze TRACE -o json.",
        READ,
    )
    def workload_analyze(
        trace: TraceFile,
        interval: TraceInterval = "60s",
    ) -> Annotated[CallToolResult, WorkloadOut]:
        with tool_errors():
            found = autoscale.workload_analysis(
                Path(trace).expanduser(), interval, max_bytes=MAX_TRACE_BYTES
            )
            return _as(WorkloadOut, found)

    @tool(
        "Replay a workload trace through a simulated swarm under each scaling policy (HPA, "
        "KEDA, predictive, static peak, oracle): SLO violation minutes, agent-hours, scale "
        f"events. Traces of at most {MAX_REPLAY_TASKS:,} tasks. Sends a progress "
        "notification as each policy starts. Use it to choose a scaling policy. CLI: "
        "swarmperf autoscale-eval TRACE -o json.",
        READ,
    )
    async def autoscale_eval(
        ctx: Context,
        trace: TraceFile,
        policy: Annotated[
            str, Field(description="hpa, keda, predictive, rl, static-peak, oracle, or all.")
        ] = "all",
        interval: TraceInterval = "60s",
        peak_agents: Annotated[
            int,
            Field(
                description="Agents the busiest interval needs at 70% utilisation (sets the "
                "service time)."
            ),
        ] = 50,
        slo_factor: Annotated[
            float,
            Field(description="A task violates when its latency exceeds this x its service time."),
        ] = 2.0,
        startup: Annotated[
            str, Field(description="Time from asking for an agent to its first task, e.g. 60s.")
        ] = "60s",
        forecaster: Annotated[
            str,
            Field(
                description="The predictive policy's: default (holt-winters), seasonal-naive, "
                "sarima, lstm, theta or combination."
            ),
        ] = "default",
        seed: Annotated[int, Field(description="Seeds the arrivals within intervals.")] = 0,
    ) -> Annotated[CallToolResult, AutoscaleOut]:
        with tool_errors():
            asked = autoscale.replay_question(
                Path(trace).expanduser(),
                policy=policy,
                interval=interval,
                peak_agents=peak_agents,
                slo_factor=slo_factor,
                startup=startup,
                forecaster=forecaster,
                seed=seed,
                max_bytes=MAX_TRACE_BYTES,
                max_tasks=MAX_REPLAY_TASKS,
            )
            total = len(asked.policies)

            def progress(name: str, done: int) -> None:
                message = f"{asked.trace.name}: replaying under {name} ({done + 1}/{total})"
                anyio.from_thread.run(ctx.report_progress, done, total, message)

            found = await anyio.to_thread.run_sync(autoscale.autoscale_eval, asked, progress)
            return _as(AutoscaleOut, found)

    @tool(
        "Solve every QAPLIB instance (.dat, with .sln files or a best_known.csv) in a folder "
        "with a placement solver (tabu, annealing, genetic) and score each placement against "
        "the known optimum. Sends a progress notification as each instance is solved. Use it "
        "to choose a solver and its time budget. CLI: swarmperf placement-eval --corpus DIR "
        "-o json.",
        READ,
    )
    async def placement_eval(
        ctx: Context,
        corpus: Annotated[
            str,
            Field(
                description="A folder of QAPLIB .dat files, with .sln files or a "
                "best_known.csv to score against."
            ),
        ],
        time_limit: Annotated[
            str,
            Field(
                description="Time per instance, e.g. 10s or 500ms (all the instances: at most "
                f"{MAX_PLACEMENT_S:g} s)."
            ),
        ] = "10s",
        solver: Annotated[
            str | None,
            Field(description="tabu, annealing or genetic (none: the best measured)."),
        ] = None,
        seed: Annotated[int, Field(description="The random seed (>= 0).")] = 0,
        iterations: Annotated[
            int | None,
            Field(
                description="Also stop each instance after this many solver steps: with the "
                "seed, the same result on every call (when the time limit does not cut it)."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, PlacementOut]:
        with tool_errors():
            asked = placement.placement_question(
                Path(corpus).expanduser(),
                time_limit=time_limit,
                solver=solver,
                seed=seed,
                iterations=iterations,
                max_total_s=MAX_PLACEMENT_S,
            )
            total = len(asked.instances)
            done = 0

            def solved(name: str, solution: dict[str, Any], seconds: float) -> None:
                nonlocal done
                done += 1
                gap = solution["gap_pct"]
                shown = "" if gap is None else f", gap {gap:.3f}%"
                message = f"{name}: cost {solution['cost']} in {seconds:.2f} s{shown}"
                anyio.from_thread.run(ctx.report_progress, done, total, message)

            found = await anyio.to_thread.run_sync(placement.placement_eval, asked, solved)
            return _as(PlacementOut, found)

    @tool(
        "The communication topology (star, hierarchical, ring, mesh, hybrid) that suits a "
        "swarm's traffic, each simulated on it: offline for a spec, or for a live swarm from "
        "its measured workload, switching to the pick on trial (only if the plan predicts at "
        "least min_gain on the objective; switched back unless the figure measured over "
        "`observe` gains as much; messages on their way are re-routed, none lost). Use it "
        "when messages are slow or a hub is busy. CLI: swarmperf topology-optimize -o json.",
        READ if settings.read_only else CHANGES,
    )
    async def topology_optimize(
        spec: Annotated[
            str | None, Field(description="A YAML swarm spec to plan offline (not with swarm_id).")
        ] = None,
        swarm_id: Annotated[
            str | None,
            Field(description="A live swarm: plan from its measured workload, switch on trial."),
        ] = None,
        strategy: Annotated[
            str | None,
            Field(description="Live: adaptive (the planner's best; default) or fixed:<topology>."),
        ] = None,
        objective: Annotated[
            str,
            Field(description="p99 (tasks' latency), makespan, or traffic (messages x latency)."),
        ] = "p99",
        min_gain: Annotated[
            float,
            Field(description="Live: the least predicted and measured gain to keep (0.1: 10%)."),
        ] = 0.1,
        observe: Annotated[
            str | None,
            Field(description="Live: the window the trial is judged on (default 30s)."),
        ] = None,
        dry_run: Annotated[
            bool, Field(description="Live: the plan and the pick only; change nothing.")
        ] = False,
        latency: Annotated[
            str | None,
            Field(
                description="Offline: place agents on slots of machine, zones or regions "
                "latency, each topology with its best placement."
            ),
        ] = None,
        connection_cost: Annotated[
            float,
            Field(description="Offline, with latency: the share of time a connection costs."),
        ] = 0.0,
        predict: Annotated[
            bool,
            Field(description="Offline: ask the learned predictor, simulating no topology."),
        ] = False,
    ) -> Annotated[CallToolResult, TopologyOut]:
        with tool_errors():
            if settings.read_only and swarm_id is not None and spec is None and not dry_run:
                raise ConfigError(
                    "dry_run",
                    dry_run,
                    "This server is read-only (--read-only): give true for the plan alone, "
                    "or serve without --read-only.",
                )
            client = clients.get(swarm_id) if swarm_id is not None and spec is None else None
            found = await anyio.to_thread.run_sync(
                lambda: topology.topology_optimize(
                    _path(spec),
                    swarm_id,
                    data_dir,
                    strategy=strategy,
                    objective=objective,
                    min_gain=min_gain,
                    observe_text=observe,
                    dry_run=dry_run,
                    client=client,
                    latency=latency,
                    connection_cost=connection_cost,
                    predict=predict,
                )
            )
            return _as(TopologyOut, found)

    if settings.read_only:
        return added

    @tool(
        "Switch a live swarm's load-balancing strategy now; recorded as a decision, with the "
        "figures before and over `observe` after. Use it after load_balance chose a better "
        "strategy. CLI: swarmperf load-balance --swarm-id ID -o json.",
        CHANGES,
    )
    def switch_strategy(
        swarm_id: SwarmId,
        strategy: Annotated[str, Field(description="The strategy to run from now on.")],
        observe: Observe = None,
    ) -> Annotated[CallToolResult, SwitchOut]:
        with tool_errors():
            return _as(
                SwitchOut,
                live.switch_strategy(
                    swarm_id, strategy, observe, data_dir, client=clients.get(swarm_id)
                ),
            )

    @tool(
        "Add or remove agents of a live swarm to reach a target size; recorded as a "
        "decision, with the figures before and after. 'auto' lets the swarm's autoscaler "
        "decide with a policy (a size turns it off); dry_run says what would be done. Use "
        "it when a swarm is saturated or idle. CLI: swarmperf swarm-scale -o json.",
        CHANGES,
    )
    def swarm_scale(
        swarm_id: SwarmId,
        target_size: Annotated[
            str, Field(description="How many agents the swarm should run, e.g. 12, or auto.")
        ],
        observe: Observe = None,
        policy: Annotated[
            str | None,
            Field(description="With auto: hpa, keda, predictive, rl or static-peak."),
        ] = None,
        dry_run: Annotated[
            bool, Field(description="Say what would be done and change nothing.")
        ] = False,
    ) -> Annotated[CallToolResult, ScaleOut]:
        with tool_errors():
            return _as(
                ScaleOut,
                live.swarm_scale(
                    swarm_id,
                    target_size,
                    observe,
                    data_dir,
                    client=clients.get(swarm_id),
                    policy=policy,
                    dry_run=dry_run,
                ),
            )

    @tool(
        "Submit tasks to a live swarm: each is stored before the reply and runs once; "
        "optionally wait for the outcomes. Use it to give a served swarm work. CLI: none "
        "(the Python client's submit_many; HTTP POST /v1/tasks).",
        ADDS,
    )
    def task_submit(
        swarm_id: SwarmId,
        tasks: Annotated[
            list[dict[str, Any]],
            Field(
                description="The tasks: each {kind, payload?, priority?, tenant?, "
                "idempotency_key?}, e.g. [{'kind': 'sleep', 'payload': {'seconds': 0.01}}]."
            ),
        ],
        wait_s: Annotated[
            float, Field(description="Wait up to this long for each outcome (0: do not wait).")
        ] = 0.0,
    ) -> Annotated[CallToolResult, SubmitOut]:
        with tool_errors():
            return _as(
                SubmitOut,
                live.task_submit(
                    swarm_id, tasks, data_dir, wait_s=wait_s, client=clients.get(swarm_id)
                ),
            )

    @tool(
        "Sample a served swarm's stacks for a window and write flame graphs (svg, speedscope, "
        "collapsed, html) split by agent and handler, where the command line would write them; "
        "returns the top self-time functions, the split by agent and by handler and the paths "
        "written. Use it to see where a swarm spends its time. CLI: swarmperf "
        "profile-performance --swarm-id ID -o json.",
        WRITES,
    )
    def profile_performance(
        swarm_id: SwarmId,
        duration: Annotated[
            str,
            Field(
                description=f"How long to sample, e.g. 10s (at most {MAX_PROFILE_S:g} s; the "
                "reply comes after the window)."
            ),
        ] = "10s",
        components: Annotated[
            str,
            Field(
                description="all, coordinator (the service outside its agents), agents, or "
                "an agent's id."
            ),
        ] = "all",
        rate: Annotated[float, Field(description="Samples per second (1 to 1000).")] = 100.0,
        formats: Annotated[
            list[str] | None,
            Field(description="Any of speedscope, svg, collapsed, html (none: svg, speedscope)."),
        ] = None,
        memory: Annotated[
            bool,
            Field(
                description="Also tracemalloc's top allocation sites and their growth over "
                "the window (slows the swarm while on)."
            ),
        ] = False,
        awaiting: Annotated[
            bool,
            Field(
                description="Count handlers suspended in an await (wall time in handlers) "
                "beside the stacks on a CPU; false: CPU stacks alone."
            ),
        ] = True,
        out: Annotated[
            str | None,
            Field(
                description="Where to write (none: ./<swarm id>-profile.<format's suffix> in "
                "the server's working directory); with several formats, each gets its suffix."
            ),
        ] = None,
        top: Annotated[int, Field(description="Functions listed by self time (>= 1).")] = (
            profile.TOP
        ),
    ) -> Annotated[CallToolResult, ProfileOut]:
        with tool_errors():
            found = profile.profile_served(
                swarm_id,
                data_dir,
                duration=duration,
                components=components,
                rate=rate,
                formats=formats,
                memory=memory,
                awaiting=awaiting,
                out_path=_path(out),
                top=top,
                max_s=MAX_PROFILE_S,
                client=clients.get(swarm_id),
            )
            return _as(ProfileOut, found)

    return added

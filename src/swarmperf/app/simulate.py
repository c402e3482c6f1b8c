"""Simulating a spec: the swarm `swarmperf run` would build, run in virtual time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from swarmperf.app.backends import agents_as_run
from swarmperf.app.build import check_runnable, spec_traffic
from swarmperf.app.workload import generate_tasks
from swarmperf.core.errors import ConfigError
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.runtime.messaging import Traffic
from swarmperf.runtime.report import RunReport, work_lower_bound
from swarmperf.sim.engine import VirtualClock
from swarmperf.sim.messaging import LinkModel
from swarmperf.sim.models import AgentModel
from swarmperf.sim.simulation import ProgressListener, SimOutcome, Simulation
from swarmperf.spec import BatchArrival, SwarmSpec


def simulate_spec(
    spec: SwarmSpec,
    *,
    models: Mapping[str, AgentModel] | None = None,
    default_model: AgentModel | None = None,
    handlers: HandlerRegistry | None = None,
    on_progress: ProgressListener | None = None,
    progress_every: int = 10_000,
    links: LinkModel | None = None,
    traffic: Traffic | None = None,
) -> tuple[SimOutcome, RunReport]:
    """Run `spec` in virtual time: the workload, strategy, queue, guard and bulkheads that
    `swarmperf run` would use, with the same seed; returns the outcome and the report.
    `links` replaces what the spec's `messages:` says a hop costs (e.g. placed agents),
    and `traffic` what its tasks send (e.g. a swarm's measured matrix: give each run its
    own, as it keeps state)."""
    handlers = handlers or HandlerRegistry()
    check_runnable(spec, handlers)
    clock = VirtualClock()
    sim = Simulation(
        agents_as_run(spec),
        strategy=spec.strategy,
        queue=spec.queue_settings(),
        guard=spec.guard(clock),
        bulkheads=spec.resilience.bulkhead_settings(),
        models=models,
        default_model=default_model,
        handlers=handlers,
        seed=spec.seed,
        clock=clock,
        traffic=traffic if traffic is not None else spec_traffic(spec),
        topology=spec.topology.to_settings(),
        links=links
        if links is not None
        else (spec.messages.link_model() if spec.messages is not None else None),
    )
    outcome = sim.run_timed(
        generate_tasks(spec.workload, spec.seed),
        until=spec.duration,
        on_progress=on_progress,
        progress_every=progress_every,
    )
    batch = isinstance(spec.workload.arrival, BatchArrival)
    bound = work_lower_bound(outcome.results, outcome.agents) if batch else None
    report = replace(outcome.report(swarm_id=spec.swarm_id, lower_bound=bound), virtual_time=True)
    if not batch:
        report.missing["makespan_ratio"] = (
            "tasks arrive over time, so total work / capacity bounds nothing"
        )
    return outcome, report


def scaled_agents(spec: SwarmSpec, agents: int, *, field: str = "agents") -> list[dict[str, Any]]:
    """The spec's agent groups as data, their counts scaled in proportion so that they add
    up to `agents` (each group keeps at least one); `field` names the setting in errors."""
    if agents < 1:
        raise ConfigError(field, agents, "Use an integer >= 1.")
    groups = [g.model_dump(mode="json") for g in spec.agents]
    sizes = [g.get("count") or 1 for g in groups]
    total = sum(sizes)
    counts = [max(1, round(size * agents / total)) for size in sizes]
    # Rounding leaves the sum off by a few: the largest group absorbs the difference.
    largest = counts.index(max(counts))
    counts[largest] = max(1, counts[largest] + agents - sum(counts))
    for group, count in zip(groups, counts, strict=True):
        group["count"] = count
    return groups

"""From a spec to a swarm: what a run needs checked and built before it starts."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from swarmperf.app.backends import backend_entry
from swarmperf.core.errors import ConfigError
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.runtime.messaging import Traffic
from swarmperf.runtime.swarm import Swarm
from swarmperf.spec import SwarmSpec

if TYPE_CHECKING:
    from swarmperf.alerting.sinks import AlertingFile


def check_runnable(spec: SwarmSpec, handlers: HandlerRegistry) -> None:
    """What the spec cannot tell by itself: does its task kind exist here?"""
    if spec.workload.kind not in handlers:
        choices = ", ".join(sorted(handlers))
        raise ConfigError(
            "workload.kind", spec.workload.kind, f"Use a registered handler: {choices}."
        )
    if spec.strategy == "auto":
        raise ConfigError(
            "strategy", "auto", "Name one strategy to run; 'auto' is for `load-balance`."
        )


def build_swarm(
    spec: SwarmSpec, handlers: HandlerRegistry | None = None, *, keep_results: bool = True
) -> Swarm:
    """The spec's swarm, not yet started: agents, strategy, backend, queue and resilience.

    A virtual-time backend has no swarm to build: `run_spec` and `simulate_spec` run it.
    """
    entry = backend_entry(spec.backend)
    if entry.virtual_time:
        raise ConfigError(
            "backend",
            spec.backend,
            "It runs in virtual time, which a real-time swarm cannot drive: run the spec "
            "with `run_spec` or `simulate_spec`, or choose a backend that runs for real.",
        )
    clock = time.perf_counter
    return Swarm(
        spec.agent_specs(),
        strategy=spec.strategy,
        backend=entry.make(spec),
        queue=spec.queue_settings(),
        handlers=handlers,
        seed=spec.seed,
        clock=clock,
        guard=spec.guard(clock),
        bulkheads=spec.resilience.bulkhead_settings(),
        restart=spec.resilience.restart_policy(),
        keep_results=keep_results,
        topology=spec.topology.to_settings(),
        traffic=spec_traffic(spec),
    )


def spec_traffic(spec: SwarmSpec) -> Traffic | None:
    """The messages the spec's tasks send (its `messages` section), if any."""
    if spec.messages is None:
        return None
    agents = [agent.id for agent in spec.agent_specs()]
    return spec.messages.message_pattern(spec.seed).traffic(agents)


def load_alerting(spec: SwarmSpec) -> AlertingFile | None:
    """The spec's alerting file, read and checked; None when the spec names none."""
    path = spec.monitor.alerting
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError(
            "monitor.alerting",
            str(path),
            "No such file. Give the path of an alerting file (start from `swarmperf "
            "sla-defaults`), relative to the working directory, or leave the field out.",
        )
    from swarmperf.alerting.sinks import AlertingFile

    return AlertingFile.load(path)

"""Which topology suits a spec's traffic: each one simulated on the spec's workload, compared.

`plan_topologies(spec)` runs the spec in virtual time once per topology (star, hierarchical,
ring, mesh, hybrid, each shaped from the spec's own settings or from the swarm's size), with
the same seed, workload, messages and hop costs, and ranks them by one objective: `p99`
(tasks' latency), `makespan`, or `traffic` (messages x latency: the seconds messages spent
on their way, summed). The plan names the best and its predicted gain over the topology the
spec has. Nothing is applied: this is the offline half of choosing a topology.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Final

from swarmperf.app.simulate import simulate_spec
from swarmperf.core.errors import ConfigError, UserError
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.routing import TOPOLOGIES
from swarmperf.runtime.report import RunReport
from swarmperf.runtime.traffic import MeasuredTraffic
from swarmperf.sim.simulation import SimOutcome
from swarmperf.spec import SwarmSpec
from swarmperf.spec.messages import TopologySpec

OBJECTIVES: Final = ("makespan", "p99", "traffic")


@dataclass(frozen=True, slots=True)
class TopologyFigures:
    """One topology's simulated run. Seconds are virtual; None: no figure, see `missing`."""

    topology: str
    makespan: float | None
    p99: float | None
    traffic: float | None  # sum over delivered messages of their send-to-delivery seconds
    messages: int
    hops: int
    relayed_max: int  # the most messages one agent forwarded
    connections: int
    missing: dict[str, str]
    runs: int = 1  # simulated runs (seeds) its makespan, p99 and traffic are the mean of

    def objective(self, name: str) -> float | None:
        value: float | None = getattr(self, name)
        return value

    @classmethod
    def mean(cls, runs: list[TopologyFigures]) -> TopologyFigures:
        """One topology's figures over several simulated runs (other seeds): makespan,
        p99 and traffic are their means (None when a run has none); counts are the first's."""
        first = runs[0]

        def mean_of(name: str) -> float | None:
            values = [f.objective(name) for f in runs]
            kept = [v for v in values if v is not None]
            return None if len(kept) < len(values) else sum(kept) / len(kept)

        return replace(
            first,
            missing={k: v for f in runs for k, v in f.missing.items()},
            makespan=mean_of("makespan"),
            p99=mean_of("p99"),
            traffic=mean_of("traffic"),
            runs=sum(f.runs for f in runs),
        )


@dataclass(frozen=True, slots=True)
class TopologyPlan:
    """Every topology's figures, the best by `objective`, and its gain over `current`."""

    objective: str
    current: str
    best: str
    gain: float | None  # (current - best) / current on the objective; None without a figure
    figures: tuple[TopologyFigures, ...]

    @classmethod
    def ranked(cls, objective: str, figures: list[TopologyFigures]) -> TopologyPlan:
        """The plan over `figures` (the first is the current topology), lowest best."""
        current = figures[0]
        scored = [f for f in figures if f.objective(objective) is not None]
        if not scored:
            raise UserError(f"No topology gave a {objective} figure: {figures[0].missing}.")
        best = min(scored, key=lambda f: f.objective(objective) or 0.0)
        before, after = current.objective(objective), best.objective(objective)
        gain = None if before is None or after is None or before <= 0 else (before - after) / before
        return cls(objective, current.topology, best.topology, gain, tuple(figures))

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "current": self.current,
            "best": self.best,
            "predicted_gain": self.gain,
            "topologies": [
                {
                    "topology": f.topology,
                    "makespan": f.makespan,
                    "p99": f.p99,
                    "traffic": f.traffic,
                    "messages": f.messages,
                    "hops": f.hops,
                    "relayed_max": f.relayed_max,
                    "connections": f.connections,
                    "missing": f.missing,
                    "runs": f.runs,
                }
                for f in self.figures
            ],
        }


def candidates(spec: SwarmSpec) -> list[TopologySpec]:
    """The spec's own topology, and each other kind shaped alike: its fan-out, hub and
    cluster size when it sets them, else a fan-out of 4 and clusters of about sqrt(n)."""
    own = spec.topology
    n = len(spec.agent_specs())
    cluster = own.cluster_size if own.kind == "hybrid" else max(2, round(math.sqrt(n)))
    shaped = {
        kind: own
        if kind == own.kind
        else own.model_copy(update={"kind": kind, "cluster_size": cluster})
        for kind in TOPOLOGIES
    }
    return [shaped[own.kind], *(shaped[k] for k in TOPOLOGIES if k != own.kind)]


def plan_topologies(
    spec: SwarmSpec,
    objective: str = "p99",
    handlers: HandlerRegistry | None = None,
    measured: MeasuredTraffic | None = None,
) -> TopologyPlan:
    """Simulate `spec` under each topology and rank them by `objective` (lower is better).
    With `measured`, the tasks send that traffic instead of what `messages:` declares
    (whose hop costs still apply)."""
    if objective not in OBJECTIVES:
        raise ConfigError("--objective", objective, f"Choose one of: {', '.join(OBJECTIVES)}.")
    if spec.messages is None:
        raise UserError(
            "The spec's tasks send no messages, so every topology carries nothing: add a "
            "`messages:` section (e.g. messages: {pattern: gather, to: [an-agent-id]})."
        )
    figures = [
        _simulate(
            spec.model_copy(update={"topology": topology, "backend": "sim"}), handlers, measured
        )
        for topology in candidates(spec)
    ]
    return TopologyPlan.ranked(objective, figures)


def _simulate(
    spec: SwarmSpec, handlers: HandlerRegistry | None, measured: MeasuredTraffic | None
) -> TopologyFigures:
    traffic = measured.traffic() if measured is not None else None
    outcome, report = simulate_spec(spec, handlers=handlers, traffic=traffic)
    return topology_figures(spec, outcome, report)


def topology_figures(spec: SwarmSpec, outcome: SimOutcome, report: RunReport) -> TopologyFigures:
    """One simulated run's figures under the topology `spec` names."""
    messages = outcome.messages or {}
    missing = dict(report.missing)
    delivered = int(messages.get("delivered", 0))
    mean = messages.get("latency_mean")
    traffic = None if mean is None else float(mean) * delivered
    if traffic is None:
        missing["traffic"] = "no message was delivered"
    relayed = messages.get("matrix", {}).get("relayed", [])
    return TopologyFigures(
        topology=spec.topology.to_settings().describe(),
        makespan=report.makespan,
        p99=report.latency_p99,
        traffic=traffic,
        messages=int(messages.get("sent", 0)),
        hops=int(messages.get("hops", 0)),
        relayed_max=max(relayed, default=0),
        connections=int(messages.get("connections", 0)),
        missing=missing,
    )

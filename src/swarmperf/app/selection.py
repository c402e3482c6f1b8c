"""Topology selection: each topology with its best placement of agents, simulated, the best named.

`select_topology(spec, latency)` measures the spec's communication matrix once (a simulated
run), then for each topology (star, hierarchical, ring, mesh, hybrid) routes that matrix
over the topology's links, places the agents onto slots with the QAP solver (`place`: the
link traffic against the slots' latency matrix), and simulates the spec with each hop
paying the latency between the slots of its two ends. An open connection can also cost
its agent a share of its time (`connection_cost`: heartbeats, buffers), which is what a
mesh pays for its single hops. The best on the objective wins.

`slot_latency(layout, n)` gives the latency matrices the benchmark and the command use:
one `machine`, two `zones`, four `regions`. `synthetic_spec` makes the generated workloads
(pipeline, map/reduce, all-to-all, hierarchical fan-out, sparse random) the predictor is
trained and judged on.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from swarmperf.app.simulate import simulate_spec
from swarmperf.app.topologies import (
    OBJECTIVES,
    TopologyFigures,
    TopologyPlan,
    candidates,
    topology_figures,
)
from swarmperf.app.workload import draw_sizes
from swarmperf.core.errors import ConfigError, UnknownName, UserError
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.routing import Routes
from swarmperf.sim.messaging import PlacedLinks
from swarmperf.sim.models import AgentModel
from swarmperf.spec import SwarmSpec
from swarmperf.topology import place
from swarmperf.topology.predictor import WorkloadSummary, features

LAYOUTS: Final = ("machine", "zones", "regions")
FAMILIES: Final = ("pipeline", "mapreduce", "all-to-all", "fanout", "sparse")

# Typical one-way latencies: loopback on one machine; within and across availability
# zones; within a region, and between four regions (roughly us-east, us-west, eu, ap).
_MACHINE_S: Final = 50e-6
_ZONE_S: Final = (100e-6, 1e-3)
_REGION_IN_S: Final = 250e-6
_REGIONS_S: Final = (
    np.array([[0, 35, 80, 150], [35, 0, 70, 110], [80, 70, 0, 120], [150, 110, 120, 0]]) * 1e-3
)
# Placement runs the solver to a fixed number of steps (same seed, same placement) within
# this time limit, which only a machine far slower than expected reaches.
_PLACE_ITERATIONS: Final = 60  # per agent, up to _PLACE_MAX_ITERATIONS
_PLACE_MAX_ITERATIONS: Final = 1000
_PLACE_LIMIT_S: Final = 10.0
# Each topology is simulated with the spec's seed and the next ones, at least _MIN_RUNS
# times and up to RUNS (one run's draw of task sizes can make a topology look twice as
# fast as it is); after _MIN_RUNS, only those whose spread reaches the best's run again.
RUNS: Final = 3
_MIN_RUNS: Final = 2
_MAX_RUNS: Final = 20
# The slowest an agent gets from its connections: it keeps a tenth of its time for work.
_MIN_SPEED: Final = 0.1


def slot_latency(layout: str, slots: int) -> npt.NDArray[np.float64]:
    """Seconds from slot i to slot j, for `slots` slots spread evenly over one machine,
    two zones or four regions (consecutive slots share a zone or a region)."""
    if layout not in LAYOUTS:
        raise UnknownName("--latency", layout, LAYOUTS)
    if slots < 1:
        raise ConfigError("slots", slots, "Use an integer >= 1.")
    groups = {"machine": 1, "zones": 2, "regions": 4}[layout]
    group = np.arange(slots) * groups // slots
    same = group[:, None] == group[None, :]
    if layout == "machine":
        matrix = np.full((slots, slots), _MACHINE_S)
    elif layout == "zones":
        matrix = np.where(same, _ZONE_S[0], _ZONE_S[1])
    else:
        matrix = np.where(same, _REGION_IN_S, _REGIONS_S[group[:, None], group[None, :]])
    np.fill_diagonal(matrix, 0.0)
    return matrix.astype(np.float64)


@dataclass(frozen=True, slots=True)
class Selection:
    """Each topology's simulated figures with its placement, and the best on `objective`."""

    plan: TopologyPlan
    layout: str
    placements: dict[str, tuple[int, ...]]  # topology -> slot of each agent, in agents order
    summary: WorkloadSummary

    @property
    def best(self) -> str:
        return self.plan.best

    def to_dict(self) -> dict[str, Any]:
        payload = self.plan.to_dict()
        payload["method"] = "simulated"
        payload["latency"] = self.layout
        payload["placements"] = {k: list(v) for k, v in self.placements.items()}
        return payload


def communication(
    spec: SwarmSpec, handlers: HandlerRegistry | None = None
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The spec's agents and who sends how many messages (and bytes) to whom, from one
    simulated run on a mesh (the matrix is end to end, so the same under any topology)."""
    if spec.messages is None:
        raise UserError(
            "The spec's tasks send no messages, so every topology carries nothing: add a "
            "`messages:` section (e.g. messages: {pattern: gather, to: [an-agent-id]})."
        )
    mesh = spec.topology.model_copy(update={"kind": "mesh"})
    outcome, _ = simulate_spec(
        spec.model_copy(update={"topology": mesh, "backend": "sim"}), handlers=handlers
    )
    matrix = (outcome.messages or {}).get("matrix", {})
    agents = list(matrix.get("agents", [a.id for a in spec.agent_specs()]))
    n = len(agents)
    counts = np.asarray(matrix.get("messages") or np.zeros((n, n)), dtype=float)
    sizes = np.asarray(matrix.get("bytes") or np.zeros((n, n)), dtype=float)
    return agents, counts, sizes


def summarise(
    spec: SwarmSpec,
    counts: npt.NDArray[np.float64],
    sizes: npt.NDArray[np.float64],
    latency: npt.NDArray[np.float64],
    connection_cost: float,
) -> WorkloadSummary:
    """What the predictor reads of a workload: its matrix, sizes, task cost and links."""
    assert spec.messages is not None
    task_s = float(np.mean(draw_sizes(spec.workload.size, 2000, np.random.default_rng(0))))
    if spec.workload.kind not in ("sleep", "spin"):
        task_s = 0.0
    messages = float(counts.sum())
    link = spec.messages
    mean_bytes = float(sizes.sum() / messages) if messages else 0.0
    return WorkloadSummary(
        counts=counts,
        latency=latency,
        tasks=spec.workload.tasks,
        task_seconds=task_s,
        hop_seconds=link.latency + (mean_bytes / link.bandwidth if link.bandwidth else 0.0),
        relay_seconds=link.relay_cost,
        connection_cost=connection_cost,
    )


def select_topology(
    spec: SwarmSpec,
    latency: npt.NDArray[np.float64],
    *,
    layout: str = "custom",
    objective: str = "p99",
    connection_cost: float = 0.0,
    seed: int = 0,
    runs: int = RUNS,
    handlers: HandlerRegistry | None = None,
) -> Selection:
    """Simulate `spec` under each topology with its agents placed on the slots of
    `latency` (seconds between slots, one slot per agent) and rank them by `objective`,
    the mean of up to `runs` runs with the spec's seed and the next ones (`_contenders`)."""
    if objective not in OBJECTIVES:
        raise ConfigError("--objective", objective, f"Choose one of: {', '.join(OBJECTIVES)}.")
    if not (0.0 <= connection_cost < 1.0 and math.isfinite(connection_cost)):
        raise ConfigError(
            "connection_cost", connection_cost, "Use a share of an agent's time from 0 to 1."
        )
    if not 1 <= runs <= _MAX_RUNS:
        raise ConfigError("runs", runs, f"Use an integer from 1 to {_MAX_RUNS}.")
    agents, counts, sizes = communication(spec, handlers)
    n = len(agents)
    latency = np.asarray(latency, dtype=float)
    if latency.shape != (n, n):
        raise ConfigError("latency", list(latency.shape), f"Use a {n} x {n} matrix of seconds.")
    assert spec.messages is not None
    link = spec.messages.link_model()
    # Each topology's placement and its agents' models: the same in every run.
    setups: list[tuple[SwarmSpec, tuple[int, ...], PlacedLinks, dict[str, AgentModel] | None]]
    setups = []
    for topology in candidates(spec):
        routes = Routes(topology.to_settings(), agents)
        slots = _placement(routes, counts, latency, seed)
        placed = PlacedLinks(
            link.latency,
            link.bandwidth,
            link.relay_cost,
            link.receive_cost,
            slot_of=dict(zip(agents, slots, strict=True)),
            slot_latency=latency.tolist(),
        )
        shaped = spec.model_copy(update={"topology": topology, "backend": "sim"})
        setups.append((shaped, slots, placed, _connection_models(routes, connection_cost)))
    samples: list[list[TopologyFigures]] = [[] for _ in setups]

    def simulate(i: int) -> None:
        shaped, _, placed, models = setups[i]
        run = shaped.model_copy(update={"seed": spec.seed + len(samples[i])})
        outcome, report = simulate_spec(run, handlers=handlers, links=placed, models=models)
        samples[i].append(topology_figures(run, outcome, report))

    active = list(range(len(setups)))
    for k in range(runs):
        for i in active:
            simulate(i)
        if k + 1 >= _MIN_RUNS:
            active = _contenders(samples, active, objective)
            if len(active) < 2:
                break
    # One left behind after two runs can lead once the others' later runs are in: it
    # runs as often as they did before it is named.
    most = max(len(s) for s in samples)
    while (leader := _leader(samples, range(len(samples)), objective)) is not None:
        if len(samples[leader]) >= most:
            break
        simulate(leader)
    figures = [TopologyFigures.mean(s) for s in samples]
    placements = {f.topology: setup[1] for f, setup in zip(figures, setups, strict=True)}
    plan = TopologyPlan.ranked(objective, figures)
    return Selection(
        plan, layout, placements, summarise(spec, counts, sizes, latency, connection_cost)
    )


def _scored(
    samples: list[list[TopologyFigures]], among: Iterable[int], objective: str
) -> dict[int, list[float]]:
    """Each topology's runs on `objective`, for those with a figure in every run."""
    values = {i: [f.objective(objective) for f in samples[i]] for i in among}
    return {
        i: [float(v) for v in vs if v is not None] for i, vs in values.items() if None not in vs
    }


def _leader(
    samples: list[list[TopologyFigures]], among: Iterable[int], objective: str
) -> int | None:
    """The topology with the best mean over its runs (None: none has a figure)."""
    scored = _scored(samples, among, objective)
    return min(scored, key=lambda i: (float(np.mean(scored[i])), i)) if scored else None


def _contenders(
    samples: list[list[TopologyFigures]], active: list[int], objective: str
) -> list[int]:
    """The topologies still worth another run: the best by mean, and each whose best run
    came within the best's worst run (their spreads overlap). One clearly behind, or
    without a figure, can no longer win."""
    scored = _scored(samples, active, objective)
    best = _leader(samples, active, objective)
    if best is None:
        return []
    worst_of_best = max(scored[best])
    return [i for i in active if i in scored and (i == best or min(scored[i]) <= worst_of_best)]


def link_traffic(routes: Routes, counts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Messages over each link (i, j) when `counts` (end to end) takes the topology's routes."""
    agents = routes.agents
    index = {a: k for k, a in enumerate(agents)}
    links = np.zeros_like(counts, dtype=float)
    for i, j in zip(*np.nonzero(counts), strict=True):
        if i == j:
            continue
        route = routes.route(agents[i], agents[j])
        for a, b in itertools.pairwise(route):
            links[index[a], index[b]] += counts[i, j]
    return links


def _placement(
    routes: Routes,
    counts: npt.NDArray[np.float64],
    latency: npt.NDArray[np.float64],
    seed: int,
) -> tuple[int, ...]:
    n = counts.shape[0]
    off = latency[~np.eye(n, dtype=bool)]
    if n < 3 or off.size == 0 or np.ptp(off) == 0.0:
        return tuple(range(n))  # every slot alike: nothing to place
    traffic = link_traffic(routes, counts)
    found = place(
        traffic,
        latency,
        seed=seed,
        iterations=min(_PLACE_ITERATIONS * n, _PLACE_MAX_ITERATIONS),
        time_limit_s=_PLACE_LIMIT_S,
    )
    return tuple(int(s) for s in found.slots)


def _connection_models(routes: Routes, share: float) -> dict[str, AgentModel] | None:
    """Each agent slowed by the connections it keeps open, `share` of its time each."""
    if share <= 0.0:
        return None
    degree: dict[str, int] = dict.fromkeys(routes.agents, 0)
    for a, b in routes.links():
        degree[a] += 1
        degree[b] += 1
    return {
        agent: AgentModel(speed=max(_MIN_SPEED, 1.0 - share * d)) for agent, d in degree.items()
    }


def synthetic_spec(family: str, agents: int, seed: int) -> tuple[SwarmSpec, float]:
    """A generated workload of `family` over `agents` agents, its sizes drawn with `seed`;
    returns the spec and the share of an agent's time each open connection costs."""
    if family not in FAMILIES:
        raise UnknownName("family", family, FAMILIES)
    rng = np.random.default_rng([seed, agents, FAMILIES.index(family)])
    names = [f"agent-{k}" for k in range(agents)]
    width = max(1, round(math.sqrt(agents)))
    # The messages each task makes bound the run's events: all-to-all sends agents - 1.
    per_task = {"all-to-all": agents - 1, "fanout": width, "sparse": 2}.get(family, 1)
    tasks = int(max(agents, min(6 * agents, 12_000 // max(1, per_task))))
    patterns: dict[str, dict[str, Any]] = {
        "pipeline": {"pattern": "pipeline", "to": names[: max(2, agents // 2)]},
        "mapreduce": {"pattern": "gather", "to": names[-max(1, agents // 8) :]},
        "all-to-all": {"pattern": "broadcast"},
        "fanout": {"pattern": "broadcast", "to": names[:width]},
        "sparse": {"pattern": "random", "count": 2},
    }
    messages = dict(patterns[family])
    messages.update(
        bytes=int(2 ** rng.uniform(8, 20)),
        latency=float(10 ** rng.uniform(-5, -3.5)),
        bandwidth=float(10 ** rng.uniform(7, 9)),
        relay_cost=float(10 ** rng.uniform(-4.5, -2.5)),
    )
    spec = SwarmSpec.model_validate(
        {
            "swarm_id": f"{family}-{agents}-{seed}",
            "backend": "sim",
            "seed": int(seed),
            "agents": [{"id": "agent", "count": agents}],
            "topology": {"kind": "star", "fanout": 4, "cluster_size": width},
            "messages": messages,
            "workload": {
                "tasks": tasks,
                "kind": "sleep",
                "size": {
                    "distribution": "exponential",
                    "mean": float(10 ** rng.uniform(-3.5, -1.5)),
                },
            },
        }
    )
    return spec, float(10 ** rng.uniform(-4, -2))


@dataclass(frozen=True, slots=True)
class Prediction:
    """The predictor's proposal for a spec: its scores per topology, lowest best."""

    objective: str
    layout: str
    current: str
    best: str
    scores: dict[str, float]  # topology -> predicted log objective relative to the mean
    model: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "predicted",
            "objective": self.objective,
            "latency": self.layout,
            "current": self.current,
            "best": self.best,
            "predicted_gain": None,
            "scores": self.scores,
            "model": self.model,
            "note": "one simulated run measured the communication matrix; no topology "
            "was simulated",
        }


def predict_topology(
    spec: SwarmSpec,
    latency: npt.NDArray[np.float64],
    *,
    layout: str = "custom",
    objective: str = "makespan",
    connection_cost: float = 0.0,
    handlers: HandlerRegistry | None = None,
) -> Prediction:
    """The shipped predictor's proposal for `spec` on slots of `latency`, from the spec's
    communication matrix (one simulated run) and its costs, without simulating topologies."""
    from swarmperf.topology.predictor import load_predictor

    predictor = load_predictor()
    trained_on = predictor.meta.get("objective")
    if objective != trained_on:
        raise ConfigError(
            "--objective",
            objective,
            f"The predictor was trained on {trained_on}: use --objective {trained_on}, or "
            "leave out --predict to simulate every topology.",
        )
    agents, counts, sizes = communication(spec, handlers)
    latency = np.asarray(latency, dtype=float)
    if latency.shape != (len(agents), len(agents)):
        raise ConfigError(
            "latency", list(latency.shape), f"Use a {len(agents)} x {len(agents)} matrix."
        )
    summary = summarise(spec, counts, sizes, latency, connection_cost)
    scores = predictor.scores(features(summary))
    shaped: dict[str, str] = {t.kind: t.to_settings().describe() for t in candidates(spec)}
    best = min(scores, key=lambda t: (scores[t], t))
    return Prediction(
        objective,
        layout,
        spec.topology.to_settings().describe(),
        shaped.get(best, best),
        {shaped.get(t, t): round(v, 6) for t, v in scores.items()},
        predictor.meta,
    )


def place_and_plan(
    spec: SwarmSpec,
    objective: str,
    layout: str | None,
    connection_cost: float = 0.0,
    *,
    predict: bool = False,
    handlers: HandlerRegistry | None = None,
) -> tuple[TopologyPlan | None, dict[str, Any]]:
    """What `topology-optimize SPEC` answers: without a `layout`, every topology simulated
    as placed in the spec (`plan_topologies`); with one, each with its best placement on
    that layout's slots; with `predict`, the predictor's proposal (no plan). Returns the
    plan (None when predicted) and the JSON payload, whose `method` says which path ran."""
    from swarmperf.app.topologies import plan_topologies

    if predict:
        n = len(spec.agent_specs())
        chosen = layout or "machine"
        prediction = predict_topology(
            spec,
            slot_latency(chosen, n),
            layout=chosen,
            objective=objective,
            connection_cost=connection_cost,
            handlers=handlers,
        )
        return None, prediction.to_dict()
    if layout is None:
        if connection_cost:
            raise ConfigError(
                "--connection-cost", connection_cost, "Give --latency with it, or leave it out."
            )
        plan = plan_topologies(spec, objective, handlers)
        return plan, {**plan.to_dict(), "method": "simulated"}
    n = len(spec.agent_specs())
    selection = select_topology(
        spec,
        slot_latency(layout, n),
        layout=layout,
        objective=objective,
        connection_cost=connection_cost,
        handlers=handlers,
    )
    return selection.plan, selection.to_dict()

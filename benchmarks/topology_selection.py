"""Topology selection against hindsight, the learned predictor against the simulator, and
the simulator's predicted gain against the `process` backend's measured one.

Generated workloads (pipeline, map/reduce, all-to-all, hierarchical fan-out, sparse random;
8, 32 and 128 agents; one machine, two zones, four regions of latency) with EVALUATION seeds
1, 2, ... (the shipped predictor was trained on seeds from 1000: disjoint). For each:

- selection: `select_topology` simulates each topology with its best placement with the
  workload's seed and the next ones (up to three runs; two for one clearly behind) and
  picks the best mean makespan;
- hindsight: the same workload simulated again under every topology with seeds 500 above
  (other task sizes and draws), placed and averaged alike; `regret` is the selected
  topology's excess makespan over the best of the five there, relative to the best;
- predictor: the shipped model's proposal from the workload's features (read once every
  workload is selected), its regret against the same hindsight, and its time against
  simulating all five (`predictor_speedup`: the communication matrix given, as for a
  recorded workload; `predictor_speedup_with_run` also counts the one simulated run a
  spec needs to measure it);
- `gain_vs_star_median`: the selected topology's gain over star in hindsight;
- `sim_vs_real_error` (8 agents, one machine): the simulator's predicted gain of the
  selected topology over star (the best other one when star is selected) against the gain
  measured on the real `process` backend, star and the other run in turn `repeats` times
  (median makespan of each), with 640 tasks of 5 ms on average so that a run is long
  enough to measure. The simulator's hop latency, bandwidth, relay work and arrival work
  come from `calibrate`: `process` runs in the same run (not the measured ones, three
  of each), at two message sizes: a hub's extra time per relayed message is the
  relay's work, and the task time a mesh's receivers lose against its other agents, per
  message, is the arrival's (`sim_vs_real_calibration`).

`--quick`: 8 and 32 agents, one seed, one repeat on process. The full run adds 128 agents
(one seed: each of its workloads takes a minute or more to simulate five topologies up to
three times, twice), a second seed for 8 and 32, and five repeats on process.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from _common import emit, log, parse_args, python_version
from swarmperf.app.run import run_spec
from swarmperf.app.selection import (
    FAMILIES,
    LAYOUTS,
    Selection,
    communication,
    select_topology,
    slot_latency,
    synthetic_spec,
)
from swarmperf.runtime.report import RunReport
from swarmperf.spec import SwarmSpec
from swarmperf.topology.predictor import Predictor, features, load_predictor

OBJECTIVE = "makespan"
HINDSIGHT_SEED_SHIFT = 500  # hindsight's simulation seed: still below the training seeds
REAL_TASKS = 640
REAL_TASK_S = 0.005
CALIBRATION_REPEATS = 3  # the calibration's runs per probe, --quick too
PROBE_BYTES = (256, 256 * 1024)  # the calibration's two message sizes
PROBE_SEED = 900  # the calibration's task draws: no evaluation seed, no training seed
PROBE_RECEIVERS = 2  # the agents the timed probe's messages all go to


def kind(topology: str) -> str:
    return topology.split("(")[0]


def by_kind(selection: Selection) -> dict[str, float]:
    return {
        kind(f.topology): float(f.objective(OBJECTIVE) or float("nan"))
        for f in selection.plan.figures
    }


def regret(value: float, best: float) -> float:
    return value / best - 1.0 if best > 0 else 0.0


def evaluate(family: str, agents: int, layout: str, seed: int) -> dict[str, Any]:
    """One workload: selection, hindsight, and the features the predictor reads."""
    spec, connection_cost = synthetic_spec(family, agents, seed)
    latency = slot_latency(layout, agents)
    started = time.perf_counter()
    chosen = select_topology(
        spec,
        latency,
        layout=layout,
        objective=OBJECTIVE,
        connection_cost=connection_cost,
        seed=seed,
    )
    simulate_all_s = time.perf_counter() - started
    later = spec.model_copy(update={"seed": seed + HINDSIGHT_SEED_SHIFT})
    hindsight = by_kind(
        select_topology(
            later,
            latency,
            layout=layout,
            objective=OBJECTIVE,
            connection_cost=connection_cost,
            seed=seed,
        )
    )
    best = min(hindsight.values())
    t0 = time.perf_counter()
    communication(spec)
    matrix_run_s = time.perf_counter() - t0
    selected = kind(chosen.best)
    return {
        "family": family,
        "agents": agents,
        "layout": layout,
        "seed": seed,
        "selected": selected,
        "hindsight_best": min(hindsight, key=lambda k: hindsight[k]),
        "regret": regret(hindsight[selected], best),
        "gain_vs_star": (hindsight["star"] - hindsight[selected]) / hindsight["star"],
        "simulate_all_s": simulate_all_s,
        "matrix_run_s": matrix_run_s,
        "planned": by_kind(chosen),
        "hindsight": hindsight,
        "summary": chosen.summary,
    }


def judge_predictor(row: dict[str, Any], predictor: Predictor) -> None:
    """The predictor's proposal for `row`'s workload, its regret against the same
    hindsight, and its time (the median of 50)."""
    row_features = features(row["summary"])
    timings = []
    for _ in range(50):
        t0 = time.perf_counter()
        proposed = predictor.choose(features(row["summary"]))
        timings.append(time.perf_counter() - t0)
    assert proposed == predictor.choose(row_features)
    hindsight = row["hindsight"]
    row["predicted"] = proposed
    row["predictor_regret"] = regret(hindsight[proposed], min(hindsight.values()))
    row["predict_s"] = statistics.median(timings)


@dataclass(frozen=True, slots=True)
class Calibration:
    """What a message costs on `process`, each a straight line in its bytes: a hop's
    latency (the link's), a relay's work on the agent that forwards (the hub's), and an
    arrival's work on the agent it reaches (reading and unpickling it there)."""

    hop_s: float
    hop_s_per_byte: float
    relay_s: float
    relay_s_per_byte: float
    receive_s: float = 0.0
    receive_s_per_byte: float = 0.0

    def spec(self, spec: SwarmSpec) -> SwarmSpec:
        """`spec` with its hops, relays and arrivals costing what they cost on `process`."""
        assert spec.messages is not None
        size = spec.messages.bytes
        messages = spec.messages.model_copy(
            update={
                "latency": self.hop_s,
                "bandwidth": 1.0 / self.hop_s_per_byte if self.hop_s_per_byte > 0 else None,
                "relay_cost": self.relay_s + self.relay_s_per_byte * size,
                "receive_cost": self.receive_s + self.receive_s_per_byte * size,
            }
        )
        return spec.model_copy(update={"messages": messages})

    def to_dict(self) -> dict[str, float]:
        return {
            "hop_us": self.hop_s * 1e6,
            "hop_us_per_kib": self.hop_s_per_byte * 1024e6,
            "relay_us": self.relay_s * 1e6,
            "relay_us_per_kib": self.relay_s_per_byte * 1024e6,
            "receive_us": self.receive_s * 1e6,
            "receive_us_per_kib": self.receive_s_per_byte * 1024e6,
        }


def probe_spec(agents: int, topology: str, size: int, *, noop: bool = False) -> SwarmSpec:
    """The calibration's workload (a pattern and seed no measured run has): `noop` tasks
    (so that little else is queued) that each send one message of `size` bytes to an
    agent drawn at random; else tasks as long as the measured runs' (`REAL_TASK_S` on
    average) that each send one to one of the first `PROBE_RECEIVERS` agents in turn."""
    spec, _ = synthetic_spec("sparse", agents, PROBE_SEED)
    assert spec.messages is not None
    tasks = spec.workload.model_copy(
        update={
            "tasks": REAL_TASKS,
            "size": spec.workload.size.model_copy(update={"mean": REAL_TASK_S}),
            **({"kind": "noop"} if noop else {}),
        }
    )
    receivers = tuple(f"agent-{k}" for k in range(PROBE_RECEIVERS))
    pattern = (
        {"pattern": "random", "count": 1, "to": ()}
        if noop
        else {"pattern": "gather", "to": receivers}
    )
    return spec.model_copy(
        update={
            "topology": spec.topology.model_copy(update={"kind": topology}),
            "messages": spec.messages.model_copy(update={**pattern, "bytes": size}),
            "workload": tasks,
        }
    )


def line(sizes: tuple[int, int], values: tuple[float, float]) -> tuple[float, float]:
    """Intercept and slope (per byte) through two points, neither below 0."""
    slope = max(0.0, (values[1] - values[0]) / (sizes[1] - sizes[0]))
    return max(0.0, values[0] - slope * sizes[0]), slope


def arrival_work(report: RunReport) -> float | None:
    """Seconds of work an arrival took its receiver in a run of the timed `probe_spec`:
    the task time the receivers lost against the other agents (each ran tasks all the
    run long but for what it spent on its mail), per message each received."""
    matrix = (report.messages or {}).get("matrix") or {}
    if report.makespan is None or "messages" not in matrix:
        return None
    received = dict(zip(matrix["agents"], np.asarray(matrix["messages"]).sum(axis=0), strict=True))
    idle = {row.id: report.makespan - row.busy_seconds for row in report.agents}
    named = {f"agent-{k}" for k in range(PROBE_RECEIVERS)}
    receivers = [a for a in idle if a in named]
    others = [a for a in idle if a not in named]
    if not receivers or not others:
        return None
    arrivals = statistics.fmean(float(received.get(a, 0)) for a in receivers)
    if not arrivals:
        return None
    lost = statistics.fmean(idle[a] for a in receivers) - statistics.fmean(idle[a] for a in others)
    return max(0.0, lost) / arrivals


def calibrate(agents: int, repeats: int) -> Calibration | None:
    """A hop's latency, a relay's work and an arrival's work on `process`, at two message
    sizes, each the median of `repeats` runs of `probe_spec`:

    - the latency on a mesh of `noop` tasks (send to delivery);
    - the relay's work from the same through a star, whose hub relays nearly every
      message, as the star's extra makespan per message relayed (the hub relays in turn,
      one after another, so each adds to the run);
    - the arrival's work on a mesh of timed tasks whose messages all go to a few agents,
      as the task time those lost against the others per message (`arrival_work`):
      within one run, so that the machine's load, which drifts, weighs on both alike."""
    hops: list[float] = []
    relays: list[float] = []
    arrivals: list[float] = []
    for size in PROBE_BYTES:
        hop_runs, relay_runs, arrival_runs = [], [], []
        for _ in range(repeats):
            mesh, star, timed = (
                asyncio.run(
                    run_spec(spec.model_copy(update={"backend": "process"}), handle_signals=False)
                ).report
                for spec in (
                    probe_spec(agents, "mesh", size, noop=True),
                    probe_spec(agents, "star", size, noop=True),
                    probe_spec(agents, "mesh", size),
                )
            )
            latency = (mesh.messages or {}).get("latency_mean")
            relayed = int((star.messages or {}).get("relayed", 0))
            arrival = arrival_work(timed)
            if latency is not None:
                hop_runs.append(float(latency))
            if star.makespan is not None and mesh.makespan is not None and relayed:
                relay_runs.append(max(0.0, star.makespan - mesh.makespan) / relayed)
            if arrival is not None:
                arrival_runs.append(arrival)
        if not hop_runs or not relay_runs or not arrival_runs:
            return None
        hops.append(statistics.median(hop_runs))
        relays.append(statistics.median(relay_runs))
        arrivals.append(statistics.median(arrival_runs))
        log(
            f"  calibration at {size} B: hop {hops[-1] * 1e6:.0f} us, relay "
            f"{relays[-1] * 1e6:.0f} us, arrival {arrivals[-1] * 1e6:.0f} us "
            f"({', '.join(f'{a * 1e6:.0f}' for a in arrival_runs)})"
        )
    hop = line(PROBE_BYTES, (hops[0], hops[1]))
    relay = line(PROBE_BYTES, (relays[0], relays[1]))
    arrival_line = line(PROBE_BYTES, (arrivals[0], arrivals[1]))
    return Calibration(hop[0], hop[1], relay[0], relay[1], arrival_line[0], arrival_line[1])


def real_makespans(
    spec: SwarmSpec, topologies: tuple[str, str], repeats: int
) -> list[float | None]:
    """The median makespan of `spec` on `process` under each of `topologies`, run in turn
    `repeats` times (so that the machine's load, which drifts, weighs on both alike)."""
    spans: list[list[float]] = [[] for _ in topologies]
    for _ in range(repeats):
        for i, topology in enumerate(topologies):
            shaped = spec.topology.model_copy(update={"kind": topology})
            run = spec.model_copy(update={"backend": "process", "topology": shaped})
            outcome = asyncio.run(run_spec(run, handle_signals=False))
            if outcome.report.makespan is not None:
                spans[i].append(outcome.report.makespan)
    return [statistics.median(s) if s else None for s in spans]


def sim_vs_real(
    seed: int, repeats: int
) -> tuple[float | None, list[dict[str, Any]], dict[str, Any]]:
    """Predicted (simulated) and measured gain over star of the selected topology, per
    8-agent family on one machine."""
    calibration = calibrate(8, CALIBRATION_REPEATS)
    if calibration is None:
        return None, [], {"reason": "a calibration run delivered no message"}
    rows: list[dict[str, Any]] = []
    for family in FAMILIES:
        spec, _ = synthetic_spec(family, 8, seed)
        # Runs long enough (about 0.4 s of work per agent) to measure on a shared machine.
        size = spec.workload.size.model_copy(update={"mean": REAL_TASK_S})
        workload = spec.workload.model_copy(update={"tasks": REAL_TASKS, "size": size})
        spec = calibration.spec(spec.model_copy(update={"workload": workload}))
        # One machine: the process backend's own hops are the only latency; no connection
        # cost, since its workers keep no heartbeats.
        plan = select_topology(
            spec, slot_latency("machine", 8), layout="machine", objective=OBJECTIVE
        )
        planned = by_kind(plan)
        # The selected topology against star; when star itself wins, the best of the rest
        # (a gain of 0 against itself would measure nothing).
        others = {k: v for k, v in planned.items() if k != "star"}
        compared = (
            kind(plan.best) if kind(plan.best) != "star" else min(others, key=others.__getitem__)
        )
        predicted = (planned["star"] - planned[compared]) / planned["star"]
        star, other = real_makespans(spec, ("star", compared), repeats)
        measured = None if not star or other is None else (star - other) / star
        rows.append(
            {
                "family": family,
                "compared": compared,
                "predicted_gain": predicted,
                "measured_gain": measured,
                "error": None if measured is None else abs(predicted - measured),
            }
        )
        log(f"  process {family}: {compared} predicted {predicted:+.3f} measured {measured}")
    errors = [float(r["error"]) for r in rows if r["error"] is not None]
    if not errors:
        return None, rows, {"reason": "no process run gave a makespan"}
    return float(np.mean(errors)), rows, calibration.to_dict()


def main() -> None:
    settings = parse_args(__doc__.splitlines()[0], n=2, repeats=5, quick_n=1, quick_repeats=1)
    sizes = (8, 32) if settings.quick else (8, 32, 128)
    rows: list[dict[str, Any]] = []
    for agents in sizes:
        seeds = 1 if agents >= 128 else settings.n
        for seed in range(1, seeds + 1):
            for family in FAMILIES:
                for layout in LAYOUTS:
                    row = evaluate(family, agents, layout, seed)
                    rows.append(row)
                    log(
                        f"{family:10} n={agents:3} {layout:7} seed={seed}: selected "
                        f"{row['selected']:12} best {row['hindsight_best']:12} regret "
                        f"{row['regret']:.3f}  {row['simulate_all_s']:.1f} s"
                    )
    # The predictor is judged after the selections, on the same rows.
    predictor = load_predictor()
    for row in rows:
        judge_predictor(row, predictor)
        log(
            f"{row['family']:10} n={row['agents']:3} {row['layout']:7} seed={row['seed']}: "
            f"predicted {row['predicted']:12} regret {row['predictor_regret']:.3f}"
        )
    by_size = {
        str(n): {
            "regret_mean": float(np.mean([r["regret"] for r in rows if r["agents"] == n])),
            "predictor_regret_mean": float(
                np.mean([r["predictor_regret"] for r in rows if r["agents"] == n])
            ),
        }
        for n in sizes
    }
    regrets = [r["regret"] for r in rows]
    predicted = [r["predictor_regret"] for r in rows]
    speedups = [r["simulate_all_s"] / r["predict_s"] for r in rows]
    with_run = [r["simulate_all_s"] / (r["matrix_run_s"] + r["predict_s"]) for r in rows]
    error, real_rows, calibration = sim_vs_real(1, settings.repeats)
    emit(
        {
            "benchmark": "topology_selection",
            "objective": OBJECTIVE,
            "workloads": len(rows),
            "sizes": list(sizes),
            "regret_mean": float(np.mean(regrets)),
            "regret_p95": float(np.percentile(regrets, 95)),
            "predictor_regret_mean": float(np.mean(predicted)),
            "predictor_regret_p95": float(np.percentile(predicted, 95)),
            "predictor_agreement": float(np.mean([r["predicted"] == r["selected"] for r in rows])),
            "predictor_speedup": float(np.median(speedups)),
            "predictor_speedup_with_run": float(np.median(with_run)),
            "by_size": by_size,
            "gain_vs_star_median": float(np.median([r["gain_vs_star"] for r in rows])),
            "sim_vs_real_error": error,
            "sim_vs_real_calibration": calibration,
            "sim_vs_real": real_rows,
            "model": predictor.meta,
            "quick": settings.quick,
            "python": python_version(),
            "load_avg": list(os.getloadavg()),
        }
    )


if __name__ == "__main__":
    main()

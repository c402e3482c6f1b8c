"""A live swarm under its autoscaler against the replay's prediction of the same run.

A real served swarm (`LiveSwarm`, local backend, its durable intake and store; in process,
so that no HTTP stands between the load and the swarm) runs the default policy (and, beside
it unless `--quick`, the HPA) through its live autoscaler while a compressed ten-minute
slice of the NASA-HTTP trace drives it. The same slice, with the same tasks, the same
policy settings and the start-up measured on the live run, is then replayed
(`swarmperf.autoscale.replay`), which is what `autoscale-eval` predicts. Figures: violation
minutes and agent-hours of both, and their errors `sim_vs_real_violation_error` =
|real - sim| / max(sim, 1) violation minutes and `sim_vs_real_agent_hours_error` =
|real - sim| / sim, each the worst of `--repeats` live runs (3; `--quick` 1), since the
live side varies from run to run. Goal: <= 0.15 each.

The slice is fixed before any measurement: the ten minutes around the trace's busiest minute
(five before it), a surge and its fall. Compression: a trace minute takes 6 s (10x; `--quick`
3 s, 20x); service times are scaled alike, and the policy runs on a clock as much faster
(`Autoscaler.time_scale`), so its settings stay in the trace's seconds. The service time is
set as the replay sets it, for 20 agents at the busiest minute (`--peak-agents`).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import dataset_dir, emit, log, package_versions
from swarmperf.autoscale.live import build_policy
from swarmperf.autoscale.replay import (
    DEFAULT_POLICY,
    TARGET,
    VIOLATION_SHARE,
    ReplaySettings,
    interval_tasks,
    replay,
    service_time,
)
from swarmperf.autoscale.traces import Trace, read_trace
from swarmperf.core.model import TaskResult
from swarmperf.service.live import LiveSwarm, TaskIn
from swarmperf.spec import parse_spec_yaml

TRACE = dataset_dir("traces") / "nasa_http_1995_requests_per_minute.csv"
MINUTES = 10
BEFORE_PEAK = 5
GOAL = 0.15
SPEC = """\
swarm_id: autoscale-live
backend: local
strategy: capacity-aware
agents: [{{id: a, count: {start}, concurrency: 1}}]
monitor: {{enabled: false}}
queue: {{max_queued: 1000000}}
autoscale:
  policy: {policy}
  min_agents: 1
  max_agents: {top}
  slo_factor: {slo_factor}
  interval: 60s
"""


def the_slice(trace: Trace) -> Trace:
    peak = int(trace.counts.argmax())
    first = max(peak - BEFORE_PEAK, 0)
    counts = trace.counts[first : first + MINUTES].copy()
    return Trace(f"{trace.name}[{first}:{first + MINUTES}]", "counts", trace.interval, counts)


def violation_minutes(per_minute: dict[int, list[int]]) -> int:
    return sum(1 for n, v in per_minute.values() if n and v > VIOLATION_SHARE * n)


async def live_run(
    trace: Trace, settings: ReplaySettings, compression: float, start: int, policy: str
) -> dict[str, Any]:
    """Drive a live swarm with the slice's tasks in compressed real time."""
    mean = service_time(trace, settings)
    tasks = [task for chunk in interval_tasks(trace, mean, settings.seed) for task in chunk]
    spec = parse_spec_yaml(
        SPEC.format(start=start, policy=policy, top=settings.top, slo_factor=settings.slo_factor)
    )
    results: dict[str, TaskResult] = {}
    planned: dict[str, tuple[float, float]] = {}  # task id -> (arrival, service), trace s
    with tempfile.TemporaryDirectory() as folder:
        live = LiveSwarm(spec, Path(folder))
        live.autoscaler.time_scale = compression
        live.swarm.on_result(lambda r: results.__setitem__(r.task_id, r))
        await live.start()
        loop = asyncio.get_running_loop()
        began = loop.time()
        autoscaler = live.autoscaler
        autoscaler.signals()  # bring the agent integral up to now
        area0 = autoscaler.agent_area
        decisions0 = autoscaler.decisions
        sizes = [len(live.swarm.coordinator.agents)]
        jobs: list[asyncio.Task[None]] = []

        async def submit(batch: list[tuple[float, float]]) -> None:
            accepted = await live.submit([TaskIn("sleep", s / compression) for _, s in batch])
            for answer, task in zip(accepted, batch, strict=True):
                planned[answer.task_id] = task

        i = 0
        while i < len(tasks):
            now = (loop.time() - began) * compression
            batch = []
            while i < len(tasks) and tasks[i][0] <= now:
                batch.append(tasks[i])
                i += 1
            if batch:
                jobs.append(asyncio.create_task(submit(batch)))
                sizes.append(len(live.swarm.coordinator.agents) + autoscaler.starting)
            if i < len(tasks):
                await asyncio.sleep(max(tasks[i][0] / compression - (loop.time() - began), 0))
        await asyncio.gather(*jobs)
        # Agents are paid for until the slice ends, as in the replay.
        await asyncio.sleep(max(trace.duration / compression - (loop.time() - began), 0))
        autoscaler.signals()
        agent_seconds = (autoscaler.agent_area - area0) * compression
        decisions = autoscaler.decisions - decisions0
        events = sum(
            1
            for record in live.store.decisions(spec.swarm_id, "autoscale")
            if record.decision.get("acts")
        )
        startup = autoscaler.startup
        measured = autoscaler.status()["startup_measured_s"]
        give_up = loop.time() + 120
        while len(results) < len(tasks) and loop.time() < give_up:
            await asyncio.sleep(0.1)
        await live.stop()
        live.close()
    per_minute: dict[int, list[int]] = {}
    slack = settings.slo_factor - 1.0
    lost = 0
    for task_id, (arrival, service) in planned.items():
        result = results.get(task_id)
        if result is None or result.started_at is None:
            lost += 1
            continue
        counts = per_minute.setdefault(int(arrival // 60.0), [0, 0])
        counts[0] += 1
        wait = (result.started_at - result.queued_at) * compression
        counts[1] += int(wait > slack * service)
    return {
        "violation_minutes": violation_minutes(per_minute),
        "agent_hours": agent_seconds / 3600.0,
        "scale_events": events,
        "decisions": decisions,
        "tasks": len(tasks),
        "tasks_without_result": lost,
        "violating_tasks": sum(v for _, v in per_minute.values()),
        "max_agents_used": max(sizes),
        "startup_s": startup,
        "startup_measured_real_s": measured,
    }


def error(real: float, sim: float, floor: float) -> float:
    return round(abs(real - sim) / max(abs(sim), floor), 4)


def compare(
    trace: Trace, settings: ReplaySettings, compression: float, start: int, name: str
) -> dict[str, Any]:
    """One policy live, then its replay with the start-up the live run measured."""
    wall = time.perf_counter()
    real = asyncio.run(live_run(trace, settings, compression, start, name))
    live_wall = time.perf_counter() - wall
    log(f"{name} live: {real}")
    same = ReplaySettings(
        peak_agents=settings.peak_agents,
        slo_factor=settings.slo_factor,
        startup=real["startup_s"],
        max_agents=settings.top,
        min_agents=1,
        seed=settings.seed,
    )
    spec = parse_spec_yaml(
        SPEC.format(start=start, policy=name, top=same.top, slo_factor=same.slo_factor)
    )
    assert spec.autoscale is not None
    sim = replay(trace, build_policy(spec.autoscale, startup=same.startup), same)
    log(f"{name} replay: {sim.as_dict()}")
    return {
        "policy": name,
        "sim_vs_real_violation_error": error(real["violation_minutes"], sim.violation_minutes, 1),
        "sim_vs_real_agent_hours_error": error(real["agent_hours"], sim.agent_hours, 1e-9),
        "real": {k: round(v, 4) if isinstance(v, float) else v for k, v in real.items()},
        "sim": sim.as_dict(),
        "live_wall_s": round(live_wall, 1),
    }


def _worst(found: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("sim_vs_real_violation_error", "sim_vs_real_agent_hours_error")
    return {key: max(run[key] for run in found) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20x compression (30 s)")
    parser.add_argument("--peak-agents", type=int, default=20)
    parser.add_argument(
        "--policies",
        nargs="+",
        default=None,
        help=f"live policies to run (default: {DEFAULT_POLICY}, and hpa unless --quick)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (--quick: 1)")
    parser.add_argument("--trace", type=Path, default=TRACE, help="the NASA-HTTP per-minute CSV")
    args = parser.parse_args()
    compression = 20.0 if args.quick else 10.0
    if args.policies is None:
        args.policies = [DEFAULT_POLICY] if args.quick else [DEFAULT_POLICY, "hpa"]
    trace = the_slice(read_trace(args.trace))
    settings = ReplaySettings(peak_agents=args.peak_agents)
    mean = service_time(trace, settings)
    start = min(max(math.ceil(trace.counts[0] * mean / (TARGET * trace.interval)), 1), settings.top)
    log(
        f"{trace.name}: {trace.tasks} tasks, service {mean:.3f}s (trace), "
        f"{compression:g}x, {trace.duration / compression:.0f}s real"
    )
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.policies}
    for _ in range(repeats):  # the policies interleaved, so load drifts hit each alike
        for name in args.policies:
            runs[name].append(compare(trace, settings, compression, start, name))
    # Each policy's worst run is its figure: the live side varies from run to run.
    worst = {name: _worst(found) for name, found in runs.items()}
    head_name = DEFAULT_POLICY if DEFAULT_POLICY in runs else args.policies[0]
    head = worst[head_name]
    emit(
        {
            "benchmark": "autoscale_live",
            "trace": trace.name,
            "policy": head_name,
            "compression": compression,
            "peak_agents": settings.peak_agents,
            "service_time_s": round(mean, 4),
            "repeats": repeats,
            "startup_s": runs[head_name][-1]["real"]["startup_s"],
            "sim_vs_real_violation_error": head["sim_vs_real_violation_error"],
            "sim_vs_real_agent_hours_error": head["sim_vs_real_agent_hours_error"],
            "goal": GOAL,
            "worst": worst,
            "runs": runs,
            "quick": args.quick,
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "versions": package_versions("swarmperf", "numpy", "statsmodels"),
        }
    )


if __name__ == "__main__":
    main()

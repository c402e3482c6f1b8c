"""What profiling costs a running swarm: the demo swarm with the sampler at 100 Hz and off.

Each repeat runs the demo spec (local backend, `-n` tasks, the same seed for both arms) once
with `swarmperf.profiling.Sampler` sampling every thread of the process at 100 Hz (the
default of `profile-performance`) and once without, in alternating order, as `swarmperf
run` would (no store). Throughput is the run report's (tasks that ran to an end per
second); `slowdown` is the median over repeats of off / on throughput, each pair back to
back. `attributed_share` is the share of the sampled (non-idle) stacks that the sampler
put on a named agent or handler, median over the repeats: stacks on the CPU and, as the
service samples them, the await chains of handlers suspended in an await.

The demo's tasks mostly sleep (its `sleep` kind, 5 ms mean), which hides a sampler's cost
behind waiting; so the same pair runs again with the demo's agents and `echo` tasks (no
waiting: the event loop busy all the time, the sampler's worst case for contention on the
GIL): `cpu_bound_slowdown` and `cpu_bound_attributed_share`. `cpu_ratio` (sampled / off CPU
time of the process per task, the sampler's thread included) is beside each: on a shared
machine it varies less than throughput does.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

from _common import RunSettings, emit, log, median, parse_args, python_version, spread
from swarmperf.app.run import RunOutcome, run_spec
from swarmperf.profiling import Profile, Sampler
from swarmperf.spec import MonitorSpec, SwarmSpec, demo_spec

RATE_HZ = 100.0
SLOWDOWN_GOAL = 1.05
ATTRIBUTED_GOAL = 0.9


def _spec(tasks: int, seed: int, kind: str | None) -> SwarmSpec:
    base = demo_spec()
    workload = base.workload.model_copy(update={"tasks": tasks})
    if kind is not None:
        workload = workload.model_copy(update={"kind": kind, "failure_rate": 0.0})
    return base.model_copy(
        update={
            "seed": seed,
            "duration": None,
            "workload": workload,
            "monitor": MonitorSpec(enabled=False),
        }
    )


def _run(spec: SwarmSpec, sampled: bool) -> tuple[float, float, float | None]:
    """Throughput, CPU seconds of the process per task (the sampler's thread included) and,
    when sampled, the share of samples attributed."""

    async def run() -> tuple[RunOutcome, Profile | None]:
        # Given the loop, as the service gives it: handlers suspended in an await count.
        sampler = Sampler(RATE_HZ, loop=asyncio.get_running_loop()) if sampled else None
        if sampler is not None:
            sampler.start()
        try:
            outcome = await run_spec(spec, handle_signals=False)
        finally:
            profile = sampler.stop() if sampler is not None else None
        return outcome, profile

    # The previous run's garbage (its tasks and results) is collected first: left to the
    # collector, it lands on whichever run comes second in a pair.
    gc.collect()
    cpu = time.process_time()
    outcome, profile = asyncio.run(run())
    cpu = time.process_time() - cpu
    if outcome.report.throughput is None:
        raise RuntimeError(f"the run measured no throughput: {outcome.report.missing}")
    share = profile.attributed_share() if profile is not None else None
    return outcome.report.throughput, cpu / spec.workload.tasks, share


def _pairs(settings: RunSettings, n: int, kind: str | None, label: str) -> dict[str, Any]:
    on: list[float] = []
    off: list[float] = []
    shares: list[float] = []
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for r in range(settings.repeats):
        order = (True, False) if r % 2 == 0 else (False, True)
        for sampled in order:
            throughput, cpu_per_task, share = _run(_spec(n, 42 + r, kind), sampled)
            (on if sampled else off).append(throughput)
            cpu[sampled].append(cpu_per_task)
            if share is not None:
                shares.append(share)
        log(f"{label} {r + 1}/{settings.repeats}: on {on[-1]:,.0f}/s, off {off[-1]:,.0f}/s")
    log(f"{label} sampled: {spread(on)} tasks/s")
    log(f"{label} off    : {spread(off)} tasks/s")
    return {
        "on_throughput_per_s": round(median(on), 1),
        "off_throughput_per_s": round(median(off), 1),
        # Paired: a burst of other load on the machine weighs on both runs of a pair.
        "slowdown": round(median([f / s for f, s in zip(off, on, strict=True)]), 4),
        "attributed_share": round(median(shares), 4) if shares else None,
        # CPU time varies less than wall-clock throughput with other load on the machine.
        "cpu_ratio": round(median(cpu[True]) / median(cpu[False]), 4),
    }


def main(settings: RunSettings) -> None:
    demo = _pairs(settings, settings.n, None, "demo")
    busy = _pairs(settings, settings.n * 50, "echo", "cpu-bound")
    figures: dict[str, Any] = {
        "benchmark": "profiler_overhead",
        "quick": settings.quick,
        "tasks": settings.n,
        "cpu_bound_tasks": settings.n * 50,
        "repeats": settings.repeats,
        "rate_hz": RATE_HZ,
        "python": python_version(),
        "slowdown": demo["slowdown"],
        "slowdown_goal": SLOWDOWN_GOAL,
        "attributed_share": demo["attributed_share"],
        "attributed_share_goal": ATTRIBUTED_GOAL,
        "on_throughput_per_s": demo["on_throughput_per_s"],
        "off_throughput_per_s": demo["off_throughput_per_s"],
        "cpu_ratio": demo["cpu_ratio"],
        "cpu_bound_slowdown": busy["slowdown"],
        "cpu_bound_cpu_ratio": busy["cpu_ratio"],
        "cpu_bound_attributed_share": busy["attributed_share"],
        "cpu_bound_on_throughput_per_s": busy["on_throughput_per_s"],
        "cpu_bound_off_throughput_per_s": busy["off_throughput_per_s"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    emit(figures)


if __name__ == "__main__":
    main(
        parse_args(
            __doc__.splitlines()[0],
            n=4_000,
            repeats=7,
            quick_n=1_000,
            quick_repeats=3,
        )
    )

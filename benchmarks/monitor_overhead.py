"""What the Performance Monitor costs a run: the demo spec's throughput with it on and off.

Each repeat runs the demo spec (local backend, `-n` tasks, the same seed for both arms) once
with `monitor.enabled: false` and once with the default monitor (a snapshot a second, the
machine sampled too, rows written to the store), in alternating order, each into its own
temporary SQLite store as `swarmperf run` would. Throughput is the run report's (tasks that
ran to an end per second); `slowdown` is the median over repeats of off / on throughput
(each pair run back to back), beside the ratio of the two arms' medians. CPU
time of the process per task, on and off, is reported beside it: on a shared machine it
varies less than throughput does.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RunSettings, emit, log, median, parse_args, python_version, spread
from swarmperf.app.run import run_spec
from swarmperf.spec import MonitorSpec, SwarmSpec, demo_spec
from swarmperf.store import Store

SLOWDOWN_GOAL = 1.05


def _spec(tasks: int, seed: int, monitor: bool) -> SwarmSpec:
    base = demo_spec()
    return base.model_copy(
        update={
            "seed": seed,
            "duration": None,
            "workload": base.workload.model_copy(update={"tasks": tasks}),
            "monitor": MonitorSpec(enabled=monitor),
        }
    )


def _throughput(spec: SwarmSpec, folder: Path) -> tuple[float, float, int]:
    """Throughput, CPU seconds of this process per task, and metric rows stored."""
    with Store.open(folder / f"{spec.seed}-{spec.monitor.enabled}.db") as store:
        cpu = time.process_time()
        outcome = asyncio.run(run_spec(spec, store=store))
        cpu = time.process_time() - cpu
        rows = len(store.metrics(spec.swarm_id))
    if outcome.report.throughput is None:
        raise RuntimeError(f"the run measured no throughput: {outcome.report.missing}")
    return outcome.report.throughput, cpu / spec.workload.tasks, rows


def main(settings: RunSettings) -> None:
    on: list[float] = []
    off: list[float] = []
    cpu: dict[bool, list[float]] = {True: [], False: []}
    rows_stored: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for r in range(settings.repeats):
            order = (True, False) if r % 2 == 0 else (False, True)
            for monitor in order:
                throughput, cpu_per_task, rows = _throughput(
                    _spec(settings.n, 42 + r, monitor), folder
                )
                (on if monitor else off).append(throughput)
                cpu[monitor].append(cpu_per_task)
                if monitor:
                    rows_stored.append(rows)
            log(f"repeat {r + 1}/{settings.repeats}: on {on[-1]:,.0f}/s, off {off[-1]:,.0f}/s")
    log(f"monitor on : {spread(on)} tasks/s")
    log(f"monitor off: {spread(off)} tasks/s")
    # Paired: each repeat's off and on runs are back to back, so a burst of other load on the
    # machine weighs on both of a pair rather than on one arm's median.
    slowdown = median([f / n for f, n in zip(off, on, strict=True)])
    figures: dict[str, Any] = {
        "benchmark": "monitor_overhead",
        "quick": settings.quick,
        "tasks": settings.n,
        "repeats": settings.repeats,
        "python": python_version(),
        "on_throughput_per_s": round(median(on), 1),
        "off_throughput_per_s": round(median(off), 1),
        "slowdown": round(slowdown, 4),
        "slowdown_goal": SLOWDOWN_GOAL,
        "slowdown_of_medians": round(median(off) / median(on), 4),
        # CPU time is less sensitive than wall-clock throughput to other load on the machine.
        "on_cpu_us_per_task": round(median(cpu[True]) * 1e6, 1),
        "off_cpu_us_per_task": round(median(cpu[False]) * 1e6, 1),
        "cpu_ratio": round(median(cpu[True]) / median(cpu[False]), 4),
        "metric_rows_stored_median": median(rows_stored),
    }
    emit(figures)


if __name__ == "__main__":
    main(
        parse_args(
            __doc__.splitlines()[0],
            n=10_000,
            repeats=7,
            quick_n=2_000,
            quick_repeats=3,
        )
    )

"""Losing a Ray node mid-run: a two-node cluster on this machine, agents pinned to each node
(and two soft-pinned to the second), the second node's raylet killed (`kill -9`) once a
quarter of the tasks have results. Counts lost and duplicated results, the longest time a
task waited on an agent that was never placed (`stall_s`), and the makespan against the
same run without the kill (`makespan_ratio`), each pair run back to back on one cluster."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import emit, log, median, package_versions, parse_args

# The cluster and the scenario are the two-node test's own, so that the benchmark measures
# exactly what the test checks.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.runtime.ray_cluster import TwoNodeCluster, scenario

TASK_S = 0.005  # each task sleeps this long on its actor
KILL_AT = 0.25  # share of tasks with results when the node is killed
STALL_GOAL_S = 5.0


def pair(cluster: TwoNodeCluster, n: int, where: Path, i: int) -> dict[str, Any]:
    """One run without the kill, then one with it; a new second node afterwards."""
    calm = scenario(cluster, where / f"calm-{i}", tasks=n, task_s=TASK_S, kill_at=None)
    log(f"  without the kill: makespan {calm['makespan_s']:.2f}s, lost {calm['lost']}")
    lossy = scenario(cluster, where / f"loss-{i}", tasks=n, task_s=TASK_S, kill_at=KILL_AT)
    log(
        f"  with the kill:    makespan {lossy['makespan_s']:.2f}s, lost {lossy['lost']}, "
        f"duplicated {lossy['duplicated_results']}, stall {lossy['stall_s']:.3f}s"
    )
    kinds: dict[str, int] = {}
    for event in lossy["events"]:
        kinds[event["kind"]] = kinds.get(event["kind"], 0) + 1
    return {
        "lost": calm["lost"] + lossy["lost"],
        "duplicated_results": calm["duplicated_results"] + lossy["duplicated_results"],
        "failed": calm["failed"] + lossy["failed"],
        "stall_s": max(calm["stall_s"], lossy["stall_s"]),
        "unplaced_dispatches": calm["unplaced_dispatches"] + lossy["unplaced_dispatches"],
        "makespan_s": calm["makespan_s"],
        "makespan_with_kill_s": lossy["makespan_s"],
        "makespan_ratio": lossy["makespan_s"] / calm["makespan_s"],
        "restart_events": {k: v for k, v in sorted(kinds.items()) if k.startswith("agent-")},
    }


def main() -> None:
    settings = parse_args(__doc__ or "", n=20_000, repeats=3, quick_n=4_000, quick_repeats=1)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    log(f"two-node Ray cluster on this machine; {settings.n:,} tasks of {TASK_S * 1e3:g} ms")
    cluster = TwoNodeCluster().start()
    pairs: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="sp-node-loss-") as tmp:
            for i in range(settings.repeats):
                if i:
                    cluster.add_second()
                log(f"pair {i + 1} of {settings.repeats}")
                pairs.append(pair(cluster, settings.n, Path(tmp), i))
    finally:
        cluster.stop()
    lost = sum(p["lost"] for p in pairs)
    duplicated = sum(p["duplicated_results"] for p in pairs)
    stall = max(p["stall_s"] for p in pairs)
    emit(
        {
            "benchmark": "ray_node_loss",
            "quick": settings.quick,
            "repeats": settings.repeats,
            "tasks_per_run": settings.n,
            "task_s": TASK_S,
            "lost": lost,
            "duplicated_results": duplicated,
            "stall_s": round(stall, 4),
            "makespan_ratio": round(median([p["makespan_ratio"] for p in pairs]), 3),
            "makespan_s": round(median([p["makespan_s"] for p in pairs]), 3),
            "makespan_with_kill_s": round(median([p["makespan_with_kill_s"] for p in pairs]), 3),
            "goal": {"lost": 0, "duplicated_results": 0, "stall_s_max": STALL_GOAL_S},
            "goal_met": lost == 0 and duplicated == 0 and stall <= STALL_GOAL_S,
            "pairs": pairs,
            "load_average": list(os.getloadavg()),
            **package_versions("ray"),
        }
    )


if __name__ == "__main__":
    main()

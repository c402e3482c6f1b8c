"""MCP latency: what asking through `swarmperf mcp` over stdio costs against asking in-process.

One data dir holds a recorded run (`swarmperf run`, 200 sleep tasks on two local agents) and
a served swarm (`swarmperf serve`, two local agents, idle). The same questions are asked two
ways in the same run, in alternating rounds so that a noisy spell of this shared machine
falls on both:

- in-process: the function the tool and the CLI call (`queries.live.swarm_status` with a
  kept client, as the server keeps one per swarm; `queries.stored.performance_report`),
  timed around the call;
- MCP: the SDK's own client (`mcp.Client`) calling the tool of a `swarmperf mcp` it started
  over stdio, timed from the call to the parsed result (JSON-RPC, the pipes, validation and
  the structured output).

Figures per tool: `p50_ms` and `p99_ms` of each way over every call, and `overhead_ms` = MCP
p50 - in-process p50. The headline `p50_ms`, `p99_ms`, `overhead_ms` are swarm_status's
over MCP. Goal: swarm_status p99 <= 50 ms over MCP. `-n` calls per tool per round.
For context, `swarm_status.in_process_new_client`: the same call making a new client each
time, as each `swarmperf swarm-status` command does (n/5 calls per round).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import compiled_core, emit, log, package_versions, parse_args

SWARM_RUN = "bench-run"
SWARM_LIVE = "bench-live"
RUN_SPEC = """\
swarm_id: bench-run
backend: local
strategy: least-loaded
seed: 7
agents: [{id: a1, concurrency: 4}, {id: a2, concurrency: 4}]
workload: {kind: sleep, tasks: 200}
"""
LIVE_SPEC = """\
swarm_id: bench-live
backend: local
strategy: least-loaded
agents: [{id: a1, concurrency: 2}, {id: a2, concurrency: 2}]
"""
WARMUP_CALLS = 5
GOAL_P99_MS = 50.0
TOOLS = ("swarm_status", "performance_report")


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SWARMPERF_")}


def _record_run(folder: Path, data_dir: Path) -> None:
    spec = folder / "run.yaml"
    spec.write_text(RUN_SPEC)
    subprocess.run(
        [sys.executable, "-m", "swarmperf", "run", str(spec), "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        env=_env(),
        timeout=300,
    )


def _serve(folder: Path, data_dir: Path) -> subprocess.Popen[bytes]:
    from swarmperf.service import registry

    spec = folder / "live.yaml"
    spec.write_text(LIVE_SPEC)
    command = [sys.executable, "-m", "swarmperf", "serve", str(spec), "--port", "0"]
    with (folder / "serve.log").open("wb") as out:
        process = subprocess.Popen(
            [*command, "--data-dir", str(data_dir)], stdout=out, stderr=out, env=_env()
        )
    give_up = time.monotonic() + 120
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError((folder / "serve.log").read_text())
        if registry.ready(data_dir, SWARM_LIVE, process.pid, timeout=5) is not None:
            return process
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("swarmperf serve was not ready in 120 s")


def _new_client(data_dir: Path, n: int) -> list[float]:
    """swarm_status with a new client each call, as each `swarmperf swarm-status` makes."""
    from swarmperf.queries import live

    taken = []
    for _ in range(n):
        started = time.perf_counter()
        live.swarm_status(SWARM_LIVE, data_dir)
        taken.append((time.perf_counter() - started) * 1e3)
    return taken


def _in_process(data_dir: Path, n: int, client: Any) -> dict[str, list[float]]:
    from swarmperf.queries import live, stored

    calls = {
        # With a kept client, as the server keeps one per swarm.
        "swarm_status": lambda: live.swarm_status(SWARM_LIVE, data_dir, client),
        "performance_report": lambda: stored.performance_report(data_dir, SWARM_RUN),
    }
    samples: dict[str, list[float]] = {name: [] for name in TOOLS}
    for name in TOOLS:
        for _ in range(n):
            started = time.perf_counter()
            calls[name]()
            samples[name].append((time.perf_counter() - started) * 1e3)
    return samples


async def _over_mcp(client: Any, n: int) -> dict[str, list[float]]:
    args = {"swarm_status": {"swarm_id": SWARM_LIVE}, "performance_report": {"swarm_id": SWARM_RUN}}
    samples: dict[str, list[float]] = {name: [] for name in TOOLS}
    for name in TOOLS:
        for _ in range(n):
            started = time.perf_counter()
            result = await client.call_tool(name, args[name])
            samples[name].append((time.perf_counter() - started) * 1e3)
            if result.is_error or result.structured_content is None:
                raise RuntimeError(f"{name}: {result.content}")
    return samples


async def _measure(data_dir: Path, n: int, repeats: int) -> dict[str, dict[str, list[float]]]:
    from mcp import Client, StdioServerParameters

    from swarmperf.queries import live

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "swarmperf", "mcp", "--data-dir", str(data_dir)],
        env=_env(),
    )
    found: dict[str, dict[str, list[float]]] = {
        way: {name: [] for name in TOOLS} for way in ("mcp", "in_process")
    }
    found["new_client"] = {"swarm_status": []}
    kept = live.connect(SWARM_LIVE, data_dir)
    async with Client(params, read_timeout_seconds=120) as client:
        await _over_mcp(client, WARMUP_CALLS)
        _in_process(data_dir, WARMUP_CALLS, kept)
        for round_ in range(repeats):
            log(f"round {round_ + 1}/{repeats}: {n} calls per tool each way")
            # Alternate which way goes first, so neither always follows the other.
            ways = ("mcp", "in_process") if round_ % 2 == 0 else ("in_process", "mcp")
            for way in ways:
                if way == "mcp":
                    taken = await _over_mcp(client, n)
                else:
                    taken = await asyncio.to_thread(_in_process, data_dir, n, kept)
                for name in TOOLS:
                    found[way][name].extend(taken[name])
            fresh = await asyncio.to_thread(_new_client, data_dir, max(1, n // 5))
            found["new_client"]["swarm_status"].extend(fresh)
    kept.close()
    return found


def main() -> None:
    settings = parse_args(__doc__.splitlines()[0], n=200, repeats=3, quick_n=50, quick_repeats=1)
    with tempfile.TemporaryDirectory(prefix="mcp-latency-") as tmp:
        folder = Path(tmp)
        data_dir = folder / "data"
        log("recording a run and serving a swarm ...")
        _record_run(folder, data_dir)
        served = _serve(folder, data_dir)
        try:
            samples = asyncio.run(_measure(data_dir, settings.n, settings.repeats))
        finally:
            served.terminate()
            served.wait(timeout=60)
    figures: dict[str, Any] = {}
    for name in TOOLS:
        part: dict[str, Any] = {}
        for way in ("mcp", "in_process"):
            taken = samples[way][name]
            part[way] = {
                "p50_ms": round(_percentile(taken, 0.50), 3),
                "p99_ms": round(_percentile(taken, 0.99), 3),
                "calls": len(taken),
            }
        part["overhead_ms"] = round(part["mcp"]["p50_ms"] - part["in_process"]["p50_ms"], 3)
        figures[name] = part
        log(
            f"{name:<20} mcp p50 {part['mcp']['p50_ms']:8.2f} ms  p99 {part['mcp']['p99_ms']:8.2f}"
            f" ms | in-process p50 {part['in_process']['p50_ms']:8.2f} ms  p99 "
            f"{part['in_process']['p99_ms']:8.2f} ms | overhead {part['overhead_ms']:.2f} ms"
        )
    fresh = samples["new_client"]["swarm_status"]
    figures["swarm_status"]["in_process_new_client"] = {
        "p50_ms": round(_percentile(fresh, 0.50), 3),
        "p99_ms": round(_percentile(fresh, 0.99), 3),
        "calls": len(fresh),
    }
    headline = figures["swarm_status"]
    emit(
        {
            "benchmark": "mcp_latency",
            "quick": settings.quick,
            "n": settings.n,
            "repeats": settings.repeats,
            "transport": "stdio",
            "p50_ms": headline["mcp"]["p50_ms"],
            "p99_ms": headline["mcp"]["p99_ms"],
            "overhead_ms": headline["overhead_ms"],
            "goal_p99_ms": GOAL_P99_MS,
            "goal_met": headline["mcp"]["p99_ms"] <= GOAL_P99_MS,
            "tools": figures,
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(),
            "compiled": compiled_core(),
            "versions": package_versions("swarmperf", "mcp"),
        }
    )


if __name__ == "__main__":
    main()

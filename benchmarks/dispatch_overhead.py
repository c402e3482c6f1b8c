"""Dispatch overhead per no-op task, every strategy, against bare asyncio and process peers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from itertools import repeat
from typing import Any, cast

from _common import RunSettings, emit, log, median, parse_args, python_version, spread
from swarmperf import STRATEGIES, AgentSpec, Backend, Swarm, Task, TaskResult
from swarmperf.core.handlers import noop

AGENTS = 8
CONCURRENCY = 1
PREFETCHES = (0, 32)
RATIO_GOAL = 2.0

PROCESS_AGENTS = 2
CHUNK = 100  # ProcessPoolExecutor's chunksize, and the process agents' prefetch
PROCESS_RATIO_GOAL = 1.5
# Same start method on both sides: the backend refuses plain fork under a running loop.
PROCESS_START_METHOD = "forkserver"

SEED = 0


def _check(results: Sequence[TaskResult], n: int, what: str) -> None:
    # A fast run that lost or failed tasks would be a wrong number, not a good one.
    failed = sum(1 for r in results if not r.ok)
    if len(results) != n or failed:
        raise RuntimeError(f"{what}: {len(results)} results for {n} tasks, {failed} failed")


# -- the swarm ----------------------------------------------------------------------------


async def swarm_us_per_task(
    strategy: str, n: int, specs: list[AgentSpec], backend: Backend | None = None
) -> tuple[float, float, float]:
    """One timed `Swarm.run` of `n` no-op tasks in a fresh swarm; start-up is not timed."""
    async with Swarm(specs, strategy=strategy, backend=backend, seed=SEED) as swarm:
        return await timed_run(swarm, n)


async def timed_run(swarm: Swarm, n: int) -> tuple[float, float, float]:
    """µs per task of one `swarm.run` of `n` no-op tasks, created before the clock starts,
    and µs per task of reading every result afterwards (`Swarm.run` makes a result when
    it is read, so the read is timed too, apart: the peers make no results); then the
    run's CPU time per task (this process's: the local backend's agents run in it)."""
    tasks = [Task("noop") for _ in range(n)]
    gc.collect()
    cpu = time.process_time()
    started = time.perf_counter()
    results = await swarm.run(tasks)
    ran = time.perf_counter()
    cpu = time.process_time() - cpu
    _check(results, n, f"{swarm.strategy.name} on the {swarm.backend.name} backend")
    read = time.perf_counter()
    return (ran - started) / n * 1e6, (read - ran) / n * 1e6, cpu / n * 1e6


def local_agents(prefetch: int) -> list[AgentSpec]:
    return [
        AgentSpec(f"agent-{i}", concurrency=CONCURRENCY, prefetch=prefetch) for i in range(AGENTS)
    ]


# -- the asyncio peer: a bare queue and a pool of workers, pipelined ----------------------


async def async_noop() -> None:
    return None


async def _pool_worker(queue: asyncio.Queue[Task]) -> None:
    while True:
        await queue.get()
        await async_noop()
        queue.task_done()


async def queue_pool_us_per_task(n: int, workers: int) -> tuple[float, float, float]:
    """Queue every item up front, then let `workers` coroutines drain the queue.

    Returns µs per item in all, and for the draining alone, and CPU µs per item in all.
    The headline is the first: `Swarm.run` counts submitting its tasks too.
    """
    items = [Task("noop") for _ in range(n)]
    gc.collect()
    queue: asyncio.Queue[Task] = asyncio.Queue()
    cpu = time.process_time()
    started = time.perf_counter()
    for item in items:
        queue.put_nowait(item)
    queued = time.perf_counter()
    pool = [asyncio.create_task(_pool_worker(queue)) for _ in range(workers)]
    await queue.join()
    finished = time.perf_counter()
    cpu = time.process_time() - cpu
    for worker in pool:
        worker.cancel()
    await asyncio.gather(*pool, return_exceptions=True)
    return (finished - started) / n * 1e6, (finished - queued) / n * 1e6, cpu / n * 1e6


# -- the process backend and its peer, ProcessPoolExecutor.map ----------------------------

ProcessBackendFactory = Callable[[], Backend]
# The built-in handler itself, called as the pool calls it: its context argument is unused,
# and passing None keeps the peer from pickling one per item.
pool_noop = cast(Callable[[int, None], None], noop)


def load_process_backend() -> tuple[ProcessBackendFactory | None, str | None]:
    """The process backend's factory, or None and the reason it cannot be used."""
    try:
        from swarmperf.runtime.process import ProcessBackend
    except ImportError as exc:
        return None, f"swarmperf.runtime.process.ProcessBackend cannot be imported: {exc}"

    def factory() -> Backend:
        return ProcessBackend(start_method=PROCESS_START_METHOD)

    return factory, None


def process_agents() -> list[AgentSpec]:
    return [AgentSpec(f"worker-{i}", prefetch=CHUNK) for i in range(PROCESS_AGENTS)]


def pool_map_us_per_task(pool: ProcessPoolExecutor, n: int) -> float:
    """One timed `pool.map(noop, ...)` over `n` items, every result collected."""
    gc.collect()
    started = time.perf_counter()
    done = sum(1 for _ in pool.map(pool_noop, range(n), repeat(None), chunksize=CHUNK))
    elapsed = time.perf_counter() - started
    if done != n:
        raise RuntimeError(f"ProcessPoolExecutor.map returned {done} of {n} results")
    return elapsed / n * 1e6


def start_pool() -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(
        PROCESS_AGENTS, mp_context=multiprocessing.get_context(PROCESS_START_METHOD)
    )
    # Two calls in a row make the pool start both workers; the swarm's are up too.
    wait([pool.submit(pool_noop, 0, None) for _ in range(PROCESS_AGENTS)])
    return pool


# -- the run ------------------------------------------------------------------------------


def _table(title: str, rows: dict[str, list[float]], baseline: list[float]) -> None:
    log(f"\n{title}  (µs per task: median [min-max]; ratio to the peer's median)")
    peer = median(baseline)
    for name, samples in rows.items():
        log(f"  {name:<24}{spread(samples)}   x{median(samples) / peer:5.2f}")
    log(f"  {'peer':<24}{spread(baseline)}")


async def measure_local(settings: RunSettings) -> dict[str, Any]:
    n, repeats = settings.n, settings.repeats
    swarm: dict[int, dict[str, list[float]]] = {
        p: {name: [] for name in STRATEGIES} for p in PREFETCHES
    }
    reads: dict[int, dict[str, list[float]]] = {
        p: {name: [] for name in STRATEGIES} for p in PREFETCHES
    }
    cpus: dict[int, dict[str, list[float]]] = {
        p: {name: [] for name in STRATEGIES} for p in PREFETCHES
    }
    baseline: list[float] = []
    drain_only: list[float] = []
    baseline_cpu: list[float] = []
    # Repeats go round every configuration in turn, so that a noisy spell on this shared
    # machine spreads over all of them instead of skewing one.
    for r in range(repeats):
        whole, drain, cpu = await queue_pool_us_per_task(n, AGENTS * CONCURRENCY)
        baseline.append(whole)
        drain_only.append(drain)
        baseline_cpu.append(cpu)
        for prefetch in PREFETCHES:
            specs = local_agents(prefetch)
            for name in STRATEGIES:
                ran, read, cpu = await swarm_us_per_task(name, n, specs)
                swarm[prefetch][name].append(ran)
                reads[prefetch][name].append(read)
                cpus[prefetch][name].append(cpu)
        log(f"local backend: repeat {r + 1}/{repeats} done")
    for prefetch in PREFETCHES:
        _table(f"local backend, prefetch {prefetch}", swarm[prefetch], baseline)

    medians = {p: {name: median(s) for name, s in swarm[p].items()} for p in PREFETCHES}
    # The headline prefetch is the one whose worst strategy is fastest, as measured now.
    best = min(PREFETCHES, key=lambda p: max(medians[p].values()))
    base = median(baseline)
    ratio = max(medians[best].values()) / base
    worst = max(medians[best], key=medians[best].__getitem__)
    met = ratio <= RATIO_GOAL
    log(
        f"\nratio, worst strategy ({worst}, prefetch {best}) / asyncio.Queue pool: "
        f"{ratio:.2f}; goal <= {RATIO_GOAL}: {'MET' if met else 'NOT MET'}"
    )
    read_us = {name: median(r) for name, r in reads[best].items()}
    with_read = max(medians[best][name] + read_us[name] for name in read_us) / base
    log(f"ratio with every result read afterwards (not the goal's figure): {with_read:.2f}")
    # CPU time moves less than wall time when other work shares the machine's cores.
    cpu_us = {name: median(c) for name, c in cpus[best].items()}
    cpu_base = median(baseline_cpu)
    cpu_ratio = max(cpu_us.values()) / cpu_base
    log(f"ratio of CPU time, same runs (not the goal's figure): {cpu_ratio:.2f}")
    figures: dict[str, Any] = {
        "us_per_task": _rounded(medians[best]),
        "read_us_per_task": _rounded(read_us),
        "ratio_with_read": round(with_read, 3),
        "cpu_us_per_task": _rounded(cpu_us),
        "cpu_baseline_us_per_task": round(cpu_base, 3),
        "cpu_ratio": round(cpu_ratio, 3),
        "baseline_us_per_task": round(base, 3),
        "baseline_drain_only_us_per_task": round(median(drain_only), 3),
        "ratio": round(ratio, 3),
        "ratio_goal": RATIO_GOAL,
        "ratio_goal_met": met,
        "worst_strategy": worst,
        "prefetch": best,
        "prefetch_choice": "the measured best for no-op tasks (lowest worst-strategy median)",
    }
    for p in PREFETCHES:
        figures[f"us_per_task_prefetch{p}"] = _rounded(medians[p])
    return figures


async def measure_process(settings: RunSettings) -> dict[str, Any]:
    factory, reason = load_process_backend()
    if factory is None:
        return _no_process_figures(reason or "unknown")
    try:
        samples, peer = await _process_samples(factory, settings)
    except Exception as exc:  # the backend is young: report why, keep the local figures
        traceback.print_exc()
        return _no_process_figures(f"the process backend failed: {type(exc).__name__}: {exc}")
    _table(f"process backend, {PROCESS_AGENTS} agents, prefetch {CHUNK}", samples, peer)
    medians = {name: median(s) for name, s in samples.items()}
    base = median(peer)
    ratio = max(medians.values()) / base
    worst = max(medians, key=medians.__getitem__)
    met = ratio <= PROCESS_RATIO_GOAL
    log(
        f"\nprocess_ratio, worst strategy ({worst}) / ProcessPoolExecutor({PROCESS_AGENTS}).map "
        f"chunksize {CHUNK}: {ratio:.2f}; goal <= {PROCESS_RATIO_GOAL}: "
        f"{'MET' if met else 'NOT MET'}"
    )
    return {
        "process_us_per_task": _rounded(medians),
        "process_baseline_us_per_task": round(base, 3),
        "process_ratio": round(ratio, 3),
        "process_ratio_goal": PROCESS_RATIO_GOAL,
        "process_ratio_goal_met": met,
        "process_worst_strategy": worst,
    }


async def _process_samples(
    factory: ProcessBackendFactory, settings: RunSettings
) -> tuple[dict[str, list[float]], list[float]]:
    """Every swarm and the pool start once, untimed, and each runs once untimed to warm up;
    then the repeats go round all of them, as for the local backend."""
    n = settings.n
    samples: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    peer: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        pool = stack.enter_context(start_pool())
        swarms: dict[str, Swarm] = {}
        for name in STRATEGIES:
            swarm = Swarm(process_agents(), strategy=name, backend=factory(), seed=SEED)
            swarms[name] = await stack.enter_async_context(swarm)
            await timed_run(swarm, min(n, 10_000))
        pool_map_us_per_task(pool, min(n, 10_000))
        for r in range(settings.repeats):
            peer.append(pool_map_us_per_task(pool, n))
            for name, swarm in swarms.items():
                # The pool's map makes every result, so reading ours counts here.
                ran, read, _ = await timed_run(swarm, n)
                samples[name].append(ran + read)
            log(f"process backend: repeat {r + 1}/{settings.repeats} done")
    return samples, peer


def _no_process_figures(reason: str) -> dict[str, Any]:
    log(f"\nprocess backend not measured: {reason}")
    return {"process_ratio": None, "process_ratio_reason": reason}


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {name: round(v, 3) for name, v in values.items()}


def _run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    return asyncio.run(coro)


def main() -> None:
    settings = parse_args(__doc__ or "", n=100_000, repeats=5, quick_n=20_000, quick_repeats=3)
    log(
        f"{settings.n:,} no-op tasks, {AGENTS} agents x concurrency {CONCURRENCY}, "
        f"prefetch {PREFETCHES}, {settings.repeats} repeats, {python_version()}"
    )
    started = time.perf_counter()
    figures = _run(measure_local(settings))
    figures.update(_run(measure_process(settings)))
    figures["settings"] = {
        "n_tasks": settings.n,
        "agents": AGENTS,
        "concurrency": CONCURRENCY,
        "repeats": settings.repeats,
        "prefetch_values": list(PREFETCHES),
        "quick": settings.quick,
        "peer": f"asyncio.Queue, {AGENTS * CONCURRENCY} workers, items queued up front",
        "process_agents": PROCESS_AGENTS,
        "process_prefetch": CHUNK,
        "process_peer": f"ProcessPoolExecutor({PROCESS_AGENTS}).map, chunksize {CHUNK}",
        "process_start_method": PROCESS_START_METHOD,
        "python": python_version(),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    # The machine's load over the last 1, 5 and 15 minutes: the run shares its cores.
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    emit(figures)


if __name__ == "__main__":
    main()

"""Exact swarm figures from stored task results, for a swarm that is not running in this process.

Every figure is computed from the complete records of the tasks (numpy over all of them, no
sketches), over a window `(start, end]` on the swarm's own clock:

- counts, throughput (tasks that ran to an end, succeeded or failed, per second), error rate
  and latencies are over the tasks that *ended* in the window;
- queue depth and in-flight counts are the tasks waiting or running at the window's `end`;
- utilisation is the busy slot-seconds that fall inside the window over the slots it offered.

Only finished tasks are stored, so while a run is still going the queue depth at `end` leaves
out tasks still waiting: `reasons["queue_depth"]` says so. The stored results do not carry the
tasks' priorities, so `queue_depth_by_priority` is empty with a reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from swarmperf.core.errors import ConfigError
from swarmperf.core.latency import LatencySummary
from swarmperf.core.model import TaskResult, TaskStatus
from swarmperf.monitor.snapshot import AgentFigures, SwarmFigures, SystemFigures
from swarmperf.store import RUN_ABORTED, RUN_RUNNING, MetricRow, RunRecord, Store

FloatArray = npt.NDArray[np.float64]
QUANTILES = (50.0, 90.0, 95.0, 99.0)
_STATUS_CODES = {s: i for i, s in enumerate(TaskStatus)}


@dataclass(frozen=True, slots=True)
class AgentShape:
    """What an agent declared: how many tasks it runs at once and its relative speed."""

    slots: int
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Columns:
    """A run's results as arrays (times on the swarm's clock; NaN where a time is absent)."""

    queued: FloatArray
    started: FloatArray
    finished: FloatArray
    status: npt.NDArray[np.int64]
    agent: npt.NDArray[np.int64]  # index into `agents`, -1 for none
    agents: tuple[str, ...]

    @classmethod
    def of(cls, results: Iterable[TaskResult]) -> Columns:
        rows = list(results)
        names = sorted({r.agent for r in rows if r.agent is not None})
        index = {name: i for i, name in enumerate(names)}
        nan = math.nan
        return cls(
            queued=np.array([r.queued_at for r in rows], dtype=float),
            started=np.array(
                [nan if r.started_at is None else r.started_at for r in rows], dtype=float
            ),
            finished=np.array(
                [nan if r.finished_at is None else r.finished_at for r in rows], dtype=float
            ),
            status=np.array([_STATUS_CODES[r.status] for r in rows], dtype=np.int64),
            agent=np.array(
                [-1 if r.agent is None else index[r.agent] for r in rows], dtype=np.int64
            ),
            agents=tuple(names),
        )

    def __len__(self) -> int:
        return int(self.queued.size)

    @property
    def first(self) -> float | None:
        return float(np.min(self.queued)) if len(self) else None

    @property
    def last(self) -> float | None:
        ended = self.finished[~np.isnan(self.finished)]
        return float(np.max(ended)) if ended.size else None


def quantiles(values: FloatArray) -> LatencySummary:
    """Quantiles of `values` (seconds), linear interpolation as `numpy.percentile` does it."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return LatencySummary(count=0)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(values, QUANTILES))
    return LatencySummary(
        count=int(values.size),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        max=float(np.max(values)),
        mean=float(np.mean(values)),
    )


def compute_figures(
    cols: Columns,
    shapes: Mapping[str, AgentShape],
    start: float,
    end: float,
    *,
    ts: float,
    include_start: bool = False,
    partial: bool = False,
) -> SwarmFigures:
    """The swarm's figures over `(start, end]` (`[start, end]` with `include_start`).

    `shapes` are the agents' declared slots; `ts` is the wall-clock time to stamp; `partial`
    says the run is still going (so tasks still waiting are not among the results).
    """
    if not end > start:
        raise ConfigError("window", end - start, "Use a window longer than 0 seconds.")
    window = end - start
    reasons: dict[str, str] = {}
    fin = cols.finished
    with np.errstate(invalid="ignore"):
        ended = (fin >= start if include_start else fin > start) & (fin <= end)
    succeeded = ended & (cols.status == _STATUS_CODES[TaskStatus.SUCCEEDED])
    failed = ended & (cols.status == _STATUS_CODES[TaskStatus.FAILED])
    ran = succeeded | failed
    rejected = ended & (cols.status == _STATUS_CODES[TaskStatus.REJECTED])
    refused = rejected | (failed & (cols.agent < 0))
    n_ran, n_failed = int(np.count_nonzero(ran)), int(np.count_nonzero(failed))
    asked = n_ran + int(np.count_nonzero(rejected))
    error_rate = n_failed / n_ran if n_ran else None
    if n_ran == 0:
        reasons["error_rate"] = "no task ran to an end in the window"
    availability = 1.0 - np.count_nonzero(refused) / asked if asked else None
    if asked == 0:
        reasons["availability"] = "no task finished or was rejected in the window"
    began = np.where(np.isnan(cols.started), fin, cols.started)
    with np.errstate(invalid="ignore"):
        waiting = (cols.queued <= end) & ~(began <= end)
        running = (cols.started <= end) & ~(fin <= end)
    if partial:
        reasons["queue_depth"] = (
            "the run is still going: tasks still waiting are not stored yet, so the depth "
            "counts only those that have since finished"
        )
    reasons["queue_depth_by_priority"] = "stored task results do not record priorities"
    agents = _agent_figures(cols, shapes, start, end, ended, failed, running, reasons)
    utils = [a.utilization for a in agents.values() if a.utilization is not None]
    balance_cv = None
    if len(utils) >= 2 and float(np.mean(utils)) > 0:
        balance_cv = float(np.std(utils) / np.mean(utils))
    else:
        reasons["balance_cv"] = "needs two agents with a utilisation above zero"
    return SwarmFigures(
        ts=ts,
        window_s=window,
        completed=n_ran,
        failed=n_failed,
        throughput_per_s=n_ran / window,
        error_rate=error_rate,
        availability=availability,
        latency=quantiles(fin[ran] - cols.queued[ran]),
        wait=quantiles(cols.started[ran] - cols.queued[ran]),
        service=quantiles(fin[ran] - cols.started[ran]),
        queue_depth=int(np.count_nonzero(waiting)),
        queue_depth_by_priority={},
        balance_cv=balance_cv,
        agents=agents,
        reasons=reasons,
    )


def _agent_figures(
    cols: Columns,
    shapes: Mapping[str, AgentShape],
    start: float,
    end: float,
    ended: npt.NDArray[np.bool_],
    failed: npt.NDArray[np.bool_],
    running: npt.NDArray[np.bool_],
    reasons: dict[str, str],
) -> dict[str, AgentFigures]:
    window = end - start
    has_times = ~np.isnan(cols.started) & ~np.isnan(cols.finished)
    busy = np.zeros(len(cols))
    busy[has_times] = np.clip(cols.finished[has_times], start, end) - np.clip(
        cols.started[has_times], start, end
    )
    figures: dict[str, AgentFigures] = {}
    for name in sorted(set(shapes) | set(cols.agents)):
        idx = cols.agents.index(name) if name in cols.agents else -2
        mine = cols.agent == idx
        done = mine & ended & has_times
        shape = shapes.get(name)
        utilization = None
        if shape is None:
            reasons[f"agent.{name}.utilization"] = "the run's spec does not declare this agent"
        else:
            utilization = min(1.0, float(np.sum(busy[mine])) / (shape.slots * window))
        figures[name] = AgentFigures(
            agent_id=name,
            completed=int(np.count_nonzero(done)),
            failed=int(np.count_nonzero(mine & failed)),
            in_flight=int(np.count_nonzero(mine & running)),
            slots=shape.slots if shape is not None else 0,
            utilization=utilization,
            service=quantiles(cols.finished[done] - cols.started[done]),
        )
    return figures


def agent_shapes(run: RunRecord) -> dict[str, AgentShape]:
    """The agents a stored run declared, from its spec."""
    from swarmperf.spec import parse_spec

    spec = parse_spec(run.spec, f"run {run.id}'s stored spec")
    return {a.id: AgentShape(a.concurrency, a.weight) for a in spec.agent_specs()}


def wall_time(run: RunRecord, cols: Columns, t: float) -> float:
    """Swarm-clock time `t` as UNIX seconds: the first queued task is taken as the run's start."""
    first = cols.first
    return run.started_at + (t - (first if first is not None else t))


def run_figures(
    store: Store, run_id: int, *, window_s: float | None = None, end: float | None = None
) -> SwarmFigures:
    """A stored run's figures over its last `window_s` seconds up to `end` (swarm clock).

    Defaults: `end` is the latest finished task, `window_s` the whole run; a window reaching
    back before the run's first task starts there.
    """
    run = store.get_run(run_id)
    if run is None:
        raise ConfigError("run", run_id, "Use the id of a run recorded in this store.")
    cols = Columns.of(store.iter_results(run_id))
    shapes = agent_shapes(run)
    first, last = cols.first, cols.last
    if first is None or last is None:
        raise ConfigError(
            "run", run_id, "It has no finished task yet: wait for it, or run the swarm again."
        )
    stop = last if end is None else end
    # A window longer than the run is the run: dividing by time it did not run would
    # understate its throughput and utilisation.
    begin = first if window_s is None else max(first, stop - window_s)
    if not stop > begin:
        # A run whose tasks all ended the instant they were queued has no span to divide by.
        raise ConfigError(
            "run", run_id, "Its tasks span no measurable time; run a longer workload."
        )
    return compute_figures(
        cols,
        shapes,
        begin,
        stop,
        ts=wall_time(run, cols, stop),
        include_start=begin == first,
        partial=run.status in _PARTIAL,
    )


# Runs whose stored results are not all there: still going, or aborted (process gone).
_PARTIAL = (RUN_RUNNING, RUN_ABORTED)


def figure_series(
    cols: Columns,
    shapes: Mapping[str, AgentShape],
    step_s: float,
    *,
    run: RunRecord | None = None,
) -> list[SwarmFigures]:
    """Figures for consecutive windows of `step_s` seconds over the whole run."""
    if not step_s > 0:
        raise ConfigError("step", step_s, "Use a duration > 0, e.g. 1s.")
    first, last = cols.first, cols.last
    if first is None or last is None or not last > first:
        return []
    count = max(1, math.ceil((last - first) / step_s))
    series: list[SwarmFigures] = []
    for i in range(count):
        lo, hi = first + i * step_s, min(last, first + (i + 1) * step_s)
        if not hi > lo:
            break
        ts = hi if run is None else wall_time(run, cols, hi)
        partial = run is not None and run.status in _PARTIAL
        series.append(
            compute_figures(cols, shapes, lo, hi, ts=ts, include_start=i == 0, partial=partial)
        )
    return series


def stored_series(store: Store, run_id: int, step_s: float) -> list[SwarmFigures]:
    """`figure_series` of a stored run."""
    run = store.get_run(run_id)
    if run is None:
        raise ConfigError("run", run_id, "Use the id of a run recorded in this store.")
    return figure_series(Columns.of(store.iter_results(run_id)), agent_shapes(run), step_s, run=run)


def system_from_rows(ts: float, rows: Mapping[str, float | None]) -> SystemFigures | None:
    """A stored snapshot's `system.*` rows back as `SystemFigures`; None if it has none.

    Only the 1-minute load average is stored, so `load_avg` comes back None with a reason.
    """
    if not any(name.startswith("system.") for name in rows):
        return None
    reasons: dict[str, str] = {}

    def value(name: str) -> float | None:
        found = rows.get(f"system.{name}")
        if found is None:
            reasons[name] = "the stored snapshot has no value for it"
        return found

    def count(name: str) -> int | None:
        found = value(name)
        return None if found is None else int(found)

    cores: list[float] = []
    while (core := rows.get(f"system.cpu{len(cores)}_percent")) is not None:
        cores.append(core)
    load1 = rows.get("system.load1")
    reasons["load_avg"] = (
        f"only the 1-minute load average is stored (system.load1 = {load1:g})"
        if load1 is not None
        else "the stored snapshot has no load average"
    )
    return SystemFigures(
        ts=ts,
        cpu_percent=value("cpu_percent"),
        cpu_per_core=tuple(cores),
        load_avg=None,
        memory_percent=value("memory_percent"),
        memory_available_bytes=count("memory_available_bytes"),
        memory_pressure=value("memory_pressure"),
        swap_percent=value("swap_percent"),
        disk_read_bytes_per_s=value("disk_read_bytes_per_s"),
        disk_write_bytes_per_s=value("disk_write_bytes_per_s"),
        net_sent_bytes_per_s=value("net_sent_bytes_per_s"),
        net_recv_bytes_per_s=value("net_recv_bytes_per_s"),
        net_errors_per_s=value("net_errors_per_s"),
        net_drops_per_s=value("net_drops_per_s"),
        process_rss_bytes=count("process_rss_bytes"),
        process_threads=count("process_threads"),
        process_fds=count("process_fds"),
        reasons=reasons,
    )


def snapshots(rows: Iterable[MetricRow]) -> dict[float, dict[str, float | None]]:
    """Stored metric rows grouped into snapshots by time (downsampling companions left out)."""
    grouped: dict[float, dict[str, float | None]] = {}
    for row in rows:
        if "#" not in row.name:
            grouped.setdefault(row.ts, {})[row.name] = row.value
    return grouped


class StoreAgentsCollector:
    """A swarm's figures, computed from the task results its latest run stored so far.

    Works for a swarm running in another process: the runner saves results as they finish.
    The window is the last `window_s` seconds of the run's own clock (up to the latest
    finished task), so a finished run is described as it ended.
    """

    def __init__(self, store: Store, swarm_id: str, window_s: float) -> None:
        if not window_s > 0:
            raise ConfigError("window", window_s, "Use a duration > 0, e.g. 30s.")
        self._store = store
        self.swarm_id = swarm_id
        self.window_s = window_s

    def sample(self) -> tuple[int, SwarmFigures] | None:
        """(run id, figures) of the swarm's latest run; None when it has no run yet."""
        run = self._store.latest_run(self.swarm_id)
        if run is None:
            return None
        return run.id, run_figures(self._store, run.id, window_s=self.window_s)

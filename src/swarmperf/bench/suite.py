"""Runs a benchmark suite against a target and turns what was measured into a `SuiteResult`.

Targets: a swarm built from a swarm spec (default: the demo spec's agents on its backend), a
Python callable named `module:function`, or an HTTP URL. Each scenario gets a fresh target,
so one scenario's backlog or learned state does not leak into the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil

from swarmperf.app.workload import FAIL_KIND
from swarmperf.bench.environment import capture_environment
from swarmperf.bench.error_patterns import Slices
from swarmperf.bench.loadgen import (
    REQUEST_TIMEOUT,
    CallableTarget,
    HttpTarget,
    LiveCounts,
    RawIteration,
    Stage,
    SwarmTarget,
    Target,
    arrival_offsets,
    run_closed,
    run_open,
    steady,
)
from swarmperf.bench.results import (
    SCHEMA_VERSION,
    Environment,
    ErrorRecord,
    IterationResult,
    ScenarioResult,
    SuiteResult,
)
from swarmperf.bench.scenarios import (
    EnduranceScenario,
    LoadScenario,
    Overrides,
    RunSettings,
    SpikeScenario,
    StressScenario,
    SuiteSpec,
    VolumeScenario,
    run_settings,
)
from swarmperf.core.errors import ConfigError
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.core.latency import LatencySummary
from swarmperf.core.model import Task
from swarmperf.core.redact import redact_url
from swarmperf.spec import SwarmSpec, demo_spec
from swarmperf.store import Store

Floats = npt.NDArray[np.float64]
TargetFactory = Callable[[Any], Target]
RESERVOIR_SIZE = 10_000
# Below these an iteration gets a note: the generator, not the target, may be the limit.
HELD_RATIO = 0.99
HELD_LAG_P99 = 0.010
PROGRESS_EVERY = 0.2


@dataclass(frozen=True, slots=True)
class SuiteProgress:
    """Where a suite run is, for progress displays. Seconds are planned seconds."""

    suite: str
    scenario: str
    phase: str
    done_s: float
    total_s: float
    sent: int
    failed: int


ProgressFn = Callable[[SuiteProgress], None]


# -- targets -----------------------------------------------------------------------------------


def make_target_factory(
    target: str | None = None,
    spec: SwarmSpec | None = None,
    handlers: HandlerRegistry | None = None,
    scenarios: Sequence[Any] = (),
    request_timeout: float | None = None,
) -> tuple[TargetFactory, str]:
    """A factory that makes a fresh target per scenario, and a description of it.

    `target`: an http(s) URL or `module:function`; None: a swarm from `spec` (default: the
    demo spec). `scenarios` are checked against the target now (a swarm: their task kinds),
    so a mistake in the last scenario does not surface after the others have run.
    `request_timeout`: how long an HTTP request may wait for its answer (default
    `REQUEST_TIMEOUT`); only an HTTP target has requests to give up on.
    """
    if target is not None and spec is not None:
        raise ConfigError(
            "--target",
            redact_url(target),
            "Give either --target or --spec, not both: --spec is a swarm.",
        )
    is_http = target is not None and target.startswith(("http://", "https://"))
    if request_timeout is not None and not is_http:
        raise ConfigError(
            "--request-timeout",
            request_timeout,
            "It applies to an http(s):// --target only; leave it out for a swarm or a callable.",
        )
    if request_timeout is not None and not (request_timeout > 0 and math.isfinite(request_timeout)):
        raise ConfigError("--request-timeout", request_timeout, "Use a duration > 0, e.g. 5s.")
    if target is None:
        return _swarm_factory(spec or healthy_demo_spec(), handlers or HandlerRegistry(), scenarios)
    if is_http:
        url = target
        timeout = REQUEST_TIMEOUT if request_timeout is None else request_timeout

        def http(scenario: Any) -> Target:
            size = scenario.payload_bytes
            if size:
                return HttpTarget(url, method="POST", body=bytes(size), timeout=timeout)
            return HttpTarget(url, timeout=timeout)

        # Validates the URL now, not in the middle of the suite.
        return http, HttpTarget(url, timeout=timeout).description
    fn = import_callable(target)

    def call(scenario: Any) -> Target:
        size = scenario.payload_bytes
        return CallableTarget(fn, payload=bytes(size) if size else None, name=target)

    return call, target


def healthy_demo_spec() -> SwarmSpec:
    """The default target: the demo swarm without the 1% of tasks it fails on purpose.

    A first benchmark of a healthy swarm should pass the default SLA; the demo's own spec
    (`swarmperf demo-spec > swarm.yaml`, then `--spec swarm.yaml`) keeps the planted
    failures, to show the gate failing.
    """
    spec = demo_spec()
    healthy = spec.workload.model_copy(update={"failure_rate": 0.0})
    return spec.model_copy(update={"workload": healthy})


def import_callable(reference: str) -> Callable[..., Any]:
    """The callable named `module:function` (dots after the colon reach attributes)."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(
            "--target",
            reference,
            "Use an http(s):// URL or a callable as module:function, e.g. mypkg.api:handle.",
        )
    # As `python -m` does, the current directory comes first on the import path: a module
    # beside the user is found without PYTHONPATH=. (a console script's path has the script's
    # own directory instead).
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            "--target", reference, f"Module {module_name!r} cannot be imported ({exc})."
        ) from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ConfigError(
                "--target", reference, f"{module_name!r} has no attribute {attribute!r}."
            )
        found = getattr(found, part)
    if not callable(found):
        raise ConfigError("--target", reference, "It is not callable: name a function.")
    result: Callable[..., Any] = found
    return result


def _swarm_factory(
    spec: SwarmSpec, handlers: HandlerRegistry, scenarios: Sequence[Any] = ()
) -> tuple[TargetFactory, str]:
    from swarmperf.app.backends import BACKENDS, backend_entry
    from swarmperf.app.build import build_swarm
    from swarmperf.app.workload import draw_sizes

    if backend_entry(spec.backend).virtual_time:
        real = [entry.name for entry in BACKENDS.values() if not entry.virtual_time]
        raise ConfigError(
            "backend",
            spec.backend,
            f"Load tests need real time: use a spec with backend {', '.join(real[:-1])} "
            f"or {real[-1]}.",
        )
    if spec.strategy == "auto":
        raise ConfigError("strategy", "auto", "Name one strategy in the spec for a load test.")

    def kind_of(scenario: Any) -> str:
        kind: str = scenario.task_kind or ("echo" if scenario.payload_bytes else spec.workload.kind)
        if kind not in handlers:
            raise ConfigError(
                f"{scenario.name}.task_kind",
                kind,
                f"Use a registered task kind: {', '.join(sorted(handlers))}.",
            )
        return kind

    for scenario in scenarios:
        kind_of(scenario)

    def make(scenario: Any) -> Target:
        size = scenario.payload_bytes
        kind = kind_of(scenario)
        payloads: Callable[[int], Any] | None = None
        tasks: Callable[[int], Task] | None = None
        if size:
            body = bytes(size)
            payloads = lambda _i: body  # noqa: E731
        elif kind == spec.workload.kind:
            # The spec's own work: its sizes, failure rate and cost estimates, as a run draws them.
            tasks = _WorkloadStream(spec, scenario.seed, draw_sizes)
        swarm = build_swarm(spec, handlers, keep_results=False)
        return SwarmTarget(
            swarm,
            kind,
            payloads,
            owned=True,
            description=f"swarm:{spec.swarm_id}:{kind}",
            tasks=tasks,
        )

    return make, f"swarm {spec.swarm_id!r} ({spec.backend}, {len(spec.agent_specs())} agents)"


class _WorkloadStream:
    """Tasks drawn as the spec's workload draws them (`workload.generate_tasks`): sizes from
    its distribution, a share `failure_rate` of failing tasks (kind `fail`, no work), and
    costs when `cost_estimates` is on; seeded, in blocks."""

    BLOCK = 4096

    def __init__(self, spec: SwarmSpec, seed: int, draw: Callable[..., Floats]) -> None:
        self._workload = spec.workload
        self._size_rng, self._fail_rng = np.random.default_rng(seed).spawn(2)
        self._draw = draw
        self._sizes: list[float] = []
        self._failing: list[bool] = []
        self._at = 0

    def __call__(self, _index: int) -> Task:
        workload = self._workload
        if self._at >= len(self._sizes):
            self._sizes = self._draw(workload.size, self.BLOCK, self._size_rng).tolist()
            self._failing = (self._fail_rng.random(self.BLOCK) < workload.failure_rate).tolist()
            self._at = 0
        size, fails = self._sizes[self._at], self._failing[self._at]
        self._at += 1
        cost = (0.0 if fails else size) if workload.cost_estimates else None
        if fails:
            return Task(FAIL_KIND, None, cost=cost)
        return Task(workload.kind, size, cost=cost)


# -- figures -----------------------------------------------------------------------------------


def latency_summary(values: Floats) -> LatencySummary:
    if len(values) == 0:
        return LatencySummary(count=0)
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99]).tolist()
    return LatencySummary(
        count=len(values),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        max=float(values.max()),
        mean=float(values.mean()),
        min=float(values.min()),
    )


def _p99(values: Floats) -> float | None:
    return float(np.percentile(values, 99)) if len(values) else None


@dataclass(frozen=True, slots=True)
class _Counts:
    asked: int
    sent: int
    failed: int
    succeeded: int
    dropped: int
    duration_s: float


def _counts(raw: RawIteration) -> _Counts:
    sent_mask = raw.sent_mask
    sent = int(sent_mask.sum())
    unanswered = int((np.isnan(raw.finished) & sent_mask).sum())
    failed = len(raw.failures) + unanswered
    ends = raw.finished[~np.isnan(raw.finished)]
    last = float(ends.max()) if len(ends) else 0.0
    return _Counts(
        asked=raw.asked,
        sent=sent,
        failed=failed,
        succeeded=sent - failed,
        dropped=raw.asked - sent,
        duration_s=max(raw.scheduled_s, last) if raw.until_settled else raw.scheduled_s,
    )


def iteration_result(raw: RawIteration, index: int) -> IterationResult:
    """One iteration's figures, all measured from `raw`."""
    c = _counts(raw)
    return IterationResult(
        index=index,
        started_at=raw.started_at,
        duration_s=c.duration_s,
        asked=c.asked,
        completed=c.sent,
        succeeded=c.succeeded,
        failed=c.failed,
        dropped=c.dropped,
        throughput_per_s=c.succeeded / c.duration_s if c.duration_s > 0 else None,
        error_rate=c.failed / c.sent if c.sent else None,
        latency=latency_summary(raw.latencies()),
        lag_p99_s=_p99(raw.lags()) if raw.model == "open" else None,
    )


def _error_records(raws: list[RawIteration], drain_timeout: float) -> list[ErrorRecord]:
    seen: dict[tuple[str, str], list[float]] = {}
    # Each error's times and when every sent request settled: its counts per slice of the
    # scenario, which is what the error's trend needs.
    times: dict[tuple[str, str], list[float]] = {}
    settled: list[Floats] = []
    for raw in raws:
        settled.append(raw.started_at + raw.finished[~np.isnan(raw.finished)])
        for index, (kind, message) in raw.failures.items():
            at = raw.started_at + float(raw.finished[index])
            entry = seen.setdefault((kind, message), [0, at, at])
            entry[0] += 1
            entry[1] = min(entry[1], at)
            entry[2] = max(entry[2], at)
            times.setdefault((kind, message), []).append(at)
        unanswered = np.isnan(raw.finished) & raw.sent_mask
        if unanswered.any():
            message = f"no answer within {drain_timeout:g}s after the iteration's schedule"
            at = raw.started_at + raw.scheduled_s + drain_timeout
            entry = seen.setdefault(("NoAnswer", message), [0, at, at])
            entry[0] += int(unanswered.sum())
            entry[2] = max(entry[2], at)
            settled.append(np.full(int(unanswered.sum()), at))
            times.setdefault(("NoAnswer", message), []).extend([at] * int(unanswered.sum()))
    slices = Slices.of(np.concatenate(settled)) if settled else None
    return sorted(
        (
            ErrorRecord(
                type=k,
                message=m,
                count=int(n),
                first_seen=first,
                last_seen=last,
                counts_by_slice=[] if slices is None else slices.count(times[(k, m)]),
                tasks_by_slice=[] if slices is None else list(slices.tasks),
            )
            for (k, m), (n, first, last) in seen.items()
        ),
        key=lambda r: -r.count,
    )


class _Reservoir:
    """A seeded uniform sample of at most `size` values: each value gets a random key and the
    smallest keys are kept (a bottom-k sample), so batches merge without keeping them all."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.keys: Floats = np.zeros(0)
        self.values: Floats = np.zeros(0)

    def add(self, values: Floats) -> None:
        keys = np.concatenate([self.keys, self.rng.random(len(values))])
        pooled = np.concatenate([self.values, values])
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            keys, pooled = keys[keep], pooled[keep]
        self.keys, self.values = keys, pooled


def _asked_rate(raw: RawIteration) -> float | None:
    return raw.asked / raw.scheduled_s if raw.scheduled_s > 0 else None


def _iteration_notes(raw: RawIteration, label: str) -> list[str]:
    notes = []
    if raw.model == "open" and raw.scheduled_s > 0:
        # With everything due at once (a volume burst) lag is queueing, not falling behind.
        ratio = raw.achieved_ratio()
        rate = _asked_rate(raw)
        if ratio is not None and rate is not None and ratio < HELD_RATIO:
            notes.append(f"{label}: could not hold the asked rate: {ratio:.2f} of {rate:,.0f}/s")
        lag = _p99(raw.lags())
        if lag is not None and lag > HELD_LAG_P99:
            notes.append(
                f"{label}: the generator fell behind its schedule: lag p99 {lag * 1e3:.1f} ms"
            )
        if raw.dropped:
            notes.append(f"{label}: {raw.dropped} request(s) dropped, not sendable on time")
    if raw.unanswered:
        notes.append(f"{label}: {raw.unanswered} request(s) unanswered after the drain timeout")
    return notes


def _finish(
    scenario: Any,
    settings: RunSettings,
    target: str,
    raws: list[RawIteration],
    iterations: list[IterationResult],
    extra: dict[str, Any],
    notes: list[str],
) -> ScenarioResult:
    latencies = [raw.latencies() for raw in raws]
    pooled = np.concatenate(latencies) if latencies else np.zeros(0)
    lags = [raw.lags() for raw in raws if raw.model == "open"]
    counts = [_counts(raw) for raw in raws]
    succeeded = sum(c.succeeded for c in counts)
    sent = sum(c.sent for c in counts)
    seconds = sum(c.duration_s for c in counts)
    ratios = [r for r in (raw.achieved_ratio() for raw in raws) if r is not None]
    lat = latency_summary(pooled)
    summary: dict[str, float | None] = {
        "throughput_per_s": succeeded / seconds if seconds > 0 else None,
        "error_rate": sum(c.failed for c in counts) / sent if sent else None,
        "latency_p50_s": lat.p50,
        "latency_p90_s": lat.p90,
        "latency_p95_s": lat.p95,
        "latency_p99_s": lat.p99,
        "latency_max_s": lat.max,
        "latency_mean_s": lat.mean,
        "latency_min_s": lat.min,
        "achieved_ratio": float(np.mean(ratios)) if ratios and raws[0].model == "open" else None,
        "lag_p99_s": _p99(np.concatenate(lags)) if lags else None,
    }
    samples: dict[str, list[float]] = {}
    for it, raw in zip(iterations, raws, strict=True):
        ratio = raw.achieved_ratio() if raw.model == "open" else None
        for name, value in (
            ("throughput_per_s", it.throughput_per_s),
            ("error_rate", it.error_rate),
            ("latency_p50_s", it.latency.p50),
            ("latency_p95_s", it.latency.p95),
            ("latency_p99_s", it.latency.p99),
            ("achieved_ratio", ratio),
            ("lag_p99_s", it.lag_p99_s),
        ):
            if value is not None:
                samples.setdefault(name, []).append(value)
    reservoir = _Reservoir(RESERVOIR_SIZE, scenario.seed)
    for values in latencies:
        reservoir.add(values)
    asked = sum(c.asked for c in counts)
    if asked and succeeded == 0:
        notes.append(f"every request failed: none of {asked:,} succeeded")
    for name in ("latency_p99_s", "throughput_per_s"):
        if summary[name] is None:
            notes.append(f"{name}: not measured, no request succeeded")
    data = scenario.model_dump(mode="json")
    data.update(
        duration=settings.duration,
        iterations=settings.iterations,
        warmup=settings.warmup,
        cooldown=settings.cooldown,
    )
    return ScenarioResult(
        name=scenario.name,
        kind=scenario.kind,
        target=target,
        settings=data,
        iterations=iterations,
        summary=summary,
        samples=samples,
        latency_samples_s=reservoir.values.tolist(),
        errors=_error_records(raws, scenario.drain_timeout),
        extra=extra,
        notes=notes,
    )


# -- running -----------------------------------------------------------------------------------


class _Tracker:
    """Planned-seconds progress across a whole suite, reported every PROGRESS_EVERY."""

    def __init__(self, suite: str, total_s: float, listener: ProgressFn | None) -> None:
        self.suite = suite
        self.total_s = total_s
        self.listener = listener
        self.done_s = 0.0
        self.scenario = ""
        self.phase = ""
        self.phase_s = 0.0
        self.phase_start = time.monotonic()
        self.live = LiveCounts()
        self.sent_before = 0
        self.failed_before = 0

    def begin(self, scenario: str, phase: str, planned_s: float) -> LiveCounts:
        self.end()
        self.scenario, self.phase, self.phase_s = scenario, phase, planned_s
        self.phase_start = time.monotonic()
        self.live = LiveCounts()
        self.report()
        return self.live

    def end(self) -> None:
        self.live.refresh()
        self.sent_before += self.live.sent
        self.failed_before += self.live.failed
        self.live = LiveCounts()
        self.done_s += self.phase_s
        self.phase_s = 0.0

    def report(self) -> None:
        if self.listener is None:
            return
        live = self.live.refresh()
        within = min(time.monotonic() - self.phase_start, self.phase_s)
        self.listener(
            SuiteProgress(
                self.suite,
                self.scenario,
                self.phase,
                min(self.done_s + within, self.total_s),
                self.total_s,
                self.sent_before + live.sent,
                self.failed_before + live.failed,
            )
        )

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            self.report()


def planned_seconds(scenario: Any, settings: RunSettings) -> float:
    """How long a scenario is scheduled to take (answers may take longer)."""
    iterations = settings.iterations
    between = settings.cooldown * max(iterations - 1, 0)
    match scenario:
        case LoadScenario():
            one = settings.duration + scenario.ramp_up + scenario.ramp_down
            return settings.warmup + one * iterations + between
        case StressScenario():
            steps = len(scenario.rates())
            step = scenario.step_duration or settings.duration
            return settings.warmup + steps * step + settings.cooldown * (steps - 1)
        case VolumeScenario():
            stages = scenario.stages()
            one = 0.0 if stages is None else sum(s.duration for s in stages)
            return settings.warmup + one * iterations + between
        case EnduranceScenario():
            return settings.warmup + settings.duration
        case SpikeScenario():
            one = scenario.before + scenario.spike + scenario.after
            return settings.warmup + one * iterations + between
    raise TypeError(f"Unknown scenario: {scenario!r}")


async def run_suite(
    suite: SuiteSpec,
    make_target: TargetFactory,
    *,
    target_description: str = "target",
    overrides: Overrides | None = None,
    on_progress: ProgressFn | None = None,
    environment: Environment | None = None,
) -> SuiteResult:
    """Run every scenario of `suite`, one after the other, each on a fresh target."""
    overrides = overrides or Overrides()
    plans = [(s, run_settings(s, suite.defaults, overrides)) for s in suite.scenarios]
    env = environment if environment is not None else await asyncio.to_thread(capture_environment)
    tracker = _Tracker(suite.suite, sum(planned_seconds(s, p) for s, p in plans), on_progress)
    ticker = asyncio.create_task(tracker.tick())
    started_at = time.time()
    results: list[ScenarioResult] = []
    try:
        for scenario, settings in plans:
            target = make_target(scenario)
            description = getattr(target, "description", target_description)
            await target.open()
            try:
                results.append(await _run_scenario(scenario, settings, target, tracker))
            finally:
                await target.close()
            results[-1] = results[-1].model_copy(update={"target": description})
        tracker.end()
        tracker.report()
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    return SuiteResult(
        schema_version=SCHEMA_VERSION,
        suite=suite.suite,
        started_at=started_at,
        finished_at=time.time(),
        environment=env,
        scenarios=results,
    )


async def run_scenario(
    scenario: Any,
    settings: RunSettings,
    target: Target,
    on_progress: ProgressFn | None = None,
) -> ScenarioResult:
    """Run one scenario on an opened `target`."""
    tracker = _Tracker("", planned_seconds(scenario, settings), on_progress)
    result = await _run_scenario(scenario, settings, target, tracker)
    return result.model_copy(update={"target": target.description})


async def _run_scenario(
    scenario: Any, settings: RunSettings, target: Target, tracker: _Tracker
) -> ScenarioResult:
    match scenario:
        case StressScenario():
            return await _stress(scenario, settings, target, tracker)
        case EnduranceScenario():
            return await _endurance(scenario, settings, target, tracker)
        case SpikeScenario():
            return await _spike(scenario, settings, target, tracker)
    return await _repeated(scenario, settings, target, tracker)


async def _open(
    target: Target,
    scenario: Any,
    stages: list[Stage] | None,
    seed: int,
    live: LiveCounts,
    tasks: int = 0,
) -> RawIteration:
    """One open-model run over `stages` (None: `tasks` requests all due at once)."""
    if stages is None:
        offsets: Floats = np.zeros(tasks)
        scheduled = 0.0
    else:
        offsets = arrival_offsets(stages, scenario.arrival, np.random.default_rng(seed))
        scheduled = sum(s.duration for s in stages)
    return await run_open(
        target,
        offsets,
        max_lag=scenario.max_lag,
        drain_timeout=scenario.drain_timeout,
        scheduled_s=scheduled,
        live=live,
        spin=scenario.pacing == "precise",
    )


def _iteration_seed(scenario: Any, index: int) -> int:
    # Distinct, reproducible streams per iteration; the warm-up is index -1.
    seed: int = scenario.seed
    return seed * 1_000_003 + index + 1


async def _warmup(scenario: Any, settings: RunSettings, target: Target, tracker: _Tracker) -> None:
    """Unmeasured load first, so caches, pools and learned speeds are in their steady state."""
    if settings.warmup <= 0:
        return
    live = tracker.begin(scenario.name, "warm-up", settings.warmup)
    seed = _iteration_seed(scenario, -1)
    match scenario:
        case LoadScenario(model="closed"):
            assert scenario.users is not None
            await run_closed(
                target,
                scenario.users,
                settings.warmup,
                think=scenario.think,
                think_distribution=scenario.think_distribution,
                seed=seed,
                drain_timeout=scenario.drain_timeout,
                live=live,
            )
            return
        case LoadScenario(rate=rate) | EnduranceScenario(rate=rate) if rate is not None:
            stages = steady(settings.warmup, rate)
        case StressScenario():
            stages = steady(settings.warmup, scenario.start_rate)
        case SpikeScenario():
            stages = steady(settings.warmup, scenario.baseline_rate)
        case VolumeScenario(rate=rate) if rate is not None:
            stages = steady(settings.warmup, rate)
        case VolumeScenario():
            # No rate to hold: warm up with a tenth of the tasks at once.
            await _open(target, scenario, None, seed, live, max(1, scenario.tasks // 10))
            return
        case _:
            return
    await _open(target, scenario, stages, seed, live)


async def _cooldown(scenario: Any, settings: RunSettings, tracker: _Tracker) -> None:
    if settings.cooldown > 0:
        tracker.begin(scenario.name, "cool-down", settings.cooldown)
        await asyncio.sleep(settings.cooldown)


async def _repeated(
    scenario: LoadScenario | VolumeScenario,
    settings: RunSettings,
    target: Target,
    tracker: _Tracker,
) -> ScenarioResult:
    """Load and volume: the same run, `iterations` times, with a cool-down between."""
    await _warmup(scenario, settings, target, tracker)
    raws: list[RawIteration] = []
    notes: list[str] = []
    per_iteration = planned_seconds(scenario, RunSettings(settings.duration, 1, 0.0, 0.0))
    for i in range(settings.iterations):
        if i:
            await _cooldown(scenario, settings, tracker)
        label = f"iteration {i + 1}/{settings.iterations}"
        live = tracker.begin(scenario.name, label, per_iteration)
        seed = _iteration_seed(scenario, i)
        if isinstance(scenario, VolumeScenario):
            raw = await _open(target, scenario, scenario.stages(), seed, live, scenario.tasks)
        elif scenario.model == "closed":
            assert scenario.users is not None
            raw = await run_closed(
                target,
                scenario.users,
                settings.duration,
                think=scenario.think,
                think_distribution=scenario.think_distribution,
                seed=seed,
                drain_timeout=scenario.drain_timeout,
                live=live,
            )
        else:
            raw = await _open(target, scenario, scenario.stages(settings.duration), seed, live)
        raws.append(raw)
        notes += _iteration_notes(raw, label)
    iterations = [iteration_result(raw, i) for i, raw in enumerate(raws)]
    extra: dict[str, Any] = {"model": scenario.model}
    if isinstance(scenario, VolumeScenario):
        extra["tasks"] = scenario.tasks
        if scenario.payload_bytes:
            extra["payload_bytes"] = scenario.payload_bytes
            extra["bytes_per_s"] = [
                None
                if it.throughput_per_s is None
                else it.throughput_per_s * scenario.payload_bytes
                for it in iterations
            ]
    elif scenario.model == "closed":
        extra.update(users=scenario.users, think_s=scenario.think)
    return _finish(scenario, settings, "", raws, iterations, extra, notes)


def _broken(raw: RawIteration, it: IterationResult, scenario: StressScenario) -> list[str]:
    """Which breaking criteria this step meets, in words."""
    rule = scenario.break_when
    reasons = []
    p99 = it.latency.p99
    if rule.p99 is not None and (p99 is None or p99 > rule.p99):
        shown = "nothing succeeded" if p99 is None else f"{p99 * 1e3:.1f} ms"
        reasons.append(f"p99 latency {shown} > {rule.p99 * 1e3:g} ms")
    errors = it.error_rate
    if rule.error_rate is not None and errors is not None and errors > rule.error_rate:
        reasons.append(f"error rate {errors:.3f} > {rule.error_rate:g}")
    ratio = raw.achieved_ratio()
    if rule.achieved_below is not None and ratio is not None and ratio < rule.achieved_below:
        reasons.append(f"achieved/asked {ratio:.3f} < {rule.achieved_below:g}")
    return reasons


async def _stress(
    scenario: StressScenario, settings: RunSettings, target: Target, tracker: _Tracker
) -> ScenarioResult:
    """Step the rate up until a breaking criterion holds; each step is one iteration."""
    await _warmup(scenario, settings, target, tracker)
    step_s = scenario.step_duration or settings.duration
    raws: list[RawIteration] = []
    iterations: list[IterationResult] = []
    curve: list[dict[str, Any]] = []
    notes: list[str] = []
    breaking: dict[str, Any] | None = None
    held: float | None = None
    for i, rate in enumerate(scenario.rates()):
        if i:
            await _cooldown(scenario, settings, tracker)
        label = f"step {i + 1} ({rate:,.0f}/s)"
        live = tracker.begin(scenario.name, label, step_s)
        seed = _iteration_seed(scenario, i)
        raw = await _open(target, scenario, steady(step_s, rate), seed, live)
        it = iteration_result(raw, i)
        raws.append(raw)
        iterations.append(it)
        notes += _iteration_notes(raw, label)
        curve.append(
            {
                "asked_rate_per_s": rate,
                "achieved_ratio": raw.achieved_ratio(),
                "throughput_per_s": it.throughput_per_s,
                "latency_p50_s": it.latency.p50,
                "latency_p99_s": it.latency.p99,
                "error_rate": it.error_rate,
                "lag_p99_s": it.lag_p99_s,
            }
        )
        reasons = _broken(raw, it, scenario)
        if reasons:
            breaking = {"asked_rate_per_s": rate, "step": i, "reasons": reasons}
            break
        held = rate
    if breaking is None:
        notes.append(f"did not break up to max_rate {scenario.max_rate:,.0f}/s")
    elif held is None:
        notes.append("broke at the first step: lower start_rate to find the limit")
    extra = {"breaking_point": breaking, "max_rate_held_per_s": held, "curve": curve}
    result = _finish(scenario, settings, "", raws, iterations, extra, notes)
    result.summary["max_rate_held_per_s"] = held
    result.summary["breaking_rate_per_s"] = (
        None if breaking is None else breaking["asked_rate_per_s"]
    )
    if held is not None:
        result.samples["max_rate_held_per_s"] = [held]
    return result


class _MemorySampler:
    """Resident memory of this process and its children (process-backend workers)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.rss: list[float] = []
        self._process = psutil.Process()

    def sample(self, t: float) -> None:
        total = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        self.times.append(t)
        self.rss.append(float(total))

    async def run(self, every: float, start: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.sample(loop.time() - start)
            await asyncio.sleep(every)


def _slope(x: list[float], y: list[float]) -> tuple[float, float] | None:
    """Least-squares slope and its two-sided p-value (scipy), or None with < 3 points."""
    from scipy import stats

    if len(x) < 3 or len(set(x)) < 2:
        return None
    fit = stats.linregress(x, y)
    p = float(fit.pvalue)
    return float(fit.slope), (1.0 if math.isnan(p) else p)


async def _endurance(
    scenario: EnduranceScenario, settings: RunSettings, target: Target, tracker: _Tracker
) -> ScenarioResult:
    """One long run, cut into `iterations` windows; latency drift and memory growth."""
    await _warmup(scenario, settings, target, tracker)
    live = tracker.begin(scenario.name, "run", settings.duration)
    sampler = _MemorySampler()
    loop = asyncio.get_running_loop()
    watch = asyncio.create_task(sampler.run(scenario.memory_every, loop.time()))
    try:
        raw = await _open(
            target,
            scenario,
            steady(settings.duration, scenario.rate),
            _iteration_seed(scenario, 0),
            live,
        )
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    sampler.sample(loop.time() - raw.start)
    width = settings.duration / settings.iterations
    last = settings.iterations - 1
    raws = [
        raw.window(i * width, (i + 1) * width, until_settled=i == last)
        for i in range(settings.iterations)
    ]
    iterations = [iteration_result(w, i) for i, w in enumerate(raws)]
    notes = [n for i, w in enumerate(raws) for n in _iteration_notes(w, f"window {i + 1}")]
    extra: dict[str, Any] = {"window_s": width, "memory_samples": len(sampler.rss)}
    mids = [(i + 0.5) * width for i, it in enumerate(iterations) if it.latency.p50 is not None]
    p50s = [it.latency.p50 for it in iterations if it.latency.p50 is not None]
    drift = _slope(mids, p50s)
    if drift is None:
        notes.append("latency drift: not measured, fewer than 3 windows with answers")
        extra.update(latency_drift_s_per_s=None, latency_drift_p_value=None)
    else:
        extra.update(latency_drift_s_per_s=drift[0], latency_drift_p_value=drift[1])
        extra["latency_drift_relative"] = (
            drift[0] * settings.duration / p50s[0] if p50s[0] > 0 else None
        )
    growth = _slope(sampler.times, sampler.rss)
    extra["rss_start_bytes"] = sampler.rss[0] if sampler.rss else None
    extra["rss_end_bytes"] = sampler.rss[-1] if sampler.rss else None
    if growth is None:
        notes.append("memory growth: not measured, fewer than 3 memory samples")
        extra.update(rss_slope_bytes_per_s=None, rss_p_value=None, leak_suspected=None)
    else:
        slope, p_value = growth
        grown = slope * settings.duration
        floor = max(scenario.leak_min_growth, scenario.leak_min_relative * sampler.rss[0])
        suspected = p_value < 0.01 and grown > floor
        extra.update(
            rss_slope_bytes_per_s=slope,
            rss_growth_bytes=grown,
            rss_p_value=p_value,
            leak_suspected=suspected,
        )
        if suspected:
            notes.append(
                f"memory grew {grown / 2**20:.1f} MiB over the run (p = {p_value:.2g}): "
                "a leak is suspected"
            )
    result = _finish(scenario, settings, "", raws, iterations, extra, notes)
    if drift is not None:
        result.summary["latency_drift_s_per_s"] = drift[0]
    if growth is not None:
        result.summary["rss_slope_bytes_per_s"] = growth[0]
    return result


def recovery_time(
    raw: RawIteration, scenario: SpikeScenario
) -> tuple[float | None, dict[str, Any]]:
    """Seconds from the end of the burst until every later window's p95 latency is within
    the band around the baseline's; None if it never settles within `after`."""
    baseline = raw.window(0.0, scenario.before).latencies()
    detail: dict[str, Any] = {"baseline_p95_s": None, "limit_s": None, "spike_p95_s": None}
    if len(baseline) == 0:
        return None, detail
    base = float(np.percentile(baseline, 95))
    limit = base * (1 + scenario.band)
    spike_end = scenario.before + scenario.spike
    during = raw.window(scenario.before, spike_end).latencies()
    detail.update(
        baseline_p95_s=base,
        limit_s=limit,
        spike_p95_s=float(np.percentile(during, 95)) if len(during) else None,
    )
    last_over: float | None = None
    t = spike_end
    end = spike_end + scenario.after
    settled_any = False
    measured_any = False
    while t < end - 1e-9:
        hi = min(t + scenario.window, end)
        values = raw.window(t, hi).latencies()
        if len(values):
            measured_any = True
            if float(np.percentile(values, 95)) > limit:
                last_over = hi
                settled_any = False
            else:
                settled_any = True
        t = hi
    if not measured_any:
        # No request after the burst succeeded: nothing says latency came back.
        return None, detail
    if last_over is None:
        return 0.0, detail
    if not settled_any:
        return None, detail
    return last_over - spike_end, detail


async def _spike(
    scenario: SpikeScenario, settings: RunSettings, target: Target, tracker: _Tracker
) -> ScenarioResult:
    """Baseline, burst, baseline again, `iterations` times; how long recovery takes."""
    await _warmup(scenario, settings, target, tracker)
    raws: list[RawIteration] = []
    notes: list[str] = []
    recoveries: list[float | None] = []
    details: list[dict[str, Any]] = []
    one = scenario.before + scenario.spike + scenario.after
    for i in range(settings.iterations):
        if i:
            await _cooldown(scenario, settings, tracker)
        label = f"iteration {i + 1}/{settings.iterations}"
        live = tracker.begin(scenario.name, label, one)
        raw = await _open(target, scenario, scenario.stages(), _iteration_seed(scenario, i), live)
        raws.append(raw)
        notes += _iteration_notes(raw, label)
        recovered, detail = recovery_time(raw, scenario)
        recoveries.append(recovered)
        details.append(detail)
        if recovered is None:
            notes.append(f"{label}: latency did not settle within {scenario.after:g}s of the burst")
    iterations = [iteration_result(raw, i) for i, raw in enumerate(raws)]
    measured = [r for r in recoveries if r is not None]
    extra = {"recovery_s": recoveries, "windows": details}
    result = _finish(scenario, settings, "", raws, iterations, extra, notes)
    result.summary["recovery_s"] = (
        float(np.median(measured)) if measured and len(measured) == len(recoveries) else None
    )
    if measured:
        result.samples["recovery_s"] = measured
    # Whether each iteration recovered at all, so that the gate sees a spike the target no
    # longer recovers from (those iterations have no recovery time to compare).
    result.samples["recovery_failed"] = [float(r is None) for r in recoveries]
    result.summary["recovery_failed"] = sum(r is None for r in recoveries) / len(recoveries)
    return result


def every_request_failed(result: SuiteResult) -> str | None:
    """One line saying that no request of the whole suite succeeded, with its commonest
    error; None if any did (or none was asked)."""
    asked = sum(it.asked for s in result.scenarios for it in s.iterations)
    if asked == 0 or any(it.succeeded for s in result.scenarios for it in s.iterations):
        return None
    counts: dict[tuple[str, str], int] = {}
    for scenario in result.scenarios:
        for error in scenario.errors:
            key = (error.type, error.message)
            counts[key] = counts.get(key, 0) + error.count
    line = f"every request failed ({asked:,} of {asked:,})"
    if counts:
        (kind, message), _ = max(counts.items(), key=lambda kv: kv[1])
        line += f"; the commonest error: {kind}: {message}" if message else f": {kind}"
    return line


def store_result(store: Store, result: SuiteResult, swarm_id: str | None = None) -> int:
    """Record `result` in the store's benchmarks, as `suite:<name>`; returns its row id."""
    return store.record_benchmark(f"suite:{result.suite}", result.model_dump(mode="json"), swarm_id)

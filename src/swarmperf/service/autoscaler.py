"""The live autoscaler's shell: it measures a served swarm, asks the policy, and scales.

`Autoscaler` samples the swarm (busy and ready slots, tasks waiting, arrivals, service
times) into `Signals`, hands them every sync period to a `Controller` (the same policy state
machines as the trace replay), adds or removes agents as it decides, and records every
decision under the swarm's decisions (kind `autoscale`). It times every agent start from the
ask to the agent taking work: that measured start-up is what the policies plan with unless
the spec sets one.

`time_scale` runs the policies on a faster clock than the swarm's (policy seconds per swarm
second): a benchmark that compresses a trace sixty-fold keeps the policy's settings in the
trace's seconds. Everything the policy sees (times, service times, start-up) is on that
clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from swarmperf.autoscale.live import (
    DEFAULT_STARTUP,
    Controller,
    Signals,
    Step,
    controller_for,
    horizon_for,
)
from swarmperf.autoscale.policies import Predictive
from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.core.model import AgentSpec, TaskResult
from swarmperf.runtime.swarm import Swarm
from swarmperf.spec.autoscale import LIVE_POLICIES, AutoscaleSpec

log = logging.getLogger("swarmperf.service")

DECISION_KIND = "autoscale"
SAMPLE_EVERY = 0.25  # swarm seconds between readings of the busy and ready slots
STARTS_KEPT = 50  # the latest agent starts the start-up is measured from

AddAgent = Callable[[], Awaitable[AgentSpec]]
Record = Callable[[dict[str, Any], str], Awaitable[int]]


def check_policy(name: str | None) -> str | None:
    if name is not None and name not in LIVE_POLICIES:
        if name == "oracle":
            raise ConfigError(
                "--policy",
                name,
                "The oracle needs the future: it runs in autoscale-eval only. Choose one of: "
                + ", ".join(LIVE_POLICIES)
                + ".",
            )
        raise UnknownName("--policy", name, LIVE_POLICIES)
    return name


class Autoscaler:
    """The autoscaler of one live swarm. `attach()` once the swarm runs, then `enable`,
    `disable`, `preview`, `status`; `stop()` at the end."""

    def __init__(
        self,
        swarm: Swarm,
        settings: AutoscaleSpec | None,
        *,
        add_agent: AddAgent,
        record: Record,
        unfed: Callable[[], int] | None = None,
        time_scale: float = 1.0,
        sample_every: float = SAMPLE_EVERY,
    ) -> None:
        if not time_scale > 0:
            raise ConfigError("time_scale", time_scale, "Use a factor > 0, like 1.")
        self.swarm = swarm
        self.settings = settings if settings is not None else AutoscaleSpec(enabled=False)
        self.time_scale = time_scale
        self.sample_every = sample_every
        self._add_agent = add_agent
        self._record = record
        # Tasks accepted but not yet in the swarm's queue (it was full): they wait too.
        self._unfed = unfed if unfed is not None else (lambda: 0)
        self.controller: Controller | None = None
        self.policy_name: str | None = None
        self.decisions = 0
        self.last: dict[str, Any] | None = None
        self.starts: deque[float] = deque(maxlen=STARTS_KEPT)  # swarm seconds each
        self.starting = 0
        self.draining = 0
        self.agent_area = 0.0  # integral of agents asked for (starting, ready, draining)
        self._origin = 0.0
        self._busy_area = 0.0
        self._slot_area = 0.0
        self._at = 0.0
        self._busy = 0
        self._slots = 0
        self._asked = 0
        self._service_sum = 0.0
        self._finished = 0
        self._history: deque[Signals] = deque()
        # One step at a time: a step runs in a worker thread (it may refit a forecaster,
        # seconds of CPU), and a preview copies the controller it must not see half-changed.
        self._stepping = asyncio.Lock()
        self._sampler: asyncio.Task[None] | None = None
        self._control: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[Any]] = set()

    # -- measuring --------------------------------------------------------------------

    def now(self) -> float:
        """The controller's clock: swarm seconds since `attach`, times `time_scale`."""
        return (self.swarm.clock() - self._origin) * self.time_scale

    def attach(self, start_seconds: float | None = None, started: int = 0) -> None:
        """Begin measuring; `start_seconds` is how long the swarm took to start its
        `started` first agents (their start-up until one is timed here)."""
        self._origin = self._at = self.swarm.clock()
        if start_seconds is not None and started > 0:
            self.starts.append(start_seconds / started)
        self.swarm.on_result(self._on_result)
        self._take_reading()
        self._sampler = asyncio.get_running_loop().create_task(self._sampling())

    def _on_result(self, result: TaskResult) -> None:
        if result.started_at is not None and result.finished_at is not None:
            self._service_sum += result.finished_at - result.started_at
            self._finished += 1

    def _take_reading(self) -> None:
        """Add the time since the last reading to the integrals, at the last reading's
        levels, then read the levels now."""
        t = self.swarm.clock()
        dt = t - self._at
        if dt > 0:
            self._busy_area += self._busy * dt
            self._slot_area += self._slots * dt
            self.agent_area += self._asked * dt
            self._at = t
        busy = slots = 0
        coordinator = self.swarm.coordinator
        for agent in coordinator.agents.values():
            busy += min(agent.in_flight, agent.concurrency)
            slots += agent.concurrency
        self._busy, self._slots = busy, slots
        self._asked = len(coordinator.agents) + self.starting + self.draining

    def signals(self) -> Signals:
        self._take_reading()
        coordinator = self.swarm.coordinator
        ready = len(coordinator.agents)
        scale = self.time_scale
        return Signals(
            time=self.now(),
            ready=ready,
            starting=self.starting,
            busy_area=self._busy_area * scale,
            slot_area=self._slot_area * scale,
            queue=coordinator.pending + self._unfed(),
            arrivals=coordinator.submitted,
            service_sum=self._service_sum * scale,
            finished=self._finished,
            slots=max(1, round(self._slots / ready)) if ready else 1,
        )

    async def _sampling(self) -> None:
        # Read between the swarm's steps, never inside one (a result's listener sees a
        # slot free for the moment before the next task takes it).
        while True:
            every = min(self.sample_every, self._period() / self.time_scale / 20)
            await asyncio.sleep(every)
            reading = self.signals()
            self._history.append(reading)
            # Two sync periods of readings are enough for a preview's baseline.
            keep = 2 * max(self._period(), self.sample_every * self.time_scale)
            while self._history and self._history[0].time < reading.time - keep:
                self._history.popleft()

    def _period(self) -> float:
        return self.controller.policy.period if self.controller is not None else 60.0

    @property
    def startup(self) -> float:
        """Seconds from asking for an agent to its first task, on the controller's clock:
        the spec's, else measured (the median of the latest starts), else 60 s."""
        if self.settings.startup is not None:
            return self.settings.startup
        if self.starts:
            return statistics.median(self.starts) * self.time_scale
        return DEFAULT_STARTUP

    # -- on and off -------------------------------------------------------------------

    def _controller(self, policy: str | None) -> Controller:
        made = controller_for(self.settings, policy=check_policy(policy), startup=self.startup)
        if self._finished:  # the mean so far, until a period has its own
            made.service_time = self._service_sum * self.time_scale / self._finished
        return made

    def enable(self, policy: str | None = None) -> dict[str, Any]:
        """Run `policy` (default: the spec's) from now on, in place of any other."""
        controller = self._controller(policy)
        self.disable()
        self.controller = controller
        self.policy_name = controller.policy.name
        controller.step(self.signals())  # the baseline
        self._control = asyncio.get_running_loop().create_task(self._controlling(controller))
        return self.status()

    def disable(self) -> bool:
        """Stop deciding; agents stay as they are. Whether it was on."""
        was_on = self._control is not None
        if self._control is not None:
            self._control.cancel()
            self._control = None
        self.controller = None
        self.policy_name = None
        return was_on

    @property
    def on(self) -> bool:
        return self._control is not None

    async def stop(self) -> None:
        self.disable()
        tasks = [t for t in (self._sampler, *self._jobs) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._sampler = None

    async def preview(self, policy: str | None = None) -> dict[str, Any]:
        """What the policy would decide now, with its inputs; changes nothing. The running
        controller's when it runs that policy, else a new one's over the last period."""
        name = check_policy(policy)
        async with self._stepping:
            running = self.controller
            now = self.signals()
            if running is not None and name in (None, running.policy.name):
                step = await asyncio.to_thread(running.preview, now)
            else:
                fresh = self._controller(name)
                period = fresh.policy.period
                earlier = [s for s in self._history if s.time <= now.time - period]
                base = earlier[-1] if earlier else (self._history[0] if self._history else None)
                if base is None or base.time >= now.time:
                    base = Signals(0.0, now.ready, 0, 0.0, 0.0, now.queue, 0, 0.0, 0, now.slots)
                fresh.step(base)
                step = await asyncio.to_thread(fresh.step, now)
        assert step is not None  # a baseline was given
        return self._record_of(step)

    def status(self) -> dict[str, Any]:
        measured = statistics.median(self.starts) if self.starts else None
        return {
            "on": self.on,
            "policy": self.policy_name,
            "default_policy": self.settings.policy,
            "mode": self.settings.mode,
            "min_agents": self.settings.min_agents,
            "max_agents": self.settings.max_agents,
            "period_s": None if self.controller is None else self.controller.policy.period,
            "startup_s": self.startup,
            "startup_measured_s": measured,
            "starts_measured": len(self.starts),
            "decisions": self.decisions,
            "last": self.last,
        }

    # -- deciding ---------------------------------------------------------------------

    async def _controlling(self, controller: Controller) -> None:
        period = controller.policy.period / self.time_scale
        loop = asyncio.get_running_loop()
        due = loop.time() + period
        while True:
            await asyncio.sleep(max(due - loop.time(), 0.0))
            due += period
            policy = controller.policy
            async with self._stepping:
                if isinstance(policy, Predictive) and self.settings.startup is None:
                    # Plan over the start-up measured so far.
                    policy.horizon = horizon_for(self.startup, policy.interval)
                # A step may refit the forecaster (0.5 s of CPU for Holt-Winters on four days
                # of minutes, 2 s for the combination): off the loop, which keeps serving.
                step = await asyncio.to_thread(controller.step, self.signals())
            if step is None:
                continue
            try:
                self._apply(step)
                record = self._record_of(step)
                self.last = record
                self.decisions += 1
                await self._record(record, _reason(step))
            except Exception as exc:  # a failed step must not end the autoscaler
                log.error("autoscaler: a decision failed: %r", exc)

    def _record_of(self, step: Step) -> dict[str, Any]:
        record = step.as_record(self.startup)
        record["bounds"] = [self.settings.min_agents, self.settings.max_agents]
        record["mode"] = self.settings.mode
        return record

    def _apply(self, step: Step) -> None:
        if not step.acts:
            return
        current = step.observation.replicas
        if step.desired > current:
            for _ in range(step.desired - current):
                self._spawn(self._start_one())
        else:
            for agent_id in self._to_remove(current - step.desired):
                self._spawn(self._remove_one(agent_id))

    def _to_remove(self, count: int) -> list[str]:
        """Idle agents first, then the least busy; the newest first among equals. The
        last serving agent stays (agents still starting may never come up)."""
        agents = list(self.swarm.coordinator.agents.values())
        order = sorted(enumerate(agents), key=lambda pair: (pair[1].in_flight, -pair[0]))
        return [agent.id for _, agent in order[: min(count, len(agents) - 1)]]

    async def _start_one(self) -> None:
        self.starting += 1
        self._take_reading()
        began = self.swarm.clock()
        try:
            await self._add_agent()
            self.starts.append(self.swarm.clock() - began)
        finally:
            self.starting -= 1
            self._take_reading()

    async def _remove_one(self, agent_id: str) -> None:
        # Its queued tasks go back to the line; its running ones finish (nothing is lost);
        # it is paid for until they have.
        self.draining += 1
        try:
            await self.swarm.remove_agent(agent_id)
        finally:
            self.draining -= 1
            self._take_reading()

    def _spawn(self, coro: Awaitable[None]) -> None:
        job = asyncio.ensure_future(coro)
        self._jobs.add(job)
        job.add_done_callback(self._done)

    def _done(self, job: asyncio.Task[Any]) -> None:
        self._jobs.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.error("autoscaler: a scaling step failed: %r", job.exception())


def _reason(step: Step) -> str:
    """One line: what was decided, from what raw recommendation, and what limited it."""
    d = step.decision
    current = step.observation.replicas
    if step.forecast_only:
        what = f"forecast only: would run {d.desired}, runs {current}"
    elif step.acts:
        what = f"{current} -> {step.desired} agents"
    else:
        what = f"keeps {current} agents"
    why = f": {d.limited_by}" if d.limited_by else ""
    return f"{d.policy}: {what} (raw {d.raw}{why})"

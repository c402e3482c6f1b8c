"""The live autoscaler's decisions: measured signals in, the policy's bounded decision out.

The shell that samples a served swarm and adds or removes its agents is
`swarmperf.service.autoscaler`; everything it decides goes through `Controller`, an I/O-free
state machine around the same policy objects the trace replay runs
(`swarmperf.autoscale.policies`). Time comes in with each call, on whatever clock the shell
uses (the swarm's, or a faster one when a benchmark compresses a trace).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from swarmperf.autoscale.forecast import make_forecaster, scaling_forecaster
from swarmperf.autoscale.learned import (
    DEFAULT_MODEL,
    Learned,
    feed_forecaster,
    predictive_feed,
    weights_for,
)
from swarmperf.autoscale.policies import (
    HPA,
    Decision,
    HPABehavior,
    HPAScalingPolicy,
    HPAScalingRules,
    Keda,
    Observation,
    Policy,
    Predictive,
    StaticPeak,
    default_scale_down,
    default_scale_up,
)
from swarmperf.core.errors import UnknownName
from swarmperf.spec.autoscale import LIVE_POLICIES, AutoscaleSpec, ScalingRulesSpec

DEFAULT_STARTUP = 60.0  # seconds, until an agent's start on this backend has been measured


def _rules(spec: ScalingRulesSpec, default: HPAScalingRules) -> HPAScalingRules:
    policies = default.policies
    if spec.policies is not None:
        policies = tuple(HPAScalingPolicy(p.type, p.value, p.period_seconds) for p in spec.policies)
    window = spec.stabilization_window_seconds
    return HPAScalingRules(
        default.stabilization_window_seconds if window is None else window,
        policies,
        spec.select_policy,
    )


def behavior_of(settings: AutoscaleSpec) -> HPABehavior:
    """The HPA behaviour the section asks for, Kubernetes' defaults where it is silent."""
    return HPABehavior(
        _rules(settings.behavior.scale_up, default_scale_up()),
        _rules(settings.behavior.scale_down, default_scale_down()),
    )


def build_policy(settings: AutoscaleSpec, *, policy: str | None = None, startup: float) -> Policy:
    """The policy object `settings` describes (`policy` overrides its name), as the replay
    would make it, with `startup` seconds from asking for an agent to its first task."""
    name = settings.policy if policy is None else policy
    low, top = settings.min_agents, settings.max_agents
    behavior = behavior_of(settings)
    if name == "hpa":
        period = 15.0 if settings.period is None else settings.period
        target = 0.7 if settings.target is None else settings.target
        return HPA(
            target=target,
            min_agents=low,
            max_agents=top,
            tolerance=settings.tolerance,
            period=period,
            behavior=behavior,
        )
    if name == "keda":
        return Keda(
            target=0.7 if settings.target is None else settings.target,
            min_agents=low,
            max_agents=top,
            period=30.0 if settings.period is None else settings.period,
            behavior=behavior,
        )
    if name == "predictive":
        return Predictive(
            make_forecaster(scaling_forecaster(settings.forecaster)),
            interval=settings.interval,
            startup=startup,
            quantile=settings.quantile,
            slo_factor=settings.slo_factor,
            min_agents=low,
            max_agents=top,
            period=15.0 if settings.period is None else settings.period,
            mode=settings.mode,
            behavior=behavior,
        )
    if name == "rl":
        # The shipped model trained on every dev trace, fed by the predictive policy's
        # forecast as in the replay; its own hold stands in for the HPA's behavior.
        feed, inner = predictive_feed(
            make_forecaster(feed_forecaster(settings.forecaster)),
            interval=settings.interval,
            startup=startup,
            quantile=settings.quantile,
        )
        return Learned(
            weights_for(DEFAULT_MODEL),
            feed,
            interval=settings.interval,
            slo_factor=settings.slo_factor,
            min_agents=low,
            max_agents=top,
            period=15.0 if settings.period is None else settings.period,
            forecast_log=inner.record_log,
        )
    if name == "static-peak":
        return StaticPeak(top, period=60.0 if settings.period is None else settings.period)
    raise UnknownName("--policy", name, LIVE_POLICIES)


@dataclass(frozen=True)
class Signals:
    """What the shell measured of the swarm up to `time`: counters and integrals since it
    began, so that any two readings give the figures of the time between them."""

    time: float  # on the controller's clock
    ready: int  # agents serving
    starting: int  # agents asked for and not yet serving
    busy_area: float  # integral of busy slots over time
    slot_area: float  # integral of the ready agents' slots over time
    queue: int | None  # tasks waiting for an agent now; None: not readable
    arrivals: int  # tasks submitted so far
    service_sum: float  # seconds of work of the tasks finished so far
    finished: int  # tasks finished so far
    slots: int = 1  # tasks one agent runs at once


@dataclass
class Step:
    """One decision of the controller, and the change the shell is to make."""

    decision: Decision
    observation: Observation
    desired: int  # what the swarm should run after the step (bounded by min and max)
    acts: bool  # False: record only (forecast-only, or nothing to change)
    forecast_only: bool = False  # recorded, and by the mode never acted on

    def as_record(self, startup: float) -> dict[str, Any]:
        """The decision as the store keeps it: inputs, raw, stabilised result, what limited it."""
        d = self.decision
        o = self.observation
        return {
            "policy": d.policy,
            "time": d.time,
            "current": d.current,
            "inputs": {
                **d.inputs,
                "replicas": o.replicas,
                "ready": o.ready,
                "utilisation": o.utilisation,
                "queue": o.queue,
                "arrivals": o.arrivals,
                "elapsed_s": o.elapsed,
                "service_time_s": o.service_time,
            },
            "raw": d.raw,
            "desired": self.desired,
            "limited_by": d.limited_by,
            "acts": self.acts,
            "forecast_only": self.forecast_only,
            "forecast": d.forecast,
            "startup_s": startup,
        }


@dataclass
class Controller:
    """Feeds a policy the figures between two readings and bounds what it decides.

    The first reading only sets the baseline. The policy's `desired` is clamped into
    [min_agents, max_agents] (a policy may be asked a size set by hand outside them);
    `forecast_only` (the section's mode, for every policy) records and never acts.
    """

    policy: Policy
    min_agents: int
    max_agents: int
    forecast_only: bool = False
    service_time: float = 0.0  # the last measured mean, kept while nothing finishes
    _last: Signals | None = field(default=None, repr=False)

    def step(self, now: Signals) -> Step | None:
        last, self._last = self._last, now
        if last is None:
            return None
        finished = now.finished - last.finished
        if finished > 0:
            self.service_time = (now.service_sum - last.service_sum) / finished
        slot_area = now.slot_area - last.slot_area
        utilisation = None
        if slot_area > 0:
            utilisation = min(max((now.busy_area - last.busy_area) / slot_area, 0.0), 1.0)
        observation = Observation(
            replicas=now.ready + now.starting,
            ready=now.ready,
            utilisation=utilisation,
            queue=now.queue,
            arrivals=max(now.arrivals - last.arrivals, 0),
            elapsed=max(now.time - last.time, 0.0),
            service_time=self.service_time,
            slots=max(now.slots, 1),
        )
        decision = self.policy.decide(observation, now.time)
        desired = min(max(decision.desired, self.min_agents), self.max_agents)
        acts = decision.acts and not self.forecast_only
        if not acts:
            desired = observation.replicas
        changes = acts and desired != observation.replicas
        return Step(decision, observation, desired, changes, forecast_only=not acts)

    def preview(self, now: Signals) -> Step | None:
        """What `step` would decide on `now`, leaving this controller as it was."""
        return copy.deepcopy(self).step(now)


def controller_for(
    settings: AutoscaleSpec, *, policy: str | None = None, startup: float
) -> Controller:
    return Controller(
        build_policy(settings, policy=policy, startup=startup),
        settings.min_agents,
        settings.max_agents,
        forecast_only=settings.mode == "forecast_only",
    )


def horizon_for(startup: float, interval: float) -> int:
    """Intervals the predictive policy looks ahead for agents that take `startup` to serve."""
    return max(1, math.ceil(startup / interval)) + 1

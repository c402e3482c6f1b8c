"""Scaling policies: state machines that turn an observation of a swarm into a target size.

Every policy has one method, `decide(observation, now) -> Decision`, and keeps only what it
saw; time comes in with each call (the clock is injected), so the same object drives a replay
in virtual time and, later, a live swarm. A `Decision` records its inputs, the rule's raw
recommendation, the result after stabilisation and rate limits, and what limited it.

- `hpa`: the Kubernetes Horizontal Pod Autoscaler's rule, with its field names and defaults
  (autoscaling/v2 `behavior`, as `pkg/controller/podautoscaler/horizontal.go` implements it):
  `desired = ceil(ready * utilisation / target)`, skipped within `tolerance`; unready agents
  count as idle when scaling up; stabilisation windows keep the lowest (up) and highest (down)
  recommendation of the window; `Pods`/`Percent` policies bound the change per period and
  `select_policy` picks the largest (`Max`), smallest (`Min`) or none (`Disabled`).
- `keda`: KEDA's queue-length scaler: agents = ceil(queue / target per agent), nothing below
  the activation threshold (down to `min_agents`, after `cooldown_period`), `fallback`
  agents when the metric cannot be read.
- `predictive`: agents for a forecast quantile of the arrivals over the start-up horizon,
  floored by the arrivals and queue seen now, both sized for the SLO with Erlang C rather
  than for a utilisation; changes go through the HPA's rate policies and windows. It never
  scales in on the forecast alone. With `mode="forecast_only"` it records forecasts against
  what arrived and never acts.
- `rl`: a staffing rule whose weights were learned offline in the replay
  (`swarmperf.autoscale.learned`, trained by `swarmperf.autoscale.training`).
- `static-peak`: a fixed size (the bound on cost from above).
- `oracle`: perfect foresight; it needs the future, so the replay computes it (see
  `swarmperf.autoscale.replay`) and it has no `decide`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from swarmperf.core.errors import ConfigError, UnknownName

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]


@dataclass(frozen=True)
class Observation:
    """What a policy sees at a decision. Rates are per second; times are seconds."""

    replicas: int  # agents asked for: ready plus starting (what the HPA calls current)
    ready: int  # agents serving
    utilisation: float | None  # busy slots / slots of ready agents over the last period
    queue: int | None  # tasks waiting for an agent; None: the metric could not be read
    arrivals: int  # tasks that arrived since the previous decision
    elapsed: float  # seconds since the previous decision
    service_time: float  # mean seconds of work per task (measured)
    slots: int = 1  # tasks one agent runs at once


@dataclass(frozen=True)
class Decision:
    """One decision, with what it was made from."""

    time: float
    policy: str
    current: int
    inputs: dict[str, Any]
    raw: int  # what the rule asked for, before stabilisation and limits
    desired: int  # what the swarm is told
    limited_by: str | None  # stabilisation window, rate policy, min/max, tolerance, ...
    acts: bool = True  # False in forecast-only mode: recorded, not done
    forecast: dict[str, float] | None = None


class Policy(Protocol):
    name: str
    period: float  # seconds between decisions
    min_agents: int
    max_agents: int

    def decide(self, observation: Observation, now: float) -> Decision: ...


# -- the Kubernetes HPA -----------------------------------------------------------------


@dataclass(frozen=True)
class HPAScalingPolicy:
    """autoscaling/v2 HPAScalingPolicy: at most `value` pods (or percent) per period."""

    type: PolicyType
    value: int
    period_seconds: int

    def __post_init__(self) -> None:
        if self.type not in ("Pods", "Percent"):
            raise UnknownName("behavior.policies.type", self.type, ("Pods", "Percent"))
        if self.value <= 0:
            raise ConfigError("behavior.policies.value", self.value, "Use a number > 0.")
        if not 0 < self.period_seconds <= 1800:
            raise ConfigError(
                "behavior.policies.period_seconds", self.period_seconds, "Use 1 to 1800 seconds."
            )


@dataclass(frozen=True)
class HPAScalingRules:
    """autoscaling/v2 HPAScalingRules for one direction."""

    stabilization_window_seconds: int
    policies: tuple[HPAScalingPolicy, ...]
    select_policy: SelectPolicy = "Max"

    def __post_init__(self) -> None:
        if not 0 <= self.stabilization_window_seconds <= 3600:
            raise ConfigError(
                "behavior.stabilization_window_seconds",
                self.stabilization_window_seconds,
                "Use 0 to 3600 seconds.",
            )
        if self.select_policy not in ("Max", "Min", "Disabled"):
            raise UnknownName(
                "behavior.select_policy", self.select_policy, ("Max", "Min", "Disabled")
            )


def default_scale_up() -> HPAScalingRules:
    """Kubernetes' default: no window; double, or add 4 pods, per 15 s, whichever is more."""
    return HPAScalingRules(
        0, (HPAScalingPolicy("Percent", 100, 15), HPAScalingPolicy("Pods", 4, 15)), "Max"
    )


def default_scale_down() -> HPAScalingRules:
    """Kubernetes' default: a 300 s window; down to any size, per 15 s."""
    return HPAScalingRules(300, (HPAScalingPolicy("Percent", 100, 15),), "Max")


@dataclass(frozen=True)
class HPABehavior:
    scale_up: HPAScalingRules = field(default_factory=default_scale_up)
    scale_down: HPAScalingRules = field(default_factory=default_scale_down)


def _check_bounds(min_agents: int, max_agents: int) -> None:
    if min_agents < 0:
        raise ConfigError("min_agents", min_agents, "Use a number >= 0.")
    if max_agents < max(min_agents, 1):
        raise ConfigError("max_agents", max_agents, "Use a number >= min_agents and >= 1.")


class HPA:
    """The HPA's replica calculation and behaviour, for the utilisation metric."""

    name = "hpa"

    def __init__(
        self,
        *,
        target: float = 0.7,
        min_agents: int = 1,
        max_agents: int = 100,
        tolerance: float = 0.1,
        period: float = 15.0,
        behavior: HPABehavior | None = None,
    ) -> None:
        if not 0 < target <= 1:
            raise ConfigError("target", target, "Use a utilisation in (0, 1], like 0.7.")
        if not 0 <= tolerance < 1:
            raise ConfigError("tolerance", tolerance, "Use a fraction in [0, 1), like 0.1.")
        if not period > 0:
            raise ConfigError("period", period, "Use seconds > 0, like 15.")
        _check_bounds(min_agents, max_agents)
        self.target = target
        self.min_agents = min_agents
        self.max_agents = max_agents
        self.tolerance = tolerance
        self.period = period
        self.behavior = behavior or HPABehavior()
        self._recommendations: list[tuple[float, int]] = []  # (time, unstabilised)
        self._up_events: list[tuple[float, int]] = []  # (time, replicas added)
        self._down_events: list[tuple[float, int]] = []  # (time, replicas removed)

    # -- the metric's recommendation (replica_calculator.go) --------------------------------

    def recommend(self, observation: Observation) -> tuple[int, str | None]:
        """The raw recommendation and, when it keeps the current size, why."""
        current = observation.replicas
        ready = observation.ready
        usage = observation.utilisation
        if usage is None or ready == 0:
            # No metric (nothing ready yet): the HPA keeps the current size.
            return current, "no metric"
        ratio = usage / self.target
        unready = max(current - ready, 0)
        if unready == 0 or ratio <= 1:
            if abs(1.0 - ratio) <= self.tolerance:
                return current, "tolerance"
            return math.ceil(ratio * ready), None
        # Scaling up with agents still starting: count them as idle (0% busy), so the swarm
        # is not scaled up twice for one surge.
        new_ratio = usage * ready / (ready + unready) / self.target
        if abs(1.0 - new_ratio) <= self.tolerance or new_ratio < 1:
            return current, "starting agents absorb it"
        return math.ceil(new_ratio * (ready + unready)), None

    # -- behavior (horizontal.go: normalizeDesiredReplicasWithBehaviors) --------------------

    def _stabilise(self, current: int, desired: int, now: float) -> int:
        up_cutoff = now - self.behavior.scale_up.stabilization_window_seconds
        down_cutoff = now - self.behavior.scale_down.stabilization_window_seconds
        up, down = desired, desired
        for when, rec in self._recommendations:
            if when > up_cutoff:
                up = min(up, rec)
            if when > down_cutoff:
                down = max(down, rec)
        keep = max(
            self.behavior.scale_up.stabilization_window_seconds,
            self.behavior.scale_down.stabilization_window_seconds,
        )
        self._recommendations = [r for r in self._recommendations if r[0] > now - keep]
        self._recommendations.append((now, desired))
        result = current
        if result < up:
            result = up
        if result > down:
            result = down
        return result

    @staticmethod
    def _changed(events: list[tuple[float, int]], period: int, now: float) -> int:
        return sum(n for when, n in events if when > now - period)

    def scale_up_limit(self, current: int, now: float) -> int:
        rules = self.behavior.scale_up
        if rules.select_policy == "Disabled":
            return current
        pick: Callable[[int, int], int] = min if rules.select_policy == "Min" else max
        result = None
        for p in rules.policies:
            start = (
                current
                - self._changed(self._up_events, p.period_seconds, now)
                + self._changed(self._down_events, p.period_seconds, now)
            )
            if p.type == "Pods":
                proposed = start + p.value
            else:
                proposed = math.ceil(start * (1 + p.value / 100))
            result = proposed if result is None else pick(result, proposed)
        return current if result is None else result

    def scale_down_limit(self, current: int, now: float) -> int:
        rules = self.behavior.scale_down
        if rules.select_policy == "Disabled":
            return current
        pick: Callable[[int, int], int] = max if rules.select_policy == "Min" else min
        result = None
        for p in rules.policies:
            start = (
                current
                - self._changed(self._up_events, p.period_seconds, now)
                + self._changed(self._down_events, p.period_seconds, now)
            )
            proposed = start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100))
            result = proposed if result is None else pick(result, proposed)
        return current if result is None else result

    def normalise(self, current: int, raw: int, now: float) -> tuple[int, str | None]:
        """Stabilise `raw`, then bound it by the rate policies and min/max."""
        stable = self._stabilise(current, raw, now)
        limited: str | None = None
        if stable != raw:
            limited = (
                "scale_up.stabilization_window_seconds"
                if raw > current
                else "scale_down.stabilization_window_seconds"
            )
        desired = stable
        if stable > current:
            limit = max(self.scale_up_limit(current, now), current)
            if self.max_agents > limit:
                if stable > limit:
                    desired, limited = limit, "scale_up.policies"
            elif stable > self.max_agents:
                desired, limited = self.max_agents, "max_agents"
        elif stable < current:
            limit = min(self.scale_down_limit(current, now), current)
            if self.min_agents < limit:
                if stable < limit:
                    desired, limited = limit, "scale_down.policies"
            elif stable < self.min_agents:
                desired, limited = self.min_agents, "min_agents"
        # Outside the bounds even without a change (a size set by hand): bring it in.
        if desired > self.max_agents:
            desired, limited = self.max_agents, "max_agents"
        if desired < self.min_agents:
            desired, limited = self.min_agents, "min_agents"
        return desired, limited

    def record(self, current: int, desired: int, now: float) -> None:
        """Remember a change that was made, for the rate policies' periods."""
        keep = max(
            [p.period_seconds for p in self.behavior.scale_up.policies]
            + [p.period_seconds for p in self.behavior.scale_down.policies]
            + [0]
        )
        self._up_events = [e for e in self._up_events if e[0] > now - keep]
        self._down_events = [e for e in self._down_events if e[0] > now - keep]
        if desired > current:
            self._up_events.append((now, desired - current))
        elif desired < current:
            self._down_events.append((now, current - desired))

    def decide(self, observation: Observation, now: float) -> Decision:
        current = observation.replicas
        raw, why = self.recommend(observation)
        desired, limited = self.normalise(current, raw, now)
        self.record(current, desired, now)
        return Decision(
            now,
            self.name,
            current,
            {
                "utilisation": observation.utilisation,
                "ready": observation.ready,
                "target": self.target,
            },
            raw,
            desired,
            limited or why,
        )


# -- KEDA ---------------------------------------------------------------------------------


class Keda:
    """KEDA's scaler for a queue: one agent per `target` waiting-or-running tasks."""

    name = "keda"

    def __init__(
        self,
        *,
        target: float = 5.0,
        activation: float = 0.0,
        min_agents: int = 1,
        max_agents: int = 100,
        period: float = 30.0,  # KEDA's pollingInterval
        cooldown_period: float = 300.0,
        fallback: int | None = None,
        behavior: HPABehavior | None = None,
    ) -> None:
        if not target > 0:
            raise ConfigError("target", target, "Use tasks per agent > 0, like 5.")
        _check_bounds(min_agents, max_agents)
        self.target = target
        self.activation = activation
        self.min_agents = min_agents
        self.max_agents = max_agents
        self.period = period
        self.cooldown_period = cooldown_period
        self.fallback = fallback if fallback is not None else max_agents
        # KEDA hands the metric to an HPA, which applies the same behaviour as `hpa`.
        self._hpa = HPA(
            min_agents=min_agents, max_agents=max_agents, period=period, behavior=behavior
        )
        self._last_active = -math.inf

    def decide(self, observation: Observation, now: float) -> Decision:
        current = observation.replicas
        inputs: dict[str, Any] = {"queue": observation.queue, "target": self.target}
        if observation.queue is None:
            desired = min(max(self.fallback, self.min_agents), self.max_agents)
            return Decision(now, self.name, current, inputs, desired, desired, "fallback")
        # The metric is work in the system: waiting tasks plus those being run.
        load = observation.queue + (observation.utilisation or 0.0) * observation.ready * (
            observation.slots
        )
        inputs["load"] = load
        if load > self.activation:
            self._last_active = now
        elif now - self._last_active >= self.cooldown_period:
            desired = self.min_agents
            self._hpa.record(current, desired, now)
            return Decision(now, self.name, current, inputs, 0, desired, "cooldown_period")
        raw = max(math.ceil(load / self.target), 1)
        desired, limited = self._hpa.normalise(current, raw, now)
        self._hpa.record(current, desired, now)
        return Decision(now, self.name, current, inputs, raw, desired, limited)


# -- predictive ---------------------------------------------------------------------------


class RateForecaster(Protocol):
    """What the predictive policy needs of a forecaster: history in, quantiles out."""

    def fit(self, history: Sequence[float]) -> Any: ...
    def forecast(self, horizon: int, quantiles: Sequence[float]) -> dict[float, list[float]]: ...


def erlang_c(agents: int, load: float) -> float:
    """The probability that a task waits in an M/M/c queue (Erlang C), `load` = rate x
    service time. Erlang B's recursion keeps it stable for hundreds of agents."""
    if load <= 0:
        return 0.0
    if agents <= load:
        return 1.0
    b = 1.0
    for k in range(1, agents + 1):
        b = load * b / (k + load * b)
    return agents * b / (agents - load * (1 - b))


def agents_for(load: float, slack: float, risk: float, *, most: int = 100_000) -> int:
    """The fewest agents for which a task waits more than `slack` service times with at most
    probability `risk`, for an offered `load` (M/M/c: P(W > t) = C e^(-(c - a) t / s))."""
    if load <= 0:
        return 0
    c = max(1, math.ceil(load))
    while c < most:
        if erlang_c(c, load) * math.exp(-(c - load) * slack) <= risk:
            return c
        c += 1
    return most


class Predictive:
    """Agents for the forecast demand over the start-up horizon, floored by the demand seen now.

    Both are sized for the SLO, not for a utilisation: the fewest agents for which a task
    waits more than `slo_factor - 1` service times with probability at most `risk` (Erlang C;
    `agents_for`). The forecast is the `quantile` of tasks per interval over the next
    `ceil(startup / interval) + 1` intervals; the floor is the arrival rate of the last
    period, plus the agents that start the waiting tasks within the SLO. It decides at the
    HPA's pace (`period`, 15 s), forecasts once per `interval`, and changes size within the
    HPA's `behavior` (rate policies and stabilisation windows). It scales in only when the
    forecast and the floor both say fewer, never on the forecast alone.
    """

    name = "predictive"
    # Fixed before any measurement: the upper decile. benchmarks/autoscale_traces.py checks
    # it leave-one-trace-out against 0.75 and 0.95.
    DEFAULT_QUANTILE = 0.9

    def __init__(
        self,
        forecaster: RateForecaster,
        *,
        interval: float = 60.0,
        startup: float = 60.0,
        quantile: float = DEFAULT_QUANTILE,
        slo_factor: float = 2.0,
        risk: float = 0.01,
        min_agents: int = 1,
        max_agents: int = 100,
        period: float = 15.0,
        window: int = 5760,
        refit_every: int = 1440,
        min_history: int = 10,
        mode: Literal["act", "forecast_only"] = "act",
        behavior: HPABehavior | None = None,
    ) -> None:
        if not 0 < quantile < 1:
            raise ConfigError("quantile", quantile, "Use a quantile in (0, 1), like 0.9.")
        if not 0 < risk < 1:
            raise ConfigError("risk", risk, "Use a probability in (0, 1), like 0.01.")
        if not slo_factor > 1:
            raise ConfigError("slo_factor", slo_factor, "Use a factor > 1, like 2.0.")
        if mode not in ("act", "forecast_only"):
            raise UnknownName("mode", mode, ("act", "forecast_only"))
        if not (interval > 0 and period > 0):
            raise ConfigError("interval", interval, "Use seconds > 0 for interval and period.")
        _check_bounds(min_agents, max_agents)
        self.forecaster = forecaster
        self.interval = interval
        self.period = period
        self.horizon = max(1, math.ceil(startup / interval)) + 1
        self.quantile = quantile
        self.slack = slo_factor - 1.0
        self.risk = risk
        self.min_agents = min_agents
        self.max_agents = max_agents
        self.window = window
        self.refit_every = refit_every
        self.min_history = min_history
        self.mode = mode
        # The HPA's machinery for the size changes themselves (never its metric).
        self.limits = HPA(
            min_agents=min_agents, max_agents=max_agents, period=period, behavior=behavior
        )
        self.history: deque[float] = deque(maxlen=window)
        self._count = 0  # arrivals in the interval being filled
        self._filled = 0.0  # seconds of it seen so far
        self._since_fit = refit_every
        self._fitted = False
        self._fitted_on = 0  # intervals of history at the last fit
        self._peak: float | None = None  # the latest forecast: tasks per interval
        # Each forecast beside what then arrived: (time, predicted, actual) per interval.
        self._pending: deque[tuple[float, float]] = deque()
        self.record_log: deque[tuple[float, float, float]] = deque(maxlen=100_000)

    def _refresh(self, now: float) -> None:
        """A whole interval has been seen: add it to the history and forecast again."""
        actual = float(self._count)
        self.history.append(actual)
        if self._pending:
            when, predicted = self._pending.popleft()
            self.record_log.append((when, predicted, actual))
        if len(self.history) < self.min_history:
            return
        # Refit every `refit_every` intervals, and sooner while the history is short (each
        # time it has grown by half), so a fit on the first few intervals does not last.
        due = min(self.refit_every, max(1, self._fitted_on // 2))
        if self._since_fit >= due or not self._fitted:
            self._fitted_on = len(self.history)
            self.forecaster.fit(list(self.history))
            self._since_fit = 0
            self._fitted = True
        else:
            update = getattr(self.forecaster, "update", None)
            if update is not None:
                update([actual])
            else:
                self.forecaster.fit(list(self.history))
        self._since_fit += 1
        path = self.forecaster.forecast(self.horizon, [self.quantile])[self.quantile]
        self._peak = max(path)
        self._pending.append((now, path[0]))

    def decide(self, observation: Observation, now: float) -> Decision:
        current = observation.replicas
        self._count += observation.arrivals
        self._filled += observation.elapsed
        if self._filled >= self.interval - 1e-9:
            self._refresh(now)
            self._count = 0
            self._filled -= self.interval
        service = observation.service_time
        slots = max(observation.slots, 1)
        rate = observation.arrivals / observation.elapsed if observation.elapsed > 0 else 0.0
        queue = observation.queue or 0
        floor = math.ceil(
            agents_for(rate * service, self.slack, self.risk) / slots + queue / (self.slack * slots)
        )
        inputs: dict[str, Any] = {
            "arrival_rate": rate,
            "queue": queue,
            "service_time": service,
            "floor": floor,
        }
        forecast = None
        need = 0
        if self._peak is not None:
            load = self._peak / self.interval * service
            need = math.ceil(agents_for(load, self.slack, self.risk) / slots)
            forecast = {"quantile": self.quantile, "tasks_per_interval": self._peak, "agents": need}
        raw = max(need, floor)
        limited: str | None = None
        if raw < current and floor >= current:
            # Only the forecast says fewer; what arrives now does not agree: stay.
            raw, limited = current, "floor"
        desired, by = self.limits.normalise(current, raw, now)
        limited = by or limited
        acts = self.mode == "act"
        if not acts:
            desired = current
            limited = "forecast_only"
        self.limits.record(current, desired, now)
        return Decision(now, self.name, current, inputs, raw, desired, limited, acts, forecast)


# -- bounds -------------------------------------------------------------------------------


class StaticPeak:
    """A fixed size: enough for the peak, all the time."""

    name = "static-peak"

    def __init__(self, agents: int, *, period: float = 60.0) -> None:
        if agents < 1:
            raise ConfigError("agents", agents, "Use a number >= 1.")
        self.agents = agents
        self.min_agents = agents
        self.max_agents = agents
        self.period = period

    def decide(self, observation: Observation, now: float) -> Decision:
        return Decision(now, self.name, observation.replicas, {}, self.agents, self.agents, None)


POLICIES: tuple[str, ...] = ("hpa", "keda", "predictive", "rl", "static-peak", "oracle")

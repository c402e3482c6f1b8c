"""The `rl` scaling policy: a staffing rule whose weights were learned by policy search offline.

The rule sizes the swarm from what it sees, every feature in agents so that one set of
weights fits a swarm of any size:

    raw = ceil(now * L_now + ahead * L_ahead + busy * B + queue * Q
               + spread * sqrt(max(L_now, L_ahead)) + base)

where `L_now` is the offered load of the last period (arrival rate x service time / slots),
`L_ahead` the forecast's (the predictive policy's quantile of arrivals over the start-up
horizon, per second, x service time / slots), `B` the agents busy over the last period
(utilisation x ready agents: the work that arrived, whatever its size), `Q` the agents that
would start the waiting tasks within the SLO's slack, and the square root is square-root
staffing's safety margin.
It scales out at once and in only when the highest `raw` of the last `hold` seconds is lower.
Sizes stay within min/max; agents still take `startup` to serve (the swarm's, not the rule's).

The weights are trained offline (`swarmperf.autoscale.training`, by the cross-entropy
method in `swarmperf.autoscale.replay`, rewarded by minus the cost of violation minutes and
agent-hours) and shipped in `models/rl.json`, one set per group of training traces: the one
trained on every dev trace is the default, and each one trained with a trace left out is what
the benchmark scores on that trace.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from importlib import resources
from typing import Any

from swarmperf.autoscale.policies import Decision, Observation, Predictive, RateForecaster
from swarmperf.core.errors import ConfigError, UnknownName

MODEL_FILE = "rl.json"
DEFAULT_MODEL = "all"
# The forecaster whose forecasts the shipped weights were trained on. For this policy,
# "default" means it, not the predictive policy's default: the rule's `ahead` weight was
# learned for its forecasts, and the training script rebuilds the same weights from it.
TRAINED_FORECASTER = "holt-winters"


def feed_forecaster(name: str) -> str:
    """The forecaster the `rl` policy runs when asked for `name`."""
    return TRAINED_FORECASTER if name == "default" else name


# The forecast of tasks per interval at a decision (None: not yet known).
ForecastFeed = Callable[[Observation, float], float | None]


@dataclass(frozen=True)
class RuleWeights:
    """The learned rule's weights (see the module's docstring)."""

    now: float
    ahead: float
    busy: float
    queue: float
    spread: float
    base: float
    hold: float  # seconds

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"weights.{f.name}", value, "Use a finite number >= 0.")

    def vector(self) -> list[float]:
        return [getattr(self, f.name) for f in fields(self)]

    @classmethod
    def of(cls, values: Sequence[float]) -> RuleWeights:
        names = [f.name for f in fields(cls)]
        if len(values) != len(names):
            raise ConfigError("weights", list(values), f"Give {len(names)} numbers: {names}.")
        return cls(**{n: float(v) for n, v in zip(names, values, strict=True)})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# Where the search looks: each weight's lowest and highest value.
BOUNDS: dict[str, tuple[float, float]] = {
    "now": (0.0, 2.0),
    "ahead": (0.0, 2.0),
    "busy": (0.0, 2.0),
    "queue": (0.0, 2.0),
    "spread": (0.0, 4.0),
    "base": (0.0, 5.0),
    "hold": (0.0, 900.0),
}


def predictive_feed(
    forecaster: RateForecaster,
    *,
    interval: float,
    startup: float,
    quantile: float = Predictive.DEFAULT_QUANTILE,
) -> tuple[ForecastFeed, Predictive]:
    """The predictive policy's forecast, as a feed: the same forecaster, refits and quantile
    run in forecast-only mode. Also returns that policy, whose `record_log` holds the
    forecasts beside what arrived."""
    inner = Predictive(
        forecaster, interval=interval, startup=startup, quantile=quantile, mode="forecast_only"
    )

    def feed(observation: Observation, now: float) -> float | None:
        decision = inner.decide(observation, now)
        return None if decision.forecast is None else float(decision.forecast["tasks_per_interval"])

    return feed, inner


class Learned:
    """The `rl` policy: the learned rule, behind the policy interface."""

    name = "rl"

    def __init__(
        self,
        weights: RuleWeights,
        feed: ForecastFeed,
        *,
        interval: float = 60.0,
        slo_factor: float = 2.0,
        min_agents: int = 1,
        max_agents: int = 100,
        period: float = 15.0,
        model: str = DEFAULT_MODEL,
        forecast_log: deque[tuple[float, float, float]] | None = None,
    ) -> None:
        if not slo_factor > 1:
            raise ConfigError("slo_factor", slo_factor, "Use a factor > 1, like 2.0.")
        if not (interval > 0 and period > 0):
            raise ConfigError("interval", interval, "Use seconds > 0 for interval and period.")
        if min_agents < 0:
            raise ConfigError("min_agents", min_agents, "Use a number >= 0.")
        if max_agents < max(min_agents, 1):
            raise ConfigError("max_agents", max_agents, "Use a number >= min_agents and >= 1.")
        self.weights = weights
        self.feed = feed
        self.interval = interval
        self.slack = slo_factor - 1.0
        self.min_agents = min_agents
        self.max_agents = max_agents
        self.period = period
        self.model = model
        self._recent: deque[tuple[float, int]] = deque()  # (time, raw) within `hold`
        # The forecasts beside what arrived, where the feed keeps them (the replay reads it).
        self.record_log = forecast_log if forecast_log is not None else deque()

    def decide(self, observation: Observation, now: float) -> Decision:
        w = self.weights
        current = observation.replicas
        slots = max(observation.slots, 1)
        service = observation.service_time
        rate = observation.arrivals / observation.elapsed if observation.elapsed > 0 else 0.0
        load_now = rate * service / slots
        peak = self.feed(observation, now)
        load_ahead = load_now if peak is None else peak / self.interval * service / slots
        waiting = (observation.queue or 0) / (self.slack * slots)
        busy = (observation.utilisation or 0.0) * observation.ready
        value = (
            w.now * load_now
            + w.ahead * load_ahead
            + w.busy * busy
            + w.queue * waiting
            + w.spread * math.sqrt(max(load_now, load_ahead))
            + w.base
        )
        # A rate over a vanishing period can overflow: then the rule asks for the most.
        raw = math.ceil(min(value, 1e9) - 1e-9) if math.isfinite(value) else self.max_agents
        while self._recent and self._recent[0][0] <= now - w.hold:
            self._recent.popleft()
        self._recent.append((now, raw))
        held = max(r for _, r in self._recent)
        desired, limited = held, ("hold" if held > raw else None)
        if desired > self.max_agents:
            desired, limited = self.max_agents, "max_agents"
        if desired < self.min_agents:
            desired, limited = self.min_agents, "min_agents"
        inputs: dict[str, Any] = {
            "load_now": load_now,
            "load_ahead": load_ahead,
            "busy": busy,
            "queue": observation.queue,
            "utilisation": observation.utilisation,
            "model": self.model,
        }
        forecast = None if peak is None else {"tasks_per_interval": peak}
        return Decision(now, self.name, current, inputs, raw, desired, limited, True, forecast)


# -- the shipped weights ----------------------------------------------------------------


def load_models(text: str | None = None) -> dict[str, Any]:
    """The shipped models file (or `text`, a file's contents), checked."""
    if text is None:
        text = resources.files("swarmperf.autoscale").joinpath("models", MODEL_FILE).read_text()
    data: dict[str, Any] = json.loads(text)
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or DEFAULT_MODEL not in models:
        raise ConfigError(MODEL_FILE, "no models", f"The file needs a '{DEFAULT_MODEL}' model.")
    for name, model in models.items():
        RuleWeights(**model["weights"])  # checks each
        if not isinstance(model.get("trained_on"), list):
            raise ConfigError(f"{MODEL_FILE} models.{name}.trained_on", None, "List the traces.")
    return data


def weights_for(model: str = DEFAULT_MODEL, data: dict[str, Any] | None = None) -> RuleWeights:
    models = (data or load_models())["models"]
    if model not in models:
        raise UnknownName("model", model, list(models))
    return RuleWeights(**models[model]["weights"])


def model_without(trace: str, data: dict[str, Any] | None = None) -> str:
    """The model trained on every dev trace but `trace` (by file name): the one to score on
    it. A trace no model was trained on gets the default."""
    models = (data or load_models())["models"]
    if trace not in models[DEFAULT_MODEL]["trained_on"]:
        return DEFAULT_MODEL
    for name, model in models.items():
        if trace not in model["trained_on"] and name != DEFAULT_MODEL:
            return str(name)
    raise ConfigError(MODEL_FILE, trace, "Train a model without this trace first.")

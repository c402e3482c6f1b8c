"""The spec's `autoscale:` section: which scaling policy runs a live swarm, within what bounds.

The field names under `behavior` are the Kubernetes HPA's (autoscaling/v2), in snake case,
with its defaults, so a reader of the Kubernetes documentation can set them. The policies
themselves live in `swarmperf.autoscale.policies`, a higher layer; the names here are kept
equal to theirs by `tests/spec/test_autoscale_spec.py`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from swarmperf.spec.types import Duration, PositiveDuration, Section, problem

# The policies a live swarm can run (the oracle needs the future) and the forecasters the
# predictive one can use; "default" is the one `swarmperf.autoscale.forecast` measured best.
LivePolicyName = Literal["hpa", "keda", "predictive", "rl", "static-peak"]
LIVE_POLICIES: tuple[str, ...] = ("hpa", "keda", "predictive", "rl", "static-peak")
DEFAULT_LIVE_POLICY: LivePolicyName = "predictive"
ForecasterName = Literal[
    "default", "seasonal-naive", "holt-winters", "sarima", "lstm", "theta", "combination"
]
MAX_SCALE_AGENTS = 10_000  # what one `swarm-scale` may ask for, and the API takes
DEFAULT_MAX_AGENTS = 10  # unless the swarm is larger: see `AutoscaleSpec.for_swarm`


class ScalingPolicySpec(Section):
    """At most `value` agents (`Pods`) or percent (`Percent`) per `period_seconds`."""

    type: Literal["Pods", "Percent"]
    value: Annotated[int, Field(ge=1)]
    period_seconds: Annotated[int, Field(ge=1, le=1800)]


class ScalingRulesSpec(Section):
    """One direction of the HPA's `behavior`; None keeps the Kubernetes default of each."""

    stabilization_window_seconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    policies: tuple[ScalingPolicySpec, ...] | None = None
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"


class BehaviorSpec(Section):
    scale_up: ScalingRulesSpec = ScalingRulesSpec()
    scale_down: ScalingRulesSpec = ScalingRulesSpec()


class AutoscaleSpec(Section):
    """The live autoscaler of a served swarm (`swarmperf serve`).

    `enabled: false` keeps the settings for `swarm-scale --target-size auto` without
    starting the autoscaler. `target` is the policy's own target (the HPA's utilisation,
    0.7; KEDA's tasks per agent, 0.7; None: the policy's default). `startup` is how long an
    agent takes from being asked for to its first task; None measures it on the backend.
    `period` is the policy's sync period (None: its own, 15 s for the HPA); `interval` the
    length of the arrival counts the forecaster learns from. `mode: forecast_only` records
    every decision and never acts.
    """

    enabled: bool = True
    policy: LivePolicyName = DEFAULT_LIVE_POLICY
    min_agents: Annotated[int, Field(ge=1, le=MAX_SCALE_AGENTS)] = 1
    max_agents: Annotated[int, Field(ge=1, le=MAX_SCALE_AGENTS)] = DEFAULT_MAX_AGENTS
    target: Annotated[float, Field(gt=0)] | None = None
    tolerance: Annotated[float, Field(ge=0, lt=1)] = 0.1
    behavior: BehaviorSpec = BehaviorSpec()
    startup: Duration | None = None
    period: PositiveDuration | None = None
    interval: PositiveDuration = 60.0
    forecaster: ForecasterName = "default"
    quantile: Annotated[float, Field(gt=0, lt=1)] = 0.9
    slo_factor: Annotated[float, Field(gt=1)] = 2.0
    mode: Literal["act", "forecast_only"] = "act"

    @model_validator(mode="after")
    def _bounds_in_order(self) -> AutoscaleSpec:
        if self.min_agents > self.max_agents:
            raise problem(
                "bounds",
                f"min_agents {self.min_agents} is above max_agents {self.max_agents}",
                "Make min_agents <= max_agents.",
                value={"min_agents": self.min_agents, "max_agents": self.max_agents},
            )
        if self.policy == "hpa" and self.target is not None and self.target > 1:
            raise problem(
                "target",
                "is a utilisation above 1 for the hpa policy",
                "Use a utilisation in (0, 1], like 0.7.",
                value=self.target,
            )
        return self

    def for_swarm(self, agents: int) -> AutoscaleSpec:
        """These settings for a swarm that starts with `agents` agents: without a
        `max_agents` of the user's, at most that many (10 if fewer), so that turning the
        autoscaler on never shrinks a swarm below its own size for want of a bound."""
        if "max_agents" in self.model_fields_set:
            return self
        top = min(MAX_SCALE_AGENTS, max(DEFAULT_MAX_AGENTS, agents, self.min_agents))
        return self.model_copy(update={"max_agents": top})

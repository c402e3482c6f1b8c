"""The live controller: measured signals in, a bounded decision out, for every live policy."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from swarmperf.autoscale.forecast import FORECASTERS
from swarmperf.autoscale.live import Controller, Signals, Step, build_policy, controller_for
from swarmperf.autoscale.policies import HPA, Predictive
from swarmperf.spec.autoscale import LIVE_POLICIES, AutoscaleSpec, ForecasterName, LivePolicyName


class SwarmModel(RuleBasedStateMachine):
    """A swarm the controller runs: signals drawn at random, its decisions carried out."""

    def __init__(self) -> None:
        super().__init__()
        self.controller: Controller | None = None
        self.signals = Signals(0.0, 1, 0, 0.0, 0.0, 0, 0, 0.0, 0, 1)
        self.steps: list[Step] = []

    @precondition(lambda self: self.controller is None)
    @rule(
        policy=st.sampled_from(LIVE_POLICIES),
        low=st.integers(1, 5),
        extra=st.integers(0, 20),
        start=st.integers(1, 40),
        forecast_only=st.booleans(),
    )
    def make(self, policy: str, low: int, extra: int, start: int, forecast_only: bool) -> None:
        spec = AutoscaleSpec(
            policy=policy,  # type: ignore[arg-type]
            min_agents=low,
            max_agents=low + extra,
            interval=30.0,
            forecaster="seasonal-naive",
            mode="forecast_only" if forecast_only else "act",
        )
        self.forecast_only = forecast_only
        self.controller = controller_for(spec, startup=10.0)
        self.signals = Signals(0.0, start, 0, 0.0, 0.0, 0, 0, 0.0, 0, 1)
        assert self.controller.step(self.signals) is None  # the baseline

    @precondition(lambda self: self.controller is not None)
    @rule(
        dt=st.floats(1.0, 40.0),
        busy=st.floats(0.0, 1.0),
        queue=st.one_of(st.none(), st.integers(0, 500)),
        arrivals=st.integers(0, 2000),
        service=st.floats(0.01, 5.0),
        finished=st.integers(0, 200),
        starting=st.integers(0, 3),
    )
    def tick(
        self,
        dt: float,
        busy: float,
        queue: int | None,
        arrivals: int,
        service: float,
        finished: int,
        starting: int,
    ) -> None:
        assert self.controller is not None
        s = self.signals
        ready = max(s.ready, 1)
        slots = ready * dt
        self.signals = Signals(
            s.time + dt,
            ready,
            min(starting, s.starting),
            s.busy_area + busy * slots,
            s.slot_area + slots,
            queue,
            s.arrivals + arrivals,
            s.service_sum + service * finished,
            s.finished + finished,
            1,
        )
        step = self.controller.step(self.signals)
        assert step is not None
        self.steps.append(step)
        if step.acts:  # the shell carries it out: the agents are there at the next tick
            self.signals = Signals(**{**self.signals.__dict__, "ready": step.desired})

    @invariant()
    def decisions_stay_within_the_bounds(self) -> None:
        if self.controller is None or not self.steps:
            return
        step = self.steps[-1]
        c = self.controller
        if step.acts:
            assert c.min_agents <= step.desired <= c.max_agents
        else:
            assert step.desired == step.observation.replicas

    @invariant()
    def forecast_only_never_acts(self) -> None:
        if self.controller is not None and self.forecast_only:
            assert not any(step.acts for step in self.steps)
            assert all(step.forecast_only for step in self.steps)


TestController = SwarmModel.TestCase
TestController.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@given(
    utilisation=st.floats(0.0, 1.0),
    ready=st.integers(1, 50),
    low=st.integers(1, 10),
    extra=st.integers(0, 10),
)
def test_a_size_set_by_hand_outside_the_bounds_is_brought_in(
    utilisation: float, ready: int, low: int, extra: int
) -> None:
    controller = controller_for(
        AutoscaleSpec(policy="hpa", min_agents=low, max_agents=low + extra), startup=0.0
    )
    controller.step(Signals(0.0, ready, 0, 0.0, 0.0, 0, 0, 0.0, 0))
    step = controller.step(
        Signals(15.0, ready, 0, utilisation * ready * 15, ready * 15.0, 0, 0, 0.0, 0)
    )
    assert step is not None
    assert low <= step.desired <= low + extra


def test_the_signals_become_the_observation_of_the_period() -> None:
    controller = controller_for(AutoscaleSpec(policy="hpa", max_agents=20), startup=0.0)
    controller.step(Signals(10.0, 4, 0, 100.0, 200.0, 3, 50, 20.0, 10))
    step = controller.step(Signals(25.0, 4, 0, 100.0 + 54.0, 200.0 + 60.0, 7, 80, 20.0 + 10.0, 15))
    assert step is not None
    o = step.observation
    assert (o.replicas, o.ready, o.queue, o.arrivals) == (4, 4, 7, 30)
    assert o.elapsed == 15.0
    assert o.utilisation == 0.9
    assert o.service_time == 2.0
    # The HPA's rule: ceil(4 x 0.9 / 0.7) = 6.
    assert step.decision.raw == 6
    assert step.acts
    assert step.desired == 6
    record = step.as_record(startup=1.5)
    assert record["inputs"]["utilisation"] == 0.9
    assert record["startup_s"] == 1.5
    assert {"raw", "desired", "limited_by", "policy", "inputs"} <= set(record)


def test_a_preview_changes_nothing() -> None:
    controller = controller_for(AutoscaleSpec(policy="hpa", max_agents=20), startup=0.0)
    controller.step(Signals(0.0, 2, 0, 0.0, 0.0, 0, 0, 0.0, 0))
    busy = Signals(15.0, 2, 0, 30.0, 30.0, 10, 100, 10.0, 10)
    first = controller.preview(busy)
    second = controller.preview(busy)
    assert first is not None
    assert second is not None
    assert first.desired == second.desired == 3  # ceil(2 x 1.0 / 0.7)
    stepped = controller.step(busy)
    assert stepped is not None
    assert stepped.desired == 3


def test_the_section_builds_the_policy_with_its_behaviour() -> None:
    spec = AutoscaleSpec.model_validate(
        {
            "policy": "hpa",
            "target": 0.5,
            "max_agents": 30,
            "period": "5s",
            "behavior": {
                "scale_down": {
                    "stabilization_window_seconds": 60,
                    "policies": [{"type": "Pods", "value": 2, "period_seconds": 30}],
                }
            },
        }
    )
    policy = build_policy(spec, startup=0.0)
    assert isinstance(policy, HPA)
    assert (policy.target, policy.period, policy.max_agents) == (0.5, 5.0, 30)
    down = policy.behavior.scale_down
    assert down.stabilization_window_seconds == 60
    assert [(p.type, p.value, p.period_seconds) for p in down.policies] == [("Pods", 2, 30)]
    # Where the section is silent, Kubernetes' default.
    assert policy.behavior.scale_up.stabilization_window_seconds == 0
    predictive = build_policy(spec, policy="predictive", startup=120.0)
    assert isinstance(predictive, Predictive)
    assert predictive.horizon == 3  # two 60 s intervals of start-up, and the next


def test_the_names_the_spec_takes_are_the_policies_and_forecasters() -> None:
    from typing import get_args

    from swarmperf.autoscale.replay import POLICIES

    assert set(get_args(LivePolicyName)) == set(LIVE_POLICIES) == set(POLICIES) - {"oracle"}
    assert set(get_args(ForecasterName)) == {*FORECASTERS, "default"}

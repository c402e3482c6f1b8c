"""The HPA rule against the Kubernetes documentation's worked cases, and every policy's bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.autoscale.forecast import SeasonalNaive
from swarmperf.autoscale.policies import (
    HPA,
    HPABehavior,
    HPAScalingPolicy,
    HPAScalingRules,
    Keda,
    Observation,
    Policy,
    Predictive,
    agents_for,
    default_scale_down,
    default_scale_up,
    erlang_c,
)
from swarmperf.core.errors import ConfigError


def observe(
    replicas: int,
    utilisation: float | None,
    *,
    ready: int | None = None,
    queue: int | None = 0,
    arrivals: int = 0,
    elapsed: float = 15.0,
) -> Observation:
    return Observation(
        replicas=replicas,
        ready=replicas if ready is None else ready,
        utilisation=utilisation,
        queue=queue,
        arrivals=arrivals,
        elapsed=elapsed,
        service_time=1.0,
    )


def no_windows() -> HPABehavior:
    """Rate policies wide open and no stabilisation: the bare replica calculation."""
    wide = (HPAScalingPolicy("Percent", 1000, 15),)
    return HPABehavior(HPAScalingRules(0, wide), HPAScalingRules(0, wide))


# -- the replica calculation --------------------------------------------------------------


def test_ratio_doubles_and_halves_as_the_docs_say() -> None:
    # "current 200m, desired 100m: doubled; current 50m: halved."
    hpa = HPA(target=0.5, max_agents=1000, behavior=no_windows())
    assert hpa.decide(observe(10, 1.0), 0.0).desired == 20
    hpa = HPA(target=0.5, max_agents=1000, behavior=no_windows())
    assert hpa.decide(observe(10, 0.25), 0.0).desired == 5


def test_within_the_tolerance_nothing_changes() -> None:
    hpa = HPA(target=0.5, behavior=no_windows())
    # ratio 1.08 and 0.92: within 0.1 of 1.
    up = hpa.decide(observe(10, 0.54), 0.0)
    down = hpa.decide(observe(10, 0.46), 15.0)
    assert (up.desired, up.limited_by) == (10, "tolerance")
    assert (down.desired, down.limited_by) == (10, "tolerance")
    # ratio 1.2: outside it, ceil(10 * 1.2) = 12.
    assert hpa.decide(observe(10, 0.6), 30.0).desired == 12


def test_starting_agents_count_as_idle_when_scaling_up() -> None:
    hpa = HPA(target=0.5, max_agents=100, behavior=no_windows())
    # 4 ready at 60% (ratio 1.2) and 4 starting: (4 * 0.6) / 8 = 0.3 -> no scale-up.
    assert hpa.decide(observe(8, 0.6, ready=4), 0.0).desired == 8
    # 4 ready at 100% and 1 starting: 4 / 5 = 0.8 -> ratio 1.6 -> ceil(1.6 * 5) = 8.
    assert hpa.decide(observe(5, 1.0, ready=4), 15.0).desired == 8


# -- behavior: the docs' scaling policy examples ----------------------------------------


def test_scale_down_policies_the_docs_example_80_to_10() -> None:
    # scaleDown: Pods 4 per 60 s and Percent 10 per 60 s, selectPolicy Max (the default):
    # "80 replicas ... scaled down to 10: 8 in the first step; at 72, 10% is 7.2, rounded
    # up to 8; below 40, 4 at a time."
    down = HPAScalingRules(
        300, (HPAScalingPolicy("Pods", 4, 60), HPAScalingPolicy("Percent", 10, 60))
    )
    hpa = HPA(target=0.5, max_agents=100, behavior=HPABehavior(scale_down=down))
    sizes = [80]
    now = 0.0
    while sizes[-1] > 10 and len(sizes) < 50:
        current = sizes[-1]
        # A utilisation that always asks for 10.
        decision = hpa.decide(observe(current, 0.5 * 10 / current), now)
        sizes.append(decision.desired)
        now += 61.0
    # Percent while 10% is more than 4 (rounded so that 8 go at 72), then Pods, 4 at a time.
    assert sizes == [80, 72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 10]


def test_default_scale_up_doubles_or_adds_four_whichever_is_more() -> None:
    hpa = HPA(target=0.5, max_agents=1000)
    # 1 agent asking for 100: 1 -> max(2, 5) = 5.
    first = hpa.decide(observe(1, 50.0), 0.0)
    assert (first.desired, first.limited_by) == (5, "scale_up.policies")
    hpa = HPA(target=0.5, max_agents=1000)
    # 10 agents asking for 100: 10 -> max(20, 14) = 20.
    assert hpa.decide(observe(10, 5.0), 0.0).desired == 20


def test_scale_up_percent_900_per_minute_goes_1_10_100() -> None:
    up = HPAScalingRules(0, (HPAScalingPolicy("Percent", 900, 60),))
    hpa = HPA(target=0.5, max_agents=1000, behavior=HPABehavior(scale_up=up))
    sizes = [1]
    for step in range(3):
        sizes.append(hpa.decide(observe(sizes[-1], 500.0 / sizes[-1]), step * 61.0).desired)
    assert sizes == [1, 10, 100, 1000]


def test_select_policy_min_picks_the_smallest_change() -> None:
    down = HPAScalingRules(
        0, (HPAScalingPolicy("Pods", 4, 60), HPAScalingPolicy("Percent", 10, 60)), "Min"
    )
    hpa = HPA(target=0.5, max_agents=100, behavior=HPABehavior(scale_down=down))
    # At 80: Pods allows -4, Percent -8; Min takes -4.
    assert hpa.decide(observe(80, 0.05), 0.0).desired == 76


def test_select_policy_disabled_never_scales_that_way() -> None:
    down = HPAScalingRules(0, default_scale_down().policies, "Disabled")
    hpa = HPA(target=0.5, behavior=HPABehavior(scale_down=down))
    for step in range(10):
        assert hpa.decide(observe(10, 0.05), step * 15.0).desired == 10


def test_the_scale_down_window_keeps_the_highest_recent_recommendation() -> None:
    hpa = HPA(target=0.5, max_agents=100)  # scale-down window 300 s, the default
    assert hpa.decide(observe(10, 0.5 * 10 / 10), 0.0).desired == 10  # asks for 10
    # Demand drops: recommendations of 2 for the next 300 s are held at 10.
    for t in range(15, 300, 15):
        decision = hpa.decide(observe(10, 0.1), float(t))
        assert decision.desired == 10
        assert decision.limited_by == "scale_down.stabilization_window_seconds"
    # Once the 10 has left the window, it follows the recommendation down.
    assert hpa.decide(observe(10, 0.1), 301.0).desired == 2


def test_the_defaults_are_the_kubernetes_defaults() -> None:
    up, down = default_scale_up(), default_scale_down()
    assert up.stabilization_window_seconds == 0
    assert down.stabilization_window_seconds == 300
    assert {(p.type, p.value, p.period_seconds) for p in up.policies} == {
        ("Percent", 100, 15),
        ("Pods", 4, 15),
    }
    assert [(p.type, p.value, p.period_seconds) for p in down.policies] == [("Percent", 100, 15)]
    hpa = HPA()
    assert (hpa.target, hpa.tolerance, hpa.period) == (0.7, 0.1, 15.0)


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        HPAScalingPolicy("Nodes", 1, 15)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        HPAScalingRules(4000, ())
    with pytest.raises(ConfigError):
        HPA(min_agents=5, max_agents=2)


# -- every policy stays within min and max --------------------------------------------------

observations = st.builds(
    observe,
    st.integers(0, 60),
    st.one_of(st.none(), st.floats(0.0, 5.0)),
    queue=st.one_of(st.none(), st.integers(0, 5000)),
    arrivals=st.integers(0, 5000),
)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(observations, min_size=1, max_size=25),
    low=st.integers(0, 5),
    span=st.integers(0, 30),
)
def test_decisions_never_leave_min_and_max(steps: list[Observation], low: int, span: int) -> None:
    high = max(low, 1) + span
    policies: list[Policy] = [
        HPA(min_agents=low, max_agents=high),
        Keda(min_agents=low, max_agents=high),
        Predictive(SeasonalNaive(), min_agents=low, max_agents=high, min_history=2),
    ]
    for policy in policies:
        for i, obs in enumerate(steps):
            decision = policy.decide(obs, i * 15.0)
            assert low <= decision.desired <= high, (policy.name, decision)


def test_forecast_only_records_and_never_acts() -> None:
    policy = Predictive(SeasonalNaive(), mode="forecast_only", min_history=2, max_agents=500)
    decisions = []
    for i in range(40):
        # A surge the policy would answer, with 3 agents at full use and a long queue.
        obs = observe(3, 1.0, queue=500, arrivals=200 * (i + 1), elapsed=15.0)
        decisions.append(policy.decide(obs, i * 15.0))
    assert all(not d.acts and d.desired == 3 for d in decisions)
    assert any(d.raw > 3 for d in decisions)  # it would have scaled up
    assert len(policy.record_log) >= 5  # forecasts against what arrived


def test_predictive_never_scales_in_on_the_forecast_alone() -> None:
    policy = Predictive(SeasonalNaive(), min_history=2, max_agents=100)
    # Quiet history, so the forecast asks for few; the floor (measured arrivals) asks for many.
    for i in range(12):
        policy.decide(observe(20, 0.5, arrivals=1, elapsed=15.0), i * 15.0)
    busy = policy.decide(observe(20, 1.0, arrivals=300, elapsed=15.0), 180.0)
    assert busy.desired >= 20


def test_keda_falls_back_when_the_metric_fails() -> None:
    keda = Keda(fallback=7, max_agents=20)
    decision = keda.decide(observe(3, 0.5, queue=None), 0.0)
    assert (decision.desired, decision.limited_by) == (7, "fallback")


def test_erlang_c_matches_a_textbook_value() -> None:
    # M/M/2 with load 1 (utilisation 0.5): P(wait) = 1/3.
    assert math.isclose(erlang_c(2, 1.0), 1 / 3, rel_tol=1e-12)
    assert erlang_c(1, 2.0) == 1.0
    assert agents_for(0.0, 1.0, 0.01) == 0
    # More load, more agents; stricter risk, more agents.
    assert agents_for(20.0, 1.0, 0.01) >= agents_for(10.0, 1.0, 0.01)
    assert agents_for(20.0, 1.0, 0.001) >= agents_for(20.0, 1.0, 0.05)

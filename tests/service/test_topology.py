"""The live topology's pure parts: strategies, the messages of a window, the pick from a plan,
and the rule a switch is judged by."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmperf.app.topologies import TopologyFigures, TopologyPlan
from swarmperf.core.errors import ConfigError
from swarmperf.core.trial import judge
from swarmperf.routing import TOPOLOGIES
from swarmperf.runtime.messaging import Delivery
from swarmperf.service.topology import (
    LIVE_FIGURES,
    MessageWindow,
    Strategy,
    check_min_gain,
    chosen,
    trial_rule,
)
from swarmperf.service.trial import TOPOLOGY_OBJECTIVES, check_rule

times = st.floats(min_value=0, max_value=100, allow_nan=False)


def delivery(sent: float, latency: float, hops: int, error: str | None = None) -> Delivery:
    return Delivery(1, "a", "b", "noop", hops, 8, sent, sent + latency, error, None, False)


@given(st.sampled_from(TOPOLOGIES))
def test_a_fixed_strategy_names_its_kind_and_reads_back(kind: str) -> None:
    assert Strategy.parse(f"fixed:{kind}").fixed == kind
    assert str(Strategy.parse(f"fixed:{kind}")) == f"fixed:{kind}"
    assert Strategy.parse("adaptive").fixed is None


@pytest.mark.parametrize("text", ["fixed:", "fixed:tree", "best", "", "mesh"])
def test_an_unknown_strategy_is_refused_naming_the_choices(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Strategy.parse(text)
    assert raised.value.field == "--strategy"
    assert "fixed:" in str(raised.value)


@pytest.mark.parametrize("gain", [-0.1, 1.0, float("nan"), float("inf")])
def test_a_min_gain_outside_0_to_1_is_refused(gain: float) -> None:
    with pytest.raises(ConfigError):
        check_min_gain(gain)


@given(
    st.lists(
        st.tuples(times, st.floats(0, 5, allow_nan=False), st.integers(1, 6), st.booleans()),
        max_size=60,
    ),
    times,
    times,
    st.integers(1, 80),
)
def test_a_window_holds_the_newest_messages_sent_in_it(
    sent: list[tuple[float, float, int, bool]], a: float, b: float, kept: int
) -> None:
    start, end = min(a, b), max(a, b)
    window = MessageWindow(kept)
    for at, latency, hops, failed in sent:
        window(delivery(at, latency, hops, "lost" if failed else None))
    delivered = [(at, lat, hops) for at, lat, hops, failed in sent if not failed][-kept:]
    inside = [(lat, hops) for at, lat, hops in delivered if start <= at < end]
    figures = window.figures(start, end)
    assert figures["messages_delivered"] == len(inside)
    assert window.failed == sum(failed for *_, failed in sent)
    if inside:
        mean = sum(lat for lat, _ in inside) / len(inside)
        assert figures["message_latency_mean_s"] == pytest.approx(mean)
        assert figures["message_hops_mean"] == pytest.approx(
            sum(h for _, h in inside) / len(inside)
        )
    else:
        assert figures["message_latency_mean_s"] is None


def _plan(traffic: dict[str, float | None]) -> TopologyPlan:
    figures = tuple(
        TopologyFigures(name, None, None, value, 10, 10, 0, 1, {})
        for name, value in traffic.items()
    )
    scored = {k: v for k, v in traffic.items() if v is not None}
    best = min(scored, key=lambda k: scored[k])
    current = next(iter(traffic))
    before, after = traffic[current], scored[best]
    gain = None if before is None else (before - after) / before
    return TopologyPlan("traffic", current, best, gain, figures)


def test_the_pick_is_the_best_or_the_named_kind_with_its_own_gain() -> None:
    plan = _plan({"star(hub=h)": 10.0, "mesh": 2.0, "ring": 8.0, "hybrid(cluster_size=3)": None})
    assert chosen(plan, Strategy.parse("adaptive")) == ("mesh", (10.0 - 2.0) / 10.0)
    assert chosen(plan, Strategy.parse("fixed:ring")) == ("ring", (10.0 - 8.0) / 10.0)
    assert chosen(plan, Strategy.parse("fixed:hybrid")) == ("hybrid(cluster_size=3)", None)
    assert chosen(plan, Strategy.parse("fixed:star")) == ("star(hub=h)", 0.0)


@given(
    st.sampled_from(sorted(LIVE_FIGURES)),
    st.floats(0.0, 0.9),
    st.floats(0.001, 10),
    st.floats(0.001, 10),
)
def test_a_switch_is_kept_exactly_when_the_measured_figure_gains_enough(
    objective: str, min_gain: float, before: float, after: float
) -> None:
    rule = check_rule(trial_rule(objective, min_gain), 1.0, objectives=TOPOLOGY_OBJECTIVES)
    name = LIVE_FIGURES[objective]
    verdict = judge(rule, {name: before}, {name: after, "completed": 100})
    assert verdict.keep == ((before - after) / before >= min_gain)

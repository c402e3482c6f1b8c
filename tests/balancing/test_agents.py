"""An agent's measurements: speed and mean service time stay finite whatever is measured."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from swarmperf.balancing.agents import AgentState
from swarmperf.core.model import AgentSpec


@given(
    st.lists(
        st.tuples(
            st.floats(0, 1e6, allow_nan=False),
            st.floats(0, 1e6, allow_nan=False, allow_subnormal=True),
        ),
        max_size=50,
    )
)
def test_speed_stays_finite_for_any_measured_service_time(
    samples: list[tuple[float, float]],
) -> None:
    agent = AgentState(AgentSpec("a"), 0)
    for work, service_time in samples:
        agent.observe(work, service_time)
    assert math.isfinite(agent.speed)
    assert agent.mean_service is None or math.isfinite(agent.mean_service)


def test_a_denormal_service_time_is_not_a_measurement() -> None:
    agent = AgentState(AgentSpec("a"), 0)
    agent.observe(1.0, 5e-324)
    assert agent.speed == 1.0
    assert agent.mean_service is None

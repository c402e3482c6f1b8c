"""Pools of a live swarm by agent name, and the resize that brings them to their sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError
from swarmperf.core.pools import plan_resize, pool_of

POOLS = ["a", "b", "a-big"]
agents = st.lists(
    st.builds(lambda p, n: f"{p}-{n}", st.sampled_from([*POOLS, "other"]), st.integers(0, 12)),
    unique=True,
    max_size=30,
)
counts = st.dictionaries(st.sampled_from(POOLS), st.integers(0, 8), min_size=1)


def test_an_agent_belongs_to_the_longest_pool_its_name_starts_with() -> None:
    assert pool_of("a-3", POOLS) == "a"
    assert pool_of("a-big-0", POOLS) == "a-big"
    assert pool_of("b", POOLS) == "b"
    assert pool_of("bee-1", POOLS) is None


@given(current=agents, wanted=counts)
def test_a_resize_reaches_every_pools_count_and_leaves_other_agents(
    current: list[str], wanted: dict[str, int]
) -> None:
    try:
        plan = plan_resize(current, wanted)
    except ConfigError:
        assert sum(wanted.values()) == 0
        assert all(pool_of(a, list(wanted)) is not None for a in current)
        return
    after = [a for a in current if a not in plan.remove] + [name for _, name in plan.add]
    assert len(set(after)) == len(after) >= 1
    for pool, want in wanted.items():
        assert sum(pool_of(a, list(wanted)) == pool for a in after) == want
        assert plan.before[pool] == sum(pool_of(a, list(wanted)) == pool for a in current)
    for agent in current:
        if pool_of(agent, list(wanted)) is None:
            assert agent in after
    assert all(pool_of(name, list(wanted)) == pool for pool, name in plan.add)


def test_the_newest_agents_of_a_pool_go_first() -> None:
    plan = plan_resize(["a-0", "a-1", "a-2", "a-10", "b-0"], {"a": 2})
    assert plan.remove == ("a-10", "a-2")
    assert plan_resize(["a-0", "a-2"], {"a": 4}).add == (("a", "a-1"), ("a", "a-3"))


def test_a_resize_that_leaves_no_agent_says_so() -> None:
    with pytest.raises(ConfigError, match="without agents"):
        plan_resize(["a-0", "a-1"], {"a": 0})
    with pytest.raises(ConfigError, match=r"pools\.a"):
        plan_resize(["a-0"], {"a": -1})

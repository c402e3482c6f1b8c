"""Routing rules, per topology: hop counts, relays, connections, and hop-by-hop consistency."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.routing import TOPOLOGIES, Routes, TopologySettings

settings_of = st.builds(
    TopologySettings,
    kind=st.sampled_from(TOPOLOGIES),
    fanout=st.integers(1, 5),
    bidirectional=st.booleans(),
    cluster_size=st.integers(1, 6),
)


@st.composite
def laid_out(
    draw: st.DrawFn, kind: str | None = None
) -> tuple[Routes, str, str]:  # routes over 1-40 agents, and two of them
    settings = draw(settings_of)
    if kind is not None:
        settings = TopologySettings(
            kind, fanout=settings.fanout, bidirectional=settings.bidirectional,
            cluster_size=settings.cluster_size,
        )  # fmt: skip
    n = draw(st.integers(1, 40))
    agents = [f"a{i}" for i in range(n)]
    if settings.kind == "star" and draw(st.booleans()):
        settings = TopologySettings("star", hub=draw(st.sampled_from(agents)))
    i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
    return Routes(settings, agents), agents[i], agents[j]


@given(laid_out())
def test_a_route_starts_at_the_sender_and_ends_at_the_receiver(
    case: tuple[Routes, str, str],
) -> None:
    routes, sender, receiver = case
    route = routes.route(sender, receiver)
    assert route[0] == sender
    assert route[-1] == receiver
    assert len(set(route)) == len(route), "a route visits no agent twice"
    assert routes.relays(sender, receiver) == route[1:-1]
    assert routes.hops(sender, receiver) == len(route) - 1


@given(laid_out())
def test_every_hop_runs_along_a_connection_kept_open(case: tuple[Routes, str, str]) -> None:
    routes, sender, receiver = case
    links = routes.links()
    assert routes.connections() == len(links)
    route = routes.route(sender, receiver)
    for a, b in itertools.pairwise(route):
        assert (a, b) in links or (b, a) in links


@given(laid_out())
def test_the_route_from_the_next_hop_is_the_rest_of_the_route(
    case: tuple[Routes, str, str],
) -> None:
    # What lets each agent forward by asking for the next hop only.
    routes, sender, receiver = case
    route = routes.route(sender, receiver)
    if len(route) > 1:
        assert routes.next_hop(sender, receiver) == route[1]
        assert routes.route(route[1], receiver) == route[1:]


@given(laid_out("mesh"))
def test_mesh_is_one_hop(case: tuple[Routes, str, str]) -> None:
    routes, sender, receiver = case
    assert routes.hops(sender, receiver) == (0 if sender == receiver else 1)
    n = len(routes.agents)
    assert routes.connections() == n * (n - 1) // 2


@given(laid_out("star"))
def test_star_goes_through_the_hub_in_at_most_two_hops(case: tuple[Routes, str, str]) -> None:
    routes, sender, receiver = case
    assert routes.hops(sender, receiver) <= 2
    if routes.hops(sender, receiver) == 2:
        assert routes.relays(sender, receiver) == (routes.hub,)
    assert routes.connections() == len(routes.agents) - 1


@given(laid_out("ring"))
def test_ring_takes_the_hops_between_positions(case: tuple[Routes, str, str]) -> None:
    routes, sender, receiver = case
    n = len(routes.agents)
    i, j = routes.agents.index(sender), routes.agents.index(receiver)
    forward = (j - i) % n
    expected = min(abs(i - j), n - abs(i - j)) if routes.settings.bidirectional else forward
    assert routes.hops(sender, receiver) == expected
    assert routes.connections() == (n if n > 2 else n - 1)


@given(laid_out("hierarchical"))
def test_a_tree_route_is_at_most_twice_its_depth(case: tuple[Routes, str, str]) -> None:
    routes, sender, receiver = case
    n, k = len(routes.agents), routes.settings.fanout
    assert routes.hops(sender, receiver) <= 2 * routes.depth()
    # A complete k-ary tree of n nodes: depth is the level of the last node.
    level, first = 0, 1
    while first < n:
        level, first = level + 1, first + k ** (level + 1)
    assert routes.depth() == level
    assert routes.connections() == n - 1


@given(laid_out("hybrid"))
def test_hybrid_meshes_clusters_and_joins_them_through_hubs(
    case: tuple[Routes, str, str],
) -> None:
    routes, sender, receiver = case
    n, c = len(routes.agents), routes.settings.cluster_size
    i, j = routes.agents.index(sender), routes.agents.index(receiver)
    same_cluster = i // c == j // c
    assert routes.hops(sender, receiver) <= (1 if same_cluster else 3)
    for relay in routes.relays(sender, receiver):
        assert routes.agents.index(relay) % c == 0, "only hubs forward"
    sizes = [min(c, n - start) for start in range(0, n, c)]
    hubs = len(sizes)
    assert routes.connections() == sum(s * (s - 1) // 2 for s in sizes) + hubs * (hubs - 1) // 2


@given(settings_of, st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_load_counts_each_hop_and_each_relay(settings: TopologySettings, n: int, seed: int) -> None:
    agents = [f"a{i}" for i in range(n)]
    routes = Routes(settings, agents)
    traffic = np.random.default_rng(seed).integers(0, 4, size=(n, n))
    load = routes.load(traffic)
    hops = sum(
        traffic[i, j] * routes.hops(a, b)
        for i, a in enumerate(agents)
        for j, b in enumerate(agents)
    )
    assert load.hop_messages == hops
    assert load.messages == traffic.sum() - np.trace(traffic)
    # Each message is forwarded by its route's interior: one relay per hop beyond the first.
    assert load.relayed.sum() == hops - load.messages if load.messages else load.relayed.sum() == 0
    if load.messages:
        assert math.isclose(load.mean_hops or 0.0, hops / load.messages)


def test_a_named_hub_that_left_falls_back_to_the_first_agent() -> None:
    routes = Routes(TopologySettings("star", hub="gone"), ["a", "b", "c"])
    assert routes.hub == "a"
    assert routes.route("b", "c") == ("b", "a", "c")


def test_bad_settings_name_the_field_and_the_fix() -> None:
    with pytest.raises(UnknownName, match="ring"):
        TopologySettings("torus")
    with pytest.raises(ConfigError, match=r"topology\.fanout"):
        TopologySettings("hierarchical", fanout=0)
    with pytest.raises(ConfigError, match=r"topology\.cluster_size"):
        TopologySettings("hybrid", cluster_size=0)
    with pytest.raises(ConfigError, match="4 x 4"):
        Routes(TopologySettings(), list("abcd")).load(np.zeros((3, 3)))

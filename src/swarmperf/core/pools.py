"""Pools of a live swarm's agents: an agent `<pool>-<n>` (or `<pool>`) belongs to `<pool>`.

A spec's `{id: small, count: 3}` makes agents small-0, small-1 and small-2, so the pools of
a resources file are found in a swarm by name, and an agent added to a pool is named the
same way. With pools whose names prefix each other (`a` and `a-big`), the longest wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from swarmperf.core.errors import ConfigError


def pool_of(agent: str, pools: Sequence[str]) -> str | None:
    """The pool `agent` belongs to, or None."""
    matches = [p for p in pools if agent == p or agent.startswith(p + "-")]
    return max(matches, key=len) if matches else None


def _order(agent: str) -> tuple[int, str]:
    # small-10 after small-9: by length, then by name.
    return (len(agent), agent)


@dataclass(frozen=True, slots=True)
class Resize:
    """How to bring a swarm's pools to their wanted sizes: agents to add (pool, id), agents
    to remove (the newest of each pool first), and the pools' sizes before and after."""

    add: tuple[tuple[str, str], ...]
    remove: tuple[str, ...]
    before: dict[str, int]
    after: dict[str, int]


def plan_resize(agents: Sequence[str], counts: Mapping[str, int]) -> Resize:
    """The agents to add and remove so that each pool of `counts` has its count; agents of
    no pool named there stay. `ConfigError` if the swarm would be left without agents."""
    for pool, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(f"pools.{pool}", count, "Give a whole number of agents >= 0.")
    names = list(counts)
    mine: dict[str, list[str]] = {p: [] for p in names}
    for agent in agents:
        owner = pool_of(agent, names)
        if owner is not None:
            mine[owner].append(agent)
    taken = set(agents)
    add: list[tuple[str, str]] = []
    remove: list[str] = []
    for pool, want in counts.items():
        have = sorted(mine[pool], key=_order)
        remove += reversed(have[want:])
        n = 0
        while len(have) < want:
            name = f"{pool}-{n}"
            n += 1
            if name not in taken:
                taken.add(name)
                have.append(name)
                add.append((pool, name))
    if len(agents) + len(add) - len(remove) < 1:
        raise ConfigError(
            "pools",
            dict(counts),
            "That leaves the swarm without agents: keep at least one agent in some pool.",
        )
    before = {p: len(mine[p]) for p in names}
    return Resize(tuple(add), tuple(remove), before, dict(counts))

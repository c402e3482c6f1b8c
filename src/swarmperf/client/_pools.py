"""The pools request both clients send: resize a live swarm's pools, optionally on trial."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swarmperf.client._protocol import Call, as_dict, encode, non_negative
from swarmperf.core.errors import ConfigError
from swarmperf.core.trial import TrialRule


def pools_call(
    counts: Mapping[str, int],
    concurrency: Mapping[str, int] | None,
    observe_s: float,
    trial: TrialRule | None,
    reason: str | None,
    inputs: Mapping[str, Any] | None,
) -> Call[dict[str, Any]]:
    if not counts:
        raise ConfigError("counts", {}, "Name at least one pool and its size, e.g. {'a': 3}.")
    pools: dict[str, dict[str, int]] = {}
    for pool, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(f"counts.{pool}", count, "Give a whole number of agents >= 0.")
        pools[pool] = {"count": count}
        slots = (concurrency or {}).get(pool)
        if slots is not None:
            pools[pool]["concurrency"] = slots
    body: dict[str, Any] = {"pools": pools, "observe_s": non_negative(observe_s, "observe_s")}
    if trial is not None:
        # Which way is better is the service's to know, by the objective's name.
        body["trial"] = {k: v for k, v in trial.to_data().items() if k != "minimise"}
    if reason is not None:
        body["reason"] = reason
    if inputs is not None:
        body["inputs"] = dict(inputs)
    return Call("POST", "/v1/pools", as_dict, encode(body))

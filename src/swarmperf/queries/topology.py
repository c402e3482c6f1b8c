"""`topology-optimize` as both front-ends ask it: each topology simulated on a spec (offline),
or a live swarm's topology planned from its measured workload and switched on trial.

Offline, the plan is `app.selection.place_and_plan` on the spec (each topology simulated,
placed on slots of a latency layout when one is given, or the learned predictor's
proposal). Live, the swarm's service plans from what it measured and, unless it is a dry
run, switches on trial (`LiveSwarm.optimize_topology`); this waits for the verdict and says
what happened.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmperf.core.durations import format_duration, parse_duration
from swarmperf.core.errors import ConfigError, UserError

if TYPE_CHECKING:
    from swarmperf.client import SyncSwarmClient

DEFAULT_OBSERVE = "30s"
DEFAULT_MIN_GAIN = 0.1
STRATEGIES = ("adaptive", "fixed:<topology>")


def check_question(
    spec: Path | None,
    swarm_id: str | None,
    *,
    strategy: str | None,
    objective: str,
    min_gain: float,
    observe_text: str | None,
    dry_run: bool,
    latency: str | None = None,
    connection_cost: float = 0.0,
    predict: bool = False,
) -> float:
    """The window a live trial is judged on, once the options make sense together (the
    strategy itself the service checks, as it checks every caller's)."""
    from swarmperf.app.topologies import OBJECTIVES

    if spec is not None and swarm_id is not None:
        raise UserError(
            "Give a SPEC (plan offline) or --swarm-id (plan and change a live swarm), not both."
        )
    if spec is None and swarm_id is None:
        raise UserError("Give a SPEC to plan offline, or --swarm-id of a live swarm to optimise.")
    if objective not in OBJECTIVES:
        raise ConfigError("--objective", objective, f"Choose one of: {', '.join(OBJECTIVES)}.")
    if isinstance(min_gain, bool) or not math.isfinite(min_gain) or not 0 <= min_gain < 1:
        raise ConfigError(
            "--min-gain", min_gain, "Give the least improvement to keep, from 0 to 1, e.g. 0.1."
        )
    if spec is not None:
        for name, value in (
            ("--strategy", strategy),
            ("--observe", observe_text),
        ):
            if value is not None:
                raise ConfigError(name, value, "It goes with --swarm-id: drop it for a SPEC.")
        return 0.0
    offline_only: tuple[tuple[str, bool, object], ...] = (
        ("--latency", latency is not None, latency),
        ("--connection-cost", connection_cost != 0.0, connection_cost),
        ("--predict", predict, predict),
    )
    for name, given, bad in offline_only:
        if given:
            raise ConfigError(name, bad, "It goes with a SPEC (planning offline): drop it.")
    if strategy is not None:
        from swarmperf.service.topology import Strategy

        Strategy.parse(strategy)
    observe = parse_duration(DEFAULT_OBSERVE if observe_text is None else observe_text, "--observe")
    if not dry_run and not observe > 0:
        raise ConfigError(
            "--observe",
            observe_text,
            "The change is judged on the window after it: give a duration > 0, e.g. 30s.",
        )
    return observe


def topology_optimize(
    spec: Path | None = None,
    swarm_id: str | None = None,
    data_dir: Path | None = None,
    *,
    strategy: str | None = None,
    objective: str = "p99",
    min_gain: float = DEFAULT_MIN_GAIN,
    observe_text: str | None = None,
    dry_run: bool = False,
    min_samples: int = 20,
    on_watch: Callable[[float], None] | None = None,
    client: SyncSwarmClient | None = None,
    latency: str | None = None,
    connection_cost: float = 0.0,
    predict: bool = False,
) -> dict[str, Any]:
    """`topology-optimize -o json`: offline, the plan of `spec`; live, the plan of the
    swarm's measured workload, and unless `dry_run` the trial of the pick and its verdict."""
    observe = check_question(
        spec,
        swarm_id,
        strategy=strategy,
        objective=objective,
        min_gain=min_gain,
        observe_text=observe_text,
        dry_run=dry_run,
        latency=latency,
        connection_cost=connection_cost,
        predict=predict,
    )
    if spec is not None:
        from swarmperf.app.selection import place_and_plan
        from swarmperf.spec import load_spec

        _, payload = place_and_plan(
            load_spec(spec), objective, latency, connection_cost, predict=predict
        )
        return {"live": False, **payload}
    from swarmperf.queries.allocation import verdict_of
    from swarmperf.queries.live import connect

    assert swarm_id is not None  # check_question saw to it
    with (
        contextlib.nullcontext(client)
        if client is not None
        else connect(swarm_id, data_dir) as using
    ):
        answer = using.optimize_topology(
            strategy or "adaptive",
            objective,
            min_gain=min_gain,
            observe_s=observe,
            dry_run=dry_run,
            min_samples=min_samples,
        )
        answer = {"live": True, "swarm_id": swarm_id, **answer}
        if not answer.get("applied"):
            return answer
        decision_id = int(answer["decision_id"])
        if on_watch is not None:
            on_watch(observe)
        decision = verdict_of(using, decision_id, observe)
    trial = decision.get("trial") or {}
    verdict = trial.get("verdict")
    answer.update(
        figures_after=decision.get("after"),
        verdict=verdict,
        why=trial.get("why")
        if verdict is not None
        else (
            f"the service had not judged it {format_duration(observe)} after the switch; "
            f"the verdict will be in decision {decision_id}"
        ),
        reverted=trial.get("reverted"),
    )
    return answer

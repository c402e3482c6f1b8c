"""Trials of live changes: measure the window after a change and keep it or roll it back.

A trial is a decision with a verdict to come. The change is applied and recorded with its
inputs, the prediction and the figures before; `LiveSwarm._decide` measures the window
after it; then `Trial.settle` asks `core.trial.judge` and, when the rule says so, calls the
change's revert. The verdict (kept, rolled back, or a roll-back that failed) and why are
written on the same decision, so every optimiser that changes a live swarm (the Resource
Allocator, the Topology Optimizer, a closed loop) records its trials alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from swarmperf.core.errors import ConfigError, SwarmError
from swarmperf.core.trial import ROLL_BACK_FAILED, TrialRule, judge

# The figures of a window (as `figures_dict` names them) a trial may judge by, and which
# way is better for each.
OBJECTIVES: dict[str, bool] = {  # name -> minimised
    "latency_p50_s": True,
    "latency_p95_s": True,
    "latency_p99_s": True,
    "error_rate": True,
    "queue_depth": True,
    "balance_cv": True,
    "throughput_per_s": False,
}

# What a topology's trial may judge by besides: tasks' mean latency, and messages' (from
# their sending to their delivery, over the messages sent in the window).
TOPOLOGY_OBJECTIVES: dict[str, bool] = {
    **OBJECTIVES,
    "latency_mean_s": True,
    "message_latency_mean_s": True,
}

Revert = Callable[[], Awaitable[dict[str, Any]]]


def check_rule(
    rule: TrialRule, observe: float, objectives: Mapping[str, bool] = OBJECTIVES
) -> TrialRule:
    """`rule`, if a live swarm can judge by it over `observe` seconds (by one of
    `objectives`, the figures the change's window has)."""
    if rule.objective not in objectives:
        raise ConfigError(
            "trial.objective", rule.objective, f"Judge by one of: {', '.join(objectives)}."
        )
    if rule.minimise != objectives[rule.objective]:
        way = "lower" if objectives[rule.objective] else "higher"
        raise ConfigError(
            "trial.minimise", rule.minimise, f"{rule.objective} is better {way}: leave it out."
        )
    if not observe > 0:
        raise ConfigError(
            "observe_s", observe, "A trial is judged on the window after the change: give > 0."
        )
    return rule


@dataclass(frozen=True, slots=True)
class Trial:
    """A change on trial: the rule it is judged by and how to undo it."""

    rule: TrialRule
    revert: Revert

    def opening(self) -> dict[str, Any]:
        """The trial as recorded with the change: its rule, no verdict yet."""
        return {"rule": self.rule.to_data(), "verdict": None, "why": None, "reverted": None}

    async def settle(self, decision: Mapping[str, Any]) -> dict[str, Any]:
        """The verdict on `decision` (its figures `before` and `after` measured), the change
        rolled back if it is not kept: the keys to add to the decision."""
        verdict = judge(self.rule, decision.get("before") or {}, decision.get("after") or {})
        trial = {**self.opening(), "verdict": verdict.name, "why": verdict.why}
        if not verdict.keep:
            try:
                trial["reverted"] = await self.revert()
            except SwarmError as exc:
                trial["verdict"] = ROLL_BACK_FAILED
                trial["why"] = f"{verdict.why}; rolling back failed: {exc}"
        return {"trial": trial}

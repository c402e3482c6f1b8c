"""Offline training of the `rl` policy: the cross-entropy method over its rule, in the replay.

Each candidate set of weights (`learned.RuleWeights`) runs every training trace through
`replay.replay`; its reward is minus its cost, summed over the traces' worst:

    cost(trace) = violation_minutes / HPA's + price * agent_hours / HPA's
                  + over * max(0, agent_hours / HPA's - 1)

so both costs are in units of the HPA's on the same trace (each trace weighs the same
whatever its length), and agent-hours beyond the HPA's cost `over` more. The HPA is the
baseline the goals compare with; the prices were fixed before training.

Arrivals do not depend on the policy, so neither does the forecast: it is computed once per
trace (the predictive policy's feed in forecast-only mode) and replayed from a record during
the search. The search is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from swarmperf.autoscale.forecast import make_forecaster
from swarmperf.autoscale.learned import (
    BOUNDS,
    Learned,
    RuleWeights,
    feed_forecaster,
    predictive_feed,
)
from swarmperf.autoscale.policies import Decision, Observation
from swarmperf.autoscale.replay import ReplaySettings, make_policy, replay
from swarmperf.autoscale.traces import Trace
from swarmperf.core.errors import ConfigError

# The goal, as prices: violations first (an HPA's worth of agent-hours is worth a quarter of
# an HPA's worth of violations), and agent-hours beyond the HPA's are forty times dearer.
PRICE = 0.25
OVER = 10.0


@dataclass(frozen=True)
class SearchSettings:
    """The cross-entropy method's budget."""

    iterations: int = 12
    population: int = 24
    elite: float = 0.25  # share of each population that sets the next distribution
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.population < 4:
            raise ConfigError(
                "search", (self.iterations, self.population), "Use >= 1 iteration of >= 4."
            )
        if not 0 < self.elite < 1:
            raise ConfigError("elite", self.elite, "Use a share in (0, 1), like 0.25.")


@dataclass
class Course:
    """One training trace: the trace, the HPA's figures on it and the recorded forecasts."""

    trace: Trace
    hpa_violation_minutes: int
    hpa_agent_hours: float
    forecasts: dict[float, float | None]


def prepare(trace: Trace, settings: ReplaySettings, forecaster: str = "default") -> Course:
    hpa = replay(trace, make_policy("hpa", settings), settings)
    feed, _ = predictive_feed(
        make_forecaster(feed_forecaster(forecaster)),
        interval=settings.interval,
        startup=settings.startup,
    )
    recorded: dict[float, float | None] = {}

    class Recorder:
        name = "recorder"
        period = 15.0
        min_agents = settings.min_agents
        max_agents = settings.top

        def decide(self, observation: Observation, now: float) -> Decision:
            recorded[now] = feed(observation, now)
            return Decision(now, self.name, observation.replicas, {}, 0, observation.replicas, None)

    replay(trace, Recorder(), settings)
    return Course(trace, hpa.violation_minutes, hpa.agent_hours, recorded)


def cost(course: Course, weights: RuleWeights, settings: ReplaySettings) -> dict[str, float]:
    """Replay `course` under `weights`: the figures and the cost."""
    forecasts = course.forecasts

    def feed(observation: Observation, now: float) -> float | None:
        return forecasts.get(now)

    policy = Learned(
        weights,
        feed,
        interval=settings.interval,
        slo_factor=settings.slo_factor,
        min_agents=settings.min_agents,
        max_agents=settings.top,
    )
    figures = replay(course.trace, policy, settings)
    v = figures.violation_minutes / max(course.hpa_violation_minutes, 1)
    a = figures.agent_hours / course.hpa_agent_hours if course.hpa_agent_hours > 0 else 0.0
    return {
        "violation_ratio": v,
        "agent_hours_ratio": a,
        "cost": v + PRICE * a + OVER * max(0.0, a - 1.0),
    }


def search(
    courses: Sequence[Course],
    settings: ReplaySettings,
    search_settings: SearchSettings = SearchSettings(),
    *,
    progress: Callable[[int, float, RuleWeights], None] | None = None,
) -> tuple[RuleWeights, dict[str, Any]]:
    """The cross-entropy method: sample weights from a Gaussian within BOUNDS, keep the
    cheapest share, refit the Gaussian to them, repeat; return the cheapest weights seen."""
    if not courses:
        raise ConfigError("traces", 0, "Train on at least one trace.")
    rng = np.random.default_rng(search_settings.seed)
    low = np.array([b[0] for b in BOUNDS.values()])
    high = np.array([b[1] for b in BOUNDS.values()])
    # Start between the textbook rules: a share each of the load now, ahead and measured
    # busy, a square-root margin, and a hold.
    mean = np.array([0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 120.0])
    std = (high - low) / 4
    keep = max(2, round(search_settings.elite * search_settings.population))
    best: tuple[float, RuleWeights, list[dict[str, float]]] | None = None
    history: list[float] = []
    for iteration in range(search_settings.iterations):
        draws = rng.normal(mean, std, (search_settings.population, len(mean)))
        # Rounded as the file keeps them, so the shipped weights are the ones scored.
        samples = np.round(np.clip(draws, low, high), 6)
        if iteration == 0:
            samples[0] = mean  # the starting point is scored as it is
        scored: list[tuple[float, int]] = []
        for k, vector in enumerate(samples):
            weights = RuleWeights.of(vector.tolist())
            per_trace = [cost(c, weights, settings) for c in courses]
            total = max(p["cost"] for p in per_trace)
            scored.append((total, k))
            if best is None or total < best[0]:
                best = (total, weights, per_trace)
        scored.sort()
        elite = samples[[k for _, k in scored[:keep]]]
        mean = elite.mean(axis=0)
        # A floor on the spread keeps the search from settling before it has looked.
        std = np.maximum(elite.std(axis=0), (high - low) / 100)
        history.append(scored[0][0])
        assert best is not None
        if progress is not None:
            progress(iteration, best[0], best[1])
    assert best is not None
    report = {
        "cost": round(best[0], 6),
        "per_trace": {
            c.trace.name: {k: round(v, 6) for k, v in p.items()}
            for c, p in zip(courses, best[2], strict=True)
        },
        "best_cost_per_iteration": [round(h, 6) for h in history],
    }
    return best[1], report

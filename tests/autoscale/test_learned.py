"""The `rl` policy: its rule's bounds and hold, the shipped weights, and training that repeats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.autoscale.learned import (
    BOUNDS,
    DEFAULT_MODEL,
    TRAINED_FORECASTER,
    Learned,
    RuleWeights,
    load_models,
    model_without,
    weights_for,
)
from swarmperf.autoscale.policies import Decision, Observation
from swarmperf.autoscale.replay import ReplaySettings, make_policy, replay
from swarmperf.autoscale.traces import read_trace
from swarmperf.autoscale.training import SearchSettings, prepare, search
from swarmperf.core.errors import ConfigError, UnknownName

ROOT = Path(__file__).resolve().parents[2]


def observe(replicas: int, arrivals: int, *, queue: int = 0, busy: float = 0.5) -> Observation:
    return Observation(
        replicas=replicas,
        ready=replicas,
        utilisation=busy,
        queue=queue,
        arrivals=arrivals,
        elapsed=15.0,
        service_time=1.0,
    )


def no_forecast(observation: Observation, now: float) -> float | None:
    return None


weights = st.builds(
    RuleWeights.of, st.tuples(*(st.floats(low, high) for low, high in BOUNDS.values()))
)
observations = st.builds(
    Observation,
    replicas=st.integers(0, 80),
    ready=st.integers(0, 80),
    utilisation=st.one_of(st.none(), st.floats(0.0, 1.0)),
    queue=st.one_of(st.none(), st.integers(0, 10_000)),
    arrivals=st.integers(0, 10_000),
    elapsed=st.floats(0.0, 60.0),
    service_time=st.floats(0.01, 10.0),
)


@settings(max_examples=80, deadline=None)
@given(
    rule=weights,
    steps=st.lists(observations, min_size=1, max_size=20),
    low=st.integers(0, 5),
    span=st.integers(0, 40),
    peak=st.one_of(st.none(), st.floats(0.0, 1e5)),
)
def test_decisions_never_leave_min_and_max(
    rule: RuleWeights, steps: list[Observation], low: int, span: int, peak: float | None
) -> None:
    high = max(low, 1) + span
    policy = Learned(rule, lambda o, t: peak, min_agents=low, max_agents=high)
    for i, obs in enumerate(steps):
        decision = policy.decide(obs, i * 15.0)
        assert low <= decision.desired <= high, decision
        assert decision.acts


def test_it_scales_out_at_once_and_in_only_after_the_hold() -> None:
    rule = RuleWeights(now=1.0, ahead=0.0, busy=0.0, queue=0.0, spread=0.0, base=0.0, hold=60.0)
    policy = Learned(rule, no_forecast, max_agents=100)
    # 40 arrivals in 15 s of 1 s tasks: a load of 40/15 agents, so 3.
    assert policy.decide(observe(1, 40), 15.0).desired == 3
    # Quiet again: held at 3 for 60 s, then down to what the load asks for.
    held = [policy.decide(observe(3, 0), t) for t in (30.0, 45.0, 60.0)]
    assert [d.desired for d in held] == [3, 3, 3]
    assert all(d.limited_by == "hold" for d in held)
    assert policy.decide(observe(3, 0), 75.0).desired == 1  # min_agents


def test_the_same_observations_give_the_same_decisions() -> None:
    rule = weights_for(DEFAULT_MODEL)
    runs = []
    for _ in range(2):
        policy = Learned(rule, lambda o, t: 30.0 + t % 7, max_agents=60)
        runs.append([policy.decide(observe(5, 10 * i % 90, queue=i), i * 15.0) for i in range(30)])
    assert runs[0] == runs[1]


def test_the_shipped_weights_load_and_say_what_they_were_trained_on() -> None:
    data = load_models()
    models = data["models"]
    every = set(models[DEFAULT_MODEL]["trained_on"])
    assert len(every) >= 2
    for trace in every:
        chosen = model_without(trace)
        assert trace not in models[chosen]["trained_on"]
        assert set(models[chosen]["trained_on"]) == every - {trace}
    assert model_without("a trace nobody trained on.csv") == DEFAULT_MODEL
    with pytest.raises(UnknownName):
        weights_for("no such model")
    with pytest.raises(ConfigError):
        load_models(json.dumps({"models": {}}))
    with pytest.raises(ConfigError):
        RuleWeights.of([1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0])


def waves(tmp_path: Path, name: str, high: int) -> Path:
    rows = "\n".join(f"{i},{(high if (i // 5) % 2 else 4) + i % 3}" for i in range(30))
    path = tmp_path / name
    path.write_text("minute_index,requests\n" + rows + "\n")
    return path


def test_rl_replays_and_records_its_decisions(tmp_path: Path) -> None:
    trace = read_trace(waves(tmp_path, "w.csv", 30))
    settings_ = ReplaySettings(peak_agents=6, startup=30.0)
    decisions: list[Decision] = []
    figures = replay(trace, make_policy("rl", settings_), settings_, on_decision=decisions.append)
    assert figures.policy == "rl"
    assert figures.tasks == trace.tasks
    assert decisions
    assert all(d.inputs["model"] == DEFAULT_MODEL for d in decisions)
    assert all(1 <= d.desired <= settings_.top for d in decisions)


def test_rl_by_default_runs_on_the_forecasts_its_weights_were_trained_on(tmp_path: Path) -> None:
    # Whatever the predictive policy's default forecaster, the shipped rule is fed by the
    # one it learned from: the same decisions as asking for that forecaster by name.
    trace = read_trace(waves(tmp_path, "w.csv", 30))
    settings_ = ReplaySettings(peak_agents=6, startup=30.0)
    runs = []
    for forecaster in ("default", TRAINED_FORECASTER):
        decisions: list[Decision] = []
        policy = make_policy("rl", settings_, forecaster)
        replay(trace, policy, settings_, on_decision=decisions.append)
        runs.append([(d.desired, d.forecast) for d in decisions])
    assert runs[0] == runs[1]
    assert any(forecast is not None for _, forecast in runs[0])


@pytest.mark.slow
def test_the_search_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    settings_ = ReplaySettings(peak_agents=6, startup=30.0)
    courses = [prepare(read_trace(waves(tmp_path, "w.csv", 30)), settings_)]
    tiny = SearchSettings(iterations=2, population=4, seed=3)
    first = search(courses, settings_, tiny)
    second = search(courses, settings_, tiny)
    assert first == second
    # Its best is never worse than where it started.
    costs = first[1]["best_cost_per_iteration"]
    assert first[1]["cost"] <= costs[0]


@pytest.mark.slow
def test_the_training_script_rebuilds_the_same_file(tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    waves(folder, "a.csv", 30)
    waves(folder, "b.csv", 12)
    outputs = []
    for run in ("one", "two"):
        out = tmp_path / f"{run}.json"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "train_autoscale_rl.py"),
                "--traces",
                str(folder),
                "--out",
                str(out),
                "--iterations",
                "1",
                "--population",
                "4",
            ],
            check=True,
            capture_output=True,
            env=os.environ,
        )
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]
    data = load_models(outputs[0])
    assert set(data["models"]) == {DEFAULT_MODEL, "without a.csv", "without b.csv"}
    assert data["models"]["without a.csv"]["trained_on"] == ["b.csv"]

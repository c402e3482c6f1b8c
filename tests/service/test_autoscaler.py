"""The live autoscaler on a real swarm (local and process backends): it scales up under a
surge and back down after the stabilisation window, loses no task, keeps to its bounds, and
records every decision; forecast-only and dry runs change nothing."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.service.live import LiveSwarm, TaskIn
from swarmperf.spec import parse_spec_yaml

SPEC = """\
swarm_id: scaled
backend: {backend}
strategy: least-loaded
agents: [{{id: a, concurrency: 1}}]
monitor: {{enabled: false}}
autoscale:
  policy: hpa
  min_agents: 1
  max_agents: 5
  period: 200ms
  mode: {mode}
  behavior:
    scale_up: {{policies: [{{type: Pods, value: 4, period_seconds: 1}}]}}
    scale_down:
      stabilization_window_seconds: 2
      policies: [{{type: Percent, value: 100, period_seconds: 1}}]
"""
WAIT_S = 120.0  # a bound on waiting for what the autoscaler does, never a speed goal


def run(main: Callable[[LiveSwarm], Awaitable[None]], tmp_path: Path, **fields: str) -> None:
    text = SPEC.format(**{"backend": "local", "mode": "act", **fields})

    async def go() -> None:
        live = LiveSwarm(parse_spec_yaml(text), tmp_path)
        await live.start()
        try:
            await main(live)
        finally:
            await live.stop()
            live.close()

    asyncio.run(go())


async def until(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + WAIT_S
    while not check():
        assert loop.time() < give_up, f"never: {what}"
        await asyncio.sleep(0.05)


def agents(live: LiveSwarm) -> int:
    return len(live.swarm.coordinator.agents)


async def surge(live: LiveSwarm, until_agents: int) -> int:
    """Submit short tasks faster than one agent runs them until the swarm has grown."""
    submitted = 0
    loop = asyncio.get_running_loop()
    give_up = loop.time() + WAIT_S
    while agents(live) < until_agents:
        assert loop.time() < give_up, "the swarm never grew"
        await live.submit([TaskIn("sleep", 0.05) for _ in range(4)])
        submitted += 4
        await asyncio.sleep(0.05)
    return submitted


def decisions(live: LiveSwarm) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(r.decision)) for r in live.store.decisions("scaled", "autoscale")]


@pytest.mark.parametrize(
    "backend", ["local", "process", pytest.param("ray", marks=pytest.mark.slow)]
)
def test_a_surge_scales_up_then_down_and_loses_no_task(tmp_path: Path, backend: str) -> None:
    async def main(live: LiveSwarm) -> None:
        assert live.autoscaler.on
        submitted = await surge(live, 3)
        # Quiet: after the 2 s window the swarm goes back to its minimum, draining.
        await until(lambda: agents(live) == 1, "back to one agent")
        await until(lambda: live.recorded == submitted, "every task recorded")
        # A decision is written to the store after it is acted on, off the loop.
        await until(
            lambda: any(d.get("acts") and d["desired"] < d["current"] for d in decisions(live)),
            "the scale-down recorded",
        )
        outcomes = live.intake.results(0, 10_000)
        assert len(outcomes) == submitted
        assert all((o.result or {}).get("error") is None for o in outcomes)
        assert {o.status for o in outcomes} == {"succeeded"}
        made = [d for d in decisions(live) if "desired" in d]
        assert made, "no decision was recorded"
        assert all(1 <= d["desired"] <= 5 for d in made)
        assert any(d["acts"] and d["desired"] > d["current"] for d in made)
        assert any(d["acts"] and d["desired"] < d["current"] for d in made)
        # Down no further than the highest recommendation of the 2 s window before it.
        for down in (d for d in made if d["acts"] and d["desired"] < d["current"]):
            window = [d["raw"] for d in made if down["time"] - 2 < d["time"] <= down["time"]]
            assert down["desired"] >= min(5, max(window))
        for d in made:
            assert {"utilisation", "queue", "arrivals", "service_time_s"} <= set(d["inputs"])
            assert {"raw", "limited_by", "startup_s", "bounds"} <= set(d)
        status = live.autoscaler.status()
        assert status["starts_measured"] > 1  # the first agents, and those it started
        assert status["startup_measured_s"] is not None

    run(main, tmp_path, backend=backend)


def test_forecast_only_never_acts(tmp_path: Path) -> None:
    async def main(live: LiveSwarm) -> None:
        before = live.autoscaler.decisions
        for _ in range(30):
            await live.submit([TaskIn("sleep", 0.05) for _ in range(4)])
            await asyncio.sleep(0.05)
        await until(lambda: live.autoscaler.decisions >= before + 5, "decisions")
        assert agents(live) == 1
        made = [d for d in decisions(live) if "desired" in d]
        assert made
        assert not any(d["acts"] for d in made)
        assert all(d["forecast_only"] for d in made)
        reasons = [r.reason for r in live.store.decisions("scaled", "autoscale")]
        assert any(reason.startswith("hpa: forecast only: would run") for reason in reasons)
        # It did see the surge: the policy asked for more than it has.
        assert any(d["raw"] > 1 for d in made)

    run(main, tmp_path, mode="forecast_only")


def test_dry_runs_change_nothing(tmp_path: Path) -> None:
    async def main(live: LiveSwarm) -> None:
        live.autoscaler.disable()
        for _ in range(10):
            await live.submit([TaskIn("sleep", 0.05) for _ in range(4)])
            await asyncio.sleep(0.05)
        recorded = len(live.store.decisions("scaled"))
        plan = live.scale_plan(4)
        assert (plan["before"], plan["after"], plan["adds"], plan["removed"]) == (1, 4, 3, [])
        preview = await live.autoscale("hpa", dry_run=True)
        recommendation = preview["recommendation"]
        assert recommendation["policy"] == "hpa"
        assert recommendation["raw"] >= 1
        assert {"utilisation", "queue"} <= set(recommendation["inputs"])
        assert not live.autoscaler.on
        assert agents(live) == 1
        assert len(live.store.decisions("scaled")) == recorded
        # What a dry run of a size says is what the size then does.
        await live.scale(3, observe=0)
        plan = live.scale_plan(1)
        done = await live.scale(1, observe=0)
        assert plan["removed"] == done["removed"]

    run(main, tmp_path)


def test_auto_on_then_a_size_by_hand_turns_it_off(tmp_path: Path) -> None:
    async def main(live: LiveSwarm) -> None:
        live.autoscaler.disable()
        on = await live.autoscale("keda")
        assert on["autoscale"]["on"]
        assert on["autoscale"]["policy"] == "keda"
        assert live.status()["autoscale"]["policy"] == "keda"
        done = await live.scale(2, observe=0)
        assert done["autoscale_turned_off"] is True
        assert not live.autoscaler.on
        with pytest.raises(UnknownName, match="hpa, keda, predictive, rl, static-peak"):
            await live.autoscale("hpaa")
        with pytest.raises(ConfigError, match="autoscale-eval"):
            await live.autoscale("oracle", dry_run=True)

    run(main, tmp_path)


def test_auto_without_a_section_keeps_a_large_swarm_its_size(tmp_path: Path) -> None:
    spec = parse_spec_yaml("swarm_id: big\nbackend: local\nagents: [{id: a, count: 14}]\n")
    live = LiveSwarm(spec, tmp_path)
    assert live.autoscaler.settings.max_agents == 14
    assert not live.autoscaler.settings.enabled


def test_forecasters_fit_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fit can take seconds of CPU: the swarm's loop must not be the thread that runs it.
    from swarmperf.autoscale import forecast

    fitted_on: list[threading.Thread] = []

    class Recording(forecast.SeasonalNaive):
        def fit(self, history: forecast.History) -> forecast.SeasonalNaive:
            fitted_on.append(threading.current_thread())
            return super().fit(history)

    monkeypatch.setitem(forecast.FORECASTERS, "seasonal-naive", Recording)
    text = (
        SPEC.format(backend="local", mode="forecast_only")
        .replace("policy: hpa", "policy: predictive")
        .replace(
            "mode: forecast_only",
            "mode: forecast_only\n  interval: 100ms\n  forecaster: seasonal-naive",
        )
    )

    async def go() -> None:
        live = LiveSwarm(parse_spec_yaml(text), tmp_path)
        await live.start()
        try:
            loop_thread = threading.current_thread()
            await until(lambda: len(fitted_on) >= 1, "a fit")
            preview = await live.autoscale("predictive", dry_run=True)
            assert preview["recommendation"]["policy"] == "predictive"
            assert loop_thread not in fitted_on
        finally:
            await live.stop()
            live.close()

    asyncio.run(go())

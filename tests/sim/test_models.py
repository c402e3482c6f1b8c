"""Service-time models and arrival processes: right on average, seeded, and strict about
their parameters."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from pathlib import Path

import pytest

from swarmperf.core.errors import ConfigError
from swarmperf.sim import (
    AgentModel,
    BatchArrivals,
    Constant,
    ConstantArrivals,
    CountArrivals,
    Empirical,
    Exponential,
    Lognormal,
    Outages,
    Pareto,
    PoissonArrivals,
    ReplayArrivals,
    ServiceModel,
    read_minute_trace,
)
from swarmperf.sim.models import check_offsets

NASA = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "datasets"
    / "traces"
    / "nasa_http_1995_requests_per_minute.csv"
)


@pytest.mark.parametrize(
    "model",
    [
        Constant(0.25),
        Exponential(0.25),
        Lognormal(0.25, 0.5),
        Pareto(0.25, 2.5),
        Empirical([0.1, 0.2, 0.45]),
    ],
    ids=lambda m: type(m).__name__,
)
def test_samples_average_to_the_mean(model: ServiceModel) -> None:
    rng = random.Random(7)
    draws = [model.sample(rng) for _ in range(40_000)]
    assert all(x >= 0 for x in draws)
    assert statistics.fmean(draws) == pytest.approx(model.mean, rel=0.05)


def test_same_seed_same_draws() -> None:
    model = Lognormal(1.0, 1.0)
    a, b = random.Random(3), random.Random(3)
    assert [model.sample(a) for _ in range(100)] == [model.sample(b) for _ in range(100)]


def test_pareto_never_goes_below_its_scale() -> None:
    model = Pareto(1.0, 1.5)
    rng = random.Random(1)
    assert min(model.sample(rng) for _ in range(10_000)) >= model.scale


BAD: list[tuple[Callable[[], object], str]] = [
    (lambda: Constant(-1.0), "constant.value"),
    (lambda: Exponential(0.0), "exponential.mean"),
    (lambda: Exponential(math.nan), "exponential.mean"),
    (lambda: Exponential(math.inf), "exponential.mean"),
    (lambda: Lognormal(-1.0, 0.5), "lognormal.mean"),
    (lambda: Lognormal(1.0, -0.5), "lognormal.sigma"),
    (lambda: Pareto(1.0, 1.0), "pareto.alpha"),
    (lambda: Pareto(0.0, 2.0), "pareto.mean"),
    (lambda: Empirical([]), "empirical.samples"),
    (lambda: Empirical([0.1, -2.0]), "empirical.samples[1]"),
    (lambda: AgentModel(speed=0.0), "agent_model.speed"),
    (lambda: Outages(mtbf=0.0, mttr=1.0), "outages.mtbf"),
    (lambda: Outages(mtbf=10.0, mttr=-1.0), "outages.mttr"),
    (lambda: PoissonArrivals(0.0), "arrival.rate"),
    (lambda: ConstantArrivals(-5.0), "arrival.rate"),
    (lambda: ReplayArrivals([0.0, -1.0]), "replay.times[1]"),
    (lambda: CountArrivals((3, -1), (0, 1)), "trace.counts[1]"),
    (lambda: CountArrivals((3, 1), (1, 1)), "trace.starts[1]"),
    (lambda: CountArrivals((3,), (0,), speedup=0.0), "trace.speedup"),
    (lambda: check_offsets([0.0, 2.0, 1.0], 3), "offsets[2]"),
    (lambda: check_offsets([0.0], 3), "offsets"),
]


@pytest.mark.parametrize(("make", "field"), BAD, ids=[field for _, field in BAD])
def test_bad_parameters_are_rejected_naming_the_field(
    make: Callable[[], object], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert info.value.fix  # and says how to fix it


def test_poisson_arrivals_have_the_rate_and_follow_the_seed() -> None:
    offsets = PoissonArrivals(200.0, seed=4).offsets(20_000)
    assert offsets == sorted(offsets)
    assert len(offsets) / offsets[-1] == pytest.approx(200.0, rel=0.03)
    assert offsets == PoissonArrivals(200.0, seed=4).offsets(20_000)
    assert offsets != PoissonArrivals(200.0, seed=5).offsets(20_000)


def test_constant_and_batch_arrivals() -> None:
    assert ConstantArrivals(4.0).offsets(3) == [0.0, 0.25, 0.5]
    assert BatchArrivals().offsets(2) == [0.0, 0.0]


def test_replay_sorts_and_refuses_to_invent_arrivals() -> None:
    replay = ReplayArrivals.from_timestamps([10.5, 10.0, 12.0])
    assert replay.offsets(3) == [0.0, 0.5, 2.0]
    with pytest.raises(ConfigError, match="only 3 arrivals"):
        replay.offsets(4)


def test_counts_spread_within_their_interval() -> None:
    trace = CountArrivals((2, 0, 3), (0, 1, 5), interval=60.0, seed=1)
    offsets = trace.offsets(5)
    assert offsets == sorted(offsets)
    assert all(0 <= x < 60 for x in offsets[:2])
    assert all(300 <= x < 360 for x in offsets[2:])
    assert CountArrivals((2, 0, 3), (0, 1, 5), speedup=60.0, seed=1).offsets(5) == pytest.approx(
        [x / 60 for x in offsets]
    )
    with pytest.raises(ConfigError, match="only 5 arrivals"):
        trace.offsets(6)


@pytest.mark.skipif(not NASA.exists(), reason="the NASA trace is not here")
def test_the_nasa_trace_reads_as_arrivals() -> None:
    trace = read_minute_trace(NASA, speedup=60.0)
    assert trace.total > 1_000_000
    offsets = trace.offsets(1_000)
    assert len(offsets) == 1_000
    assert offsets == sorted(offsets)
    assert sum(1 for x in offsets if x < 1.0) == trace.counts[0]  # minute 0, 60x faster


def test_trace_files_are_checked(tmp_path: Path) -> None:
    def trace(text: str) -> Path:
        path = tmp_path / "trace.csv"
        path.write_text(text, encoding="utf-8")
        return path

    with pytest.raises(ConfigError, match="minute_index, requests"):
        read_minute_trace(trace("minute,count\n0,1\n"))
    with pytest.raises(ConfigError) as info:
        read_minute_trace(trace("minute_index,requests\n0,4\n1,-2\n"))
    assert info.value.field == "trace line 3.requests"
    with pytest.raises(ConfigError) as info:
        read_minute_trace(trace("minute_index,requests\n3,4\n2,2\n"))
    assert info.value.field == "trace line 3.minute_index"
    with pytest.raises(ConfigError, match="whole numbers"):
        read_minute_trace(trace("minute_index,requests\n0,lots\n"))
    with pytest.raises(ConfigError, match="Cannot read"):
        read_minute_trace(tmp_path / "missing.csv")
    assert read_minute_trace(trace("minute_index,requests,x\n0,2,1\n4,1,1\n")).starts == (0, 4)

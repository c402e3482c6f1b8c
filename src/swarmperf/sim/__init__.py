"""Simulated swarms: the same coordinator and strategies, in virtual time, at scale."""

from swarmperf.sim.backend import SimBackend
from swarmperf.sim.calibrate import Calibration, calibrate
from swarmperf.sim.engine import Engine, VirtualClock
from swarmperf.sim.models import (
    AgentModel,
    ArrivalProcess,
    BatchArrivals,
    Constant,
    ConstantArrivals,
    CountArrivals,
    Empirical,
    Exponential,
    LinearService,
    Lognormal,
    Outages,
    Pareto,
    PoissonArrivals,
    ReplayArrivals,
    ServiceModel,
    TaskServiceModel,
    read_minute_trace,
)
from swarmperf.sim.simulation import SimOutcome, SimProgress, Simulation

__all__ = [
    "AgentModel",
    "ArrivalProcess",
    "BatchArrivals",
    "Calibration",
    "Constant",
    "ConstantArrivals",
    "CountArrivals",
    "Empirical",
    "Engine",
    "Exponential",
    "LinearService",
    "Lognormal",
    "Outages",
    "Pareto",
    "PoissonArrivals",
    "ReplayArrivals",
    "ServiceModel",
    "SimBackend",
    "SimOutcome",
    "SimProgress",
    "Simulation",
    "TaskServiceModel",
    "VirtualClock",
    "calibrate",
    "read_minute_trace",
]

"""The benchmark's default target is the demo swarm without its planted failures."""

from __future__ import annotations

from swarmperf.bench.suite import healthy_demo_spec, make_target_factory
from swarmperf.spec import demo_spec


def test_the_default_target_is_the_demo_without_planted_failures() -> None:
    healthy, demo = healthy_demo_spec(), demo_spec()
    assert demo.workload.failure_rate > 0  # the demo itself still shows failures
    assert healthy.workload.failure_rate == 0
    assert healthy.agent_specs() == demo.agent_specs()
    _, description = make_target_factory()
    assert description == "swarm 'demo' (local, 8 agents)"

"""A spec whose tasks send messages: the run report has its communication matrix."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from swarmperf.app.run import run_spec
from swarmperf.routing import Routes
from swarmperf.spec import load_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mapreduce.yaml"


@pytest.mark.parametrize("backend", ["local", "sim"])
def test_the_map_reduce_example_reports_who_talked_to_whom(backend: str) -> None:
    spec = load_spec(EXAMPLE).model_copy(update={"backend": backend})
    outcome = asyncio.run(run_spec(spec, handle_signals=False))
    messages = outcome.report.messages
    assert messages is not None
    tasks = outcome.report.tasks_succeeded
    assert messages["sent"] == messages["delivered"] == tasks
    matrix = messages["matrix"]
    agents = matrix["agents"]
    reducers = [agents.index("reducer-0"), agents.index("reducer-1")]
    received = [sum(row[j] for row in matrix["messages"]) for j in range(len(agents))]
    assert sum(received[j] for j in reducers) == tasks
    # Every message took its hybrid route: hops and relays as the topology says.
    routes = Routes(spec.topology.to_settings(), [a.id for a in spec.agent_specs()])
    hops = sum(
        count * routes.hops(agents[i], agents[j])
        for i, row in enumerate(matrix["messages"])
        for j, count in enumerate(row)
    )
    assert messages["hops"] == sum(map(sum, matrix["links"])) == hops
    assert messages["connections"] == routes.connections()

"""One clock in the store: a run's events are on UNIX time, like the run and its metrics,
whether the swarm ran for real or in virtual time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from swarmperf.app.run import run_spec
from swarmperf.spec import parse_spec_yaml
from swarmperf.store import Store

SPEC = """
swarm_id: clocked
backend: {backend}
agents:
  - id: w
    count: 2
workload:
  tasks: 100
  kind: sleep
  size: 1ms
  failure_rate: 0.6          # enough to open breakers: events to look at
resilience:
  breaker: {{open_for: 10ms}}
monitor:
  enabled: false
"""


@pytest.mark.parametrize("backend", ["local", "sim"])
def test_stored_events_are_on_the_run_s_own_unix_time(tmp_path: Path, backend: str) -> None:
    with Store.open(tmp_path / "s.db") as store:
        outcome = asyncio.run(run_spec(parse_spec_yaml(SPEC.format(backend=backend)), store=store))
        assert outcome.run_id is not None
        run = store.get_run(outcome.run_id)
        assert run is not None
        assert run.finished_at is not None
        events = store.events("clocked", run_kind=None)
    assert events  # breakers opened and closed: there is something to look at
    for event in events:
        assert run.started_at - 1 <= event.ts <= run.finished_at + 1, event

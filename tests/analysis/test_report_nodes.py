"""`performance-report` names the nodes agents ran on, from the store's `agent_nodes`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from rich.console import Console

from swarmperf.analysis.report import build_report, render_detailed, to_json
from swarmperf.app.run import run_spec
from swarmperf.core.events import AGENT_PLACED
from swarmperf.spec import parse_spec_yaml
from swarmperf.store import Store

SPEC = """
swarm_id: placed
agents:
  - id: a
    count: 2
workload:
  tasks: 20
  kind: sleep
  size: 1ms
monitor:
  enabled: false
"""
HEAD, FAR = "5c1e0b2f" + "0" * 48, "9a07d1c3" + "1" * 48


def test_the_detailed_report_and_its_json_name_each_agent_s_nodes(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        outcome = asyncio.run(run_spec(parse_spec_yaml(SPEC), store=store))
        assert outcome.run_id is not None
        run = store.get_run(outcome.run_id)
        assert run is not None
        assert run.finished_at is not None
        # As a Ray run records them: a-1 started on FAR and was restarted on HEAD.
        for ts, agent, node in ((1.0, "a-0", HEAD), (2.0, "a-1", FAR), (3.0, "a-1", HEAD)):
            detail = {"node": node, "address": "10.0.0.1"}
            store.record_event("placed", run.id, run.started_at + ts, AGENT_PLACED, agent, detail)
        report = build_report(
            store, "placed", since=run.started_at - 60, until=run.finished_at + 60
        )
    assert report is not None
    assert report.agents["a-0"]["nodes"] == [HEAD]
    assert report.agents["a-1"]["nodes"] == [FAR, HEAD]
    assert json.loads(to_json(report))["agents"]["a-1"]["nodes"] == [FAR, HEAD]
    console = Console(record=True, width=160)
    render_detailed(report, console)
    assert "9a07d1c3 -> 5c1e0b2f" in console.export_text()

"""A real run with an alerting file: its SLA breach reaches a webhook on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from swarmperf.app.run import run_spec
from swarmperf.core.errors import ConfigError
from swarmperf.spec import parse_spec_yaml
from swarmperf.store import Store
from tests.alerting.test_sinks import Receiver

SPEC = """\
swarm_id: alerted
agents:
  - id: a
    count: 2
workload:
  tasks: 400
  kind: sleep
  size: {{value: 5ms}}
monitor:
  interval: 0.2s
  alerting: {alerting}
"""

# The swarm does about 400 tasks/s: a 1,000,000/s objective is breached from the start.
ALERTING = """\
evaluation_interval: 0.2s
rules:
  - name: throughput
    metric: swarm.throughput_per_s
    aggregation: last
    window: 1s
    comparison: ">="
    threshold: 1000000/s
    for: 0s
alerting:
  group_wait: 0s
  group_interval: 0s
sinks:
  - {{type: webhook, name: hook, url: "{url}"}}
"""


def test_a_breached_objective_is_sent_to_the_webhook(tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        alerting = tmp_path / "alerting.yaml"
        alerting.write_text(ALERTING.format(url=receiver.url))
        spec = parse_spec_yaml(SPEC.format(alerting=alerting))
        with Store.open(tmp_path / "s.db") as store:
            asyncio.run(run_spec(spec, store=store))
            states = store.alert_states("alerted")
    finally:
        receiver.close()
    firing = [r["body"] for r in receiver.requests if r["body"]["status"] == "firing"]
    assert firing, "no firing notification reached the webhook"
    alert = firing[0]["alerts"][0]
    assert alert["labels"]["alertname"] == "throughput"
    assert states, "the alert's state was not kept in the store"


def test_a_missing_alerting_file_names_the_field(tmp_path: Path) -> None:
    spec = parse_spec_yaml(SPEC.format(alerting=tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"monitor\.alerting"):
        asyncio.run(run_spec(spec))

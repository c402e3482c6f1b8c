"""Alert sinks against real receivers on loopback: HTTP (webhook, Slack, PagerDuty) and SMTP."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from swarmperf.alerting.alerts import (
    AlertManager,
    AlertObserver,
    EvaluationReport,
    Notification,
    NotifiedAlert,
    RouteSettings,
)
from swarmperf.alerting.sinks import (
    PAGERDUTY_URL,
    AlertingFile,
    EmailSink,
    PagerDutySink,
    RetryPolicy,
    SlackSink,
    WebhookSink,
    alertmanager_payload,
    build_observer,
    build_sink,
    parse_sinks,
)
from swarmperf.alerting.sla import SlaError, evaluate, parse_rules
from swarmperf.core.latency import LatencySummary
from swarmperf.monitor.snapshot import SwarmFigures
from swarmperf.store import Store
from tests.conftest import FakeClock

FAST = RetryPolicy(attempts=4, backoff=0.001, max_backoff=0.004, timeout=2.0)


class Receiver:
    """An HTTP server on 127.0.0.1:0 that records JSON bodies; answers from `codes` first."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.codes: list[int] = []
        self.delay = 0.0
        self.gate = threading.Event()  # requests are answered only once it is set
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                receiver.requests.append(
                    {"path": self.path, "body": body, "headers": dict(self.headers)}
                )
                if receiver.delay:
                    time.sleep(receiver.delay)
                receiver.gate.wait(timeout=10)
                code = receiver.codes.pop(0) if receiver.codes else 202
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "ok"}')

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def bound_port(server: object) -> int:
    assert isinstance(server, asyncio.Server)
    return int(server.sockets[0].getsockname()[1])


class LoopbackController(Controller):
    """An aiosmtpd controller on port 0: its start-up self-check dials the port it got."""

    def _trigger_server(self) -> None:
        self.port = bound_port(self.server)
        super()._trigger_server()  # type: ignore[no-untyped-call]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = LoopbackController(box, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield box, bound_port(controller.server)
    finally:
        controller.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alert(
    status: str = "firing", severity: str = "critical", agent: str | None = None
) -> NotifiedAlert:
    labels = {"alertname": "response_time", "severity": severity}
    if agent:
        labels["agent"] = agent
    return NotifiedAlert(
        status=status,  # type: ignore[arg-type]
        labels=labels,
        annotations={"summary": "p99 latency 950ms (objective <= 1s)"},
        starts_at=1767225600.0,
        ends_at=None if status == "firing" else 1767225900.0,
        fingerprint=f"fp-{severity}-{agent}",
        value=0.95,
    )


def note(*alerts: NotifiedAlert, status: str = "firing") -> Notification:
    return Notification(
        receiver="ops",
        group_key="{}:{alertname='response_time'}",
        group_labels={"alertname": "response_time"},
        status=status,  # type: ignore[arg-type]
        alerts=alerts or (alert(),),
        external_url="http://swarm.example/",
    )


class Sleeps:
    def __init__(self) -> None:
        self.pauses: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


# -- webhook ----------------------------------------------------------------------------


def test_webhook_posts_alertmanager_json(receiver: Receiver) -> None:
    n = note(alert(), alert(severity="warning"))
    outcome = WebhookSink("ops", receiver.url, FAST).send(n)
    assert (outcome.ok, outcome.attempts) == (True, 1)
    [request] = receiver.requests
    body = request["body"]
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "ops"
    assert body["groupKey"] == n.group_key
    assert body["groupLabels"] == {"alertname": "response_time"}
    assert body["commonLabels"] == {"alertname": "response_time"}
    assert body["commonAnnotations"] == {"summary": "p99 latency 950ms (objective <= 1s)"}
    assert body["externalURL"] == "http://swarm.example/"
    first = body["alerts"][0]
    assert set(first) >= {"status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"}
    assert first["startsAt"] == "2026-01-01T00:00:00Z"
    assert first["endsAt"] == "0001-01-01T00:00:00Z"
    assert request["headers"]["Content-Type"] == "application/json"


def test_webhook_retries_5xx_and_429_then_succeeds(receiver: Receiver) -> None:
    receiver.codes = [500, 503, 429]
    sleeps = Sleeps()
    outcome = WebhookSink("ops", receiver.url, FAST, sleep=sleeps).send(note())
    assert (outcome.ok, outcome.attempts) == (True, 4)
    assert len(receiver.requests) == 4
    assert len(sleeps.pauses) == 3


def test_webhook_does_not_retry_a_4xx(receiver: Receiver) -> None:
    receiver.codes = [400]
    outcome = WebhookSink("ops", receiver.url, FAST).send(note())
    assert (outcome.ok, outcome.attempts) == (False, 1)
    assert "HTTP 400" in (outcome.error or "")
    assert len(receiver.requests) == 1


def test_webhook_gives_up_after_its_attempts(receiver: Receiver) -> None:
    receiver.codes = [500] * 10
    outcome = WebhookSink("ops", receiver.url, FAST).send(note())
    assert (outcome.ok, outcome.attempts) == (False, 4)
    assert len(receiver.requests) == 4


def test_a_connection_error_is_retried_and_reported_not_raised() -> None:
    sleeps = Sleeps()
    outcome = WebhookSink("ops", f"http://127.0.0.1:{closed_port()}/", FAST, sleep=sleeps).send(
        note()
    )
    assert (outcome.ok, outcome.attempts) == (False, 4)
    assert "ConnectError" in (outcome.error or "")


def test_a_slow_receiver_times_out_and_is_retried(receiver: Receiver) -> None:
    receiver.delay = 0.3
    policy = RetryPolicy(attempts=2, backoff=0.001, timeout=0.05)
    outcome = WebhookSink("ops", receiver.url, policy).send(note())
    assert (outcome.ok, outcome.attempts) == (False, 2)
    assert "Timeout" in (outcome.error or "")


def test_backoff_doubles_to_its_cap_with_seeded_jitter() -> None:
    policy = RetryPolicy(attempts=8, backoff=1.0, max_backoff=8.0)
    rng = random.Random(7)
    pauses = [policy.delay(i, rng) for i in range(1, 7)]
    caps = [1, 2, 4, 8, 8, 8]
    assert all(cap / 2 <= p <= cap for p, cap in zip(pauses, caps, strict=True))
    assert pauses == [policy.delay(i, random.Random(7)) for i in range(1, 2)] + pauses[1:]
    again = random.Random(7)
    assert [policy.delay(i, again) for i in range(1, 7)] == pauses
    assert len(set(pauses[3:])) == 3  # jitter: equal caps, different pauses


# -- Slack and PagerDuty ----------------------------------------------------------------


def test_slack_gets_text_and_blocks(receiver: Receiver) -> None:
    outcome = SlackSink("chat", receiver.url, FAST).send(note(alert(agent="a-1")))
    assert outcome.ok
    body = receiver.requests[0]["body"]
    assert body["text"].startswith("[FIRING:1] response_time")
    assert "agent a-1" in body["text"]
    assert body["blocks"][0]["type"] == "header"
    assert "p99 latency 950ms" in body["blocks"][1]["text"]["text"]


def test_pagerduty_triggers_and_resolves_with_a_stable_dedup_key(receiver: Receiver) -> None:
    sink = PagerDutySink("pd", "KEY123", receiver.url, FAST, source="swarm-1")
    assert sink.send(note(alert(), alert(severity="warning"))).ok
    assert sink.send(note(alert("resolved"), status="resolved")).ok
    events = [r["body"] for r in receiver.requests]
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "resolve"]
    assert {e["routing_key"] for e in events} == {"KEY123"}
    assert events[0]["dedup_key"] == events[2]["dedup_key"] != events[1]["dedup_key"]
    payload = events[0]["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "swarm-1"
    assert "p99 latency 950ms" in payload["summary"]
    assert events[1]["payload"]["severity"] == "warning"
    assert "payload" not in events[2]


def test_pagerduty_default_url() -> None:
    assert (
        PagerDutySink("pd", "k").url == PAGERDUTY_URL == "https://events.pagerduty.com/v2/enqueue"
    )


# -- email ------------------------------------------------------------------------------


def test_email_is_sent_over_smtp(smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    sink = EmailSink("mail", "127.0.0.1", port, "swarm@example.com", ["ops@example.com"], FAST)
    outcome = sink.send(note(alert(), alert(severity="warning")))
    assert (outcome.ok, outcome.attempts) == (True, 1)
    [message] = box.messages
    assert message["Subject"] == "[FIRING:2] response_time"
    assert message["From"] == "swarm@example.com"
    assert box.envelopes == [("swarm@example.com", ["ops@example.com"])]
    body = message.get_payload()
    assert isinstance(body, str)
    assert "p99 latency 950ms" in body
    sink.send(note(alert("resolved"), status="resolved"))
    assert box.messages[1]["Subject"] == "[RESOLVED] response_time"


def test_email_failures_are_reported_not_raised(smtp: tuple[Mailbox, int]) -> None:
    _, port = smtp
    down = EmailSink("mail", "127.0.0.1", closed_port(), "a@b.c", ["d@e.f"], FAST).send(note())
    assert (down.ok, down.attempts) == (False, 4)
    # The test server offers no STARTTLS: a permanent failure, reported after one attempt.
    tls = EmailSink("mail", "127.0.0.1", port, "a@b.c", ["d@e.f"], FAST, starttls=True)
    outcome = tls.send(note())
    assert (outcome.ok, outcome.attempts) == (False, 1)
    assert "STARTTLS" in (outcome.error or "")


# -- with the manager -------------------------------------------------------------------


def test_a_delivery_failing_after_retries_is_sent_at_the_next_evaluation(
    receiver: Receiver, clock: FakeClock
) -> None:
    rules = parse_rules(
        {
            "rules": [
                {
                    "name": "lat",
                    "metric": "swarm.latency.p99",
                    "comparison": "<=",
                    "threshold": "1s",
                    "severity": "warning",
                }
            ]
        }
    )
    route = RouteSettings(group_wait=0, group_interval=0)
    m = AlertManager(rules, route, [WebhookSink("hook", receiver.url, FAST)], clock=clock)
    receiver.codes = [500] * 4  # every attempt of the first evaluation fails
    clock.advance(60)
    report = m.evaluate(evaluate(rules, [(clock.now, {"swarm.latency.p99": 2.0})]))
    assert [(d.ok, d.attempts) for d in report.deliveries] == [(False, 4)]
    clock.advance(60)
    report = m.evaluate(evaluate(rules, [(clock.now, {"swarm.latency.p99": 2.0})]))
    assert [(d.ok, d.attempts) for d in report.deliveries] == [(True, 1)]
    assert len(receiver.requests) == 5
    assert receiver.requests[-1]["body"]["alerts"][0]["status"] == "firing"
    clock.advance(60)
    m.evaluate(evaluate(rules, [(clock.now, {"swarm.latency.p99": 2.0})]))
    assert len(receiver.requests) == 5  # delivered: not sent again


# -- configuration ----------------------------------------------------------------------

ALERTING_YAML = """\
evaluation_interval: 30s
rules:
  - name: response_time
    metric: swarm.latency.p99
    comparison: "<="
    threshold: 1000ms
alerting:
  group_by: [alertname]
  group_wait: 10s
  repeat_interval: 1h
sinks:
  - {type: webhook, name: hook, url: "http://127.0.0.1:9/hook", retry: {attempts: 5}}
  - {type: slack, name: chat, url: "https://hooks.slack.com/services/T/B/X"}
  - {type: pagerduty, name: pd, routing_key_env: SWARMPERF_TEST_PD_KEY}
  - {type: email, name: mail, host: smtp.example.com, port: 587, starttls: true,
     from: swarm@example.com, to: [ops@example.com], username: swarm,
     password_env: SWARMPERF_TEST_SMTP_PASSWORD}
"""


def test_an_alerting_file_loads_and_builds_its_sinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "alerting.yaml"
    path.write_text(ALERTING_YAML)
    loaded = AlertingFile.load(path)
    assert loaded.rules.evaluation_interval == 30.0
    assert loaded.route.group_wait == 10.0
    assert [c.name for c in loaded.sinks] == ["hook", "chat", "pd", "mail"]
    assert loaded.sinks[0].retry.attempts == 5
    with pytest.raises(SlaError, match="SWARMPERF_TEST_PD_KEY"):
        build_sink(loaded.sinks[2])
    monkeypatch.setenv("SWARMPERF_TEST_PD_KEY", "k")
    monkeypatch.setenv("SWARMPERF_TEST_SMTP_PASSWORD", "p")
    sinks = [build_sink(c) for c in loaded.sinks]
    assert [type(s).__name__ for s in sinks] == [
        "WebhookSink",
        "SlackSink",
        "PagerDutySink",
        "EmailSink",
    ]
    assert isinstance(sinks[2], PagerDutySink)
    assert sinks[2].routing_key == "k"
    assert isinstance(sinks[3], EmailSink)
    assert (sinks[3].starttls, sinks[3].password) == (True, "p")


@pytest.mark.parametrize(
    ("sinks", "where", "words"),
    [
        ([{"type": "pigeon", "name": "p"}], "sinks.0", "pigeon"),
        ([{"type": "webhook", "name": "h", "url": "ftp://x"}], "sinks.0.webhook.url", "ftp://x"),
        ([{"type": "pagerduty", "name": "p"}], "sinks.0.pagerduty", "routing_key"),
        (
            [{"type": "email", "name": "m", "host": "h", "from": "nobody", "to": ["a@b.c"]}],
            "sinks.0.email.from",
            "nobody",
        ),
        ([{"type": "slack", "name": "s", "url": "http://x"}] * 2, "sinks[1].name", "twice"),
    ],
)
def test_bad_sinks_are_refused_naming_the_field(
    sinks: list[dict[str, Any]], where: str, words: str
) -> None:
    with pytest.raises(SlaError) as info:
        parse_sinks(sinks)
    assert info.value.problems[0][0] == where
    assert words in str(info.value)


def test_the_alertmanager_payload_of_a_resolved_group() -> None:
    body = alertmanager_payload(note(alert("resolved"), status="resolved"))
    assert body["status"] == "resolved"
    assert body["alerts"][0]["endsAt"] == "2026-01-01T00:05:00Z"


def queue_figures(ts: float, depth: int) -> SwarmFigures:
    q = LatencySummary(count=0)
    return SwarmFigures(
        ts=ts,
        window_s=10,
        completed=1,
        failed=0,
        throughput_per_s=0.1,
        error_rate=0.0,
        availability=1.0,
        latency=q,
        wait=q,
        service=q,
        queue_depth=depth,
        queue_depth_by_priority={},
        balance_cv=None,
        agents={},
    )


def test_an_observer_built_from_a_file_alerts_a_real_receiver(
    receiver: Receiver, tmp_path: Path
) -> None:
    path = tmp_path / "alerting.yaml"
    path.write_text(
        "evaluation_interval: 10s\n"
        "rules:\n"
        "  - {name: queue, metric: swarm.queue_depth, comparison: '<=', threshold: 100,\n"
        "     window: 20s, annotations: {summary: 'queue at {value}'}}\n"
        "alerting: {group_wait: 0s, group_interval: 0s}\n"
        f"sinks:\n  - {{type: webhook, name: hook, url: '{receiver.url}'}}\n"
    )
    clock = FakeClock(1000.0)
    with Store.open(tmp_path / "s.db", clock=clock) as store:
        observer = build_observer(AlertingFile.load(path), clock=clock, store=store, swarm_id="x")
        for depth in (5, 500, 500, 5, 5, 5):
            clock.advance(10)
            observer(queue_figures(clock.now, depth), None)
        assert store.alert_states("x") == {}
    bodies = [r["body"] for r in receiver.requests]
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert bodies[0]["alerts"][0]["annotations"]["summary"] == "queue at 252.5"
    assert bodies[0]["alerts"][0]["labels"] == {"alertname": "queue", "severity": "critical"}


def test_the_example_in_the_alerting_docs_is_a_valid_file() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"
    text = docs.read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    loaded = AlertingFile.parse(yaml.safe_load(example), "docs/alerting.md")
    assert [r.name for r in loaded.rules.rules] == ["response_time", "busy_agent"]
    assert [s.name for s in loaded.sinks] == ["oncall", "chat", "pager", "mail"]
    assert loaded.route.silences[0].ends_at - loaded.route.silences[0].starts_at == 4 * 3600


def last_report(observer: AlertObserver) -> EvaluationReport | None:
    return observer.last_report


def test_a_background_observer_does_not_wait_for_a_blocked_receiver(
    receiver: Receiver, tmp_path: Path
) -> None:
    path = tmp_path / "alerting.yaml"
    path.write_text(
        "evaluation_interval: 10s\n"
        "rules: [{name: queue, metric: swarm.queue_depth, comparison: '<=', threshold: 100}]\n"
        "alerting: {group_wait: 0s}\n"
        f"sinks: [{{type: webhook, name: hook, url: '{receiver.url}', retry: {{timeout: 20s}}}}]\n"
    )
    receiver.gate.clear()  # the receiver holds every request until the gate opens
    clock = FakeClock(1000.0)
    observer = build_observer(AlertingFile.load(path), clock=clock, background=True)
    try:
        observer(queue_figures(clock.now, 500), None)  # returns while the POST is held
        assert last_report(observer) is None
    finally:
        receiver.gate.set()
        observer.close()
    report = last_report(observer)  # set by the worker thread meanwhile
    assert report is not None
    assert [(d.sink, d.ok) for d in report.deliveries] == [("hook", True)]
    assert receiver.requests[0]["body"]["status"] == "firing"

"""Secrets in an alerting file never reach the terminal, the store or a report.

A real `swarmperf run` alerts through every kind of sink, each pointed at a loopback
receiver that fails and quotes back what it was sent; then every output is searched for
every planted secret.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult

from swarmperf.alerting.sinks import (
    AlertingFile,
    WebhookSink,
    build_observer,
    build_sink,
    parse_sinks,
)
from swarmperf.alerting.sla import SlaError
from swarmperf.store import Store, database_path
from tests.alerting.test_sinks import FAST, LoopbackController, Mailbox, bound_port, note

SLACK_PATH = "T0SLACK11/B0SLACK22/slackpathsecret0123456789"
QUERY_TOKEN = "querytokensecret0123"
URL_PASSWORD = "urlpasswordsecret42"
BEARER = "bearertokensecret77"
ROUTING_KEY = "routingkeysecret0099"
SMTP_PASSWORD = "smtppasswordsecret55"
SECRETS = {
    "slack path": "slackpathsecret0123456789",
    "query token": QUERY_TOKEN,
    "url password": URL_PASSWORD,
    "url password, as basic auth": base64.b64encode(f"ops:{URL_PASSWORD}".encode()).decode(),
    "bearer token": BEARER,
    "routing key": ROUTING_KEY,
    "smtp password": SMTP_PASSWORD,
}


class Echo:
    """An HTTP server on 127.0.0.1:0 that answers 500, quoting the request back (as some
    receivers do in their error pages): path, query, credentials header and body."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                text = f"no such hook {self.path} {self.headers} {body.decode()}"
                echo.seen.append(text)
                self.send_response(500)
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.close()


@pytest.fixture
def strict_smtp() -> Iterator[tuple[list[bytes], int]]:
    """An SMTP server that offers AUTH without TLS and refuses every login."""
    tried: list[bytes] = []

    def refuse(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        tried.append(getattr(data, "password", b"") or b"")
        return AuthResult(success=False, handled=False)

    controller = LoopbackController(
        Mailbox(), hostname="127.0.0.1", port=0, authenticator=refuse, auth_require_tls=False
    )
    controller.start()
    try:
        yield tried, bound_port(controller.server)
    finally:
        controller.stop()


SPEC = """\
swarm_id: secretive
agents:
  - id: a
    count: 2
workload:
  tasks: 300
  kind: sleep
  size: {{value: 5ms}}
monitor:
  interval: 0.2s
  alerting: {alerting}
"""

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
alerting: {{group_wait: 0s, group_interval: 0s}}
sinks:
  - type: webhook
    name: hook
    url: "http://{base}/hook?token={token}"
    headers: {{Authorization: "Bearer {bearer}"}}
    retry: {{attempts: 2, backoff: 10ms, max_backoff: 10ms, timeout: 2s}}
  - type: slack
    name: chat
    url: "http://{base}/services/{slack}"
    retry: {{attempts: 2, backoff: 10ms, max_backoff: 10ms, timeout: 2s}}
  - type: pagerduty
    name: pd
    routing_key_env: SWARMPERF_TEST_PD_KEY
    url: "http://ops:{password}@{base}/v2/enqueue"
    retry: {{attempts: 2, backoff: 10ms, max_backoff: 10ms, timeout: 2s}}
  - type: email
    name: mail
    host: 127.0.0.1
    port: {smtp_port}
    from: swarm@example.com
    to: [ops@example.com]
    username: swarm
    password_env: SWARMPERF_TEST_SMTP_PASSWORD
    retry: {{attempts: 2, backoff: 10ms, max_backoff: 10ms, timeout: 2s}}
"""


def swarmperf(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "swarmperf", *args],
        capture_output=True,
        env=env,
        timeout=240,
        check=False,
    )


def leaks(blob: bytes) -> list[str]:
    return [name for name, secret in SECRETS.items() if secret.encode() in blob]


@pytest.mark.slow
def test_planted_secrets_appear_in_no_output_file_or_store(
    tmp_path: Path, echo: Echo, strict_smtp: tuple[list[bytes], int]
) -> None:
    tried, smtp_port = strict_smtp
    alerting = tmp_path / "alerting.yaml"
    alerting.write_text(
        ALERTING.format(
            base=echo.base,
            password=URL_PASSWORD,
            token=QUERY_TOKEN,
            bearer=BEARER,
            slack=SLACK_PATH,
            smtp_port=smtp_port,
        )
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(alerting=alerting))
    data = tmp_path / "data"
    env = {
        **os.environ,
        "SWARMPERF_TEST_PD_KEY": ROUTING_KEY,
        "SWARMPERF_TEST_SMTP_PASSWORD": SMTP_PASSWORD,
        "COLUMNS": "200",
    }
    run = swarmperf("run", str(spec), "--output", "json", "--data-dir", str(data), env=env)
    assert run.returncode == 0, run.stderr.decode()
    report = swarmperf(
        "performance-report", "--swarm-id", "secretive", "--data-dir", str(data), env=env
    )
    assert report.returncode == 0, report.stderr.decode()

    # The receivers really were sent the secrets: the test is not vacuous.
    sent = "\n".join(echo.seen)
    for secret in (SLACK_PATH, QUERY_TOKEN, BEARER, ROUTING_KEY, "Authorization: Basic"):
        assert secret in sent
    assert SMTP_PASSWORD.encode() in tried
    with Store.open(database_path(data)) as store:
        failures = store.events("secretive", kind="alert_delivery_failed")
    assert {e.subject for e in failures} == {"hook", "chat", "pd", "mail"}
    assert any("HTTP 500" in json.dumps(e.detail) for e in failures)

    found = {"stdout": leaks(run.stdout), "stderr": leaks(run.stderr)}
    found["report"] = leaks(report.stdout + report.stderr)
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        found[str(path.relative_to(data))] = leaks(path.read_bytes())
    assert {where: names for where, names in found.items() if names} == {}
    # The delivery failures were reported, with the secrets masked, and the password sent
    # without TLS was warned about, once.
    stderr = run.stderr.decode()
    assert "alert delivery to hook failed" in stderr
    assert "***" in stderr
    assert stderr.count("without TLS") == 1, stderr


def test_smtp_login_without_tls_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARMPERF_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    path = tmp_path / "alerting.yaml"
    path.write_text(
        "rules: [{name: q, metric: swarm.queue_depth, comparison: '<=', threshold: 1}]\n"
        "sinks:\n"
        "  - {type: email, name: plain, host: 127.0.0.1, from: a@b.c, to: [d@e.f],\n"
        "     username: swarm, password_env: SWARMPERF_TEST_SMTP_PASSWORD}\n"
        "  - {type: email, name: tls, host: 127.0.0.1, from: a@b.c, to: [d@e.f], starttls: true,\n"
        "     username: swarm, password_env: SWARMPERF_TEST_SMTP_PASSWORD}\n"
        "  - {type: email, name: anonymous, host: 127.0.0.1, from: a@b.c, to: [d@e.f]}\n"
    )
    with Store.open(tmp_path / "s.db") as store:
        observer = build_observer(AlertingFile.load(path), store=store, swarm_id="x")
        observer.close()
        events = store.events("x", kind="alert_sink_insecure")
    assert [e.subject for e in events] == ["plain"]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1
    assert "plain" in warned[0]
    assert "without TLS" in warned[0]
    assert SMTP_PASSWORD not in warned[0]


def test_sinks_and_their_settings_print_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARMPERF_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    path = tmp_path / "alerting.yaml"
    path.write_text(
        "rules: [{name: q, metric: swarm.queue_depth, comparison: '<=', threshold: 1}]\n"
        "sinks:\n"
        f"  - {{type: webhook, name: hook, url: 'http://ops:{URL_PASSWORD}@127.0.0.1:9/h"
        f"?token={QUERY_TOKEN}', headers: {{Authorization: 'Bearer {BEARER}'}}}}\n"
        f"  - {{type: slack, name: chat, url: 'https://hooks.slack.com/services/{SLACK_PATH}'}}\n"
        f"  - {{type: pagerduty, name: pd, routing_key: {ROUTING_KEY}}}\n"
        "  - {type: email, name: mail, host: 127.0.0.1, from: a@b.c, to: [d@e.f],\n"
        "     starttls: true, username: swarm, password_env: SWARMPERF_TEST_SMTP_PASSWORD}\n"
    )
    loaded = AlertingFile.load(path)
    shown = repr(loaded.sinks) + repr([build_sink(c) for c in loaded.sinks])
    assert leaks(shown.encode()) == []
    assert "hooks.slack.com/services/***" in shown
    assert "127.0.0.1:9/h?token=***" in shown


@pytest.mark.parametrize(
    ("sink", "secret"),
    [
        (
            {"type": "slack", "name": "s", "url": f"ftp://hooks.slack.com/services/{SLACK_PATH}"},
            SLACK_PATH.rsplit("/", 1)[1],
        ),
        ({"type": "webhook", "name": "w", "url": f"ftp://h/x?token={QUERY_TOKEN}"}, QUERY_TOKEN),
        (
            {
                "type": "webhook",
                "name": "w",
                "url": "http://h/",
                "headers": {"X-Token": 9876543210},
            },
            "9876543210",
        ),
        (
            {"type": "pagerduty", "name": "p", "routing_key": ROUTING_KEY, "routing_key_env": "K"},
            ROUTING_KEY,
        ),
        (
            {"type": "email", "name": "m", "host": "h", "from": "a@b.c", "to": ["d@e.f"]}
            | {"password": SMTP_PASSWORD},
            SMTP_PASSWORD,
        ),
    ],
)
def test_a_refused_sink_setting_is_named_without_its_secret(
    sink: dict[str, Any], secret: str
) -> None:
    with pytest.raises(SlaError) as info:
        parse_sinks([sink])
    message = str(info.value)
    assert "sinks.0" in message
    assert secret not in message
    assert info.value.__cause__ is None  # pydantic's own message quotes every input


def test_a_sink_with_a_malformed_url_reports_it_masked_and_does_not_raise() -> None:
    sink = WebhookSink("w", f"http://127.0.0.1:99999999/x?token={QUERY_TOKEN}", FAST)
    outcome = sink.send(note())
    assert not outcome.ok
    assert QUERY_TOKEN not in (outcome.error or "")

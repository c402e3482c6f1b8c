"""Where alert notifications go: webhook (Alertmanager JSON), Slack, PagerDuty, email.

Every sink has a timeout per attempt and retries with exponential backoff and jitter drawn
from a seeded RNG. HTTP sinks retry on connection errors, timeouts, 429 and 5xx, and give up
at once on other 4xx answers (the request itself is wrong; sending it again cannot help).
Email retries on connection errors and SMTP 4xx replies. A sink never raises for a failed
delivery: it returns a `SendOutcome` saying what went wrong, and the alert manager tries
again at its next evaluation.

What a sink reports, and how it shows itself, never carries its secrets: URL tokens (a
Slack webhook's path, query strings, `user:password@`), credential headers, the PagerDuty
routing key and the SMTP password are masked (`swarmperf.core.redact`), even when a receiver
quotes them back in its error page.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import httpx
from pydantic import Field, TypeAdapter, ValidationError, model_validator

from swarmperf.alerting.alerts import (
    AlertManager,
    AlertObserver,
    Notification,
    NotifiedAlert,
    RouteSettings,
    SendOutcome,
    Sink,
    parse_route,
)
from swarmperf.alerting.sla import (
    Problem,
    RuleSet,
    SlaError,
    parse_rules,
    validation_problems,
)
from swarmperf.core.redact import (
    MASK,
    auth_secrets,
    header_secrets,
    redact_headers,
    redact_text,
    redact_url,
    url_secrets,
)
from swarmperf.spec.types import Name, PositiveDuration, Section, problem
from swarmperf.store.sqlite import Store

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
_USER_AGENT = "swarmperf-alerts"
INSECURE_EVENT = "alert_sink_insecure"

log = logging.getLogger(__name__)


class RetryPolicy(Section):
    """How hard a sink tries: `attempts` in all, pauses doubling from `backoff` to a cap."""

    attempts: Annotated[int, Field(ge=1, le=20)] = 3
    backoff: PositiveDuration = 0.5
    max_backoff: PositiveDuration = 10.0
    timeout: PositiveDuration = 5.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """Pause before retry number `retry` (1-based): half fixed, half jitter, so that
        many senders retrying at once spread out but none retries immediately."""
        cap = min(self.max_backoff, self.backoff * 2.0 ** (retry - 1))
        return cap / 2 + rng.uniform(0, cap / 2)


class _Retrying:
    """Runs one delivery attempt function with the policy's retries."""

    def __init__(
        self, policy: RetryPolicy, seed: int, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.policy = policy
        self._rng = random.Random(seed)
        self._sleep = sleep

    def run(self, attempt: Callable[[], tuple[bool, bool, str | None]]) -> SendOutcome:
        """`attempt()` gives (ok, retryable, error)."""
        error: str | None = None
        for number in range(1, self.policy.attempts + 1):
            if number > 1:
                self._sleep(self.policy.delay(number - 1, self._rng))
            ok, retryable, error = attempt()
            if ok:
                return SendOutcome(True, number)
            if not retryable:
                return SendOutcome(False, number, error)
        return SendOutcome(False, self.policy.attempts, error)


def _basic_auth(url: str) -> list[str]:
    # httpx turns `user:password@` into an Authorization: Basic header, which a receiver
    # may quote back.
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return []
    if user is None and password is None:
        return []
    pair = f"{unquote(user or '')}:{unquote(password or '')}".encode()
    return [base64.b64encode(pair).decode("ascii")]


class HttpSink:
    """Base of the sinks that POST JSON: the retries and their classification live here."""

    # Whether the whole URL path is a credential (Slack: whoever has it can post).
    secret_path = False

    def __init__(
        self,
        name: str,
        url: str,
        retry: RetryPolicy | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.url = url
        self.headers = {"User-Agent": _USER_AGENT, **(headers or {})}
        self._retrying = _Retrying(retry or RetryPolicy(), seed, sleep)
        self.secrets = self._secrets()

    def _secrets(self) -> list[str]:
        found = url_secrets(self.url, secret_path=self.secret_path) + _basic_auth(self.url)
        return found + header_secrets(self.headers)

    @property
    def shown_url(self) -> str:
        """The URL with its credentials masked: what messages and reprs show."""
        return redact_url(self.url, secret_path=self.secret_path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, url={self.shown_url!r})"

    def scrub(self, text: str) -> str:
        """`text` without this sink's secrets (or any URL credentials)."""
        return redact_text(text, self.secrets)

    def payloads(self, notification: Notification) -> list[dict[str, Any]]:
        raise NotImplementedError

    def send(self, notification: Notification) -> SendOutcome:
        attempts = 0
        try:
            payloads = self.payloads(notification)
            timeout = self._retrying.policy.timeout
            with httpx.Client(timeout=timeout, headers=self.headers) as client:
                for payload in payloads:
                    outcome = self._retrying.run(lambda p=payload: self._post(client, p))  # type: ignore[misc]
                    attempts += outcome.attempts
                    if not outcome.ok:
                        return SendOutcome(False, attempts, outcome.error)
        except Exception as exc:  # e.g. a malformed URL: its message would quote it whole
            return SendOutcome(False, max(attempts, 1), self.scrub(f"{type(exc).__name__}: {exc}"))
        return SendOutcome(True, attempts)

    def _post(self, client: httpx.Client, payload: dict[str, Any]) -> tuple[bool, bool, str | None]:
        try:
            response = client.post(self.url, json=payload)
        except httpx.TransportError as exc:  # connect, read, timeout...
            return False, True, self.scrub(f"{type(exc).__name__}: {exc}")
        if response.is_success:
            return True, False, None
        code = response.status_code
        retryable = code == 429 or code >= 500
        # Scrub the whole answer before cutting it: a secret cut in half would not be found.
        # One line, so that a log line stays one line.
        answer = " ".join(self.scrub(response.text[:4096]).split())[:200]
        return False, retryable, f"HTTP {code} from {self.shown_url}: {answer}"


def _rfc3339(ts: float | None) -> str:
    # Alertmanager sends the zero time for "not ended yet".
    if ts is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def alertmanager_payload(notification: Notification) -> dict[str, Any]:
    """The notification as Alertmanager's webhook JSON (version 4)."""
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": 0,
        "status": notification.status,
        "receiver": notification.receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": notification.common_labels,
        "commonAnnotations": notification.common_annotations,
        "externalURL": notification.external_url,
        "alerts": [
            {
                "status": a.status,
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "startsAt": _rfc3339(a.starts_at),
                "endsAt": _rfc3339(a.ends_at),
                "generatorURL": notification.external_url,
                "fingerprint": a.fingerprint,
            }
            for a in notification.alerts
        ],
    }


class WebhookSink(HttpSink):
    """POSTs Alertmanager-compatible JSON to any URL."""

    def payloads(self, notification: Notification) -> list[dict[str, Any]]:
        return [alertmanager_payload(notification)]


def _title(notification: Notification) -> str:
    firing = sum(1 for a in notification.alerts if a.status == "firing")
    names = sorted({a.labels.get("alertname", "?") for a in notification.alerts})
    count = f":{firing}" if notification.status == "firing" else ""
    return f"[{notification.status.upper()}{count}] {', '.join(names)}"


def _line(alert: NotifiedAlert) -> str:
    summary = alert.annotations.get("summary") or alert.labels.get("alertname", "alert")
    severity = alert.labels.get("severity", "")
    agent = f" agent {alert.labels['agent']}" if "agent" in alert.labels else ""
    return f"{alert.status} {severity}{agent}: {summary}"


class SlackSink(HttpSink):
    """Posts to a Slack incoming webhook: a text fallback and Block Kit blocks."""

    secret_path = True

    def payloads(self, notification: Notification) -> list[dict[str, Any]]:
        title = _title(notification)
        lines = [_line(a) for a in notification.alerts]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "\n".join(f"• {ln}" for ln in lines)[:3000]},
            },
        ]
        if notification.external_url:
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": notification.external_url}],
                }
            )
        return [{"text": f"{title}\n" + "\n".join(lines), "blocks": blocks}]


_PD_SEVERITY = {"critical": "critical", "warning": "warning", "error": "error", "info": "info"}


class PagerDutySink(HttpSink):
    """PagerDuty Events API v2: one event per alert, deduplicated by the alert's fingerprint."""

    def __init__(
        self,
        name: str,
        routing_key: str,
        url: str = PAGERDUTY_URL,
        retry: RetryPolicy | None = None,
        *,
        source: str = "swarmperf",
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.routing_key = routing_key
        super().__init__(name, url, retry, seed=seed, sleep=sleep)
        self.source = source

    def _secrets(self) -> list[str]:
        return [*super()._secrets(), self.routing_key]

    def payloads(self, notification: Notification) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for alert in notification.alerts:
            event: dict[str, Any] = {
                "routing_key": self.routing_key,
                "event_action": "trigger" if alert.status == "firing" else "resolve",
                "dedup_key": alert.fingerprint,
            }
            if alert.status == "firing":
                event["payload"] = {
                    "summary": _line(alert)[:1024],
                    "severity": _PD_SEVERITY.get(alert.labels.get("severity", ""), "error"),
                    "source": self.source,
                    "timestamp": _rfc3339(alert.starts_at),
                    "custom_details": {
                        "labels": dict(alert.labels),
                        "annotations": dict(alert.annotations),
                        "value": alert.value,
                    },
                }
                if notification.external_url:
                    event["links"] = [{"href": notification.external_url, "text": "swarmperf"}]
            events.append(event)
        return events


class EmailSink:
    """Sends one email per notification over SMTP, with STARTTLS if asked."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        sender: str,
        to: Sequence[str],
        retry: RetryPolicy | None = None,
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.to = tuple(to)
        self.starttls = starttls
        self.username = username
        self.password = password
        self._retrying = _Retrying(retry or RetryPolicy(), seed, sleep)
        self.secrets = auth_secrets(username, password)

    def __repr__(self) -> str:
        password = None if self.password is None else MASK
        return (
            f"EmailSink(name={self.name!r}, host={self.host!r}, port={self.port!r}, "
            f"starttls={self.starttls!r}, username={self.username!r}, password={password!r})"
        )

    @property
    def sends_password_in_clear(self) -> bool:
        """It logs in (a password goes over the wire) on a connection without TLS."""
        return self.username is not None and not self.starttls

    def message(self, notification: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = _title(notification)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        body = [_title(notification), ""]
        for alert in notification.alerts:
            body.append(_line(alert))
            body += [f"  {k}: {v}" for k, v in sorted(alert.annotations.items())]
            body.append(
                f"  labels: {', '.join(f'{k}={v}' for k, v in sorted(alert.labels.items()))}"
            )
            body.append(f"  since: {_rfc3339(alert.starts_at)}")
        if notification.external_url:
            body += ["", notification.external_url]
        msg.set_content("\n".join(body) + "\n")
        return msg

    def send(self, notification: Notification) -> SendOutcome:
        try:
            msg = self.message(notification)
        except Exception as exc:  # e.g. an address the email package refuses
            return SendOutcome(False, 1, redact_text(f"{type(exc).__name__}: {exc}", self.secrets))
        return self._retrying.run(lambda: self._attempt(msg))

    def _attempt(self, msg: EmailMessage) -> tuple[bool, bool, str | None]:
        try:
            ok, retryable, error = self._try(msg)
        except Exception as exc:  # e.g. a password smtplib cannot encode: not worth a retry
            ok, retryable, error = False, False, f"{type(exc).__name__}: {exc}"
        # A server's reply may quote what it was sent, the credentials included.
        return ok, retryable, None if error is None else redact_text(error, self.secrets)

    def _try(self, msg: EmailMessage) -> tuple[bool, bool, str | None]:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self._retrying.policy.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username is not None:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            transient = 400 <= exc.smtp_code < 500
            return False, transient, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
        except smtplib.SMTPRecipientsRefused as exc:
            return False, False, f"recipients refused: {exc.recipients}"
        except smtplib.SMTPNotSupportedError as exc:  # e.g. no STARTTLS: asking again won't help
            return False, False, f"{type(exc).__name__}: {exc}"
        except (OSError, smtplib.SMTPException) as exc:
            return False, True, f"{type(exc).__name__}: {exc}"
        return True, False, None


# -- configuration ----------------------------------------------------------------------


class _SinkBase(Section):
    name: Name
    retry: RetryPolicy = RetryPolicy()

    def __repr_args__(self) -> Any:
        # A configuration printed in a log or a traceback must not carry its credentials.
        for key, value in super().__repr_args__():
            if key == "url" and isinstance(value, str):
                yield key, redact_url(value, secret_path=isinstance(self, SlackConfig))
            elif key == "headers" and isinstance(value, dict):
                yield key, redact_headers(value)
            elif key == "routing_key" and value is not None:
                yield key, MASK
            else:
                yield key, value


class WebhookConfig(_SinkBase):
    type: Literal["webhook"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    headers: dict[str, str] = Field(default_factory=dict)


class SlackConfig(_SinkBase):
    type: Literal["slack"]
    url: Annotated[str, Field(pattern=r"^https?://")]


class PagerDutyConfig(_SinkBase):
    type: Literal["pagerduty"]
    routing_key: str | None = None
    routing_key_env: str | None = None
    url: Annotated[str, Field(pattern=r"^https?://")] = PAGERDUTY_URL
    source: str = "swarmperf"

    @model_validator(mode="after")
    def _key(self) -> PagerDutyConfig:
        if (self.routing_key is None) == (self.routing_key_env is None):
            raise problem(
                "routing_key",
                "needs exactly one of routing_key and routing_key_env",
                "Give the integration key, or the environment variable holding it.",
                value=None if self.routing_key is None else MASK,
            )
        return self


class EmailConfig(_SinkBase):
    type: Literal["email"]
    host: str = Field(min_length=1)
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    from_: Annotated[str, Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")]
    to: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")], ...] = Field(min_length=1)
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None


SinkConfig = Annotated[
    WebhookConfig | SlackConfig | PagerDutyConfig | EmailConfig, Field(discriminator="type")
]
_SINKS: TypeAdapter[list[SinkConfig]] = TypeAdapter(list[SinkConfig])


def _masked(problem: Problem) -> Problem:
    """A problem whose bad value may be a credential (a URL with its token, a header, a
    key), shown with the credential masked."""
    path, value, what, fix = problem
    leaf = path.rsplit(".", 1)[-1]
    if leaf in ("routing_key", "password") or path.split(".")[-2:-1] == ["headers"]:
        return path, MASK, what, fix
    if isinstance(value, str):
        return path, redact_text(value), what, fix
    if isinstance(value, Mapping):
        return path, MASK, what, fix
    return problem


def parse_sinks(data: object, source: str = "sinks") -> list[SinkConfig]:
    """Validate an alerting file's `sinks:` list."""
    try:
        configs = _SINKS.validate_python(data if data is not None else [])
    except ValidationError as exc:
        problems = [_masked(p) for p in validation_problems(exc, "sinks")]
        raise SlaError(problems, source) from None
    names = [c.name for c in configs]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise SlaError(
                [(f"sinks[{i}].name", name, "is used twice", "Give every sink its own name.")],
                source,
            )
    return configs


def build_sink(
    config: SinkConfig, *, seed: int = 0, sleep: Callable[[float], None] = time.sleep
) -> Sink:
    """A live sink from its configuration; secrets are read from the environment now."""
    if isinstance(config, WebhookConfig):
        return WebhookSink(
            config.name, config.url, config.retry, headers=config.headers, seed=seed, sleep=sleep
        )
    if isinstance(config, SlackConfig):
        return SlackSink(config.name, config.url, config.retry, seed=seed, sleep=sleep)
    if isinstance(config, PagerDutyConfig):
        key = config.routing_key or os.environ.get(config.routing_key_env or "")
        if not key:
            raise SlaError(
                [
                    (
                        f"sinks.{config.name}.routing_key_env",
                        config.routing_key_env,
                        "names an unset environment variable",
                        f"Set {config.routing_key_env} to the PagerDuty integration key.",
                    )
                ],
                "environment",
            )
        return PagerDutySink(
            config.name,
            key,
            config.url,
            config.retry,
            source=config.source,
            seed=seed,
            sleep=sleep,
        )
    password = None
    if config.password_env is not None:
        password = os.environ.get(config.password_env)
        if password is None:
            raise SlaError(
                [
                    (
                        f"sinks.{config.name}.password_env",
                        config.password_env,
                        "names an unset environment variable",
                        f"Set {config.password_env} to the SMTP password.",
                    )
                ],
                "environment",
            )
    return EmailSink(
        config.name,
        config.host,
        config.port,
        config.from_,
        config.to,
        config.retry,
        starttls=config.starttls,
        username=config.username,
        password=password,
        seed=seed,
        sleep=sleep,
    )


class AlertingFile:
    """An alerting file: its rules, its `alerting:` routing and its `sinks:`, all validated."""

    def __init__(self, rules: RuleSet, route: RouteSettings, sinks: Sequence[SinkConfig]) -> None:
        self.rules = rules
        self.route = route
        self.sinks = tuple(sinks)

    @classmethod
    def parse(cls, data: Mapping[str, Any], source: str) -> AlertingFile:
        # Every section is checked, so that one run reports all the problems of the file.
        problems: list[Problem] = []
        parts: list[Any] = []
        for parse in (
            lambda: parse_rules(data, source),
            lambda: parse_route(data.get("alerting"), source),
            lambda: parse_sinks(data.get("sinks"), source),
        ):
            try:
                parts.append(parse())
            except SlaError as exc:
                problems.extend(exc.problems)
        if problems:
            raise SlaError(problems, source)
        return cls(*parts)

    @classmethod
    def load(cls, path: Path) -> AlertingFile:
        """The alerting file at `path`, read (bounded) and checked.

        A file that is no alerting file at all is named, never quoted: a path given by
        mistake may be any file, a secret one too.
        """
        from swarmperf.core.safe_yaml import (
            YamlProblem,
            kind_of,
            load_yaml_text,
            looks_like,
            read_text,
        )

        source = str(path)
        fix = "Give the path of an alerting file; `swarmperf sla-defaults` prints one."
        try:
            data = load_yaml_text(read_text(path), source)
        except YamlProblem as exc:
            raise SlaError([(exc.where, source, exc.problem, exc.fix)], source) from None
        except UnicodeDecodeError:
            raise SlaError([("(file)", source, "is not UTF-8 text", fix)], source) from None
        except OSError as exc:
            reason = f"cannot be read ({exc.strerror or type(exc).__name__})"
            raise SlaError([("(file)", source, reason, "Check the path.")], source) from None
        if not isinstance(data, dict) or not looks_like(
            data, ("rules", "evaluation_interval", "alerting", "sinks")
        ):
            what = (
                "is not an alerting file: it has none of the keys rules, alerting and sinks"
                if isinstance(data, dict)
                else f"holds {kind_of(data)}, not an alerting file's 'key: value' lines"
            )
            raise SlaError([("(file)", source, what, fix)], source)
        return cls.parse(data, source)


def insecure_login_warning(sink: EmailSink) -> str:
    """What to tell the user about a sink that would send its SMTP password in clear text."""
    return (
        f"alert sink {sink.name!r} logs in to {sink.host}:{sink.port} as {sink.username!r} "
        "without TLS: its password would cross the network in clear text. "
        "Set starttls: true in the sink, or use a relay on this host that needs no login."
    )


def build_observer(
    alerting: AlertingFile,
    *,
    clock: Callable[[], float] = time.time,
    store: Store | None = None,
    swarm_id: str = "default",
    seed: int = 0,
    background: bool = False,
) -> AlertObserver:
    """An `AlertObserver` for the monitor loop, wired to the file's rules, routing and sinks.

    Each sink gets its own seed (`seed + i`) so that their retry pauses differ. Use
    `background=True` from an asyncio loop, so that slow receivers never stall it.
    """
    sinks = [build_sink(config, seed=seed + i) for i, config in enumerate(alerting.sinks)]
    for sink in sinks:
        if isinstance(sink, EmailSink) and sink.sends_password_in_clear:
            warning = insecure_login_warning(sink)
            log.warning("%s", warning)
            if store is not None:
                store.record_event(
                    swarm_id, None, clock(), INSECURE_EVENT, sink.name, {"warning": warning}
                )
    manager = AlertManager(
        alerting.rules, alerting.route, sinks, clock=clock, store=store, swarm_id=swarm_id
    )
    return AlertObserver(alerting.rules, manager, background=background)

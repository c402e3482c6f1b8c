"""The alert manager: rule results in, grouped, deduplicated, silenced notifications out.

Each rule gives one alert per severity it alerts at (and per agent for `agent.*` rules). An
alert moves inactive -> pending (condition true, `for` not yet elapsed) -> firing -> resolved.
A rule with no data leaves its alerts as they are: missing figures neither raise nor clear
an alert.

Notifications follow Alertmanager's model, per sink: alerts are grouped by `group_by` labels;
a group's first notification waits `group_wait` after its first alert fires, later changes
wait `group_interval` after the last notification, and an unchanged group that still fires is
sent again after `repeat_interval`. A sink is sent an alert's state change once; a resolved
alert is sent only to sinks that were sent it firing; a silenced alert is sent nowhere (when
the silence ends, whatever changed meanwhile is sent). A failed delivery changes nothing, so
the next evaluation tries again.

The whole state is saved through the store after every evaluation, so a restarted manager
keeps its firing alerts and does not send again what was sent. Delivery is at least once: a
crash between a send and the save that follows it sends that notification again.

Written here rather than run as Prometheus Alertmanager because the swarm must alert with no
other service installed; the JSON it posts is Alertmanager's webhook format, so receivers
written for Alertmanager work unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import Field, ValidationError, field_validator, model_validator

from swarmperf.alerting.sla import (
    RuleResult,
    RuleSet,
    SlaError,
    SlaRule,
    Snapshot,
    evaluate,
    validation_problems,
)
from swarmperf.core.redact import redact_text
from swarmperf.monitor.snapshot import SwarmFigures, SystemFigures, flatten
from swarmperf.spec.types import Duration, Section, problem
from swarmperf.store.sqlite import Store

log = logging.getLogger(__name__)

AlertStatus = Literal["inactive", "pending", "firing", "resolved"]
Sent = Literal["firing", "resolved"]
_ALERT = "alert/"
_GROUP = "group/"


# -- settings ---------------------------------------------------------------------------


class Matcher(Section):
    """A label test: `=` equal, `!=` not equal, `=~` regex match, `!~` regex non-match."""

    name: str = Field(min_length=1)
    value: str
    op: Literal["=", "!=", "=~", "!~"] = "="

    @model_validator(mode="after")
    def _regex(self) -> Matcher:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise problem(
                    "regex", f"is not a regular expression ({exc})", "Fix the pattern."
                ) from None
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        found = labels.get(self.name, "")
        if self.op == "=":
            return found == self.value
        if self.op == "!=":
            return found != self.value
        full = re.fullmatch(self.value, found) is not None
        return full if self.op == "=~" else not full


def _timestamp(value: object) -> float:
    if isinstance(value, bool):
        raise problem("time", "is not a time", "Use UNIX seconds or ISO 8601 with a zone.")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, str):
        text = value
    else:
        raise problem("time", "is not a time", "Use UNIX seconds or ISO 8601 with a zone.")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise problem(
            "time", "is not a time", "Use UNIX seconds or ISO 8601, e.g. 2026-01-31T12:00:00Z."
        ) from None
    if parsed.tzinfo is None:
        raise problem("time", "has no time zone", "Add one, e.g. 2026-01-31T12:00:00Z.")
    return parsed.timestamp()


class Silence(Section):
    """Alerts matching every matcher send nothing from `starts_at` until `ends_at`."""

    matchers: tuple[Matcher, ...] = Field(min_length=1)
    starts_at: float
    ends_at: float
    comment: str = ""

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _time(cls, value: object) -> float:
        return _timestamp(value)

    @model_validator(mode="after")
    def _order(self) -> Silence:
        if self.ends_at <= self.starts_at:
            raise problem(
                "silence",
                "ends before it starts",
                "Make ends_at later than starts_at.",
                value={"starts_at": self.starts_at, "ends_at": self.ends_at},
            )
        return self

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


class RouteSettings(Section):
    """How alerts are grouped and how often notifications go out (the `alerting:` section)."""

    group_by: tuple[str, ...] = ("alertname",)
    group_wait: Duration = 30.0
    group_interval: Duration = 300.0
    repeat_interval: Duration = 4 * 3600.0
    external_url: str = ""
    silences: tuple[Silence, ...] = ()

    def silenced(self, labels: Mapping[str, str], now: float) -> bool:
        return any(s.active(now) and s.matches(labels) for s in self.silences)


def parse_route(data: Mapping[str, Any] | None, source: str = "alerting") -> RouteSettings:
    """Validate an alerting file's `alerting:` section; None gives the defaults."""
    try:
        return RouteSettings.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise SlaError(validation_problems(exc, "alerting"), source) from exc


# -- what goes to sinks -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotifiedAlert:
    """One alert as a notification carries it. Times are UNIX seconds."""

    status: Sent
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float | None
    fingerprint: str
    value: float | None


@dataclass(frozen=True, slots=True)
class Notification:
    """A group's alerts, sent to one sink (`receiver`)."""

    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    status: Sent  # firing while any alert in it fires
    alerts: tuple[NotifiedAlert, ...]
    external_url: str = ""

    @property
    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    @property
    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = dict(maps[0])
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What a sink reports for one notification."""

    ok: bool
    attempts: int
    error: str | None = None


class Sink(Protocol):
    """Somewhere notifications go. `send` must not raise for delivery failures."""

    name: str

    def send(self, notification: Notification) -> SendOutcome: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification's fate."""

    at: float
    sink: str
    group_key: str
    status: Sent
    alerts: int
    ok: bool
    attempts: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    at: float
    key: str
    before: AlertStatus
    after: AlertStatus


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """What one evaluation changed and sent."""

    at: float
    transitions: tuple[Transition, ...]
    deliveries: tuple[Delivery, ...]
    results: tuple[RuleResult, ...]

    @property
    def failed(self) -> tuple[Delivery, ...]:
        return tuple(d for d in self.deliveries if not d.ok)


# -- state ------------------------------------------------------------------------------


@dataclass(slots=True)
class AlertState:
    """One alert's lifecycle, and what each sink was last sent about it."""

    key: str
    group: str
    labels: dict[str, str]
    annotations: dict[str, str]
    status: AlertStatus
    active_since: float
    starts_at: float | None = None
    ends_at: float | None = None
    value: float | None = None
    notified: dict[str, Sent] = field(default_factory=dict)

    @property
    def desired(self) -> Sent:
        return "firing" if self.status == "firing" else "resolved"

    def owes(self, sink: str) -> bool:
        """True if `sink` has not been sent this alert's current state (and should be)."""
        sent = self.notified.get(sink)
        if self.desired == "resolved":
            return sent == "firing"
        return sent != "firing"

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "labels": self.labels,
            "annotations": self.annotations,
            "status": self.status,
            "active_since": self.active_since,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "value": self.value,
            "notified": self.notified,
        }

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> AlertState:
        return cls(
            key=key,
            group=data["group"],
            labels=dict(data["labels"]),
            annotations=dict(data["annotations"]),
            status=data["status"],
            active_since=data["active_since"],
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            value=data["value"],
            notified=dict(data["notified"]),
        )


@dataclass(slots=True)
class GroupState:
    key: str
    labels: dict[str, str]
    created_at: float
    sent_at: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"labels": self.labels, "created_at": self.created_at, "sent_at": self.sent_at}

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> GroupState:
        return cls(key, dict(data["labels"]), data["created_at"], dict(data["sent_at"]))


def alert_key(labels: Mapping[str, str]) -> str:
    """An alert's identity: its labels, sorted, as `{a="1",b="2"}` (Prometheus' notation)."""
    return "{" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


# -- the manager ------------------------------------------------------------------------


class AlertManager:
    """Turns rule results into alert state changes and notifications; a clocked state machine.

    `clock` gives UNIX seconds. With a `store`, state is loaded from it at start and saved to
    it after each evaluation (under `swarm_id`), so a restart resumes where it left off.
    """

    def __init__(
        self,
        rules: RuleSet | Sequence[SlaRule],
        route: RouteSettings,
        sinks: Sequence[Sink],
        *,
        clock: Callable[[], float],
        store: Store | None = None,
        swarm_id: str = "default",
    ) -> None:
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"Sink names must differ; got {names}.")
        self.rules = {r.name: r for r in (rules.rules if isinstance(rules, RuleSet) else rules)}
        self.route = route
        self.sinks = tuple(sinks)
        self.swarm_id = swarm_id
        self._clock = clock
        self._store = store
        self.alerts: dict[str, AlertState] = {}
        self.groups: dict[str, GroupState] = {}
        if store is not None:
            for key, data in store.alert_states(swarm_id).items():
                if key.startswith(_ALERT):
                    self.alerts[key[len(_ALERT) :]] = AlertState.from_json(key[len(_ALERT) :], data)
                elif key.startswith(_GROUP):
                    self.groups[key[len(_GROUP) :]] = GroupState.from_json(key[len(_GROUP) :], data)

    def evaluate(self, results: Iterable[RuleResult]) -> EvaluationReport:
        """Apply one evaluation's results, send what is due, save the state."""
        now = self._clock()
        before = {k: a.status for k, a in self.alerts.items()}
        stored = set(self.alerts), set(self.groups)
        results = tuple(results)
        seen: set[str] = set()
        for result in results:
            rule = self.rules.get(result.rule)
            if rule is None:
                continue
            for severity in rule.severities():
                labels = {"alertname": rule.name, "severity": severity, **result.labels}
                key = alert_key(labels)
                seen.add(key)
                self._step(key, labels, result, rule.for_, result.reaches(severity), now)
        for key, alert in self.alerts.items():
            # An alert whose rule is gone from the rule set can never be cleared by a result.
            if key not in seen and alert.labels.get("alertname") not in self.rules:
                self._step(key, alert.labels, None, 0.0, False, now)
        transitions = tuple(
            Transition(now, k, before.get(k, "inactive"), a.status)
            for k, a in sorted(self.alerts.items())
            if before.get(k, "inactive") != a.status
        )
        deliveries = self._flush(now)
        self._collect()
        self._save(*stored)
        for d in deliveries:
            if not d.ok:
                log.warning("alert delivery to %s failed: %s", d.sink, d.error)
        return EvaluationReport(now, transitions, tuple(deliveries), results)

    def flush(self) -> tuple[Delivery, ...]:
        """Send what is due now without new results (e.g. between evaluations)."""
        stored = set(self.alerts), set(self.groups)
        deliveries = self._flush(self._clock())
        self._collect()
        self._save(*stored)
        return tuple(deliveries)

    # -- internals ------------------------------------------------------------------------

    def _step(
        self,
        key: str,
        labels: Mapping[str, str],
        result: RuleResult | None,
        for_: float,
        condition: bool | None,
        now: float,
    ) -> None:
        alert = self.alerts.get(key)
        if condition is None:  # no data: neither raise nor clear
            return
        if alert is None:
            if not condition:
                return
            alert = AlertState(
                key=key,
                group=self._group_key(labels),
                labels=dict(labels),
                annotations={},
                status="inactive",
                active_since=now,
            )
            self.alerts[key] = alert
        if result is not None:
            alert.annotations = dict(result.annotations)
            alert.value = result.value
        if condition:
            if alert.status in ("inactive", "resolved"):
                # ends_at stays until it fires again: a resolved notice may still be owed.
                alert.status = "pending"
                alert.active_since = now
            if alert.status == "pending" and now - alert.active_since >= for_:
                alert.status = "firing"
                alert.starts_at = now
                alert.ends_at = None
                if alert.group not in self.groups:
                    self.groups[alert.group] = GroupState(
                        alert.group, self._group_labels(alert.labels), now
                    )
        elif alert.status == "pending":
            alert.status = "inactive"
        elif alert.status == "firing":
            alert.status = "resolved"
            alert.ends_at = now

    def _group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        return {name: labels.get(name, "") for name in self.route.group_by}

    def _group_key(self, labels: Mapping[str, str]) -> str:
        return alert_key(self._group_labels(labels))

    def _flush(self, now: float) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for group in sorted(self.groups.values(), key=lambda g: g.key):
            members = [a for a in self.alerts.values() if a.group == group.key]
            audible = [a for a in members if not self.route.silenced(a.labels, now)]
            for sink in self.sinks:
                delivery = self._maybe_send(sink, group, audible, now)
                if delivery is not None:
                    deliveries.append(delivery)
        return deliveries

    def _maybe_send(
        self, sink: Sink, group: GroupState, audible: list[AlertState], now: float
    ) -> Delivery | None:
        changed = [a for a in audible if a.owes(sink.name)]
        firing = [a for a in audible if a.status == "firing"]
        last = group.sent_at.get(sink.name)
        if changed:
            due_at = (
                group.created_at + self.route.group_wait
                if last is None
                else (last + self.route.group_interval)
            )
        elif firing and last is not None:
            due_at = last + self.route.repeat_interval
        else:
            return None
        if now < due_at:
            return None
        included = sorted({a.key: a for a in [*firing, *changed]}.values(), key=lambda a: a.key)
        notification = Notification(
            receiver=sink.name,
            group_key=f"{{}}:{group.key}",
            group_labels=dict(group.labels),
            status="firing" if firing else "resolved",
            alerts=tuple(_notified(a) for a in included),
            external_url=self.route.external_url,
        )
        try:
            outcome = sink.send(notification)
        except Exception as exc:  # a sink's bug must not stop the manager or other sinks
            outcome = SendOutcome(False, 1, redact_text(f"{type(exc).__name__}: {exc}"))
        if outcome.ok:
            group.sent_at[sink.name] = now
            for alert in included:
                alert.notified[sink.name] = alert.desired
        delivery = Delivery(
            at=now,
            sink=sink.name,
            group_key=notification.group_key,
            status=notification.status,
            alerts=len(included),
            ok=outcome.ok,
            attempts=outcome.attempts,
            error=outcome.error,
        )
        if not outcome.ok and self._store is not None:
            self._store.record_event(
                self.swarm_id,
                None,
                now,
                "alert_delivery_failed",
                sink.name,
                {"group": group.key, "attempts": outcome.attempts, "error": outcome.error},
            )
        return delivery

    def _collect(self) -> None:
        """Forget alerts that are over and owe no sink anything, and groups left empty."""
        for key in [k for k, a in self.alerts.items() if self._finished(a)]:
            del self.alerts[key]
        used = {a.group for a in self.alerts.values()}
        for key in [k for k in self.groups if k not in used]:
            del self.groups[key]

    def _finished(self, alert: AlertState) -> bool:
        if alert.status in ("pending", "firing"):
            return False
        return not any(alert.owes(s.name) for s in self.sinks)

    def _save(self, alerts_before: set[str], groups_before: set[str]) -> None:
        if self._store is None:
            return
        states = {_ALERT + k: a.to_json() for k, a in self.alerts.items()}
        states.update({_GROUP + k: g.to_json() for k, g in self.groups.items()})
        removed = [_ALERT + k for k in alerts_before - set(self.alerts)]
        removed += [_GROUP + k for k in groups_before - set(self.groups)]
        self._store.save_alert_states(self.swarm_id, states, removed)


def _notified(alert: AlertState) -> NotifiedAlert:
    return NotifiedAlert(
        status=alert.desired,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        starts_at=alert.starts_at if alert.starts_at is not None else alert.active_since,
        ends_at=alert.ends_at if alert.status != "firing" else None,
        fingerprint=fingerprint(alert.key),
        value=alert.value,
    )


# -- glue for the monitor loop ----------------------------------------------------------


class AlertObserver:
    """Feeds monitor snapshots to the evaluator and the manager, every evaluation interval.

    Call it with each snapshot; it keeps the snapshots of the longest rule window and, once
    `rules.evaluation_interval` has passed since the last evaluation (by the snapshot times),
    evaluates the rules and lets the manager send what is due.

    Sinks block while they send and retry. With `background=True` the manager runs on one
    worker thread (so evaluations stay in order) and the caller, e.g. an asyncio loop, never
    waits for a receiver; `close()` waits for the evaluations already handed over.
    """

    def __init__(self, rules: RuleSet, manager: AlertManager, *, background: bool = False) -> None:
        self.rules = rules
        self.manager = manager
        self.window: list[Snapshot] = []
        self.last_report: EvaluationReport | None = None
        self._last_eval: float | None = None
        self._keep = max(r.window for r in rules.rules)
        self._worker = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="swarmperf-alerts")
            if background
            else None
        )

    def __call__(self, swarm: SwarmFigures | None, system: SystemFigures | None) -> None:
        if swarm is not None:
            ts = swarm.ts
        elif system is not None:
            ts = system.ts
        else:
            return
        self.window.append((ts, flatten(swarm, system)))
        self.window = [s for s in self.window if s[0] > ts - self._keep]
        if self._last_eval is not None and ts - self._last_eval < self.rules.evaluation_interval:
            return
        self._last_eval = ts
        results = evaluate(self.rules, self.window, now=ts)
        if self._worker is None:
            self._apply(results)
        else:
            self._worker.submit(self._apply, results)

    def _apply(self, results: list[RuleResult]) -> None:
        try:
            self.last_report = self.manager.evaluate(results)
        except Exception:
            # On the worker thread nobody would see it: log it, and keep evaluating.
            if self._worker is None:
                raise
            log.exception("alert evaluation failed")

    def close(self) -> None:
        """Wait for handed-over evaluations to finish (background mode); idempotent."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)

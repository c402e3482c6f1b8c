"""The alert manager: lifecycle, grouping, dedup, repeats, silences, persistence, invariants."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from swarmperf.alerting.alerts import (
    AlertManager,
    AlertObserver,
    Matcher,
    Notification,
    RouteSettings,
    SendOutcome,
    Silence,
    parse_route,
)
from swarmperf.alerting.sla import RuleResult, RuleSet, SlaError, evaluate, parse_rules
from swarmperf.core.latency import LatencySummary
from swarmperf.monitor.snapshot import SwarmFigures
from swarmperf.store import Store
from tests.conftest import FakeClock

LATENCY = {"ok": 0.1, "warning": 0.85, "critical": 0.95, "no_data": None}


def rules(for_: str = "0s", *, agent_rule: bool = False) -> RuleSet:
    listed: list[dict[str, Any]] = [
        {
            "name": "lat",
            "metric": "swarm.latency.p99",
            "comparison": "<=",
            "threshold": "1s",
            "window": "10s",
            "for": for_,
            "annotations": {"summary": "p99 {value}"},
        }
    ]
    if agent_rule:
        listed.append(
            {
                "name": "busy",
                "metric": "agent.*.utilization",
                "comparison": "<=",
                "threshold": "100%",
                "window": "10s",
                "severity": "warning",
            }
        )
    return parse_rules({"rules": listed})


def results(
    rule_set: RuleSet, now: float, lat: str, agents: dict[str, str] | None = None
) -> list[RuleResult]:
    """What the evaluator says for a snapshot at `now` putting each figure in a state."""
    row: dict[str, float | None] = {"swarm.latency.p99": LATENCY[lat]}
    for agent, state in (agents or {}).items():
        row[f"agent.{agent}.utilization"] = LATENCY[state]
    return evaluate(rule_set, [(now, row)], now=now)


@dataclass
class RecordingSink:
    """A sink that keeps what it was given; fails while `failing` is set."""

    name: str
    failing: bool = False
    raises: bool = False
    sent: list[tuple[float, Notification, bool]] = field(default_factory=list)
    clock: FakeClock | None = None

    def send(self, notification: Notification) -> SendOutcome:
        now = self.clock() if self.clock is not None else 0.0
        self.sent.append((now, notification, not self.failing))
        if self.raises:
            raise RuntimeError("sink bug")
        if self.failing:
            return SendOutcome(False, 3, "HTTP 500")
        return SendOutcome(True, 1)

    def delivered(self) -> list[tuple[float, Notification]]:
        return [(t, n) for t, n, ok in self.sent if ok]


def statuses(notification: Notification) -> dict[str, str]:
    return {
        f"{a.labels['alertname']}/{a.labels['severity']}/{a.labels.get('agent', '')}": a.status
        for a in notification.alerts
    }


def manager(
    clock: FakeClock,
    sinks: Sequence[RecordingSink],
    rule_set: RuleSet | None = None,
    store: Store | None = None,
    **route: Any,
) -> AlertManager:
    for sink in sinks:
        sink.clock = clock
    settings_ = RouteSettings.model_validate(
        {"group_wait": 0, "group_interval": 0, "repeat_interval": "1h", **route}
    )
    return AlertManager(
        rule_set or rules(), settings_, sinks, clock=clock, store=store, swarm_id="sw"
    )


def step(m: AlertManager, clock: FakeClock, lat: str, dt: float = 10.0, **agents: str) -> Any:
    clock.advance(dt)
    rule_set = RuleSet(rules=tuple(m.rules.values()))
    return m.evaluate(results(rule_set, clock.now, lat, agents))


# -- lifecycle --------------------------------------------------------------------------


def test_an_alert_is_pending_until_for_elapses_then_fires_then_resolves(clock: FakeClock) -> None:
    sink = RecordingSink("s")
    m = manager(clock, [sink], rules("30s"))
    report = step(m, clock, "critical")
    assert {a.labels["severity"]: a.status for a in m.alerts.values()} == {
        "warning": "pending",
        "critical": "pending",
    }
    assert [t.after for t in report.transitions] == ["pending", "pending"]
    assert sink.sent == []
    step(m, clock, "critical")
    step(m, clock, "critical")
    assert sink.sent == []  # 20 s of 30 s
    step(m, clock, "critical")
    [(_, firing)] = sink.delivered()
    assert firing.status == "firing"
    assert statuses(firing) == {"lat/critical/": "firing", "lat/warning/": "firing"}
    assert firing.alerts[0].annotations == {"summary": "p99 950ms"}
    assert firing.alerts[0].ends_at is None
    report = step(m, clock, "ok")
    assert {(t.before, t.after) for t in report.transitions} == {("firing", "resolved")}
    (_, resolved) = sink.delivered()[-1]
    assert resolved.status == "resolved"
    assert statuses(resolved) == {"lat/critical/": "resolved", "lat/warning/": "resolved"}
    assert resolved.alerts[0].ends_at == clock.now
    assert m.alerts == {}
    assert m.groups == {}


def test_a_resolved_alert_sent_late_keeps_its_end_time(clock: FakeClock) -> None:
    # Resolved within group_interval of the firing notice, then pending again before the
    # resolved notice is due: receivers must still learn when it ended.
    sink = RecordingSink("s")
    m = manager(clock, [sink], rules("5m"), group_interval="60s")
    step(m, clock, "critical")
    step(m, clock, "critical", dt=300)
    [(fired_at, firing)] = sink.delivered()
    assert firing.status == "firing"
    step(m, clock, "ok")
    ended = clock.now
    step(m, clock, "critical")
    step(m, clock, "critical", dt=fired_at + 60 - clock.now)
    (_, resolved) = sink.delivered()[-1]
    assert resolved.status == "resolved"
    assert [a.ends_at for a in resolved.alerts] == [ended, ended]


def test_a_condition_that_clears_before_for_elapses_never_notifies(clock: FakeClock) -> None:
    sink = RecordingSink("s")
    m = manager(clock, [sink], rules("30s"))
    step(m, clock, "critical")
    step(m, clock, "ok")
    step(m, clock, "critical", dt=25)
    assert sink.sent == []
    assert all(a.status == "pending" for a in m.alerts.values())


def test_warning_fires_alone_and_critical_joins_it(clock: FakeClock) -> None:
    sink = RecordingSink("s")
    m = manager(clock, [sink])
    step(m, clock, "warning")
    assert statuses(sink.delivered()[-1][1]) == {"lat/warning/": "firing"}
    step(m, clock, "critical")
    assert statuses(sink.delivered()[-1][1]) == {
        "lat/warning/": "firing",
        "lat/critical/": "firing",
    }
    step(m, clock, "warning")
    assert statuses(sink.delivered()[-1][1]) == {
        "lat/warning/": "firing",
        "lat/critical/": "resolved",
    }


def test_no_data_neither_raises_nor_clears_an_alert(clock: FakeClock) -> None:
    sink = RecordingSink("s")
    m = manager(clock, [sink])
    step(m, clock, "critical")
    sent = len(sink.sent)
    for _ in range(5):
        step(m, clock, "no_data")
    assert len(sink.sent) == sent
    assert {a.status for a in m.alerts.values()} == {"firing"}
    m2 = manager(FakeClock(), [RecordingSink("t")])
    step(m2, clock, "no_data")
    assert m2.alerts == {}


# -- grouping, dedup, repeats -----------------------------------------------------------


def test_group_wait_gathers_alerts_into_one_notification(clock: FakeClock) -> None:
    sink = RecordingSink("s")
    m = manager(clock, [sink], rules(agent_rule=True), group_wait=30, group_by=["alertname"])
    step(m, clock, "ok", a="critical")
    step(m, clock, "ok", a="critical", b="critical")
    assert sink.sent == []
    step(m, clock, "ok", a="critical", b="critical", dt=20)  # 30 s after the first fired
    [(_, note)] = sink.delivered()
    assert statuses(note) == {"busy/warning/a": "firing", "busy/warning/b": "firing"}
    assert note.group_labels == {"alertname": "busy"}
    assert note.common_labels == {"alertname": "busy", "severity": "warning"}


def test_group_by_agent_sends_each_agent_its_own_notification(clock: FakeClock) -> None:
    sink = RecordingSink("s")
    m = manager(clock, [sink], rules(agent_rule=True), group_by=["alertname", "agent"])
    step(m, clock, "ok", a="critical", b="critical")
    groups = {n.group_labels["agent"]: statuses(n) for _, n in sink.delivered()}
    assert groups == {"a": {"busy/warning/a": "firing"}, "b": {"busy/warning/b": "firing"}}


def test_changes_in_a_notified_group_wait_for_group_interval(clock: FakeClock) -> None:
    sink = RecordingSink("s")
    m = manager(clock, [sink], rules(agent_rule=True), group_interval=60)
    step(m, clock, "ok", a="critical")
    assert len(sink.sent) == 1
    step(m, clock, "ok", a="critical", b="critical")  # t=20: b is new, within 60 s
    step(m, clock, "ok", a="critical", b="critical", dt=40)  # t=60
    assert len(sink.sent) == 1
    step(m, clock, "ok", a="critical", b="critical", dt=10)  # t=70: 60 s after the first
    assert statuses(sink.delivered()[-1][1]) == {
        "busy/warning/a": "firing",
        "busy/warning/b": "firing",
    }


def test_an_unchanged_firing_group_is_resent_only_after_repeat_interval(clock: FakeClock) -> None:
    sink = RecordingSink("s")
    m = manager(clock, [sink], repeat_interval=100)
    step(m, clock, "critical")
    first = clock.now
    for _ in range(9):
        step(m, clock, "critical")
    assert len(sink.sent) == 1  # 90 s later: no repeat yet
    step(m, clock, "critical")
    assert [t - first for t, _ in sink.delivered()] == [0, 100]


def test_a_silenced_alert_sends_nothing_until_the_silence_ends(clock: FakeClock) -> None:
    sink = RecordingSink("s")
    silence = {
        "matchers": [{"name": "severity", "value": "crit.*", "op": "=~"}],
        "starts_at": 0,
        "ends_at": 35,
    }
    m = manager(clock, [sink], silences=[silence])
    step(m, clock, "critical")
    assert statuses(sink.delivered()[-1][1]) == {"lat/warning/": "firing"}
    step(m, clock, "critical")
    step(m, clock, "critical")
    assert len(sink.sent) == 1
    step(m, clock, "critical")  # t=40: the silence is over
    assert statuses(sink.delivered()[-1][1]) == {
        "lat/warning/": "firing",
        "lat/critical/": "firing",
    }


def test_an_alert_silenced_all_its_life_is_never_sent_even_resolved(clock: FakeClock) -> None:
    sink = RecordingSink("s")
    silence = {"matchers": [{"name": "alertname", "value": "lat"}], "starts_at": 0, "ends_at": 25}
    m = manager(clock, [sink], silences=[silence])
    step(m, clock, "critical")
    step(m, clock, "ok")
    step(m, clock, "ok")
    step(m, clock, "ok")
    assert sink.sent == []
    assert m.alerts == {}


def test_a_failed_delivery_is_reported_and_tried_again_at_the_next_evaluation(
    clock: FakeClock, tmp_path: Path
) -> None:
    flaky, good = RecordingSink("flaky", failing=True), RecordingSink("good")
    with Store.open(tmp_path / "s.db", clock=clock) as store:
        m = manager(clock, [flaky, good], store=store)
        report = step(m, clock, "warning")
        [failed] = report.failed
        assert (failed.sink, failed.ok, failed.attempts, failed.error) == (
            "flaky",
            False,
            3,
            "HTTP 500",
        )
        assert [e.subject for e in store.events("sw", kind="alert_delivery_failed")] == ["flaky"]
        step(m, clock, "warning")  # good has it already: only flaky is tried again
        assert len(good.sent) == 1
        assert len(flaky.sent) == 2
        flaky.failing = False
        report = step(m, clock, "warning")
        assert [(d.sink, d.ok) for d in report.deliveries] == [("flaky", True)]
        step(m, clock, "warning")
        assert len(flaky.sent) == 3  # delivered once: nothing more to send


def test_a_sink_that_raises_does_not_stop_the_manager_or_the_other_sinks(clock: FakeClock) -> None:
    broken, good = RecordingSink("broken", raises=True), RecordingSink("good")
    m = manager(clock, [broken, good])
    report = step(m, clock, "critical")
    assert {d.sink: d.ok for d in report.deliveries} == {"broken": False, "good": True}
    assert "RuntimeError: sink bug" in (report.failed[0].error or "")


def test_alerts_of_a_rule_removed_from_the_rules_are_resolved(
    clock: FakeClock, tmp_path: Path
) -> None:
    sink = RecordingSink("s")
    with Store.open(tmp_path / "s.db") as store:
        step(manager(clock, [sink], store=store), clock, "critical")
        other = parse_rules(
            {
                "rules": [
                    {
                        "name": "x",
                        "metric": "swarm.queue_depth",
                        "comparison": "<=",
                        "threshold": 10,
                    }
                ]
            }
        )
        m = manager(clock, [sink], other, store=store)
        clock.advance(10)
        m.evaluate([])
        assert {a.status for _, n in sink.delivered()[-1:] for a in n.alerts} == {"resolved"}
        assert m.alerts == {}


# -- persistence ------------------------------------------------------------------------


def test_a_restarted_manager_keeps_firing_alerts_and_does_not_resend(
    clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "swarmperf.db"
    first_sink = RecordingSink("pager")
    with Store.open(path, clock=clock) as store:
        first = manager(clock, [first_sink], store=store, repeat_interval=3600)
        step(first, clock, "critical")
        assert len(first_sink.sent) == 1
        saved = {k: a.to_json() for k, a in first.alerts.items()}
    # A second process: a new store connection and a new manager on the same file.
    second_sink = RecordingSink("pager")
    with Store.open(path, clock=clock) as store:
        second = manager(clock, [second_sink], store=store, repeat_interval=3600)
        assert {k: a.to_json() for k, a in second.alerts.items()} == saved
        step(second, clock, "critical")
        step(second, clock, "critical")
        assert second_sink.sent == []  # already sent by the first manager
        step(second, clock, "ok")
        [(_, resolved)] = second_sink.delivered()
        assert set(statuses(resolved).values()) == {"resolved"}
    with Store.open(path) as store:
        assert store.alert_states("sw") == {}


def test_a_restart_between_pending_and_firing_keeps_the_pending_time(
    clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "swarmperf.db"
    with Store.open(path) as store:
        step(manager(clock, [RecordingSink("s")], rules("30s"), store=store), clock, "critical")
    sink = RecordingSink("s")
    with Store.open(path) as store:
        m = manager(clock, [sink], rules("30s"), store=store)
        step(m, clock, "critical", dt=30)
    assert len(sink.delivered()) == 1


# -- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "labels", "expected"),
    [
        ("=", "a", {"agent": "a"}, True),
        ("!=", "a", {"agent": "a"}, False),
        ("=~", "a-.*", {"agent": "a-12"}, True),
        ("=~", "a", {"agent": "ab"}, False),  # anchored, as in Alertmanager
        ("!~", "b.*", {"agent": "a"}, True),
        ("=", "", {}, True),  # a missing label reads as empty
    ],
)
def test_matchers(op: str, value: str, labels: dict[str, str], expected: bool) -> None:
    assert (
        Matcher.model_validate({"name": "agent", "value": value, "op": op}).matches(labels)
        is expected
    )


def test_silence_times_read_iso_or_unix_and_must_be_in_order() -> None:
    s = Silence.model_validate(
        {
            "matchers": [{"name": "a", "value": "b"}],
            "starts_at": "2026-01-01T00:00:00Z",
            "ends_at": 1767229200,
        }
    )
    assert s.ends_at - s.starts_at == 3600
    assert s.active(s.starts_at)
    assert not s.active(s.ends_at)
    with pytest.raises(SlaError) as info:
        parse_route(
            {
                "silences": [
                    {
                        "matchers": [{"name": "a", "value": "(", "op": "=~"}],
                        "starts_at": "2026-01-01T00:00:00",
                        "ends_at": 0,
                    }
                ]
            }
        )
    fields = [p[0] for p in info.value.problems]
    assert "alerting.silences.0.matchers.0" in fields
    assert "alerting.silences.0.starts_at" in fields


def test_route_settings_errors_name_the_field() -> None:
    with pytest.raises(SlaError, match=r"alerting\.group_wait: 'soon'"):
        parse_route({"group_wait": "soon"})


# -- the monitor glue -------------------------------------------------------------------


def figures(ts: float, p99: float) -> SwarmFigures:
    q = LatencySummary(count=10, p50=p99 / 2, p90=p99, p95=p99, p99=p99, max=p99, mean=p99 / 2)
    return SwarmFigures(
        ts=ts,
        window_s=1.0,
        completed=10,
        failed=0,
        throughput_per_s=10.0,
        error_rate=0.0,
        availability=1.0,
        latency=q,
        wait=q,
        service=q,
        queue_depth=0,
        queue_depth_by_priority={},
        balance_cv=None,
        agents={},
    )


def test_the_observer_evaluates_once_per_interval_over_its_window(clock: FakeClock) -> None:
    rule_set = parse_rules(
        {
            "evaluation_interval": "5s",
            "rules": [
                {
                    "name": "lat",
                    "metric": "swarm.latency.p99",
                    "comparison": "<=",
                    "threshold": "1s",
                    "window": "3s",
                    "aggregation": "max",
                }
            ],
        }
    )
    sink = RecordingSink("s")
    observer = AlertObserver(rule_set, manager(clock, [sink], rule_set))
    evaluated = []
    for t in range(12):
        clock.now = float(t)
        observer(figures(float(t), 2.0 if t == 4 else 0.1), None)
        if observer.last_report is not None and observer.last_report.at == clock.now:
            evaluated.append(t)
    assert evaluated == [0, 5, 10]
    # At t=5 the 3 s window (2, 5] held the 2 s spike at t=4: it fired and was sent.
    assert [t for t, _ in sink.delivered()] == [5.0, 10.0]
    assert [n.status for _, n in sink.delivered()] == ["firing", "resolved"]
    assert max(ts for ts, _ in observer.window) - min(ts for ts, _ in observer.window) < 3


# -- invariants over random histories ---------------------------------------------------

STATES = st.sampled_from(["ok", "warning", "critical", "no_data"])


class AlertHistory(RuleBasedStateMachine):
    """Random condition sequences, clock steps, failures, silences and restarts."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="alerts-"))
        self.clock = FakeClock(1000.0)
        self.store = Store.open(self.dir / "swarmperf.db", clock=self.clock)
        self.sinks = [RecordingSink("steady"), RecordingSink("flaky")]
        self.route: RouteSettings | None = None
        self.rule_set = rules(agent_rule=True)
        self.m: AlertManager | None = None
        # For each group as created (key, created_at): how many notifications each sink
        # had delivered by then. A group that resolves and comes back at the same instant
        # is a new group, and what was sent before it belongs to the old one.
        self.born: dict[tuple[str, float], list[int]] = {}

    @initialize(
        for_=st.sampled_from(["0s", "20s", "1m"]),
        group_wait=st.sampled_from([0, 15, 60]),
        group_interval=st.sampled_from([0, 30, 120]),
        repeat_interval=st.sampled_from([60, 300]),
        by_agent=st.booleans(),
        silence=st.tuples(st.integers(0, 600), st.integers(1, 600)),
        silenced=st.sampled_from(["lat", "busy"]),
    )
    def setup(
        self,
        for_: str,
        group_wait: int,
        group_interval: int,
        repeat_interval: int,
        by_agent: bool,
        silence: tuple[int, int],
        silenced: str,
    ) -> None:
        self.rule_set = rules(for_, agent_rule=True)
        self.route = RouteSettings.model_validate(
            {
                "group_by": ["alertname", "agent"] if by_agent else ["alertname"],
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": repeat_interval,
                "silences": [
                    {
                        "matchers": [{"name": "alertname", "value": silenced}],
                        "starts_at": 1000 + silence[0],
                        "ends_at": 1000 + silence[0] + silence[1],
                    }
                ],
            }
        )
        self.restart()

    def restart(self) -> None:
        assert self.route is not None
        for sink in self.sinks:
            sink.clock = self.clock
        self.m = AlertManager(
            self.rule_set,
            self.route,
            self.sinks,
            clock=self.clock,
            store=self.store,
            swarm_id="sw",
        )

    @rule(
        dt=st.sampled_from([0, 5, 10, 30, 61, 200]),
        lat=STATES,
        a=STATES,
        b=STATES,
        flaky_fails=st.booleans(),
    )
    def evaluate(self, dt: float, lat: str, a: str, b: str, flaky_fails: bool) -> None:
        assert self.m is not None
        self.clock.advance(dt)
        self.sinks[1].failing = flaky_fails
        delivered = [len(sink.delivered()) for sink in self.sinks]
        self.m.evaluate(results(self.rule_set, self.clock.now, lat, {"a": a, "b": b}))
        for group in self.m.groups.values():
            self.born.setdefault((group.key, group.created_at), delivered)

    @precondition(lambda self: self.m is not None)
    @rule()
    def restart_from_the_store(self) -> None:
        assert self.m is not None
        before = {k: a.to_json() for k, a in self.m.alerts.items()}
        groups = {k: g.to_json() for k, g in self.m.groups.items()}
        self.store.close()
        self.store = Store.open(self.dir / "swarmperf.db", clock=self.clock)
        self.restart()
        assert {k: a.to_json() for k, a in self.m.alerts.items()} == before
        assert {k: g.to_json() for k, g in self.m.groups.items()} == groups

    @invariant()
    def resolved_is_only_sent_after_firing(self) -> None:
        for sink in self.sinks:
            last: dict[str, str] = {}
            for _, note, ok in sink.sent:
                for alert in note.alerts:
                    if alert.status == "resolved":
                        assert last.get(alert.fingerprint) == "firing"
                if ok:
                    last.update({a.fingerprint: a.status for a in note.alerts})

    @invariant()
    def an_unchanged_group_is_not_resent_within_repeat_interval(self) -> None:
        assert self.route is not None or not any(s.sent for s in self.sinks)
        if self.route is None:
            return
        for sink in self.sinks:
            previous: dict[str, tuple[float, dict[str, Any]]] = {}
            for at, note in sink.delivered():
                content: dict[str, Any] = {a.fingerprint: a.status for a in note.alerts}
                if note.group_key in previous:
                    last_at, last_content = previous[note.group_key]
                    if content == last_content:
                        assert at - last_at >= self.route.repeat_interval
                previous[note.group_key] = (at, content)

    @invariant()
    def silenced_alerts_are_never_sent(self) -> None:
        if self.route is None:
            return
        for sink in self.sinks:
            for at, note, _ in sink.sent:
                assert not any(self.route.silenced(a.labels, at) for a in note.alerts)

    @invariant()
    def a_group_first_notification_waits_group_wait(self) -> None:
        if self.route is None or self.m is None:
            return
        for group in self.m.groups.values():
            born = self.born.get((group.key, group.created_at))
            if born is None:
                continue  # not made by an evaluation here
            for sink, before in zip(self.sinks, born, strict=True):
                sent = [
                    t
                    for t, n in sink.delivered()[before:]
                    if n.group_key.endswith(group.key) and n.status == "firing"
                ]
                if sent:
                    assert min(sent) >= group.created_at + self.route.group_wait

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


AlertHistory.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAlertHistory = AlertHistory.TestCase

"""SLA rules as Prometheus alerting rules, and a Grafana dashboard over the exported metrics.

Both speak only the metric names in `swarmperf.monitor.names`. A rule on a snapshot metric
with no Prometheus counterpart (e.g. `swarm.balance_cv`) is left out of the rules file with a
comment saying so: `unexportable(rules)` lists them.

How snapshot figures map to PromQL (`W` is the rule's window; every query keeps `swarm`):
- availability, error rate, throughput: the ratios and rate of `swarmperf_tasks_total` over
  `W`, as in the SLA formulas of the metric contract. With `aggregation: avg` the rate over
  `W` is the window's average; other aggregations run over a 1m rate in a subquery.
- latency/wait/service quantiles, queue depth, agent gauges, CPU and memory: the gauge (the
  worst series of the swarm), aggregated over `W` with `*_over_time` on a subquery.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import yaml

from swarmperf.alerting.sla import RuleSet, SlaRule, threshold_text
from swarmperf.core.durations import format_duration
from swarmperf.monitor import names

_BY_SWARM = f"by ({names.SWARM_LABEL})"
_BY_AGENT = f"by ({names.SWARM_LABEL}, agent)"
_QUANTILE_LABELS = {"p50": "0.5", "p90": "0.9", "p95": "0.95", "p99": "0.99"}
_SUMMARIES = {"latency": names.TASK_LATENCY, "wait": names.TASK_WAIT, "service": names.TASK_SERVICE}
_OVER_TIME = {
    "avg": "avg_over_time",
    "min": "min_over_time",
    "max": "max_over_time",
    "last": "last_over_time",
    "count": "count_over_time",
}
_INNER_RATE = "1m"  # the rate window inside subqueries for aggregations other than avg


FINISHED = 'status=~"succeeded|failed"'
ASKED = 'status=~"succeeded|failed|rejected"'
NO_AGENT_FAILED = f'status="failed",agent="{names.NO_AGENT}"'


def _tasks_rate(window: str, status: str | None = None, selector: str = "") -> str:
    matchers = [m for m in (selector, status) if m]
    inner = "{" + ",".join(matchers) + "}" if matchers else ""
    return f"sum {_BY_SWARM} (rate({names.TASKS_TOTAL}{inner}[{window}]))"


_RATE_METRICS = frozenset(
    {"swarm.availability", "swarm.error_rate", "swarm.throughput_per_s"}
    | {f"swarm.{part}.mean" for part in _SUMMARIES}
)


def _rate_expr(metric: str, window: str, selector: str = "") -> str | None:
    """PromQL for a rate-based snapshot figure, with rates over `window`."""
    # The same definitions as the snapshot's (see snapshot.SwarmFigures): throughput and
    # the error rate count finished tasks (succeeded or failed); a task is unavailable when
    # it was rejected or failed without reaching an agent.
    finished = _tasks_rate(window, FINISHED, selector)
    if metric == "swarm.availability":
        rejected = _tasks_rate(window, 'status="rejected"', selector)
        no_agent = _tasks_rate(window, NO_AGENT_FAILED, selector)
        asked = _tasks_rate(window, ASKED, selector)
        return f"1 - (({rejected} + {no_agent}) / {asked})"
    if metric == "swarm.error_rate":
        failed = _tasks_rate(window, 'status="failed"', selector)
        return f"{failed} / {finished}"
    if metric == "swarm.throughput_per_s":
        return finished
    for part, name in _SUMMARIES.items():
        if metric == f"swarm.{part}.mean":
            inner = "{" + selector + "}" if selector else ""
            return (
                f"sum {_BY_SWARM} (rate({name}_sum{inner}[{window}])) / "
                f"sum {_BY_SWARM} (rate({name}_count{inner}[{window}]))"
            )
    return None


def _quantile(q: str) -> str:
    return f'quantile="{q}"'


def _gauge_expr(metric: str, selector: str = "") -> str | None:
    """PromQL for a gauge-like snapshot figure at one instant."""

    def sel(*matchers: str) -> str:
        found = [m for m in (selector, *matchers) if m]
        return "{" + ",".join(found) + "}" if found else ""

    parts = metric.split(".")
    if metric == "swarm.queue_depth":
        return f"sum {_BY_SWARM} ({names.QUEUE_DEPTH}{sel()})"
    if metric == "system.cpu_percent":
        return f"100 * max {_BY_SWARM} ({names.SYSTEM_CPU}{sel()})"
    if metric == "system.memory_percent":
        return f"100 * max {_BY_SWARM} ({names.SYSTEM_MEMORY}{sel()})"
    if len(parts) == 3 and parts[0] == "swarm" and parts[1] in _SUMMARIES:
        q = _QUANTILE_LABELS.get(parts[2])
        if q is not None:
            return f"max {_BY_SWARM} ({_SUMMARIES[parts[1]]}{sel(_quantile(q))})"
    if parts[0] == "agent" and parts[1] == "*":
        suffix = ".".join(parts[2:])
        if suffix == "utilization":
            return f"max {_BY_AGENT} ({names.AGENT_UTILIZATION}{sel()})"
        if suffix == "in_flight":
            return f"max {_BY_AGENT} ({names.AGENT_IN_FLIGHT}{sel()})"
        if suffix.startswith("service.") and (q := _QUANTILE_LABELS.get(parts[-1])):
            return f"max {_BY_AGENT} ({names.TASK_SERVICE}{sel(_quantile(q))})"
    return None


def rule_expr(rule: SlaRule, selector: str = "") -> str | None:
    """The PromQL value of a rule's aggregated metric over its window; None: not exported."""
    window = format_duration(rule.window)
    if rule.metric in _RATE_METRICS:
        if rule.aggregation == "avg":
            return _rate_expr(rule.metric, window, selector)
        inner = _rate_expr(rule.metric, _INNER_RATE, selector)
    else:
        gauge = _gauge_expr(rule.metric, selector)
        if gauge is None:
            return None
        inner = gauge
    if rule.aggregation in _OVER_TIME:
        return f"{_OVER_TIME[rule.aggregation]}(({inner})[{window}:])"
    q = float(rule.aggregation[1:]) / 100
    return f"quantile_over_time({q:g}, ({inner})[{window}:])"


def unexportable(rules: RuleSet | Sequence[SlaRule]) -> list[SlaRule]:
    """The rules whose metric has no Prometheus counterpart."""
    listed = rules.rules if isinstance(rules, RuleSet) else rules
    return [r for r in listed if rule_expr(r) is None]


def _level(value: float) -> str:
    return f"{value:.12g}"


def _prom_template(text: str, rule: SlaRule, severity: str) -> str:
    """A rule annotation with `{value}`-style fields rewritten for Prometheus templates."""
    value = {
        "%": "{{ $value | humanizePercentage }}",
        "s": "{{ $value | humanizeDuration }}",
        "/s": "{{ $value | humanize }}/s",
        "": "{{ $value | humanize }}",
    }[rule.unit]
    fields = {
        "value": value,
        "threshold": str(threshold_text(rule.threshold, rule.unit)),
        "rule": rule.name,
        "metric": rule.metric,
        "window": format_duration(rule.window),
        "agent": "{{ $labels.agent }}",
        "state": severity,
        "severity": severity,
        "level": severity,
    }
    out = []
    for literal, field, _, _ in string.Formatter().parse(text):
        out.append(literal.replace("{{", '{{ "{{" }}'))
        if field is not None:
            out.append(fields[field])
    return "".join(out)


def prometheus_rules(rules: RuleSet, group: str = "swarmperf-sla") -> str:
    """The rules as a Prometheus alerting-rules file (YAML), one alert per rule and level."""
    entries: list[dict[str, Any]] = []
    skipped: list[str] = []
    for rule in rules.rules:
        expr = rule_expr(rule)
        if expr is None:
            skipped.append(f"{rule.name} ({rule.metric})")
            continue
        op = ">=" if rule.is_upper_limit else "<="
        for severity in rule.severities():
            annotations = {
                k: _prom_template(v, rule, severity) for k, v in rule.annotations.items()
            }
            annotations.setdefault(
                "objective",
                f"{rule.metric} {rule.comparison} {threshold_text(rule.threshold, rule.unit)}",
            )
            entries.append(
                {
                    "alert": rule.name,
                    "expr": f"{expr} {op} {_level(rule.level_value(severity))}",
                    "for": format_duration(rule.for_),
                    "labels": {**rule.labels, "severity": severity},
                    "annotations": annotations,
                }
            )
    body = {
        "groups": [
            {
                "name": group,
                "interval": format_duration(rules.evaluation_interval),
                "rules": entries,
            }
        ]
    }
    header = [
        "# Prometheus alerting rules generated by `swarmperf export prometheus-rules`.",
        "# Each SLA rule gives a warning and a critical alert at its share of the error budget.",
    ]
    header += [f"# Not exported (no Prometheus metric): {s}" for s in skipped]
    return "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False, width=1000)


# -- Grafana ----------------------------------------------------------------------------

_SWARM = f'{names.SWARM_LABEL}=~"$swarm"'
_RATE = "$__rate_interval"


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
    }


def _panel(
    panel_id: int,
    title: str,
    targets: list[tuple[str, str]],
    unit: str,
    pos: tuple[int, int, int, int],
    kind: str = "timeseries",
    **options: Any,
) -> dict[str, Any]:
    x, y, w, h = pos
    return {
        "id": panel_id,
        "type": kind,
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": options or {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            _target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(panel title, PromQL, legend) for every query of the dashboard."""
    return [
        (p["title"], t["expr"], t["legendFormat"])
        for p in grafana_dashboard()["panels"]
        for t in p.get("targets", [])
    ]


def grafana_dashboard(title: str = "swarmperf", uid: str = "swarmperf") -> dict[str, Any]:
    """A Grafana dashboard (JSON model) over the exported swarm and system metrics."""
    tasks = names.TASKS_TOTAL

    def by_status(matcher: str) -> str:
        return f"sum by (swarm) (rate({tasks}{{{_SWARM},{matcher}}}[{_RATE}]))"

    def quantiles(metric: str) -> list[tuple[str, str]]:
        return [
            (f"max by (swarm) ({metric}{{{_SWARM},{_quantile(str(q))}}})", f"p{round(q * 100)}")
            for q in names.QUANTILES
        ]

    failed = 'status="failed"'
    rejected = 'status="rejected"'
    p99 = _quantile("0.99")

    panels = [
        _panel(
            1,
            "Throughput (tasks/s by status)",
            [(f"sum by (swarm, status) (rate({tasks}{{{_SWARM}}}[{_RATE}]))", "{{status}}")],
            "reqps",
            (0, 0, 12, 8),
        ),
        _panel(
            2,
            "Latency quantiles (queued → finished)",
            quantiles(names.TASK_LATENCY),
            "s",
            (12, 0, 12, 8),
        ),
        _panel(
            3,
            "Error rate",
            [(f"{by_status(failed)} / {by_status(FINISHED)}", "{{swarm}}")],
            "percentunit",
            (0, 8, 8, 8),
        ),
        _panel(
            4,
            "Availability",
            [
                (
                    f"1 - (({by_status(rejected)} + {by_status(NO_AGENT_FAILED)})"
                    f" / {by_status(ASKED)})",
                    "{{swarm}}",
                )
            ],
            "percentunit",
            (8, 8, 8, 8),
        ),
        _panel(
            5,
            "Queue depth by priority",
            [(f"sum by (swarm, priority) ({names.QUEUE_DEPTH}{{{_SWARM}}})", "{{priority}}")],
            "short",
            (16, 8, 8, 8),
        ),
        _panel(
            6,
            "Agent utilisation",
            [(f"max by (agent) ({names.AGENT_UTILIZATION}{{{_SWARM}}})", "{{agent}}")],
            "percentunit",
            (0, 16, 12, 8),
        ),
        _panel(
            7,
            "Agents in flight and up",
            [
                (f"sum by (agent) ({names.AGENT_IN_FLIGHT}{{{_SWARM}}})", "{{agent}} in flight"),
                (f"min by (agent) ({names.AGENT_UP}{{{_SWARM}}})", "{{agent}} up"),
            ],
            "short",
            (12, 16, 12, 8),
        ),
        _panel(
            8,
            "Breaker states",
            [
                (
                    f"max by (agent, state) ({names.BREAKER_STATE}{{{_SWARM}}}) == 1",
                    "{{agent}} {{state}}",
                )
            ],
            "short",
            (0, 24, 12, 8),
            kind="state-timeline",
            showValue="never",
            mergeValues=True,
        ),
        _panel(
            9,
            "Wait and service p99",
            [
                (f"max by (swarm) ({names.TASK_WAIT}{{{_SWARM},{p99}}})", "wait p99"),
                (
                    f"max by (agent) ({names.TASK_SERVICE}{{{_SWARM},{p99}}})",
                    "{{agent}} service p99",
                ),
            ],
            "s",
            (12, 24, 12, 8),
        ),
        _panel(
            10,
            "CPU and memory",
            [
                (f"max by (swarm) ({names.SYSTEM_CPU}{{{_SWARM}}})", "CPU"),
                (f"max by (swarm) ({names.SYSTEM_MEMORY}{{{_SWARM}}})", "memory"),
            ],
            "percentunit",
            (0, 32, 12, 8),
        ),
        _panel(
            11,
            "Network and process memory",
            [
                (
                    f"sum by (swarm) (rate({names.SYSTEM_NET_RECEIVE}{{{_SWARM}}}[{_RATE}]))",
                    "receive",
                ),
                (
                    f"sum by (swarm) (rate({names.SYSTEM_NET_TRANSMIT}{{{_SWARM}}}[{_RATE}]))",
                    "transmit",
                ),
                (f"sum by (swarm) (process_resident_memory_bytes{{{_SWARM}}})", "process RSS"),
            ],
            "bytes",
            (12, 32, 12, 8),
        ),
    ]
    return {
        "uid": uid,
        "title": title,
        "tags": ["swarmperf"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "swarm",
                    "label": "Swarm",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": {
                        "query": f"label_values({tasks}, {names.SWARM_LABEL})",
                        "refId": "swarm",
                    },
                    "definition": f"label_values({tasks}, {names.SWARM_LABEL})",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {},
                    "hide": 0,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }

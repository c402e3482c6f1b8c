"""A finished swarm's dashboard: its stored run played back through the same page and feed.

The messages are those the live feed sent, rebuilt from what the store kept: a `metrics`
message per stored snapshot, the run's events and decisions, in time order, then `end`.
What the store does not keep (queue depth per priority, breaker states, admission totals)
is absent from them, and the page shows it as no data.
"""

from __future__ import annotations

import itertools
import secrets
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import WebSocket  # at module level: the route's annotation is read by name

from swarmperf.core.errors import ConfigError
from swarmperf.service.feed import Feed
from swarmperf.store import Store
from swarmperf.store.records import MetricRow, RunRecord

MAX_SNAPSHOTS = 7200  # the last two hours at one a second: a day would not fit a page


def replay_feed(store: Store, swarm_id: str, run: RunRecord) -> tuple[Feed, dict[str, Any]]:
    """The run's messages in a feed that has ended, and the hello a page gets first."""
    rows = [row for row in store.metrics(swarm_id, since=run.started_at) if row.run_id == run.id]
    snapshots = _by_time(rows)
    left_out = max(0, len(snapshots) - MAX_SNAPSHOTS)
    snapshots = snapshots[left_out:]
    end = run.finished_at if run.finished_at is not None else run.last_seen
    messages: list[dict[str, Any]] = [_metrics(ts, values, run) for ts, values in snapshots]
    for event in store.events(swarm_id, since=run.started_at):
        if event.run_id == run.id:
            messages.append(
                {
                    "type": "event",
                    "ts": event.ts,
                    "kind": event.kind,
                    "subject": event.subject,
                    "detail": event.detail,
                }
            )
    for decision in store.decisions(swarm_id):
        if run.started_at <= decision.created_at <= end:
            messages.append(
                {
                    "type": "decision",
                    "ts": decision.created_at,
                    "id": decision.id,
                    "kind": decision.kind,
                    "reason": decision.reason,
                    "created_at": decision.created_at,
                    "decision": decision.decision,
                }
            )
    messages.sort(key=lambda m: float(m["ts"]))
    feed = Feed(keep=len(messages) + 1)
    for message in messages:
        feed.publish(message)
    feed.end(f"the end of {run.label()}")
    hello = {
        "type": "hello",
        "swarm_id": swarm_id,
        "live": False,
        "state": run.status,
        "interval_s": _interval(snapshots),
        "seq": feed.seq,
        "strategy": run.strategy,
        "backend": run.backend,
        "started_at": run.started_at,
        "run_id": run.id,
        "run": run.label(),
        "snapshots_left_out": left_out,
    }
    return feed, hello


def latest_run(store: Store, swarm_id: str) -> RunRecord:
    run = store.latest_run(swarm_id)
    if run is None:
        raise ConfigError(
            "--swarm-id",
            swarm_id,
            "No run of that swarm is stored here, and none is served: start one with "
            "swarmperf serve (or swarmperf run), or check --data-dir.",
        )
    return run


def replay_app(store_path: Path, swarm_id: str) -> tuple[Any, str]:
    """An app serving the page and the replay of the swarm's latest run, and its token."""
    from fastapi import FastAPI
    from fastapi.responses import FileResponse, Response
    from fastapi.staticfiles import StaticFiles

    from swarmperf.service.api import STATIC, serve_feed

    with Store.open(store_path, read_only=True) as store:
        feed, hello = replay_feed(store, swarm_id, latest_run(store, swarm_id))
    token = secrets.token_urlsafe(32)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.websocket("/v1/live")
    async def live(socket: WebSocket) -> None:
        await serve_feed(socket, feed, lambda: dict(hello), token.encode())

    @app.get("/")
    async def page() -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app, token


def _by_time(rows: Iterable[MetricRow]) -> list[tuple[float, dict[str, float | None]]]:
    grouped: dict[float, dict[str, float | None]] = defaultdict(dict)
    for row in rows:
        grouped[row.ts][row.name] = row.value
    return sorted(grouped.items())


def _metrics(ts: float, values: dict[str, float | None], run: RunRecord) -> dict[str, Any]:
    agents: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        if not name.startswith("agent."):
            continue
        rest = name[len("agent.") :]
        for field in ("utilization", "in_flight", "completed", "failed"):
            if rest.endswith("." + field):
                agent = rest[: -len(field) - 1]
                agents.setdefault(agent, {"id": agent, "breaker": None, "alive": True})
                agents[agent][field] = value
    depth = values.get("swarm.queue_depth")
    return {
        "type": "metrics",
        "ts": ts,
        "window_s": None,
        "state": "replay",
        "strategy": run.strategy,
        "metrics": values,
        "queue": {"depth": depth, "by_priority": {}},
        "totals": {},
        "agents": list(agents.values()),
        "alerts": [],
    }


def _interval(snapshots: list[tuple[float, dict[str, float | None]]]) -> float | None:
    if len(snapshots) < 2:
        return None
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(snapshots))
    return gaps[len(gaps) // 2]

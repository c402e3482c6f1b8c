"""The questions both front-ends answer about a live swarm (`swarmperf serve`), via its client.

Each finds the swarm through the data directory's registry, asks its service, and returns
the JSON-able payload the command line prints under `-o json` and the MCP tool returns.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmperf.core.durations import format_duration, parse_duration
from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.spec.autoscale import LIVE_POLICIES, MAX_SCALE_AGENTS

if TYPE_CHECKING:
    from swarmperf.client import SyncSwarmClient

# A front-end asks once or twice; it does not wait through the client's long retries
# (those are for programs submitting work through a restart).
CLI_RETRIES = 2
CLI_TIMEOUT_S = 30.0
DEFAULT_OBSERVE = "10s"
# What the service measures the figures after over when the caller does not wait for
# them (observe 0): its own default window.
SERVICE_OBSERVE_S = 30.0
# How long past the observation the caller waits for the service to record the figures after.
DECISION_SLACK_S = 10.0
DECISION_POLL_S = 0.25
# How many tasks one `task_submit` call may carry: a tool call is not a bulk loader.
MAX_SUBMIT = 10_000


def data_dir_of(data_dir: Path | None) -> Path:
    from swarmperf.store import resolve_data_dir

    return resolve_data_dir(data_dir, os.environ)


def connect(swarm_id: str, data_dir: Path | None) -> SyncSwarmClient:
    """A client of the running swarm `swarm_id`; `SwarmNotRunning` (exit 2) naming the
    swarms that do run when it does not."""
    from swarmperf.client import SyncSwarmClient

    return SyncSwarmClient(
        swarm_id, data_dir=data_dir_of(data_dir), timeout=CLI_TIMEOUT_S, retries=CLI_RETRIES
    )


def running_client(
    swarm_id: str, data_dir: Path | None
) -> tuple[SyncSwarmClient | None, ConfigError | None]:
    """A client of `swarm_id` if a live service serves it; else None and why not (an id no
    service can have, a stale entry or none), which names the swarms that do run."""
    try:
        return connect(swarm_id, data_dir), None
    except ConfigError as exc:
        return None, exc


@contextmanager
def _using(
    swarm_id: str, data_dir: Path | None, client: SyncSwarmClient | None
) -> Iterator[SyncSwarmClient]:
    """`client` as it is (its owner closes it), else a new one closed after use."""
    if client is not None:
        yield client
        return
    with connect(swarm_id, data_dir) as made:
        yield made


def running_swarms(data_dir: Path | None) -> list[dict[str, Any]]:
    """The swarms served from the data directory: id, address and process."""
    from swarmperf.service import registry

    return [
        {"swarm_id": e.swarm_id, "url": e.url, "pid": e.pid, "host": e.host}
        for e in registry.running(data_dir_of(data_dir))
    ]


def figure(figures: Mapping[str, Any] | None, key: str) -> Any:
    if figures is None:
        return None
    if key in figures:
        return figures[key]
    # A status may nest its latency: {"latency": {"p50": ...}}.
    if key.startswith("latency_") and isinstance(figures.get("latency"), Mapping):
        return figures["latency"].get(key.removeprefix("latency_").removesuffix("_s"))
    return None


def swarm_status(
    swarm_id: str, data_dir: Path | None, client: SyncSwarmClient | None = None
) -> dict[str, Any]:
    """`swarm-status -o json`: the live swarm now (state, strategy, tasks, figures, agents).
    A long-lived caller passes its `client` of the swarm (a new one costs milliseconds)."""
    with _using(swarm_id, data_dir, client) as using:
        return using.status()


def agent_list(
    swarm_id: str, data_dir: Path | None, client: SyncSwarmClient | None = None
) -> dict[str, Any]:
    """The live swarm's agents as its status gives them (the `agents` of `swarm-status`)."""
    status = swarm_status(swarm_id, data_dir, client)
    return {"swarm_id": status.get("swarm_id"), "agents": status.get("agents") or []}


# -- decisions: a strategy switch, scaling ---------------------------------------------------


def observe_seconds(text: str | None) -> float:
    return parse_duration(DEFAULT_OBSERVE if text is None else text, "--observe")


def observed(
    client: SyncSwarmClient,
    decision_id: int,
    observe: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any] | None, str | None]:
    """The decision's figures after, once the service has them (it measures them `observe`
    seconds after the change), with the reason they may not be comparable."""
    if observe <= 0:
        return None, None
    sleep(observe)
    give_up = time.monotonic() + DECISION_SLACK_S
    while True:
        record = client.decision(decision_id)
        decision = record.get("decision") or {}
        after = decision.get("after")
        if after is not None:
            reason = decision.get("after_reason")
            return dict(after), None if reason is None else str(reason)
        if time.monotonic() >= give_up:
            return None, (
                f"the service had not recorded them {format_duration(DECISION_SLACK_S)} after "
                f"--observe; they will be in decision {decision_id}"
            )
        time.sleep(DECISION_POLL_S)


def check_strategy(strategy: str) -> str:
    from swarmperf.balancing.strategies import STRATEGIES
    from swarmperf.core.errors import UnknownName

    if strategy not in STRATEGIES:
        if strategy == "auto":
            raise ConfigError(
                "--strategy",
                strategy,
                "A live swarm runs one strategy: name it (swarmperf strategies lists "
                "them). auto compares them all on a workload, without --swarm-id.",
            )
        raise UnknownName("--strategy", strategy, STRATEGIES)
    return strategy


def switch_strategy(
    swarm_id: str,
    strategy: str,
    observe_text: str | None,
    data_dir: Path | None,
    *,
    on_watch: Callable[[float], None] | None = None,
    client: SyncSwarmClient | None = None,
) -> dict[str, Any]:
    """`load-balance --swarm-id -o json`: switch a live swarm's strategy, recorded as a
    decision, with the figures before and over `observe_text` after. `on_watch` is told
    how long the wait for the figures after will be."""
    observe = observe_seconds(observe_text)
    check_strategy(strategy)
    with _using(swarm_id, data_dir, client) as using:
        change, decision_id, after, reason = _decided(
            using, lambda asked: using.set_strategy(strategy, observe_s=asked), observe, on_watch
        )
    return {
        "swarm_id": swarm_id,
        "previous": change.get("previous"),
        "strategy": change.get("name", strategy),
        "decision_id": decision_id,
        "observe_s": observe,
        "figures_before": change.get("figures_before"),
        "figures_after": after,
        "after_reason": reason,
    }


def _decided(
    using: SyncSwarmClient,
    change_it: Callable[[float], dict[str, Any]],
    observe: float,
    on_watch: Callable[[float], None] | None,
) -> tuple[dict[str, Any], int, dict[str, Any] | None, str | None]:
    """Make a live change (a decision), then wait `observe` seconds for its figures after:
    the change's reply, its decision id, the figures after and why they are missing."""
    change = change_it(observe if observe > 0 else SERVICE_OBSERVE_S)
    decision_id = int(change["decision_id"])
    if on_watch is not None and observe > 0:
        on_watch(observe)
    after, reason = observed(using, decision_id, observe)
    return change, decision_id, after, reason


def target_size(text: str) -> int | str:
    """A number of agents, or "auto"."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        size = int(text.strip())
    except ValueError:
        raise ConfigError(
            "--target-size", text, "Give a number of agents, e.g. 12, or auto."
        ) from None
    if size < 1:
        raise ConfigError("--target-size", text, "Give a number of agents, at least 1.")
    if size > MAX_SCALE_AGENTS:
        raise ConfigError(
            "--target-size", text, f"Give at most {MAX_SCALE_AGENTS:,} agents at once."
        )
    return size


def check_scale_policy(policy: str | None, size: int | str) -> str | None:
    """A live policy's name, for --target-size auto only."""
    if policy is None:
        return None
    if size != "auto":
        raise ConfigError(
            "--policy", policy, "A policy goes with --target-size auto; drop it for a size."
        )
    if policy not in LIVE_POLICIES:
        if policy == "oracle":
            raise ConfigError(
                "--policy",
                policy,
                "The oracle needs the future: autoscale-eval replays it. Choose one of: "
                + ", ".join(LIVE_POLICIES)
                + ".",
            )
        raise UnknownName("--policy", policy, LIVE_POLICIES)
    return policy


def swarm_scale(
    swarm_id: str,
    size_text: str,
    observe_text: str | None,
    data_dir: Path | None,
    *,
    on_watch: Callable[[float], None] | None = None,
    client: SyncSwarmClient | None = None,
    policy: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """`swarm-scale -o json`: add or remove agents of a live swarm, with the figures before
    and after; `auto` turns its autoscaler on with `policy` (a size turns it off again);
    `dry_run` says what would be done and changes nothing."""
    size = target_size(size_text)
    chosen = check_scale_policy(policy, size)
    observe = observe_seconds(observe_text)
    if size == "auto" or dry_run:
        with _using(swarm_id, data_dir, client) as using:
            answer = using.scale(size, 0, policy=chosen, dry_run=dry_run)
        return {"swarm_id": swarm_id, "target_size": size, **answer}
    assert isinstance(size, int)
    with _using(swarm_id, data_dir, client) as using:
        change, decision_id, after, reason = _decided(
            using, lambda asked: using.scale(size, observe_s=asked), observe, on_watch
        )
    return {
        "swarm_id": swarm_id,
        "before": change.get("before"),
        "after": change.get("after"),
        "added": list(change.get("added") or []),
        "removed": list(change.get("removed") or []),
        "decision_id": decision_id,
        "observe_s": observe,
        "figures_before": change.get("figures_before"),
        "figures_after": after,
        "after_reason": reason,
        "autoscale_turned_off": bool(change.get("autoscale_turned_off")),
    }


def task_submit(
    swarm_id: str,
    tasks: Sequence[Mapping[str, Any]],
    data_dir: Path | None,
    *,
    wait_s: float = 0.0,
    client: SyncSwarmClient | None = None,
) -> dict[str, Any]:
    """Submit tasks to a live swarm (each stored before the reply); with `wait_s` > 0, wait
    that long at most for each task's outcome."""
    if not tasks:
        raise ConfigError("tasks", [], "Give at least one task, e.g. [{'kind': 'sleep'}].")
    if len(tasks) > MAX_SUBMIT:
        raise ConfigError(
            "tasks",
            f"{len(tasks)} tasks",
            f"Give at most {MAX_SUBMIT:,} per call, or use the client.",
        )
    if wait_s < 0:
        raise ConfigError("wait_s", wait_s, "Give 0 (do not wait) or more seconds.")
    with _using(swarm_id, data_dir, client) as using:
        receipts = using.submit_many([dict(t) for t in tasks])
        outcomes = [using.wait(r.id, timeout=wait_s) for r in receipts] if wait_s > 0 else []
    return {
        "swarm_id": swarm_id,
        "submitted": [
            {"id": r.id, "idempotency_key": r.idempotency_key, "duplicate": r.duplicate}
            for r in receipts
        ],
        "outcomes": [
            {
                "id": o.id,
                "kind": o.kind,
                "status": o.status,
                "value": o.value,
                "error": o.error,
                "agent": o.agent,
                "attempts": o.attempts,
                "latency_s": o.latency_s,
            }
            for o in outcomes
        ],
    }


# -- swarm-monitor, attached ----------------------------------------------------------------

MONITOR_FIGURES: tuple[tuple[str, str, str, str], ...] = (
    # (figures key, stored name, label, unit): the store's names, so the view reads the same.
    ("throughput_per_s", "swarm.throughput_per_s", "throughput", "tasks/s"),
    ("latency_p50_s", "swarm.latency.p50", "latency p50", "ms"),
    ("latency_p99_s", "swarm.latency.p99", "latency p99", "ms"),
    ("error_rate", "swarm.error_rate", "error rate", "ratio"),
    ("queue_depth", "swarm.queue_depth", "queue depth", "tasks"),
)


def monitor_data(status: Mapping[str, Any], now: float) -> dict[str, Any]:
    """A live status in the shape `swarm-monitor` shows a stored swarm in (see
    `queries.stored.monitor_data`), marked `live`."""
    uptime = status.get("uptime_s")
    elapsed = float(uptime) if isinstance(uptime, int | float) else 0.0
    run_id = status.get("run_id")
    swarm_id = str(status.get("swarm_id"))
    label = f"live swarm {swarm_id!r}" + (f" (run id {run_id})" if run_id is not None else "")
    figures = status.get("figures") or {}
    window = figures.get("window_s")
    values: list[dict[str, Any]] = []
    for key, name, label_, unit in MONITOR_FIGURES:
        values.append({"name": name, "label": label_, "value": figure(figures, key), "unit": unit})
    for agent in status.get("agents") or []:
        values.append(
            {
                "name": f"agent.{agent.get('id')}.utilization",
                "label": f"{agent.get('id')} utilisation",
                "value": agent.get("utilization"),
                "unit": "ratio",
            }
        )
    span = f" (last {window:.0f} s)" if isinstance(window, int | float) else ""
    return {
        "swarm_id": swarm_id,
        "at": now,
        "live": True,
        "state": status.get("state"),
        "run": {
            "id": run_id,
            "number": None,
            "kind": "real",
            "label": label,
            "status": status.get("state"),
            "strategy": status.get("strategy"),
            "backend": status.get("backend"),
            "started_at": now - elapsed,
            "tasks_stored": int(status.get("finished") or 0),
            "tasks_total": status.get("accepted"),
            "elapsed_s": elapsed,
        },
        "figures": {"ts": now, "source": f"the live service{span}", "values": values},
    }

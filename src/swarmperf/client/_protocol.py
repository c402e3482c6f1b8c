"""What both clients share, free of I/O: requests as data, replies as values, errors, backoff."""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

from swarmperf.core.errors import ConfigError, ServiceError, SwarmError, preview
from swarmperf.core.model import Priority, Task

T = TypeVar("T")

# The service's own limits (contract): a batch holds at most this many tasks, a long-poll
# waits at most this long per request.
MAX_BATCH = 10_000
MAX_WAIT_S = 60.0
# Backoff between retries: doubling from the first delay up to the cap, with jitter so that
# many clients refused at once do not come back at once. A Retry-After is honoured up to
# MAX_RETRY_AFTER_S: a service asking for an hour is not waited for an hour.
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0
MAX_RETRY_AFTER_S = 30.0
# Statuses that mean "not done, come back later": the request was refused before any effect.
RETRY_STATUSES = frozenset({429, 503})
# Statuses whose problem names a field of the request: a mistake of the caller.
CALLER_STATUSES = frozenset({400, 404, 409, 422})
# The fields a task may carry (the service's task schema), beyond kind and payload.
TASK_FIELDS = frozenset(
    {"priority", "rank", "deadline_s", "cost", "tenant", "idempotency_key", "tokens"}
)
_TASK_KEYS = frozenset({"kind", "payload"}) | TASK_FIELDS
IDEMPOTENCY_KEY_MAX = 200
# The shortest time between two polls of a task, should the service answer a long-poll at once.
MIN_POLL_S = 0.05


def _process_tag() -> str:
    return os.urandom(6).hex()


_tag = _process_tag()
_keys = itertools.count()
# A forked child would repeat its parent's keys: it takes a tag of its own.
os.register_at_fork(after_in_child=lambda: globals().update(_tag=_process_tag()))


def new_key() -> str:
    """A fresh idempotency key: the time, this process's random tag, a count. Unique like
    a random UUID, but in time order, so that the service's index of keys grows at its
    end instead of everywhere (a random key per task slows a large intake down)."""
    return f"{time.time_ns():x}-{_tag}-{next(_keys):x}"


@dataclass(frozen=True, slots=True)
class Submitted:
    """The service's receipt for one task: it is stored and will run (once per key)."""

    id: str
    idempotency_key: str
    duplicate: bool  # the key was known already: this is the task accepted before


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """A task's state as the service records it: `status` is "pending" until its result."""

    id: str
    idempotency_key: str | None
    kind: str
    status: str
    value: Any = None
    error: str | None = None
    agent: str | None = None
    attempts: int | None = None
    latency_s: float | None = None
    cursor: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def done(self) -> bool:
        return self.status != "pending"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request as data, and how to read its reply.

    `idempotent`: sending it twice does what sending it once does, so it is retried after a
    lost connection too; any call is retried when it was refused (429/503) or never sent."""

    method: str
    path: str
    parse: Callable[[Any], T]
    body: bytes | None = None
    params: Mapping[str, str | int | float] | None = None
    idempotent: bool = False
    read_timeout: float | None = None  # beyond the client's own: a long-poll's wait
    expect: frozenset[int] = field(default=frozenset({200, 201, 202}))
    accept: str = "application/json"


def encode(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def task_data(task: Mapping[str, Any] | Task, where: str) -> dict[str, Any]:
    """A task as the service takes it, checked here so that a mistake names its place
    (`tasks[3].priority`) before anything is sent."""
    if isinstance(task, Task):
        if task.deadline is not None:
            raise ConfigError(
                f"{where}.deadline",
                task.deadline,
                "A Task's deadline is a time on its own swarm's clock, which another process "
                "cannot know: give the task as a mapping with deadline_s (seconds from its "
                "acceptance) instead.",
            )
        data: dict[str, Any] = {
            "kind": task.kind,
            "payload": task.payload,
            "priority": task.priority.name.lower(),
            "rank": task.rank,
            "cost": task.cost,
            "tenant": task.tenant,
            "idempotency_key": task.idempotency_key,
            "tokens": task.tokens,
        }
    elif isinstance(task, Mapping):
        unknown = sorted(str(key) for key in task if key not in _TASK_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}.{unknown[0]}",
                task[unknown[0]],
                f"A task takes: {', '.join(sorted(_TASK_KEYS))}.",
            )
        if "kind" not in task:
            raise ConfigError(f"{where}.kind", None, "Every task names its kind (a handler).")
        data = dict(task)
    else:
        raise ConfigError(where, task, "Give a task as a mapping (kind, payload, ...) or a Task.")
    if not isinstance(data["kind"], str) or not data["kind"]:
        raise ConfigError(f"{where}.kind", data["kind"], "Give the name of a handler.")
    priority = data.get("priority")
    if isinstance(priority, Priority):
        data["priority"] = priority.name.lower()
    key = data.get("idempotency_key")
    if key is None:
        # Given here, before the first attempt, so that a retry of the same request (or a
        # resubmission after the service restarted) is known as the same task.
        data["idempotency_key"] = new_key()
    elif not isinstance(key, str) or not 0 < len(key) <= IDEMPOTENCY_KEY_MAX:
        raise ConfigError(
            f"{where}.idempotency_key",
            key,
            f"Give a non-empty string of at most {IDEMPOTENCY_KEY_MAX} characters, or none "
            "for a fresh one.",
        )
    try:
        encode(data.get("payload"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where}.payload",
            data.get("payload"),
            f"A payload travels as JSON, which this is not ({exc}). Give plain data: "
            "dicts, lists, strings, finite numbers, booleans, None.",
        ) from None
    return {key: value for key, value in data.items() if value is not None or key == "payload"}


def batches(items: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_batch(batch: int) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ConfigError("batch", batch, f"Give an integer from 1 to {MAX_BATCH:,}.")
    return batch


def submitted(data: Mapping[str, Any]) -> Submitted:
    return Submitted(
        id=str(data["id"]),
        idempotency_key=str(data["idempotency_key"]),
        duplicate=bool(data.get("duplicate", False)),
    )


def outcome(data: Mapping[str, Any]) -> TaskOutcome:
    """A `TaskOutcome` from a task's record (its result nested, or null while pending) or
    from an item of the results (flat)."""
    nested = data.get("result") if "result" in data else data
    source: Mapping[str, Any] = nested if isinstance(nested, Mapping) else {}
    attempts = source.get("attempts")
    latency = source.get("latency_s")
    cursor = source.get("cursor")
    return TaskOutcome(
        id=str(data["id"]),
        idempotency_key=data.get("idempotency_key"),
        kind=str(data.get("kind", "")),
        status=str(data.get("status") or source.get("status")),
        value=source.get("value"),
        error=source.get("error"),
        agent=source.get("agent"),
        attempts=None if attempts is None else int(attempts),
        latency_s=None if latency is None else float(latency),
        cursor=None if cursor is None else int(cursor),
    )


def results_page(data: Mapping[str, Any]) -> tuple[list[TaskOutcome], int]:
    return [outcome(item) for item in data.get("results", [])], int(data["next"])


def acknowledged(sent: list[dict[str, Any]], receipts: list[Submitted]) -> list[Submitted]:
    """The receipts of a batch, checked against what was sent: one per task, in order."""
    keys = [task["idempotency_key"] for task in sent]
    if [receipt.idempotency_key for receipt in receipts] != keys:
        raise ServiceError(
            202,
            "the service's receipts do not match the batch",
            f"{len(sent)} tasks sent, {len(receipts)} receipts; submit them again: their "
            "idempotency keys keep each one task",
        )
    return receipts


def as_dict(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ServiceError(200, "the service answered with something other than an object")
    return data


def agents_list(data: Any) -> list[dict[str, Any]]:
    return [dict(agent) for agent in as_dict(data).get("agents", [])]


def wait_params(remaining: float | None) -> float:
    """How long one long-poll asks the service to wait."""
    return MAX_WAIT_S if remaining is None else max(0.0, min(MAX_WAIT_S, remaining))


def non_negative(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(name, value, "Give a number of seconds >= 0.")
    if not math.isfinite(value):
        raise ConfigError(name, value, "Give a finite number of seconds.")
    return float(value)


# -- replies and errors ---------------------------------------------------------------------


def read_json(body: bytes, status: int) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ServiceError(
            status, "the service's reply is not JSON", preview(body.decode(errors="replace"))
        ) from None


def problem(status: int, body: bytes, reason: str) -> SwarmError:
    """The error an error reply stands for: a caller's mistake naming its field is a
    `ConfigError`; a refused token, and everything else, a `ServiceError`."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    title = str(data.get("title") or reason or "error")
    detail = str(data.get("detail") or "")
    if status == 401:
        # Whatever the reply says, never anything of the token itself.
        return ServiceError(
            401,
            "the token was refused",
            "Use the token of the running service: give the swarm's id (its token is read "
            "from the data directory), or the token in its token file.",
        )
    if status in CALLER_STATUSES and data.get("field"):
        fix = str(data.get("fix") or detail or title)
        return ConfigError(str(data["field"]), data.get("value"), fix)
    if not data and body:
        detail = preview(body.decode(errors="replace"))
    return ServiceError(status, title, detail)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for: a number, or an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff(attempt: int, asked: float | None, rng: random.Random | None = None) -> float:
    """How long to wait before retry number `attempt` (1 for the first retry)."""
    if asked is not None:
        return min(asked, MAX_RETRY_AFTER_S)
    ceiling: float = min(MAX_DELAY_S, FIRST_DELAY_S * 2.0 ** min(attempt - 1, 32))
    # Jitter in the upper half: never less than half the step, so the total wait of
    # all retries stays predictable (a restart of the service has time to happen).
    return ceiling * (0.5 + 0.5 * (rng or random).random())


def check_target(
    swarm_id: str | None, url: str | None, token: str | None
) -> tuple[str | None, str | None, str | None]:
    if swarm_id is not None and url is not None:
        raise ConfigError(
            "url",
            url,
            "Give a swarm id (found through the data directory's registry) or a url and a "
            "token, not both.",
        )
    if swarm_id is None and url is None:
        raise ConfigError(
            "swarm_id",
            None,
            "Give the id of a running swarm (swarmperf serve --swarm-id ID), or a url and a token.",
        )
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError("url", url, "Give the service's address, e.g. http://127.0.0.1:8000.")
    return swarm_id, None if url is None else url.rstrip("/"), token


def data_dir_of(data_dir: str | Path | None) -> Path:
    from swarmperf.store.paths import default_data_dir

    return default_data_dir() if data_dir is None else Path(data_dir).expanduser()


# -- the calls ------------------------------------------------------------------------------


def _path_part(value: object) -> str:
    return quote(str(value), safe="")


def _parse_submitted_batch(data: Any) -> list[Submitted]:
    return [submitted(item) for item in as_dict(data).get("tasks", [])]


def _parse_submitted(data: Any) -> Submitted:
    return submitted(as_dict(data))


def _parse_outcome(data: Any) -> TaskOutcome:
    return outcome(as_dict(data))


def _parse_page(data: Any) -> tuple[list[TaskOutcome], int]:
    return results_page(as_dict(data))


class Calls:
    """Every request of the API as a `Call`; the clients only send them."""

    @staticmethod
    def submit(task: dict[str, Any]) -> Call[Submitted]:
        # Idempotent: the task carries its key, so a resend is known as the same task.
        return Call("POST", "/v1/tasks", _parse_submitted, encode(task), idempotent=True)

    @staticmethod
    def submit_batch(tasks: list[dict[str, Any]]) -> Call[list[Submitted]]:
        body = encode({"tasks": tasks})
        return Call("POST", "/v1/tasks/batch", _parse_submitted_batch, body, idempotent=True)

    @staticmethod
    def task(task_id: str, wait: float) -> Call[TaskOutcome]:
        params = {"wait": wait} if wait > 0 else None
        return Call(
            "GET",
            f"/v1/tasks/{_path_part(task_id)}",
            _parse_outcome,
            params=params,
            idempotent=True,
            read_timeout=wait,
        )

    @staticmethod
    def results(after: int, limit: int, wait: float) -> Call[tuple[list[TaskOutcome], int]]:
        params: dict[str, str | int | float] = {"after": after, "limit": limit}
        if wait > 0:
            params["wait"] = wait
        return Call(
            "GET", "/v1/results", _parse_page, params=params, idempotent=True, read_timeout=wait
        )

    @staticmethod
    def stream(after: int) -> Call[Any]:
        return Call(
            "GET",
            "/v1/results/stream",
            outcome,
            params={"after": after},
            idempotent=True,
            accept="application/x-ndjson",
        )

    @staticmethod
    def get(path: str) -> Call[dict[str, Any]]:
        return Call("GET", path, as_dict, idempotent=True)

    @staticmethod
    def agents() -> Call[list[dict[str, Any]]]:
        return Call("GET", "/v1/agents", agents_list, idempotent=True)

    @staticmethod
    def post(
        path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Call[dict[str, Any]]:
        content = encode(dict(body or {}))
        return Call("POST", path, as_dict, content, idempotent=idempotent)

    @staticmethod
    def put(path: str, body: Mapping[str, Any]) -> Call[dict[str, Any]]:
        return Call("PUT", path, as_dict, encode(dict(body)))

    @staticmethod
    def delete(path: str) -> Call[dict[str, Any]]:
        return Call("DELETE", path, as_dict)

    @staticmethod
    def remove_agent(agent_id: str) -> Call[dict[str, Any]]:
        return Calls.delete(f"/v1/agents/{_path_part(agent_id)}")

    @staticmethod
    def decision(decision_id: int) -> Call[dict[str, Any]]:
        return Calls.get(f"/v1/decisions/{_path_part(decision_id)}")

    @staticmethod
    def scale(
        target_size: int | str,
        observe_s: float,
        policy: str | None = None,
        dry_run: bool = False,
    ) -> Call[dict[str, Any]]:
        if target_size != "auto" and (
            isinstance(target_size, bool) or not isinstance(target_size, int) or target_size < 1
        ):
            raise ConfigError(
                "target_size", target_size, "Give a number of agents, >= 1, or 'auto'."
            )
        body: dict[str, Any] = {
            "target_size": target_size,
            "observe_s": non_negative(observe_s, "observe_s"),
        }
        # Sent only when set, so a plain size reads the same to a service without them.
        if policy is not None:
            body["policy"] = policy
        if dry_run:
            body["dry_run"] = True
        return Calls.post("/v1/scale", body)

    @staticmethod
    def set_strategy(name: str, observe_s: float) -> Call[dict[str, Any]]:
        body = {"name": name, "observe_s": non_negative(observe_s, "observe_s")}
        return Calls.put("/v1/strategy", body)

    @staticmethod
    def optimize_topology(
        strategy: str,
        objective: str,
        min_gain: float,
        observe_s: float,
        dry_run: bool,
        min_samples: int,
    ) -> Call[dict[str, Any]]:
        body = {
            "strategy": strategy,
            "objective": objective,
            "min_gain": min_gain,
            "observe_s": non_negative(observe_s, "observe_s"),
            "dry_run": dry_run,
            "min_samples": min_samples,
        }
        return Calls.post("/v1/topology", body)

    @staticmethod
    def stop(deadline_s: float | None) -> Call[dict[str, Any]]:
        body = {} if deadline_s is None else {"deadline_s": non_negative(deadline_s, "deadline_s")}
        return Calls.post("/v1/stop", body)


def single_task(kind: str, payload: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - TASK_FIELDS)
    if unknown:
        raise ConfigError(
            unknown[0], fields[unknown[0]], f"A task takes: {', '.join(sorted(TASK_FIELDS))}."
        )
    return task_data({"kind": kind, "payload": payload, **fields}, "task")


def prepared(tasks: Iterable[Mapping[str, Any] | Task]) -> list[dict[str, Any]]:
    return [task_data(task, f"tasks[{index}]") for index, task in enumerate(tasks)]


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")

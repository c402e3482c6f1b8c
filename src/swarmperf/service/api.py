"""The live swarm's HTTP API, version 1: a FastAPI app over one `LiveSwarm`.

Every error is `application/problem+json` (RFC 9457) naming the field, the bad value and
the fix. Every endpoint but `/v1/health` needs the bearer token, compared in constant time.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from swarmperf.balancing.strategies import STRATEGIES
from swarmperf.core.errors import Backpressure, ConfigError, QuotaExceeded, SwarmError, preview
from swarmperf.core.trial import TrialRule
from swarmperf.service.feed import Feed
from swarmperf.service.live import STOPPED, LiveSwarm, Refused, TaskIn
from swarmperf.service.trial import OBJECTIVES
from swarmperf.store.intake import Accepted, IntakeRecord

log = logging.getLogger("swarmperf.service.api")

PROBLEM = "application/problem+json"
MAX_BODY_BYTES = 32 * 1024 * 1024  # a batch of 10,000 tasks with small payloads fits easily
MAX_BATCH = 10_000
MAX_WAIT = 60.0
MAX_RESULTS_PAGE = 10_000
_ASGI = MutableMapping[str, Any]


# -- request models ---------------------------------------------------------------------


class TaskModel(BaseModel):
    """A task to run: `kind` names a handler registered in the service."""

    model_config = ConfigDict(extra="forbid")

    kind: Annotated[str, Field(min_length=1, max_length=200)]
    payload: Any = None
    priority: Literal["critical", "high", "normal", "low"] = "normal"
    rank: Annotated[int, Field(ge=-(2**31), le=2**31 - 1)] = 0
    deadline_s: Annotated[float, Field(gt=0, le=1e7, allow_inf_nan=False)] | None = None
    cost: Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)] | None = None
    tenant: Annotated[str, Field(min_length=1, max_length=200)] = "default"
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    tokens: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)] = 0.0


class BatchModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: Annotated[list[TaskModel], Field(min_length=1, max_length=MAX_BATCH)]


class AgentModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")] | None = (
        None
    )
    weight: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] | None = None
    concurrency: Annotated[int, Field(ge=1, le=10_000)] | None = None
    prefetch: Annotated[int, Field(ge=0, le=10_000)] | None = None


def _size_or_auto(value: object) -> object:
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise ValueError("give a number of agents from 1 to 10000, or 'auto'")
    return value


class ScaleModel(BaseModel):
    """A size, or `auto` (the autoscaler, with `policy`); `dry_run` changes nothing."""

    model_config = ConfigDict(extra="forbid")

    target_size: Annotated[int | Literal["auto"], BeforeValidator(_size_or_auto)]
    observe_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 30.0
    policy: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    dry_run: bool = False


class StrategyModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    observe_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 30.0


PoolName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
]


class PoolSizeModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: Annotated[int, Field(ge=0, le=10_000)]
    concurrency: Annotated[int, Field(ge=1, le=10_000)] | None = None


class TrialModel(BaseModel):
    """How a change is judged over the window after it (see `core.trial.TrialRule`)."""

    model_config = ConfigDict(extra="forbid")

    objective: Annotated[str, Field(min_length=1, max_length=100)] = "latency_p99_s"
    predicted: Annotated[float, Field(allow_inf_nan=False)] | None = None
    tolerance: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 0.5
    limit: Annotated[float, Field(allow_inf_nan=False)] | None = None
    min_gain: Annotated[float, Field(ge=-100, le=100, allow_inf_nan=False)] | None = None
    min_samples: Annotated[int, Field(ge=1, le=1_000_000)] = 20

    def rule(self) -> TrialRule:
        # An unknown objective is refused by `check_rule`, naming the choices.
        return TrialRule(minimise=OBJECTIVES.get(self.objective, True), **self.model_dump())


class PoolsModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pools: Annotated[dict[PoolName, PoolSizeModel], Field(min_length=1, max_length=64)]
    observe_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 30.0
    trial: TrialModel | None = None
    reason: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    inputs: dict[str, Any] | None = None


class TopologyModel(BaseModel):
    """A topology change: planned from the measured workload (`adaptive`) or named
    (`fixed:<kind>`), tried unless `dry_run` (see `LiveSwarm.optimize_topology`)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Annotated[str, Field(min_length=1, max_length=100)] = "adaptive"
    objective: Annotated[str, Field(min_length=1, max_length=100)] = "p99"
    min_gain: Annotated[float, Field(allow_inf_nan=False)] = 0.1
    observe_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 30.0
    dry_run: bool = False
    min_samples: Annotated[int, Field(ge=1, le=1_000_000)] = 20


class ProfileModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 10.0
    rate_hz: Annotated[float, Field(ge=1, le=1000, allow_inf_nan=False)] = 100.0
    components: Annotated[str, Field(min_length=1, max_length=128)] = "all"
    memory: bool = False
    awaiting: bool = True


class StopModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deadline_s: Annotated[float, Field(ge=0, le=86_400, allow_inf_nan=False)] | None = None


# -- problems ---------------------------------------------------------------------------


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str = "",
    *,
    field: str | None = None,
    value: object = None,
    fix: str | None = None,
    retry_after: float | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:swarmperf:problem:{slug}",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if field is not None:
        body["field"] = field
        body["value"] = _json_safe(value)
    if fix is not None:
        body["fix"] = fix
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _json_safe(value: object) -> object:
    """A bad value as it was given when JSON holds it and it is short; else a bounded
    preview (a value can be a megabyte of payload)."""
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:197] + "..."
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return preview(value, 200)
    return value if len(text) <= 200 else preview(value, 200)


def _validation_problem(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(loc) or "body"
    message = str(first.get("msg", "is not valid"))
    more = f" ({len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return problem(
        422,
        "invalid-request",
        "The request is not valid",
        f"{field}: {message}{more}",
        field=field,
        value=first.get("input"),
        fix=f"{message[0].upper()}{message[1:]}." if message else "See /v1/openapi.json.",
    )


# -- the app ----------------------------------------------------------------------------


def make_app(live: LiveSwarm, token: str | None, *, max_body: int = MAX_BODY_BYTES) -> Any:
    """The API for `live`, as an ASGI app. `token` None turns authentication off (loopback
    only, checked by the server)."""
    app = FastAPI(
        title="swarmperf live swarm",
        version="1",
        openapi_url=None,  # served below, behind the token like the rest
        docs_url=None,
        redoc_url=None,
    )
    expected = token.encode() if token is not None else None

    async def authorised(request: Request) -> None:  # async: no thread pool per request
        if expected is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, credentials = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.encode(), expected):
            raise _Unauthorised()

    auth = [Depends(authorised)]

    @app.exception_handler(_Unauthorised)
    async def _unauthorised(request: Request, exc: _Unauthorised) -> Response:
        response = problem(
            401,
            "unauthorised",
            "A valid bearer token is required",
            "The Authorization header is missing or its token is not this swarm's.",
            fix="Send 'Authorization: Bearer <token>' with the token from the swarm's token "
            "file (swarmperf and its client read it for you).",
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _validation_problem(exc)

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> Response:
        return problem(
            422,
            "invalid-request",
            "The request is not valid",
            str(exc),
            field=exc.field,
            value=exc.value,
            fix=exc.fix,
        )

    @app.exception_handler(Backpressure)
    async def _backpressure(request: Request, exc: Backpressure) -> Response:
        quota = isinstance(exc, QuotaExceeded)
        return problem(
            429 if quota else 503,
            "quota-exceeded" if quota else "backpressure",
            "A tenant's quota is used up" if quota else "The swarm's backlog is full",
            str(exc),
            retry_after=live.retry_after(),
        )

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return problem(
            exc.status,
            exc.title,
            f"The swarm is {exc.title}",
            exc.detail,
            retry_after=exc.retry_after,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        slug = "not-found" if exc.status_code == 404 else "http-error"
        return problem(exc.status_code, slug, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed: %r", request.method, request.url.path, exc, exc_info=exc)
        return problem(
            500,
            "internal",
            "The service failed to handle the request",
            f"{type(exc).__name__}; the service's log has the details",
        )

    # -- tasks ----------------------------------------------------------------------------

    def _check_kinds(tasks: list[TaskModel]) -> None:
        handlers = live.handlers
        for i, task in enumerate(tasks):
            if task.kind not in handlers:
                raise ConfigError(
                    f"tasks[{i}].kind" if len(tasks) > 1 else "kind",
                    task.kind,
                    f"Use a handler the service registered: {', '.join(sorted(handlers))}.",
                )

    @app.post("/v1/tasks", status_code=202, dependencies=auth)
    async def submit(task: TaskModel) -> JSONResponse:
        """Accept one task: stored durably before this reply."""
        _check_kinds([task])
        (answer,) = await live.submit([_task_in(task)])
        return JSONResponse(_accepted(answer), status_code=202)

    @app.post("/v1/tasks/batch", status_code=202, dependencies=auth)
    async def submit_batch(batch: BatchModel) -> JSONResponse:
        """Accept many tasks in one transaction: all stored before this reply, or none."""
        _check_kinds(batch.tasks)
        answers = await live.submit([_task_in(task) for task in batch.tasks])
        return JSONResponse(_batch_reply(answers), status_code=202)

    @app.get("/v1/tasks/{task_id}", dependencies=auth)
    async def task_status(
        task_id: str, wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0.0
    ) -> JSONResponse:
        """A task's status and result; `wait` long-polls up to that many seconds for it."""
        record = await live.task(task_id, wait)
        if record is None:
            return problem(
                404,
                "not-found",
                "No such task",
                f"No task with id {preview(task_id)} was accepted.",
                field="task_id",
                value=task_id,
                fix="Use an id a submission returned.",
            )
        return JSONResponse(_task(record))

    @app.get("/v1/results", dependencies=auth)
    async def results(
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_RESULTS_PAGE)] = 1000,
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0.0,
    ) -> JSONResponse:
        """Recorded results after the cursor `after`, in the order they were recorded."""
        found = await live.results(after, limit, wait)
        following = found[-1].done_seq if found else after
        return JSONResponse({"results": [_result(r) for r in found], "next": following})

    @app.get("/v1/results/stream", dependencies=auth)
    async def stream(after: Annotated[int, Query(ge=0)] = 0) -> StreamingResponse:
        """Results as they are recorded, one JSON object per line, until the service stops."""

        async def lines() -> AsyncIterator[bytes]:
            cursor = after
            while True:
                found = await live.results(cursor, 1000, wait=10.0)
                if found:
                    cursor = found[-1].done_seq or cursor
                    yield b"".join(
                        json.dumps(_result(r), separators=(",", ":")).encode() + b"\n"
                        for r in found
                    )
                elif live.state == STOPPED:
                    return
                else:
                    yield b"\n"  # keeps proxies from closing an idle stream; readers skip it

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    # -- the swarm -------------------------------------------------------------------------

    @app.get("/v1/status", dependencies=auth)
    async def status() -> JSONResponse:
        return JSONResponse(live.status())

    @app.get("/v1/agents", dependencies=auth)
    async def agents() -> JSONResponse:
        return JSONResponse({"agents": live.agents()})

    @app.post("/v1/agents", status_code=201, dependencies=auth)
    async def add_agent(agent: AgentModel) -> JSONResponse:
        spec = await live.add_agent(**agent.model_dump())
        row = next(a for a in live.agents() if a["id"] == spec.id)
        return JSONResponse(row, status_code=201)

    @app.delete("/v1/agents/{agent_id}", dependencies=auth)
    async def remove_agent(agent_id: str) -> JSONResponse:
        await live.remove_agent(agent_id)
        return JSONResponse({"removed": agent_id})

    @app.post("/v1/scale", dependencies=auth)
    async def scale(body: ScaleModel) -> JSONResponse:
        if body.target_size == "auto":
            return JSONResponse(await live.autoscale(body.policy, body.dry_run))
        if body.policy is not None:
            raise ConfigError(
                "policy", body.policy, "A policy goes with target_size auto; drop it for a size."
            )
        if body.dry_run:
            return JSONResponse(live.scale_plan(body.target_size))
        return JSONResponse(await live.scale(body.target_size, body.observe_s))

    @app.post("/v1/pools", dependencies=auth)
    async def scale_pools(body: PoolsModel) -> JSONResponse:
        """Resize pools (agents `<pool>-<n>`); with `trial`, kept or rolled back on the
        figures of the `observe_s` after (the verdict is on the decision)."""
        return JSONResponse(
            await live.scale_pools(
                {pool: size.count for pool, size in body.pools.items()},
                concurrency={
                    pool: size.concurrency
                    for pool, size in body.pools.items()
                    if size.concurrency is not None
                },
                observe=body.observe_s,
                rule=None if body.trial is None else body.trial.rule(),
                reason=body.reason,
                inputs=body.inputs,
            )
        )

    @app.get("/v1/topology", dependencies=auth)
    async def topology() -> JSONResponse:
        return JSONResponse(live.topology())

    @app.post("/v1/topology", dependencies=auth)
    async def optimize_topology(body: TopologyModel) -> JSONResponse:
        """Plan the topology from the measured workload; unless `dry_run`, switch to the
        pick on trial (the verdict is on the decision)."""
        return JSONResponse(
            await live.optimize_topology(
                body.strategy,
                body.objective,
                min_gain=body.min_gain,
                observe=body.observe_s,
                dry_run=body.dry_run,
                min_samples=body.min_samples,
            )
        )

    @app.get("/v1/strategy", dependencies=auth)
    async def strategy() -> JSONResponse:
        return JSONResponse({"name": live.strategy(), "choices": sorted(STRATEGIES)})

    @app.put("/v1/strategy", dependencies=auth)
    async def set_strategy(body: StrategyModel) -> JSONResponse:
        return JSONResponse(live.set_strategy(body.name, body.observe_s))

    @app.get("/v1/decisions/{decision_id}", dependencies=auth)
    async def decision(decision_id: int) -> JSONResponse:
        record = await asyncio.to_thread(live.store.get_decision, decision_id)
        if record is None or record.swarm_id != live.swarm_id:
            return problem(
                404,
                "not-found",
                "No such decision",
                field="decision_id",
                value=decision_id,
                fix="Use an id that load-balance or scale returned.",
            )
        return JSONResponse(
            {
                "id": record.id,
                "kind": record.kind,
                "created_at": record.created_at,
                "reason": record.reason,
                "decision": record.decision,
            }
        )

    @app.post("/v1/profile", dependencies=auth)
    async def profile(body: ProfileModel) -> JSONResponse:
        """The process's stacks sampled for `duration_s` (the reply comes after it), folded
        by stack, agent and handler; with `memory`, tracemalloc's growth over the window."""
        found = await live.profile(
            body.duration_s, body.rate_hz, body.components, body.memory, body.awaiting
        )
        return JSONResponse(found)

    @app.post("/v1/pause", dependencies=auth)
    async def pause() -> JSONResponse:
        return JSONResponse({"state": live.pause()})

    @app.post("/v1/resume", dependencies=auth)
    async def resume() -> JSONResponse:
        return JSONResponse({"state": live.resume()})

    @app.post("/v1/drain", dependencies=auth)
    async def drain() -> JSONResponse:
        return JSONResponse({"state": live.drain()})

    @app.post("/v1/stop", status_code=202, dependencies=auth)
    async def stop(body: StopModel | None = None) -> JSONResponse:
        live.request_stop(body.deadline_s if body is not None else None)
        return JSONResponse({"state": live.state}, status_code=202)

    # -- health and metrics ---------------------------------------------------------------

    @app.get("/v1/health")
    async def health() -> JSONResponse:
        """Alive: no token needed, nothing about the swarm told."""
        return JSONResponse({"status": "ok"})

    @app.get("/v1/ready", dependencies=auth)
    async def ready() -> JSONResponse:
        if live.state in ("running", "paused"):
            return JSONResponse({"ready": True, "state": live.state})
        return problem(
            503,
            "not-ready",
            "The swarm takes no tasks now",
            f"It is {live.state}.",
            retry_after=5.0,
        )

    exposition: list[Any] = []  # the Prometheus registry, made at the first scrape

    @app.get("/metrics", dependencies=auth)
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from swarmperf.monitor.exposition import SwarmCollector, make_registry

        if not exposition:
            exposition.append(make_registry(SwarmCollector(live.metrics)))
        return Response(generate_latest(exposition[0]), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/v1/live")
    async def live_feed(socket: WebSocket) -> None:
        """Figures each interval, events and decisions as they happen (see `feed`)."""
        await serve_feed(socket, live.feed, live.hello, expected)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        """The dashboard: a page with no data in it, so no token (its feed needs one)."""
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/v1/openapi.json", dependencies=auth)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    # The submissions on their usual path, without the framework's machinery: measured
    # with 32 clients of one task each, it doubles the requests served per second and
    # quarters their p99 latency. Anything unusual (no or a wrong token, a task that does
    # not validate, a refusal) stores nothing and goes the full way, which answers it with
    # its problem; the routes above stay what /v1/openapi.json describes.

    def token_ok(scope: _ASGI) -> bool:
        if expected is None:
            return True
        given = _header(scope, b"authorization")
        return given[:7].lower() == b"bearer " and hmac.compare_digest(given[7:], expected)

    async def fast_submit(scope: _ASGI, body: bytes, send: Send) -> bool:
        if not token_ok(scope):
            return False
        try:
            task = TaskModel.model_validate_json(body)
        except ValueError:
            return False
        if task.kind not in live.handlers:
            return False
        try:
            (answer,) = await live.submit([_task_in(task)])
        except SwarmError:  # refused before anything was stored
            return False
        await _send_json(send, 202, _accepted(answer))
        return True

    async def fast_batch(scope: _ASGI, body: bytes, send: Send) -> bool:
        if not token_ok(scope):
            return False
        try:
            batch = BatchModel.model_validate_json(body)
        except ValueError:
            return False
        handlers = live.handlers
        if any(task.kind not in handlers for task in batch.tasks):
            return False
        try:
            answers = await live.submit([_task_in(task) for task in batch.tasks])
        except SwarmError:
            return False
        await _send_json(send, 202, _batch_reply(answers))
        return True

    return _limit_body(app, max_body, {"/v1/tasks": fast_submit, "/v1/tasks/batch": fast_batch})


class _Unauthorised(Exception):
    pass


STATIC = Path(__file__).parent / "static"
HELLO_WITHIN_S = 10.0  # a page sends its token this soon after connecting, or is closed


async def serve_feed(
    socket: WebSocket,
    feed: Feed,
    hello: Callable[[], dict[str, Any]],
    token: bytes | None,
) -> None:
    """One dashboard's connection: its token first, then the backlog after the seq it last
    saw, then messages as they come, until the feed ends, the page goes, or it falls behind.

    A browser cannot put a token in a WebSocket's headers, so it is the first message (the
    page has it from the URL's fragment, which no server or log ever sees)."""
    await socket.accept()
    try:
        first = json.loads(await asyncio.wait_for(socket.receive_text(), HELLO_WITHIN_S))
        given = str(first.get("token") or "").encode()
        after = first.get("after")
        if after is not None and (not isinstance(after, int) or after < 0):
            raise ValueError(after)
    except (TimeoutError, ValueError, AttributeError, TypeError):
        await socket.close(4400, 'send {"token": ..., "after": <seq or null>} first')
        return
    except WebSocketDisconnect:
        return
    if token is not None and not hmac.compare_digest(given, token):
        await socket.close(4401, "unauthorised")
        return
    reader = feed.subscribe(after)
    try:
        await socket.send_text(json.dumps(hello()))
        for kept in reader.backlog:
            await socket.send_text(kept)
        while (message := await reader.queue.get()) is not None:
            await socket.send_text(message)
        if reader.dropped:
            await socket.close(4408, f"too slow: reconnect with after={reader.last_seq}")
        else:
            await socket.close(1000, "the feed ended")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the page went away
    finally:
        feed.unsubscribe(reader)


def _task_in(task: TaskModel) -> TaskIn:
    return TaskIn(
        task.kind,
        task.payload,
        task.priority,
        task.rank,
        task.deadline_s,
        task.cost,
        task.tenant,
        task.idempotency_key,
        task.tokens,
    )


def _batch_reply(answers: list[Accepted]) -> dict[str, Any]:
    duplicates = sum(answer.duplicate for answer in answers)
    return {
        "accepted": len(answers) - duplicates,
        "duplicates": duplicates,
        "tasks": [_accepted(answer) for answer in answers],
    }


def _accepted(answer: Accepted) -> dict[str, Any]:
    return {"id": answer.task_id, "idempotency_key": answer.key, "duplicate": answer.duplicate}


def _result(record: IntakeRecord) -> dict[str, Any]:
    data = dict(record.result or {})
    data.update(
        id=record.task_id,
        idempotency_key=record.key,
        kind=record.kind,
        status=record.status,
        cursor=record.done_seq,
    )
    return data


def _task(record: IntakeRecord) -> dict[str, Any]:
    result = None
    if record.done_seq is not None:
        result = dict(record.result or {})
        result.update(status=record.status, cursor=record.done_seq)
    return {
        "id": record.task_id,
        "idempotency_key": record.key,
        "kind": record.kind,
        "status": record.status or "pending",
        "result": result,
    }


Send = Callable[[_ASGI], Awaitable[None]]
FastPath = Callable[[_ASGI, bytes, Send], Awaitable[bool]]


def _header(scope: _ASGI, name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return b""


async def _send_json(send: Send, status: int, data: object) -> None:
    body = json.dumps(data, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _limit_body(app: FastAPI, limit: int, fast: dict[str, FastPath]) -> Any:
    """Refuse a body over `limit` bytes with 413, by its Content-Length or as it streams in,
    before any of it is parsed: memory stays bounded whatever a client sends. A body is read
    whole here (it is bounded) and handed on as one message."""

    async def limited(
        scope: _ASGI,
        receive: Callable[[], Awaitable[_ASGI]],
        send: Callable[[_ASGI], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(scope, receive, send, limit)
                return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                await _too_large(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        quick = fast.get(scope["path"]) if scope["method"] == "POST" else None
        if quick is not None and await quick(scope, body, send):
            return
        sent = False

        async def replay() -> _ASGI:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return limited


async def _too_large(
    scope: _ASGI,
    receive: Callable[[], Awaitable[_ASGI]],
    send: Callable[[_ASGI], Awaitable[None]],
    limit: int,
) -> None:
    response = problem(
        413,
        "too-large",
        "The request body is too large",
        f"The limit is {limit:,} bytes.",
        fix=f"Send at most {MAX_BATCH:,} tasks per batch, with smaller payloads.",
    )
    await response(scope, receive, send)

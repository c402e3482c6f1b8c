"""The async client of a live swarm's service: submit work, read results, steer the swarm."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from swarmperf.client._base import MAX_LANES, ClientBase, Lanes
from swarmperf.client._pools import pools_call
from swarmperf.client._profile import profile_call
from swarmperf.client._protocol import (
    MIN_POLL_S,
    Call,
    Calls,
    Submitted,
    TaskOutcome,
    acknowledged,
    batches,
    check_batch,
    non_negative,
    outcome,
    prepared,
    problem,
    single_task,
    wait_params,
)
from swarmperf.core.model import Task
from swarmperf.core.trial import TrialRule

T = TypeVar("T")


class SwarmClient(ClientBase):
    """A live swarm's service, from another process: `async with SwarmClient("prod") as c`.

    Given a swarm id, the service is found through the registry in `data_dir` (default:
    $SWARMPERF_DATA_DIR, else ./.swarmperf), which also holds its token; or give `url` and
    `token`. Requests refused for now (429, 503) or never sent (the service unreachable)
    are retried up to `retries` times with a capped backoff, honouring Retry-After; the
    submits are retried after a lost reply too, being idempotent by their keys.

    One client may be shared by many coroutines: each request in flight has a connection
    of its own (up to 100 at once; more wait their turn)."""

    def __init__(
        self,
        swarm_id: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        data_dir: str | Path | None = None,
        timeout: float = 30.0,
        retries: int = 8,
    ) -> None:
        super().__init__(
            swarm_id, url=url, token=token, data_dir=data_dir, timeout=timeout, retries=retries
        )
        self._lanes: Lanes[httpx.AsyncClient] = Lanes(self._new_lane)
        self._slots = asyncio.Semaphore(MAX_LANES)

    def _new_lane(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(**self._lane_options())

    async def __aenter__(self) -> SwarmClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for lane in self._lanes.close():
            await lane.aclose()

    async def _take(self) -> httpx.AsyncClient:
        """A lane for one request, waiting up to `timeout` while all are busy."""
        if self._slots.locked():
            try:
                await asyncio.wait_for(self._slots.acquire(), self.timeout)
            except TimeoutError:
                raise self._no_lane_free(MAX_LANES) from None
        else:
            await self._slots.acquire()  # free: returns at once
        try:
            return self._lanes.take()
        except BaseException:
            self._slots.release()
            raise

    async def _give(self, lane: httpx.AsyncClient) -> None:
        surplus = self._lanes.give(lane)
        self._slots.release()
        if surplus is not None:
            await surplus.aclose()

    async def _request(self, call: Call[Any]) -> httpx.Response:
        lane = await self._take()
        try:
            return await lane.request(**self._request_args(call))
        finally:
            await self._give(lane)

    async def _send(self, call: Call[T]) -> T:
        tries = 0
        refreshed = False
        while True:
            try:
                response = await self._request(call)
            except httpx.TransportError as exc:
                await asyncio.sleep(self._after_transport_error(call, exc, tries))
                tries += 1
                self._target.refresh()  # a restarted service may answer elsewhere
                continue
            wait = self._retry_wait(response, tries)
            if wait is not None:
                tries += 1
                await asyncio.sleep(wait)
                continue
            if self._token_moved(response, refreshed):
                refreshed = True
                continue
            result: T = self._read(call, response)
            return result

    # -- work -------------------------------------------------------------------------------

    async def submit(self, kind: str, payload: Any = None, **fields: Any) -> Submitted:
        """Submit one task (fields: priority, rank, deadline_s, cost, tenant,
        idempotency_key, tokens). Accepted means stored: it will run."""
        return await self._send(Calls.submit(single_task(kind, payload, fields)))

    async def submit_many(
        self, tasks: Iterable[Mapping[str, Any] | Task], *, batch: int = 1000
    ) -> list[Submitted]:
        """Submit tasks in batches of `batch`, each stored in one transaction; receipts in
        the tasks' order. Every task without an idempotency key gets a fresh one first, so
        that a retry after a lost reply, or after the service restarted, never runs a task
        twice (such a task's receipt says `duplicate`)."""
        size = check_batch(batch)
        receipts: list[Submitted] = []
        for chunk in batches(prepared(tasks), size):
            receipts.extend(acknowledged(chunk, await self._send(Calls.submit_batch(chunk))))
        return receipts

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskOutcome:
        """The task's outcome once it has one; `TimeoutError` after `timeout` seconds."""
        limit = None if timeout is None else non_negative(timeout, "timeout")
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            asked = time.monotonic()
            found = await self._send(Calls.task(task_id, wait_params(remaining)))
            if found.done:
                return found
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {task_id!r} has no result after {limit:g} s")
            # A reply quicker than asked (a service that does not long-poll): no busy loop.
            await asyncio.sleep(max(0.0, MIN_POLL_S - (time.monotonic() - asked)))

    async def results(
        self, after: int = 0, limit: int = 1000, wait: float = 0
    ) -> tuple[list[TaskOutcome], int]:
        """Results recorded after cursor `after`, in the order recorded, and the cursor to
        ask from next; `wait` seconds (<= 60) for one if there is none yet."""
        return await self._send(Calls.results(after, limit, non_negative(wait, "wait")))

    async def stream(self, after: int = 0) -> AsyncIterator[TaskOutcome]:
        """Every result recorded after cursor `after`, as it is recorded, until the service
        stops (or the caller stops iterating)."""
        call = Calls.stream(after)
        tries = 0
        while True:
            opened = False
            wait: float | None = None
            try:
                args = self._request_args(call)
                args["timeout"] = httpx.Timeout(self.timeout, read=None)
                lane = await self._take()  # held while the stream lasts
                try:
                    async with lane.stream(**args) as response:
                        wait = self._retry_wait(response, tries)
                        if wait is None:
                            if response.status_code >= 400:
                                await response.aread()
                                raise problem(
                                    response.status_code,
                                    response.content,
                                    response.reason_phrase,
                                )
                            opened = True
                            async for line in response.aiter_lines():
                                if line.strip():
                                    yield outcome(json.loads(line))
                            return
                finally:
                    await self._give(lane)
            except httpx.TransportError as exc:
                if opened:
                    return  # the service stopped: so does the stream
                wait = self._after_transport_error(call, exc, tries)
                self._target.refresh()
            tries += 1
            await asyncio.sleep(wait)

    # -- the swarm --------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await self._send(Calls.get("/v1/status"))

    async def agents(self) -> list[dict[str, Any]]:
        return await self._send(Calls.agents())

    async def add_agent(self, **fields: Any) -> dict[str, Any]:
        """Add an agent (fields: id, weight, concurrency, prefetch)."""
        return await self._send(Calls.post("/v1/agents", fields))

    async def remove_agent(self, agent_id: str) -> dict[str, Any]:
        return await self._send(Calls.remove_agent(agent_id))

    async def scale(
        self,
        target_size: int | str,
        observe_s: float = 30,
        *,
        policy: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Add or remove agents to `target_size`; recorded as a decision whose figures
        after are measured over `observe_s`. `target_size="auto"` turns the autoscaler on
        with `policy` (the spec's by default); a size turns it off. `dry_run`: what would
        be done (for auto, the policy's recommendation now), changing nothing."""
        return await self._send(Calls.scale(target_size, observe_s, policy, dry_run))

    async def scale_pools(
        self,
        counts: Mapping[str, int],
        *,
        concurrency: Mapping[str, int] | None = None,
        observe_s: float = 30,
        trial: TrialRule | None = None,
        reason: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Resize pools (agents named `<pool>-<n>`) to `counts`, new agents with their
        pool's `concurrency`; recorded as a decision. With `trial`, the service rolls the
        change back after `observe_s` unless the window meets it (the verdict is in
        `decision(decision_id)["decision"]["trial"]`)."""
        return await self._send(pools_call(counts, concurrency, observe_s, trial, reason, inputs))

    async def strategy(self) -> dict[str, Any]:
        return await self._send(Calls.get("/v1/strategy"))

    async def set_strategy(self, name: str, observe_s: float = 30) -> dict[str, Any]:
        """Switch the load-balancing strategy now; recorded as a decision."""
        return await self._send(Calls.set_strategy(name, observe_s))

    async def topology(self) -> dict[str, Any]:
        """The topology messages are routed by now, and the messages' counts."""
        return await self._send(Calls.get("/v1/topology"))

    async def optimize_topology(
        self,
        strategy: str = "adaptive",
        objective: str = "p99",
        *,
        min_gain: float = 0.1,
        observe_s: float = 30,
        dry_run: bool = False,
        min_samples: int = 20,
    ) -> dict[str, Any]:
        """Plan the topology from the swarm's measured workload (`adaptive`) or take
        `fixed:<kind>`; unless `dry_run`, switch to it on trial if the plan predicts a gain
        of `min_gain` on `objective` (p99, makespan or traffic). The service rolls it back
        after `observe_s` unless the measured figure gains as much (the verdict is in
        `decision(decision_id)["decision"]["trial"]`)."""
        return await self._send(
            Calls.optimize_topology(strategy, objective, min_gain, observe_s, dry_run, min_samples)
        )

    async def decision(self, decision_id: int) -> dict[str, Any]:
        return await self._send(Calls.decision(decision_id))

    async def profile(
        self,
        duration_s: float = 10.0,
        rate_hz: float = 100.0,
        components: str = "all",
        memory: bool = False,
        awaiting: bool = True,
    ) -> dict[str, Any]:
        """Sample the service's stacks for `duration_s` at `rate_hz` (the reply comes after
        the window): folded stacks by agent and handler (`swarmperf.profiling.Profile`'s
        data); `components` is all, coordinator, agents or an agent's id; `awaiting`: the
        await chains of handlers suspended in an await count too (wall time)."""
        return await self._send(profile_call(duration_s, rate_hz, components, memory, awaiting))

    async def pause(self) -> dict[str, Any]:
        return await self._send(Calls.post("/v1/pause", idempotent=True))

    async def resume(self) -> dict[str, Any]:
        return await self._send(Calls.post("/v1/resume", idempotent=True))

    async def drain(self) -> dict[str, Any]:
        return await self._send(Calls.post("/v1/drain", idempotent=True))

    async def stop(self, deadline_s: float | None = None) -> dict[str, Any]:
        """Ask the service to drain (up to `deadline_s`), record the run's end and exit."""
        return await self._send(Calls.stop(deadline_s))

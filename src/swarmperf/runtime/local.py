"""The `local` backend: agents are coroutines in this process, on the running event loop.

Each agent runs `concurrency` worker coroutines that share its run queue. A worker only
suspends when its queue is empty, so a stream of quick tasks flows without a context
switch per task; that keeps the dispatch overhead near a bare `asyncio.Queue` pool's.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from swarmperf.core.errors import ConfigError
from swarmperf.core.handlers import AgentContext, HandlerRegistry, Outbox
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.backend import CompletionSink, Done, timeout_for

_now = time.perf_counter
# A worker reports finished tasks when its queue runs dry, before it awaits, or after
# this many: batches amortise the bookkeeping without holding results back for long.
_REPORT_EVERY = 64


class _LocalAgent:
    __slots__ = ("awaiting", "closing", "context", "queue", "spec", "waiters", "workers")

    def __init__(self, spec: AgentSpec, epoch: float, outbox: Outbox | None) -> None:
        self.spec = spec
        self.context = AgentContext.for_agent(spec, epoch, outbox)
        self.queue: deque[Task] = deque()
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.workers: list[asyncio.Task[None]] = []
        # Tasks whose async handler a worker is awaiting, by id (sync ones never wait).
        self.awaiting: dict[str, Task] = {}
        self.closing = False

    def wake_one(self) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return


class LocalBackend:
    """Agents as coroutines. Blocking handlers block the loop: use `process` for those.

    `timeouts` bounds each task's time in its handler by kind (`""`: any other kind): an
    async handler still running then is cancelled and its task fails with a TimeoutError.
    A sync handler cannot be interrupted here; the `process` backend bounds those.
    """

    name: ClassVar[str] = "local"

    def __init__(self, timeouts: Mapping[str, float] | None = None) -> None:
        self.transfer_cost = 0.0
        self.timeouts = dict(timeouts) if timeouts else None
        self._agents: dict[str, _LocalAgent] = {}
        self._sink: CompletionSink | None = None
        self._handlers = HandlerRegistry()
        self._epoch = 0.0
        self._outbox: Outbox | None = None

    def attach_outbox(self, outbox: Outbox) -> None:
        """Hand the messages agents' handlers send to `outbox` (the swarm's message bus)."""
        self._outbox = outbox

    async def start(self, sink: CompletionSink, handlers: HandlerRegistry) -> None:
        self._sink = sink
        self._handlers = handlers
        self._epoch = _now()

    def begin(self, epoch: float) -> None:
        self._epoch = epoch
        for agent in self._agents.values():
            # Its workers take it up when they next wake, as a task comes: none has run yet.
            agent.context = replace(agent.context, epoch=epoch)

    async def stop(self) -> None:
        agents = list(self._agents)
        for agent_id in agents:
            agent = self._agents.pop(agent_id)
            for w in agent.workers:
                w.cancel()
            await asyncio.gather(*agent.workers, return_exceptions=True)

    async def add_agent(self, spec: AgentSpec) -> None:
        if spec.id in self._agents:
            raise ConfigError("agent.id", spec.id, "Agent ids must be unique in a swarm.")
        agent = _LocalAgent(spec, self._epoch, self._outbox)
        self._agents[spec.id] = agent
        for i in range(spec.concurrency):
            agent.workers.append(
                asyncio.create_task(self._work(agent), name=f"swarmperf-{spec.id}-{i}")
            )

    async def remove_agent(self, agent_id: str) -> None:
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        agent.closing = True
        for _ in agent.workers:
            agent.wake_one()
        for fut in agent.waiters:
            if not fut.done():
                fut.set_result(None)
        await asyncio.gather(*agent.workers, return_exceptions=True)

    def running_tasks(self) -> dict[str, list[Task]]:
        """Every task given to each agent and not yet reported: waiting in its queue or
        awaited by a worker. (A worker reports what it finished before it awaits.)"""
        return {
            agent_id: [*agent.awaiting.values(), *agent.queue]
            for agent_id, agent in self._agents.items()
            if agent.awaiting or agent.queue
        }

    def run(self, starts: Sequence[tuple[str, Task]]) -> None:
        agents = self._agents
        # Starts come in runs for one agent (a refill, say): it is looked up once a run.
        to = ""
        agent: _LocalAgent | None = None
        queue: deque[Task] = deque()
        for agent_id, task in starts:
            if agent is None or agent_id is not to:
                agent = agents[agent_id]
                queue = agent.queue
                to = agent_id
            queue.append(task)
            if agent.waiters:
                agent.wake_one()

    async def _work(self, agent: _LocalAgent) -> None:
        sink = self._sink
        if sink is None:
            raise RuntimeError("LocalBackend.start() must run before agents are added")
        agent_id = agent.spec.id
        resolve = self._handlers.resolve
        queue = agent.queue
        context = agent.context
        awaiting = agent.awaiting
        timeouts = self.timeouts
        loop = asyncio.get_running_loop()
        done: list[Done] = []
        # The handler of the last kind run: a stream of one kind resolves it once. Forgotten
        # at every await, so that a handler registered meanwhile is the one used.
        kind: str | None = None
        handler: Any = None
        is_async = False
        # When the next task starts: the end of the last one while tasks run back to back
        # (one clock read a task), None after anything else ran meanwhile (a report, a wait).
        started: float | None = None
        while True:
            if not queue:
                kind = None
                started = None
                if done:
                    # Report before waiting: the report is what refills the queue.
                    sink.tasks_done(agent_id, done)
                    done = []
                    continue
                if agent.closing:
                    return
                fut: asyncio.Future[None] = loop.create_future()
                agent.waiters.append(fut)
                await fut
                context = agent.context  # `begin` may have set the run's epoch meanwhile
                continue
            task = queue.popleft()
            if started is None:
                started = _now()
            try:
                if task.kind != kind:
                    handler, is_async = resolve(task.kind)
                    kind = task.kind
                value = handler(task.payload, context)
                if is_async:
                    kind = None
                    if done:  # do not hold finished results while this one waits
                        sink.tasks_done(agent_id, done)
                        done = []
                    awaiting[task.id] = task
                    try:
                        if timeouts is None:
                            value = await value
                        else:
                            value = await _bounded(value, timeouts, task.kind)
                    finally:
                        del awaiting[task.id]
                finished = _now()
                done.append((task, started, finished, None, value))
            except Exception as exc:  # a failing handler fails its task, not the agent
                # An async handler's value is its coroutine until awaited: a failed task has
                # no value, whichever kind of handler failed it.
                finished = _now()
                done.append((task, started, finished, f"{type(exc).__name__}: {exc}", None))
            started = finished
            if len(done) >= _REPORT_EVERY:
                sink.tasks_done(agent_id, done)
                done = []
                started = None


async def _bounded(value: Awaitable[Any], timeouts: Mapping[str, float], kind: str) -> Any:
    """Await `value` for at most the kind's timeout, if it has one."""
    limit = timeout_for(timeouts, kind)
    if limit is None:
        return await value
    try:
        return await asyncio.wait_for(value, limit)
    except TimeoutError:
        raise TimeoutError(f"timed out after {limit:g}s") from None

"""The `process` backend: results, failures, crashes, churn and clean shutdown.

What every backend promises (crashes and churn under load, drains, exactly one result
per task) is in `test_backend_conformance.py`; here, what is particular to processes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import signal
import sys
import threading
import time
import types
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any

import psutil
import pytest

from swarmperf.core.errors import AgentCrashed, BackendError, ConfigError
from swarmperf.core.handlers import AgentContext, Handler, HandlerRegistry
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.backend import Backend, Done
from swarmperf.runtime.process import START_METHODS, ProcessBackend, handler_ref
from swarmperf.runtime.swarm import Swarm

# -- handlers the workers import from this module ---------------------------------------


def add_one(payload: int, agent: AgentContext) -> int:
    return payload + 1


async def double_later(payload: int, agent: AgentContext) -> int:
    await asyncio.sleep(0)
    return payload * 2


def whoami(payload: Any, agent: AgentContext) -> tuple[int, str, float]:
    return os.getpid(), agent.id, agent.slowdown


def divide(payload: int, agent: AgentContext) -> float:
    return 1 / payload


def unpicklable(payload: Any, agent: AgentContext) -> threading.Lock:
    return threading.Lock()


async def nap(payload: tuple[float, Any], agent: AgentContext) -> Any:
    """Wait `payload[0]` seconds, then return `payload[1]`, which ties a result to its task."""
    await asyncio.sleep(payload[0])
    return payload[1]


def doze(payload: tuple[float, Any], agent: AgentContext) -> Any:
    """`nap` for a sync handler: blocks its thread, releasing the GIL, as blocking I/O does."""
    time.sleep(payload[0])
    return payload[1]


def refuse(payload: Any, agent: AgentContext) -> Any:
    raise ValueError(payload)


async def refuse_later(payload: Any, agent: AgentContext) -> Any:
    await asyncio.sleep(0)
    raise ValueError(payload)


HANDLERS: dict[str, Handler] = {
    "refuse": refuse,
    "refuse_later": refuse_later,
    "add_one": add_one,
    "double_later": double_later,
    "whoami": whoami,
    "divide": divide,
    "unpicklable": unpicklable,
    "nap": nap,
    "doze": doze,
}


# -- helpers ----------------------------------------------------------------------------


class RecordingSink:
    """Records what the backend reports; tests await conditions on it, never sleeps."""

    def __init__(self) -> None:
        self.done: dict[str, list[Done]] = defaultdict(list)
        self.lost: list[tuple[str, list[Task], str]] = []
        self.calls = 0
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def tasks_done(self, agent_id: str, done: Sequence[Done]) -> None:
        self.calls += 1
        self.done[agent_id].extend(done)
        self._check()

    def agent_lost(self, agent_id: str, in_flight: list[Task], reason: str) -> None:
        self.lost.append((agent_id, in_flight, reason))
        self._check()

    def tasks(self, agent_id: str) -> list[Task]:
        return [done[0] for done in self.done[agent_id]]

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        if condition():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((condition, fut))
        async with asyncio.timeout(timeout):
            await fut

    def _check(self) -> None:
        for condition, fut in list(self._waiters):
            if not fut.done() and condition():
                fut.set_result(None)
                self._waiters.remove((condition, fut))


@contextlib.asynccontextmanager
async def running(
    *agents: AgentSpec,
    handlers: Mapping[str, Handler] = HANDLERS,
    start_method: str = "forkserver",
) -> AsyncIterator[tuple[ProcessBackend, RecordingSink]]:
    backend = ProcessBackend(start_method=start_method)
    sink = RecordingSink()
    await backend.start(sink, HandlerRegistry(handlers))
    try:
        for spec in agents:
            await backend.add_agent(spec)
        yield backend, sink
    finally:
        await backend.stop()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 15.0))


def gone(pid: int) -> bool:
    """True once `pid` is neither running nor a zombie waiting to be reaped."""
    try:
        psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return False


def most_at_once(done: Sequence[Done]) -> int:
    """The most tasks whose [started, finished] spans overlap, by their own timestamps."""
    # A finish sorts before a start at the same instant: the slot was free by then.
    events = sorted([(d[1], 1) for d in done] + [(d[2], -1) for d in done])
    most = running = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def ids(tasks: Sequence[Task]) -> list[str]:
    return sorted(task.id for task in tasks)


def test_it_is_a_backend() -> None:
    backend: Backend = ProcessBackend()
    assert backend.name == "process"
    assert 0 < backend.transfer_cost < 0.01


# -- results ----------------------------------------------------------------------------


@pytest.mark.parametrize("start_method", START_METHODS)
def test_tasks_run_in_order_and_return_values_with_sane_timestamps(start_method: str) -> None:
    async def test() -> None:
        agents = AgentSpec("a", slowdown=2.0), AgentSpec("b")
        async with running(*agents, start_method=start_method) as (backend, sink):
            assert 0 < backend.transfer_cost < 0.5  # measured by the readiness pings
            on_a = [
                Task("echo", {"x": [1, 2]}),
                Task("add_one", 41),
                Task("double_later", 21),
                Task("whoami"),
                Task("sleep", 0.005),
                Task("spin", 0.005),
            ]
            on_b = [Task("echo", "b"), Task("noop"), Task("whoami")]
            before = time.perf_counter()
            backend.run([("a", t) for t in on_a[:3]] + [("b", t) for t in on_b])
            backend.run([("a", t) for t in on_a[3:]])
            await sink.until(lambda: len(sink.done["a"]) + len(sink.done["b"]) == 9)
            after = time.perf_counter()

            assert sink.tasks("a") == on_a
            assert sink.tasks("b") == on_b
            values_a = [done[4] for done in sink.done["a"]]
            assert values_a[:4] == [{"x": [1, 2]}, 42, 42, (backend.pid("a"), "a", 2.0)]
            assert [done[4] for done in sink.done["b"]][:2] == ["b", None]
            assert sink.done["b"][2][4] == (backend.pid("b"), "b", 1.0)
            assert backend.pid("a") != backend.pid("b") != os.getpid()
            for agent_id in "ab":
                previous_finish = before
                for _, started, finished, error, _ in sink.done[agent_id]:
                    assert error is None
                    assert previous_finish <= started <= finished <= after
                    previous_finish = finished  # one at a time, in order
            sleep_done, spin_done = sink.done["a"][4:]
            assert sleep_done[2] - sleep_done[1] >= 0.01  # 0.005 s at slowdown 2
            assert spin_done[2] - spin_done[1] >= 0.01
            assert sink.lost == []
            assert 0 < backend.transfer_cost < 0.5

    run(test)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_failures_become_failed_results_and_the_worker_carries_on(concurrency: int) -> None:
    async def test() -> None:
        async with running(AgentSpec("a", concurrency=concurrency)) as (backend, sink):
            tasks = [
                Task("fail", "boom"),
                Task("divide", 0),
                Task("nope"),
                Task("unpicklable"),
                Task("echo", lambda: None),  # cannot even be sent
                Task("divide", 4),
            ]
            backend.run([("a", t) for t in tasks])
            await sink.until(lambda: len(sink.done["a"]) == len(tasks))

            by_task = {done[0].id: done for done in sink.done["a"]}
            errors = [by_task[t.id][3] for t in tasks]
            assert errors[0] == "TaskFailure: boom"
            assert errors[1] == "ZeroDivisionError: division by zero"
            assert errors[2] is not None
            assert errors[2].startswith("UnknownName: ")
            assert "echo" in errors[2]
            assert errors[3] is not None
            assert "pickle" in errors[3]
            assert "return value must be picklable" in errors[3]
            assert errors[4] is not None
            assert "payload must be picklable" in errors[4]
            assert errors[5] is None
            assert by_task[tasks[5].id][4] == 0.25
            assert all(by_task[t.id][4] is None for t in tasks[:5])
            assert sink.lost == []

    run(test)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_batches_larger_than_the_pipe_flow_both_ways(concurrency: int) -> None:
    async def test() -> None:
        async with running(AgentSpec("a", concurrency=concurrency)) as (backend, sink):
            big = os.urandom(4 << 20)
            tasks = [Task("echo", i.to_bytes(64, "little")) for i in range(20_000)]
            tasks.append(Task("echo", big))
            last = Task("add_one", 1)
            backend.run([("a", t) for t in tasks])
            backend.run([("a", last)])
            await sink.until(lambda: len(sink.done["a"]) == len(tasks) + 1)
            if concurrency == 1:
                assert sink.tasks("a") == [*tasks, last]
            assert ids(sink.tasks("a")) == ids([*tasks, last])
            assert all(done[4] == done[0].payload for done in sink.done["a"] if done[0] is not last)
            assert [done[4] for done in sink.done["a"] if done[0] is last] == [2]

    run(test)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_many_large_frames_queued_behind_a_busy_worker_arrive_whole_and_in_order(
    concurrency: int,
) -> None:
    """Frames the socket will not take wait in the parent, each `run` its own frame of
    odd size, so partial writes split them anywhere; every one reaches the worker intact."""

    async def test() -> None:
        async with running(AgentSpec("a", concurrency=concurrency)) as (backend, sink):
            first = Task("nap", (0.3, b"first"))
            backend.run([("a", first)])
            rng = random.Random(7)
            tasks = [Task("echo", os.urandom(rng.randrange(1, 300_000))) for _ in range(300)]
            for task in tasks:
                backend.run([("a", task)])
            await sink.until(lambda: len(sink.done["a"]) == len(tasks) + 1)
            if concurrency == 1:
                assert sink.tasks("a") == [first, *tasks]
            assert ids(sink.tasks("a")) == ids([first, *tasks])
            echoed = {done[0].id: done[4] for done in sink.done["a"] if done[0] is not first}
            assert all(echoed[t.id] == t.payload for t in tasks)

    run(test)


# -- concurrency --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "payload"),
    [("sleep", 0.2), ("doze", (0.2, None))],
    ids=["async-on-the-loop", "sync-on-threads"],
)
def test_an_agent_runs_up_to_its_concurrency_at_once(kind: str, payload: Any) -> None:
    async def test() -> None:
        async with running(AgentSpec("a", concurrency=4)) as (backend, sink):
            tasks = [Task(kind, payload) for _ in range(8)]
            started = time.perf_counter()
            backend.run([("a", t) for t in tasks])
            await sink.until(lambda: len(sink.done["a"]) == len(tasks))
            elapsed = time.perf_counter() - started

            assert elapsed < 1.2  # one at a time takes 1.6 s; four at a time, 0.4 s
            assert ids(sink.tasks("a")) == ids(tasks)
            for _, task_started, finished, error, _ in sink.done["a"]:
                assert error is None
                assert finished - task_started >= 0.2
            assert most_at_once(sink.done["a"]) == 4
            assert sink.lost == []

    run(test)


def test_results_come_back_as_tasks_finish_each_exactly_once() -> None:
    async def test() -> None:
        rng = random.Random(7)
        mixed = [
            Task(rng.choice(["nap", "doze"]), (rng.choice([0.0, 0.001, 0.005, 0.02]), i))
            for i in range(60)
        ]
        slow = Task("nap", (0.5, "slow"))
        failing = [Task("fail", "boom"), Task("nope"), Task("divide", 0)]
        tasks = [slow, *mixed[:20], *failing, *mixed[20:]]
        async with running(AgentSpec("a", concurrency=3)) as (backend, sink):
            for batch in (tasks[:24], tasks[24:44], tasks[44:]):
                backend.run([("a", t) for t in batch])
            await sink.until(lambda: len(sink.done["a"]) == len(tasks))

            reported = sink.tasks("a")
            assert ids(reported) == ids(tasks)  # every task, none twice
            assert reported[0] is not slow  # the first sent did not hold the others back
            for task, started, finished, error, value in sink.done["a"]:
                if task.kind in ("nap", "doze"):
                    assert error is None
                    assert value == task.payload[1]  # the result of this very task
                    assert finished - started >= task.payload[0]
                else:
                    assert error is not None
                    assert value is None
            assert most_at_once(sink.done["a"]) <= 3
            assert sink.lost == []

    run(test)


@pytest.mark.parametrize("start_method", START_METHODS)
def test_removing_a_concurrent_agent_lets_its_running_tasks_finish(start_method: str) -> None:
    async def test() -> None:
        agent = AgentSpec("a", concurrency=3)
        async with running(agent, start_method=start_method) as (backend, sink):
            tasks = [Task("nap", (0.05, i)) for i in range(4)]
            tasks += [Task("doze", (0.05, i)) for i in range(4, 6)]
            backend.run([("a", t) for t in tasks])
            pid = backend.pid("a")

            await backend.remove_agent("a")
            assert ids(sink.tasks("a")) == ids(tasks)
            assert sorted(done[4] for done in sink.done["a"]) == list(range(6))
            assert gone(pid)
            assert sink.lost == []

    run(test)


# -- crashes (the common promises: test_backend_conformance.py) --------------------------


def test_a_killed_concurrent_worker_hands_back_exactly_the_tasks_it_had_not_reported() -> None:
    async def test() -> None:
        async with running(AgentSpec("a", concurrency=3)) as (backend, sink):
            quick = [Task("echo", i) for i in range(3)]
            stuck = [Task("sleep", 60.0), Task("doze", (60.0, None)), Task("sleep", 60.0)]
            waiting = [Task("echo", 3), Task("echo", 4)]
            later = [Task("echo", 5)]
            # The quick ones free their slots; then the stuck ones hold all three, the
            # third reported quick one having been sent after two of them.
            sent = [quick[0], quick[1], stuck[0], stuck[1], quick[2], stuck[2], *waiting]
            backend.run([("a", t) for t in sent])
            backend.run([("a", t) for t in later])
            await sink.until(lambda: len(sink.done["a"]) == len(quick))
            pid = backend.pid("a")
            os.kill(pid, signal.SIGKILL)
            await sink.until(lambda: bool(sink.lost))

            assert ids(sink.tasks("a")) == ids(quick)
            [(agent_id, in_flight, reason)] = sink.lost
            assert agent_id == "a"
            assert in_flight == [*stuck, *waiting, *later]  # all of them, in send order
            assert reason == f"worker process {pid} exited with signal SIGKILL"
            assert gone(pid)
            assert len(sink.done["a"]) == len(quick)  # nothing was reported twice

    run(test)


def test_a_worker_that_cannot_import_its_handlers_fails_add_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def phantom(payload: Any, agent: AgentContext) -> Any:
        return payload

    # Importable here, but the module exists only in this process's memory.
    module = types.ModuleType("swarmperf_phantom_handlers")
    phantom.__module__ = module.__name__
    phantom.__qualname__ = "phantom"
    module.phantom = phantom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)

    async def test() -> None:
        backend = ProcessBackend()
        sink = RecordingSink()
        await backend.start(sink, HandlerRegistry({"phantom": phantom}))
        try:
            with pytest.raises(AgentCrashed, match="could not import its handlers") as info:
                await backend.add_agent(AgentSpec("a"))
            assert "ModuleNotFoundError" in str(info.value)
            [(agent_id, in_flight, reason)] = sink.lost
            assert (agent_id, in_flight) == ("a", [])
            assert "could not import its handlers" in reason
            with pytest.raises(ConfigError):
                backend.pid("a")
        finally:
            await backend.stop()

    run(test)


# -- agents joining and leaving -----------------------------------------------------------


def test_agents_join_and_leave_while_tasks_run() -> None:
    async def test() -> None:
        async with running(AgentSpec("a")) as (backend, sink):
            on_a = [Task("sleep", 0.005) for _ in range(20)]
            backend.run([("a", t) for t in on_a])
            await backend.add_agent(AgentSpec("b"))
            with pytest.raises(ConfigError, match="unique"):
                await backend.add_agent(AgentSpec("b"))
            on_b = [Task("add_one", i) for i in range(20)]
            backend.run([("b", t) for t in on_b])
            more_on_a = [Task("spin", 0.002) for _ in range(5)]
            backend.run([("a", t) for t in more_on_a])
            pid_a = backend.pid("a")

            # Returns once a has finished and reported all it was given, then exited.
            await backend.remove_agent("a")
            assert sink.tasks("a") == on_a + more_on_a
            assert gone(pid_a)
            with pytest.raises(ConfigError):
                backend.run([("a", Task("noop"))])
            await backend.remove_agent("a")  # already gone: nothing to do

            await sink.until(lambda: len(sink.done["b"]) == len(on_b))
            assert sink.tasks("b") == on_b
            await backend.add_agent(AgentSpec("a"))  # the id is free again
            backend.run([("a", Task("add_one", 0)), ("b", Task("add_one", 1))])
            await sink.until(lambda: len(sink.done["a"]) == len(on_a) + len(more_on_a) + 1)
            assert sink.done["a"][-1][4] == 1
            assert sink.lost == []

    run(test)


def test_stop_leaves_no_worker_processes_behind() -> None:
    async def test() -> None:
        me = psutil.Process()
        async with running(AgentSpec("a"), AgentSpec("b")) as (backend, sink):
            pids = {backend.pid("a"), backend.pid("b")}
            assert pids <= {p.pid for p in me.children(recursive=True)}
            backend.run([(agent_id, Task("sleep", 60.0)) for agent_id in "ab"])
            backend.run([(agent_id, Task("noop")) for agent_id in "ab"])
            started = time.perf_counter()
            await backend.stop()
            assert time.perf_counter() - started < backend.stop_timeout + 5.0
            await backend.stop()  # twice is fine
        assert all(gone(pid) for pid in pids)
        for child in me.children(recursive=True):
            assert child.pid not in pids
            assert child.status() != psutil.STATUS_ZOMBIE
        assert sink.lost == []  # stopping abandons tasks; it does not report agents lost

    run(test)


# -- configuration ------------------------------------------------------------------------


class _Callable:
    def __call__(self, payload: Any, agent: AgentContext) -> Any:
        return payload

    def method(self, payload: Any, agent: AgentContext) -> Any:
        return payload


def _closure() -> Handler:
    def inner(payload: Any, agent: AgentContext) -> Any:
        return payload

    return inner


@pytest.mark.parametrize(
    "handler",
    [
        lambda payload, agent: payload,
        _closure(),
        functools.partial(divide),
        _Callable(),
        _Callable().method,
    ],
    ids=["lambda", "closure", "partial", "callable-object", "bound-method"],
)
def test_handlers_workers_cannot_import_are_rejected_at_start(handler: Handler) -> None:
    async def test() -> None:
        backend = ProcessBackend()
        with pytest.raises(ConfigError, match=r"handlers\['custom'\].*top level"):
            await backend.start(RecordingSink(), HandlerRegistry({"custom": handler}))
        await backend.stop()

    run(test)


def test_handler_references_are_module_and_qualname() -> None:
    registry = HandlerRegistry(HANDLERS)
    assert handler_ref("noop", registry["noop"]) == "swarmperf.core.handlers:noop"
    assert handler_ref("add_one", add_one) == f"{__name__}:add_one"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("start_method", "fork"),
        ("flush_interval", 0.0),
        ("start_timeout", -1.0),
        ("stop_timeout", 0.0),
    ],
)
def test_bad_settings_are_rejected(setting: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=setting):
        ProcessBackend(**{setting: value})


def test_adding_an_agent_before_start_is_an_error() -> None:
    async def test() -> None:
        with pytest.raises(BackendError, match=r"start\(\)"):
            await ProcessBackend().add_agent(AgentSpec("a"))

    run(test)


def test_a_swarm_that_cannot_start_leaves_no_worker_running() -> None:
    def children() -> set[int]:
        return {p.pid for p in psutil.Process().children(recursive=True)}

    async def main() -> tuple[set[int], set[int]]:
        # A clean start and stop first: the process-wide helpers (forkserver) now exist.
        async with Swarm([AgentSpec("warm")], backend=ProcessBackend()) as warm:
            await warm.run([Task("noop")])
        before = children()
        # The second agent is refused after the first one's worker process has started.
        swarm = Swarm([AgentSpec("a"), AgentSpec("a")], backend=ProcessBackend())
        with pytest.raises(ConfigError, match="unique"):
            await swarm.start()
        deadline = time.monotonic() + 10
        while children() - before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return before, children()

    before, after = asyncio.run(main())
    assert after - before == set()

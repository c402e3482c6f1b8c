"""The sim backend on its own: service times mean what the built-in handlers make them
mean, agents serve `concurrency` tasks at once, faults and crashes happen in virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from swarmperf import AgentContext, AgentSpec, HandlerRegistry, Task
from swarmperf.core.model import Fault
from swarmperf.runtime.backend import Backend, Done
from swarmperf.sim import AgentModel, Constant, SimBackend

Row = tuple[str, str, float, float, str | None, Any]  # agent, task id, start, end, error, value


class Recorder:
    """A completion sink that writes down what it is told."""

    def __init__(self) -> None:
        self.done: list[Row] = []
        self.lost: list[tuple[str, list[str], str]] = []

    def tasks_done(self, agent_id: str, done: Sequence[Done]) -> None:
        for task, started, finished, error, value in done:
            self.done.append((agent_id, task.id, started, finished, error, value))

    def agent_lost(self, agent_id: str, in_flight: list[Task], reason: str) -> None:
        self.lost.append((agent_id, [t.id for t in in_flight], reason))


def backend_with(
    *specs: AgentSpec, models: dict[str, AgentModel] | None = None, handlers: Any = None
) -> tuple[SimBackend, Recorder]:
    backend = SimBackend(models=models, seed=1)
    sink = Recorder()
    backend.attach(sink, HandlerRegistry(handlers))
    for spec in specs:
        backend.add_agent_now(spec)
    return backend, sink


def test_builtin_kinds_take_the_time_their_handlers_would() -> None:
    backend, sink = backend_with(AgentSpec("a", slowdown=2.0, concurrency=8))
    backend.run(
        [
            ("a", Task("sleep", payload=1.5, id="sleep")),
            ("a", Task("spin", payload=0.25, id="spin")),
            ("a", Task("echo", payload="hi", id="echo")),
            ("a", Task("noop", id="noop")),
            ("a", Task("fail", payload="on purpose", id="fail")),
            ("a", Task("sleep", payload=None, id="no-size")),
            ("a", Task("dance", id="unknown")),
        ]
    )
    backend.engine.run()
    rows = {row[1]: row for row in sink.done}
    assert rows["sleep"][2:] == (0.0, 3.0, None, None)
    assert rows["spin"][3] == 0.5
    assert rows["echo"][3:] == (0.0, None, "hi")
    assert rows["noop"][3:5] == (0.0, None)
    assert rows["fail"][4] == "TaskFailure: on purpose"
    assert str(rows["no-size"][4]).startswith("TypeError: ")
    assert str(rows["unknown"][4]).startswith("UnknownName: task kind: 'dance'")
    assert [row[1] for row in sink.done][-2:] == ["spin", "sleep"]  # in time order
    assert backend.started == backend.completed == 7


def test_an_agent_serves_concurrency_tasks_at_once_and_queues_the_rest() -> None:
    backend, sink = backend_with(AgentSpec("a", concurrency=2, prefetch=1))
    backend.run([("a", Task("sleep", payload=p, id=f"t{p}")) for p in (1.0, 2.0, 4.0)])
    assert backend.busy("a") == 2
    backend.engine.run()
    assert [(row[1], row[2], row[3]) for row in sink.done] == [
        ("t1.0", 0.0, 1.0),
        ("t2.0", 0.0, 2.0),
        ("t4.0", 1.0, 5.0),  # waited for the first free worker
    ]


def test_a_service_model_replaces_the_payload_and_speed_divides_it() -> None:
    models = {"a": AgentModel(service=Constant(2.0), speed=4.0)}
    backend, sink = backend_with(AgentSpec("a", slowdown=3.0), models=models)
    backend.run([("a", Task("sleep", payload=100.0))])
    backend.engine.run()
    assert sink.done[0][3] == 0.5  # 2 s / speed 4; the slowdown is in the model already


def test_a_custom_kind_takes_its_cost_or_fails_saying_why() -> None:
    handlers = {"call-api": lambda payload, agent: None}
    backend, sink = backend_with(AgentSpec("a", slowdown=2.0, concurrency=2), handlers=handlers)
    backend.run([("a", Task("call-api", cost=1.25)), ("a", Task("call-api"))])
    backend.engine.run()
    assert sink.done[0][3] == 0.0
    assert "no time in simulation" in str(sink.done[0][4])
    assert sink.done[1][3:5] == (2.5, None)


def test_fault_windows_count_from_the_start_in_virtual_time() -> None:
    faults = (Fault(start=1.0, end=3.0, slowdown=4.0), Fault(start=5.0, end=6.0, error_rate=1.0))
    backend, sink = backend_with(AgentSpec("a", faults=faults))
    for t in (0.0, 1.0, 5.5, 6.0):
        backend.engine.at(t, lambda _: backend.run([("a", Task("sleep", payload=0.5))]))
    backend.engine.run()
    ends = [(row[2], row[3], row[4]) for row in sink.done]
    assert ends[0] == (0.0, 0.5, None)  # before the windows
    assert ends[1] == (1.0, 3.0, None)  # 4x slower
    assert ends[2][:2] == (5.5, 5.5)  # fails at once
    assert str(ends[2][2]).startswith("InjectedFault: agent 'a' fails 100% of its calls")
    assert ends[3] == (6.0, 6.5, None)  # the window is over


def test_noop_and_fail_ignore_fault_windows_as_their_handlers_do() -> None:
    backend, sink = backend_with(AgentSpec("a", concurrency=3, faults=(Fault(error_rate=1.0),)))
    backend.run([("a", Task(kind, id=kind)) for kind in ("noop", "echo", "fail")])
    backend.engine.run()
    errors = {row[1]: row[4] for row in sink.done}
    assert errors["noop"] is None
    assert str(errors["echo"]).startswith("InjectedFault")
    assert errors["fail"] == "TaskFailure: task failed on purpose"


def test_killing_an_agent_reports_what_it_had_and_drops_its_completions() -> None:
    backend, sink = backend_with(AgentSpec("a", prefetch=2), AgentSpec("b"))
    tasks = [Task("sleep", payload=1.0, id=f"t{i}") for i in range(3)]
    backend.run([("a", t) for t in tasks] + [("b", Task("sleep", payload=2.0, id="other"))])
    backend.engine.at(0.5, lambda _: backend.kill("a", "unplugged"))
    backend.engine.run()
    assert sink.lost == [("a", ["t0", "t1", "t2"], "unplugged")]
    assert [row[1] for row in sink.done] == ["other"]
    assert backend.kill("a", "again") == []


def test_a_retired_agent_finishes_what_it_was_given() -> None:
    backend, sink = backend_with(AgentSpec("a", prefetch=1))
    backend.run([("a", Task("sleep", payload=1.0)), ("a", Task("sleep", payload=1.0))])
    backend.remove_agent_now("a")
    backend.engine.run()
    assert [row[3] for row in sink.done] == [1.0, 2.0]
    backend.add_agent_now(AgentSpec("a"))  # gone, so the id is free again


def test_it_is_a_backend() -> None:
    backend: Backend = SimBackend()
    sink = Recorder()

    async def lifecycle() -> None:
        await backend.start(sink, HandlerRegistry())
        await backend.add_agent(AgentSpec("a"))
        backend.run([("a", Task("noop"))])
        await backend.remove_agent("a")
        await backend.stop()

    asyncio.run(lifecycle())
    assert backend.name == "sim"
    assert backend.transfer_cost == 0.0


def test_agent_ids_are_unique() -> None:
    backend, _ = backend_with(AgentSpec("a"))
    with pytest.raises(ValueError, match="unique"):
        backend.add_agent_now(AgentSpec("a"))


def test_context_for_reference() -> None:
    # The real handlers' error text, which the simulated faults copy word for word.
    context = AgentContext.for_agent(AgentSpec("a", faults=(Fault(error_rate=1.0),)), 0.0)
    with pytest.raises(Exception, match=r"^agent 'a' fails 100% of its calls from 0s$"):
        context.work_factor()

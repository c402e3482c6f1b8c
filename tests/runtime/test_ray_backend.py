"""The `ray` backend on a real local Ray: results, strategies, placement.

Crashes and churn under load, as every backend must handle them, are in
`test_backend_conformance.py`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmperf.app.backends import make_backend
from swarmperf.balancing import STRATEGIES
from swarmperf.core.errors import AgentCrashed, BackendError, ConfigError
from swarmperf.core.handlers import AgentContext, Handler, HandlerRegistry
from swarmperf.core.model import AgentSpec, Task, TaskResult, TaskStatus
from swarmperf.resilience.restart import RestartPolicy
from swarmperf.runtime.backend import Backend
from swarmperf.runtime.ray_backend import (
    ActorOptions,
    ActorPlacement,
    PlacementGroupSettings,
    RayBackend,
    RaySettings,
    node_figures,
)
from swarmperf.runtime.swarm import Swarm
from swarmperf.spec import SpecError, parse_spec
from tests.runtime.test_process import HANDLERS, RecordingSink, most_at_once


def whereami(payload: Any, agent: AgentContext) -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


RAY_HANDLERS: dict[str, Handler] = {**HANDLERS, "whereami": whereami}


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    # Roomy: a Ray actor takes about a second to start, more on a busy machine.
    asyncio.run(asyncio.wait_for(test(), 60.0))


@contextlib.asynccontextmanager
async def running(
    *agents: AgentSpec,
    settings: RaySettings | None = None,
    handlers: Mapping[str, Handler] = RAY_HANDLERS,
) -> AsyncIterator[tuple[RayBackend, RecordingSink]]:
    backend = RayBackend(settings)
    sink = RecordingSink()
    await backend.start(sink, HandlerRegistry(handlers))
    try:
        for spec in agents:
            await backend.add_agent(spec)
        yield backend, sink
    finally:
        await backend.stop()


def exactly_once(results: list[TaskResult], tasks: list[Task]) -> None:
    assert sorted(r.task_id for r in results) == sorted(t.id for t in tasks)


# -- without Ray --------------------------------------------------------------------------


def test_choosing_ray_without_ray_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'swarmperf\[ray\]'") as info:
        make_backend("ray")
    assert info.value.field == "backend"
    # The spec itself does not need Ray.
    spec = parse_spec({"backend": "ray", "agents": [{"id": "w"}]})
    assert spec.ray_settings().address is None


def test_the_cli_says_what_to_install_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from swarmperf.cli.main import app

    monkeypatch.setitem(sys.modules, "ray", None)
    spec = tmp_path / "spec.yaml"
    spec.write_text("agents: [{id: w}]\nworkload: {tasks: 3}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(spec), "--backend", "ray", "--no-store"])
    assert result.exit_code == 2
    assert "The ray backend needs Ray. Install it with: pip install" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_address_where_nothing_listens_fails_at_once_with_the_fix(scheme: str) -> None:
    # Ray itself would wait minutes; the head is asked first, in milliseconds.
    from swarmperf.runtime.ray_backend import connect, import_ray

    with socket.socket() as sock:  # a port nothing listens on: bound here, never listened
        sock.bind(("127.0.0.1", 0))
        address = f"{scheme}127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(ConfigError, match="Nothing answers") as caught:
            connect(import_ray(), address, None, local=False)
    assert caught.value.field == "ray.address"
    assert "ray start --head" in caught.value.fix


def test_the_ray_section_expands_per_agent() -> None:
    spec = parse_spec(
        {
            "backend": "ray",
            "agents": [{"id": "gpu", "count": 2}, {"id": "cpu", "count": 2}, {"id": "x"}],
            "ray": {
                "address": "ray://head:10001",
                "namespace": "swarms",
                "start_timeout": "5s",
                "groups": {
                    "gpu": {"num_cpus": 1, "memory": "1.5GiB", "resources": {"gpu_slot": 1}},
                    "cpu": {"num_cpus": 0.5, "placement": "strict-spread"},
                    "x": {"node": "abc123", "node_soft": True},
                },
            },
        }
    )
    settings = spec.ray_settings()
    assert (settings.address, settings.namespace, settings.start_timeout) == (
        "ray://head:10001",
        "swarms",
        5.0,
    )
    assert settings.options_for("gpu-1") == ActorOptions(
        num_cpus=1, memory=int(1.5 * 1024**3), resources={"gpu_slot": 1}
    )
    assert settings.options_for("cpu-1").placement_group == "cpu"
    assert settings.options_for("cpu-1").bundle == 1
    assert settings.placement_groups["cpu"] == PlacementGroupSettings(
        "STRICT_SPREAD", ({"CPU": 0.5}, {"CPU": 0.5})
    )
    assert settings.options_for("x") == ActorOptions(node_id="abc123", soft=True)
    assert settings.options_for("new-agent") == ActorOptions()
    assert parse_spec(spec.to_data()) == spec


@pytest.mark.parametrize(
    ("ray", "path", "words"),
    [
        ({"groups": {"wokrer": {"num_cpus": 1}}}, "ray", "Did you mean 'worker'"),
        ({"groups": {"worker": {"memory": "lots"}}}, "ray.groups.worker.memory", "512MiB"),
        ({"groups": {"worker": {"num_cpus": -1}}}, "ray.groups.worker.num_cpus", ">= 0"),
        ({"groups": {"worker": {"placement": "pack"}}}, "ray.groups.worker", "num_cpus"),
        (
            {"groups": {"worker": {"placement": "pack", "node": "n", "num_cpus": 1}}},
            "ray.groups.worker",
            "Drop node or placement",
        ),
        ({"groups": {"worker": {"placement": "packed"}}}, "ray.groups.worker.placement", "pack"),
        ({"adress": "auto"}, "ray.adress", "address"),
    ],
)
def test_bad_ray_sections_name_the_field_and_the_fix(
    ray: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"backend": "ray", "agents": [{"id": "worker"}], "ray": ray})
    [problem] = info.value.problems
    assert problem.path == path
    assert words in f"{problem.problem} {problem.fix}"


@given(
    amount=st.integers(1, 10**6),
    unit=st.sampled_from([("", 1), ("KB", 1000), ("MiB", 1024**2), ("gib", 1024**3)]),
)
def test_memory_sizes_read_as_bytes(amount: int, unit: tuple[str, int]) -> None:
    text, factor = unit
    spec = parse_spec(
        {"agents": [{"id": "w"}], "ray": {"groups": {"w": {"memory": f"{amount}{text}"}}}}
    )
    assert spec.ray_settings().options_for("w").memory == amount * factor
    assert parse_spec(spec.to_data()) == spec


def test_the_spec_settings_reach_the_backend(ray_local: Any) -> None:
    spec = parse_spec(
        {
            "backend": "ray",
            "agents": [{"id": "w", "count": 2}],
            "ray": {"namespace": "n", "groups": {"w": {"num_cpus": 0.5}}},
        }
    )
    backend = make_backend(spec.backend, spec)
    assert isinstance(backend, RayBackend)
    assert backend.settings == spec.ray_settings()
    assert backend.settings.options_for("w-1").num_cpus == 0.5


def test_node_figures_group_results_by_the_node_of_their_agent() -> None:
    placements = {
        "a": ActorPlacement("a", "n1", "10.0.0.1", 11, "x"),
        "b": ActorPlacement("b", "n1", "10.0.0.1", 12, "y"),
        "c": ActorPlacement("c", "n2", "10.0.0.2", 13, "z"),
    }

    def result(agent: str | None, service: float, ok: bool = True) -> TaskResult:
        status = TaskStatus.SUCCEEDED if ok else TaskStatus.FAILED
        return TaskResult("t", status, agent, 1, 0.0, 1.0, 1.0 + service)

    results = [result("a", 0.1), result("b", 0.3, ok=False), result("c", 0.2), result(None, 9)]
    n1, n2 = node_figures(results, placements)
    assert (n1.node_id, n1.node_ip, n1.agents, n1.tasks, n1.failed) == (
        "n1",
        "10.0.0.1",
        ("a", "b"),
        2,
        1,
    )
    assert n1.mean_service == pytest.approx(0.2)
    assert (n2.node_id, n2.tasks) == ("n2", 1)
    assert n2.mean_service == pytest.approx(0.2)


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ConfigError, match="start_timeout"):
        RaySettings(start_timeout=0)
    with pytest.raises(ConfigError, match="placement_groups"):
        RaySettings(agents={"a": ActorOptions(placement_group="g")})
    with pytest.raises(ConfigError, match="bundle"):
        RaySettings(
            agents={"a": ActorOptions(placement_group="g", bundle=1)},
            placement_groups={"g": PlacementGroupSettings("PACK", ({"CPU": 1},))},
        )
    with pytest.raises(ConfigError, match="PACK"):
        PlacementGroupSettings("TIGHT", ({"CPU": 1},))


# -- on a local Ray -----------------------------------------------------------------------


@pytest.mark.slow
def test_results_failures_and_concurrency(ray_local: Any) -> None:
    async def test() -> None:
        agents = AgentSpec("a", slowdown=2.0), AgentSpec("b", concurrency=3)
        async with running(*agents) as (backend, sink):
            typed: Backend = backend
            assert typed.name == "ray"
            assert 0 < backend.transfer_cost < 1.0
            on_a = [Task("add_one", 1), Task("divide", 0), Task("whoami"), Task("no-such")]
            backend.run([("a", t) for t in on_a])
            naps = [Task("nap", (0.3, i)) for i in range(3)]
            dozes = [Task("doze", (0.3, i)) for i in range(3)]
            backend.run([("b", t) for t in naps])
            await sink.until(lambda: len(sink.done["a"]) == 4 and len(sink.done["b"]) == 3)
            backend.run([("b", t) for t in dozes])
            await sink.until(lambda: len(sink.done["b"]) == 6)

            done = {d[0].id: d for d in sink.done["a"]}
            assert done[on_a[0].id][3:] == (None, 2)
            assert done[on_a[1].id][3] == "ZeroDivisionError: division by zero"
            pid, agent_id, slowdown = done[on_a[2].id][4]
            assert (pid, agent_id, slowdown) == (backend.placement("a").pid, "a", 2.0)
            assert "no-such" in str(done[on_a[3].id][3])
            for _, started, finished, _, _ in sink.done["a"] + sink.done["b"]:
                assert 0 < backend._epoch <= started <= finished
            # Three at a time on b, with both async and thread-run handlers.
            by_id = {d[0].id: d for d in sink.done["b"]}
            assert most_at_once([by_id[t.id] for t in naps]) == 3
            assert most_at_once([by_id[t.id] for t in dozes]) == 3
            assert sorted(by_id[t.id][4] for t in naps) == [0, 1, 2]
            assert sink.lost == []

    run(test)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_runs_every_task_once_on_ray(ray_local: Any, strategy: str) -> None:
    async def test() -> None:
        agents = [AgentSpec("a", weight=2.0, prefetch=2), AgentSpec("b", concurrency=2)]
        tasks = [Task("sleep", 0.002, cost=0.002) for _ in range(40)]
        tasks += [Task("add_one", i) for i in range(40)]
        swarm = Swarm(agents, backend=RayBackend(), strategy=strategy, handlers=RAY_HANDLERS)
        async with swarm:
            results = list(await swarm.run(tasks))
        exactly_once(results, tasks)
        assert all(r.ok for r in results)
        assert {r.agent for r in results} <= {"a", "b"}
        values = sorted(r.value for r in results if r.kind == "add_one")
        assert values == list(range(1, 41))
        assert swarm.lost_agents == []

    run(test)


@pytest.mark.slow
def test_agents_without_a_prefetch_get_the_ray_default(ray_local: Any) -> None:
    async def test() -> None:
        agents = [AgentSpec("unset"), AgentSpec("none", prefetch=0)]
        backend = RayBackend()
        swarm = Swarm(agents, backend=backend, strategy="least-loaded", handlers=RAY_HANDLERS)
        async with swarm:
            tasks = [Task("nap", (0.01, i)) for i in range(30)]
            for task in tasks:
                swarm.submit(task)
            # Bound and sent as the tasks were submitted: what each actor was given at once.
            given = {agent: len(held) for agent, held in backend.running_tasks().items()}
            kept = [swarm.agent_spec(agent.id) for agent in agents]
            await swarm.drain()
            results = swarm.results
        default = RayBackend.default_prefetch
        assert default > 0
        assert given == {"unset": 1 + default, "none": 1}
        assert [spec.prefetch for spec in kept if spec is not None] == [default, 0]
        exactly_once(results, tasks)
        assert all(r.ok for r in results)

    run(test)


@pytest.mark.slow
def test_node_affinity_and_placement_groups(ray_local: Any) -> None:
    node = ray_local.get_runtime_context().get_node_id()
    placed = RaySettings(
        agents={
            "pinned": ActorOptions(node_id=node),
            "g0": ActorOptions(num_cpus=0.25, placement_group="g", bundle=0),
            "g1": ActorOptions(num_cpus=0.25, placement_group="g", bundle=1),
        },
        placement_groups={"g": PlacementGroupSettings("PACK", ({"CPU": 0.25},) * 2)},
    )
    unplaceable = RaySettings(
        agents={
            "nowhere": ActorOptions(node_id="12" * 28),
            "huge": ActorOptions(num_cpus=64),
            "bad-id": ActorOptions(node_id="not hex"),
        },
        start_timeout=2.0,
    )

    async def test() -> None:
        agents = AgentSpec("pinned"), AgentSpec("g0"), AgentSpec("g1")
        async with running(*agents, settings=placed) as (backend, sink):
            backend.run([(a.id, Task("whereami")) for a in agents])
            await sink.until(lambda: sum(map(len, sink.done.values())) == 3)
            assert {d[4] for done in sink.done.values() for d in done} == {node}
            assert {p.node_id for p in backend.placements().values()} == {node}
            [figures] = node_figures([], backend.placements())
            assert figures.agents == ("g0", "g1", "pinned")
        async with running(settings=unplaceable) as (backend, sink):
            for agent_id in ("nowhere", "huge"):
                with pytest.raises(AgentCrashed, match=agent_id):
                    await backend.add_agent(AgentSpec(agent_id))
            assert [lost[0] for lost in sink.lost] == ["nowhere", "huge"]
            assert "asked for num_cpus=64" in sink.lost[1][2]
            # What each node has free, not the cluster's sum: a full node shows as full.
            assert f"free: node {node[:12]}: CPU=" in sink.lost[1][2]
            with pytest.raises(ConfigError, match="node id in hex"):
                await backend.add_agent(AgentSpec("bad-id"))

    run(test)


@pytest.mark.slow
def test_actors_hold_no_cpu_unless_asked_even_with_other_resources(ray_local: Any) -> None:
    # Left to Ray, an actor asking for memory (or a custom resource) would hold a CPU for
    # its whole life: three of them would not fit on this 2-CPU Ray.
    settings = RaySettings(default=ActorOptions(memory=2**20), start_timeout=20.0)
    cpu = ActorOptions(num_cpus=1, memory=2**20)

    async def test() -> None:
        free = ray_local.available_resources().get("CPU", 0.0)
        agents = [AgentSpec(f"m{i}") for i in range(3)]
        async with running(*agents, settings=settings) as (backend, sink):
            backend.run([(a.id, Task("whereami")) for a in agents])
            await sink.until(lambda: sum(map(len, sink.done.values())) == 3)
            assert ray_local.available_resources().get("CPU", 0.0) == free
        asking = RaySettings(agents={"c": cpu}, start_timeout=20.0)
        async with running(AgentSpec("c"), settings=asking):
            # Ray's view of free resources follows the raylet's after a moment.
            for _ in range(200):
                if ray_local.available_resources().get("CPU", 0.0) == free - 1:
                    break
                await asyncio.sleep(0.05)
            assert ray_local.available_resources().get("CPU", 0.0) == free - 1

    run(test)


@pytest.mark.slow
def test_an_unplaceable_placement_group_is_a_clear_error(ray_local: Any) -> None:
    settings = RaySettings(
        agents={"a": ActorOptions(num_cpus=2, placement_group="g")},
        placement_groups={"g": PlacementGroupSettings("STRICT_SPREAD", ({"CPU": 2},) * 2)},
        start_timeout=1.0,
    )

    async def test() -> None:
        async with running(settings=settings) as (backend, _):
            with pytest.raises(BackendError, match="STRICT_SPREAD"):
                await backend.add_agent(AgentSpec("a"))

    run(test)


@pytest.mark.slow
def test_payloads_ray_cannot_send_fail_their_tasks_only(ray_local: Any) -> None:
    async def test() -> None:
        import threading

        async with running(AgentSpec("a")) as (backend, sink):
            tasks = [Task("echo", 1), Task("echo", threading.Lock()), Task("echo", 3)]
            backend.run([("a", t) for t in tasks])
            await sink.until(lambda: len(sink.done["a"]) == 3)
            by_id = {d[0].id: d for d in sink.done["a"]}
            assert by_id[tasks[0].id][3:] == (None, 1)
            assert "serializable" in str(by_id[tasks[1].id][3])
            assert by_id[tasks[2].id][3:] == (None, 3)

    run(test)


def test_task_timeouts_in_a_ray_spec_reach_the_backend(ray_local: Any) -> None:
    spec = parse_spec(
        {
            "backend": "ray",
            "agents": [{"id": "w"}],
            "timeouts": {"default": "5s", "kinds": {"doze": "500ms"}},
        }
    )
    backend = make_backend(spec.backend, spec)
    assert isinstance(backend, RayBackend)
    assert backend.timeouts == {"doze": 0.5, "": 5.0}


@pytest.mark.slow
def test_a_task_past_its_timeout_fails_and_the_others_run_once(ray_local: Any) -> None:
    async def test() -> None:
        # Stuck far past a 0.5 s bound: a sync handler blocking an actor of concurrency 1
        # (nothing but killing the actor stops it) and an async one on a concurrent actor.
        stuck = [Task("doze", (60.0, "sync")), Task("nap", (60.0, "async"))]
        quick = [Task("add_one", i) for i in range(30)]
        agents = [AgentSpec("a"), AgentSpec("b", concurrency=2)]
        swarm = Swarm(
            agents,
            backend=RayBackend(timeouts={"doze": 0.5, "nap": 0.5}),
            strategy="round-robin",
            handlers=RAY_HANDLERS,
            restart=RestartPolicy(base_delay=0.1),
        )
        async with swarm:
            results = list(await swarm.run([*stuck, *quick]))
        exactly_once(results, [*stuck, *quick])
        by_id = {r.task_id: r for r in results}
        for task in stuck:
            assert by_id[task.id].status == TaskStatus.FAILED
            assert by_id[task.id].error == "TimeoutError: timed out after 0.5s"
        assert sorted(by_id[t.id].value for t in quick) == list(range(1, 31))
        assert all(by_id[t.id].ok for t in quick)
        assert {lost[0] for lost in swarm.lost_agents} == {"a", "b"}

    run(test)

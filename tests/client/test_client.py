"""The clients against a real `swarmperf serve` process: work in and out, steering, errors."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from swarmperf.client import Submitted, SwarmClient, SyncSwarmClient, TaskOutcome
from swarmperf.core.errors import (
    ConfigError,
    ServiceError,
    ServiceUnavailable,
    SwarmNotRunning,
)
from swarmperf.core.model import Priority, Task
from swarmperf.service import registry
from tests.serving import Service, service

SWARM = "clients"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = service(tmp_path_factory.mktemp("served"), SWARM).start()
    try:
        yield running
    finally:
        running.close()


def client(served: Service, **options: Any) -> SwarmClient:
    return SwarmClient(SWARM, data_dir=served.data_dir, **options)


def sync_client(served: Service, **options: Any) -> SyncSwarmClient:
    return SyncSwarmClient(SWARM, data_dir=served.data_dir, **options)


def token_of(served: Service) -> str:
    return registry.find(served.data_dir, SWARM).token()


async def _end_cursor(c: SwarmClient) -> int:
    """The cursor after every result recorded so far."""
    cursor = 0
    while True:
        page, cursor = await c.results(after=cursor, limit=10_000)
        if not page:
            return cursor


# -- work in, results out -------------------------------------------------------------------


def test_submit_then_wait_gives_the_handlers_result(served: Service) -> None:
    async def scenario() -> tuple[Submitted, TaskOutcome]:
        async with client(served) as c:
            receipt = await c.submit("echo", {"n": [1, 2, 3]}, priority="high", tenant="t1")
            return receipt, await c.wait(receipt.id, timeout=30)

    receipt, outcome = asyncio.run(scenario())
    assert not receipt.duplicate
    assert receipt.idempotency_key  # given by the client when none was
    assert outcome.id == receipt.id
    assert outcome.idempotency_key == receipt.idempotency_key
    assert outcome.kind == "echo"
    assert outcome.status == "succeeded"
    assert outcome.ok
    assert outcome.done
    assert outcome.value == {"n": [1, 2, 3]}
    assert outcome.agent in {"a-0", "a-1"}
    assert outcome.attempts == 1
    assert outcome.latency_s is not None
    assert outcome.latency_s >= 0
    assert isinstance(outcome.cursor, int)


def test_a_failing_task_has_its_error(served: Service) -> None:
    async def scenario() -> TaskOutcome:
        async with client(served) as c:
            receipt = await c.submit("fail", "on purpose")
            return await c.wait(receipt.id, timeout=30)

    outcome = asyncio.run(scenario())
    assert outcome.status == "failed"
    assert not outcome.ok
    assert outcome.error


def test_the_same_key_is_one_task(served: Service) -> None:
    async def scenario() -> tuple[Submitted, Submitted]:
        async with client(served) as c:
            first = await c.submit("noop", idempotency_key="one-and-only")
            return first, await c.submit("noop", idempotency_key="one-and-only")

    first, again = asyncio.run(scenario())
    assert again.duplicate
    assert not first.duplicate
    assert again.id == first.id


def test_submit_many_keeps_order_and_one_task_per_key(served: Service) -> None:
    tasks: list[dict[str, Any] | Task] = [
        {"kind": "echo", "payload": 0, "idempotency_key": "many-a"},
        {"kind": "echo", "payload": 1},
        Task("echo", payload=2, priority=Priority.CRITICAL, idempotency_key="many-b"),
        {"kind": "echo", "payload": 3, "idempotency_key": "many-a"},  # same batch as the first
        {"kind": "echo", "payload": 4},
        Task("echo", payload=5),
        {"kind": "echo", "payload": 6, "idempotency_key": "many-b"},  # a later batch
        {"kind": "echo", "payload": 7, "priority": "low", "rank": 3, "cost": 0.001},
    ]

    async def scenario() -> tuple[list[Submitted], list[TaskOutcome]]:
        async with client(served) as c:
            receipts = await c.submit_many(tasks, batch=4)
            outcomes = [await c.wait(r.id, timeout=30) for r in receipts]
            return receipts, outcomes

    receipts, outcomes = asyncio.run(scenario())
    assert len(receipts) == len(tasks)
    assert [r.duplicate for r in receipts] == [False, False, False, True, False, False, True, False]
    assert receipts[3].id == receipts[0].id
    assert receipts[6].id == receipts[2].id
    assert receipts[3].idempotency_key == "many-a"
    # Every other task got a key of its own, and so a task of its own.
    fresh = [receipts[i] for i in (1, 4, 5, 7)]
    assert len({r.idempotency_key for r in fresh}) == 4
    assert len({r.id for r in receipts}) == 6
    # A duplicate is the first task: its payload, not the resent one's.
    assert [o.value for o in outcomes] == [0, 1, 2, 0, 4, 5, 2, 7]


def test_results_page_in_the_order_recorded(served: Service) -> None:
    async def scenario() -> tuple[set[str], list[TaskOutcome], list[int]]:
        async with client(served) as c:
            cursor = await _end_cursor(c)
            receipts = await c.submit_many([{"kind": "noop"} for _ in range(25)])
            ours = {r.id for r in receipts}
            seen: list[TaskOutcome] = []
            nexts: list[int] = []
            give_up = time.monotonic() + 30
            while not ours <= {o.id for o in seen} and time.monotonic() < give_up:
                page, cursor = await c.results(after=cursor, limit=7, wait=5)
                assert len(page) <= 7
                seen.extend(page)
                nexts.append(cursor)
            return ours, seen, nexts

    ours, seen, nexts = asyncio.run(scenario())
    assert ours <= {o.id for o in seen}
    cursors = [o.cursor for o in seen if o.cursor is not None]
    assert len(cursors) == len(seen)
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == len(cursors)  # each result once
    assert nexts == sorted(nexts)
    assert all(o.status == "succeeded" for o in seen if o.id in ours)


def test_stream_gives_each_result_as_recorded(served: Service) -> None:
    async def scenario() -> tuple[set[str], list[TaskOutcome]]:
        async with client(served) as c:
            cursor = await _end_cursor(c)
            receipts = await c.submit_many([{"kind": "noop"} for _ in range(40)], batch=10)
            ours = {r.id for r in receipts}
            streamed: list[TaskOutcome] = []

            async def read() -> None:
                async for outcome in c.stream(after=cursor):
                    streamed.append(outcome)
                    if ours <= {o.id for o in streamed}:
                        return

            await asyncio.wait_for(read(), timeout=30)
            return ours, streamed

    ours, streamed = asyncio.run(scenario())
    assert ours <= {o.id for o in streamed}
    cursors = [o.cursor for o in streamed if o.cursor is not None]
    assert len(cursors) == len(streamed)
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == len(cursors)


def test_the_sync_client_does_the_same(served: Service) -> None:
    with sync_client(served) as c:
        cursor = 0
        while True:
            page, cursor = c.results(after=cursor, limit=10_000)
            if not page:
                break
        receipts = c.submit_many([{"kind": "echo", "payload": i} for i in range(5)], batch=2)
        assert [c.wait(r.id, timeout=30).value for r in receipts] == [0, 1, 2, 3, 4]
        ours = {r.id for r in receipts}
        streamed: list[str] = []
        for outcome in c.stream(after=cursor):
            streamed.append(outcome.id)
            if ours <= set(streamed):
                break
        assert c.status()["swarm_id"] == SWARM


# -- one client, many callers at once -------------------------------------------------------


@pytest.mark.parametrize("lanes", [100, 3])  # room for every caller; callers waiting
def test_a_shared_client_gives_each_concurrent_caller_its_receipt(
    served: Service, lanes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("swarmperf.client._async.MAX_LANES", lanes)
    keys = [f"shared-{lanes}-{i}" for i in range(32)]

    async def scenario() -> tuple[list[Submitted], list[TaskOutcome]]:
        async with client(served) as c:
            receipts = await asyncio.gather(
                *(c.submit("echo", key, idempotency_key=key) for key in keys)
            )
            outcomes = await asyncio.gather(*(c.wait(r.id, timeout=30) for r in receipts))
            return list(receipts), list(outcomes)

    receipts, outcomes = asyncio.run(scenario())
    assert [r.idempotency_key for r in receipts] == keys
    assert not any(r.duplicate for r in receipts)
    assert len({r.id for r in receipts}) == len(keys)
    assert [o.id for o in outcomes] == [r.id for r in receipts]
    assert [o.value for o in outcomes] == keys


def test_a_sync_client_shared_by_threads_gives_each_its_receipt(served: Service) -> None:
    keys = [f"threads-{i}" for i in range(16)]
    receipts: dict[str, Submitted] = {}
    with sync_client(served) as c:

        def send(key: str) -> None:
            receipts[key] = c.submit("echo", key, idempotency_key=key)

        threads = [threading.Thread(target=send, args=(key,)) for key in keys]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(receipts) == sorted(keys)
        assert all(receipts[key].idempotency_key == key for key in keys)
        assert len({r.id for r in receipts.values()}) == len(keys)
        assert [c.wait(receipts[key].id, timeout=30).value for key in keys] == keys


def test_a_request_waits_for_a_busy_connection_no_longer_than_the_timeout(
    served: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("swarmperf.client._sync.MAX_LANES", 1)
    with sync_client(served, timeout=0.5, retries=0) as c:
        c.wait(c.submit("noop").id, timeout=30)  # a result to stream at once
        stream = c.stream(after=0)
        assert isinstance(stream, Generator)
        next(stream)  # the stream holds the one connection
        with pytest.raises(ServiceUnavailable) as caught:
            c.status()
        assert "PoolTimeout: all 1 connections stayed busy" in str(caught.value)
        stream.close()  # gives it back
        assert c.status()["swarm_id"] == SWARM


def test_a_closed_client_sends_nothing(served: Service) -> None:
    async def scenario() -> None:
        c = client(served)
        await c.status()
        await c.aclose()
        await c.status()

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(scenario())
    c = sync_client(served)
    c.close()
    with pytest.raises(RuntimeError, match="closed"):
        c.status()


# -- steering -------------------------------------------------------------------------------


def test_strategy_switch_is_recorded_as_a_decision(served: Service) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with client(served) as c:
            change = await c.set_strategy("work-stealing", observe_s=0.2)
            now = await c.strategy()
            give_up = time.monotonic() + 20
            while True:
                decision = await c.decision(change["decision_id"])
                if decision["decision"].get("after") is not None or time.monotonic() > give_up:
                    break
                await asyncio.sleep(0.1)
            await c.set_strategy("least-loaded", observe_s=0)
            return change, now, decision

    change, now, decision = asyncio.run(scenario())
    assert change["name"] == "work-stealing"
    assert change["previous"] in now["choices"]
    assert now["name"] == "work-stealing"
    assert "work-stealing" in now["choices"]
    assert set(change["figures_before"]) >= {"window_s", "throughput_per_s", "reasons"}
    assert decision["id"] == change["decision_id"]
    assert decision["kind"] == "strategy"
    assert decision["decision"]["before"] is not None
    assert decision["decision"]["after"] is not None


def test_an_unknown_strategy_names_the_choices(served: Service) -> None:
    with sync_client(served) as c, pytest.raises(ConfigError) as caught:
        c.set_strategy("fastest-please")
    assert caught.value.field
    assert "work-stealing" in str(caught.value)


def test_scale_adds_and_removes_agents(served: Service) -> None:
    with sync_client(served) as c:
        grown = c.scale(4, observe_s=0)
        assert grown["before"] == 2
        assert grown["after"] == 4
        assert len(grown["added"]) == 2
        assert len(c.agents()) == 4
        shrunk = c.scale(2, observe_s=0)
        assert shrunk["after"] == 2
        assert sorted(shrunk["removed"]) == sorted(grown["added"])
        assert {a["id"] for a in c.agents()} == {"a-0", "a-1"}
        assert c.decision(shrunk["decision_id"])["kind"] == "scale"
        on = c.scale("auto", policy="static-peak", dry_run=True)
        assert on["recommendation"]["policy"] == "static-peak"
        on = c.scale("auto", policy="hpa")
        assert on["autoscale"]["on"] is True
        assert c.decision(on["decision_id"])["kind"] == "autoscale"
        off = c.scale(2, observe_s=0)
        assert off["autoscale_turned_off"] is True
        added = c.add_agent(id="extra", concurrency=2)
        assert added["id"] == "extra"
        assert c.remove_agent("extra") == {"removed": "extra"}
        with pytest.raises(ConfigError):
            c.remove_agent("nobody")


def test_paused_swarm_accepts_but_runs_nothing_until_resumed(served: Service) -> None:
    with sync_client(served) as c:
        assert c.pause()["state"] == "paused"
        try:
            receipt = c.submit("noop")
            with pytest.raises(TimeoutError, match="no result after"):
                c.wait(receipt.id, timeout=0.5)
            assert c.status()["state"] == "paused"
        finally:
            assert c.resume()["state"] == "running"
        assert c.wait(receipt.id, timeout=30).status == "succeeded"


def test_a_drained_swarm_refuses_work_and_the_client_retries_until_it_resumes(
    served: Service,
) -> None:
    with sync_client(served) as c:
        assert c.drain()["state"] == "draining"
        try:
            with sync_client(served, retries=0) as impatient, pytest.raises(ServiceError) as no:
                impatient.submit("noop")
            assert no.value.status == 503
            threading.Timer(0.5, lambda: c.resume()).start()
            started = time.monotonic()
            receipt = c.submit("noop")  # refused with Retry-After, then accepted
            assert time.monotonic() - started >= 0.5
        finally:
            c.resume()
        assert c.wait(receipt.id, timeout=30).ok


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fields", "field"),
    [
        ("no-such-handler", {}, "kind"),
        ("noop", {"priority": "urgent"}, "priority"),
        ("noop", {"deadline_s": -1}, "deadline_s"),
        ("noop", {"idempotency_key": "k" * 201}, "idempotency_key"),
    ],
)
def test_a_bad_task_is_a_config_error_naming_its_field(
    served: Service, kind: str, fields: dict[str, Any], field: str
) -> None:
    with sync_client(served) as c, pytest.raises(ConfigError) as caught:
        c.submit(kind, **fields)
    assert field in caught.value.field
    assert caught.value.fix


def test_mistakes_are_caught_before_anything_is_sent(served: Service) -> None:
    with sync_client(served) as c:
        with pytest.raises(ConfigError, match="colour"):
            c.submit("noop", colour="blue")
        with pytest.raises(ConfigError, match=r"tasks\[1\]\.payload"):
            c.submit_many([{"kind": "noop"}, {"kind": "noop", "payload": {1, 2}}])
        with pytest.raises(ConfigError, match="deadline_s"):
            c.submit_many([Task("noop", deadline=5.0)])
        with pytest.raises(ConfigError, match="batch"):
            c.submit_many([{"kind": "noop"}], batch=0)
        with pytest.raises(ConfigError, match="target_size"):
            c.scale(0)


def test_an_unknown_task_id_is_a_config_error(served: Service) -> None:
    with sync_client(served) as c, pytest.raises(ConfigError) as caught:
        c.wait("no-such-task", timeout=1)
    assert caught.value.field == "task_id"


def test_a_wrong_token_is_refused_and_never_shown(served: Service) -> None:
    wrong = "not-the-token-" + "x" * 20
    with SyncSwarmClient(url=served.url, token=wrong, retries=0) as c:
        with pytest.raises(ServiceError) as caught:
            c.status()
        assert repr(c).count(wrong) == 0
    assert caught.value.status == 401
    assert "token was refused" in str(caught.value)
    assert wrong not in str(caught.value)


def test_the_token_is_in_no_repr_or_message(served: Service) -> None:
    token = token_of(served)
    with sync_client(served) as c:
        assert token not in repr(c)
        assert SWARM in repr(c)
        with pytest.raises(ConfigError) as caught:
            c.submit("no-such-handler")
        assert token not in str(caught.value)
    direct = SyncSwarmClient(url=served.url, token=token)
    assert token not in repr(direct)
    direct.close()


def test_a_swarm_that_does_not_run_is_named_with_those_that_do(served: Service) -> None:
    with pytest.raises(SwarmNotRunning) as caught:
        SwarmClient("nowhere", data_dir=served.data_dir)
    message = str(caught.value)
    assert caught.value.field == "--swarm-id"
    assert SWARM in message  # the one that runs
    assert "swarmperf serve" in message


def test_an_unreachable_service_names_its_address(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once it is closed
    url = f"http://127.0.0.1:{port}"
    with (
        SyncSwarmClient(url=url, token="t" * 20, retries=1) as c,
        pytest.raises(ServiceUnavailable) as caught,
    ):
        c.status()
    assert url in str(caught.value)
    assert "t" * 20 not in str(caught.value)


def test_the_target_must_be_one_swarm_id_or_a_url() -> None:
    with pytest.raises(ConfigError):
        SwarmClient()
    with pytest.raises(ConfigError):
        SwarmClient("x", url="http://127.0.0.1:1", token="t")
    with pytest.raises(ConfigError):
        SyncSwarmClient(url="127.0.0.1:8000", token="t")
    with pytest.raises(ConfigError):
        SyncSwarmClient(url="http://127.0.0.1:8000", token="t", retries=-1)


# -- a crash in the middle ------------------------------------------------------------------


@pytest.mark.slow
def test_submit_many_through_a_kill_and_restart_keeps_one_result_per_task(
    tmp_path: Path,
) -> None:
    """kill -9 while batches go in; the client retries against the restarted service (a
    new port, read from the registry); every task has exactly one result."""
    crashing = service(tmp_path, "crashing").start()
    tasks = [{"kind": "sleep", "payload": 0.001} for _ in range(3000)]
    receipts: list[Submitted] = []
    failure: list[BaseException] = []

    def submit() -> None:
        try:
            with SyncSwarmClient("crashing", data_dir=crashing.data_dir, retries=12) as c:
                receipts.extend(c.submit_many(tasks, batch=100))
        except BaseException as exc:
            failure.append(exc)

    submitter = threading.Thread(target=submit)
    try:
        with SyncSwarmClient("crashing", data_dir=crashing.data_dir) as watcher:
            submitter.start()
            give_up = time.monotonic() + 60
            while watcher.status()["accepted"] < 600 and time.monotonic() < give_up:
                time.sleep(0.01)
        assert submitter.is_alive()  # batches are still going in
        first = crashing.pid
        crashing.kill()
        crashing.start()  # same swarm id and data dir, a new port
        assert crashing.pid != first
        submitter.join(timeout=120)
        assert not submitter.is_alive()
        assert not failure, failure
        assert len(receipts) == len(tasks)
        keys = {r.idempotency_key for r in receipts}
        assert len(keys) == len(tasks)

        by_key: dict[str, int] = {}
        with SyncSwarmClient("crashing", data_dir=crashing.data_dir) as c:
            cursor = 0
            give_up = time.monotonic() + 120
            while len(by_key) < len(keys) and time.monotonic() < give_up:
                page, cursor = c.results(after=cursor, limit=10_000, wait=2)
                for outcome in page:
                    assert outcome.idempotency_key is not None
                    by_key[outcome.idempotency_key] = by_key.get(outcome.idempotency_key, 0) + 1
            page, _ = c.results(after=cursor, limit=10_000, wait=1)
        for outcome in page:  # nothing recorded twice, even late
            assert outcome.idempotency_key is not None
            by_key[outcome.idempotency_key] = by_key.get(outcome.idempotency_key, 0) + 1
        assert set(by_key) == keys
        assert max(by_key.values()) == 1
    finally:
        crashing.close()

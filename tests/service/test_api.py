"""The live swarm's HTTP API, against a real `swarmperf serve` process on loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from swarmperf.service import registry
from tests.serving import TWO_AGENTS, Service, service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, httpx.Client]]:
    running = service(tmp_path_factory.mktemp("api"), "svc", spec=TWO_AGENTS).start()
    try:
        with running.client() as client:
            yield running, client
    finally:
        running.close()


def problem_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:swarmperf:problem:")
    assert "Traceback" not in response.text
    return body


def test_a_submitted_task_runs_and_its_result_is_waited_for(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    answer = client.post("/v1/tasks", json={"kind": "echo", "payload": {"n": 7}})
    assert answer.status_code == 202
    task_id = answer.json()["id"]
    body = client.get(f"/v1/tasks/{task_id}", params={"wait": 10}).json()
    assert body["status"] == "succeeded"
    assert body["result"]["value"] == {"n": 7}
    assert body["result"]["agent"] in {"a1", "a2"}


def test_a_batch_is_accepted_once_per_idempotency_key(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    tasks = [{"kind": "noop", "idempotency_key": f"batch-{i % 50}"} for i in range(120)]
    first = client.post("/v1/tasks/batch", json={"tasks": tasks}).json()
    assert (first["accepted"], first["duplicates"]) == (50, 70)
    ids = {t["idempotency_key"]: t["id"] for t in first["tasks"] if not t["duplicate"]}
    # Sent again (a client retrying after a lost reply): nothing new, the same ids.
    again = client.post("/v1/tasks/batch", json={"tasks": tasks[:50]}).json()
    assert again["accepted"] == 0
    assert {t["idempotency_key"]: t["id"] for t in again["tasks"]} == ids


def test_results_page_in_the_order_recorded_and_stream(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    tasks = [{"kind": "echo", "payload": i} for i in range(30)]
    submitted = client.post("/v1/tasks/batch", json={"tasks": tasks}).json()["tasks"]
    last = submitted[-1]["id"]
    client.get(f"/v1/tasks/{last}", params={"wait": 10})
    seen: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.get("/v1/results", params={"after": after, "limit": 7}).json()
        if not page["results"]:
            break
        seen += page["results"]
        after = page["next"]
    cursors = [r["cursor"] for r in seen]
    assert cursors == sorted(cursors) == list(range(1, len(seen) + 1))
    assert {s["id"] for s in submitted} <= {r["id"] for r in seen}
    streamed: list[dict[str, Any]] = []
    with client.stream("GET", "/v1/results/stream", params={"after": 0}) as lines:
        for line in lines.iter_lines():
            if line.strip():
                streamed.append(json.loads(line))
            if len(streamed) == len(seen):
                break
    assert [r["cursor"] for r in streamed] == cursors


def test_the_token_is_required_everywhere_but_health(
    served: tuple[Service, httpx.Client],
) -> None:
    entry, _ = served
    assert httpx.get(f"{entry.url}/v1/health").json() == {"status": "ok"}
    for path in ("/v1/status", "/v1/ready", "/metrics", "/v1/openapi.json", "/v1/agents"):
        missing = httpx.get(f"{entry.url}{path}")
        assert problem_of(missing, 401)["type"].endswith("unauthorised")
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = httpx.get(f"{entry.url}{path}", headers={"Authorization": "Bearer nope"})
        problem_of(wrong, 401)
        assert entry.token() not in wrong.text


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/tasks", {"kind": "no-such-kind"}, "kind"),
        ("POST", "/v1/tasks", {"kind": "noop", "priority": "urgent"}, "priority"),
        ("POST", "/v1/tasks", {"kind": "noop", "deadline_s": -1}, "deadline_s"),
        ("POST", "/v1/tasks", {"kind": "noop", "surprise": 1}, "surprise"),
        ("POST", "/v1/tasks", {"payload": 1}, "kind"),
        ("POST", "/v1/tasks/batch", {"tasks": []}, "tasks"),
        ("POST", "/v1/tasks/batch", {"tasks": [{"kind": "noop"}, {"kind": "x"}]}, "tasks[1].kind"),
        ("POST", "/v1/scale", {"target_size": 0}, "target_size"),
        ("PUT", "/v1/strategy", {"name": "fastest"}, "strategy"),
        ("POST", "/v1/agents", {"weight": -2}, "weight"),
        ("DELETE", "/v1/agents/ghost", None, "agent"),
        ("GET", "/v1/results?limit=0", None, "limit"),
        ("GET", "/v1/tasks/x?wait=999", None, "wait"),
        ("GET", "/v1/results?after=-1", None, "after"),
        ("GET", "/v1/decisions/abc", None, "decision_id"),
        ("POST", "/v1/stop", {"deadline_s": -5}, "deadline_s"),
        ("POST", "/v1/scale", {"target_size": 3, "observe_s": "soon"}, "observe_s"),
        ("POST", "/v1/scale", {"target_size": "sometimes"}, "target_size"),
        ("POST", "/v1/scale", {"target_size": "auto", "policy": "psychic"}, "--policy"),
        ("POST", "/v1/scale", {"target_size": 3, "policy": "hpa"}, "policy"),
        ("PUT", "/v1/strategy", {}, "name"),
        ("POST", "/v1/agents", {"id": "../x"}, "id"),
        ("POST", "/v1/profile", {"components": "ghost", "duration_s": 0.1}, "components"),
        ("POST", "/v1/profile", {"duration_s": 0}, "duration_s"),
        ("POST", "/v1/profile", {"rate_hz": 5000}, "rate_hz"),
        ("POST", "/v1/topology", {"strategy": "fixed:blob"}, "--strategy"),
        ("POST", "/v1/topology", {"objective": "speed"}, "--objective"),
        ("POST", "/v1/topology", {"min_gain": 2}, "--min-gain"),
        ("POST", "/v1/topology", {"observe_s": 0}, "observe_s"),
    ],
)
def test_bad_input_is_a_problem_naming_the_field(
    served: tuple[Service, httpx.Client],
    method: str,
    path: str,
    body: Any,
    field: str,
) -> None:
    _, client = served
    before = client.get("/v1/status").json()["accepted"]
    response = client.request(method, path, json=body)
    problem = problem_of(response, 422)
    assert problem["field"] == field
    assert problem["fix"]
    assert client.get("/v1/status").json()["accepted"] == before  # nothing half-taken


def test_a_batch_with_one_bad_task_takes_none(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    tasks = [{"kind": "noop", "idempotency_key": "all-or-none-1"}, {"kind": "noop", "rank": "x"}]
    problem_of(client.post("/v1/tasks/batch", json={"tasks": tasks}), 422)
    fresh = client.post("/v1/tasks", json={"kind": "noop", "idempotency_key": "all-or-none-1"})
    assert fresh.json()["duplicate"] is False


def test_not_json_and_unknown_ids_are_problems_too(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    garbled = client.post(
        "/v1/tasks", content=b"{not json", headers={"content-type": "application/json"}
    )
    problem_of(garbled, 422)
    assert problem_of(client.get("/v1/tasks/nope"), 404)["field"] == "task_id"
    problem_of(client.get("/v1/decisions/999999"), 404)
    problem_of(client.get("/v1/no-such-endpoint"), 404)


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    served: tuple[Service, httpx.Client],
) -> None:
    entry, _ = served
    host, port = entry.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /v1/tasks/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + entry.token().encode() + b"\r\n"
            b"Content-Length: 999999999999\r\n\r\n{"
        )
        reply = raw.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 413")
    assert "application/problem+json" in reply
    too_many = {"tasks": [{"kind": "noop"}] * 10_001}
    _, client = served
    assert problem_of(client.post("/v1/tasks/batch", json=too_many), 422)["field"] == "tasks"


def test_agents_strategy_and_scale_change_the_live_swarm(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    added = client.post("/v1/agents", json={"id": "extra", "concurrency": 3})
    assert added.status_code == 201
    assert added.json()["concurrency"] == 3
    assert "extra" in {a["id"] for a in client.get("/v1/agents").json()["agents"]}
    assert client.delete("/v1/agents/extra").json() == {"removed": "extra"}
    switched = client.put("/v1/strategy", json={"name": "work-stealing", "observe_s": 0.3})
    assert switched.json()["name"] == "work-stealing"
    assert client.get("/v1/strategy").json()["name"] == "work-stealing"
    scaled = client.post("/v1/scale", json={"target_size": 4, "observe_s": 0.3}).json()
    assert (scaled["before"], scaled["after"], len(scaled["added"])) == (2, 4, 2)
    plan = client.post("/v1/scale", json={"target_size": 2, "dry_run": True}).json()
    assert plan["removed"] == list(reversed(scaled["added"]))
    assert len(client.get("/v1/agents").json()["agents"]) == 4
    down = client.post("/v1/scale", json={"target_size": 2, "observe_s": 0}).json()
    assert down["removed"] == plan["removed"]
    preview = client.post(
        "/v1/scale", json={"target_size": "auto", "policy": "hpa", "dry_run": True}
    ).json()
    assert preview["recommendation"]["policy"] == "hpa"
    assert preview["autoscale"]["on"] is False
    client.post("/v1/tasks/batch", json={"tasks": [{"kind": "noop"}] * 20})
    decision = _decision_after(client, switched.json()["decision_id"])
    assert decision["kind"] == "strategy"
    assert decision["decision"]["previous"] == "least-loaded"
    assert decision["decision"]["before"]["agents"] == 2
    client.put("/v1/strategy", json={"name": "least-loaded", "observe_s": 0})


def test_pools_resize_by_agent_name_and_a_trial_is_checked(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    grown = client.post(
        "/v1/pools", json={"pools": {"p": {"count": 2, "concurrency": 3}}, "observe_s": 0}
    ).json()
    assert (grown["pools_before"], grown["pools_after"]) == ({"p": 0}, {"p": 2})
    assert grown["added"] == ["p-0", "p-1"]
    rows = {a["id"]: a for a in client.get("/v1/agents").json()["agents"]}
    assert rows["p-1"]["concurrency"] == 3
    shrunk = client.post("/v1/pools", json={"pools": {"p": {"count": 0}}, "observe_s": 0})
    assert shrunk.json()["removed"] == ["p-1", "p-0"]
    decision = client.get(f"/v1/decisions/{shrunk.json()['decision_id']}").json()
    assert decision["kind"] == "pools"
    assert decision["decision"]["pools_after"] == {"p": 0}
    bad = client.post(
        "/v1/pools", json={"pools": {"p": {"count": 1}}, "trial": {"objective": "mood"}}
    )
    assert problem_of(bad, 422)["field"] == "trial.objective"
    none_left = client.post("/v1/pools", json={"pools": {"a1": {"count": 0}, "a2": {"count": 0}}})
    assert "without agents" in problem_of(none_left, 422)["fix"]
    assert {a["id"] for a in client.get("/v1/agents").json()["agents"]} == {"a1", "a2"}


def test_one_change_is_on_trial_at_a_time_and_gets_its_verdict(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    trial = {"pools": {"t": {"count": 1}}, "observe_s": 0.5, "trial": {"predicted": 1.0}}
    first = client.post("/v1/pools", json=trial)
    assert first.status_code == 200, first.text
    second = client.post("/v1/pools", json={**trial, "pools": {"t": {"count": 2}}})
    assert "One change is on trial" in problem_of(second, 422)["fix"]
    judged = _decision_after(client, first.json()["decision_id"])["decision"]["trial"]
    # Idle: no task finished and the queue did not grow, so the change stands.
    assert judged["verdict"] == "kept"
    assert "too little to judge" in judged["why"]
    assert judged["rule"]["predicted"] == 1.0
    removed = client.post("/v1/pools", json={**trial, "pools": {"t": {"count": 0}}})
    assert removed.json()["removed"] == ["t-0"]
    _decision_after(client, removed.json()["decision_id"])


def _decision_after(client: httpx.Client, decision_id: int) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/decisions/{decision_id}").json()
        if body["decision"]["after"] is not None:
            return body
        time.sleep(0.1)
    raise AssertionError("the figures after the decision were never recorded")


def test_the_topology_is_told_and_a_swarm_without_messages_has_nothing_to_plan(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    told = client.get("/v1/topology").json()
    assert told["topology"] == "mesh"  # the spec names none
    assert told["on_trial"] is None
    assert told["messages"]["sent"] == told["messages"]["delivered"] == 0
    asked = client.post("/v1/topology", json={"dry_run": True})
    problem = problem_of(asked, 422)
    assert problem["field"] == "messages"
    assert "add a `messages:` section" in problem["fix"]


def test_pause_holds_work_and_drain_refuses_it(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    assert client.post("/v1/pause").json()["state"] == "paused"
    task_id = client.post("/v1/tasks", json={"kind": "noop"}).json()["id"]
    assert client.get(f"/v1/tasks/{task_id}", params={"wait": 0.5}).json()["status"] == "pending"
    assert client.post("/v1/resume").json()["state"] == "running"
    assert client.get(f"/v1/tasks/{task_id}", params={"wait": 10}).json()["status"] == "succeeded"
    assert client.post("/v1/drain").json()["state"] == "draining"
    refused = client.post("/v1/tasks", json={"kind": "noop"})
    assert problem_of(refused, 503)["type"].endswith(":draining")
    assert int(refused.headers["retry-after"]) >= 1
    problem_of(client.get("/v1/ready"), 503)
    assert client.post("/v1/resume").json()["state"] == "running"


def test_metrics_and_openapi_are_served(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    text = client.get("/metrics").text
    assert "swarmperf_tasks_total" in text
    spec = client.get("/v1/openapi.json").json()
    assert {"/v1/tasks", "/v1/tasks/batch", "/v1/results/stream"} <= set(spec["paths"])


def test_a_profile_answers_folded_stacks_after_its_window(
    served: tuple[Service, httpx.Client],
) -> None:
    _, client = served
    response = client.post("/v1/profile", json={"duration_s": 0.3, "rate_hz": 200})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["rate_hz"] == 200
    assert data["duration_s"] >= 0.25  # the loop's timers may fire a little early
    assert data["idle_samples"] + sum(row["count"] for row in data["stacks"]) > 0
    for row in data["stacks"]:
        assert all(0 <= i < len(data["frames"]) for i in row["frames"])


def test_status_says_what_runs_now(served: tuple[Service, httpx.Client]) -> None:
    _, client = served
    status = client.get("/v1/status").json()
    assert status["swarm_id"] == "svc"
    assert status["backend"] == "local"
    assert {a["id"] for a in status["agents"]} >= {"a1", "a2"}
    figures = status["figures"]
    for name, value in figures.items():
        if value is None:
            assert name in figures["reasons"] or name.startswith("latency")


def test_the_data_dir_keeps_the_token_private(tmp_path: Path) -> None:
    private = service(tmp_path, "private", spec=TWO_AGENTS).start()
    try:
        entry = registry.find(private.data_dir, "private")
        assert entry.token_file.stat().st_mode & 0o777 == 0o600
        assert (private.data_dir / "swarms").stat().st_mode & 0o777 == 0o700
        token = entry.token()
    finally:
        private.close()
    assert token.encode() not in (private.data_dir / "swarmperf.db").read_bytes()
    assert token not in private.output()


def test_submissions_answer_alike_whatever_path_serves_them(
    served: tuple[Service, httpx.Client],
) -> None:
    svc, client = served
    lower = {"Authorization": f"bearer {svc.token()}"}  # the scheme is case-insensitive
    one = httpx.post(f"{svc.url}/v1/tasks", json={"kind": "noop"}, headers=lower)
    assert one.status_code == 202
    assert set(one.json()) == {"id", "idempotency_key", "duplicate"}
    batch = client.post("/v1/tasks/batch", json={"tasks": [{"kind": "noop"}] * 3})
    assert batch.status_code == 202
    assert set(batch.json()) == {"accepted", "duplicates", "tasks"}
    assert batch.headers["content-type"] == "application/json"

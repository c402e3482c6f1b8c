"""Messages between agents: what a hop costs on `local` and `process`, against bare peers.

Each of 8 agents runs one task that sends n / 8 messages to agent a4; under `mesh` each
message is one hop, under `ring` it takes its route's hops (relays run the built-in `relay`
handler). The time is from submitting the tasks to the last delivery; per hop = time /
hops counted by the swarm, which must equal the hops the topology gives (else the run
fails rather than report a wrong figure).

Peers, in the same run: for `local`, one asyncio.Queue per agent and a coroutine each that
forwards a message to the next queue on its route (the same routes), which is what an
in-process hop could cost at least; for `process`, a round trip of the payload through a
worker process over a multiprocessing Pipe, one per hop (what our hop does: to the relay's
worker and back).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from typing import Any

from _common import emit, log, median, parse_args, python_version
from swarmperf import AgentSpec, Swarm, Task
from swarmperf.core.handlers import AgentContext
from swarmperf.routing import Routes, TopologySettings
from swarmperf.runtime.local import LocalBackend
from swarmperf.runtime.process import ProcessBackend

AGENTS = [f"a{i}" for i in range(8)]
RECEIVER = "a4"
PAYLOAD = bytes(256)


def burst(payload: int, agent: AgentContext) -> None:
    for _ in range(payload):
        agent.send(RECEIVER, "noop", PAYLOAD)


def _hops(kind: str, n_each: int) -> int:
    routes = Routes(TopologySettings(kind), AGENTS)
    return sum(n_each * routes.hops(a, RECEIVER) for a in AGENTS)


async def ours(kind: str, n_each: int, backend: str) -> tuple[float, int]:
    agents = [AgentSpec(a) for a in AGENTS]
    async with Swarm(
        agents,
        strategy="round-robin",
        handlers={"burst": burst},
        topology=TopologySettings(kind),
        backend=ProcessBackend() if backend == "process" else LocalBackend(),
    ) as swarm:
        started = time.perf_counter()
        await swarm.run([Task("burst", n_each) for _ in AGENTS])
        seconds = time.perf_counter() - started
        stats = swarm.messages.statistics()
    if stats.delivered != n_each * len(AGENTS) or stats.hops != _hops(kind, n_each):
        raise RuntimeError(f"{kind}/{backend}: {stats}; expected {_hops(kind, n_each)} hops")
    return seconds, stats.hops


async def asyncio_peer(kind: str, n_each: int) -> float:
    routes = Routes(TopologySettings(kind), AGENTS)
    queues = {a: asyncio.Queue[Any]() for a in AGENTS}
    remaining = n_each * len(AGENTS)
    done = asyncio.get_running_loop().create_future()

    async def worker(me: str) -> None:
        nonlocal remaining
        queue = queues[me]
        while True:
            payload = await queue.get()
            if me == RECEIVER:
                remaining -= 1
                if remaining == 0:
                    done.set_result(None)
            else:
                queues[routes.next_hop(me, RECEIVER)].put_nowait(payload)

    workers = [asyncio.create_task(worker(a)) for a in AGENTS]
    started = time.perf_counter()
    for a in AGENTS:
        for _ in range(n_each):
            queues[a if a == RECEIVER else routes.next_hop(a, RECEIVER)].put_nowait(PAYLOAD)
    await done
    seconds = time.perf_counter() - started
    for w in workers:
        w.cancel()
    return seconds


def _echo(conn: Connection) -> None:
    while True:
        data = conn.recv_bytes()
        if not data:
            return
        conn.send_bytes(data)


def pipe_peer(hops: int) -> float:
    ctx = multiprocessing.get_context("forkserver")
    parent, child = ctx.Pipe()
    worker = ctx.Process(target=_echo, args=(child,), daemon=True)
    worker.start()
    parent.send_bytes(PAYLOAD)
    parent.recv_bytes()
    started = time.perf_counter()
    for _ in range(hops):
        parent.send_bytes(PAYLOAD)
        parent.recv_bytes()
    seconds = time.perf_counter() - started
    parent.send_bytes(b"")
    worker.join()
    return seconds


def main() -> None:
    settings = parse_args(__doc__ or "", n=40_000, repeats=5, quick_n=8_000, quick_repeats=3)
    n_each = max(settings.n // len(AGENTS), 1)
    figures: dict[str, Any] = {"benchmark": "messaging", "quick": settings.quick}
    for backend in ("local", "process"):
        for kind in ("mesh", "ring"):
            per_hop: list[float] = []
            peer: list[float] = []
            for _ in range(settings.repeats):
                seconds, hops = asyncio.run(ours(kind, n_each, backend))
                per_hop.append(seconds / hops * 1e6)
                peer_seconds = (
                    asyncio.run(asyncio_peer(kind, n_each))
                    if backend == "local"
                    else pipe_peer(hops)
                )
                peer.append(peer_seconds / hops * 1e6)
            key = f"{backend}_{kind}"
            figures[f"{key}_us_per_hop"] = round(median(per_hop), 3)
            figures[f"{key}_peer_us_per_hop"] = round(median(peer), 3)
            figures[f"{key}_ratio"] = round(median(per_hop) / median(peer), 2)
            figures[f"{key}_hops"] = _hops(kind, n_each)
            log(f"{key}: {median(per_hop):.2f} µs a hop, peer {median(peer):.2f}")
    figures["settings"] = {
        "messages": n_each * len(AGENTS),
        "agents": len(AGENTS),
        "payload_bytes": len(PAYLOAD),
        "repeats": settings.repeats,
        "local_peer": "asyncio.Queue per agent, a coroutine forwarding along the same routes",
        "process_peer": "a multiprocessing Pipe round trip to a worker per hop (forkserver)",
        "python": python_version(),
    }
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    emit(figures)


if __name__ == "__main__":
    main()

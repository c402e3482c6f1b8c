"""Messages between agents: a handler sends, the topology routes, every hop runs on an agent.

A handler calls `agent.send(to, kind, payload)`. The message goes to `to` along the route
the swarm's topology gives (`swarmperf.routing`): at each agent on the way the built-in
`relay` handler runs with the payload and hands back what it received, and the next hop is
chosen there, from the topology in force at that moment; at `to`, the handler `kind` runs
with the payload, as a follow-up task on that agent. Every hop is a task a backend really
runs (a pipe round trip on `process`, modelled time on `sim`), so a relay costs the agent
that forwards, and a topology changed while messages travel re-routes them from wherever
they are: none is lost or delivered twice.

Message tasks go to their agent straight through the backend, beside the coordinator's
tasks: they are an agent's mail, not work the balancer places (nor holds: a paused swarm
still delivers what is on its way). The swarm counts every
message by sender, receiver and bytes (its communication matrix) and every hop by link.
A swarm that sends no messages pays one empty-dict test per finished batch.
"""

from __future__ import annotations

import pickle
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from swarmperf.core.model import Task
from swarmperf.routing import Routes, TopologySettings
from swarmperf.runtime.backend import Done

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

RELAY: Final = "relay"  # the built-in handler that forwards a message (`core.handlers.relay`)
DENSE_AGENTS: Final = 256  # a summary's matrix is dense up to this many agents...
PAIRS_KEPT: Final = 10_000  # ...and beyond, its busiest pairs


class Outbox(Protocol):
    """Where a backend hands the messages its agents' handlers send."""

    def __call__(
        self, sender: str, receiver: str, kind: str, payload: Any, size: int | None = None
    ) -> None: ...


class Send(NamedTuple):
    """One message a finished task sends: to `receiver`, handled there as `kind`.
    `size` is its bytes (None: the payload pickled); `cost` the receiver's work in
    seconds, as a task's `cost` (what a simulated receiver takes)."""

    receiver: str
    kind: str
    payload: Any = None
    size: int | None = None
    cost: float | None = 0.0


# What a task that finished well on an agent sends besides what its handler sent:
# `traffic(agent_id, task, delivered)`, `delivered` telling a message that arrived from a
# task of the swarm's. How a spec's message pattern, or a simulation, makes traffic.
Traffic = Callable[[str, Task, bool], Iterable[Send]]
# Seconds a hop from one agent to another takes for a message of `size` bytes (the sim's
# model of a link); real backends take the time it takes.
LinkDelay = Callable[[str, str, int], float]
# Run a callable that many seconds from now, on the driver's clock (the sim's engine).
Later = Callable[[float, Callable[[], None]], None]
# A message that arrived, or failed on its way: what `on_delivery` listeners get.
DeliveryListener = Callable[["Delivery"], None]


def payload_size(payload: Any) -> int:
    """A payload's size in bytes as it would travel between processes: pickled."""
    try:
        return len(pickle.dumps(payload, pickle.HIGHEST_PROTOCOL))
    except Exception:  # in-process only (a lock, a generator): its size in memory
        return sys.getsizeof(payload)


@dataclass(slots=True, eq=False)
class _Message:
    id: int
    sender: str
    receiver: str
    kind: str
    payload: Any
    size: int
    sent_at: float
    cost: float | None
    at: str  # the agent holding it: the last one that ran it, or its sender
    generation: int  # the topology's generation when it was sent
    hops: int = 0
    rerouted: bool = False
    # On a modelled link with a receive cost: the hop's task, run once the agent it
    # reached has done its receive work.
    then: Task | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message's end: delivered (`error` None, `value` what the receiver's handler
    returned) or failed on the way (`error` says where and why)."""

    message_id: int
    sender: str
    receiver: str
    kind: str
    hops: int
    size: int
    sent_at: float
    ended_at: float
    error: str | None
    value: Any
    rerouted: bool

    @property
    def latency(self) -> float:
        return self.ended_at - self.sent_at


@dataclass(frozen=True, slots=True)
class MessageStatistics:
    """Counts since the swarm started; `in_flight` is now."""

    sent: int
    delivered: int
    failed: int  # a hop's handler failed (the receiver's, or a relay's)
    dropped: int  # no route: the receiver is not, or no longer, an agent of the swarm
    in_flight: int
    hops: int  # transfers from one agent to the next
    relayed: int  # hops that ended at a relay, which forwarded the message
    rerouted: int  # messages on their way when the topology changed
    bytes: int  # payload bytes sent, counted once per message
    topology: str
    connections: int
    drop_reasons: dict[str, int] = field(default_factory=dict)
    # Seconds from send to delivery, over delivered messages (None: none delivered).
    latency_mean: float | None = None
    latency_max: float | None = None


@dataclass(frozen=True, slots=True)
class CommunicationMatrix:
    """Who talked to whom. Row i, column j: from `agents[i]` to `agents[j]`.

    `messages` and `bytes` count messages by their sender and final receiver (the
    workload's own traffic, whatever the topology); `links` and `link_bytes` count the hops
    between adjacent agents (what the topology made of it); `relayed` is how many
    messages each agent forwarded.
    """

    agents: tuple[str, ...]
    messages: npt.NDArray[np.int64]
    bytes: npt.NDArray[np.int64]
    links: npt.NDArray[np.int64]
    link_bytes: npt.NDArray[np.int64]
    relayed: npt.NDArray[np.int64]

    def to_dict(self) -> dict[str, Any]:
        return {
            "agents": list(self.agents),
            "messages": self.messages.tolist(),
            "bytes": self.bytes.tolist(),
            "links": self.links.tolist(),
            "link_bytes": self.link_bytes.tolist(),
            "relayed": self.relayed.tolist(),
        }


class MessageBus:
    """Routes agents' messages over a topology and counts them; one per swarm.

    `run` starts tasks on agents (the backend's `run`); `clock` reads the swarm's clock.
    With `delay` and `later` (virtual time), each hop reaches its agent `delay(a, b, size)`
    seconds after it leaves the last one, each relay costs its agent `relay_cost`
    seconds of work, and each arrival `receive_cost` seconds of the work of the agent it
    reaches, before its relay or handler (a `relay` task of that cost, in turn with the
    agent's other work); without them, a hop takes what the backend takes. With `traffic`,
    each message delivered sends what it says, and so does each task the shell reports
    with `handled`.
    """

    def __init__(
        self,
        run: Callable[[Sequence[tuple[str, Task]]], None],
        clock: Callable[[], float],
        topology: TopologySettings | None = None,
        *,
        delay: LinkDelay | None = None,
        later: Later | None = None,
        relay_cost: float | None = None,
        receive_cost: float | None = None,
        traffic: Traffic | None = None,
    ) -> None:
        if (delay is None) != (later is None):
            raise ValueError("Give both `delay` and `later`, or neither.")
        self._run = run
        self._clock = clock
        self._delay = delay
        self._later = later
        self.relay_cost = relay_cost
        self.receive_cost = receive_cost or 0.0
        self.traffic = traffic
        self.topology = topology if topology is not None else TopologySettings()
        # Made again when first needed after the agents or the topology change: a swarm
        # of many agents joins one at a time, and one that sends nothing never routes.
        self._routes: Routes | None = None
        self.generation = 0
        # Message tasks given to an agent and not yet reported, by task id. Messages on a
        # modelled link are in `_on_links` until they reach their agent.
        self.pending: dict[str, tuple[Task, _Message]] = {}
        self._on_links = 0
        self._members: list[str] = []  # in the order they joined: the topology's order
        self._member_set: set[str] = set()
        self._seen: dict[str, int] = {}  # every agent that ever joined -> its matrix index
        self._messages: Counter[tuple[int, int]] = Counter()
        self._bytes: Counter[tuple[int, int]] = Counter()
        self._links: Counter[tuple[int, int]] = Counter()
        self._link_bytes: Counter[tuple[int, int]] = Counter()
        self._relayed: Counter[int] = Counter()
        self._drops: Counter[str] = Counter()
        self._listeners: list[DeliveryListener] = []
        self._next_id = 0
        self.sent = self.delivered = self.failed = self.hops = self.rerouted = 0
        self.bytes_sent = 0
        self._latency_sum = 0.0
        self._latency_max = 0.0

    # -- membership and topology --------------------------------------------------------

    @property
    def routes(self) -> Routes:
        """The topology laid over the agents now."""
        if self._routes is None:
            self._routes = Routes(self.topology, self._members)
        return self._routes

    def join(self, agent_id: str) -> None:
        if agent_id not in self._seen:
            self._seen[agent_id] = len(self._seen)
        if agent_id not in self._member_set:
            self._members.append(agent_id)
            self._member_set.add(agent_id)
            self._routes = None

    def leave(self, agent_id: str) -> None:
        if agent_id in self._member_set:
            self._members.remove(agent_id)
            self._member_set.discard(agent_id)
            self._routes = None

    def set_topology(self, topology: TopologySettings) -> TopologySettings:
        """Route by `topology` from now on, messages on their way included (from the
        agent each is at); return the topology replaced."""
        previous = self.topology
        self.topology = topology
        self._routes = None
        self.generation += 1
        return previous

    def on_delivery(self, listener: DeliveryListener) -> None:
        """Call `listener` with every message that arrived or failed."""
        self._listeners.append(listener)

    @property
    def idle(self) -> bool:
        return not self.pending and not self._on_links

    # -- sending ------------------------------------------------------------------------

    def post(
        self,
        sender: str,
        receiver: str,
        kind: str,
        payload: Any,
        size: int | None = None,
        cost: float | None = None,
    ) -> None:
        """`sender` sends `payload` to `receiver`, to be handled there as `kind`. `size`
        is its bytes when the backend already knows them (it pickled the payload);
        `cost` its estimated work, for a simulated receiver."""
        if size is None:
            size = payload_size(payload)
        self._next_id += 1
        message = _Message(
            self._next_id,
            sender,
            receiver,
            kind,
            payload,
            size,
            self._clock(),
            cost,
            sender,
            self.generation,
        )
        s, r = self._index(sender), self._index(receiver)
        self.sent += 1
        self.bytes_sent += size
        self._messages[s, r] += 1
        self._bytes[s, r] += size
        self._forward(message)

    def _index(self, agent_id: str) -> int:
        index = self._seen.get(agent_id)
        if index is None:  # a receiver that never joined: counted all the same
            index = self._seen[agent_id] = len(self._seen)
        return index

    def _forward(self, message: _Message) -> None:
        """Send `message` one hop on from the agent it is at, by the topology now."""
        routes = self.routes
        receiver = message.receiver
        if receiver not in routes:
            self._drop(message, "the receiver is not an agent of the swarm")
            return
        at = message.at
        # A holder that left meanwhile (its sender, removed) hands it on directly.
        hop = routes.next_hop(at, receiver) if at in routes else receiver
        if message.generation != self.generation:
            if not message.rerouted:
                self.rerouted += 1
            message.rerouted = True
            message.generation = self.generation
        if hop != at:  # a message to oneself is handled where it is: no hop
            a, b = self._index(at), self._index(hop)
            self.hops += 1
            self._links[a, b] += 1
            self._link_bytes[a, b] += message.size
            message.hops += 1
        final = hop == receiver
        task = Task(
            message.kind if final else RELAY,
            message.payload,
            id=f"m{message.id}.{message.hops}",
            cost=message.cost if final else self.relay_cost or 0.0,
        )
        if self._later is None or self._delay is None or hop == at:
            self.pending[task.id] = (task, message)
            self._run([(hop, task)])
            return
        self._on_links += 1
        seconds = self._delay(at, hop, message.size)
        self._later(seconds, lambda: self._arrive(message, hop, task))

    def _arrive(self, message: _Message, hop: str, task: Task) -> None:
        """A modelled hop reached `hop`: it runs there, or, if `hop` left meanwhile, the
        message goes on from where it was."""
        self._on_links -= 1
        if hop not in self.routes:
            self._forward(message)
            return
        if self.receive_cost > 0:
            message.then = task
            task = Task(RELAY, message.payload, id=f"{task.id}r", cost=self.receive_cost)
        self.pending[task.id] = (task, message)
        self._run([(hop, task)])

    # -- what agents report -------------------------------------------------------------

    def take_done(self, agent_id: str, done: Sequence[Done]) -> list[Done]:
        """Handle the message tasks among `done` (forward, or deliver); return the rest."""
        rest: list[Done] = []
        for entry in done:
            message = self._take(entry[0])
            if message is None:
                rest.append(entry)
            else:
                self._hop_done(agent_id, message, entry)
        return rest

    def _take(self, task: Task) -> _Message | None:
        """The message `task` carries, no longer pending; None for any other task (one
        of the coordinator's, whatever its id)."""
        found = self.pending.get(task.id)
        if found is None or found[0] is not task:
            return None
        del self.pending[task.id]
        return found[1]

    def task_done(
        self, agent_id: str, task: Task, finished: float, error: str | None, value: Any
    ) -> bool:
        """`take_done` for one task; False when it is not a message's."""
        message = self._take(task)
        if message is None:
            return False
        self._hop_done(agent_id, message, (task, finished, finished, error, value))
        return True

    def take_lost(self, agent_id: str, in_flight: list[Task]) -> list[Task]:
        """`agent_id` died (call `leave` first): its messages go on from where they were
        before they reached it; return its other tasks."""
        rest: list[Task] = []
        for task in in_flight:
            message = self._take(task)
            if message is None:
                rest.append(task)
                continue
            message.then = None  # received or not, the hop starts again
            if message.receiver == agent_id:
                self._drop(message, "the receiver was lost")
            else:
                self._forward(message)
        return rest

    def _hop_done(self, agent_id: str, message: _Message, entry: Done) -> None:
        task, _, finished, error, value = entry
        then, message.then = message.then, None
        if then is not None and error is None:  # received: now its relay or handler
            self.pending[then.id] = (then, message)
            self._run([(agent_id, then)])
            return
        if error is not None:
            self.failed += 1
            where = "" if agent_id == message.receiver else f" (relaying at {agent_id})"
            self._end(message, finished, f"{error}{where}", None)
        elif task.kind == RELAY and agent_id != message.receiver:
            self._relayed[self._index(agent_id)] += 1
            message.at = agent_id
            message.payload = value  # what the relay received is what it passes on
            self._forward(message)
        else:
            self.delivered += 1
            latency = finished - message.sent_at
            self._latency_sum += latency
            if latency > self._latency_max:
                self._latency_max = latency
            self._end(message, finished, None, value)
            if self.traffic is not None:
                self._react(agent_id, task, True)

    def handled(self, agent_id: str, task: Task) -> None:
        """`task`, one of the swarm's, finished well on `agent_id`: send what the
        traffic says it sends (nothing without traffic)."""
        if self.traffic is not None:
            self._react(agent_id, task, False)

    def _react(self, agent_id: str, task: Task, delivered: bool) -> None:
        assert self.traffic is not None
        for send in self.traffic(agent_id, task, delivered):
            self.post(agent_id, send.receiver, send.kind, send.payload, send.size, send.cost)

    def _drop(self, message: _Message, reason: str) -> None:
        self._drops[reason] += 1
        self._end(message, self._clock(), f"dropped: {reason}", None)

    def _end(self, message: _Message, ended: float, error: str | None, value: Any) -> None:
        if not self._listeners:
            return
        delivery = Delivery(
            message.id,
            message.sender,
            message.receiver,
            message.kind,
            message.hops,
            message.size,
            message.sent_at,
            ended,
            error,
            value,
            message.rerouted,
        )
        for listener in self._listeners:
            listener(delivery)

    # -- figures ------------------------------------------------------------------------

    def statistics(self) -> MessageStatistics:
        return MessageStatistics(
            sent=self.sent,
            delivered=self.delivered,
            failed=self.failed,
            dropped=sum(self._drops.values()),
            in_flight=len(self.pending) + self._on_links,
            hops=self.hops,
            relayed=sum(self._relayed.values()),
            rerouted=self.rerouted,
            bytes=self.bytes_sent,
            topology=self.topology.describe(),
            connections=self.routes.connections(),
            drop_reasons=dict(self._drops),
            latency_mean=self._latency_sum / self.delivered if self.delivered else None,
            latency_max=self._latency_max if self.delivered else None,
        )

    def summary(self) -> dict[str, Any]:
        """The statistics and the communication matrix as plain JSON-able data: dense up
        to `DENSE_AGENTS` agents, beyond that the `PAIRS_KEPT` busiest sender -> receiver
        pairs as [sender index, receiver index, messages, bytes], so a report stays small."""
        import numpy as np  # as in `matrix`

        matrix = self.matrix()
        if len(matrix.agents) <= DENSE_AGENTS:
            shown = matrix.to_dict()
        else:
            counts = matrix.messages
            nonzero = np.flatnonzero(counts)
            kept = nonzero[np.argsort(counts.flat[nonzero], kind="stable")[::-1][:PAIRS_KEPT]]
            rows, cols = np.unravel_index(kept, counts.shape)
            shown = {
                "agents": list(matrix.agents),
                "pairs": [
                    [int(i), int(j), int(counts[i, j]), int(matrix.bytes[i, j])]
                    for i, j in zip(rows, cols, strict=True)
                ],
                "pairs_total": len(nonzero),
                "relayed": matrix.relayed.tolist(),
            }
        return {**asdict(self.statistics()), "matrix": shown}

    def matrix(self) -> CommunicationMatrix:
        """The communication matrix over every agent that ever joined (or was sent to)."""
        # Imported here: every swarm imports this module, and numpy would be half the time
        # `import swarmperf` takes (`tests/test_public_api.py`).
        import numpy as np

        agents = tuple(self._seen)
        n = len(agents)

        def dense(counts: Counter[tuple[int, int]]) -> npt.NDArray[np.int64]:
            out = np.zeros((n, n), dtype=np.int64)
            for (i, j), count in counts.items():
                out[i, j] = count
            return out

        relayed = np.zeros(n, dtype=np.int64)
        for i, count in self._relayed.items():
            relayed[i] = count
        return CommunicationMatrix(
            agents,
            dense(self._messages),
            dense(self._bytes),
            dense(self._links),
            dense(self._link_bytes),
            relayed,
        )

"""The `ray` backend: each agent is a Ray actor, for swarms larger than one machine.

Ray's scheduler only places the actors; our load balancer still decides which agent runs
each task. An agent with concurrency 1 gets one actor call per `run` holding all its new
tasks (a batch), run one after the other; an agent with concurrency `c` > 1 gets one call
per task, and its actor (an async actor with `max_concurrency=c`) runs up to `c` at once:
async handlers on the actor's event loop, sync ones on `c` threads.

Every call is numbered in send order. Its result comes back through the call's future,
whose callback (on a Ray thread) hands it to the event loop: the loop never blocks on Ray.
When an actor dies (node loss, OOM, `ray.kill`), every call still outstanding fails with a
`RayActorError`; once all of them have come back, the tasks of the failed ones go back,
in send order, through `CompletionSink.agent_lost` and the swarm's retry, breaker and
restart machinery takes over. Nothing is lost and nothing is reported twice: a call's
tasks are reported either with its result or as lost, never both. Ray restarts nothing
on its own (`max_restarts=0`): the swarm's restart policy adds the agent again.

Per-task timeouts are kept the same way: a task that runs past its kind's bound gets its
actor killed (whatever its handler is doing: a sync handler cannot be interrupted), fails
with a TimeoutError, and the actor's other tasks go back as for any lost actor.

An agent is the coordinator's to give tasks only once its actor is up (the swarm adds it
after `add_agent` returns), so no task waits on an actor Ray cannot place. `node_of` says
which node each agent's actor runs on; `cluster_nodes` lists a cluster's nodes; `connect`
asks the head before `ray.init`, so that a cluster wanting a token, or an address where
nothing listens, is a clear error at once rather than after Ray's retries.

This is the only module that imports Ray, and only when a backend is made, so the rest of
the package (and this module's settings classes) work without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import itertools
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from swarmperf.core.errors import AgentCrashed, BackendError, ConfigError
from swarmperf.core.handlers import AgentContext, Handler, HandlerRegistry
from swarmperf.core.model import AgentSpec, Task, TaskResult
from swarmperf.runtime.backend import (
    CompletionSink,
    Done,
    MeasuredTransfer,
    Watchdog,
    batches,
    timeout_error,
    timeout_for,
)
from swarmperf.runtime.messaging import Outbox

_now = time.perf_counter
INSTALL_FIX = "The ray backend needs Ray. Install it with: pip install 'swarmperf[ray]'"
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
# An actor call round trip on a local Ray, used until the first agent's pings measure one.
_DEFAULT_TRANSFER_COST = 1e-3
_PINGS = 3


def import_ray() -> Any:
    """The `ray` module, or a `ConfigError` saying what to install."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("backend", "ray", INSTALL_FIX) from exc
    return ray


# -- settings -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActorOptions:
    """What one agent's actor asks Ray for, and where it may run.

    `num_cpus`, `memory` (bytes) and `resources` (custom resources) are Ray resource
    requests; `num_cpus` None asks for 0 CPUs (Ray's own default would hold one CPU for
    the actor's lifetime as soon as any other resource is asked for), the others None
    ask for none. `node_id` pins the actor to a node (`soft`: elsewhere
    if that node cannot take it). `placement_group` names an entry of
    `RaySettings.placement_groups`; the actor then takes bundle `bundle` of it.
    """

    num_cpus: float | None = None
    memory: int | None = None
    resources: Mapping[str, float] = field(default_factory=dict)
    node_id: str | None = None
    soft: bool = False
    placement_group: str | None = None
    bundle: int = 0

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 0:
            raise ConfigError("ray.num_cpus", self.num_cpus, "Use a number >= 0.")
        if self.memory is not None and self.memory <= 0:
            raise ConfigError("ray.memory", self.memory, "Use a size > 0, e.g. 512MiB.")
        for name, amount in self.resources.items():
            if not amount >= 0:
                raise ConfigError(f"ray.resources[{name!r}]", amount, "Use a number >= 0.")
        if self.node_id is not None and self.placement_group is not None:
            raise ConfigError(
                "ray.node",
                self.node_id,
                "An actor is either pinned to a node or placed in a placement group; "
                "drop one of node and placement.",
            )
        if self.bundle < 0:
            raise ConfigError("ray.bundle", self.bundle, "Use an integer >= 0.")

    def bundle_resources(self) -> dict[str, float]:
        """The resources of this actor's bundle in a placement group."""
        bundle = {name: float(amount) for name, amount in self.resources.items() if amount}
        if self.num_cpus:
            bundle["CPU"] = float(self.num_cpus)
        if self.memory:
            bundle["memory"] = float(self.memory)
        return bundle


@dataclass(frozen=True, slots=True)
class PlacementGroupSettings:
    """A Ray placement group: one bundle per agent, placed together by `strategy`."""

    strategy: str
    bundles: tuple[Mapping[str, float], ...]

    def __post_init__(self) -> None:
        if self.strategy not in PLACEMENT_STRATEGIES:
            raise ConfigError(
                "ray.placement", self.strategy, f"Use one of: {', '.join(PLACEMENT_STRATEGIES)}."
            )
        if not self.bundles or not all(self.bundles):
            raise ConfigError(
                "ray.placement",
                self.strategy,
                "A placement group reserves resources: give the group num_cpus, memory or "
                "resources.",
            )


@dataclass(frozen=True, slots=True)
class RaySettings:
    """How to reach Ray and what each agent's actor asks for.

    `address` is a Ray address (`ray://host:10001`, `host:6379` or `auto`); None starts a
    local Ray with this process (or uses the one already connected). `agents` holds the
    options by agent id; agents not in it get `default`. `start_timeout` bounds how long
    an actor or placement group may wait for room in the cluster.
    """

    address: str | None = None
    namespace: str | None = None
    agents: Mapping[str, ActorOptions] = field(default_factory=dict)
    default: ActorOptions = ActorOptions()
    placement_groups: Mapping[str, PlacementGroupSettings] = field(default_factory=dict)
    start_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not self.start_timeout > 0:
            raise ConfigError("ray.start_timeout", self.start_timeout, "Use a duration > 0.")
        for agent_id, options in self.agents.items():
            group = options.placement_group
            if group is None:
                continue
            settings = self.placement_groups.get(group)
            if settings is None:
                raise ConfigError(
                    f"ray.agents[{agent_id!r}].placement_group",
                    group,
                    f"Define it in placement_groups: {sorted(self.placement_groups)}.",
                )
            if options.bundle >= len(settings.bundles):
                raise ConfigError(
                    f"ray.agents[{agent_id!r}].bundle",
                    options.bundle,
                    f"Placement group {group!r} has {len(settings.bundles)} bundles.",
                )

    def options_for(self, agent_id: str) -> ActorOptions:
        return self.agents.get(agent_id, self.default)


@dataclass(frozen=True, slots=True)
class ActorPlacement:
    """Where an agent's actor runs."""

    agent: str
    node_id: str
    node_ip: str
    pid: int
    actor_id: str


@dataclass(frozen=True, slots=True)
class NodeFigures:
    """What the agents on one node did: task counts and service times (seconds)."""

    node_id: str
    node_ip: str
    agents: tuple[str, ...]
    tasks: int
    failed: int
    mean_service: float | None
    p95_service: float | None


def node_figures(
    results: Sequence[TaskResult], placements: Mapping[str, ActorPlacement]
) -> list[NodeFigures]:
    """Per-node figures of a run: results grouped by the node their agent's actor ran on.

    Results of agents with no known placement are left out (an agent that never started).
    """
    by_node: dict[str, list[TaskResult]] = {}
    agents: dict[str, set[str]] = {}
    for placement in placements.values():
        agents.setdefault(placement.node_id, set()).add(placement.agent)
        by_node.setdefault(placement.node_id, [])
    for result in results:
        where = placements.get(result.agent) if result.agent is not None else None
        if where is not None:
            by_node[where.node_id].append(result)
    ips = {p.node_id: p.node_ip for p in placements.values()}
    figures: list[NodeFigures] = []
    for node_id, node_results in sorted(by_node.items()):
        times = np.array(
            [r.service_time for r in node_results if r.service_time is not None], dtype=float
        )
        figures.append(
            NodeFigures(
                node_id=node_id,
                node_ip=ips[node_id],
                agents=tuple(sorted(agents[node_id])),
                tasks=len(node_results),
                failed=sum(1 for r in node_results if not r.ok),
                mean_service=float(times.mean()) if times.size else None,
                p95_service=float(np.percentile(times, 95)) if times.size else None,
            )
        )
    return figures


@dataclass(frozen=True, slots=True)
class RayNode:
    """One node of a Ray cluster: its id (what `ray.groups.<id>.node` takes), address,
    whether it is alive and the head, and its resources, total and free (None: unknown)."""

    node_id: str
    address: str
    alive: bool
    head: bool
    total: Mapping[str, float]
    free: Mapping[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "address": self.address,
            "alive": self.alive,
            "head": self.head,
            "total": dict(self.total),
            "free": None if self.free is None else dict(self.free),
        }


def _useful(resources: Mapping[str, float]) -> dict[str, float]:
    """Resources a user asks for: without Ray's own markers (`node:<ip>`, the head's)."""
    return {
        name: float(amount)
        for name, amount in sorted(resources.items())
        if not name.startswith("node:")
    }


def _free_per_node() -> dict[str, dict[str, float]]:
    """Free resources by node id, read where Ray keeps them (the GCS). Ray has no public
    call for it (`ray.available_resources()` sums the cluster), so this is the developer
    API; it runs on a cluster worker when the driver is a Ray Client."""
    state: Any = importlib.import_module("ray._private.state")
    found: dict[str, dict[str, float]] = state.available_resources_per_node()
    return found


def free_per_node(ray: Any) -> dict[str, dict[str, float]] | None:
    """Free resources by node id on the connected cluster, or None if Ray will not say."""
    try:
        if ray.util.client.ray.is_connected():
            reader = ray.remote(num_cpus=0)(_free_per_node)
            found: dict[str, dict[str, float]] = ray.get(reader.remote(), timeout=30)
            return found
        return _free_per_node()
    except Exception:  # an older or newer Ray without it: callers fall back to the sum
        return None


def list_nodes(ray: Any) -> list[RayNode]:
    """Every node the connected cluster knows of, alive or dead, head first."""
    free = free_per_node(ray)
    nodes: list[RayNode] = []
    for info in ray.nodes():
        total = info.get("Resources") or {}
        node_id = str(info.get("NodeID", ""))
        alive = bool(info.get("Alive"))
        nodes.append(
            RayNode(
                node_id=node_id,
                address=str(info.get("NodeManagerAddress", "")),
                alive=alive,
                head="node:__internal_head__" in total,
                total=_useful(total),
                free=_useful(free.get(node_id, {})) if free is not None and alive else None,
            )
        )
    nodes.sort(key=lambda node: (not node.head, not node.alive, node.address, node.node_id))
    return nodes


def cluster_nodes(address: str | None = None, namespace: str | None = None) -> list[RayNode]:
    """The nodes of the Ray cluster at `address` (None: the one this machine belongs to,
    `auto`), connecting with the same checks as a swarm's run; raises `ConfigError` with
    the fix when it cannot connect."""
    ray = import_ray()
    if not ray.is_initialized():
        connect(ray, address or "auto", namespace, local=False)
    return list_nodes(ray)


def auth_mode() -> str:
    """This process's Ray authentication mode, from `RAY_AUTH_MODE` (Ray's own setting)."""
    return os.environ.get("RAY_AUTH_MODE", "").strip().lower() or "disabled"


TOKEN = "token"  # the head turns away calls without an authentication token
OPEN = "open"  # the head answers calls without one
UNREACHABLE = "unreachable"  # nothing answers at the address


def ask_head(address: str, timeout: float = 3.0) -> str | None:
    """How the Ray head at `address` (`host:port`, or `ray://host:port` for its Ray Client
    server) answers a call without an authentication token: `TOKEN`, `OPEN`,
    `UNREACHABLE`, or None when it cannot tell (no gRPC here, an address it cannot read).

    One gRPC call, answered in milliseconds: for a head that wants a token Ray itself
    retries for about 20 s and then says only that it could not connect, and for an address
    where nothing listens it waits minutes.
    """
    try:
        # Through importlib: typed as Any, since neither gRPC nor Ray's stubs carry types.
        grpc: Any = importlib.import_module("grpc")
        generated = "ray.core.generated."
        gcs_pb2: Any = importlib.import_module(generated + "gcs_service_pb2")
        gcs_grpc: Any = importlib.import_module(generated + "gcs_service_pb2_grpc")
        client_pb2: Any = importlib.import_module(generated + "ray_client_pb2")
        client_grpc: Any = importlib.import_module(generated + "ray_client_pb2_grpc")
    except ImportError:
        return None
    client = address.startswith("ray://")
    target = address.removeprefix("ray://")
    channel = grpc.insecure_channel(target)
    try:
        if client:
            request = client_pb2.ClusterInfoRequest(type=client_pb2.ClusterInfoType.PING)
            client_grpc.RayletDriverStub(channel).ClusterInfo(request, timeout=timeout)
        else:
            gcs = gcs_grpc.NodeInfoGcsServiceStub(channel)
            gcs.GetClusterId(gcs_pb2.GetClusterIdRequest(), timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return TOKEN
        if code == grpc.StatusCode.UNAVAILABLE:  # refused, or no such host
            return UNREACHABLE
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:  # a slow head, or a dropped packet
            return None
        return OPEN  # it answered, if not to this call: not a question of tokens
    except Exception:  # a malformed address, say: Ray's own connect says what is wrong
        return None
    finally:
        channel.close()
    return OPEN


AUTH_FIX = (
    "The Ray cluster uses token authentication (Ray turns it on when ~/.ray/auth_token "
    "exists on the head), and this process connects without it. Set RAY_AUTH_MODE=token "
    "here (and on every node that joins), with the cluster's token in ~/.ray/auth_token, "
    "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN; or start the cluster with RAY_AUTH_MODE=disabled."
)


def _token_on_disk() -> bool:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.exists(path)


def connect(ray: Any, address: str | None, namespace: str | None, *, local: bool) -> None:
    """`ray.init` for a swarm: `address` None starts a local Ray (with `local`). A failure
    is a `ConfigError` naming the likely cause, found at once by asking the head first:
    token authentication, when the cluster asks for a token this process does not send, or
    nothing listening at the address."""
    options: dict[str, Any] = {"namespace": namespace}
    if address is None and local:
        options["include_dashboard"] = False
    explicit = address not in (None, "auto")
    if explicit:
        assert address is not None
        answer = ask_head(address)
        if answer == TOKEN and auth_mode() != "token":
            raise ConfigError("ray.address", address, AUTH_FIX)
        if answer == UNREACHABLE:
            raise ConfigError(
                "ray.address",
                address,
                f"Nothing answers at {address!r}. Start the head with `ray start --head` and "
                "give the address it prints (the Ray Client's, ray://<head>:10001, from "
                "outside the cluster), check the host and port, or leave ray.address out to "
                "start a local Ray.",
            )
    try:
        _init(ray, address, options)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
        where = "a local Ray" if address is None else repr(address)
        if explicit and auth_mode() != "token" and _token_on_disk():
            fix = f"Could not connect to {where} ({_error(exc)}). Likely cause: {AUTH_FIX}"
        else:
            fix = (
                f"Could not connect to {where} ({_error(exc)}). Start a cluster with "
                "`ray start --head` and give the address it prints (ray://<head>:10001 or "
                "auto on a cluster node), or leave ray.address out to start a local Ray."
            )
        raise ConfigError("ray.address", address, fix) from exc


# The Ray Client's head starts a server process for each client; on a busy machine that
# start can fail once and succeed when asked again. The head says so in the first message,
# or sends the traceback of its own failure, which names the function that starts the
# server: that server can die as it is forked (ray-project/ray#63202), which the head then
# meets as a zombie process.
CLIENT_SERVER_FAILED = "Starting Ray client server failed"
CLIENT_SERVER_DIED = "start_specific_server"
CLIENT_START_ATTEMPTS = 3


def _init(ray: Any, address: str | None, options: dict[str, Any]) -> None:
    """`ray.init`, asked again (up to `CLIENT_START_ATTEMPTS` in all, 1 s then 2 s apart)
    when a Ray Client head failed to start this client's server: nothing else is retried."""
    for attempt in range(1, CLIENT_START_ATTEMPTS + 1):
        try:
            ray.init(address=address, **options)
            return
        except ConnectionError as exc:  # ConnectionAbortedError: the head's answer
            said = str(exc)
            failed = CLIENT_SERVER_FAILED in said or CLIENT_SERVER_DIED in said
            if not failed or attempt == CLIENT_START_ATTEMPTS:
                raise
            time.sleep(float(attempt))


# -- the actor ------------------------------------------------------------------------------


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# (starts, finishes, errors or None when all succeeded, values, messages or None), on the
# actor's clock. The messages are those its handlers sent since its last call returned:
# (receiver, kind, payload, pickled size), to the driver with the results, never after them.
_Message = tuple[str, str, Any, int]
_Results = tuple[
    list[float], list[float], list[str | None] | None, list[Any], list[_Message] | None
]


class AgentActor:
    """One agent, as a Ray actor. Runs the tasks of each call; handler errors fail tasks.

    Made an actor class by `ray.remote` in `RayBackend`; every method is async, so Ray runs
    it as an async actor with `max_concurrency` set to the agent's concurrency.
    """

    def __init__(self, spec: AgentSpec, handlers: Mapping[str, Handler], epoch: float) -> None:
        self._spec = spec
        self._registry = HandlerRegistry(handlers)
        self._table = {name: self._registry.resolve(name) for name in self._registry}
        self._outgoing: list[_Message] = []
        self._context = AgentContext.for_agent(spec, epoch, self._post)
        # Sync handlers of a concurrent agent run on threads, as in the process backend.
        self._pool = (
            ThreadPoolExecutor(spec.concurrency, thread_name_prefix=f"swarmperf-{spec.id}")
            if spec.concurrency > 1
            else None
        )

    async def hello(self) -> tuple[float, str, str, int, str]:
        """This actor's clock, node id, node IP, process id and actor id."""
        import ray

        context = ray.get_runtime_context()
        node_ip: Callable[[], str] = ray.util.get_node_ip_address
        return (
            _now(),
            context.get_node_id(),
            node_ip(),
            os.getpid(),
            context.get_actor_id() or "",
        )

    async def begin(self, epoch: float) -> None:
        """Count fault windows from `epoch` on this actor's clock."""
        self._context = AgentContext.for_agent(self._spec, epoch, self._post)

    def _post(self, sender: str, receiver: str, kind: str, payload: Any) -> None:
        # Ray pickles the payload again on the way back; this measures its bytes.
        size = len(pickle.dumps(payload, pickle.HIGHEST_PROTOCOL))
        self._outgoing.append((receiver, kind, payload, size))

    async def run(self, kinds: Sequence[str], payloads: Sequence[Any]) -> _Results:
        starts: list[float] = []
        finishes: list[float] = []
        errors: list[str | None] = []
        values: list[Any] = []
        failed = False
        context = self._context
        for kind, payload in zip(kinds, payloads, strict=True):
            started = _now()
            try:
                entry = self._table.get(kind)
                handler, is_async = entry if entry is not None else self._registry.resolve(kind)
                if is_async:
                    value = await handler(payload, context)
                elif self._pool is not None:
                    loop = asyncio.get_running_loop()
                    value = await loop.run_in_executor(self._pool, handler, payload, context)
                else:
                    value = handler(payload, context)
            except Exception as exc:  # a failing handler fails its task, not the actor
                failed = True
                starts.append(started)
                finishes.append(_now())
                errors.append(_error(exc))
                values.append(None)
                continue
            starts.append(started)
            finishes.append(_now())
            errors.append(None)
            values.append(value)
        sent = self._outgoing
        if sent:
            self._outgoing = []
        return starts, finishes, errors if failed else None, values, sent or None

    async def call(self, kind: str, payload: Any) -> Any:
        """Run one handler and return its value: a plain Ray call, for comparisons."""
        handler, is_async = self._registry.resolve(kind)
        value = handler(payload, self._context)
        return await value if is_async else value


# -- the driver side ------------------------------------------------------------------------


class _RayAgent:
    """The driver's record of one agent's actor."""

    __slots__ = (
        "calls",
        "closing",
        "dying",
        "exited",
        "failed",
        "handle",
        "id",
        "next_seq",
        "offset",
        "placement",
        "rejected",
        "running",
        "spec",
        "timed_out",
    )

    def __init__(self, spec: AgentSpec, handle: Any) -> None:
        self.id = spec.id
        self.spec = spec
        self.handle = handle
        self.calls: dict[int, list[Task]] = {}  # outstanding calls by number, in send order
        self.next_seq = 0
        self.offset = 0.0  # actor clock minus swarm clock
        self.closing = False
        self.dying: str | None = None  # why the actor is gone, while its calls come back
        self.failed: list[tuple[int, list[Task]]] = []  # calls that died with the actor
        self.rejected: list[Done] = []  # failed before leaving, reported on the next tick
        self.placement: ActorPlacement | None = None
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # For timeouts: since when each call has been among the `concurrency` oldest
        # outstanding ones (running by then, at the latest), and the one killed for it.
        self.running: dict[int, float] = {}
        self.timed_out: tuple[int, Task, float, float] | None = None

    def in_flight(self) -> list[Task]:
        """Every task given to this agent and not reported, in the order given."""
        lost = [t for _, tasks in sorted(self.failed, key=lambda call: call[0]) for t in tasks]
        return [done[0] for done in self.rejected] + lost


class RayBackend(MeasuredTransfer):
    """Agents as Ray actors: the same swarm across a Ray cluster.

    `settings` says where Ray is and what each agent's actor asks for. An agent whose
    spec leaves `prefetch` unset gets `default_prefetch` in a swarm. Handlers travel to
    the actors pickled (by reference for module-level functions, so their modules must be
    importable on every node; closures travel by value). If this backend connects to Ray,
    Ray stays up until the process exits, so that later runs start quickly.

    `timeouts` bounds a task's run time by kind (`""`: any other kind). A task that runs
    longer fails with a TimeoutError and its actor is killed and, under the swarm's restart
    policy, started again; the actor's other tasks go back to the queue. With timeouts each
    task is its own actor call, so that the driver knows which one runs long. A task's time
    is counted from when it became one of its agent's `concurrency` oldest outstanding
    calls, checked a few times per timeout: late by a fraction.
    """

    name: ClassVar[str] = "ray"
    # The prefetch of agents whose spec leaves it unset. Each actor call is a round trip
    # of a millisecond or more, so a task per call leaves the actor idle for most of it;
    # handing out tasks ahead of time spreads it over 1 + prefetch tasks, at the price of
    # binding them earlier (see docs/ray.md for both figures).
    default_prefetch: ClassVar[int] = 4

    def __init__(
        self, settings: RaySettings | None = None, timeouts: Mapping[str, float] | None = None
    ) -> None:
        self._ray = import_ray()
        self._outbox: Outbox | None = None
        self.settings = settings or RaySettings()
        self.timeouts = dict(timeouts) if timeouts else None
        self._watchdog = Watchdog(self.timeouts, self._watch) if self.timeouts else None
        self.transfer_cost = _DEFAULT_TRANSFER_COST
        self._agents: dict[str, _RayAgent] = {}
        self._placements: dict[str, ActorPlacement] = {}
        self._groups: dict[str, Any] = {}  # placement groups made, by name
        self._sink: CompletionSink | None = None
        self._handlers: dict[str, Handler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._actor_class: Any = None
        self._epoch = 0.0
        self._node_id = ""
        self._client = False

    # -- lifecycle ----------------------------------------------------------------------

    def attach_outbox(self, outbox: Outbox) -> None:
        """Hand the messages agents' handlers send to `outbox` (the swarm's message bus)."""
        self._outbox = outbox

    async def start(self, sink: CompletionSink, handlers: HandlerRegistry) -> None:
        ray = self._ray
        if not ray.is_initialized():
            self._connect()
        self._handlers = dict(handlers.items())
        self._sink = sink
        self._loop = asyncio.get_running_loop()
        self._epoch = _now()
        self._node_id = ray.get_runtime_context().get_node_id()
        # A Ray Client's driver runs on the head, not here: every actor's clock needs an
        # offset then, those on the head's node too.
        self._client = bool(ray.util.client.ray.is_connected())
        self._actor_class = ray.remote(AgentActor)
        if self._watchdog is not None:
            self._watchdog.start(self._loop)

    def _connect(self) -> None:
        connect(self._ray, self.settings.address, self.settings.namespace, local=True)

    def begin(self, epoch: float) -> None:
        self._epoch = epoch
        for agent in self._agents.values():
            if agent.dying is None:
                # Sent before any task, and Ray starts an actor's calls in send order.
                agent.handle.begin.remote(epoch + agent.offset)

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        agents = list(self._agents.values())
        self._agents.clear()
        for agent in agents:
            agent.closing = True
            self._kill(agent)
            agent.calls.clear()
            if not agent.exited.done():
                agent.exited.set_result(None)
        groups = list(self._groups.values())
        self._groups.clear()
        for group in groups:
            with contextlib.suppress(Exception):  # already gone with its cluster
                self._ray.util.remove_placement_group(group)

    # -- agents -------------------------------------------------------------------------

    def placement(self, agent_id: str) -> ActorPlacement:
        """Where `agent_id`'s actor runs (or last ran)."""
        placement = self._placements.get(agent_id)
        if placement is None:
            raise ConfigError("agent", agent_id, f"No agent called {agent_id!r} has started.")
        return placement

    def node_of(self, agent_id: str) -> tuple[str, str] | None:
        """The node id and address `agent_id`'s actor runs (or last ran) on, if it started."""
        placement = self._placements.get(agent_id)
        return None if placement is None else (placement.node_id, placement.node_ip)

    def placements(self) -> dict[str, ActorPlacement]:
        """Where each agent's actor runs or last ran, for per-node figures."""
        return dict(self._placements)

    def actor(self, agent_id: str) -> Any:
        """The Ray actor handle of a live agent (e.g. to `ray.kill` it in a drill)."""
        return self._agent(agent_id).handle

    async def add_agent(self, spec: AgentSpec) -> None:
        if self._sink is None or self._loop is None:
            raise BackendError("Call RayBackend.start() before adding agents.")
        if spec.id in self._agents:
            raise ConfigError("agent.id", spec.id, "Agent ids must be unique in a swarm.")
        options = self.settings.options_for(spec.id)
        ray_options = await self._actor_options(spec, options)
        try:
            handle = self._actor_class.options(**ray_options).remote(
                spec, self._handlers, self._epoch
            )
        except Exception as exc:  # e.g. a handler that cannot be pickled
            raise ConfigError(
                "handlers",
                sorted(self._handlers),
                f"Could not send the handlers to a Ray actor ({_error(exc)}). Handlers must "
                "be picklable: module-level functions, or closures over picklable values.",
            ) from exc
        agent = _RayAgent(spec, handle)
        # Registered before the actor is up, so that a caller that binds tasks to it now
        # has them queued by Ray until the actor is ready (the swarm binds none before).
        self._agents[spec.id] = agent
        try:
            async with asyncio.timeout(self.settings.start_timeout):
                await self._hello(agent)
        except BaseException as exc:
            reason = self._start_failure(exc, options)
            if agent.dying is None:
                agent.dying = reason
                self._kill(agent)
                if not agent.calls:
                    self._settle(agent)
            await asyncio.shield(agent.exited)
            if isinstance(exc, TimeoutError | self._ray.exceptions.RayError):
                raise AgentCrashed(spec.id, reason) from None
            raise

    def _start_failure(self, exc: BaseException, options: ActorOptions) -> str:
        if isinstance(exc, TimeoutError):
            return (
                f"Ray could not place its actor within {self.settings.start_timeout:g}s "
                f"(asked for {self._asked(options)}; free: {self._free()}). "
                "Lower the group's num_cpus/memory/resources, fix its node, or add nodes."
            )
        if isinstance(exc, self._ray.exceptions.RayError):
            return f"its actor could not start: {_first_line(exc)}"
        return f"its start was interrupted ({_error(exc)})"

    def _free(self) -> str:
        """What each node has free, for placement errors: a sum over the cluster would hide
        that the node an actor is pinned to is full."""
        per_node = free_per_node(self._ray)
        if per_node is None:
            return f"{_useful(self._ray.available_resources())} in the whole cluster"
        shown = [
            f"node {node_id[:12]}: {_short(_useful(free))}"
            for node_id, free in sorted(per_node.items())
        ]
        return "; ".join(shown) or "no live node"

    @staticmethod
    def _asked(options: ActorOptions) -> str:
        parts = [f"num_cpus={options.num_cpus or 0:g}"]
        if options.memory is not None:
            parts.append(f"memory={options.memory}")
        parts += [f"{name}={amount:g}" for name, amount in options.resources.items()]
        if options.node_id is not None:
            parts.append(f"node={options.node_id}{' (soft)' if options.soft else ''}")
        if options.placement_group is not None:
            parts.append(f"placement group {options.placement_group}[{options.bundle}]")
        return ", ".join(parts) or "Ray's default resources"

    async def _actor_options(self, spec: AgentSpec, options: ActorOptions) -> dict[str, Any]:
        ray = self._ray
        result: dict[str, Any] = {
            "max_concurrency": spec.concurrency,
            # The swarm restarts agents through its own policy and retries their tasks.
            "max_restarts": 0,
            "max_task_retries": 0,
            "name": None,
        }
        # Always explicit: left out, Ray would hold a CPU for the actor's whole life once it
        # asks for any other resource (and one to place it in any case).
        result["num_cpus"] = options.num_cpus or 0
        if options.memory is not None:
            result["memory"] = options.memory
        if options.resources:
            result["resources"] = dict(options.resources)
        strategies = ray.util.scheduling_strategies
        if options.node_id is not None:
            try:
                result["scheduling_strategy"] = strategies.NodeAffinitySchedulingStrategy(
                    node_id=options.node_id, soft=options.soft
                )
            except ValueError:
                raise ConfigError(
                    f"ray.groups[{spec.id}].node",
                    options.node_id,
                    "Use a node id in hex, as `ray list nodes` or ray.nodes() shows it.",
                ) from None
        elif options.placement_group is not None:
            group = await self._placement_group(options.placement_group)
            result["scheduling_strategy"] = strategies.PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_bundle_index=options.bundle
            )
        return result

    async def _placement_group(self, name: str) -> Any:
        group = self._groups.get(name)
        if group is not None:
            return group
        settings = self.settings.placement_groups[name]
        util = self._ray.util
        group = util.placement_group(
            [dict(b) for b in settings.bundles], strategy=settings.strategy
        )
        try:
            async with asyncio.timeout(self.settings.start_timeout):
                await group.ready()
        except TimeoutError:
            util.remove_placement_group(group)
            raise BackendError(
                f"Ray could not place placement group {name!r} ({settings.strategy}, bundles "
                f"{[dict(b) for b in settings.bundles]}) within "
                f"{self.settings.start_timeout:g}s; free: {self._free()}. Ask for less, use a "
                "softer strategy (pack or spread), or add nodes."
            ) from None
        existing = self._groups.setdefault(name, group)
        if existing is not group:  # another agent of the group made it meanwhile
            util.remove_placement_group(group)
        return existing

    async def _hello(self, agent: _RayAgent) -> None:
        """Ping the new actor: where it runs, its clock, and the transfer cost."""
        best: tuple[float, float, float] | None = None  # rtt, sent, actor time
        info: tuple[float, str, str, int, str] | None = None
        for _ in range(_PINGS):
            sent_at = _now()
            info = await agent.handle.hello.remote()
            rtt = _now() - sent_at
            if best is None or rtt < best[0]:
                best = (rtt, sent_at, info[0])
        assert best is not None
        assert info is not None
        _, node_id, node_ip, pid, actor_id = info
        agent.placement = ActorPlacement(agent.id, node_id, node_ip, pid, actor_id)
        self._placements[agent.id] = agent.placement
        rtt, sent_at, actor_time = best
        if node_id != self._node_id or self._client:
            # Another machine's monotonic clock (a Ray Client's driver is on none of the
            # cluster's nodes): estimate the offset from the best ping.
            agent.offset = actor_time - (sent_at + rtt / 2)
            agent.handle.begin.remote(self._epoch + agent.offset)
        self._observe_transfer(rtt)

    async def remove_agent(self, agent_id: str) -> None:
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        agent.closing = True
        self._retire_if_idle(agent)
        await asyncio.shield(agent.exited)

    def _agent(self, agent_id: str) -> _RayAgent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise ConfigError("agent", agent_id, f"No live agent is called {agent_id!r}.")
        return agent

    def running_tasks(self) -> dict[str, list[Task]]:
        """Every task given to each actor and not yet reported (its calls outstanding)."""
        running: dict[str, list[Task]] = {}
        for agent_id, agent in self._agents.items():
            tasks = agent.in_flight()
            for _, call in sorted(agent.calls.items()):
                tasks += call
            if tasks:
                running[agent_id] = tasks
        return running

    # -- tasks --------------------------------------------------------------------------

    def run(self, starts: Sequence[tuple[str, Task]]) -> None:
        checked = batches(starts, self._agents)
        for agent, tasks in checked:
            if agent.dying is not None:
                # Its death is being settled: these go back with the other lost tasks.
                agent.failed.append((agent.next_seq, tasks))
                agent.next_seq += 1
            elif agent.spec.concurrency == 1 and self.timeouts is None:
                self._call(agent, tasks)
            else:
                for task in tasks:
                    self._call(agent, [task])

    def _call(self, agent: _RayAgent, tasks: list[Task]) -> None:
        try:
            ref = agent.handle.run.remote([t.kind for t in tasks], [t.payload for t in tasks])
        except Exception as exc:  # a payload Ray cannot serialize
            if len(tasks) > 1:
                for task in tasks:
                    self._call(agent, [task])
                return
            self._reject(agent, tasks[0], exc)
            return
        seq = agent.next_seq
        agent.next_seq = seq + 1
        agent.calls[seq] = tasks
        ref.future().add_done_callback(functools.partial(self._from_ray, agent, seq))

    def _reject(self, agent: _RayAgent, task: Task, exc: Exception) -> None:
        assert self._loop is not None
        now = _now()
        error = f"{_error(exc)} (a task's payload must be serializable to reach a Ray actor)"
        if not agent.rejected:
            # Not now: run() is often called from inside the sink.
            self._loop.call_soon(self._report_rejected, agent)
        agent.rejected.append((task, now, now, error, None))

    def _report_rejected(self, agent: _RayAgent) -> None:
        done, agent.rejected = agent.rejected, []
        if done and self._sink is not None and self._agents.get(agent.id) is agent:
            self._sink.tasks_done(agent.id, done)
        self._retire_if_idle(agent)

    # -- results ------------------------------------------------------------------------

    def _from_ray(self, agent: _RayAgent, seq: int, future: Future[Any]) -> None:
        """On a Ray thread: hand the finished call to the event loop."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            loop.call_soon_threadsafe(self._on_result, agent, seq, future)

    def _on_result(self, agent: _RayAgent, seq: int, future: Future[Any]) -> None:
        if self._agents.get(agent.id) is not agent:
            return  # stopped, or its death already settled
        tasks = agent.calls.pop(seq, None)
        if tasks is None:
            return
        agent.running.pop(seq, None)
        exceptions = self._ray.exceptions
        try:
            starts, finishes, errors, values, sent = future.result()
        except exceptions.RayTaskError as exc:
            # The call itself failed in a live actor (e.g. an argument or a return value
            # it could not deserialize or serialize): its tasks fail, the agent carries on.
            now = _now()
            error = f"{_first_line(exc)} (in the Ray actor of {agent.id!r})"
            self._report(agent, [(t, now, now, error, None) for t in tasks])
        except Exception as exc:  # RayActorError and any other loss of the actor
            if agent.dying is None:
                agent.dying = f"Ray actor died: {_first_line(exc)}"
            timed_out = agent.timed_out
            if timed_out is not None and timed_out[0] == seq:
                # Killed for running long (had it finished after all, it would be above).
                _, task, since, limit = timed_out
                error = timeout_error(limit)
                self._report(agent, [(task, since, _now(), error, None)])
            else:
                agent.failed.append((seq, tasks))
        else:
            if sent and self._outbox is not None:
                for receiver, kind, payload, size in sent:
                    self._outbox(agent.id, receiver, kind, payload, size)
            offset = agent.offset
            if errors is None:
                errors = [None] * len(tasks)
            if offset:
                starts = [s - offset for s in starts]
                finishes = [f - offset for f in finishes]
            self._report(agent, list(zip(tasks, starts, finishes, errors, values, strict=True)))
        if agent.dying is not None:
            if not agent.calls:
                self._settle(agent)
        else:
            self._retire_if_idle(agent)

    def _report(self, agent: _RayAgent, done: list[Done]) -> None:
        if self._sink is not None:
            self._sink.tasks_done(agent.id, done)

    # -- timeouts -----------------------------------------------------------------------

    def _watch(self) -> None:
        """Kill each actor one of whose running tasks has run past its timeout."""
        assert self.timeouts is not None
        assert self._loop is not None
        now = _now()
        timeouts = self.timeouts
        for agent in list(self._agents.values()):
            if agent.dying is not None or agent.placement is None:
                continue  # going, or still starting (its calls wait in Ray meanwhile)
            # Ray starts an actor's calls in send order, up to `concurrency` at once.
            for seq in itertools.islice(agent.calls, agent.spec.concurrency):
                since = agent.running.setdefault(seq, now)
                task = agent.calls[seq][0]
                limit = timeout_for(timeouts, task.kind)
                if limit is None or now - since <= limit:
                    continue
                agent.timed_out = (seq, task, since, limit)
                why = f"task {task.id!r} ran past its timeout of {limit:g}s"
                agent.dying = f"its Ray actor was killed: {why}"
                self._kill(agent)
                break

    # -- exits --------------------------------------------------------------------------

    def _retire_if_idle(self, agent: _RayAgent) -> None:
        """A removed agent goes once all it was given has been reported."""
        if not agent.closing or agent.calls or agent.rejected or agent.dying is not None:
            return
        if self._agents.get(agent.id) is agent:
            del self._agents[agent.id]
        self._kill(agent)
        if not agent.exited.done():
            agent.exited.set_result(None)

    def _settle(self, agent: _RayAgent) -> None:
        """The actor is gone and all its calls are back: hand back what it had not done."""
        if self._agents.get(agent.id) is agent:
            del self._agents[agent.id]
        self._kill(agent)  # a lost actor may yet linger (e.g. unreachable): make sure
        reason = agent.dying or "Ray actor died"
        in_flight = agent.in_flight()
        agent.failed = []
        agent.rejected = []
        if not agent.exited.done():
            agent.exited.set_result(None)
        if (in_flight or not agent.closing) and self._sink is not None:
            self._sink.agent_lost(agent.id, in_flight, reason)

    def _kill(self, agent: _RayAgent) -> None:
        with contextlib.suppress(Exception):  # already dead, or its cluster is gone
            self._ray.kill(agent.handle, no_restart=True)


def _short(resources: Mapping[str, float]) -> str:
    """`{'CPU': 2.0, 'memory': 1e9}` as `CPU=2, memory=1e+09`."""
    return ", ".join(f"{name}={amount:g}" for name, amount in resources.items()) or "nothing"


def _first_line(exc: BaseException) -> str:
    """Ray's messages run over many lines (ids, pids, IPs): keep what says what and why."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    why = next((line for line in lines[1:] if "because" in line), None)
    if why is not None:
        text = f"{text} {why}"
    return f"{type(exc).__name__}: {text}".rstrip(": ")

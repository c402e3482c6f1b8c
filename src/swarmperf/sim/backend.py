"""The `sim` backend: agents that take virtual time, on a discrete-event engine.

Nothing runs: each started task gets a service time, and its completion is scheduled that
many virtual seconds later. By default a task takes what the built-in handlers would make
it take (`sleep` and `spin`: the payload in seconds times the agent's slowdown; `noop` and
`echo`: no time; `fail`: fails at once; another registered kind: its `cost`), with the
agent's fault windows counted from the start of the run (every kind but `noop` and `fail`
honours them, as the built-in handlers do); an `AgentModel` can give an agent its own
service-time distribution, one that sees each task (a `TaskServiceModel`) if the time
should follow the task's cost.
Like the `local` backend, an agent runs `concurrency` tasks at once and keeps the rest of
what it was given (its prefetch) in a first-in, first-out run queue.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from heapq import heappush
from typing import Any, ClassVar, Final

from swarmperf.balancing.agents import AgentState
from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.core.model import AgentSpec, Fault, Task
from swarmperf.runtime.backend import CompletionSink, Done
from swarmperf.sim.engine import Engine, Entry
from swarmperf.sim.models import AgentModel, ServiceModel, TaskServiceModel

# Kinds whose time is their payload in seconds, kinds that take no time, and kinds that
# fault windows leave alone (`fail` fails anyway; `noop` is the overhead floor).
_TIMED: Final = frozenset({"sleep", "spin"})
_INSTANT: Final = frozenset({"noop", "echo"})
_NO_FAULTS: Final = frozenset({"noop", "fail"})
_DEFAULT_MODEL = AgentModel()
# What a scheduled completion carries: (agent, task, started, error, value).
CompletionEntry = tuple["_SimAgent", Task, float, "str | None", Any]
# `task_done(agent_id, task, started, finished, error, value)`: a sink's one-task entry.
OneDone = Callable[[str, Task, float, float, "str | None", Any], None]


class _SimAgent:
    __slots__ = (
        "alive",
        "busy",
        "concurrency",
        "faults",
        "id",
        "queue",
        "retiring",
        "rng",
        "running",
        "scale",
        "service",
        "sized",
        "spec",
    )

    def __init__(self, spec: AgentSpec, model: AgentModel, rng: random.Random | None) -> None:
        self.spec = spec
        self.id = spec.id
        self.concurrency = spec.concurrency
        self.faults: tuple[Fault, ...] = spec.faults
        self.service: ServiceModel | None = model.service
        # Looked up once here: the isinstance check on a Protocol is too slow per task.
        self.sized: Callable[[Task, random.Random], float] | None = (
            model.service.sample_task if isinstance(model.service, TaskServiceModel) else None
        )
        # Seconds per second of nominal work: a service model already holds the agent's
        # slowness, so only the what-if speed applies to it.
        self.scale = (1.0 if model.service is not None else spec.slowdown) / model.speed
        self.rng = rng
        self.busy = 0  # tasks being served now, <= concurrency
        self.queue: deque[Task] = deque()  # given to the agent, waiting for a free worker
        # Being served, in the order they began: at most `concurrency` long, so a list
        # (removal by identity) beats a dict keyed by task id.
        self.running: list[Task] = []
        self.alive = True
        self.retiring = False


class SimBackend:
    """Agents in virtual time. Drive it with `swarmperf.sim.Simulation` (a `Swarm` arms
    its timers in real time), or from any loop that runs its `engine`.

    `models` gives agents (by id) their own `AgentModel`; others get `default`. `seed`
    seeds each agent's random stream (service draws and fault draws), which depends only
    on the seed and the agent's id, so an agent draws the same numbers whatever the others
    do: runs that differ in one setting stay comparable.
    """

    name: ClassVar[str] = "sim"

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        models: Mapping[str, AgentModel] | None = None,
        default: AgentModel | None = None,
        seed: int = 0,
    ) -> None:
        self.engine = engine if engine is not None else Engine()
        self._heap = self.engine._heap
        self._clock = self.engine.clock
        self._seq = self.engine._seq
        self._complete_one = self._complete  # one bound method for every completion
        self.transfer_cost = 0.0
        self.models = dict(models or {})
        self.default = default if default is not None else _DEFAULT_MODEL
        self.seed = seed
        self.started = 0  # attempts that began service
        self.completed = 0  # attempts that finished (not lost with their agent)
        self._agents: dict[str, _SimAgent] = {}
        self._rngs: dict[str, random.Random] = {}
        self._sink: CompletionSink | None = None
        self._one_done: OneDone | None = None
        self._handlers = HandlerRegistry()
        self._known: set[str] = set(self._handlers)
        self._unknown: dict[str, str] = {}
        self.epoch = 0.0

    def model_for(self, agent_id: str) -> AgentModel:
        return self.models.get(agent_id, self.default)

    # -- Backend ------------------------------------------------------------------------

    async def start(self, sink: CompletionSink, handlers: HandlerRegistry) -> None:
        self.attach(sink, handlers)

    async def stop(self) -> None:
        self.detach()

    async def add_agent(self, spec: AgentSpec) -> None:
        self.add_agent_now(spec)

    async def remove_agent(self, agent_id: str) -> None:
        self.remove_agent_now(agent_id)

    def begin(self, epoch: float) -> None:
        # Agents start in no virtual time, so `attach` already set this; kept for drivers.
        self.epoch = epoch

    def run(self, starts: Sequence[tuple[str, Task]]) -> None:
        agents = self._agents
        now = self.engine.clock.now
        for agent_id, task in starts:
            agent = agents[agent_id]
            if agent.busy < agent.concurrency:
                self._serve(agent, task, now)
            else:
                agent.queue.append(task)

    # -- the same, without awaiting: for drivers that own the loop ------------------------

    def attach(self, sink: CompletionSink, handlers: HandlerRegistry) -> None:
        self._sink = sink
        # A sink that takes one result at a time saves a batch of one per completion.
        self._one_done = getattr(sink, "task_done", None)
        self._handlers = handlers
        self._known = set(handlers)
        self._unknown.clear()
        # Fault windows count from here, as they count from the swarm's start for real.
        self.epoch = self.engine.clock.now

    def detach(self) -> None:
        for agent in self._agents.values():
            agent.alive = False  # completions still scheduled are dropped
        self._agents.clear()
        self._sink = None
        self._one_done = None

    def add_agent_now(self, spec: AgentSpec) -> None:
        if spec.id in self._agents:
            raise ConfigError("agent.id", spec.id, "Agent ids must be unique in a swarm.")
        model = self.model_for(spec.id)
        rng = None
        if model.service is not None or spec.faults:
            rng = self._rngs.get(spec.id)
            if rng is None:
                # A string seed is hashed the same way in every process.
                rng = self._rngs[spec.id] = random.Random(f"{self.seed}/{spec.id}")
        self._agents[spec.id] = _SimAgent(spec, model, rng)

    def remove_agent_now(self, agent_id: str) -> None:
        """Retire `agent_id` once what it was given has finished."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        agent.retiring = True
        if not agent.busy:
            del self._agents[agent_id]

    def run_bound(self, starts: Sequence[tuple[AgentState, Task]]) -> None:
        """`run`, for a driver that holds the coordinator's `take_starts()` as they are."""
        agents = self._agents
        now = self.engine.clock.now
        for state, task in starts:
            agent = agents[state.id]
            if agent.busy < agent.concurrency:
                self._serve(agent, task, now)
            else:
                agent.queue.append(task)

    def kill(self, agent_id: str, reason: str) -> list[Task]:
        """Crash `agent_id` now: what it had not finished is reported lost to the sink
        (in the order it was given) and returned; its scheduled completions never come."""
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return []
        agent.alive = False
        lost = [*agent.running, *agent.queue]
        if self._sink is not None:
            self._sink.agent_lost(agent_id, lost, reason)
        return lost

    def busy(self, agent_id: str) -> int:
        """Tasks `agent_id` is serving now (0 for an agent it does not know)."""
        agent = self._agents.get(agent_id)
        return agent.busy if agent is not None else 0

    # -- internals ----------------------------------------------------------------------

    def _serve(self, agent: _SimAgent, task: Task, now: float) -> None:
        """Begin serving `task` on `agent` at `now` and schedule its completion."""
        agent.busy += 1
        agent.running.append(task)
        self.started += 1
        kind = task.kind
        payload = task.payload
        if type(payload) is float and kind in _TIMED and agent.service is None and not agent.faults:
            # The usual task, in short: a sleep of `payload` seconds, scaled.
            heappush(
                self._heap,
                Entry(
                    now + (payload if payload > 0 else 0.0) * agent.scale,
                    next(self._seq),
                    self._complete_one,
                    (agent, task, now, None, None),
                ),
            )
            return
        error: str | None = None
        duration = 0.0
        service = agent.service
        if service is None and kind in _TIMED:
            try:
                duration = float(task.payload)
            except (TypeError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if not duration > 0:  # a negative sleep returns at once
                duration = 0.0
        elif kind == "fail":
            payload = task.payload
            error = "TaskFailure: " + (
                str(payload) if payload is not None else "task failed on purpose"
            )
        elif kind not in self._known and not self._knows(kind):
            error = self._unknown_kind(kind)
        elif service is not None:
            rng = agent.rng
            assert rng is not None  # made with the agent whenever it has a model
            sized = agent.sized
            duration = service.sample(rng) if sized is None else sized(task, rng)
        elif kind in _INSTANT:
            pass
        elif task.cost is None:
            error = (
                f"ConfigError: task kind {kind!r} has no time in simulation. "
                "Give its tasks a cost, or the agent a service model."
            )
        else:
            duration = task.cost
        if agent.faults and error is None and kind not in _NO_FAULTS:
            duration, error = self._faulty(agent, duration, now)
        if error is None:
            duration *= agent.scale
            # `relay` forwards a message: it passes its payload on, in its cost's time.
            value = task.payload if kind == "echo" or kind == "relay" else None
        else:
            duration = 0.0
            value = None
        # The engine's heap directly: this runs once per task, and the entry is the same
        # one `Engine.at` would make (the time is never in the past).
        heappush(
            self._heap,
            Entry(
                now + duration,
                next(self._seq),
                self._complete_one,
                (agent, task, now, error, value),
            ),
        )

    def _faulty(self, agent: _SimAgent, duration: float, now: float) -> tuple[float, str | None]:
        """What the built-in handlers' `AgentContext.work_factor` does, at virtual time."""
        rng = agent.rng
        assert rng is not None  # made with the agent whenever it has faults
        for fault in agent.faults:
            if fault.active(now - self.epoch):
                if fault.error_rate and rng.random() < fault.error_rate:
                    return 0.0, (
                        f"InjectedFault: agent {agent.id!r} fails {fault.error_rate:.0%} "
                        f"of its calls from {fault.start:g}s"
                    )
                duration *= fault.slowdown
        return duration, None

    def _knows(self, kind: str) -> bool:
        # Handlers may be registered after start; remember each kind found.
        if kind in self._handlers:
            self._known.add(kind)
            return True
        return False

    def _unknown_kind(self, kind: str) -> str:
        message = self._unknown.get(kind)
        if message is None:
            message = f"UnknownName: {UnknownName('task kind', kind, self._handlers)}"
            self._unknown[kind] = message
        return message

    def _complete(self, entry: CompletionEntry) -> None:
        if not self.release(entry):
            return
        agent, task, started, error, value = entry
        now = self._clock.now
        one = self._one_done
        if one is not None:
            one(agent.id, task, started, now, error, value)
        elif self._sink is not None:
            done: Done = (task, started, now, error, value)
            self._sink.tasks_done(agent.id, (done,))

    def release(self, entry: CompletionEntry) -> bool:
        """The completion scheduled as `entry` is due: free its worker (which takes the
        agent's next queued task) and say whether it counts, which it does unless the
        agent crashed meanwhile. `_complete` then tells the sink; a driver that is the
        sink may call this and record the result itself."""
        agent, task, _, _, _ = entry
        if not agent.alive:
            return False  # crashed meanwhile: the task was queued again elsewhere
        agent.running.remove(task)
        self.completed += 1
        now = self._clock.now
        if agent.queue:
            self._serve(agent, agent.queue.popleft(), now)
            agent.busy -= 1
        else:
            agent.busy -= 1
            if agent.retiring and not agent.busy:
                del self._agents[agent.id]
        return True

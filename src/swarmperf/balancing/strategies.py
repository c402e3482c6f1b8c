"""The Load Balancing Coordinator's strategies: which agent gets the next task.

Every strategy keeps its own index over the agents so that one decision costs O(log n) or
less in the number of agents (amortised: stale index entries are skipped lazily and the
index is rebuilt when it has grown to a few times the number of agents).

Two families:

* early binding (`late_binding = False`): a task is bound to an agent when it leaves the
  central queue, and waits in that agent's own queue (round robin and its kin, the
  proportional-share schedulers, work stealing). Shares follow the weights exactly.
* late binding (`late_binding = True`): a task is bound only when an agent has a free slot
  (running or prefetch), so the decision sees the freshest state (least-loaded,
  power-of-two, capacity-aware).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from typing import ClassVar, Final, Protocol

from swarmperf.balancing.agents import AgentState
from swarmperf.core.errors import UnknownName
from swarmperf.core.model import Task

_INF: Final = float("inf")


class SwarmLoad(Protocol):
    """What a strategy may read about the whole swarm (the coordinator provides it)."""

    @property
    def horizon(self) -> float:
        """Seconds the swarm needs to finish all known work, were it perfectly balanced."""
        ...


class LoadBalancer(Protocol):
    """Chooses agents for tasks. The coordinator calls it; it never does I/O."""

    name: ClassVar[str]
    late_binding: ClassVar[bool]
    # Whether idle agents may take queued tasks from others (see `steal_from`).
    steals: ClassVar[bool]
    # Seconds it takes to hand a task to another agent; the swarm keeps it current.
    transfer_cost: float

    def attach(self, swarm: SwarmLoad) -> None:
        """Called once by the coordinator before any agent is added."""
        ...

    def add(self, agent: AgentState, now: float) -> None: ...

    def remove(self, agent: AgentState) -> None:
        """Forget `agent`; it must never be chosen again."""
        ...

    def choose(self, task: Task, now: float) -> AgentState | None:
        """Return a live agent with room for `task`, or None to keep it queued."""
        ...

    def refused_from(self, now: float) -> float:
        """Right after `choose` kept a task waiting: the smallest estimated cost from
        which `choose` would keep any task waiting too, until something changes (so the
        coordinator need not ask about each); infinity when there is no such rule."""
        ...

    def assigned(self, agent: AgentState, task: Task) -> None:
        """`task` was bound to `agent` (after `choose`, or after a steal)."""
        ...

    def changed(self, agent: AgentState, now: float) -> None:
        """`agent`'s load or measurements changed."""
        ...

    def steal_from(self, thief: AgentState, now: float) -> AgentState | None:
        """An idle `thief` asks whom to take a queued task from; None: nobody."""
        ...


class _Strategy:
    """Defaults shared by the strategies; each overrides what it uses."""

    name: ClassVar[str] = ""
    # One line on what it does, for listings (a compiled class keeps no docstring).
    summary: ClassVar[str] = ""
    late_binding: ClassVar[bool] = False
    steals: ClassVar[bool] = False

    def __init__(self, *, seed: int | None = None, transfer_cost: float = 0.0) -> None:
        self.seed = seed
        self.transfer_cost = transfer_cost  # seconds to move one task between agents
        self._agents: dict[str, AgentState] = {}
        self._swarm: SwarmLoad | None = None

    def attach(self, swarm: SwarmLoad) -> None:
        self._swarm = swarm

    def add(self, agent: AgentState, now: float) -> None:
        self._agents[agent.id] = agent

    def remove(self, agent: AgentState) -> None:
        self._agents.pop(agent.id, None)

    def choose(self, task: Task, now: float) -> AgentState | None:
        raise NotImplementedError

    def refused_from(self, now: float) -> float:
        return _INF

    def assigned(self, agent: AgentState, task: Task) -> None:
        pass

    def changed(self, agent: AgentState, now: float) -> None:
        pass

    def steal_from(self, thief: AgentState, now: float) -> AgentState | None:
        return None


class _Slot:
    """An agent's place in a `_LazyHeap`: by key, then by when it was pushed. An object
    rather than a tuple: compiled, the key is a double inside it, so comparisons do not
    chase a pointer to a float (see `swarmperf.sim.engine.Entry`)."""

    __slots__ = ("agent", "key", "seq", "version")

    def __init__(self, key: float, seq: int, version: int, agent: AgentState) -> None:
        self.key = key
        self.seq = seq
        self.version = version
        self.agent = agent

    def __lt__(self, other: _Slot) -> bool:
        return self.key < other.key or (self.key == other.key and self.seq < other.seq)


def _sift_up(heap: list[_Slot], pos: int) -> None:
    """Move `heap[pos]` up to its place: `heapq`'s sift, with the comparison written out.

    Compiled, `key` and `seq` are fields of `_Slot` read in C, where `heapq` would call
    `__lt__` through Python twice per level; at ten thousand agents that is most of the
    cost of a decision.
    """
    item = heap[pos]
    key = item.key
    seq = item.seq
    while pos > 0:
        parent_pos = (pos - 1) >> 1
        parent = heap[parent_pos]
        if key < parent.key or (key == parent.key and seq < parent.seq):
            heap[pos] = parent
            pos = parent_pos
        else:
            break
    heap[pos] = item


def _sift_down(heap: list[_Slot], pos: int) -> None:
    """Move `heap[pos]` down to its place (as `_sift_up`, the other way)."""
    n = len(heap)
    item = heap[pos]
    key = item.key
    seq = item.seq
    child_pos = 2 * pos + 1
    while child_pos < n:
        child = heap[child_pos]
        right_pos = child_pos + 1
        if right_pos < n:
            right = heap[right_pos]
            if right.key < child.key or (right.key == child.key and right.seq < child.seq):
                child = right
                child_pos = right_pos
        if child.key < key or (child.key == key and child.seq < seq):
            heap[pos] = child
            pos = child_pos
            child_pos = 2 * pos + 1
        else:
            break
    heap[pos] = item


def _heap_push(heap: list[_Slot], item: _Slot) -> None:
    heap.append(item)
    _sift_up(heap, len(heap) - 1)


def _heap_pop(heap: list[_Slot]) -> None:
    """Drop the least item of a non-empty heap."""
    last = heap.pop()
    if heap:
        heap[0] = last
        _sift_down(heap, 0)


class _LazyHeap:
    """A min-heap of agents by a key that changes; stale entries are skipped, not removed.

    An entry is current while the agent is alive and its `version` is the one pushed.
    """

    __slots__ = ("_heap", "_key", "_seq")

    def __init__(self, key: Callable[[AgentState], float]) -> None:
        self._heap: list[_Slot] = []
        self._seq = itertools.count()
        self._key = key

    def push(self, agent: AgentState) -> None:
        _heap_push(self._heap, _Slot(self._key(agent), next(self._seq), agent.version, agent))

    def push_and_compact(self, agent: AgentState, agents: dict[str, AgentState]) -> None:
        """`push`, then `compact` if the heap has grown too big: the per-change path."""
        heap = self._heap
        _heap_push(heap, _Slot(self._key(agent), next(self._seq), agent.version, agent))
        if len(heap) > 4 * len(agents) + 64:
            self.compact(agents)

    def top(self, accept: Callable[[AgentState], bool]) -> AgentState | None:
        """The current minimum that `accept`s; entries that are stale or refused are dropped.

        A refused agent gets a fresh entry the next time it changes.
        """
        heap = self._heap
        while heap:
            top = heap[0]
            agent = top.agent
            if agent.alive and top.version == agent.version and accept(agent):
                return agent
            _heap_pop(heap)
        return None

    def top_with_free_slot(self) -> AgentState | None:
        """`top(_has_free_slot)`, with the test written out: it runs for every task."""
        heap = self._heap
        while heap:
            top = heap[0]
            agent = top.agent
            if (
                agent.alive
                and top.version == agent.version
                and agent.in_flight < agent.slots
                and not agent.paused
            ):
                return agent
            _heap_pop(heap)
        return None

    def top_with_backlog(self) -> AgentState | None:
        """The current minimum with tasks waiting at it (work stealing asks per task)."""
        heap = self._heap
        while heap:
            top = heap[0]
            agent = top.agent
            if agent.alive and top.version == agent.version and agent.backlog_size:
                return agent
            _heap_pop(heap)
        return None

    def compact(self, agents: dict[str, AgentState]) -> None:
        if len(self._heap) > 4 * len(agents) + 64:
            self._heap = [
                _Slot(self._key(a), next(self._seq), a.version, a)
                for a in agents.values()
                if a.alive
            ]
            heapq.heapify(self._heap)


def _has_room(agent: AgentState) -> bool:
    return agent.has_room


def _has_free_slot(agent: AgentState) -> bool:
    return agent.has_free_slot


def _is_full(agent: AgentState) -> bool:
    return agent.in_flight >= agent.slots


class RoundRobin(_Strategy):
    """Static round robin: each task to the next agent in turn, whatever its load."""

    name = "round-robin"
    summary = "Static round robin: each task to the next agent in turn, whatever its load."

    def __init__(self, *, seed: int | None = None, transfer_cost: float = 0.0) -> None:
        super().__init__(seed=seed, transfer_cost=transfer_cost)
        self._ring: deque[AgentState] = deque()
        self._in_ring: set[str] = set()

    def add(self, agent: AgentState, now: float) -> None:
        super().add(agent, now)
        self._enter(agent)

    def remove(self, agent: AgentState) -> None:
        super().remove(agent)
        # Out of the ring now: an agent that comes back under the same id is a new state,
        # and the ring must take it (removals are rare, so the rebuild is cheap enough).
        if agent.id in self._in_ring:
            self._in_ring.discard(agent.id)
            self._ring = deque(a for a in self._ring if a is not agent)

    def _enter(self, agent: AgentState) -> None:
        if agent.id not in self._in_ring:
            self._in_ring.add(agent.id)
            self._ring.append(agent)

    def changed(self, agent: AgentState, now: float) -> None:
        # A full agent leaves the ring; it comes back once it has room again.
        if agent.alive and agent.id not in self._in_ring and agent.has_room:
            self._enter(agent)

    def choose(self, task: Task, now: float) -> AgentState | None:
        ring = self._ring
        while ring:
            agent = ring[0]
            if agent.alive and agent.has_room:
                ring.rotate(-1)
                return agent
            ring.popleft()
            self._in_ring.discard(agent.id)
        return None


class _Entry:
    """An agent's place in a `_VirtualTime` heap: by virtual time, then by when it was
    pushed; `agent` None once a newer entry has superseded it.

    `_Slot` without its `version`: three fields after the object header, 48 bytes, so
    that with the collector's header in front each entry is one 64-byte block and its
    fields lie in one cache line (a 56-byte `_Slot` straddles two lines half the time).
    A sift from the top of a heap of ten thousand agents reads two entries per level,
    scattered in memory; the lines it reads are most of what a decision costs there.
    """

    __slots__ = ("agent", "key", "seq")

    def __init__(self, key: float, seq: int, agent: AgentState | None) -> None:
        self.key = key
        self.seq = seq
        self.agent = agent


def _entry_sift_up(heap: list[_Entry], pos: int) -> None:
    """`_sift_up` for a heap of `_Entry`s.

    Written out again rather than shared with `_Slot`'s: compiled, a function over one
    class reads `key` and `seq` at fixed offsets, where a shared base or protocol would
    read them through a lookup.
    """
    item = heap[pos]
    key = item.key
    seq = item.seq
    while pos > 0:
        parent_pos = (pos - 1) >> 1
        parent = heap[parent_pos]
        if key < parent.key or (key == parent.key and seq < parent.seq):
            heap[pos] = parent
            pos = parent_pos
        else:
            break
    heap[pos] = item


def _entry_sift_down(heap: list[_Entry], pos: int) -> None:
    """`_sift_down` for a heap of `_Entry`s."""
    n = len(heap)
    item = heap[pos]
    key = item.key
    seq = item.seq
    child_pos = 2 * pos + 1
    while child_pos < n:
        child = heap[child_pos]
        right_pos = child_pos + 1
        if right_pos < n:
            right = heap[right_pos]
            if right.key < child.key or (right.key == child.key and right.seq < child.seq):
                child = right
                child_pos = right_pos
        if child.key < key or (child.key == key and child.seq < seq):
            heap[pos] = child
            pos = child_pos
            child_pos = 2 * pos + 1
        else:
            break
    heap[pos] = item


class _VirtualTime(_Strategy):
    """Proportional share: the agent with the least virtual time is next.

    Each assignment charges the agent `charge(agent, task)`; agents that join (or regain
    room) start at the current virtual time, so they cannot claim a burst of catch-up work.
    The agents are in a heap of `_Entry`s by (virtual time, order pushed): one decision
    costs O(log n) comparisons of two floats.

    An agent's virtual time is the key of its latest entry (`_entries`), which the heap
    holds unless the agent left it full. An entry replaced by a newer one is marked stale
    (its `agent` None) rather than looked up: a decision then reads nothing keyed by agent
    id, which at ten thousand agents is a cache miss per lookup.
    """

    def __init__(self, *, seed: int | None = None, transfer_cost: float = 0.0) -> None:
        super().__init__(seed=seed, transfer_cost=transfer_cost)
        # agent id -> its latest entry, in the heap or (while full) out of it
        self._entries: dict[str, _Entry] = {}
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._full: set[str] = set()
        self._now_v = 0.0  # virtual time of the last choice

    def charge(self, agent: AgentState, task: Task) -> float:
        raise NotImplementedError

    def add(self, agent: AgentState, now: float) -> None:
        super().add(agent, now)
        self._push(agent, self._now_v)

    def remove(self, agent: AgentState) -> None:
        super().remove(agent)
        entry = self._entries.pop(agent.id, None)
        if entry is not None:
            entry.agent = None
        self._full.discard(agent.id)

    def _push(self, agent: AgentState, vtime: float) -> None:
        """Give `agent` a new entry at `vtime`; its previous one, if any, goes stale."""
        entry = _Entry(vtime, next(self._seq), agent)
        previous = self._entries.get(agent.id)
        if previous is not None:
            previous.agent = None
        self._entries[agent.id] = entry
        heap = self._heap
        heap.append(entry)
        _entry_sift_up(heap, len(heap) - 1)

    def _pop(self) -> None:
        """Drop the entry on top of the (non-empty) heap."""
        heap = self._heap
        last = heap.pop()
        if heap:
            heap[0] = last
            _entry_sift_down(heap, 0)

    def choose(self, task: Task, now: float) -> AgentState | None:
        heap = self._heap
        while heap:
            agent = heap[0].agent
            if agent is None or not agent.alive:
                self._pop()
            elif not agent.has_room:
                self._pop()
                self._full.add(agent.id)
            else:
                return agent
        return None

    def assigned(self, agent: AgentState, task: Task) -> None:
        heap = self._heap
        if heap and heap[0].agent is agent:
            # The usual case: the agent just chosen moves down from the top. Its entry is
            # the heap's alone, so it is updated in place rather than made anew.
            top = heap[0]
            v = max(top.key, self._now_v)
            self._now_v = v
            top.key = v + self.charge(agent, task)
            top.seq = next(self._seq)
            _entry_sift_down(heap, 0)
            return
        entry = self._entries.get(agent.id)
        v = max(self._now_v if entry is None else entry.key, self._now_v)
        self._now_v = v
        self._push(agent, v + self.charge(agent, task))

    def changed(self, agent: AgentState, now: float) -> None:
        # (`_full` is empty most of the time: tested first, it spares a lookup per change.)
        full = self._full
        if full and agent.id in full and agent.alive and agent.has_room:
            full.discard(agent.id)
            self._push(agent, max(self._entries[agent.id].key, self._now_v))

    def virtual_time(self, agent_id: str) -> float:
        return self._entries[agent_id].key


class WeightedRoundRobin(_VirtualTime):
    """Smooth weighted round robin, done as stride scheduling.

    nginx's smooth WRR scans every agent per pick (O(n)); stride scheduling gives the same
    smooth interleaving (each agent within one task of its exact share at any moment) from
    a heap, in O(log n).
    """

    name = "weighted-round-robin"
    summary = "Smooth weighted round robin, done as stride scheduling."

    def charge(self, agent: AgentState, task: Task) -> float:
        return 1.0 / agent.weight


class CompletelyFair(_VirtualTime):
    """Linux CFS's rule: the agent with the least virtual runtime runs next.

    Virtual runtime advances by 1000 / weight per task; newcomers start at the minimum
    virtual runtime so that they do not starve the others while catching up.
    """

    name = "cfs"
    summary = "Linux CFS's rule: the agent with the least virtual runtime runs next."

    def charge(self, agent: AgentState, task: Task) -> float:
        return 1000.0 / agent.weight


class WeightedFairQueuing(_VirtualTime):
    """Weighted fair queuing over agents with virtual finish times (start-time fair queuing).

    Each agent is a flow; a task of estimated cost c bound to agent a moves a's finish time
    from max(F_a, V) to max(F_a, V) + c / w_a, and the agent with the least finish time is
    next. Over any backlogged interval each agent's share of the *work* is within one task
    of w_a / sum(w). Fair shares between tenants are kept by the queue, for every strategy.
    """

    name = "weighted-fair-queuing"
    summary = "Weighted fair queuing over agents with virtual finish times (start-time FQ)."

    def charge(self, agent: AgentState, task: Task) -> float:
        return task.est_cost / agent.weight


class _FreeSet:
    """Agents with a free slot, as a list with O(1) add, discard and uniform sampling."""

    __slots__ = ("_list", "_pos")

    def __init__(self) -> None:
        self._list: list[AgentState] = []
        self._pos: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._list)

    def update(self, agent: AgentState) -> None:
        free = agent.alive and agent.has_free_slot
        if free and agent.id not in self._pos:
            self._pos[agent.id] = len(self._list)
            self._list.append(agent)
        elif not free:
            self.discard(agent)

    def discard(self, agent: AgentState) -> None:
        i = self._pos.pop(agent.id, None)
        if i is None:
            return
        last = self._list.pop()
        if last is not agent:
            self._list[i] = last
            self._pos[last.id] = i

    def __getitem__(self, i: int) -> AgentState:
        return self._list[i]


def _least_loaded_key(agent: AgentState) -> float:
    # The tiny constant breaks ties between equal loads in favour of speed.
    return (agent.backlog_work + agent.running_work + 1e-9) / agent.speed


class LeastLoaded(_Strategy):
    """The agent with a free slot whose outstanding work, over its measured speed, is least.

    Late binding, so that the loads compared are current. Among equally loaded agents
    (all idle, say) the fastest is preferred.
    """

    name = "least-loaded"
    summary = "The agent with a free slot whose outstanding work, over its speed, is least."
    late_binding = True

    def __init__(self, *, seed: int | None = None, transfer_cost: float = 0.0) -> None:
        super().__init__(seed=seed, transfer_cost=transfer_cost)
        self._index = _LazyHeap(_least_loaded_key)

    def add(self, agent: AgentState, now: float) -> None:
        super().add(agent, now)
        self._index.push(agent)

    def changed(self, agent: AgentState, now: float) -> None:
        if agent.in_flight < agent.slots and agent.alive and not agent.paused:
            # `_index.push_and_compact`, with `_least_loaded_key` written out: this runs
            # for every task.
            index = self._index
            heap = index._heap
            _heap_push(
                heap,
                _Slot(
                    (agent.backlog_work + agent.running_work + 1e-9) / agent.speed,
                    next(index._seq),
                    agent.version,
                    agent,
                ),
            )
            if len(heap) > 4 * len(self._agents) + 64:
                index.compact(self._agents)

    def choose(self, task: Task, now: float) -> AgentState | None:
        return self._index.top_with_free_slot()


class PowerOfTwo(_Strategy):
    """Power of two choices: sample two agents with a free slot, keep the less loaded one.

    Late binding; O(1) per decision (a set of the agents with a free slot that supports
    uniform sampling).
    """

    name = "power-of-two"
    summary = "Power of two choices: sample two agents with a free slot, keep the less loaded."
    late_binding = True

    def __init__(self, *, seed: int | None = None, transfer_cost: float = 0.0) -> None:
        super().__init__(seed=seed, transfer_cost=transfer_cost)
        self._rng = random.Random(seed)
        self._free = _FreeSet()

    def add(self, agent: AgentState, now: float) -> None:
        super().add(agent, now)
        self._free.update(agent)

    def remove(self, agent: AgentState) -> None:
        super().remove(agent)
        self._free.discard(agent)

    def changed(self, agent: AgentState, now: float) -> None:
        self._free.update(agent)

    def choose(self, task: Task, now: float) -> AgentState | None:
        free = self._free
        n = len(free)
        if n == 0:
            return None
        if n == 1:
            return free[0]
        rand = self._rng.random
        i = int(rand() * n)
        j = int(rand() * (n - 1))
        if j >= i:
            j += 1
        a, b = free[i], free[j]
        return a if a.drain_time <= b.drain_time else b


def _victim_key(agent: AgentState) -> float:
    # The longest expected drain time of its queue first.
    return -agent.backlog_work / agent.speed


class WorkStealing(RoundRobin):
    """Round-robin placement into per-agent queues; idle agents steal from the most loaded.

    As in Dask's work stealing, a task moves only when the move pays: the thief must be
    expected to finish it (its estimated cost at the thief's speed plus the transfer cost)
    before the victim would have drained the queue it sits at the end of. The victim is the
    agent with the longest expected drain time of its queue (a heap: O(log n)).
    """

    name = "work-stealing"
    summary = "Round-robin placement into per-agent queues; idle agents steal from the busiest."
    steals = True

    def __init__(self, *, seed: int | None = None, transfer_cost: float = 0.0) -> None:
        super().__init__(seed=seed, transfer_cost=transfer_cost)
        self._victims = _LazyHeap(_victim_key)
        # The number the next entry of `_victims` gets. The heap's own count, kept here as
        # an int: compiled, `next` on an `itertools.count` is looked up among the builtins
        # at each call, and this runs for every task bound or stolen.
        self._victim_seq = 0

    def changed(self, agent: AgentState, now: float) -> None:
        if not agent.alive:
            return
        # `RoundRobin.changed`, then `_victims.push_and_compact` with `_victim_key`, written
        # out: this runs for every task bound and every task stolen.
        if agent.id not in self._in_ring and agent.has_room:
            self._enter(agent)
        if agent.backlog_size:
            seq = self._victim_seq
            self._victim_seq = seq + 1
            heap = self._victims._heap
            _heap_push(heap, _Slot(-agent.backlog_work / agent.speed, seq, agent.version, agent))
            if len(heap) > 4 * len(self._agents) + 64:
                self._compact_victims()

    def _compact_victims(self) -> None:
        """`_victims.compact`, numbering the entries from `_victim_seq`."""
        slots: list[_Slot] = []
        for a in self._agents.values():
            if a.alive:
                slots.append(_Slot(_victim_key(a), self._victim_seq, a.version, a))
                self._victim_seq += 1
        heapq.heapify(slots)
        self._victims._heap = slots

    def steal_from(self, thief: AgentState, now: float) -> AgentState | None:
        victim = self._victims.top_with_backlog()
        if victim is None or victim is thief:
            return None
        task = victim.last_waiting()
        thief_done = task.est_cost / thief.speed + self.transfer_cost
        victim_done = victim.backlog_work / victim.speed
        return victim if thief_done < victim_done else None


class CapacityAware(_Strategy):
    """Expected completion time from each agent's measured service rate (EWMA).

    Late binding: a task goes to the fastest agent with a free slot, unless an agent that is
    busy now is expected to finish it sooner (its next free slot plus the task at its speed)
    *and* the free agent would finish it only after the swarm's horizon (the time all known
    work needs, perfectly balanced): then the task waits for the faster agent. So a slow
    agent keeps contributing while there is work to overlap with, but is not handed a big
    task at the end, the usual cause of a long tail in makespan. Two heaps (free agents by
    speed, busy ones by next free slot) make a decision O(log n).

    An agent held back this way is not measured again, so a low estimate could stick for
    good (an agent that was slow for a while, then recovered). An agent idle for
    `PROBE_AFTER` seconds therefore gets the next task whatever its estimate: a probe.

    Holding is monotonic in a task's cost: if a task is held, so is any costlier one while
    nothing has changed, and the two conditions solved for the cost give the cost above
    which every task is held. The coordinator looks past a held task for one a free agent
    can take; `refused_from` tells it which it need not ask about, so a look past many
    tasks costs a comparison each, and the decisions are exactly those of a full look
    (`tests/runtime/test_coordinator_line.py` holds them equal).
    """

    name = "capacity-aware"
    summary = "Expected completion time from each agent's measured service rate (EWMA)."
    late_binding = True
    PROBE_AFTER = 1.0

    def __init__(self, *, seed: int | None = None, transfer_cost: float = 0.0) -> None:
        super().__init__(seed=seed, transfer_cost=transfer_cost)
        self._idle = _LazyHeap(lambda a: -a.speed)
        self._busy = _LazyHeap(lambda a: a.free_at(0.0))
        self._idle_since: dict[str, float] = {}
        # Bumped on any change to the agents; with the time and horizon it keys the last
        # hold: (epoch, now, horizon, smallest cost held).
        self._epoch = 0
        self._held: tuple[int, float, float, float] | None = None

    def add(self, agent: AgentState, now: float) -> None:
        super().add(agent, now)
        self.changed(agent, now)

    def remove(self, agent: AgentState) -> None:
        super().remove(agent)
        self._epoch += 1
        self._idle_since.pop(agent.id, None)

    def changed(self, agent: AgentState, now: float) -> None:
        self._epoch += 1
        if not agent.alive:
            return
        if agent.in_flight == 0:
            self._idle_since.setdefault(agent.id, now)
        else:
            self._idle_since.pop(agent.id, None)
        if agent.in_flight < agent.slots:
            self._idle.push(agent)
        else:
            self._busy.push(agent)
        self._idle.compact(self._agents)
        self._busy.compact(self._agents)

    def choose(self, task: Task, now: float) -> AgentState | None:
        cost = task.est_cost
        held = self._held
        if (
            held is not None
            and cost >= held[3]
            and held[0] == self._epoch
            and held[1] == now
            and held[2] == self._horizon()
        ):
            return None
        idle = self._idle.top_with_free_slot()
        if idle is None:
            return None
        busy = self._busy.top(_is_full)
        if busy is not None and busy.speed > idle.speed:
            if now - self._idle_since.get(idle.id, now) >= self.PROBE_AFTER:
                return idle
            on_idle = cost / idle.speed
            horizon = self._horizon()
            wait = busy.free_at(now) - now
            if on_idle > horizon and wait + cost / busy.speed < on_idle:
                key = (self._epoch, now, horizon)
                if held is not None and held[:3] == key:
                    cost = min(cost, held[3])
                # The two conditions, solved for the cost: any task costing more than
                # this is held too, and the coordinator need not ask about it. Widened,
                # and only where the speeds differ enough, so that rounding cannot make
                # it refuse a task that the comparisons above would let through.
                if busy.speed - idle.speed > 1e-6 * busy.speed:
                    gap = 1.0 / idle.speed - 1.0 / busy.speed
                    above = max(horizon * idle.speed, wait / gap) * (1.0 + 1e-6) + 1e-9
                    cost = min(cost, above)
                self._held = (*key, cost)
                return None
        return idle

    def refused_from(self, now: float) -> float:
        held = self._held
        if (
            held is not None
            and held[0] == self._epoch
            and held[1] == now
            and held[2] == self._horizon()
        ):
            return held[3]
        return _INF

    def _horizon(self) -> float:
        return self._swarm.horizon if self._swarm is not None else 0.0


STRATEGIES: dict[str, type[_Strategy]] = {
    cls.name: cls
    for cls in (
        RoundRobin,
        WeightedRoundRobin,
        LeastLoaded,
        PowerOfTwo,
        WeightedFairQueuing,
        CompletelyFair,
        WorkStealing,
        CapacityAware,
    )
}


def get_strategy(name: str, *, seed: int | None = None, transfer_cost: float = 0.0) -> LoadBalancer:
    """Make the strategy registered as `name` (kebab-case, as in specs and metric labels)."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise UnknownName("strategy", name, STRATEGIES) from None
    return cls(seed=seed, transfer_cost=transfer_cost)


class _Forwarding(_Strategy):
    """A `LoadBalancer` that is not one of these classes, behind their interface: every
    call goes on to it (see `direct`)."""

    def __init__(self, inner: LoadBalancer) -> None:
        super().__init__(transfer_cost=inner.transfer_cost)
        self.inner = inner

    def attach(self, swarm: SwarmLoad) -> None:
        self.inner.attach(swarm)

    def add(self, agent: AgentState, now: float) -> None:
        self.inner.add(agent, now)

    def remove(self, agent: AgentState) -> None:
        self.inner.remove(agent)

    def choose(self, task: Task, now: float) -> AgentState | None:
        return self.inner.choose(task, now)

    def refused_from(self, now: float) -> float:
        return self.inner.refused_from(now)

    def assigned(self, agent: AgentState, task: Task) -> None:
        self.inner.assigned(agent, task)

    def changed(self, agent: AgentState, now: float) -> None:
        self.inner.changed(agent, now)

    def steal_from(self, thief: AgentState, now: float) -> AgentState | None:
        return self.inner.steal_from(thief, now)


def direct(strategy: LoadBalancer) -> _Strategy:
    """`strategy` typed as one of these classes, for a caller that calls it per task.

    Compiled, a call through the protocol looks the method up by name and parses its
    arguments; a call on one of these classes goes straight to the compiled method. A
    strategy of another kind comes wrapped, and each call goes on to it unchanged.
    """
    return strategy if isinstance(strategy, _Strategy) else _Forwarding(strategy)

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

import random
from collections import deque
from collections.abc import Callable
from typing import ClassVar, Final, Protocol

from swarmperf.balancing.agents import AgentState
from swarmperf.core.arrays import append, i64, vec
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


def _sift_up(
    keys: vec[float], seqs: vec[i64], versions: vec[i64], slots: vec[i64], pos: i64
) -> None:
    """Move the heap entry at `pos` up to its place, by (key, seq)."""
    key = keys[pos]
    seq = seqs[pos]
    version = versions[pos]
    slot = slots[pos]
    while pos > 0:
        parent = (pos - 1) >> 1
        parent_key = keys[parent]
        if key < parent_key or (key == parent_key and seq < seqs[parent]):
            keys[pos] = parent_key
            seqs[pos] = seqs[parent]
            versions[pos] = versions[parent]
            slots[pos] = slots[parent]
            pos = parent
        else:
            break
    keys[pos] = key
    seqs[pos] = seq
    versions[pos] = version
    slots[pos] = slot


def _sift_down(
    keys: vec[float], seqs: vec[i64], versions: vec[i64], slots: vec[i64], pos: i64, n: i64
) -> None:
    """Move the heap entry at `pos` down to its place among the first `n` (as `_sift_up`,
    the other way)."""
    key = keys[pos]
    seq = seqs[pos]
    version = versions[pos]
    slot = slots[pos]
    child = 2 * pos + 1
    while child < n:
        child_key = keys[child]
        right = child + 1
        if right < n:
            right_key = keys[right]
            if right_key < child_key or (right_key == child_key and seqs[right] < seqs[child]):
                child = right
                child_key = right_key
        if child_key < key or (child_key == key and seqs[child] < seq):
            keys[pos] = child_key
            seqs[pos] = seqs[child]
            versions[pos] = versions[child]
            slots[pos] = slots[child]
            pos = child
            child = 2 * pos + 1
        else:
            break
    keys[pos] = key
    seqs[pos] = seq
    versions[pos] = version
    slots[pos] = slot


class _LazyHeap:
    """A min-heap of agents by a key that changes; stale entries are skipped, not removed.

    An entry is current while the agent is alive and its `version` is the one pushed.
    Entries are ordered by key, then by when they were pushed. Every entry is four
    unboxed numbers in four arrays (key, order, version, and the agent's `index`): a sift
    reads and moves numbers alone. In a swarm of ten thousand agents a sift reads a
    dozen levels, and when each entry was an object, every level near the bottom of the
    heap was a cache miss. The heap is the arrays' first `_n` places; they do not shrink,
    so that a push or a pop writes in place rather than making the arrays anew.
    """

    __slots__ = ("_agents", "_key", "_keys", "_n", "_seq", "_seqs", "_slots", "_versions")

    def __init__(self, key: Callable[[AgentState], float]) -> None:
        self._keys = vec[float]()
        self._seqs = vec[i64]()
        self._versions = vec[i64]()
        self._slots = vec[i64]()
        self._n: i64 = 0
        # By `AgentState.index`: the agent that had it when last pushed.
        self._agents: list[AgentState | None] = []
        self._seq: i64 = 0  # the number the next entry gets
        self._key = key

    def __len__(self) -> int:
        return self._n

    def push(self, agent: AgentState) -> None:
        self.push_key(self._key(agent), agent)

    def push_key(self, key: float, agent: AgentState) -> None:
        """`push`, the key given: for a caller that computes it written out."""
        n = self._n
        self._put(key, agent)
        _sift_up(self._keys, self._seqs, self._versions, self._slots, n)

    def _put(self, key: float, agent: AgentState) -> None:
        """Put an entry for `agent` after the heap's last (not yet in its place)."""
        seq = self._seq
        self._seq = seq + 1
        slot: i64 = agent.index
        agents = self._agents
        while len(agents) <= slot:
            agents.append(None)
        agents[slot] = agent
        n = self._n
        self._n = n + 1
        if n < len(self._keys):
            self._keys[n] = key
            self._seqs[n] = seq
            self._versions[n] = agent.version
            self._slots[n] = slot
        else:
            self._keys = append(self._keys, key)
            self._seqs = append(self._seqs, seq)
            self._versions = append(self._versions, agent.version)
            self._slots = append(self._slots, slot)

    def _pop(self) -> None:
        """Drop the least entry of the (non-empty) heap."""
        n = self._n - 1
        self._n = n
        if n:
            keys = self._keys
            seqs = self._seqs
            versions = self._versions
            slots = self._slots
            keys[0] = keys[n]
            seqs[0] = seqs[n]
            versions[0] = versions[n]
            slots[0] = slots[n]
            _sift_down(keys, seqs, versions, slots, 0, n)

    def _current(self) -> AgentState | None:
        """The agent of the top entry if it is alive and the entry current, else None."""
        agent = self._agents[self._slots[0]]
        if agent is not None and agent.alive and self._versions[0] == agent.version:
            return agent
        return None

    def top(self, accept: Callable[[AgentState], bool]) -> AgentState | None:
        """The current minimum that `accept`s; entries that are stale or refused are dropped.

        A refused agent gets a fresh entry the next time it changes.
        """
        while self._n:
            agent = self._current()
            if agent is not None and accept(agent):
                return agent
            self._pop()
        return None

    def top_with_free_slot(self) -> AgentState | None:
        """`top(_has_free_slot)`, with the test written out: it runs for every task."""
        while self._n:
            agent = self._current()
            if agent is not None and agent.in_flight < agent.slots and not agent.paused:
                return agent
            self._pop()
        return None

    def top_with_backlog(self) -> AgentState | None:
        """The current minimum with tasks waiting at it (work stealing asks per task)."""
        while self._n:
            agent = self._current()
            if agent is not None and agent.backlog_size:
                return agent
            self._pop()
        return None

    def compact(self, agents: dict[str, AgentState]) -> None:
        """`rebuild` if the heap has grown to over four entries per agent."""
        if self._n > 4 * len(agents) + 64:
            self.rebuild(agents)

    def rebuild(self, agents: dict[str, AgentState]) -> None:
        """Only a current entry for each live agent of `agents`, numbered in their order."""
        self._n = 0
        key = self._key
        for a in agents.values():
            if a.alive:
                self._put(key(a), a)
        n = self._n
        keys = self._keys
        seqs = self._seqs
        versions = self._versions
        slots = self._slots
        for pos in range(n // 2 - 1, -1, -1):
            _sift_down(keys, seqs, versions, slots, pos, n)


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


def _vt_sift_up(keys: vec[float], seqs: vec[i64], slots: vec[i64], pos: i64) -> None:
    """`_sift_up` for a `_VirtualTime` heap, whose entries are three arrays, not four.

    Written out again rather than shared with the lazy heap's: a shared one would move
    a fourth array, of versions that the virtual-time strategies never read, at every
    level of every sift.
    """
    key = keys[pos]
    seq = seqs[pos]
    slot = slots[pos]
    while pos > 0:
        parent = (pos - 1) >> 1
        parent_key = keys[parent]
        if key < parent_key or (key == parent_key and seq < seqs[parent]):
            keys[pos] = parent_key
            seqs[pos] = seqs[parent]
            slots[pos] = slots[parent]
            pos = parent
        else:
            break
    keys[pos] = key
    seqs[pos] = seq
    slots[pos] = slot


def _vt_sift_down(keys: vec[float], seqs: vec[i64], slots: vec[i64], pos: i64, n: i64) -> None:
    """`_sift_down` for a `_VirtualTime` heap."""
    key = keys[pos]
    seq = seqs[pos]
    slot = slots[pos]
    child = 2 * pos + 1
    while child < n:
        child_key = keys[child]
        right = child + 1
        if right < n:
            right_key = keys[right]
            if right_key < child_key or (right_key == child_key and seqs[right] < seqs[child]):
                child = right
                child_key = right_key
        if child_key < key or (child_key == key and seqs[child] < seq):
            keys[pos] = child_key
            seqs[pos] = seqs[child]
            slots[pos] = slots[child]
            pos = child
            child = 2 * pos + 1
        else:
            break
    keys[pos] = key
    seqs[pos] = seq
    slots[pos] = slot


class _VirtualTime(_Strategy):
    """Proportional share: the agent with the least virtual time is next.

    Each assignment charges the agent `charge(agent, task)`; agents that join (or regain
    room) start at the current virtual time, so they cannot claim a burst of catch-up work.
    The agents are in a heap by (virtual time, order pushed): one decision costs O(log n)
    comparisons of two floats.

    The heap is three unboxed arrays in step, as in `_LazyHeap`: each entry's virtual
    time, the order it was pushed in, and its agent's number (`AgentState.index`). By
    number the strategy keeps the agent, its virtual time and the order of its latest
    entry: an entry that a newer one of the same agent has replaced is stale, and skipped
    when it comes to the top, so that a decision reads nothing keyed by agent id.
    """

    def __init__(self, *, seed: int | None = None, transfer_cost: float = 0.0) -> None:
        super().__init__(seed=seed, transfer_cost=transfer_cost)
        self._keys = vec[float]()
        self._seqs = vec[i64]()
        self._slots = vec[i64]()
        self._n: i64 = 0  # the heap is the arrays' first `_n` places, as in `_LazyHeap`
        # By agent number: the agent (None: none), the order its latest entry was pushed
        # in (-1: none), its virtual time (the key of that entry, in the heap or not).
        self._agent_at: list[AgentState | None] = []
        self._latest = vec[i64]()
        self._vtime = vec[float]()
        self._seq: i64 = 0
        self._full: set[str] = set()  # ids of agents out of the heap for want of room
        self._now_v = 0.0  # virtual time of the last choice

    def charge(self, agent: AgentState, task: Task) -> float:
        raise NotImplementedError

    def add(self, agent: AgentState, now: float) -> None:
        super().add(agent, now)
        self._push(self._slot(agent), self._now_v)

    def remove(self, agent: AgentState) -> None:
        super().remove(agent)
        if self._knows(agent):
            # Its entries go stale, for good: an agent that joins later under its number
            # pushes entries of its own.
            slot = agent.index
            self._latest[slot] = -1
            self._agent_at[slot] = None
        self._full.discard(agent.id)

    def _knows(self, agent: AgentState) -> bool:
        slot = agent.index
        return slot < len(self._agent_at) and self._agent_at[slot] is agent

    def _slot(self, agent: AgentState) -> i64:
        """`agent`'s number, kept for it from now on (the arrays grow to hold it)."""
        slot: i64 = agent.index
        while len(self._agent_at) <= slot:
            self._agent_at.append(None)
            self._latest = append(self._latest, -1)
            self._vtime = append(self._vtime, 0.0)
        self._agent_at[slot] = agent
        return slot

    def _push(self, slot: i64, vtime: float) -> None:
        """Give the agent in `slot` a new entry at `vtime`; its previous one goes stale."""
        seq = self._seq
        self._seq = seq + 1
        self._latest[slot] = seq
        self._vtime[slot] = vtime
        n = self._n
        self._n = n + 1
        if n < len(self._keys):
            self._keys[n] = vtime
            self._seqs[n] = seq
            self._slots[n] = slot
        else:
            self._keys = append(self._keys, vtime)
            self._seqs = append(self._seqs, seq)
            self._slots = append(self._slots, slot)
        _vt_sift_up(self._keys, self._seqs, self._slots, n)

    def _pop(self) -> None:
        """Drop the entry on top of the (non-empty) heap."""
        n = self._n - 1
        self._n = n
        if n:
            keys = self._keys
            seqs = self._seqs
            slots = self._slots
            keys[0] = keys[n]
            seqs[0] = seqs[n]
            slots[0] = slots[n]
            _vt_sift_down(keys, seqs, slots, 0, n)

    def choose(self, task: Task, now: float) -> AgentState | None:
        while self._n:
            slot = self._slots[0]
            agent = self._agent_at[slot]
            if agent is None or self._seqs[0] != self._latest[slot] or not agent.alive:
                self._pop()
            elif not agent.has_room:
                self._pop()
                self._full.add(agent.id)
            else:
                return agent
        return None

    def assigned(self, agent: AgentState, task: Task) -> None:
        if self._n:
            keys = self._keys
            slots = self._slots
            seqs = self._seqs
            slot = slots[0]
            if self._agent_at[slot] is agent and seqs[0] == self._latest[slot]:
                # The usual case: the agent just chosen moves down from the top, its
                # entry updated in place rather than made anew.
                v = max(keys[0], self._now_v)
                self._now_v = v
                key = v + self.charge(agent, task)
                seq = self._seq
                self._seq = seq + 1
                keys[0] = key
                seqs[0] = seq
                self._latest[slot] = seq
                self._vtime[slot] = key
                _vt_sift_down(keys, seqs, slots, 0, self._n)
                return
        known = self._knows(agent)
        slot = self._slot(agent)
        v = max(self._vtime[slot], self._now_v) if known else self._now_v
        self._now_v = v
        self._push(slot, v + self.charge(agent, task))

    def changed(self, agent: AgentState, now: float) -> None:
        # (`_full` is empty most of the time: tested first, it spares a lookup per change.)
        full = self._full
        if full and agent.id in full and agent.alive and agent.has_room:
            full.discard(agent.id)
            slot = agent.index
            self._push(slot, max(self._vtime[slot], self._now_v))

    def virtual_time(self, agent_id: str) -> float:
        return self._vtime[self._agents[agent_id].index]


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
            # `_index.push` then `compact`, with `_least_loaded_key` and the test for
            # compacting written out: this runs for every task.
            index = self._index
            index.push_key((agent.backlog_work + agent.running_work + 1e-9) / agent.speed, agent)
            if len(index) > 4 * len(self._agents) + 64:
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

    def changed(self, agent: AgentState, now: float) -> None:
        if not agent.alive:
            return
        # `RoundRobin.changed`, then `_victims.push` and `compact` with `_victim_key`,
        # written out: this runs for every task bound and every task stolen.
        if agent.id not in self._in_ring and agent.has_room:
            self._enter(agent)
        if agent.backlog_size:
            victims = self._victims
            victims.push_key(-agent.backlog_work / agent.speed, agent)
            if len(victims) > 4 * len(self._agents) + 64:
                victims.rebuild(self._agents)

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
        # By agent number: since when the agent has had nothing running (`_INF`: it has
        # something). An array rather than a dict by id, so that an agent starting or
        # finishing a task reads no more than the agent, and allocates nothing.
        self._idle_since = vec[float]()
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
        if agent.index < len(self._idle_since):
            self._idle_since[agent.index] = _INF

    def changed(self, agent: AgentState, now: float) -> None:
        self._epoch += 1
        if not agent.alive:
            return
        slot: i64 = agent.index
        while len(self._idle_since) <= slot:
            self._idle_since = append(self._idle_since, _INF)
        if agent.in_flight == 0:
            if self._idle_since[slot] == _INF:
                self._idle_since[slot] = now
        else:
            self._idle_since[slot] = _INF
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
            since = self._idle_since[idle.index]
            if now - (now if since == _INF else since) >= self.PROBE_AFTER:
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

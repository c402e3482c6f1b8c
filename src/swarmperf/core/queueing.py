"""The central task queue: four priority levels, tenant fairness, aging and admission.

Levels, as in the seed's coordinator:

* critical: earliest deadline first;
* high: by `rank` (larger first), then arrival;
* normal: tenants interleaved by weighted round robin, each tenant first in first out;
* low: fair share, the tenant that has been served least (per weight) goes next.

Non-empty levels are served in proportion 0.4 / 0.3 / 0.2 / 0.1 (deterministic stride
scheduling, so runs are reproducible), except that a critical task within `urgent_within`
seconds of its deadline goes first, and any task that has waited `max_wait` seconds goes
next whatever its level (aging: nothing starves).

Removal is lazy: a task taken out of order (by aging) leaves a stale entry behind that is
skipped later; `Task.seq` tells live entries from stale ones.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from swarmperf.core.errors import ConfigError
from swarmperf.core.model import Priority, Task

_INF: Final = float("inf")
_NORMAL: Final = Priority.NORMAL
_LOW: Final = Priority.LOW


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Validated queue settings. Durations are seconds."""

    max_queued: int = 100_000
    level_weights: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    max_wait: float = 30.0
    urgent_within: float = 1.0
    tenant_weights: Mapping[str, float] = field(default_factory=dict)
    tenant_quotas: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_queued < 1:
            raise ConfigError("queue.max_queued", self.max_queued, "Use an integer >= 1.")
        if len(self.level_weights) != 4 or any(not w > 0 for w in self.level_weights):
            raise ConfigError(
                "queue.level_weights",
                self.level_weights,
                "Give four weights > 0 for critical, high, normal and low.",
            )
        if not self.max_wait > 0:
            raise ConfigError("queue.max_wait", self.max_wait, "Use a duration > 0, e.g. 30s.")
        if self.urgent_within < 0:
            raise ConfigError(
                "queue.urgent_within", self.urgent_within, "Use a duration >= 0, e.g. 1s."
            )
        for tenant, w in self.tenant_weights.items():
            if not w > 0:
                raise ConfigError(f"queue.tenant_weights[{tenant}]", w, "Use a number > 0.")
        for tenant, q in self.tenant_quotas.items():
            if q < 1:
                raise ConfigError(f"queue.tenant_quotas[{tenant}]", q, "Use an integer >= 1.")


class _Line:
    """A first-in first-out line of queued tasks, each with the `seq` it had when it came
    in (an entry is stale once the task's `seq` differs: it was taken out of order).

    Two lists kept in step rather than one of `(seq, task)` pairs: a pair is an object
    the garbage collector tracks, one per queued task, and a long queue made every
    collection walk them all. Lists rather than deques: compiled, a list's append and
    index are direct calls, a deque's methods are looked up by name. The line starts at
    `head`; the entries before it are gone, and are cut off in bulk once they are at
    least half the lists (and a thousand), so that each costs O(1) once.
    """

    __slots__ = ("head", "seqs", "tasks")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.tasks: list[Task] = []
        self.head = 0

    def __len__(self) -> int:
        return len(self.tasks) - self.head

    def __bool__(self) -> bool:
        # Written out: compiled, a class is true unless it says otherwise.
        return len(self.tasks) > self.head

    def first(self) -> Task:
        return self.tasks[self.head]

    def first_seq(self) -> int:
        return self.seqs[self.head]

    def append(self, seq: int, task: Task) -> None:
        self.seqs.append(seq)
        self.tasks.append(task)

    def appendleft(self, seq: int, task: Task) -> None:
        head = self.head
        if head > 0:
            # Usually where a task was taken a moment ago: its place is free.
            head -= 1
            self.seqs[head] = seq
            self.tasks[head] = task
            self.head = head
        else:
            self.seqs.insert(0, seq)
            self.tasks.insert(0, task)

    def drop_first(self) -> None:
        head = self.head + 1
        tasks = self.tasks
        n = len(tasks)
        if head >= n:
            tasks.clear()
            self.seqs.clear()
            head = 0
        elif head >= 1024 and 2 * head >= n:
            del tasks[:head]
            del self.seqs[:head]
            head = 0
        self.head = head

    def first_is_stale(self) -> bool:
        head = self.head
        return self.seqs[head] != self.tasks[head].seq

    def pop_live(self) -> Task | None:
        """Take the first live task, dropping the stale entries before it."""
        seqs = self.seqs
        tasks = self.tasks
        while len(tasks) > self.head:
            head = self.head
            seq = seqs[head]
            task = tasks[head]
            self.drop_first()
            if seq == task.seq:
                return task
        return None

    def live(self, limit: int) -> list[Task]:
        """The first `limit` live tasks, in order, left in place."""
        out: list[Task] = []
        if limit <= 0:
            return out
        seqs = self.seqs
        tasks = self.tasks
        for i in range(self.head, len(tasks)):
            task = tasks[i]
            if seqs[i] == task.seq:
                out.append(task)
                if len(out) >= limit:
                    break
        return out

    def entries(self) -> list[tuple[int, Task]]:
        """Every entry, stale ones too, in order (for compacting: rarely)."""
        return list(zip(self.seqs[self.head :], self.tasks[self.head :], strict=True))

    def remove(self, task: Task) -> None:
        """Remove the first entry of `task`."""
        i = self.tasks.index(task, self.head)
        del self.tasks[i]
        del self.seqs[i]

    def clear(self) -> None:
        self.seqs.clear()
        self.tasks.clear()
        self.head = 0


class _TenantRotation:
    """Tenants with queued work, each a FIFO, interleaved by stride scheduling.

    With `by_service` the charge is the task's estimated cost (fair share of work) instead
    of one per task (weighted round robin).
    """

    __slots__ = ("_by_service", "_fifos", "_heap", "_pass", "_seq", "_vt", "_weights")

    def __init__(self, weights: Mapping[str, float], by_service: bool) -> None:
        self._fifos: dict[str, _Line] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._pass: dict[str, float] = {}
        # A dict of its own: compiled, its `get` is a direct call (a Mapping's is looked up).
        self._weights: dict[str, float] = dict(weights)
        self._by_service = by_service
        self._vt = 0.0
        self._seq = itertools.count()

    def push(self, task: Task, front: bool = False) -> None:
        """Queue `task` under its current `seq`."""
        tenant = task.tenant
        fifo = self._fifos.get(tenant)
        if fifo is None or not fifo:
            # A tenant's line is kept when it empties (a queue that is mostly empty would
            # make and drop one per task), but it enters the rotation afresh.
            if fifo is None:
                fifo = self._fifos[tenant] = _Line()
            p = self._pass.get(tenant, 0.0)
            if p < self._vt:
                p = self._vt
            self._pass[tenant] = p
            heapq.heappush(self._heap, (p, next(self._seq), tenant))
        if front:
            fifo.appendleft(task.seq, task)
        else:
            fifo.append(task.seq, task)

    def pass_through(self, task: Task) -> bool:
        """What `push(task)` then `pop()` do to the rotation when it is empty, without
        storing the task; False (nothing done) when it is not empty."""
        if self._heap:
            return False
        tenant = task.tenant
        if tenant not in self._fifos:
            self._fifos[tenant] = _Line()
        p = self._pass.get(tenant, 0.0)
        if p < self._vt:
            p = self._vt
        next(self._seq)  # the number `push` would have drawn for its turn
        self._vt = p
        charge = task.est_cost if self._by_service else 1.0
        self._pass[tenant] = p + charge / self._weights.get(tenant, 1.0)
        return True

    def pop(self) -> Task | None:
        heap = self._heap
        if len(heap) == 1:
            # One tenant: no interleaving to do, only its pass to keep for later arrivals.
            p, seq, tenant = heap[0]
            fifo = self._fifos[tenant]
            task = fifo.pop_live()
            if task is not None:
                self._vt = p
                charge = task.est_cost if self._by_service else 1.0
                np = p + charge / self._weights.get(tenant, 1.0)
                self._pass[tenant] = np
                if fifo:
                    heap[0] = (np, seq, tenant)
                else:
                    heap.clear()
                return task
            heap.clear()
            return None
        while heap:
            p, _, tenant = heap[0]
            fifo = self._fifos[tenant]
            while fifo and fifo.first_is_stale():
                fifo.drop_first()  # stale: taken out of order by aging
            if not fifo:
                heapq.heappop(heap)
                continue
            task = fifo.first()
            fifo.drop_first()
            self._vt = p
            charge = task.est_cost if self._by_service else 1.0
            np = p + charge / self._weights.get(tenant, 1.0)
            self._pass[tenant] = np
            if fifo:
                heapq.heapreplace(heap, (np, next(self._seq), tenant))
            else:
                heapq.heappop(heap)
            return task
        return None


class TaskQueue:
    """The four-level queue. Not thread-safe; the coordinator owns it.

    `clock` is not read here: callers pass `now`, so the queue runs in real or virtual time.
    """

    def __init__(self, settings: QueueSettings | None = None) -> None:
        self.settings = s = settings or QueueSettings()
        # The number the next task pushed gets (an int rather than `itertools.count`:
        # compiled, `next` on one is looked up among the builtins at each call).
        self._next_seq = 0
        self._critical: list[tuple[float, int, Task]] = []
        self._high: list[tuple[int, int, Task]] = []
        self._normal = _TenantRotation(s.tenant_weights, by_service=False)
        self._low = _TenantRotation(s.tenant_weights, by_service=True)
        self._arrivals = _Line()
        self._counts = [0, 0, 0, 0]
        self._len = 0
        self._level_pass = [0.0, 0.0, 0.0, 0.0]
        self._level_step = [1.0 / w for w in s.level_weights]
        self._level_vt = 0.0
        # The earliest time at which the oldest queued task reaches max_wait.
        self._age_due = _INF

    def __len__(self) -> int:
        return self._len

    def counts(self) -> dict[str, int]:
        return {p.name.lower(): self._counts[p] for p in Priority}

    def push(self, task: Task, now: float, *, front: bool = False) -> None:
        """Queue `task`. `front`: it was taken out a moment ago and goes back where it was."""
        arrivals = self._arrivals
        if not front:
            task.enqueued_at = now
            task.seq = seq = self._next_seq
            self._next_seq = seq + 1
            if not arrivals:
                self._age_due = now + self.settings.max_wait
            elif len(arrivals) > 2 * self._len + 1024:
                self._compact_arrivals()
                arrivals = self._arrivals  # the compacted line: the entry must go there
            arrivals.append(seq, task)
        else:
            if task.seq < 0:
                task.seq = self._next_seq
                self._next_seq += 1
            arrivals.appendleft(task.seq, task)
            self._age_due = min(self._age_due, task.enqueued_at + self.settings.max_wait)
        level = task.priority
        counts = self._counts
        if counts[level] == 0:
            # A level that was idle does not get to claim the turns it missed.
            passes = self._level_pass
            if passes[level] < self._level_vt:
                passes[level] = self._level_vt
        counts[level] += 1
        self._len += 1
        if level is _NORMAL:
            self._normal.push(task, front)
        elif level is Priority.CRITICAL:
            deadline = _INF if task.deadline is None else task.deadline
            heapq.heappush(self._critical, (deadline, task.seq, task))
        elif level is Priority.HIGH:
            heapq.heappush(self._high, (-task.rank, task.seq, task))
        else:
            self._low.push(task, front)

    def push_many(self, tasks: list[Task], now: float) -> None:
        """`push(task, now)` for each of `tasks` in order, in one call: the same entries,
        turns and aging, with the normal level's push written out (most work is normal)."""
        max_wait = self.settings.max_wait
        counts = self._counts
        passes = self._level_pass
        rotation = self._normal
        fifos = rotation._fifos
        tenant = ""
        fifo: _Line | None = None
        for task in tasks:
            if task.priority is not _NORMAL:
                self.push(task, now)
                continue
            task.enqueued_at = now
            task.seq = seq = self._next_seq
            self._next_seq = seq + 1
            arrivals = self._arrivals
            if not arrivals:
                self._age_due = now + max_wait
            elif len(arrivals) > 2 * self._len + 1024:
                self._compact_arrivals()
                arrivals = self._arrivals
            arrivals.append(seq, task)
            if counts[2] == 0 and passes[2] < self._level_vt:
                passes[2] = self._level_vt
            counts[2] += 1
            self._len += 1
            if fifo is None or task.tenant != tenant:
                tenant = task.tenant
                fifo = fifos.get(tenant)
            if fifo is not None and fifo:
                fifo.append(seq, task)
            else:  # the tenant enters the rotation: as `push` does it
                rotation.push(task, False)
                fifo = fifos[tenant]

    def pass_through(self, task: Task, now: float) -> bool:
        """Account for `task` as `push(task, now)` then `pop(now)` would, without storing
        it: the task that comes in is the one that goes out when the queue is empty. Only
        then (with no stale entries left either), and for the normal and low levels;
        returns False, having done nothing, otherwise.

        Every figure comes out as push then pop leave it, so the tasks that come later are
        ordered exactly as they would have been.
        """
        if self._len or self._arrivals:
            return False
        level = task.priority
        if level is _NORMAL:
            rotation = self._normal
        elif level is _LOW:
            rotation = self._low
        else:
            return False
        if not rotation.pass_through(task):
            return False
        task.enqueued_at = now
        self._next_seq += 1  # the number `push` would have given it
        task.seq = -1
        self._age_due = now + self.settings.max_wait
        # The level was idle: it starts from the levels' virtual time, then takes its turn.
        passes = self._level_pass
        p = passes[level]
        if p < self._level_vt:
            p = self._level_vt
        self._level_vt = p
        passes[level] = p + self._level_step[level]
        return True

    def pop(self, now: float) -> Task | None:
        """Take the task that should run next, or None if the queue is empty."""
        if self._len == 0:
            return None
        task = self._aged(now) if now >= self._age_due else None
        if task is None and self._counts[0]:
            task = self._urgent(now)
        if task is None:
            if self._len == self._counts[2]:
                # Only normal work is queued: no level to weigh against.
                passes = self._level_pass
                self._level_vt = passes[2]
                passes[2] += self._level_step[2]
                task = self._normal.pop()
                if task is None:
                    raise RuntimeError("normal level is empty but counted")
            else:
                task = self._by_level_weight()
        # As `_taken`, written out: this runs for every task.
        task.seq = -1
        self._counts[task.priority] -= 1
        self._len -= 1
        # Usually the task taken is the oldest one queued (one FIFO line, say): drop its
        # arrival entry now rather than leave it stale. The oldest live task is unchanged,
        # so aging decides exactly as before; `_age_due` stays a lower bound of its due time.
        arrivals = self._arrivals
        if arrivals and arrivals.first() is task:
            arrivals.drop_first()
        return task

    def line(self, limit: int) -> list[Task] | None:
        """The next `limit` tasks in the order `pop` would take them, left in place, when
        that order is one tenant's line (only normal work queued, from one tenant); None
        otherwise, and the caller pops.

        With `take` and `looked`, a caller looks past tasks it cannot place yet without
        taking each one out and putting it back: the decisions, and the turns charged to
        levels and tenants, are those of popping and pushing back, at a cost that does not
        grow with how often the same tasks are looked at.
        """
        if self._len == 0 or self._len != self._counts[2]:
            return None
        heap = self._normal._heap
        if len(heap) != 1:
            return None
        return self._normal._fifos[heap[0][2]].live(limit)

    def take(self, looked: list[Task], index: int, now: float) -> Task:
        """Take `looked[index]` out of a `line`, as popping `looked[0..index]` and pushing
        back all but that one would have."""
        self._charge(looked, index + 1, now)
        task = looked[index]
        fifo = self._normal._fifos[task.tenant]
        # Removed rather than left stale, so that a task held at the head for long does
        # not make every later look walk past the ones taken behind it.
        fifo.remove(task)
        if not fifo:
            # As the pop that emptied the tenant's line would: it leaves the rotation, and
            # enters it afresh with its next task.
            self._normal._heap.clear()
        self._taken(task)
        arrivals = self._arrivals
        if arrivals and arrivals.first() is task:
            arrivals.drop_first()
        return task

    def take_first(self, looked: list[Task], count: int, now: float) -> None:
        """Take `looked[0..count)` out of a `line`, as popping each of them in turn would."""
        if count <= 0:
            return
        self._charge(looked, count, now)
        rotation = self._normal
        fifo = rotation._fifos[looked[0].tenant]
        arrivals = self._arrivals
        max_wait = self.settings.max_wait
        for i in range(count):
            task = looked[i]
            if now - task.enqueued_at >= max_wait:
                # `pop` takes it by aging, from the arrivals: its place in the tenant's
                # line goes stale and stays, and the rotation is left as it was.
                while arrivals and arrivals.first_is_stale():
                    arrivals.drop_first()
                if arrivals and arrivals.first() is task:
                    arrivals.drop_first()
                task.seq = -1
                continue
            # Stale entries before it are dropped, as `pop` skips them.
            if fifo.pop_live() is not task:
                raise RuntimeError("a line's task is not first in its line")
            task.seq = -1
            if arrivals and arrivals.first() is task:
                arrivals.drop_first()
            if not fifo:
                # As the pop that emptied the tenant's line would: it leaves the rotation.
                rotation._heap.clear()
        self._counts[2] -= count
        self._len -= count

    def looked(self, looked: list[Task], count: int, now: float) -> None:
        """Account for popping `looked[0..count)` of a `line` and pushing them back."""
        self._charge(looked, count, now)

    def _charge(self, looked: list[Task], count: int, now: float) -> None:
        # Each pop takes a turn from the normal level and from the tenant, except a task
        # taken because it has waited `max_wait` (aging passes the rotation by). In a
        # one-tenant line the oldest task is the first in line, so aging takes the same
        # task the rotation would.
        max_wait = self.settings.max_wait
        passes = self._level_pass
        step = self._level_step[2]
        rotation = self._normal
        heap = rotation._heap
        p, seq, tenant = heap[0]
        per = 1.0 / rotation._weights.get(tenant, 1.0)
        # The same sums in the same order as a pop each, kept in locals and written once
        # (compiled, a float in a list is an object: one is made at each write).
        level = passes[2]
        level_vt = self._level_vt
        vt = rotation._vt
        charged = False
        for i in range(count):
            if now - looked[i].enqueued_at >= max_wait:
                continue
            level_vt = level
            level += step
            vt = p
            p = p + per
            charged = True
        if charged:
            self._level_vt = level_vt
            passes[2] = level
            rotation._vt = vt
            rotation._pass[tenant] = p
            heap[0] = (p, seq, tenant)

    def _compact_arrivals(self) -> None:
        old = self._arrivals
        line = _Line()
        for seq, task in old.entries():
            if task.seq == seq:
                line.append(seq, task)
        self._arrivals = line

    def _taken(self, task: Task) -> None:
        task.seq = -1
        self._counts[task.priority] -= 1
        self._len -= 1

    def _aged(self, now: float) -> Task | None:
        arrivals = self._arrivals
        max_wait = self.settings.max_wait
        while arrivals:
            task = arrivals.first()
            if task.seq != arrivals.first_seq():
                arrivals.drop_first()
                continue
            if now - task.enqueued_at < max_wait:
                self._age_due = task.enqueued_at + max_wait
                return None
            arrivals.drop_first()
            # Its entry in the level structure goes stale once seq is reset by _taken.
            return task
        self._age_due = _INF
        return None

    def _urgent(self, now: float) -> Task | None:
        heap = self._critical
        while heap and heap[0][2].seq != heap[0][1]:
            heapq.heappop(heap)
        if heap and heap[0][0] - now <= self.settings.urgent_within:
            return heapq.heappop(heap)[2]
        return None

    def _by_level_weight(self) -> Task:
        counts = self._counts
        passes = self._level_pass
        best = -1
        for level in (0, 1, 2, 3):
            if counts[level] and (best < 0 or passes[level] < passes[best]):
                best = level
        self._level_vt = passes[best]
        passes[best] += self._level_step[best]
        task = self._pop_level(best)
        if task is None:  # counts said non-empty; the structure disagrees: a bug
            raise RuntimeError(f"queue level {best} is empty but counted {counts[best]}")
        return task

    def _pop_level(self, level: int) -> Task | None:
        if level == Priority.NORMAL:
            return self._normal.pop()
        if level == Priority.LOW:
            return self._low.pop()
        if level == Priority.CRITICAL:
            while self._critical:
                _, seq, task = heapq.heappop(self._critical)
                if task.seq == seq:
                    return task
            return None
        while self._high:
            _, seq, task = heapq.heappop(self._high)
            if task.seq == seq:
                return task
        return None

    def drain(self) -> list[Task]:
        """Remove and return every queued task, in the order they would have run."""
        out: list[Task] = []
        while self._len:
            task = self._by_level_weight()
            self._taken(task)
            out.append(task)
        self._arrivals.clear()
        self._age_due = _INF
        return out

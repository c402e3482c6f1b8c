"""A profile as folded stacks: frames, sample counts by stack and by agent and handler.

Every sampler (the in-process one, py-spy on a worker or a command) fills a `Profile`; the
writers and the terminal summary read one. It travels as plain JSON (`to_data` /
`from_data`), which is what the service's `/v1/profile` answers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from swarmperf.core.errors import ConfigError

# The parts of a swarm a sample can belong to: an agent's work (its handler, or its worker's
# own code) or the rest of the process (the event loop, the coordinator, the journal, HTTP).
AGENT = "agent"
COORDINATOR = "coordinator"
COMMAND = "command"  # a profiled command's process, which tells nothing of its agents
COMPONENT_CHOICES = ("all", "coordinator", "agents")
WORKER = "(worker)"  # an agent's worker in its own code, between handlers
AWAITING = "(awaiting in a handler)"  # root frame of a suspended worker's await chain

Frame = tuple[str, str, int]  # function name, file, first line


@dataclass(frozen=True, slots=True)
class StackKey:
    """One distinct stack, root first, and whose work it was."""

    frames: tuple[int, ...]
    component: str
    agent: str | None = None
    handler: str | None = None


@dataclass
class Profile:
    """Samples folded by stack. `idle` counts samples of threads that were waiting (a
    selector, a lock, a queue): left out of the stacks, as py-spy leaves them out."""

    rate: float
    duration_s: float
    frames: list[Frame] = field(default_factory=list)
    stacks: Counter[StackKey] = field(default_factory=Counter)
    idle: int = 0
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    memory: dict[str, Any] | None = None
    _index: dict[Frame, int] = field(default_factory=dict, repr=False)

    def frame_id(self, frame: Frame) -> int:
        found = self._index.get(frame)
        if found is None:
            found = self._index[frame] = len(self.frames)
            self.frames.append(frame)
        return found

    def add(
        self,
        frames: Iterable[Frame],
        component: str,
        agent: str | None = None,
        handler: str | None = None,
        count: int = 1,
    ) -> None:
        ids = tuple(self.frame_id(f) for f in frames)
        self.stacks[StackKey(ids, component, agent, handler)] += count

    @property
    def samples(self) -> int:
        return sum(self.stacks.values())

    def merge(self, other: Profile) -> None:
        for key, count in other.stacks.items():
            self.add(
                (other.frames[i] for i in key.frames), key.component, key.agent, key.handler, count
            )
        self.idle += other.idle
        self.sources.extend(other.sources)
        self.notes.extend(other.notes)

    def select(self, components: str) -> Profile:
        """Only the samples of `components`: all, coordinator, agents or one agent's id."""
        kept = Profile(
            self.rate,
            self.duration_s,
            idle=self.idle,
            sources=list(self.sources),
            notes=list(self.notes),
            memory=self.memory,
        )
        for key, count in self.stacks.items():
            if _matches(key, components):
                kept.add(
                    (self.frames[i] for i in key.frames),
                    key.component,
                    key.agent,
                    key.handler,
                    count,
                )
        return kept

    # -- figures ----------------------------------------------------------------------

    def top_self(self, n: int = 15) -> list[dict[str, Any]]:
        """The functions where samples ended (self time), most first, with their total
        (samples with the function anywhere on the stack)."""
        own: Counter[int] = Counter()
        total: Counter[int] = Counter()
        for key, count in self.stacks.items():
            if key.frames:
                own[key.frames[-1]] += count
            for i in set(key.frames):
                total[i] += count
        samples = self.samples or 1
        rows = []
        for i, count in own.most_common(n):
            name, file, line = self.frames[i]
            rows.append(
                {
                    "function": name,
                    "file": file,
                    "line": line,
                    "self_samples": count,
                    "self_share": count / samples,
                    "total_samples": total[i],
                    "total_share": total[i] / samples,
                }
            )
        return rows

    def split(self, by: str) -> list[dict[str, Any]]:
        """Samples per agent (`by="agent"`) or per handler (`by="handler"`), most first;
        samples that belong to none are under null."""
        counts: Counter[str | None] = Counter()
        for key, count in self.stacks.items():
            counts[key.agent if by == "agent" else key.handler] += count
        samples = self.samples or 1
        return [
            {by: name, "samples": count, "share": count / samples}
            for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] or ""))
        ]

    def attributed_share(self) -> float | None:
        """The share of (non-idle) samples attributed to a named agent or handler."""
        samples = self.samples
        if not samples:
            return None
        named = sum(
            count
            for key, count in self.stacks.items()
            if key.agent is not None or key.handler is not None
        )
        return named / samples

    def folded(self) -> Counter[tuple[int, ...]]:
        """Counts by stack alone (whoever's work it was)."""
        out: Counter[tuple[int, ...]] = Counter()
        for key, count in self.stacks.items():
            out[key.frames] += count
        return out

    def awaiting(self) -> int:
        """Samples of handlers suspended in an await (wall time, not CPU time)."""
        return sum(
            count
            for key, count in self.stacks.items()
            if key.frames and self.frames[key.frames[0]][0] == AWAITING
        )

    def summary(self, top: int = 15) -> dict[str, Any]:
        """The figures the terminal shows and `-o json` prints."""
        share = self.attributed_share()
        awaiting = self.awaiting()
        return {
            "rate_hz": self.rate,
            "duration_s": self.duration_s,
            "samples": self.samples,
            "cpu_samples": self.samples - awaiting,
            "awaiting_samples": awaiting,
            "idle_samples": self.idle,
            "attributed_share": share,
            "attributed_reason": None
            if share is not None
            else "every sample was idle: nothing ran in the window"
            if self.idle
            else "no samples were taken",
            "top_self": self.top_self(top),
            "agents": self.split("agent"),
            "handlers": self.split("handler"),
            "sources": list(self.sources),
            "notes": list(self.notes),
            "memory": self.memory,
        }

    # -- as data ---------------------------------------------------------------------

    def to_data(self) -> dict[str, Any]:
        return {
            "rate_hz": self.rate,
            "duration_s": self.duration_s,
            "frames": [list(f) for f in self.frames],
            "stacks": [
                {
                    "frames": list(key.frames),
                    "component": key.component,
                    "agent": key.agent,
                    "handler": key.handler,
                    "count": count,
                }
                for key, count in self.stacks.items()
            ],
            "idle_samples": self.idle,
            "sources": list(self.sources),
            "notes": list(self.notes),
            "memory": self.memory,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Profile:
        try:
            profile = cls(
                float(data["rate_hz"]),
                float(data["duration_s"]),
                idle=int(data.get("idle_samples", 0)),
                sources=[str(s) for s in data.get("sources", [])],
                notes=[str(s) for s in data.get("notes", [])],
                memory=data.get("memory"),
            )
            frames: list[Frame] = [(str(n), str(f), int(ln)) for n, f, ln in data["frames"]]
            for row in data["stacks"]:
                profile.add(
                    (frames[i] for i in row["frames"]),
                    str(row["component"]),
                    row.get("agent"),
                    row.get("handler"),
                    int(row["count"]),
                )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ConfigError(
                "profile", type(exc).__name__, "The profile data is not one swarmperf wrote."
            ) from exc
        return profile


def _matches(key: StackKey, components: str) -> bool:
    if components == "all":
        return True
    if components == "coordinator":
        return key.component == COORDINATOR
    if components == "agents":
        return key.agent is not None
    return key.agent == components


def check_components(components: str, agents: Iterable[str], field: str = "--components") -> str:
    """`components` if it is all, coordinator, agents or one of `agents`; else ConfigError."""
    known = list(agents)
    if components in COMPONENT_CHOICES or components in known:
        return components
    shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
    raise ConfigError(
        field,
        components,
        f"Use all, coordinator, agents or an agent's id ({shown or 'the swarm has none'}).",
    )


def frame_label(frame: Frame) -> str:
    """A frame as folded stacks and flame graphs show it: `name (file:line)`."""
    name, file, line = frame
    return f"{name} ({file}:{line})" if file else name

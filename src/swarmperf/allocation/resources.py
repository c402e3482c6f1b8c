"""The resources file: agent pools, their prices and speeds, constraints and the workload mix.

YAML or JSON, read with the project's bounded YAML loader and checked like a swarm spec:
every problem is reported at once, as `<field.path>: <value> — <what is wrong>. <fix>`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from swarmperf.allocation.cost import CostModel
from swarmperf.core.errors import ConfigError, preview
from swarmperf.core.safe_yaml import YamlProblem, kind_of, load_yaml_text, looks_like, read_text
from swarmperf.spec.sections import choose_name
from swarmperf.spec.types import (
    ByteSize,
    PositiveDuration,
    PositiveFloat,
    Rate,
    Section,
    Share,
    problem,
)

KindName = Annotated[str, Field(min_length=1, max_length=200)]
PoolName = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.]*$")]
MAX_POOL = 10_000  # agents in one pool
MAX_POOLS = 32
MAX_PROBLEMS_LISTED = 20
_SHARES_TOLERANCE = 1e-6
EXAMPLE = (
    "pools: [{id: small, cost_per_hour: 0.1, max: 20, service_time: {work: 200ms}}], "
    "workload: {rate: 50/s, mix: {work: 1}}, constraints: {slo: {work: {p99: 1s}}}"
)


def _shares_add_up(shares: Mapping[str, float], example: str) -> None:
    total = sum(shares.values())
    if abs(total - 1.0) > _SHARES_TOLERANCE:
        raise problem(
            "shares",
            f"the shares add up to {total:g}, not 1",
            f"Make them add up to 1, e.g. {example}.",
            value=dict(shares),
        )


class PoolSpec(Section):
    """A pool of alike agents (one kind of agent or machine) and what each costs and does.

    `service_time` is the mean time of one task of each kind on one of an agent's
    `concurrency` slots (its speed, declared; `--swarm-id` measures it where the store has
    data); `cv` is the spread of those times (standard deviation over mean)."""

    id: PoolName
    machine: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    cost_per_hour: Annotated[float, Field(ge=0)]
    cpu: PositiveFloat | None = None
    memory: ByteSize | None = None
    concurrency: Annotated[int, Field(ge=1, le=10_000)] = 1
    min: Annotated[int, Field(ge=0, le=MAX_POOL)] = 0
    max: Annotated[int, Field(ge=0, le=MAX_POOL)] = 16
    service_time: dict[KindName, PositiveDuration] = Field(default_factory=dict)
    cv: Annotated[float, Field(ge=0, le=20)] = 1.0

    @model_validator(mode="after")
    def _bounds(self) -> PoolSpec:
        if self.min > self.max:
            raise problem(
                "bounds",
                f"min ({self.min}) is above max ({self.max})",
                "Make min at most max.",
                value={"min": self.min, "max": self.max},
                at="min",
            )
        return self


class TraceSource(Section):
    """A workload trace (a CSV file as `autoscale-eval` reads it): the pools are sized for
    the `percentile` of its per-`interval` arrival rates (100: its busiest interval)."""

    file: Path
    interval: PositiveDuration = 60.0
    percentile: Annotated[float, Field(gt=0, le=100)] = 95.0


class WorkloadMix(Section):
    """What arrives: `rate` tasks per second, split by `mix` over task kinds and by `tenants`
    over tenants; or the workload of a swarm spec (`spec`); or the rate of a `trace` with
    the `mix` given here; or, with none of them, the mix a swarm recorded (`--swarm-id`)."""

    rate: Rate | None = None
    mix: dict[KindName, Share] | None = None
    tenants: dict[KindName, Share] = Field(default_factory=lambda: {"default": 1.0})
    spec: Path | None = None
    trace: TraceSource | None = None

    @field_validator("mix")
    @classmethod
    def _mix_adds_up(cls, shares: dict[str, float] | None) -> dict[str, float] | None:
        if shares is not None:
            if not shares:
                raise problem("mix", "is empty", "Name at least one kind, e.g. {work: 1}.")
            _shares_add_up(shares, "{summarise: 0.3, embed: 0.7}")
        return shares

    @field_validator("tenants")
    @classmethod
    def _tenants_add_up(cls, shares: dict[str, float]) -> dict[str, float]:
        _shares_add_up(shares, "{a: 0.6, b: 0.4}")
        return shares

    @model_validator(mode="after")
    def _one_source(self) -> WorkloadMix:
        if self.trace is not None:
            if self.spec is not None or self.rate is not None:
                raise problem(
                    "source",
                    "gives a trace and a " + ("spec" if self.spec is not None else "rate"),
                    "Give one source of the rate: the trace, a rate, or a spec.",
                    value={"trace": str(self.trace.file)},
                )
            if self.mix is None:
                raise problem(
                    "source",
                    "gives a trace but no mix",
                    "A trace gives the rate, not the task kinds: add mix, e.g. {work: 1}.",
                    value={"trace": str(self.trace.file)},
                )
            return self
        if self.spec is not None and (self.rate is not None or self.mix is not None):
            raise problem(
                "source",
                "gives a spec and a rate or mix at once",
                "Give either spec (its workload is used) or rate and mix.",
                value={"spec": str(self.spec)},
            )
        if (self.rate is None) != (self.mix is None) and self.spec is None:
            raise problem(
                "source",
                "gives only one of rate and mix",
                "Give both, e.g. rate: 50/s and mix: {work: 1}.",
                value={"rate": self.rate, "mix": self.mix},
            )
        return self


class SloSpec(Section):
    """A kind's latency objective: its 99th percentile (queueing plus service)."""

    p99: PositiveDuration


class ConstraintsSpec(Section):
    """What an allocation must meet: a budget, per-kind SLOs, tenants' guaranteed shares of
    capacity (each tenant's load must fit in its share) and a ceiling on utilisation."""

    budget_per_hour: Annotated[float, Field(ge=0)] | None = None
    slo: dict[KindName, SloSpec] = Field(default_factory=dict)
    tenant_shares: dict[KindName, Share] = Field(default_factory=dict)
    max_utilisation: Annotated[float, Field(gt=0, lt=1)] = 0.95

    @field_validator("tenant_shares")
    @classmethod
    def _shares_at_most_one(cls, shares: dict[str, float]) -> dict[str, float]:
        total = sum(shares.values())
        if total > 1.0 + _SHARES_TOLERANCE:
            raise problem(
                "shares",
                f"the shares add up to {total:g}, more than 1",
                "Make them add up to at most 1, e.g. {a: 0.5, b: 0.5}.",
                value=dict(shares),
            )
        return shares


class ResourcesSpec(Section):
    """A whole resources file."""

    currency: Annotated[str, Field(min_length=1, max_length=10)] = "USD"
    pools: tuple[PoolSpec, ...]
    workload: WorkloadMix = WorkloadMix()
    constraints: ConstraintsSpec = ConstraintsSpec()

    @field_validator("pools")
    @classmethod
    def _pools(cls, pools: tuple[PoolSpec, ...]) -> tuple[PoolSpec, ...]:
        if not pools:
            raise problem("pools", "is empty", "Give at least one pool.")
        if len(pools) > MAX_POOLS:
            raise problem("pools", f"holds more than {MAX_POOLS} pools", "Merge alike pools.")
        ids = [p.id for p in pools]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise problem("pools", f"names pool {twice[0]!r} twice", "Give each pool its own id.")
        return pools

    @model_validator(mode="after")
    def _names_agree(self) -> ResourcesSpec:
        kinds = self.kinds()
        if kinds is not None:
            for kind in self.constraints.slo:
                if kind not in kinds:
                    raise problem(
                        "slo",
                        f"constraints.slo names kind {kind!r}, which the workload mix has not",
                        choose_name(kind, sorted(kinds)),
                        value=kind,
                        at=f"constraints.slo.{kind}",
                    )
        tenants = self.workload.tenants
        for tenant in self.constraints.tenant_shares:
            if tenant not in tenants:
                raise problem(
                    "tenant",
                    f"constraints.tenant_shares names tenant {tenant!r}, which "
                    "workload.tenants has not",
                    choose_name(tenant, sorted(tenants)),
                    value=tenant,
                    at=f"constraints.tenant_shares.{tenant}",
                )
        if sum(p.min * p.cost_per_hour for p in self.pools) > (
            self.constraints.budget_per_hour
            if self.constraints.budget_per_hour is not None
            else float("inf")
        ):
            raise problem(
                "budget",
                "constraints.budget_per_hour is below what the pools' min sizes cost",
                "Raise the budget or lower the pools' min.",
                value=self.constraints.budget_per_hour,
                at="constraints.budget_per_hour",
            )
        return self

    def kinds(self) -> list[str] | None:
        """The workload's kinds when the file names them."""
        return None if self.workload.mix is None else list(self.workload.mix)

    def cost_model(self) -> CostModel:
        """The cost model of these pools: what reports price stored runs with."""
        return CostModel(
            per_task=None,
            currency=self.currency,
            per_pool_hour={p.id: p.cost_per_hour for p in self.pools},
        )


# -- errors -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourcesProblem:
    """One thing wrong with a resources file."""

    path: str
    value: object
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {preview(self.value)} — {self.problem}. {self.fix}"


class ResourcesError(ConfigError):
    """A resources file is invalid. The message lists every problem; `problems` holds them."""

    def __init__(self, problems: Sequence[ResourcesProblem], source: str) -> None:
        self._list(f"Invalid resources file {source}", problems, MAX_PROBLEMS_LISTED)
        self.problems = tuple(problems)
        self.source = source


_FIXES = {
    "missing": ("is required", "Add it."),
    "extra_forbidden": ("is not a known key", "Remove it, or check its spelling."),
    "greater_than_equal": ("is below the least allowed", "Use a number >= {ge}."),
    "greater_than": ("is too small", "Use a number > {gt}."),
    "less_than_equal": ("is above the most allowed", "Use a number <= {le}."),
    "less_than": ("is too large", "Use a number < {lt}."),
    "float_parsing": ("must be a number", "Use a number, e.g. 0.25."),
    "float_type": ("must be a number", "Use a number, e.g. 0.25."),
    "int_parsing": ("must be a whole number", "Use a whole number, e.g. 4."),
    "int_type": ("must be a whole number", "Use a whole number, e.g. 4."),
    "int_from_float": ("must be a whole number", "Use a whole number, e.g. 4."),
    "dict_type": ("must be a mapping", "Use 'key: value' lines, e.g. {work: 200ms}."),
    "model_type": ("must be a mapping", "Use 'key: value' lines."),
    "tuple_type": ("must be a list", "Use a list: one '- ' line per item."),
    "string_type": ("must be text", "Use text, e.g. small."),
    "string_pattern_mismatch": (
        "is not a valid pool name",
        "Use letters, digits, '.' and '_', starting with a letter or digit (its agents are "
        "named <pool>-<n>).",
    ),
}


def _problem(err: ErrorDetails) -> ResourcesProblem:
    loc = err["loc"]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    ctx: dict[str, Any] = dict(err.get("ctx", {}))
    value = ctx.get("value", err["input"])
    if "problem" in ctx:
        # A check over several fields names the one at fault (`at`, under this path).
        at = ctx.get("at")
        if at is not None:
            path = f"{path}.{at}" if path else str(at)
        return ResourcesProblem(path or "(file)", value, ctx["problem"], ctx["fix"])
    kind = err["type"]
    if kind in _FIXES:
        what, fix = _FIXES[kind]
        if kind == "missing":
            value = "(missing)"
        if kind == "extra_forbidden":
            value = "(not shown)"
        return ResourcesProblem(path, value, what, fix.format(**ctx))
    return ResourcesProblem(path or "(file)", value, err["msg"], f"Compare with: {EXAMPLE}.")


def parse_resources(data: object, source: str = "resources file") -> ResourcesSpec:
    """Validate resources data (as read from YAML or JSON); `ResourcesError` lists problems."""
    if not isinstance(data, Mapping):
        raise ResourcesError(
            [
                ResourcesProblem(
                    "(file)", source, f"holds {kind_of(data)}, not a mapping", f"Write {EXAMPLE}."
                )
            ],
            source,
        )
    try:
        return ResourcesSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise ResourcesError(
            [_problem(err) for err in exc.errors(include_url=False)], source
        ) from None


def is_resources(data: object) -> bool:
    """Whether YAML data is meant as a resources file (a top-level `pools:` key)."""
    return isinstance(data, Mapping) and "pools" in data


def read_data(path: Path) -> object:
    """The YAML or JSON data of `path`, or a `ResourcesError` saying why it cannot be read."""
    source = str(path)
    try:
        return load_yaml_text(read_text(path), source)
    except YamlProblem as exc:
        where = exc.where if exc.line is not None else "(file)"
        raise ResourcesError(
            [ResourcesProblem(where, source, exc.problem, exc.fix)], source
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ResourcesError(
            [ResourcesProblem("(file)", source, f"cannot be read: {reason}", "Check the path.")],
            source,
        ) from None
    except UnicodeDecodeError:
        raise ResourcesError(
            [ResourcesProblem("(file)", source, "is not UTF-8 text", "Save it as UTF-8.")], source
        ) from None


def load_resources(path: Path) -> ResourcesSpec:
    """Read and validate the resources file at `path`."""
    data = read_data(path)
    if isinstance(data, Mapping) and not looks_like(data, list(ResourcesSpec.model_fields)):
        raise ResourcesError(
            [
                ResourcesProblem(
                    "(file)",
                    str(path),
                    "is not a resources file: none of its keys is pools, workload or constraints",
                    f"Give the path of a resources file, e.g. {EXAMPLE}.",
                )
            ],
            str(path),
        )
    res = parse_resources(data, str(path))
    # A spec or trace named in the file is found beside it, wherever the command runs.
    spec = res.workload.spec
    if spec is not None and not spec.is_absolute():
        workload = res.workload.model_copy(update={"spec": path.parent / spec})
        res = res.model_copy(update={"workload": workload})
    trace = res.workload.trace
    if trace is not None and not trace.file.is_absolute():
        moved = trace.model_copy(update={"file": path.parent / trace.file})
        workload = res.workload.model_copy(update={"trace": moved})
        res = res.model_copy(update={"workload": workload})
    return res

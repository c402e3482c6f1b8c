"""Reading a swarm spec: YAML or data in, a checked `SwarmSpec` or every problem out."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_core import ErrorDetails

if typing.TYPE_CHECKING:
    pass

from swarmperf.core.errors import ConfigError, preview
from swarmperf.core.safe_yaml import (
    BoundedSafeLoader,
    YamlProblem,
    kind_of,
    load_yaml_text,
    looks_like,
    read_text,
)
from swarmperf.spec.sections import NAME_FIX, SwarmSpec, choose_name, closest_name

# -- errors -----------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING: Any = _Missing()
NOT_SHOWN: Any = object()  # a problem whose value is better left out of the message
MAX_PROBLEMS_LISTED = 20


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """One thing wrong with a spec: where, the bad value, what is wrong and how to fix it."""

    path: str
    value: object
    problem: str
    fix: str

    def __str__(self) -> str:
        if self.value is NOT_SHOWN:
            return f"{self.path} — {self.problem}. {self.fix}"
        return f"{self.path}: {preview(self.value)} — {self.problem}. {self.fix}"


class SpecError(ConfigError):
    """A swarm spec is invalid. The message lists every problem; `problems` holds them."""

    def __init__(self, problems: Sequence[SpecProblem], source: str = "swarm spec") -> None:
        if not problems:
            raise ValueError("SpecError needs at least one problem.")
        self._list(f"Invalid swarm spec {source}", problems, MAX_PROBLEMS_LISTED)
        self.problems = tuple(problems)
        self.source = source


_MISSING_FIXES = {
    "agents": "Add a list of agents, e.g. agents: [{id: worker, count: 4}].",
    "id": "Give every agent an id, e.g. id: worker.",
    "mean": "Add a mean, e.g. mean: 5ms.",
    "alpha": "Add a shape, e.g. alpha: 1.5.",
    "sigma": "Add a spread, e.g. sigma: 0.5.",
    "rate": "Add a rate, e.g. rate: 500/s.",
}
_TYPE_FIXES = {
    "int_type": ("must be a whole number", "Use a whole number, e.g. 4."),
    "int_parsing": ("must be a whole number", "Use a whole number, e.g. 4."),
    "int_from_float": ("must be a whole number", "Use a whole number, e.g. 4."),
    "float_type": ("must be a number", "Use a number, e.g. 1.5."),
    "float_parsing": ("must be a number", "Use a number, e.g. 1.5."),
    "finite_number": ("must be a finite number", "Use a finite number, e.g. 1.5."),
    "bool_type": ("must be true or false", "Use true or false."),
    "bool_parsing": ("must be true or false", "Use true or false."),
    "string_type": ("must be text", "Use text, e.g. worker."),
    "string_too_short": ("must not be empty", "Use non-empty text."),
    "string_pattern_mismatch": ("is not a valid name", NAME_FIX),
    "list_type": ("must be a list", "Use a list, e.g. [a, b]."),
    "tuple_type": ("must be a list", "Use a list: one '- ' line per item, or [a, b]."),
    "dict_type": ("must be a mapping", "Use 'key: value' lines, e.g. {a: 1}."),
    "model_type": ("must be a mapping", "Use 'key: value' lines, like the demo spec."),
    "model_attributes_type": ("must be a mapping", "Use 'key: value' lines, like the demo spec."),
}


def _plain_number(number: object) -> object:
    return int(number) if isinstance(number, float) and number.is_integer() else number


def _bound_fix(err: ErrorDetails) -> tuple[str, str] | None:
    ctx = err.get("ctx", {})
    for kind, op, words in (
        ("greater_than", ">", "greater than"),
        ("greater_than_equal", ">=", "at least"),
        ("less_than", "<", "less than"),
        ("less_than_equal", "<=", "at most"),
    ):
        if err["type"] == kind:
            bound = _plain_number(next(iter(ctx.values())))
            return f"must be {words} {bound}", f"Use a number {op} {bound}."
    if err["type"] in ("too_short", "too_long"):
        size = ctx.get("min_length", ctx.get("max_length"))
        words = "at least" if err["type"] == "too_short" else "at most"
        return f"must have {words} {size} item(s)", f"Give {words} {size} item(s)."
    return None


def _unwrap(tp: Any) -> list[Any]:
    """The alternatives of a type, without `Annotated` and `None`."""
    if typing.get_origin(tp) is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [alt for arg in typing.get_args(tp) for alt in _unwrap(arg)]
    return [] if tp is type(None) else [tp]


def _model(tp: Any) -> type[BaseModel] | None:
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _tag(model: type[BaseModel]) -> object:
    for info in model.model_fields.values():
        if typing.get_origin(info.annotation) is Literal:
            return typing.get_args(info.annotation)[0]
    return None


def _item_type(container: Any) -> Any:
    args = typing.get_args(container)
    if not args:
        return None
    return args[1] if typing.get_origin(container) is dict else args[0]


def _walk(loc: Sequence[int | str]) -> tuple[str, type[BaseModel] | None]:
    """The path people read for a pydantic `loc`, and the model found at its end.

    Pydantic puts union tags (`pareto`) and `[key]` markers in `loc`; they are not keys
    in the file, so they are left out of the path.
    """
    text = ""
    current: list[Any] = [SwarmSpec]
    for part in loc:
        models = [m for m in map(_model, current) if m is not None]
        by_tag = {_tag(m): m for m in models} if len(models) > 1 else {}
        if part in by_tag:
            current = [by_tag[part]]
            continue
        if part == "[key]":
            continue
        if len(models) == 1 and isinstance(part, str) and part in models[0].model_fields:
            current = _unwrap(models[0].model_fields[part].annotation)
        else:  # an item of a list or a value of a mapping
            current = [alt for tp in current for alt in _unwrap(_item_type(tp))]
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    models = [m for m in map(_model, current) if m is not None]
    return text or "(spec)", models[0] if len(models) == 1 else None


def _to_problem(err: ErrorDetails) -> SpecProblem:
    loc = err["loc"]
    ctx: dict[str, Any] = dict(err.get("ctx", {}))
    path, _ = _walk(loc)
    value: object = ctx.get("value", err["input"])
    kind = err["type"]
    if "problem" in ctx:
        return SpecProblem(path, value, ctx["problem"], ctx["fix"])
    if kind == "missing":
        fix = _MISSING_FIXES.get(str(loc[-1]) if loc else "", "Add it.")
        return SpecProblem(path, MISSING, "is required", fix)
    if kind == "extra_forbidden":
        # The key is in the path; its value is not shown, as it may be a secret misplaced.
        _, holder = _walk(loc[:-1])
        return SpecProblem(path, NOT_SHOWN, "is not a known key", _key_fix(str(loc[-1]), holder))
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return SpecProblem(path, value, "is not one of the choices", choose_name(value, choices))
    if kind == "union_tag_invalid":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        key = str(ctx.get("discriminator", "")).strip("'")
        return SpecProblem(
            f"{path}.{key}",
            ctx.get("tag"),
            "is not one of the choices",
            choose_name(ctx["tag"], choices),
        )
    words = _TYPE_FIXES.get(kind) or _bound_fix(err)
    if words is not None:
        return SpecProblem(path, value, *words)
    return SpecProblem(path, value, err["msg"], "Compare with the demo spec.")


def _key_fix(key: str, holder: type[BaseModel] | None) -> str:
    if holder is None:
        return "Remove it."
    valid = list(holder.model_fields)
    guess = closest_name(key, valid)
    listed = f"Valid keys here: {', '.join(valid)}."
    return f"Did you mean {guess!r}? {listed}" if guess else f"Remove it. {listed}"


# -- loading ----------------------------------------------------------------------------


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _SpecLoader(BoundedSafeLoader):
    """Safe, bounded YAML that refuses a key given twice instead of silently keeping the last."""


def _mapping_without_duplicates(loader: _SpecLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, Hashable):
            if key in seen:
                where = key_node.start_mark
                raise _DuplicateKey(None, None, f"found the key {preview(key)} twice", where)
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_SpecLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def load_spec(path: Path) -> SwarmSpec:
    """Read and validate the spec at `path`; raise `SpecError` listing every problem."""
    source = str(path)
    try:
        text = read_text(path)
    except YamlProblem as exc:
        raise SpecError([SpecProblem("(file)", source, exc.problem, exc.fix)], source) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        problem = SpecProblem("(file)", source, f"cannot be read: {reason}", "Check the path.")
        raise SpecError([problem], source) from exc
    except UnicodeDecodeError as exc:
        problem = SpecProblem("(file)", source, "is not UTF-8 text", "Save it as UTF-8.")
        raise SpecError([problem], source) from exc
    return parse_spec_yaml(text, source)


def parse_spec_yaml(text: str, source: str = "<text>") -> SwarmSpec:
    """Validate a spec given as YAML text; `source` names it in messages."""
    try:
        data = load_yaml_text(text, source, _SpecLoader)
    except YamlProblem as exc:
        raise SpecError([_yaml_problem(exc, text)], source) from None
    if data is None:
        problem = SpecProblem("(spec)", NOT_SHOWN, "is empty", "Start from the demo spec.")
        raise SpecError([problem], source)
    _require_mapping(data, source)
    if not isinstance(data, dict) or not looks_like(data, list(SwarmSpec.model_fields)):
        # Most likely a path given by mistake: name it, and do not list what it holds.
        problem = SpecProblem(
            "(spec)",
            source,
            "is not a swarm spec: none of its keys is a spec key such as agents or workload",
            "Give the path of a swarm spec; `swarmperf demo-spec` prints one to start from.",
        )
        raise SpecError([problem], source)
    return parse_spec(data, source)


def _yaml_problem(exc: YamlProblem, text: str) -> SpecProblem:
    if exc.line is None or exc.limit:
        return SpecProblem(exc.where, NOT_SHOWN, exc.problem, exc.fix)
    # The spec is the file the user asked about: its offending line helps, cut short.
    # At the end of the text the mark points past the last line; show the last one then.
    lines = [*text.splitlines()[: exc.line + 1]]
    line = next((ln for ln in reversed(lines) if ln.strip()), "")
    if isinstance(exc.__cause__, _DuplicateKey):
        return SpecProblem(
            exc.where, line.strip(), str(exc.__cause__.problem), "Keep only one of them."
        )
    return SpecProblem(exc.where, line.strip(), exc.problem, exc.fix)


def _require_mapping(data: object, source: str) -> None:
    # Checked at run time as well: YAML may hold a list or a scalar at the top.
    if not isinstance(data, Mapping):
        problem = SpecProblem(
            "(spec)",
            source,
            f"holds {kind_of(data)}, not a mapping",
            "Write it as 'key: value' lines; `swarmperf demo-spec` prints a spec to start from.",
        )
        raise SpecError([problem], source)


def parse_spec(data: Mapping[str, Any], source: str = "swarm spec") -> SwarmSpec:
    """Validate spec data (as read from YAML or JSON); raise `SpecError` listing every problem."""
    _require_mapping(data, source)
    try:
        return SwarmSpec.model_validate(dict(data))
    except ValidationError as exc:
        problems = [_to_problem(err) for err in exc.errors(include_url=False)]
        raise SpecError(problems, source) from exc


DEMO_SPEC_YAML = """\
# A demo swarm: eight agents of different kinds, heavy-tailed work, a few failing tasks,
# and one agent that breaks down for a while: its breaker trips, then it recovers.
swarm_id: demo
backend: local             # local | process | ray | sim (virtual time)
strategy: capacity-aware   # a strategy name, or auto to compare them all
seed: 42
duration: 30s              # stop the run after this long, whatever is left
agents:
  - id: fast               # two agents that are twice as quick, and say so
    count: 2
    weight: 2.0
    slowdown: 0.5
  - id: std                # three ordinary agents, std-0 … std-2
    count: 3
  - id: flaky              # fails every call from 0.1 s to 0.5 s into the run
    faults:
      - {start: 100ms, end: 500ms, error_rate: 1.0}
  - id: wide               # one agent that runs four tasks at once
    concurrency: 4
  - id: slow               # four times slower than it says; only measuring finds out
    slowdown: 4
queue:
  max_queued: 100000
  max_wait: 30s            # a task queued this long goes next, whatever its level
workload:
  tasks: 2000
  kind: sleep              # wait size seconds (times the agent's slowdown)
  size: {distribution: pareto, mean: 5ms, alpha: 1.5}
  arrival: {process: batch}
  failure_rate: 0.01       # about 1% of the tasks fail on purpose
  priorities: {normal: 1.0}
  cost_estimates: true     # tasks tell the strategy their true size
resilience:
  breaker:                 # per agent: trip after 3 failures in a row, rest 200 ms
    failure_threshold: 3
    open_for: 200ms
    half_open_calls: 1     # then one trial call at a time
    success_threshold: 2   # two good trials close it again
  retry:                   # retry agent trouble elsewhere; a task's own bug is final
    max_attempts: 3
    base_delay: 5ms
    retry_on: [InjectedFault, TimeoutError, RateLimited, AgentCrashed]
"""


def demo_spec() -> SwarmSpec:
    """The demo spec (`DEMO_SPEC_YAML`), validated."""
    return parse_spec_yaml(DEMO_SPEC_YAML, "demo")

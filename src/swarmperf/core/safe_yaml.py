"""Reading YAML that may be hostile: bounded size, nesting and aliases; errors quote none of it.

Every file swarmperf reads as YAML (specs, alerting files, suites, cost models) goes through
`load_yaml_text`. A small document can still be huge once its aliases are expanded (the
"billion laughs" bomb) or nest deeper than Python's stack, so both are measured on the
composed node graph before any Python object is built. Errors name the place (`file:line:col`)
and the problem, never the text there: the file may be a secret that was named by mistake.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, SequenceNode

from swarmperf.core.errors import SwarmError

MAX_BYTES = 1 << 20  # 1 MiB: real specs are a few kilobytes
MAX_DEPTH = 64  # levels of nesting, counting what aliases stand for
MAX_ALIASES = 1000  # alias uses (*name) in one document
MAX_NODES = 1_000_000  # values in the document once every alias is expanded
_MAX_PROBLEM = 120  # characters of a parser's own problem text


class YamlProblem(SwarmError, ValueError):
    """The text is not YAML that will be read. `where` is `source` or `source:line:column`."""

    def __init__(
        self,
        source: str,
        problem: str,
        fix: str,
        *,
        mark: Mark | None = None,
        limit: bool = False,
    ) -> None:
        self.source = source
        self.line = None if mark is None else mark.line  # 0-based, like PyYAML's marks
        self.column = None if mark is None else mark.column
        self.where = source if mark is None else f"{source}:{mark.line + 1}:{mark.column + 1}"
        self.problem = problem
        self.fix = fix
        self.limit = limit  # a size, nesting or alias limit, not a syntax error
        super().__init__(f"{self.where}: {problem}. {fix}")


class _TooMuch(yaml.YAMLError):
    def __init__(self, problem: str, fix: str, mark: Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.mark = mark


_NESTING_FIX = f"Nest at most {MAX_DEPTH} levels deep."
_ALIAS_FIX = (
    f"Use at most {MAX_ALIASES} aliases, expanding to at most {MAX_NODES} values; "
    "write the values out instead."
)


class BoundedSafeLoader(yaml.SafeLoader):
    """A `yaml.SafeLoader` that refuses deep nesting, many aliases and alias bombs."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # PyYAML composes recursively: stop before Python's own stack runs out.
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _TooMuch(f"uses more than {MAX_ALIASES} aliases", _ALIAS_FIX, mark)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _TooMuch(f"is nested more than {MAX_DEPTH} levels deep", _NESTING_FIX, mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)


def _bounded_int(loader: BoundedSafeLoader, node: Node) -> int:
    try:
        return loader.construct_yaml_int(node)  # type: ignore[arg-type]
    except ValueError:  # Python refuses to read integers of more than 4300 digits
        raise ConstructorError(
            None,
            None,
            f"a number of {len(str(node.value))} characters is too long to read",
            node.start_mark,
        ) from None


BoundedSafeLoader.add_constructor("tag:yaml.org,2002:int", _bounded_int)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: Node) -> None:
    """Refuse a document whose aliases expand past `MAX_NODES` values or `MAX_DEPTH` levels,
    or refer to themselves; measured on the node graph, in time linear in its size."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded values, expanded height)
    on_path: set[int] = set()

    def visit(node: Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in on_path:
            raise _TooMuch(
                "has an alias that refers to itself",
                "Remove the alias from inside the value it names.",
                node.start_mark,
            )
        known = sizes.get(key)
        if known is None:
            if depth > MAX_DEPTH:
                raise _TooMuch(
                    f"is nested more than {MAX_DEPTH} levels deep once its aliases are expanded",
                    _NESTING_FIX,
                    node.start_mark,
                )
            on_path.add(key)
            size, height = 1, 1
            for child in _children(node):
                child_size, child_height = visit(child, depth + 1)
                size += child_size
                height = max(height, child_height + 1)
                if size > MAX_NODES:
                    raise _TooMuch(
                        f"expands its aliases to more than {MAX_NODES} values",
                        _ALIAS_FIX,
                        child.start_mark,
                    )
            on_path.discard(key)
            known = sizes[key] = (size, height)
        if depth - 1 + known[1] > MAX_DEPTH:
            raise _TooMuch(
                f"is nested more than {MAX_DEPTH} levels deep once its aliases are expanded",
                _NESTING_FIX,
                node.start_mark,
            )
        return known

    visit(root, 1)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_PROBLEM else text[: _MAX_PROBLEM - 3] + "..."


def too_large(source: str) -> YamlProblem:
    return YamlProblem(
        source,
        f"is larger than {MAX_BYTES} bytes",
        "A spec or settings file is a few kilobytes: check that this is the file you meant.",
        limit=True,
    )


def read_text(path: Path) -> str:
    """The text of `path`, reading at most `MAX_BYTES` (+1, to tell that there is more).

    Raises `YamlProblem` for a larger file, `OSError` and `UnicodeDecodeError` as `open` does.
    """
    with path.open("rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise too_large(str(path))
    return data.decode("utf-8")


def load_yaml_text(
    text: str, source: str, loader: type[BoundedSafeLoader] = BoundedSafeLoader
) -> object:
    """Plain data from YAML `text`, or `YamlProblem` saying where and what is wrong.

    The problem never quotes the text: it gives the line and column and the parser's own
    (bounded) description.
    """
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise too_large(source)
    try:
        return yaml.load(text, Loader=loader)  # a SafeLoader: plain data only
    except _TooMuch as exc:
        raise YamlProblem(source, exc.problem, exc.fix, mark=exc.mark, limit=True) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = _short(str(exc.problem or exc.context or "cannot be parsed"))
        # A constructor error is a value YAML cannot build (a bad tag, a number too long).
        fix = "Fix the value there." if isinstance(exc, ConstructorError) else _syntax_fix(mark)
        raise YamlProblem(source, f"is not valid YAML ({problem})", fix, mark=mark) from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(source, "is not valid YAML", "Fix the syntax.") from exc
    except (ValueError, OverflowError, RecursionError) as exc:
        # A scalar PyYAML cannot turn into a value, e.g. an integer of 5000 digits.
        problem = _short(f"{type(exc).__name__}: {exc}")
        raise YamlProblem(
            source, f"holds a value that cannot be read ({problem})", "Fix or remove it."
        ) from None


def _syntax_fix(mark: Mark | None) -> str:
    if mark is None:
        return "Fix the syntax."
    return (
        f"Check line {mark.line + 1} and the one before it: indentation, a ': ' after each "
        "key, and closed brackets and quotes."
    )


def kind_of(data: object) -> str:
    """What YAML value `data` is, in words, for 'is not a mapping' messages."""
    if data is None:
        return "nothing"
    if isinstance(data, str):
        return "text"
    if isinstance(data, list):
        return "a list"
    if isinstance(data, bool):
        return "true or false"
    if isinstance(data, int | float):
        return "a number"
    return type(data).__name__


def looks_like(data: object, keys: Collection[str]) -> bool:
    """Whether `data` is a mapping with at least one of `keys`, or a near miss of one.

    When it is not, the file is most likely not of the kind expected at all (a path given by
    mistake): say so and name the file, instead of listing its "unknown keys", which would
    print what the file holds.
    """
    if not isinstance(data, dict):
        return False
    for key in data:
        if not isinstance(key, str) or len(key) > 64:
            continue
        if key in keys or difflib.get_close_matches(key, list(keys), n=1, cutoff=0.75):
            return True
    return False

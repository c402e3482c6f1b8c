"""The package's layers: imports run only downward, and no module imports itself back.

Each top-level part of `swarmperf` belongs to one layer, lowest first. A module may import
from its own layer or a lower one, never a higher one; imports inside functions count too,
since a lazy import is still a dependency. Modules of one layer may import each other, but
no chain of imports may come back to where it started.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "swarmperf"

# Lowest first. The core (core, balancing, resilience, runtime, sim) never imports
# configuration (spec), the application layer (app) or a front-end (cli).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"core"}),
    frozenset({"balancing", "routing"}),
    frozenset({"resilience"}),
    frozenset({"runtime"}),
    frozenset({"sim"}),
    frozenset({"store"}),
    frozenset({"spec"}),
    frozenset({"monitor"}),
    frozenset({"alerting"}),
    frozenset({"analysis", "topology", "profiling", "allocation"}),
    frozenset({"app"}),
    frozenset({"bench", "autoscale"}),
    frozenset({"service"}),
    frozenset({"client"}),
    frozenset({"queries"}),
    frozenset({"mcp_server"}),
    frozenset({"cli"}),
    frozenset({"__init__", "__main__"}),
)


def layer_of(part: str) -> int:
    for index, parts in enumerate(LAYERS):
        if part in parts:
            return index
    raise AssertionError(
        f"swarmperf.{part} is in no layer: add it to LAYERS in tests/test_layers.py (and "
        "to ARCHITECTURE.md)."
    )


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every swarmperf module that `path` imports, anywhere in it."""
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("swarmperf"):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            module = node.module
            if node.level and package is not None:
                module = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module += f".{node.module}"
            if not module.startswith("swarmperf"):
                continue
            for alias in node.names:
                # `from swarmperf.x import y` may import the module swarmperf.x.y.
                sub = f"{module}.{alias.name}"
                sub_path = SRC.parent / Path(*sub.split("."))
                yielded = (
                    sub if sub_path.with_suffix(".py").exists() or sub_path.is_dir() else module
                )
                yield node.lineno, yielded


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = sorted(p for p in SRC.rglob("*.py"))
GRAPH: dict[str, set[str]] = {}
for _path in MODULES:
    GRAPH[module_name(_path)] = {m for _, m in imports(_path)}


def test_every_part_has_a_layer() -> None:
    for path in MODULES:
        layer_of(part_of(module_name(path)))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_only_run_downward(path: Path) -> None:
    me = module_name(path)
    mine = layer_of(part_of(me))
    upward = [
        f"line {line}: {module} ({part_of(module)}, layer {layer_of(part_of(module))})"
        for line, module in imports(path)
        if layer_of(part_of(module)) > mine
    ]
    assert not upward, (
        f"{me} (layer {mine}, {part_of(me)}) imports from a higher layer:\n  " + "\n  ".join(upward)
    )


def test_no_import_cycles() -> None:
    # Modules only (a package's __init__ re-exporting its modules is not a cycle of code).
    def is_package(name: str) -> bool:
        return (SRC.parent / Path(*name.split("."))).is_dir()

    graph = {
        m: {d for d in deps if d in GRAPH and not is_package(d) and d != m}
        for m, deps in GRAPH.items()
        if not is_package(m)
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n  " + "\n  ".join(" -> ".join(c) for c in cycles)

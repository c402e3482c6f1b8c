"""The error tree: every exception class of the package derives from `SwarmError` and sits in
`core/errors.py`'s drawn tree under its real parent, with the module it lives in."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import re

import pytest

import swarmperf
from swarmperf.core import errors
from swarmperf.core.errors import (
    Backpressure,
    BulkheadFull,
    CircuitOpen,
    DispatchError,
    InjectedFault,
    RateLimited,
    SwarmError,
    TaskFailure,
)

_LINE = re.compile(r"^(?P<lead>[│├└─ ]*)(?P<name>[A-Z]\w*)\b(?P<rest>.*)$")
_WHERE = re.compile(r"\((?P<module>[a-z_]+(?:\.[a-z_]+)+)\)\s*$")


def drawn_tree() -> dict[str, tuple[str | None, str]]:
    """name -> (parent drawn above it, module it is said to live in) from the docstring."""
    doc = errors.__doc__ or ""
    lines = doc[doc.index("SwarmError\n") :].splitlines()
    tree: dict[str, tuple[str | None, str]] = {}
    parents: list[str] = []  # the chain of names above the current line, by depth
    for line in lines:
        match = _LINE.match(line)
        if match is None:
            break
        depth = len(match["lead"]) // 4
        where = _WHERE.search(match["rest"])
        del parents[depth:]
        tree[match["name"]] = (
            parents[-1] if parents else None,
            f"swarmperf.{where['module']}" if where else "swarmperf.core.errors",
        )
        parents.append(match["name"])
    return tree


def package_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of swarmperf, by name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(swarmperf.__path__, "swarmperf."):
        if info.name.endswith("__main__"):
            continue  # running it starts the command line
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
            ):
                found[obj.__name__] = obj
    return found


def own_parent(cls: type[BaseException]) -> str | None:
    """The nearest base class that is itself one of swarmperf's errors."""
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("swarmperf."):
            return base.__name__
    return None


def test_the_tree_is_drawn_in_full() -> None:
    tree = drawn_tree()
    # The walk reads the drawing, not just its first line.
    assert {"SwarmError", "ConfigError", "StoreError", "InjectedFault"} <= tree.keys()
    assert tree["InjectedFault"] == ("TaskFailure", "swarmperf.core.errors")
    assert tree["SpecError"] == ("ConfigError", "swarmperf.spec.loading")


def test_every_error_of_the_package_is_a_swarm_error_drawn_where_it_is() -> None:
    tree = drawn_tree()
    found = package_exceptions()
    problems: list[str] = []
    for name, cls in sorted(found.items()):
        if name.startswith("_"):
            # A private signal that must travel through a library's own error handling
            # (PyYAML's) derives from that library's error, and never leaves its module.
            continue
        if not issubclass(cls, SwarmError):
            problems.append(f"{cls.__module__}.{name} does not derive from SwarmError")
        if name not in tree:
            problems.append(f"{cls.__module__}.{name} is not drawn in core/errors.py")
            continue
        parent, module = tree[name]
        if name != "SwarmError" and parent != own_parent(cls):
            problems.append(f"{name} is drawn under {parent}, but derives from {own_parent(cls)}")
        if module != cls.__module__:
            problems.append(f"{name} is said to live in {module}, but lives in {cls.__module__}")
    stale = sorted(set(tree) - set(found))
    problems.extend(f"{name} is drawn in core/errors.py but defined nowhere" for name in stale)
    assert not problems, "\n".join(problems)


def test_a_handler_failure_is_a_swarm_error_that_keeps_its_name() -> None:
    # Results name the error's type ("TaskFailure: ...") and retry policies match on it.
    failure = InjectedFault("agent 'a' fails")
    assert isinstance(failure, TaskFailure)
    assert isinstance(failure, SwarmError)
    assert not isinstance(failure, DispatchError)
    assert type(failure).__name__ == "InjectedFault"


@pytest.mark.parametrize(
    "error",
    [RateLimited(retry_after=1.5, provider="llm"), TaskFailure("boom"), InjectedFault("x")],
    ids=lambda e: type(e).__name__,
)
def test_errors_a_handler_raises_survive_the_trip_from_a_worker_process(
    error: SwarmError,
) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)


def test_moved_errors_keep_their_branch_and_message() -> None:
    assert isinstance(CircuitOpen("a", 2.5), DispatchError)
    assert "Circuit 'a' is open: a trial call may go through in 2.5s" in str(CircuitOpen("a", 2.5))
    full = BulkheadFull("t1", "search", 10, 10)
    assert isinstance(full, Backpressure)
    assert (full.task_id, full.kind, full.queued, full.limit) == ("t1", "search", 10, 10)
    assert str(RateLimited(2.5, "openai")).startswith("Provider 'openai' throttled the request")

"""Event kinds: every kind the package emits or matches is a named constant of
`core/events.py`, and a real run records only kinds listed there."""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

from swarmperf.core import events
from swarmperf.core.model import AgentSpec, Fault, Task
from swarmperf.resilience.breaker import BreakerSettings, State
from swarmperf.resilience.guard import ResilienceGuard, ResilienceSettings
from swarmperf.resilience.retry import RetryPolicies, RetryPolicy
from swarmperf.runtime.swarm import Swarm

SRC = Path(events.__file__).resolve().parents[1]
# Being split into smaller modules; they switch to the constants when that is done.
NOT_YET = ("runtime/coordinator.py", "runtime/process.py", "runtime/process/")
_KEBAB = re.compile(r"^[a-z]+(-[a-z]+)*$")


def constants() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str)
    }


def sources() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        where = path.relative_to(SRC).as_posix()
        if where == "core/events.py" or where.startswith(NOT_YET):
            continue
        yield where, ast.parse(path.read_text(), str(path))


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and _is_text(body[0].value):
                ids.add(id(body[0].value))
    return ids


def written_kinds(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, text) for every kind written out as text where an event is made or matched."""
    hyphenated = {value for value in events.KINDS if "-" in value}
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("emit", "_emit") and node.args and _is_text(node.args[0]):
                yield node.lineno, ast.unparse(node.args[0])
            if name == "Event":
                kind = node.args[1] if len(node.args) > 1 else None
                kind = next((k.value for k in node.keywords if k.arg == "kind"), kind)
                if kind is not None and _is_text(kind):
                    yield node.lineno, ast.unparse(kind)
        # A kind matched or mapped as a literal: the distinctive (hyphenated) ones.
        elif (
            isinstance(node, ast.Constant)
            and node.value in hyphenated
            and id(node) not in docstrings
        ):
            yield node.lineno, repr(node.value)


def test_every_kind_is_a_listed_kebab_case_constant() -> None:
    named = constants()
    assert set(named.values()) == set(events.KINDS), "a constant missing from KINDS, or back"
    assert len(set(named.values())) == len(named), "two constants with one value"
    for value, meaning in events.KINDS.items():
        assert _KEBAB.match(value), value
        assert meaning.strip(), value


def test_breaker_kinds_follow_the_breaker_states() -> None:
    assert {events.breaker_kind(state.value) for state in State} == {
        events.BREAKER_OPEN,
        events.BREAKER_HALF_OPEN,
        events.BREAKER_CLOSED,
    }


def test_no_kind_is_written_out_where_events_are_made_or_matched() -> None:
    found = sorted(
        {
            f"{where}:{line}: {text}"
            for where, tree in sources()
            for line, text in written_kinds(tree)
        }
    )
    assert not found, "use the constants of core/events.py:\n" + "\n".join(found)


def test_the_scan_finds_a_kind_written_out() -> None:
    tree = ast.parse(
        "def f(c, state):\n"
        "    '''Emits agent-lost.'''\n"
        "    c.emit('retry', 't1')\n"
        "    c.emit(f'breaker-{state}', 'a')\n"
        "    Event(0.0, kind='shed', subject='t')\n"
        "    return state == 'agent-lost'\n"
    )
    assert [line for line, _ in written_kinds(tree)] == [3, 4, 5, 6]


async def _run_with_an_agent_that_fails_then_recovers() -> dict[str, int]:
    breaker = BreakerSettings(
        failure_threshold=3,
        window="count",
        window_size=20,
        minimum_calls=20,
        open_for=0.1,
        half_open_calls=1,
        success_threshold=2,
    )
    retry = RetryPolicies(RetryPolicy(max_attempts=5, base_delay=0.001, retry_on="failure"))
    guard = ResilienceGuard(ResilienceSettings(breaker=breaker, retry=retry, retry_budget=None))
    agents = [
        AgentSpec("a"),
        AgentSpec("flaky", faults=(Fault(start=0.0, end=0.2, error_rate=1.0),)),
    ]
    async with Swarm(agents, strategy="least-loaded", guard=guard) as swarm:
        results = await swarm.run([Task("sleep", payload=0.003, cost=0.003) for _ in range(300)])
    assert all(r.ok for r in results)
    return dict(swarm.event_counts)


def test_a_run_records_only_listed_kinds() -> None:
    counts = asyncio.run(_run_with_an_agent_that_fails_then_recovers())
    # The run went through the breaker's states and retried: the kinds were really emitted.
    assert {events.BREAKER_OPEN, events.BREAKER_HALF_OPEN, events.RETRY} <= set(counts)
    assert set(counts) <= set(events.KINDS)

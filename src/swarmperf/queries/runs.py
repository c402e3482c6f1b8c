"""The questions both front-ends answer by running a swarm: simulate it, compare strategies.

The spec is built and checked here (the same overrides and messages as the command line);
the payloads are what `-o json` prints and the MCP tools return.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmperf.core.errors import UserError
from swarmperf.spec import SwarmSpec, demo_spec, load_spec

if TYPE_CHECKING:
    from swarmperf.app.run import RunOutcome


def load_spec_or_demo(spec_path: Path | None) -> SwarmSpec:
    if spec_path is None:
        return demo_spec()
    if not spec_path.exists():
        raise UserError(f"SPEC: {str(spec_path)!r} does not exist. Give the path of a YAML spec.")
    return load_spec(spec_path)


def override(spec: SwarmSpec, **changes: Any) -> SwarmSpec:
    # Re-validate through the spec's own rules, so overrides get the same error messages.
    from swarmperf.spec import parse_spec

    data = spec.to_data()
    data.update({k: v for k, v in changes.items() if v is not None})
    return parse_spec(data, "command line")


def simulation_spec(
    spec_path: Path | None,
    *,
    agents: int | None = None,
    tasks: int | None = None,
    seed: int | None = None,
    strategy: str | None = None,
) -> tuple[SwarmSpec, str | None]:
    """The spec `simulate` runs in virtual time, and a note when `agents` cannot be met
    (each of the spec's agent groups keeps at least one agent)."""
    from swarmperf.app.simulate import scaled_agents

    spec = load_spec_or_demo(spec_path)
    changes: dict[str, Any] = {"backend": "sim", "seed": seed, "strategy": strategy}
    note = None
    if agents is not None:
        changes["agents"] = scaled_agents(spec, agents, field="--agents")
        given = sum(group["count"] for group in changes["agents"])
        if given != agents:
            note = (
                f"note: --agents {agents} gives {given} agents: each of the spec's "
                f"{len(changes['agents'])} agent groups keeps at least one."
            )
    if tasks is not None:
        workload = spec.workload.model_dump(mode="json")
        workload["tasks"] = tasks
        changes["workload"] = workload
    return override(spec, **changes), note


def outcome_payload(outcome: RunOutcome) -> dict[str, Any]:
    """A run's report as `run -o json` and `simulate -o json` print it, with its store id."""
    data = outcome.report.to_dict()
    data["run_id"] = outcome.run_id
    return data


def comparison_payload(outcomes: dict[str, RunOutcome]) -> dict[str, Any]:
    """`load-balance -o json`: the best strategy and each one's report."""
    from swarmperf.app.compare import best_strategy

    return {
        "best": best_strategy(outcomes),
        "strategies": {n: o.report.to_dict() for n, o in outcomes.items()},
    }

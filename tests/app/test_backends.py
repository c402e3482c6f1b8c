"""The backend registry: the names a spec accepts, what unknown names get, and what the
application layer asks of an entry instead of comparing names."""

from __future__ import annotations

import typing

import pytest

from swarmperf.app.backends import BACKENDS, backend_choices, backend_entry, make_backend
from swarmperf.app.build import build_swarm
from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.spec import SwarmSpec, parse_spec


def test_a_spec_accepts_exactly_the_registered_names() -> None:
    # The spec sits below the application layer and cannot ask the registry: this holds
    # the two lists equal.
    accepted = typing.get_args(SwarmSpec.model_fields["backend"].annotation)
    assert set(accepted) == set(BACKENDS)


def test_an_unknown_name_lists_the_choices() -> None:
    with pytest.raises(UnknownName) as info:
        make_backend("spark")
    assert info.value.field == "backend"
    assert info.value.choices == sorted(BACKENDS)
    assert "Choose one of: local, process, ray, sim." in str(info.value)


def test_every_entry_is_described_and_only_sim_runs_in_virtual_time() -> None:
    for name, entry in BACKENDS.items():
        assert entry.name == name
        assert entry.description
        assert "\n" not in entry.description
    assert {n for n, e in BACKENDS.items() if e.virtual_time} == {"sim"}
    assert backend_choices() == "local, process, ray or sim (virtual time)"


def test_a_virtual_time_backend_builds_no_real_time_swarm() -> None:
    spec = parse_spec({"backend": "sim", "agents": [{"id": "w"}]})
    with pytest.raises(ConfigError, match="virtual time") as info:
        build_swarm(spec)
    assert info.value.field == "backend"
    assert backend_entry(spec.backend).virtual_time

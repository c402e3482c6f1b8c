"""The registry of live swarms: entries, tokens, and stale entries never trusted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarmperf.core.errors import ConfigError, SwarmNotRunning
from swarmperf.service import registry


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_registered_swarm_is_found_with_its_private_token(tmp_path: Path) -> None:
    entry = registry.register(tmp_path, "prod", "http://127.0.0.1:1", os.getpid(), "s3cret-token")
    found = registry.find(tmp_path, "prod")
    assert (found.url, found.pid, found.token()) == (entry.url, os.getpid(), "s3cret-token")
    assert found.token_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "swarms").stat().st_mode & 0o777 == 0o700
    assert "s3cret-token" not in (tmp_path / "swarms" / "prod.json").read_text()
    assert "s3cret-token" not in repr(found)


def test_an_entry_whose_process_died_is_reported_not_trusted(tmp_path: Path) -> None:
    pid = dead_pid()
    registry.register(tmp_path, "prod", "http://127.0.0.1:1", pid, "t" * 20)
    registry.register(tmp_path, "staging", "http://127.0.0.1:2", os.getpid(), "t" * 20)
    with pytest.raises(SwarmNotRunning) as caught:
        registry.find(tmp_path, "prod")
    message = str(caught.value)
    assert f"pid {pid}" in message
    assert "staging" in message  # what does run
    assert "swarmperf serve" in message  # how to start one
    assert [e.swarm_id for e in registry.running(tmp_path)] == ["staging"]
    # A stale entry does not stop a new service from taking the id.
    registry.register(tmp_path, "prod", "http://127.0.0.1:3", os.getpid(), "u" * 20)
    assert registry.find(tmp_path, "prod").url == "http://127.0.0.1:3"


def test_an_unknown_swarm_names_the_running_ones(tmp_path: Path) -> None:
    with pytest.raises(SwarmNotRunning, match="No swarm is running"):
        registry.find(tmp_path, "prod")
    registry.register(tmp_path, "other", "http://127.0.0.1:1", os.getpid(), "t" * 20)
    with pytest.raises(SwarmNotRunning, match=r"Running in .*: other"):
        registry.find(tmp_path, "prod")


def test_a_live_swarm_cannot_be_registered_twice(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        registry.register(tmp_path, "prod", "http://127.0.0.1:1", holder.pid, "t" * 20)
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"):
            registry.register(tmp_path, "prod", "http://127.0.0.1:2", os.getpid(), "t" * 20)
    finally:
        holder.kill()
        holder.wait()


def test_only_the_registering_process_unregisters(tmp_path: Path) -> None:
    registry.register(tmp_path, "prod", "http://127.0.0.1:1", os.getpid(), "t" * 20)
    registry.unregister(tmp_path, "prod", os.getpid() + 1)
    assert registry.find(tmp_path, "prod")
    registry.unregister(tmp_path, "prod", os.getpid())
    assert registry.entries(tmp_path) == []
    assert list((tmp_path / "swarms").iterdir()) == []


@pytest.mark.parametrize("swarm_id", ["", "../etc", "a/b", ".hidden", "x" * 129, "sp ace"])
def test_a_swarm_id_that_is_not_a_plain_name_is_refused(tmp_path: Path, swarm_id: str) -> None:
    with pytest.raises(ConfigError, match="--swarm-id"):
        registry.register(tmp_path, swarm_id, "http://127.0.0.1:1", os.getpid(), "t" * 20)


def test_a_damaged_entry_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "swarms").mkdir()
    (tmp_path / "swarms" / "prod.json").write_text("{half")
    assert registry.entries(tmp_path) == []
    with pytest.raises(SwarmNotRunning):
        registry.find(tmp_path, "prod")


def test_ready_is_none_until_the_named_process_answers(tmp_path: Path) -> None:
    assert registry.ready(tmp_path, "prod") is None  # nothing registered
    registry.register(tmp_path, "prod", "http://127.0.0.1:9", os.getpid(), "t" * 20)
    assert registry.ready(tmp_path, "prod", pid=os.getpid() + 1) is None  # another process's
    assert registry.ready(tmp_path, "prod", timeout=0.5) is None  # nobody answers there

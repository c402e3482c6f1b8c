"""Where the store lives, the public names of the package, and a disk-free import."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import swarmperf.store
from swarmperf.store import (
    DATA_DIR_ENV,
    database_path,
    default_data_dir,
    resolve_data_dir,
)


def test_explicit_directory_wins(tmp_path: Path) -> None:
    env = {DATA_DIR_ENV: "/from/env"}
    assert resolve_data_dir(tmp_path, env) == tmp_path
    assert resolve_data_dir(str(tmp_path), env) == tmp_path


def test_environment_is_used_without_an_explicit_directory() -> None:
    assert resolve_data_dir(None, {DATA_DIR_ENV: "/from/env"}) == Path("/from/env")
    assert resolve_data_dir("", {DATA_DIR_ENV: "/from/env"}) == Path("/from/env")


def test_working_directory_is_the_last_resort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir(None, {}) == tmp_path / ".swarmperf"
    assert resolve_data_dir(None, {DATA_DIR_ENV: ""}) == tmp_path / ".swarmperf"


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir(None, {DATA_DIR_ENV: "~/data"}) == tmp_path / "data"
    assert resolve_data_dir("~/flag", {}) == tmp_path / "flag"


def test_default_data_dir_reads_the_environment_when_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "one"))
    assert default_data_dir() == tmp_path / "one"
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "two"))
    assert default_data_dir() == tmp_path / "two"


def test_database_file_name(tmp_path: Path) -> None:
    assert database_path(tmp_path) == tmp_path / "swarmperf.db"
    assert database_path(str(tmp_path)) == tmp_path / "swarmperf.db"


def test_importing_the_store_touches_no_disk(tmp_path: Path) -> None:
    env = {**os.environ, DATA_DIR_ENV: str(tmp_path / "data"), "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(
        [sys.executable, "-c", "import swarmperf.store.sqlite"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=60,
    )
    assert list(tmp_path.iterdir()) == []


def test_public_names_are_all_listed() -> None:
    public = {
        name
        for name, value in vars(swarmperf.store).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(swarmperf.store.__all__)

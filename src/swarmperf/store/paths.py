"""Where the store lives on disk: the data directory and the database file in it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DATA_DIR_ENV = "SWARMPERF_DATA_DIR"
DB_FILENAME = "swarmperf.db"


def resolve_data_dir(explicit: str | Path | None, env: Mapping[str, str]) -> Path:
    """Return `explicit`, else `env[SWARMPERF_DATA_DIR]`, else `./.swarmperf`.

    An empty string counts as unset, as it does for most shells' variables. `~` is expanded
    because values from config files and the environment never went through a shell.
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    from_env = env.get(DATA_DIR_ENV, "")
    if from_env:
        return Path(from_env).expanduser()
    return Path.cwd() / ".swarmperf"


def default_data_dir() -> Path:
    """The data directory chosen by the process environment, read now (never at import)."""
    return resolve_data_dir(None, os.environ)


def database_path(data_dir: str | Path) -> Path:
    """The SQLite file inside a data directory."""
    return Path(data_dir) / DB_FILENAME

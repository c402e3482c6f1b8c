"""Captures where a benchmark ran: machine, CPU, memory, OS, Python, package versions, commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import psutil

from swarmperf.bench.results import Environment

KEY_PACKAGES = (
    "swarmperf",
    "numpy",
    "scipy",
    "pydantic",
    "httpx",
    "psutil",
    "prometheus-client",
    "pyyaml",
    "ray",
)


def capture_environment(repo: Path | None = None) -> Environment:
    """The environment of this process. `repo` is where to look for a git checkout
    (default: the directory this package was loaded from); outside one the commit is None."""
    return Environment(
        machine=platform.machine() or "unknown",
        cpu=cpu_model(),
        cores=psutil.cpu_count(logical=True) or 0,
        memory_bytes=int(psutil.virtual_memory().total),
        os=f"{platform.system()} {platform.release()}".strip(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        packages=package_versions(KEY_PACKAGES),
        git_commit=git_commit(repo if repo is not None else Path(__file__).resolve().parent),
        swarmperf_version=_version("swarmperf") or "unknown",
    )


def cpu_model() -> str:
    """The CPU's model name as the OS reports it (platform.processor() is often empty)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of `names`; packages that are not installed are left out."""
    found = {}
    for name in names:
        version = _version(name)
        if version is not None:
            found[name] = version
    return found


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_commit(directory: Path) -> str | None:
    """The commit checked out at `directory`, or None (no git, not a checkout, any failure)."""
    if not directory.exists():
        return None
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            env=env,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    if done.returncode != 0 or len(commit) != 40:
        return None
    return commit

"""The top-level `swarmperf` API is deliberate: `__all__` lists exactly what it offers."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from types import ModuleType

import swarmperf


def _offered(module: ModuleType) -> set[str]:
    """What a user finds on the module: public names it defines or imports, and
    `__version__`; submodules (bound as a side effect of importing them) are not offered."""
    return {
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name == "__version__") and not isinstance(value, ModuleType)
    }


def test_all_lists_exactly_the_public_names() -> None:
    offered = _offered(swarmperf)
    exported = set(swarmperf.__all__)
    assert len(exported) == len(swarmperf.__all__), "a name is listed twice in __all__"
    assert offered - exported == set(), "public but missing from __all__ (add it, or make it _)"
    assert exported - offered == set(), "in __all__ but not defined or imported by swarmperf"


def test_every_exported_name_imports() -> None:
    namespace: dict[str, object] = {}
    exec("from swarmperf import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(swarmperf.__all__)
    for name in swarmperf.__all__:
        assert namespace[name] is getattr(swarmperf, name)
        assert namespace[name] is not None


def test_version_is_the_installed_distributions() -> None:
    assert swarmperf.__version__ == importlib.metadata.version("swarmperf")


def test_importing_swarmperf_loads_no_numeric_library() -> None:
    # numpy alone took half of `import swarmperf`; a swarm needs it only to report.
    probe = "import sys, swarmperf; print(*sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert {"numpy", "scipy", "statsmodels"} & set(loaded) == set()
    assert "swarmperf" in loaded

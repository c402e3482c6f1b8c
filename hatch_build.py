"""Wheel build hook: compiles the coordinator and simulation core to C with mypyc.

The modules in `COMPILED` run once or more per task in every swarm and every simulated
event; compiled, a simulation runs two to three times faster (`benchmarks/sim_speed.py`).
The `.py` files ship beside the extensions, which Python imports first.

Only regular wheels are compiled. An editable install stays pure Python, so that an edit to
a source file takes effect at once instead of being shadowed by a stale extension. Set
`SWARMPERF_PURE=1` to build a pure wheel. Without a working C compiler the build says why
and falls back to a pure wheel: everything works, the simulation is slower.
`swarmperf.compiled()` tells which one is installed.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
import traceback
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# The hot path of every task, and nothing that users subclass or that must pickle by value.
COMPILED = (
    "src/swarmperf/core/model.py",
    "src/swarmperf/core/queueing.py",
    "src/swarmperf/balancing/agents.py",
    "src/swarmperf/balancing/strategies.py",
    "src/swarmperf/runtime/coordinator.py",
    "src/swarmperf/sim/engine.py",
    "src/swarmperf/sim/backend.py",
    "src/swarmperf/sim/simulation.py",
)

# Type-checked for compilation only: the runtime dependencies are not installed in an
# isolated build, so what they export is `Any` here; the project's own mypy run is strict.
_MYPY_CONFIG = """\
[mypy]
python_version = {version}
ignore_missing_imports = True
follow_imports = silent
cache_dir = {cache}
"""


class CustomBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        if os.environ.get("SWARMPERF_PURE", "") not in ("", "0"):
            self.app.display_info("SWARMPERF_PURE is set: building a pure-Python wheel.")
            return
        self._work = Path(tempfile.mkdtemp(prefix="swarmperf-mypyc-"))
        try:
            built = self._compile(self._work)
        except Exception:  # any failure means: ship the pure wheel
            self.app.display_warning(
                "Could not compile the simulation core with mypyc; building a pure-Python "
                "wheel instead (it works the same, simulations run slower). The cause:\n"
                + traceback.format_exc(limit=3)
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        for path, target in built:
            build_data["force_include"][str(path)] = target

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)

    def _compile(self, work: Path) -> list[tuple[Path, str]]:
        # Imported here: a pure build must not need them.
        from mypyc.build import mypycify
        from setuptools import Distribution
        from setuptools.command.build_ext import build_ext

        root = Path(self.root)
        config = work / "mypy.ini"
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        config.write_text(_MYPY_CONFIG.format(version=version, cache=work / "cache"))
        out = work / "lib"
        cwd = os.getcwd()
        os.chdir(root)  # mypy names the modules from the paths, relative to the project
        try:
            extensions = mypycify(
                ["--config-file", str(config), *COMPILED],
                opt_level="3",
                target_dir=str(work / "c"),
            )
            distribution = Distribution({"name": "swarmperf", "ext_modules": extensions})
            command = build_ext(distribution)
            command.build_lib = str(out)
            command.build_temp = str(work / "temp")
            command.parallel = os.cpu_count() or 1
            command.ensure_finalized()
            command.run()
        finally:
            os.chdir(cwd)
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        built = [(p, p.relative_to(out).as_posix()) for p in sorted(out.rglob(f"*{suffix}"))]
        if len(built) <= len(COMPILED) - 1:
            raise RuntimeError(f"mypyc built {len(built)} extensions for {len(COMPILED)} modules")
        return built

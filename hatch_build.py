"""The compiled build's Cython modules (pyproject.toml's custom build hook).

mypyc compiles the hand-out and return paths (the mypyc hook); these modules
are Cython because they read asyncmy's own C structs, which only code
compiled against asyncmy's declarations (its connection.pxd) can do.  Each
one is an extension module beside a pure-Python module that imports it when
it loads and keeps its own version when it does not (see
``aiopool/_return_state.py``), so a wheel built without this hook runs the
pure-Python version, as with mypyc.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# Kept in step with aiopool/_build.py's CYTHON_MODULES (tests/test_build.py).
CYTHON_MODULES = ("aiopool._return_state_c",)


class CythonBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compile ``CYTHON_MODULES`` against the asyncmy installed in the build environment."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        import asyncmy
        from Cython.Build import cythonize
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        root = Path(self.root)
        self._work = Path(tempfile.mkdtemp(prefix="aiopool-cython-"))
        extensions = [
            Extension(name, [str(root / (name.replace(".", "/") + ".pyx"))])
            for name in CYTHON_MODULES
        ]
        modules = cythonize(
            extensions,
            # Where `cimport asyncmy.connection` finds asyncmy's .pxd files.
            include_path=[str(Path(asyncmy.__file__).resolve().parent.parent)],
            build_dir=str(self._work / "c"),
            compiler_directives={"language_level": 3},
            quiet=True,
        )
        command = build_ext(Distribution({"ext_modules": modules}))
        command.build_lib = str(self._work / "lib")
        command.build_temp = str(self._work / "tmp")
        command.ensure_finalized()
        command.run()
        for built in command.get_outputs():
            relative = Path(built).relative_to(command.build_lib)
            build_data["force_include"][built] = relative.as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)

"""Build one ``.pyx`` file into an extension module and import it, for the yardsticks.

The yardsticks (``bench.cython_floor``, ``bench.fair_floor``) are measuring
instruments, not part of aiopool: they are compiled on demand, into a
directory the caller chooses, and never installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["build_module"]


def build_module(pyx: Path, name: str, into: Path, include_path: Sequence[str] = ()) -> ModuleType:
    """Compile ``pyx`` as module ``name`` under ``into`` and import it (not into sys.modules)."""
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    modules = cythonize(
        [Extension(name, [str(pyx)])],
        include_path=list(include_path),
        build_dir=str(into / "c"),
        quiet=True,
    )
    command = build_ext(Distribution({"ext_modules": modules}))
    command.build_lib = str(into / "lib")
    command.build_temp = str(into / "tmp")
    command.ensure_finalized()
    command.run()
    spec = importlib.util.spec_from_file_location(name, command.get_outputs()[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Build one ``.pyx`` file into an extension module and import it, for the yardsticks.

The yardsticks (``bench.cython_floor``, ``bench.fair_floor``) are measuring
instruments, not part of aiopool: they are compiled on demand, into a
directory the caller chooses, and never installed.

``python -m bench._cython PYX NAME INTO`` builds in a process of its own and
prints the module's path: ``load_built`` uses it so that a benchmark process
does not import Cython and setuptools (about 55,000 objects that every full
garbage collection of the measured runs would then walk).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["build_module", "load_built"]


def _compile(pyx: Path, name: str, into: Path, include_path: Sequence[str] = ()) -> Path:
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
    return Path(command.get_outputs()[0])


def _import(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_module(pyx: Path, name: str, into: Path, include_path: Sequence[str] = ()) -> ModuleType:
    """Compile ``pyx`` as module ``name`` under ``into`` and import it (not into sys.modules)."""
    return _import(name, _compile(pyx, name, into, include_path))


def load_built(pyx: Path, name: str, into: Path) -> ModuleType:
    """``build_module``, with the compiling done by another process."""
    done = subprocess.run(
        [sys.executable, "-m", "bench._cython", str(pyx), name, str(into)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building {pyx.name} failed: {done.stderr.strip()[-500:]}")
    return _import(name, Path(done.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    print(_compile(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))

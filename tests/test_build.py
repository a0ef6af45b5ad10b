"""The build under test is the one asked for, and the compiled modules are the ones built."""

from __future__ import annotations

import ast
import os
import tomllib
from pathlib import Path

from aiopool._build import COMPILED_MODULES, CYTHON_MODULES, implementation

ROOT = Path(__file__).resolve().parent.parent


def test_the_build_under_test_is_the_one_the_makefile_asked_for() -> None:
    # make test runs the suite on the compiled build and the core suite on the
    # pure modules: without this, either run could quietly test the other one.
    found = implementation()
    assert found != "mixed", "some hot-path modules are compiled and some are not: a stale build"
    expected = os.environ.get("AIOPOOL_EXPECT_BUILD")
    if expected is not None:
        assert found == expected, f"testing the {found} build, but {expected} was asked for"


def test_the_modules_said_to_be_compiled_are_the_ones_the_build_hook_compiles() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    hook = config["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["mypyc"]
    built = sorted(path.removesuffix(".py").replace("/", ".") for path in hook["include"])
    assert built == sorted(COMPILED_MODULES)


def test_connection_builds_its_context_the_cheaper_way_for_the_build() -> None:
    # Compiled, a native class called from interpreted code parses its arguments
    # generically; connection() goes through a compiled function instead (-6 %
    # instructions per loan on asyncio, -10 % on uvloop). Interpreted, that
    # function would only add a frame, so the class is called directly.
    from aiopool import _context

    direct = _context.new_context is _context.ConnectionContext
    assert direct == (implementation() == "pure")


def test_the_cython_modules_listed_are_the_ones_the_build_hook_compiles() -> None:
    source = (ROOT / "hatch_build.py").read_text()
    listed = source.split("CYTHON_MODULES = ", 1)[1].split("\n", 1)[0]
    assert ast.literal_eval(listed) == CYTHON_MODULES
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "custom" in config["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]


def test_fast_returns_read_the_driver_flags_the_cheaper_way_for_the_build() -> None:
    # The compiled build reads asyncmy's C structs; the suite installs the
    # asyncmy the build was compiled against, so its layout check must pass.
    from aiopool import _context, _gate, _return_state

    native = not getattr(_return_state.return_state, "__module__", "").endswith("_return_state")
    assert native == (implementation() == "compiled")
    assert _gate.return_state is _return_state.return_state
    assert _context.return_state is _return_state.return_state

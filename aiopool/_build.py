"""Which build is running: the hand-out and return paths compiled, or pure Python.

The compiled modules are listed in pyproject.toml (the mypyc build hook);
each is also shipped as its Python source, the fallback an install without
the hook (or without a C compiler) runs.  The Cython modules (hatch_build.py)
stand beside a Python module that uses them when they load.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Literal

__all__ = ["COMPILED_MODULES", "CYTHON_MODULES", "implementation"]

COMPILED_MODULES = (
    "aiopool._context",
    "aiopool._counters",
    "aiopool._deadlines",
    "aiopool._gate",
    "aiopool._handout",
    "aiopool._ledger",
    "aiopool._loans",
    "aiopool._quiet_await",
    "aiopool._slot",
    "aiopool._wakeups",
)

# Kept in step with hatch_build.py (tests/test_build.py).
CYTHON_MODULES = ("aiopool._return_state_c",)

Implementation = Literal["compiled", "pure", "mixed"]


def implementation() -> Implementation:
    """``"compiled"`` or ``"pure"``; ``"mixed"`` means a stale or partial build."""
    compiled = [
        not (importlib.import_module(name).__file__ or "").endswith(".py")
        for name in COMPILED_MODULES
    ]
    # Present, not necessarily loaded: it refuses an asyncmy of another layout.
    compiled += [importlib.util.find_spec(name) is not None for name in CYTHON_MODULES]
    if all(compiled):
        return "compiled"
    if not any(compiled):
        return "pure"
    return "mixed"

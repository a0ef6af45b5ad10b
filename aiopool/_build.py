"""Which build is running: the hand-out and return paths compiled with mypyc, or pure Python.

The compiled modules are listed in pyproject.toml (the mypyc build hook);
each is also shipped as its Python source, the fallback an install without
the hook (or without a C compiler) runs.
"""

from __future__ import annotations

import importlib
from typing import Literal

__all__ = ["COMPILED_MODULES", "implementation"]

COMPILED_MODULES = (
    "aiopool._context",
    "aiopool._counters",
    "aiopool._deadlines",
    "aiopool._gate",
    "aiopool._handout",
    "aiopool._ledger",
    "aiopool._quiet_await",
    "aiopool._slot",
)

Implementation = Literal["compiled", "pure", "mixed"]


def implementation() -> Implementation:
    """``"compiled"`` or ``"pure"``; ``"mixed"`` means a stale or partial build."""
    compiled = [
        not (importlib.import_module(name).__file__ or "").endswith(".py")
        for name in COMPILED_MODULES
    ]
    if all(compiled):
        return "compiled"
    if not any(compiled):
        return "pure"
    return "mixed"

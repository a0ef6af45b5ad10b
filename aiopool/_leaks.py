"""Noticing connections that were borrowed and never given back.

Two nets, after HikariCP's ``leakDetectionThreshold`` and SQLAlchemy's
finaliser warning: a connection dropped by its borrower is garbage-collected
(the pool holds lent connections only weakly), which raises a
``ResourceWarning`` and gives the slot back; and with ``leak_threshold`` set,
the maintenance task logs any loan older than that, with the acquiring stack.
"""

from __future__ import annotations

import traceback

__all__ = ["capture_origin", "describe_origin"]

# Frames of asyncio and aiopool itself say nothing about who borrowed.
_SKIP = ("/asyncio/", "/aiopool/_pool.py", "/aiopool/_leaks.py")


def capture_origin() -> str:
    """The caller's stack, innermost frames last, without asyncio and pool frames."""
    frames = [f for f in traceback.extract_stack() if not any(s in f.filename for s in _SKIP)]
    return "".join(traceback.format_list(frames[-12:]))


def describe_origin(origin: str | None) -> str:
    """Text for a warning: where the connection was acquired, or how to find out."""
    if origin is None:
        return " (set leak_threshold on the pool to record where connections are acquired)"
    return f"; it was acquired at:\n{origin}"

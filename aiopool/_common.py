"""Small helpers the pool's workers share: argument checks and error text."""

from __future__ import annotations

import logging
import math

from ._protocols import Connection

__all__ = ["check_timeout", "describe", "logger", "thread_id"]

logger = logging.getLogger("aiopool")


def check_timeout(name: str, value: float) -> float:
    """``value`` as seconds, or a ``ValueError`` naming ``name`` and what is allowed."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")
    return float(value)


def describe(exc: BaseException | None) -> str:
    """``Type: text`` of an error for logs and messages; ``none`` for no error."""
    if exc is None:
        return "none"
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def thread_id(conn: Connection) -> int:
    """The server's session id of a connection, or -1 if it cannot be had."""
    try:
        return conn.thread_id()
    except Exception:
        return -1

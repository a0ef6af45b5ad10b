"""Exceptions raised by aiopool.

Every class sets ``__module__ = "aiopool"`` so tracebacks and ``repr`` show the
public import path rather than this private module.
"""

from __future__ import annotations

__all__ = [
    "PoolClosed",
    "PoolError",
    "PoolTimeout",
    "TooManyRequests",
    "WrongEventLoop",
]


class PoolError(Exception):
    """Base class of every error the pool itself raises."""

    __module__ = "aiopool"


class PoolClosed(PoolError):
    """The pool is not open: it was never opened, or it has been closed."""

    __module__ = "aiopool"


class PoolTimeout(PoolError, TimeoutError):
    """No connection could be handed out within the timeout.

    The message says how long the request waited, the pool's counts, and the
    last connection error when opening connections has been failing.
    """

    __module__ = "aiopool"


class TooManyRequests(PoolError):
    """More tasks are waiting than ``max_waiting`` allows; refused at once."""

    __module__ = "aiopool"


class WrongEventLoop(PoolError, RuntimeError):
    """The pool was used from an event loop (or process) it does not belong to."""

    __module__ = "aiopool"

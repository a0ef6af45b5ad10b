"""The pool's shared state and small helpers, for the layers that make up the pool.

``AsyncConnectionPool`` is built in layers, each a class with one job, each
seeing the ones below it: ``PoolBase`` (the state, declared here and set up by
the pool's ``__init__``), ``_closing.Closing`` (retiring connections and the
pool-owned tasks that do it), ``_opening.Opening`` (opening connections, with
back-off), ``_maintenance.Maintenance`` (the background rounds) and
``_pool.AsyncConnectionPool`` (the life cycle, hand-out and return).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ._backoff import Backoff
from ._config import ConnectOptions, PoolLimits
from ._health import (
    close_hard,
)
from ._protocols import Connection, ConnectionCallback, ConnectionFactory
from ._slot import Slot
from ._stats import Counters
from ._waiters import WaitQueue

logger = logging.getLogger("aiopool")

_NEW: Final = "new"
_OPEN: Final = "open"
_CLOSING: Final = "closing"
_CLOSED: Final = "closed"
_FORKED: Final = "forked"

# How long closing one connection politely (COM_QUIT) may take before the
# socket is simply dropped.
_QUIT_TIMEOUT = 1.0
# How far below max_lifetime a connection may retire, so a batch opened
# together does not expire together.
_LIFETIME_JITTER = 0.05
# The least time a hand-out check (ping) gets, even past the caller's deadline.
_MIN_CHECK_BUDGET = 0.5


def _check_timeout(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")
    return float(value)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "none"
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def _drop_socket(slot: Slot) -> None:
    """Close a slot's connection at once, even if its borrower let it be collected."""
    conn = slot.conn if slot.conn is not None else slot.ref()
    if conn is not None:
        close_hard(conn)
    elif slot.transport is not None:
        with contextlib.suppress(Exception):  # the loop may be closed already
            slot.transport.close()


def _thread_id(conn: Connection) -> int:
    try:
        return conn.thread_id()
    except Exception:
        return -1


class PoolBase:
    """The state every layer of the pool reads and changes (see ``AsyncConnectionPool``)."""

    name: str
    _limits: PoolLimits
    _options: ConnectOptions
    _reconnect_timeout: float
    _leak_threshold: float | None
    _track_origin: bool
    _reset_session: bool
    _reset: ConnectionCallback | None
    _resets_on_return: bool
    _fast_return: bool
    _baseline: str
    _configure: ConnectionCallback | None
    _check: ConnectionCallback | None
    _reconnect_failed: Callable[[Any], Awaitable[None] | None] | None
    _factory: ConnectionFactory
    _check_after: float
    _state: str
    _loop: asyncio.AbstractEventLoop | None
    _opened_loop: asyncio.AbstractEventLoop | None
    _pid: int
    _cond: asyncio.Condition | None
    _idle: deque[Slot]
    _lent: dict[int, Slot]
    _waiters: WaitQueue
    _size: int
    _opening: int
    _generation: int
    _tasks: set[asyncio.Task[Any]]
    _openers: set[asyncio.Task[Any]]
    _maintenance: asyncio.Task[None] | None
    _backoff: Backoff
    _last_error: BaseException | None
    _fatal_error: BaseException | None
    _counters: Counters
    _closed_event: asyncio.Event | None
    _forked_leftovers: list[Slot]

    # Provided by higher layers; declared so that each layer type-checks alone.
    def _grow(self) -> None:
        raise NotImplementedError

    def _put_back(self, slot: Slot) -> None:
        raise NotImplementedError

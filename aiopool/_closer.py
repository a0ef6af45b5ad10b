"""Closing connections the ledger retired: politely (COM_QUIT) in pool tasks, or at once.

Every path that ends a slot goes through ``Closer.close`` (the ledger's close
effect) and ends in ``_finish``, which is idempotent and frees the slot's
place in the ledger, whether the closing task finished, failed or was
cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from time import monotonic
from typing import Any

from ._health import close_hard, close_politely, is_broken
from ._leaks import describe_origin
from ._ledger import Ledger
from ._listeners import Listeners
from ._slot import Slot
from ._tasks import TaskSet
from .events import CloseEvent, CloseReason

__all__ = ["Closer", "drop_socket"]

# How long closing one connection politely (COM_QUIT) may take before the
# socket is simply dropped.
QUIT_TIMEOUT = 1.0


def drop_socket(slot: Slot) -> None:
    """Close a slot's connection at once, even if its borrower let it be collected."""
    conn = slot.conn if slot.conn is not None else slot.ref()
    if conn is not None:
        close_hard(conn)
    elif slot.transport is not None:
        with contextlib.suppress(Exception):  # the loop may be closed already
            slot.transport.close()


class Closer:
    """Carries out the ledger's decisions to close slots."""

    __slots__ = ("_closing", "_ledger", "_listeners", "_name", "_tasks")

    def __init__(self, ledger: Ledger, tasks: TaskSet, listeners: Listeners, name: str) -> None:
        self._ledger = ledger
        self._tasks = tasks
        self._listeners = listeners
        self._name = name
        self._closing: set[asyncio.Task[Any]] = set()

    def close(self, slot: Slot, reason: CloseReason, polite: bool) -> None:
        """The ledger's close effect: start closing ``slot`` (already off its lists)."""
        if self._listeners.close:
            self._listeners.emit(self._listeners.close, CloseEvent(self._name, reason))
        conn = slot.conn
        if polite and conn is not None and not is_broken(conn) and self._tasks.usable():
            task = self._tasks.spawn(self._quit(conn), lambda: self.finish(slot))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        else:
            self.finish(slot)

    async def _quit(self, conn: Any) -> None:
        await close_politely(conn, QUIT_TIMEOUT)

    def finish(self, slot: Slot) -> None:
        """Drop the slot's socket and free its place; safe to call twice."""
        if not slot.closed:
            drop_socket(slot)
            self._ledger.closed(slot, monotonic())

    def reclaim(self, slot: Slot) -> None:
        """Done-callback of a task that owned ``slot``: close it if the task was cut short."""
        if self._ledger.orphaned(slot):
            self._ledger.retire(slot, "returned_bad", monotonic(), polite=False)

    def collected(self, slot: Slot) -> None:
        """Weakref callback: a connection was garbage-collected; was it lent out?"""
        if not self._ledger.collected(slot):
            return  # closed and dropped by the pool itself
        # Closed before the warning: under warnings-as-errors (-W error, pytest's
        # filterwarnings) warn() raises, and the socket and the place must not
        # be lost with it.
        self._ledger.retire(slot, "returned_bad", monotonic(), polite=False)
        warnings.warn(
            f"aiopool: a connection from pool {self._name!r} was garbage-collected without "
            f"being returned; the pool closed it{describe_origin(slot.origin)}",
            ResourceWarning,
            stacklevel=2,
        )

    async def wait_closing(self) -> None:
        """Wait for the polite closes under way (each bounded by ``QUIT_TIMEOUT``)."""
        if self._closing:
            await asyncio.wait(set(self._closing))

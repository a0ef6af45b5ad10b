"""Retiring connections: closing slots politely, in pool-owned tasks that cannot be lost.

Every path that takes a slot out of the idle stack or the lent table ends in
``_finish_close`` (idempotent), reached from a task's done-callback when the
task itself is cut short, so a cancellation at any point leaves the counts right.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Coroutine
from typing import Any

from ._base import (
    _QUIT_TIMEOUT,
    PoolBase,
    _drop_socket,
)
from ._health import (
    close_politely,
    is_broken,
)
from ._leaks import describe_origin
from ._slot import Slot


class Closing(PoolBase):
    """Closing slots and running the pool's own tasks."""

    def _discard(self, slot: Slot, *, polite: bool) -> None:
        """Close a slot the caller already took out of idle/lent, then refill."""
        self._lent.pop(slot.key, None)
        if polite and slot.conn is not None and not is_broken(slot.conn):
            self._spawn_close(slot)
        else:
            self._finish_close(slot)

    def _spawn_close(self, slot: Slot) -> asyncio.Task[None] | None:
        """Close ``slot`` politely in a pool task; its socket is dropped even if cancelled."""
        loop = self._opened_loop
        if loop is None or loop.is_closed():
            self._finish_close(slot)
            return None
        slot.closing = True
        return self._spawn(self._close_slot(slot), slot, closes=True)

    async def _close_all(self, slots: list[Slot]) -> None:
        """Close slots concurrently; cancelling the caller does not stop the closing."""
        tasks = [t for t in map(self._spawn_close, slots) if t is not None]
        if tasks:
            await asyncio.wait(tasks)

    def _spawn(
        self, coro: Coroutine[Any, Any, Any], slot: Slot, *, closes: bool = False
    ) -> asyncio.Task[Any]:
        """Run pool work that owns ``slot``; if it ends without settling it, close it.

        The settling is a done-callback, not a ``finally``: it also runs for a
        task cancelled before its first step (close() right after open()).
        """
        loop = self._opened_loop
        assert loop is not None
        task = loop.create_task(coro)
        self._track(task)
        settle = self._finish_close if closes else self._reclaim
        task.add_done_callback(lambda _task: settle(slot))
        return task

    def _reclaim(self, slot: Slot) -> None:
        # The task that owned the slot ended: if the slot is in no list and no
        # close task owns it now, the task was cut short: close it here.
        if slot.closed or slot.closing or slot in self._idle or self._lent.get(slot.key) is slot:
            return
        self._finish_close(slot)

    def _finish_close(self, slot: Slot) -> None:
        """Drop the slot's socket and its place in the pool; safe to call twice."""
        if slot.closed:
            return
        slot.closed = True
        _drop_socket(slot)
        self._size -= 1
        self._grow()

    def _collected(self, slot: Slot) -> None:
        """Weakref callback: a connection was garbage-collected; was it lent out?"""
        if self._lent.get(slot.key) is not slot:
            return  # closed and dropped by the pool itself
        del self._lent[slot.key]
        self._counters.returns_bad += 1
        warnings.warn(
            f"aiopool: a connection from pool {self.name!r} was garbage-collected without "
            f"being returned; the pool closed it{describe_origin(slot.origin)}",
            ResourceWarning,
            stacklevel=2,
        )
        self._finish_close(slot)

    async def _close_slot(self, slot: Slot, *, polite: bool = True) -> None:
        try:
            if polite and slot.conn is not None and not slot.closed:
                await close_politely(slot.conn, _QUIT_TIMEOUT)
        finally:
            self._finish_close(slot)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self) -> None:
        cond = self._cond
        if cond is not None:
            async with cond:
                cond.notify_all()

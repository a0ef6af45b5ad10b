"""The queue of tasks waiting for a connection.

Each waiter is a future.  A returned connection goes straight into the oldest
live waiter's future (first come, first served, no barging), so a waiter that
was cancelled or timed out simply has a done future and is passed over: no
wake-up is lost to a cancellation (cpython #112202 affects
``asyncio.Condition.notify`` before 3.13, which is why the pool does not park
connection waiters on its Condition).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque

from ._slot import Slot

__all__ = ["WaitQueue", "Waiter", "makes_plain_futures"]

Waiter = asyncio.Future[Slot | None]
"""Resolves to the slot handed over, or to None when the waiter's time ran out."""


def makes_plain_futures(loop: asyncio.AbstractEventLoop) -> bool:
    """True when ``loop.create_future()`` is known to be ``asyncio.Future(loop=loop)``.

    So it is for asyncio's own loops (a Python method around it) and for
    uvloop's (a Cython one): building the future directly skips that call,
    once per request that waits.  Any other loop's ``create_future`` is kept.
    """
    create_future = type(loop).create_future
    if create_future is asyncio.BaseEventLoop.create_future:
        return True
    uvloop = sys.modules.get("uvloop.loop")  # loaded if the loop is uvloop's
    return uvloop is not None and create_future is uvloop.Loop.create_future


class WaitQueue(deque[Waiter]):
    """FIFO of waiter futures; a ``deque`` so that ``if queue:`` costs nothing."""

    __slots__ = ()

    def prune(self) -> None:
        """Drop finished waiters from the front (cancelled or expired, not yet gone)."""
        while self and self[0].done():
            self.popleft()

    def hand_off(self, slot: Slot) -> bool:
        """Give ``slot`` to the oldest waiter still waiting; False if there is none."""
        while self:
            waiter = self.popleft()
            if not waiter.done():
                waiter.set_result(slot)
                return True
        return False

    def discard(self, waiter: Waiter) -> None:
        """Forget ``waiter`` wherever it is in the queue."""
        with contextlib.suppress(ValueError):
            self.remove(waiter)

    def fail_all(self, exc: BaseException) -> None:
        """Wake every waiter with ``exc`` (the pool is closing)."""
        while self:
            waiter = self.popleft()
            if not waiter.done():
                waiter.set_exception(exc)

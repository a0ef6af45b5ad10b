"""One timer for the wait queue: when each waiting request's time is up.

A waiter per ``call_later`` costs a timer handle pushed on asyncio's heap
(whose ordering calls ``TimerHandle.__lt__`` in Python) and a ``cancel`` when
it is served: 6 % of the CPU with 1,000 tasks on 16 connections (py-spy).
Requests mostly queue in deadline order (they share the pool's timeout), so
the deadlines are kept in a FIFO and one timer is armed for the earliest.  A
request whose deadline is earlier than the last one queued (a shorter
``acquire(timeout=)``) gets a timer of its own, so no deadline is ever late.

This module never touches the ledger's books: it only resolves a waiter's
future with None, which tells the waiting request its time is up.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Final

from ._waiters import Waiter

__all__ = ["Deadlines"]

# A C static in the compiled build (an imported name costs a dict lookup per call).
monotonic: Final = time.monotonic

# Served entries at the front of the lists before they are cut off (amortised).
_COMPACT_AFTER: Final = 64


def _expire(waiter: Waiter) -> None:
    """Timer callback: tell a waiter its time is up, unless it was served first."""
    if not waiter.done():
        waiter.set_result(None)


class Deadlines:
    """The wait queue's deadlines, in queueing order, behind one timer."""

    __slots__ = ("_deadlines", "_head", "_last", "_timer", "_waiters", "loop")

    def __init__(self) -> None:
        # Two lists read from ``_head`` on, rather than a deque of pairs: a
        # compiled build indexes a list natively and needs no tuple per wait,
        # and ``add`` asks no future whether it is done (a method call each).
        # A served waiter clears its own entry (``served``), so the list
        # keeps no finished future alive: kept longer, they outlive young
        # garbage collections and make the full ones come sooner.
        self._deadlines: list[float] = []
        self._waiters: list[Waiter | None] = []
        self._head = 0
        self._last = -math.inf  # the latest deadline queued
        self._timer: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def add(self, waiter: Waiter, deadline: float) -> asyncio.TimerHandle | None:
        """Time ``waiter`` out at ``deadline`` (monotonic seconds).

        Returns the timer to cancel once the waiter is served, or None when
        the shared timer covers it: then call ``served`` once it has its
        answer.
        """
        loop = self.loop
        assert loop is not None, "Deadlines.add() before the pool started"
        if deadline < self._last:
            return loop.call_later(max(0.0, deadline - monotonic()), _expire, waiter)
        self._last = deadline
        self._deadlines.append(deadline)
        self._waiters.append(waiter)
        if self._timer is None:
            self._arm(deadline)
        return None

    def served(self, waiter: Waiter) -> None:
        """Forget the entry of ``waiter``, which has its answer (and finished ones before it).

        Waiters are served oldest first, so its entry is at the front, or
        behind entries of waiters already gone (cancelled, timed out).
        """
        waiters = self._waiters
        head = self._head
        end = len(waiters)
        while head < end:
            entry = waiters[head]
            if entry is not None and entry is not waiter and not entry.done():
                break  # an older waiter still waits: this entry goes later
            waiters[head] = None
            head += 1
            if entry is waiter:
                break
        self._head = head
        if head >= _COMPACT_AFTER and 2 * head >= end:
            self._compact()

    def _compact(self) -> None:
        head = self._head
        del self._waiters[:head]
        del self._deadlines[:head]
        self._head = 0
        if not self._waiters:
            self._last = -math.inf

    def _arm(self, deadline: float) -> None:
        assert self.loop is not None
        self._timer = self.loop.call_later(max(0.0, deadline - monotonic()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        waiters = self._waiters
        deadlines = self._deadlines
        now = monotonic()
        head = self._head
        end = len(waiters)
        while head < end:
            waiter = waiters[head]
            if waiter is not None and not waiter.done():
                deadline = deadlines[head]
                if deadline > now:  # the loop may run a timer a little early
                    self._head = head
                    self._arm(deadline)
                    return
                waiter.set_result(None)
            waiters[head] = None
            head += 1
        self._head = head
        self._compact()

    def stop(self) -> None:
        """Forget every deadline (the pool is closing: its waiters are failed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiters.clear()
        self._deadlines.clear()
        self._head = 0
        self._last = -math.inf

    def __len__(self) -> int:
        """Entries kept from the first one not yet answered."""
        return len(self._waiters) - self._head

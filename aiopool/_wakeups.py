"""Waking the tasks of the waiters served in one loop turn, behind one callback.

A waiter is an ``asyncio.Future``, and serving it with ``set_result`` makes
the future schedule its task's wake-up with ``loop.call_soon``.  Under
asyncio's own loop that is Python code, a ``Handle`` built, queued and run,
about 5,000 instructions a hand-off.  Under load one loop turn serves several
waiters (1,000 tasks on 16 connections: about 5 a turn), so the pool takes
the waiting task's callback off the future before resolving it, and runs the
turn's wake-ups from one scheduled callback (callgrind, that load, asyncio:
97,476 -> 91,722 instructions per ``SELECT 1``; uvloop, whose ``call_soon``
is C, unchanged).

Nothing else changes.  The future is resolved at once, so a task cancelled
before its wake-up finds it done and throws at its ``await``, as it always
did; the wake-ups run in the order served, in the next loop turn, as the
futures' own would.  A future with other than exactly one callback (its task
is not waiting on it yet, or somebody else is) is resolved the usual way, and
so is every waiter while the loop runs in debug mode, whose slow-callback
warnings name the callback that ran long: a batch would name the pool.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

from ._slot import Slot
from ._waiters import Waiter

__all__ = ["Wakeups"]

Entry = tuple[Callable[[Waiter], Any], contextvars.Context]


class _Callbacks(Protocol):
    # asyncio's Future, C and Python alike, lists its callbacks in
    # ``_callbacks``: None when there are none (typeshed says a list).
    @property
    def _callbacks(self) -> list[Entry] | None: ...


# asyncio's Future methods, called as functions on a plain Future: compiled
# code otherwise looks each up on the type at every call (~100 instructions).
FUTURE: Final = asyncio.Future
remove_done_callback: Final = asyncio.Future.remove_done_callback
set_result: Final = asyncio.Future.set_result


def _not_debugging() -> bool:
    return False


class Wakeups:
    """The wake-ups of the waiters served in this loop turn, run by one callback."""

    __slots__ = ("_context", "_debug", "_entries", "_loop", "_waiters")

    def __init__(self) -> None:
        # None until the pool opens and after it shuts: waiters are then
        # served the usual way.
        self._loop: asyncio.AbstractEventLoop | None = None
        # The loop's get_debug, bound once: asked at the first hand-off of a
        # turn (debug mode can be switched on while the loop runs).
        self._debug: Callable[[], bool] = _not_debugging
        # The callback needs no context of its own: one made once spares
        # call_soon a copy of the releasing task's context each turn.
        self._context = contextvars.Context()
        # The served waiters and their tasks' callbacks, in the order served.
        self._entries: list[Entry] = []
        self._waiters: list[Waiter] = []

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Batch the wake-ups in ``loop`` from now on (unless it runs in debug mode)."""
        self._loop = loop
        self._debug = loop.get_debug

    def shut(self) -> None:
        """Serve the usual way from now on; wake-ups already batched still run."""
        self._loop = None
        self._debug = _not_debugging  # it holds the loop too

    def forget(self) -> None:
        """In a forked child: drop the parent's batch (its loop does not run here)."""
        self._loop = None
        self._debug = _not_debugging
        self._entries = []
        self._waiters = []

    @property
    def pending(self) -> int:
        """How many served waiters wait for this turn's wake-up callback."""
        return len(self._waiters)

    def serve(self, waiter: Waiter, slot: Slot) -> bool:
        """Resolve ``waiter`` with ``slot``; its task wakes with this turn's batch.

        False, and nothing done, if ``waiter`` is done already (cancelled, or
        its time ran out).
        """
        loop = self._loop
        callbacks = cast(_Callbacks, waiter)._callbacks
        if loop is None or callbacks is None or len(callbacks) != 1:
            if waiter.done():
                return False
            waiter.set_result(slot)
            return True
        # A future keeps callbacks only while pending (they are scheduled and
        # dropped when it is done): this one needs no done() call.
        entries = self._entries
        if not entries and self._debug():
            # asyncio's debug mode times each callback and names the slow
            # ones: a batch would blame the pool for a task's slow step.
            waiter.set_result(slot)
            return True
        entry = callbacks[0]
        if type(waiter) is FUTURE:
            remove_done_callback(waiter, entry[0])
            set_result(waiter, slot)
        else:
            waiter.remove_done_callback(entry[0])
            waiter.set_result(slot)
        entries.append(entry)
        self._waiters.append(waiter)
        if len(entries) == 1:
            loop.call_soon(self._run, context=self._context)
        return True

    def _run(self) -> None:
        # A wake-up batched while these run goes to the next turn, as with
        # call_soon: a chain of quick loans must not keep the loop from I/O.
        entries = self._entries
        waiters = self._waiters
        self._entries = []
        self._waiters = []
        done = 0
        count = len(entries)
        try:
            while done < count:
                callback, context = entries[done]
                waiter = waiters[done]
                done += 1
                context.run(callback, waiter)
        finally:
            if done < count:
                # A wake-up raised (a task's re-raises SystemExit and
                # KeyboardInterrupt): the rest still wake, each on its own.
                loop = waiters[0].get_loop()
                for index in range(done, count):
                    callback, context = entries[index]
                    loop.call_soon(callback, waiters[index], context=context)

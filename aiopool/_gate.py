"""What the hand-out and return fast paths test before they touch the books.

The pool class stays interpreted (subclassable, weakly referenced, patchable),
and compiled code pays a generic lookup for each attribute of an interpreted
object it reads: ``acquire`` and ``release`` compiled as methods reading the
pool's attributes cost 8,628 instructions per pair against 8,188
interpreted.  So the fields the compiled fast paths (``acquire()`` and
``release()`` in ``_loans``, ``connection()``'s context manager, the slow
hand-out) read live here, in a compiled class: one lookup of ``pool._gate``,
or none when it is passed in, and the rest are native reads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Final

from ._deadlines import Deadlines
from ._ledger import Ledger
from ._protocols import Connection
from ._return_state import CLEAN
from ._return_state import return_state as _return_state
from ._slot import Slot
from ._waiters import Waiter, makes_plain_futures

__all__ = ["Gate"]

# A Final module name is a C static in the compiled build, where an imported
# one is looked up in the module's dict at every call (~150 instructions).
get_ident: Final = threading.get_ident
# The same, for comparing with asyncio's ``loop._thread_id``: typed object, the
# compiled build compares the result as it comes (as an int it was unboxed and
# boxed again for the comparison, ~85 instructions).
thread_ident: Final[Callable[[], object]] = threading.get_ident
monotonic: Final = time.monotonic
return_state: Final = _return_state
FUTURE: Final = asyncio.Future


def _no_loop_yet() -> Waiter:
    raise RuntimeError("the pool has no event loop yet")  # pragma: no cover


def _not_running() -> bool:
    return False


class Gate:
    """The pool's loop and the switches its fast paths test (one owner: the pool)."""

    __slots__ = (
        "_create_future",
        "deadlines",
        "fast_return",
        "has_thread_id",
        "ledger",
        "lend_hooks",
        "loop",
        "loop_running",
        "loop_thread",
        "plain_futures",
        "return_hooks",
    )

    def __init__(self, ledger: Ledger, deadlines: Deadlines) -> None:
        self.ledger = ledger
        # The wait queue's timer: the slow hand-out uses it at every wait, and
        # reads it here natively.
        self.deadlines = deadlines
        # A waiter's future is built here, one call instead of two, when the
        # loop's create_future is known to build a plain asyncio.Future.
        self.plain_futures = False
        self._create_future: Callable[[], Waiter] = _no_loop_yet
        # The loop the pool was opened in, while it may be used; None turns
        # every fast path off (not open, closing, closed, forked).
        self.loop: asyncio.AbstractEventLoop | None = None
        # The thread running that loop: the test that the caller runs in the
        # pool's loop, without get_running_loop()'s getpid() on Python 3.11.
        self.loop_thread = 0
        # asyncio's loops keep the thread running them in ``_thread_id`` (None
        # when stopped): one attribute read answers "is this the pool's loop,
        # running here?".  Other loops (uvloop) are asked is_running().
        self.has_thread_id = False
        # The loop's is_running, bound once: compiled code calls a method of an
        # interpreted object by looking it up on the type each time (~120
        # instructions a hand-out under uvloop).
        self.loop_running: Callable[[], bool] = _not_running
        # A hand-out or return has something to report (listeners, leak tracking).
        self.lend_hooks = False
        self.return_hooks = False
        # The return fast path may be taken: open, and no reset to run.
        self.fast_return = False

    def open(self, loop: asyncio.AbstractEventLoop, *, fast_return: bool) -> None:
        """The pool opened in ``loop``, which runs in the calling thread."""
        self.loop = loop
        self.plain_futures = makes_plain_futures(loop)
        self._create_future = loop.create_future
        self.deadlines.loop = loop
        self.loop_thread = get_ident()
        self.has_thread_id = isinstance(getattr(loop, "_thread_id", None), int)
        self.loop_running = loop.is_running
        self.fast_return = fast_return
        self.ledger.wakeups.open(loop)

    def shut(self) -> None:
        """Every fast path off: the pool is closing, closed or forked."""
        self.loop = None
        self.loop_running = _not_running  # holds the loop too
        self.fast_return = False
        self.ledger.wakeups.shut()

    def new_waiter(self) -> Waiter:
        """A future, in the pool's loop, for one request that must wait."""
        loop = self.loop
        if self.plain_futures and loop is not None:
            return FUTURE(loop=loop)
        return self._create_future()

    def here(self) -> bool:
        """True when the pool's loop is running in the calling thread.

        One thread runs one loop at a time, so it is then the running loop.
        """
        loop = self.loop
        if loop is None:
            return False
        if self.has_thread_id:
            return bool(loop._thread_id == thread_ident())  # type: ignore[attr-defined]
        return self.loop_thread == get_ident() and self.loop_running()

    def lend_here(self) -> Connection | None:
        """``acquire()``'s fast path in one call: a fresh idle connection, or None.

        None when the caller is not in the pool's running loop, somebody is
        queued, or nothing idle is fresh: ``acquire()`` then takes the slow
        path, which also tells a wrong loop apart.
        """
        # here() written out: in the pure-Python build each call is a frame.
        ledger = self.ledger
        loop = self.loop
        if (
            loop is not None
            and ledger.idle
            and (
                loop._thread_id == thread_ident()  # type: ignore[attr-defined]
                if self.has_thread_id
                else self.loop_thread == get_ident() and self.loop_running()
            )
        ):
            return ledger.lend_fresh(monotonic())
        return None

    def return_here(self, conn: Connection) -> Slot | None:
        """``release()``'s fast path in one call: the slot taken back, or None.

        Taken back only when the return needs no round trip (see
        ``ConnectionContext.__aexit__``); None sends ``release()`` to the slow
        path, which also refuses a connection that is not lent.  No thread
        check (see ``_loans.release``).
        """
        if self.fast_return and return_state(conn) == CLEAN:
            return self.ledger.return_clean(conn, monotonic())
        return None

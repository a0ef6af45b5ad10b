"""The hand-out's slow path: a request that must wait, or whose connection needs a check.

Under load every request comes here, so it is one of the compiled modules: a
compiled coroutine costs less to create and to resume at each hand-off than
an interpreted one (callgrind, 1,000 tasks on 16 connections: 119,323 ->
112,233 instructions per ``SELECT 1``).  It is a function of the pool rather
than a method so that the compiled build can compile it while the pool class
stays a plain Python class (subclassable, weakly referenced, patchable).  It
reads the pool's ``Gate``, whose fields are native reads, where the pool's
own attributes would cost it a generic lookup each.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Final

from ._gate import Gate
from ._ledger import OPEN
from ._protocols import Connection
from ._quiet_await import quiet
from ._waiters import Waiter
from .errors import PoolClosed

if TYPE_CHECKING:
    from ._pool import AsyncConnectionPool

__all__ = ["acquire_slow"]

# A C static in the compiled build (an imported name costs a dict lookup per call).
monotonic: Final = time.monotonic


async def acquire_slow(pool: AsyncConnectionPool, gate: Gate, timeout: float | None) -> Connection:
    """Borrow a connection when the fast path did not apply: wait in line, check it.

    ``gate`` is the pool's (passed in: the callers hold it, and reading it
    off the interpreted pool costs a generic lookup).  ``timeout`` None means
    the pool's.  Raises what ``acquire()`` documents
    (``PoolTimeout``, ``PoolClosed``, ``TooManyRequests``, ``WrongEventLoop``).
    """
    # One coroutine frame from here to the waiter's future: each frame is
    # resumed again at every hand-off.  The clock is read again only where
    # time has passed.
    ledger = gate.ledger
    if ledger.state != OPEN or not gate.here():
        pool._check_usable()
    limit = ledger.timeout if timeout is None else timeout
    counters = ledger.counters
    counters.requests_num += 1
    now = start = monotonic()
    deadline = start + limit
    queued = False
    while True:
        slot = ledger.take_idle() if ledger.idle else None
        if slot is None:
            if not queued:
                queued = True
                counters.requests_queued += 1
                if ledger.max_waiting:
                    pool._check_room()
            waiter: Waiter = gate.new_waiter()
            ledger.enqueue(waiter, now)
            # A waiter served at once from idle needs no deadline, but asking
            # costs a method call per wait; served() drops its entry.
            timer = None if deadline == math.inf else gate.deadlines.add(waiter, deadline)
            try:
                slot = await quiet(waiter)
            except BaseException:
                ledger.give_up(waiter, monotonic())
                raise
            finally:
                if timer is not None:
                    timer.cancel()
                elif deadline != math.inf:
                    gate.deadlines.served(waiter)
            if slot is None:
                pool._timed_out(waiter, start)
        # Most hand-outs need no check: skip the checker's coroutine then.
        now = monotonic()
        if now < slot.fresh_until and not slot.stream.gone():
            break
        if await quiet(pool._checker.usable(slot, deadline)):
            now = monotonic()
            break
        now = monotonic()
    if ledger.state != OPEN:
        # close() started while this request was checking its connection.
        ledger.retire(slot, "pool_closed", now, polite=False)
        raise PoolClosed(f"pool {pool.name!r} was closed")
    if queued:
        counters.requests_wait_ms += (now - start) * 1000.0
    conn = ledger.hand_out(slot, now)
    if gate.lend_hooks:
        pool._lent_now(conn, now - start, queued)
    return conn

"""What ``pool.connection()`` returns: an async context manager for one loan."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final

from ._gate import Gate
from ._handout import acquire_slow
from ._protocols import Connection
from ._quiet_await import quiet
from ._return_state import CLEAN, IN_TRANSACTION
from ._return_state import return_state as _return_state

if TYPE_CHECKING:
    from ._pool import AsyncConnectionPool

__all__ = ["ConnectionContext", "new_context"]

# Final module names are C statics in the compiled build; imported names
# would be looked up in the module's dict at every call (~150 instructions).
get_ident: Final = threading.get_ident
# The same, for comparing with asyncio's ``loop._thread_id``: typed object, the
# compiled build compares the result as it comes (as an int it was unboxed and
# boxed again for the comparison, ~85 instructions).
thread_ident: Final[Callable[[], object]] = threading.get_ident
monotonic: Final = time.monotonic
return_state: Final = _return_state


class ConnectionContext:
    """What ``pool.connection()`` returns: an async context manager for one loan."""

    __slots__ = ("_conn", "_gate", "_lease", "_pool", "_timeout")

    def __init__(self, pool: AsyncConnectionPool, gate: Gate, timeout: float | None) -> None:
        self._pool = pool
        # The pool's gate, passed in: its fields are native reads, the pool's are not.
        self._gate = gate
        self._timeout = timeout
        self._conn: Connection | None = None
        self._lease = 0.0

    async def __aenter__(self) -> Connection:
        gate = self._gate
        ledger = gate.ledger
        loop = gate.loop
        conn = None
        # acquire()'s fast path (Gate.lend_here), written out because a call
        # costs the pure-Python build a frame: the caller runs in the pool's
        # loop (its thread, and that loop running: one thread runs one loop at
        # a time; ``gate.loop`` is None once closed) and the ledger has a
        # fresh idle connection with nobody queued.  Under load nothing is
        # idle: the clock read and the ledger call are skipped.
        if (
            loop is not None
            and ledger.idle
            and (
                loop._thread_id == thread_ident()  # type: ignore[attr-defined]
                if gate.has_thread_id
                else gate.loop_thread == get_ident() and gate.loop_running()
            )
        ):
            now = monotonic()
            conn = ledger.lend_fresh(now)
            if conn is not None:
                # The loan's start time identifies it (a later loan of the same
                # slot differs); lend_fresh starts it at ``now``.
                self._lease = now
                if gate.lend_hooks:
                    self._pool._lent_now(conn, 0.0, False)
        if conn is None:
            conn = await acquire_slow(self._pool, gate, self._timeout)
            self._lease = ledger.last_lent_at  # set by this hand-out: no await since
        self._conn = conn
        return conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._conn
        assert conn is not None
        self._conn = None
        if exc is None:
            state = return_state(conn)
            if state == IN_TRANSACTION:
                # No await inside the except block: a compiled coroutine that
                # suspends there leaves the exception set in the caller's
                # sys.exc_info() for good (tests/test_exception_state.py).
                failure: BaseException | None = None
                try:
                    await quiet(conn.commit())
                except BaseException as commit_error:
                    failure = commit_error
                if failure is not None:
                    try:
                        await quiet(self._pool._return_slow(conn, self._lease, failure))
                        raise failure
                    finally:
                        del failure  # as `except ... as` does: no frame <-> traceback cycle
                state = return_state(conn)
            gate = self._gate
            # The fast return (release()'s, with the loan's identity): an open
            # pool with no reset configured and a connection clean by the
            # server's status flags goes back with no round trip.  A
            # connection already returned and lent again is refused: the lease
            # no longer matches.
            if state == CLEAN and gate.fast_return:
                slot = gate.ledger.return_clean(conn, monotonic(), self._lease)
                if slot is None:
                    raise self._pool._not_lent_error(conn)
                if gate.return_hooks:
                    self._pool._report_return(slot)
                return
        await quiet(self._pool._return_slow(conn, self._lease, exc))


def _build(pool: AsyncConnectionPool, gate: Gate, timeout: float | None) -> ConnectionContext:
    return ConnectionContext(pool, gate, timeout)


# What ``pool.connection()`` calls.  Compiled, a native class called from
# interpreted code takes its arguments through tp_call and a generic parser
# (~270 instructions); a compiled function takes them by vectorcall and builds
# the instance natively.  Interpreted, the class itself is the cheaper call:
# the function would only add a frame.
new_context: Final = ConnectionContext if __file__.endswith(".py") else _build

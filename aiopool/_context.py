"""What ``pool.connection()`` returns: an async context manager for one loan."""

from __future__ import annotations

from threading import get_ident
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING

from ._handout import acquire_slow
from ._protocols import Connection

if TYPE_CHECKING:
    from ._pool import AsyncConnectionPool

__all__ = ["ConnectionContext"]


class ConnectionContext:
    """What ``pool.connection()`` returns: an async context manager for one loan."""

    __slots__ = ("_conn", "_lease", "_pool", "_timeout")

    def __init__(self, pool: AsyncConnectionPool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._conn: Connection | None = None
        self._lease = 0.0

    async def __aenter__(self) -> Connection:
        pool = self._pool
        ledger = pool._ledger
        loop = pool._loop
        conn = None
        # acquire()'s fast path, here in compiled code: the caller runs in the
        # pool's loop (its thread, and that loop running: one thread runs one
        # loop at a time; ``_loop`` is None once closed) and the ledger has a
        # fresh idle connection with nobody queued.  Under load nothing is
        # idle: the clock read and the ledger call are skipped.
        if (
            loop is not None
            and ledger.idle
            and (
                loop._thread_id == get_ident()  # type: ignore[attr-defined]
                if pool._loop_has_thread_id
                else pool._loop_thread == get_ident() and loop.is_running()
            )
        ):
            conn = ledger.lend_fresh(monotonic())
            if conn is not None and pool._lend_hooks:
                pool._lent_now(conn, 0.0, False)
        if conn is None:
            conn = await acquire_slow(pool, self._timeout)
        self._conn = conn
        # The loan's start time identifies it: a later loan of the same slot differs.
        self._lease = ledger.lent[id(conn)].lent_at
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
        if exc is None and conn.get_transaction_status():
            try:
                await conn.commit()
            except BaseException as commit_error:
                await self._pool._return_slow(conn, self._lease, commit_error)
                raise
        pool = self._pool
        # The fast return (release()'s, with the loan's identity): an open
        # pool with no reset configured and a connection clean by the server's
        # status flags goes back with no round trip.  A connection already
        # returned and lent again is refused: the lease no longer matches.
        if exc is None and pool._fast_return and conn.connected:
            result = conn._result
            if not conn.get_transaction_status() and (
                result is None or not (result.unbuffered_active or result.has_next)
            ):
                slot = pool._ledger.return_clean(conn, monotonic(), self._lease)
                if slot is None:
                    raise pool._not_lent_error(conn)
                if pool._return_hooks:
                    pool._report_return(slot)
                return
        await pool._return_slow(conn, self._lease, exc)

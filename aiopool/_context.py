"""What ``pool.connection()`` returns: an async context manager for one loan."""

from __future__ import annotations

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
        # acquire() without its coroutine when an idle connection is ready.
        conn = pool._take_fresh()
        if conn is None:
            conn = await acquire_slow(pool, self._timeout)
        self._conn = conn
        # The loan's start time identifies it: a later loan of the same slot differs.
        self._lease = pool._ledger.lent[id(conn)].lent_at
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
        # Awaited only when the return needs a round trip: the clean return is
        # done by the time the call comes back, with no coroutine of its own.
        pending = self._pool._release_lease(conn, self._lease, exc)
        if pending is not None:
            await pending

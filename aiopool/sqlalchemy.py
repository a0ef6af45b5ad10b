"""SQLAlchemy on aiopool: ``AsyncEngine`` and the ORM, with aiopool as the pool.

>>> engine = create_async_engine(pool)  # doctest: +SKIP
>>> async with AsyncSession(engine) as session: ...  # doctest: +SKIP

Every connection the engine uses is a loan from the given
``AsyncConnectionPool``: SQLAlchemy never opens a connection itself, and its
checkout and check-in are aiopool's ``acquire`` and ``release``, run inside
SQLAlchemy's greenlet bridge.  SQLAlchemy keeps one connection record per
physical connection, so ``connect`` events run once per connection and
``ConnectionPoolEntry.info`` lives as long as the connection does.

What differs from SQLAlchemy's own pool (see docs/sqlalchemy.md):

* sizes, lifetimes and health checks are aiopool's: ``pool_size``,
  ``max_overflow``, ``pool_recycle``, ``pool_use_lifo`` and
  ``pool_pre_ping=True`` are refused with the aiopool argument to use;
* a disconnect invalidates only the connection it happened on;
* the check-in rollback is aiopool's (only when the server reports an open
  transaction), so ``pool_reset_on_return`` defaults to ``None``;
* ``PoolTimeout`` is raised as ``sqlalchemy.exc.TimeoutError``;
* ``engine.dispose()`` drains the aiopool (it does not close it);
* a connection left to the garbage collector is closed and given back on the
  pool's event loop.

This module imports SQLAlchemy; ``import aiopool`` does not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.pool import Pool
    from sqlalchemy.pool.base import _ConnectionRecord
    from sqlalchemy.util.concurrency import in_greenlet
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "aiopool.sqlalchemy needs SQLAlchemy with asyncio support: "
        "pip install 'aiopool[sqlalchemy]'"
    ) from _missing

try:  # SQLAlchemy 2.1 renamed await_only (kept as an alias until 2.2)
    from sqlalchemy.util.concurrency import await_
except ImportError:  # pragma: no cover - SQLAlchemy 2.0
    from sqlalchemy.util.concurrency import await_only as await_

from ._common import check_timeout
from ._pool import AsyncConnectionPool
from ._protocols import Connection
from .errors import PoolTimeout

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

__all__ = ["AiopoolPool", "UnsupportedArgument", "create_async_engine"]

logger = logging.getLogger("aiopool")

# SQLAlchemy pool arguments that aiopool replaces, and what to use instead.
# Keys are the names create_engine() takes; the Pool constructor receives
# them under the names in _POOL_PARAMS.
_REFUSED = {
    "pool_size": "min_size= and max_size= on AsyncConnectionPool",
    "max_overflow": "max_size= on AsyncConnectionPool (it counts every connection)",
    "pool_recycle": "max_lifetime= (age) or max_idle= (unused time) on AsyncConnectionPool",
    "pool_use_lifo": (
        "nothing: aiopool hands out the most recently used idle connection and "
        "closes idle ones above min_size after max_idle="
    ),
    "pool_pre_ping": (
        "check_after=0 on AsyncConnectionPool (ping before every hand-out; the "
        "default check_after=1.0 pings connections idle for over a second)"
    ),
}
# Arguments that would make SQLAlchemy open connections itself.
_NOT_HERE = {
    "poolclass": "create_async_engine(pool) always uses AiopoolPool",
    "pool": "create_async_engine(pool) builds the pool itself",
    "creator": "connections come from the aiopool; configure them there",
    "async_creator": "connections come from the aiopool; configure them there",
    "connect_args": "pass connect arguments to AsyncConnectionPool(url, **connect_kwargs)",
}


class UnsupportedArgument(sa_exc.ArgumentError, ValueError):
    """An engine or pool argument that aiopool replaces; the message names what to use."""

    __module__ = "aiopool.sqlalchemy"


def _refuse(name: str) -> UnsupportedArgument:
    return UnsupportedArgument(
        f"{name} is not used with aiopool: the AsyncConnectionPool manages the "
        f"connections. Use {_REFUSED[name]} instead."
    )


class AiopoolPool(Pool):
    """A SQLAlchemy ``Pool`` whose connections are loans from an ``AsyncConnectionPool``.

    ``create_async_engine(pool)`` builds an engine with it; to build the
    engine yourself, pass it as ``poolclass`` with the aiopool as ``aiopool``::

        sqlalchemy.ext.asyncio.create_async_engine(
            "mysql+asyncmy://", poolclass=AiopoolPool, aiopool=pool
        )

    The dialect must be ``mysql+asyncmy``; the URL's host, user and database
    are not used (the aiopool's are).  ``timeout`` (``pool_timeout`` on the
    engine) is the acquire timeout, default the aiopool's own.  Check-in
    rolls back only an open transaction (aiopool's ``release``), so
    ``reset_on_return`` defaults to ``None``.  ``pool_size``,
    ``max_overflow``, ``recycle``, ``use_lifo`` and ``pre_ping=True`` are
    taken only to be refused with ``UnsupportedArgument``, which names the
    aiopool argument to use instead.
    """

    def __init__(
        self,
        creator: Any = None,
        # Not keyword-only: create_engine() routes only positional-or-keyword
        # parameters of a poolclass to it.
        aiopool: AsyncConnectionPool | None = None,
        timeout: float | None = None,
        reset_on_return: Any = None,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        recycle: int = -1,
        use_lifo: bool | None = None,
        pre_ping: bool = False,
        **kw: Any,
    ) -> None:
        if aiopool is None:
            raise sa_exc.ArgumentError(
                "AiopoolPool needs the AsyncConnectionPool to borrow from: "
                "pass aiopool=pool (create_engine: poolclass=AiopoolPool, aiopool=pool)"
            )
        if not isinstance(aiopool, AsyncConnectionPool):
            raise sa_exc.ArgumentError(
                f"aiopool= must be an aiopool.AsyncConnectionPool, got {type(aiopool).__name__}"
            )
        if timeout is not None:
            check_timeout("pool_timeout", timeout)
        for name, value, unset in (
            ("pool_size", pool_size, None),
            ("max_overflow", max_overflow, None),
            ("pool_recycle", recycle, -1),
            ("pool_use_lifo", use_lifo, None),
            ("pool_pre_ping", pre_ping, False),
        ):
            if value != unset and not (name == "pool_use_lifo" and value is False):
                raise _refuse(name)
        dialect = kw.get("dialect")
        if dialect is not None and getattr(dialect, "driver", None) != "asyncmy":
            raise sa_exc.ArgumentError(
                f"AiopoolPool works only with the mysql+asyncmy dialect, not "
                f"{dialect.name}+{dialect.driver}: aiopool lends asyncmy connections"
            )
        super().__init__(creator, reset_on_return=reset_on_return, **kw)
        self._aiopool = aiopool
        self._timeout = timeout
        # One record per physical connection, keyed by id(conn); the record
        # keeps the connection alive, so the id is not reused while listed.
        self._records: dict[int, tuple[Connection, _ConnectionRecord]] = {}
        # The connection each checked-out record is lent, keyed by id(record).
        self._lent: dict[int, Connection] = {}
        # The connection the record being created is for (read synchronously
        # by _adopt, called from the record's constructor).
        self._incoming: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Returns scheduled from outside the greenlet: the loop keeps tasks
        # only weakly, so they are held here until done.
        self._returning: set[asyncio.Future[None]] = set()

    @property
    def aiopool(self) -> AsyncConnectionPool:
        """The ``AsyncConnectionPool`` this pool borrows from."""
        return self._aiopool

    def checkedout(self) -> int:
        """How many connections SQLAlchemy has checked out from this pool now."""
        return len(self._lent)

    def status(self) -> str:
        """A one-line description: SQLAlchemy's checkouts and the aiopool's counts."""
        s = self._aiopool.get_stats()
        return (
            f"AiopoolPool over {self._aiopool.name!r}: {len(self._lent)} checked out by "
            f"SQLAlchemy; aiopool size {s.pool_size}/{s.pool_max}, in use {s.pool_in_use}, "
            f"idle {s.pool_available}, waiting {s.requests_waiting}"
        )

    def recreate(self) -> AiopoolPool:
        """A new pool over the same aiopool (``engine.dispose()`` calls this)."""
        return type(self)(
            self._creator,
            aiopool=self._aiopool,
            timeout=self._timeout,
            reset_on_return=self._reset_on_return,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )

    def dispose(self) -> None:
        """Drain the aiopool: idle connections close now, lent ones when returned.

        Runs inside ``AsyncEngine.dispose()``.  The aiopool stays open (it
        is yours to close); a closed aiopool has nothing left to drain.
        """
        self._records.clear()
        if not self._aiopool.closed:
            await_(self._aiopool.drain())

    # ------------------------------------------------------------------ checkout

    def _do_get(self) -> ConnectionPoolEntry:
        conn = self._borrow()
        known = self._records.get(id(conn))
        rec = known[1] if known is not None and known[0] is conn else None
        if rec is None or rec.dbapi_connection is None:
            rec = self._new_record(conn)
        self._lent[id(rec)] = conn
        return rec

    def _borrow(self) -> Connection:
        """Acquire from the aiopool inside SQLAlchemy's greenlet."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        try:
            return await_(self._aiopool.acquire(self._timeout))
        except PoolTimeout as exc:
            raise sa_exc.TimeoutError(str(exc)) from exc

    def _new_record(self, conn: Connection) -> _ConnectionRecord:
        """A record for a connection SQLAlchemy has not seen: runs the connect events."""
        self._forget_closed()
        self._incoming = conn
        try:
            rec = _ConnectionRecord(self)
        except BaseException:
            # A connect event failed (SQLAlchemy closed the connection) or the
            # task was cancelled: the loan must still end.
            self._incoming = None
            self._give_back(conn, in_greenlet())
            raise
        self._records[id(conn)] = (conn, rec)
        return rec

    def _forget_closed(self) -> None:
        """Drop records of connections aiopool has closed (retired, drained, lost)."""
        for key, (conn, rec) in list(self._records.items()):
            if id(rec) not in self._lent and not conn.connected:
                del self._records[key]

    def _should_wrap_creator(self, creator: Any) -> Callable[[Any], DBAPIConnection]:
        # Whatever creator the engine passes, a record's connection is the
        # one aiopool lent for it: SQLAlchemy never connects by itself.
        return self._adopt

    def _adopt(self, rec: ConnectionPoolEntry) -> DBAPIConnection:
        conn, self._incoming = self._incoming, None
        if conn is None:
            # SQLAlchemy is replacing the connection of a checked-out record
            # (a checkout event raised DisconnectionError): swap the loan.
            conn = self._swap_loan(rec)
        dbapi = getattr(self._dialect, "loaded_dbapi", None)
        if getattr(self._dialect, "driver", None) != "asyncmy" or dbapi is None:
            # The caller ends the loan: _new_record, or the check-in after a
            # failed checkout (_swap_loan listed the connection as lent).
            raise sa_exc.ArgumentError(
                "AiopoolPool works only in an engine with the mysql+asyncmy dialect"
            )

        async def lent() -> Connection:
            return conn

        adapted: DBAPIConnection = dbapi.connect(async_creator_fn=lent)
        return adapted

    def _swap_loan(self, rec: ConnectionPoolEntry) -> Connection:
        old = self._lent.pop(id(rec), None)
        if old is not None:
            self._records.pop(id(old), None)
            await_(self._aiopool.release(old))
        conn = self._borrow()
        self._lent[id(rec)] = conn
        assert isinstance(rec, _ConnectionRecord)
        self._records[id(conn)] = (conn, rec)
        return conn

    # ------------------------------------------------------------------ check-in

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        conn = self._lent.pop(id(record), None)
        if conn is None:
            return
        rec = record
        assert isinstance(rec, _ConnectionRecord)
        greenlet = in_greenlet()
        if rec.dbapi_connection is None:
            # Invalidated (SQLAlchemy closed it) or detached: the garbage
            # collector's clean-up, or detach(); either way no longer pooled.
            self._records.pop(id(conn), None)
            if conn.connected:
                greenlet = False  # maybe a finaliser: never switch greenlets in one
        elif rec._soft_invalidate_time > rec.starttime and greenlet:
            self._records.pop(id(conn), None)
            rec.invalidate()  # soft-invalidated while out: close it now
        self._give_back(conn, greenlet)

    def _give_back(self, conn: Connection, greenlet: bool) -> None:
        if greenlet:
            await_(self._aiopool.release(conn))
            return
        # Outside the greenlet nothing can be awaited (a finaliser, maybe on
        # another thread): close the socket here, with no rollback (the server
        # rolls back), and let the pool account for it on its own loop.
        if conn.connected:
            conn.close()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._release_later, conn)

    def _release_later(self, conn: Connection) -> None:
        assert self._loop is not None
        try:
            task = self._loop.create_task(self._aiopool.release(conn))
        except Exception as exc:  # not lent any more (the pool was closed meanwhile)
            logger.warning("returning a connection left by SQLAlchemy failed: %r", exc)
            return
        self._returning.add(task)
        task.add_done_callback(self._returning.discard)
        task.add_done_callback(_log_failure)

    # ------------------------------------------------------------------ invalidation

    def _invalidate(
        self,
        connection: PoolProxiedConnection,
        exception: BaseException | None = None,
        _checkin: bool = True,
    ) -> None:
        # SQLAlchemy's pools invalidate every connection older than the one
        # that failed; aiopool checks connections itself, so only this one goes.
        if _checkin and connection.is_valid:
            connection.invalidate(exception)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("returning a connection left by SQLAlchemy failed: %r", task.exception())


def create_async_engine(pool: AsyncConnectionPool, **engine_kwargs: Any) -> AsyncEngine:
    """An ``AsyncEngine`` (dialect ``mysql+asyncmy``) whose connections are loans from ``pool``.

    ``engine_kwargs`` go to SQLAlchemy's ``create_async_engine`` (``echo``,
    ``isolation_level``, ``pool_timeout``, ``execution_options``, ...).  The
    pool's own settings are refused with ``UnsupportedArgument`` (a
    ``sqlalchemy.exc.ArgumentError`` and ``ValueError``) naming the aiopool
    argument to use instead.  The aiopool stays yours: open it before using
    the engine and close it after ``await engine.dispose()``.
    """
    from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine

    if not isinstance(pool, AsyncConnectionPool):
        raise TypeError(f"pool must be an aiopool.AsyncConnectionPool, got {type(pool).__name__}")
    for name in engine_kwargs:
        if name in _REFUSED and not (name == "pool_pre_ping" and not engine_kwargs[name]):
            raise _refuse(name)
        if name in _NOT_HERE:
            raise UnsupportedArgument(f"{name} is not used with aiopool: {_NOT_HERE[name]}")
    engine_kwargs.pop("pool_pre_ping", None)
    return sa_create_async_engine(
        "mysql+asyncmy://", poolclass=AiopoolPool, aiopool=pool, **engine_kwargs
    )

"""One adapter per contender: the same logical work, each library's own idiom.

Every adapter offers:

* ``open()`` / ``close()``: start with exactly ``size`` ready connections;
* ``acquire()``: an async context manager yielding a handle with ``select1()``
  and ``sleep2ms()`` (borrow a connection, run one statement through a cursor
  and fetch its row, give the connection back);
* ``raw_batch(n)``: ``n`` acquire+release pairs with no statement (W1), written
  inline so the harness adds one coroutine call per batch, not per pair.

Autocommit is left at each library's default; ``ON_RELEASE`` records what each
one does when a connection goes back (the report also shows the server's own
commit/rollback counters per operation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "db": "test"}
MYSQL_URL = "mysql://root:@127.0.0.1:3306/test"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test"

SELECT1 = "SELECT 1"
MYSQL_SLEEP = "SELECT SLEEP(0.002)"
PG_SLEEP = "SELECT pg_sleep(0.002)"


class Unavailable(RuntimeError):
    """The contender cannot run here (library missing or API not there yet)."""


# --------------------------------------------------------------------------- handles


class _MySQLHandle:
    """A DB-API style connection (asyncmy, aiomysql): cursor, execute, fetchone."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def select1(self) -> None:
        async with self.conn.cursor() as cur:
            await cur.execute(SELECT1)
            await cur.fetchone()

    async def sleep2ms(self) -> None:
        async with self.conn.cursor() as cur:
            await cur.execute(MYSQL_SLEEP)
            await cur.fetchone()


class _SAHandle:
    """A SQLAlchemy ``AsyncConnection``: driver-level SQL, buffered result."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def select1(self) -> None:
        (await self.conn.exec_driver_sql(SELECT1)).fetchone()

    async def sleep2ms(self) -> None:
        (await self.conn.exec_driver_sql(MYSQL_SLEEP)).fetchone()


class _AsyncpgHandle:
    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def select1(self) -> None:
        await self.conn.fetchrow(SELECT1)

    async def sleep2ms(self) -> None:
        await self.conn.fetchrow(PG_SLEEP)


class _PsycopgHandle(_MySQLHandle):
    """psycopg's cursor API has the same shape; only the sleep differs."""

    __slots__ = ()

    async def sleep2ms(self) -> None:
        async with self.conn.cursor() as cur:
            await cur.execute(PG_SLEEP)
            await cur.fetchone()


class _Borrow:
    """Wrap a library's borrow context manager so it yields a handle."""

    __slots__ = ("_cm", "_wrap")

    def __init__(self, cm: Any, wrap: Callable[[Any], Any]) -> None:
        self._cm = cm
        self._wrap = wrap

    async def __aenter__(self) -> Any:
        return self._wrap(await self._cm.__aenter__())

    async def __aexit__(self, *exc: object) -> Any:
        return await self._cm.__aexit__(*exc)


# --------------------------------------------------------------------------- adapters


class Adapter:
    name = ""
    # workload -> task count when this contender runs it with other than the usual count
    tasks_for: ClassVar[dict[str, int]] = {}
    backend = "mysql"
    workloads: frozenset[str] = frozenset({"W1", "W2", "W3", "W4", "W5"})
    on_release = ""

    def __init__(self, size: int) -> None:
        self.size = size

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def acquire(self) -> Any:
        raise NotImplementedError

    async def raw_batch(self, n: int) -> None:
        raise NotImplementedError


class AiopoolAdapter(Adapter):
    name = "aiopool"
    on_release = (
        "`connection()` commits on success only if a transaction is open (rolls back on error); "
        "`release()` rolls back an open transaction, else sends nothing"
    )

    def __init__(self, size: int) -> None:
        super().__init__(size)
        try:
            from aiopool import AsyncConnectionPool
        except ImportError as exc:
            raise Unavailable(f"aiopool.AsyncConnectionPool not importable: {exc}") from None
        self._pool = AsyncConnectionPool(MYSQL_URL, min_size=size, max_size=size, timeout=30.0)

    async def open(self) -> None:
        await self._pool.open(wait=True)

    async def close(self) -> None:
        await self._pool.close()

    def acquire(self) -> Any:
        return _Borrow(self._pool.connection(), _MySQLHandle)

    async def raw_batch(self, n: int) -> None:
        pool = self._pool
        for _ in range(n):
            conn = await pool.acquire()
            await pool.release(conn)

    def stats(self) -> dict[str, Any]:
        return dict(self._pool.get_stats())


class AsyncmyPoolAdapter(Adapter):
    name = "asyncmy"
    on_release = "nothing sent; a connection released inside a transaction is closed"

    async def open(self) -> None:
        import asyncmy

        self._pool = await asyncmy.create_pool(minsize=self.size, maxsize=self.size, **MYSQL)

    async def close(self) -> None:
        self._pool.close()
        await self._pool.wait_closed()

    def acquire(self) -> Any:
        return _Borrow(self._pool.acquire(), _MySQLHandle)

    async def raw_batch(self, n: int) -> None:
        pool = self._pool
        for _ in range(n):
            conn = await pool.acquire()
            await pool.release(conn)


class AiomysqlAdapter(AsyncmyPoolAdapter):
    name = "aiomysql"
    on_release = "nothing sent; a connection released inside a transaction is closed"

    async def open(self) -> None:
        import aiomysql

        self._pool = await aiomysql.create_pool(minsize=self.size, maxsize=self.size, **MYSQL)


class SQLAlchemyAdapter(Adapter):
    name = "sqlalchemy"
    on_release = "pool reset-on-return: ROLLBACK (skipped when the Connection already ended it)"

    async def open(self) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        url = "mysql+asyncmy://root:@127.0.0.1:3306/test"
        self._engine = create_async_engine(url, pool_size=self.size, max_overflow=0)
        # The engine's pool is lazy: check out ``size`` connections at once so
        # every contender starts with the same number of open connections.
        conns = [self._engine.connect() for _ in range(self.size)]
        await asyncio.gather(*(c.start() for c in conns))
        await asyncio.gather(*(c.close() for c in conns))

    async def close(self) -> None:
        await self._engine.dispose()

    def acquire(self) -> Any:
        return _Borrow(self._engine.connect(), _SAHandle)

    async def raw_batch(self, n: int) -> None:
        engine = self._engine
        for _ in range(n):
            async with engine.connect():
                pass


class SQLAlchemyOnAiopoolAdapter(SQLAlchemyAdapter):
    """The same AsyncEngine work as ``sqlalchemy``, with aiopool as the pool underneath."""

    name = "sqlalchemy-on-aiopool"
    on_release = (
        "SQLAlchemy's Connection ends its transaction; aiopool `release()` rolls back "
        "only an open transaction (pool reset-on-return off)"
    )

    async def open(self) -> None:
        try:
            from aiopool import AsyncConnectionPool
            from aiopool.sqlalchemy import create_async_engine
        except ImportError as exc:
            raise Unavailable(f"aiopool.sqlalchemy not importable: {exc}") from None

        self._pool = AsyncConnectionPool(
            MYSQL_URL, min_size=self.size, max_size=self.size, timeout=30.0
        )
        await self._pool.open(wait=True)
        self._engine = create_async_engine(self._pool)
        # The first checkout runs SQLAlchemy's dialect initialisation; do it
        # before the clock starts, as for the other contenders.
        async with self._engine.connect():
            pass

    async def close(self) -> None:
        await self._engine.dispose()
        await self._pool.close()

    def stats(self) -> dict[str, Any]:
        return dict(self._pool.get_stats())


class BareAsyncmyAdapter(Adapter):
    """asyncmy connections used directly, one per task: the ceiling for any pool.

    W2: one task on one connection. W5: ``size`` tasks, each on its own
    connection, so the server-side sleeps run back to back with no pool in the
    way (``tasks_for``): what the machine can do at all.
    """

    name = "bare-asyncmy"
    workloads = frozenset({"W2", "W5"})
    tasks_for: ClassVar[dict[str, int]] = {"W5": 16}
    on_release = "n/a (no pool; one dedicated connection per task)"

    async def open(self) -> None:
        import asyncmy

        self._conns = [await asyncmy.connect(**MYSQL) for _ in range(self.size)]
        self._handles = [_Bare(_MySQLHandle(c)) for c in self._conns]
        self._by_task: dict[object, _Bare] = {}

    async def close(self) -> None:
        for c in self._conns:
            await c.ensure_closed()

    def acquire(self) -> Any:
        task = asyncio.current_task()
        cm = self._by_task.get(task)
        if cm is None:
            cm = self._by_task[task] = self._handles[len(self._by_task) % self.size]
        return cm


class _Bare:
    __slots__ = ("_handle",)

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def __aenter__(self) -> Any:
        return self._handle

    async def __aexit__(self, *exc: object) -> None:
        return None


class ConnectPerRequestAdapter(Adapter):
    """asyncmy connect, one statement, close; at most ``size`` at a time."""

    name = "connect-per-req"
    workloads = frozenset({"W2", "W5"})
    on_release = "n/a (COM_QUIT and close after every operation)"

    async def open(self) -> None:
        self._sem = asyncio.Semaphore(self.size)

    async def close(self) -> None:
        return None

    def acquire(self) -> Any:
        return _ConnectOnce(self._sem)


class _ConnectOnce:
    __slots__ = ("_conn", "_sem")

    def __init__(self, sem: asyncio.Semaphore) -> None:
        self._sem = sem
        self._conn: Any = None

    async def __aenter__(self) -> Any:
        import asyncmy

        await self._sem.acquire()
        try:
            self._conn = await asyncmy.connect(**MYSQL)
        except BaseException:
            self._sem.release()
            raise
        return _MySQLHandle(self._conn)

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._conn.ensure_closed()
        finally:
            self._sem.release()


class AsyncpgAdapter(Adapter):
    name = "asyncpg (PG)"
    backend = "pg"
    on_release = "reset query on every release (unlock advisory, CLOSE ALL, UNLISTEN, RESET ALL)"

    async def open(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(PG_DSN, min_size=self.size, max_size=self.size)

    async def close(self) -> None:
        await self._pool.close()

    def acquire(self) -> Any:
        return _Borrow(self._pool.acquire(), _AsyncpgHandle)

    async def raw_batch(self, n: int) -> None:
        pool = self._pool
        for _ in range(n):
            conn = await pool.acquire()
            await pool.release(conn)


class PsycopgAdapter(Adapter):
    name = "psycopg_pool (PG)"
    backend = "pg"
    on_release = (
        "`connection()` commits on success (autocommit off: SELECT opens a transaction); "
        "putconn rolls back an open transaction"
    )

    async def open(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(
            PG_CONNINFO, min_size=self.size, max_size=self.size, open=False
        )
        await self._pool.open(wait=True)

    async def close(self) -> None:
        await self._pool.close()

    def acquire(self) -> Any:
        return _Borrow(self._pool.connection(), _PsycopgHandle)

    async def raw_batch(self, n: int) -> None:
        pool = self._pool
        for _ in range(n):
            conn = await pool.getconn()
            await pool.putconn(conn)


@dataclass(frozen=True)
class Contender:
    name: str
    factory: type[Adapter]

    @property
    def workloads(self) -> frozenset[str]:
        return self.factory.workloads

    @property
    def backend(self) -> str:
        return self.factory.backend


CONTENDERS: tuple[Contender, ...] = tuple(
    Contender(cls.name, cls)
    for cls in (
        AiopoolAdapter,
        AsyncmyPoolAdapter,
        AiomysqlAdapter,
        SQLAlchemyAdapter,
        SQLAlchemyOnAiopoolAdapter,
        BareAsyncmyAdapter,
        ConnectPerRequestAdapter,
        AsyncpgAdapter,
        PsycopgAdapter,
    )
)
CONTENDER_KEYS = {
    "aiopool": "aiopool",
    "asyncmy": "asyncmy",
    "aiomysql": "aiomysql",
    "sqlalchemy": "sqlalchemy",
    "sqla-aiopool": "sqlalchemy-on-aiopool",
    "bare": "bare-asyncmy",
    "connect": "connect-per-req",
    "asyncpg": "asyncpg (PG)",
    "psycopg": "psycopg_pool (PG)",
}

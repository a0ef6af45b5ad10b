"""One adapter per contender: the same logical work, each library's own idiom.

Every adapter offers:

* ``open()`` / ``close()``: start with exactly ``min_size`` ready connections
  (``size`` unless given), growing up to ``size``;
* ``acquire()``: an async context manager yielding a handle with ``select1()``
  and ``sleep2ms()`` (borrow a connection, run one statement through a cursor
  and fetch its row, give the connection back);
* ``raw_batch(n)``: ``n`` acquire+release pairs with no statement (W1), written
  inline so the harness adds one coroutine call per batch, not per pair;
* ``opened()``: how many connections the pool itself says it opened (W6).

Each connects to its backend's ``Endpoint``: the server itself, or (W6) a
proxy in front of it.

Autocommit is left at each library's default; ``ON_RELEASE`` records what each
one does when a connection goes back (the report also shows the server's own
commit/rollback counters per operation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar
from urllib.parse import quote


@dataclass(frozen=True)
class Endpoint:
    """Where a contender connects, and as whom."""

    host: str
    port: int
    user: str
    password: str
    db: str

    def via(self, host: str, port: int) -> Endpoint:
        """The same server and credentials, reached through ``host:port`` (a proxy)."""
        return replace(self, host=host, port=port)

    def mysql(self) -> dict[str, Any]:
        """Keyword arguments for asyncmy/aiomysql ``connect`` and ``create_pool``."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "db": self.db,
        }

    def url(self, scheme: str) -> str:
        auth = quote(self.user, safe="") + ":" + quote(self.password, safe="")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{self.db}"

    def conninfo(self) -> str:
        """A libpq connection string (psycopg)."""
        info = f"host={self.host} port={self.port} user={self.user} dbname={self.db}"
        return info + (f" password={self.password}" if self.password else "")


MYSQL_SERVER = Endpoint("127.0.0.1", 3306, "root", "", "test")
PG_SERVER = Endpoint("127.0.0.1", 5432, "postgres", "", "test")
MYSQL = MYSQL_SERVER.mysql()
MYSQL_URL = MYSQL_SERVER.url("mysql")
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_CONNINFO = PG_SERVER.conninfo()

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
    workloads: frozenset[str] = frozenset({"W1", "W2", "W3", "W4", "W5", "W6"})
    on_release = ""

    def __init__(
        self, size: int, min_size: int | None = None, endpoint: Endpoint | None = None
    ) -> None:
        self.size = size
        self.min_size = size if min_size is None else min_size
        default = PG_SERVER if self.backend == "pg" else MYSQL_SERVER
        self.endpoint = endpoint or default

    async def open(self) -> None:
        raise NotImplementedError

    def opened(self) -> int | None:
        """Connections opened so far by the pool's own account (None: it keeps none)."""
        return None

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

    def __init__(
        self, size: int, min_size: int | None = None, endpoint: Endpoint | None = None
    ) -> None:
        super().__init__(size, min_size, endpoint)
        self._pool = self._pool_class()(
            self.endpoint.url("mysql"), min_size=self.min_size, max_size=size, timeout=30.0
        )

    def _pool_class(self) -> Any:
        try:
            from aiopool import AsyncConnectionPool
        except ImportError as exc:
            raise Unavailable(f"aiopool.AsyncConnectionPool not importable: {exc}") from None
        return AsyncConnectionPool

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

    def opened(self) -> int | None:
        """``connections_num``: connections opened successfully since ``open()``."""
        return int(self._pool.get_stats()["connections_num"])


class AsyncmyPoolAdapter(Adapter):
    name = "asyncmy"
    on_release = "nothing sent; a connection released inside a transaction is closed"

    async def open(self) -> None:
        import asyncmy

        self._pool = await asyncmy.create_pool(
            minsize=self.min_size, maxsize=self.size, **self.endpoint.mysql()
        )

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

    def opened(self) -> int | None:
        """``size``: the connections it holds (it closes none unless broken or recycled)."""
        return int(self._pool.size)


class AiomysqlAdapter(AsyncmyPoolAdapter):
    name = "aiomysql"
    on_release = "nothing sent; a connection released inside a transaction is closed"

    async def open(self) -> None:
        import aiomysql

        self._pool = await aiomysql.create_pool(
            minsize=self.min_size, maxsize=self.size, **self.endpoint.mysql()
        )


class SQLAlchemyAdapter(Adapter):
    name = "sqlalchemy"
    on_release = "pool reset-on-return: ROLLBACK (skipped when the Connection already ended it)"

    async def open(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.ext.asyncio import create_async_engine

        self._engine = create_async_engine(
            self.endpoint.url("mysql+asyncmy"),
            pool_size=self.min_size,
            max_overflow=self.size - self.min_size,
        )
        self._connects = 0
        event.listen(self._engine.sync_engine, "connect", self._count_connect)
        # The engine's pool is lazy: check out ``min_size`` connections at once so
        # every contender starts with the same number of open connections.
        conns = [self._engine.connect() for _ in range(self.min_size)]
        await asyncio.gather(*(c.start() for c in conns))
        await asyncio.gather(*(c.close() for c in conns))

    def _count_connect(self, *_: object) -> None:
        self._connects += 1

    def opened(self) -> int | None:
        """DBAPI connections created (the ``connect`` pool event; overflow ones close on return)."""
        return self._connects

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
            self.endpoint.url("mysql"), min_size=self.min_size, max_size=self.size, timeout=30.0
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

    def opened(self) -> int | None:
        """Connections aiopool opened (SQLAlchemy never opens one itself here)."""
        return self._pool.get_stats().connections_num


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

        self._conns = [await asyncmy.connect(**self.endpoint.mysql()) for _ in range(self.size)]
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


class FairFloorAdapter(Adapter):
    """``bench.fair_floor``'s ``FifoPool``: the least a first-come-first-served pool must do.

    A yardstick, not a pool (see ``bench/fair_floor/__init__.py``): W3-W5
    only, where tasks wait their turn.
    """

    name = "fair-floor"
    workloads = frozenset({"W3", "W4", "W5"})
    on_release = "nothing sent (a yardstick: no transaction check)"

    def __init__(
        self, size: int, min_size: int | None = None, endpoint: Endpoint | None = None
    ) -> None:
        super().__init__(size, min_size, endpoint)
        try:
            from .fair_floor import load

            self._pools = load()
        except Exception as exc:  # Cython or a C compiler missing
            # The report keeps the text before the first colon: the remedy goes there.
            raise Unavailable(
                "bench.fair_floor not built, it needs Cython and a C compiler "
                f"(pip install -e '.[bench]'): {type(exc).__name__}: {exc}"
            ) from None

    async def open(self) -> None:
        import asyncmy

        self._conns = [await asyncmy.connect(**self.endpoint.mysql()) for _ in range(self.size)]
        self._pool = self._pools.FifoPool(self._conns, asyncio.get_running_loop())

    async def close(self) -> None:
        for c in self._conns:
            await c.ensure_closed()

    def acquire(self) -> Any:
        return _Borrow(self._pools.Loan(self._pool), _MySQLHandle)

    def opened(self) -> int | None:
        """It opens ``size`` connections and no more."""
        return self.size


class _Bare:
    __slots__ = ("_handle",)

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def __aenter__(self) -> Any:
        return self._handle

    async def __aexit__(self, *exc: object) -> None:
        return None


class PooledConnectionBare(Adapter):
    """W2's control: the connection aiopool's pool hands out, used with no pool in the way.

    Two fresh connections to the same server can differ by 2.5x in ``SELECT 1``
    rate on this machine (9,300-26,000 per second over 20 connections, uvloop),
    depending on where the server's thread for each one runs.  A bare
    connection of its own therefore compares aiopool's pool with another
    connection as much as with no pool.  This one borrows, at the start of
    each of its slices (outside the timing), the connection the aiopool
    contender's pool hands out (the most recently used: the one aiopool's own
    slices use) and gives it back at the slice's end.
    """

    name = "aiopool-conn-bare"
    workloads = frozenset({"W2"})
    on_release = "n/a (aiopool's own connection, borrowed for a whole slice)"

    def __init__(self, pooled: AiopoolAdapter) -> None:
        super().__init__(pooled.size)
        self._pool = pooled._pool
        self._conn: Any = None
        self._handle: _Bare | None = None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def slice_start(self) -> None:
        self._conn = await self._pool.acquire()
        self._handle = _Bare(_MySQLHandle(self._conn))

    async def slice_end(self) -> None:
        conn, self._conn, self._handle = self._conn, None, None
        await self._pool.release(conn)

    def acquire(self) -> Any:
        return self._handle


class ConnectPerRequestAdapter(Adapter):
    """asyncmy connect, one statement, close; at most ``size`` at a time."""

    name = "connect-per-req"
    workloads = frozenset({"W2", "W5"})
    on_release = "n/a (COM_QUIT and close after every operation)"

    async def open(self) -> None:
        self._sem = asyncio.Semaphore(self.size)
        self._kwargs = self.endpoint.mysql()

    async def close(self) -> None:
        return None

    def acquire(self) -> Any:
        return _ConnectOnce(self._sem, self._kwargs)


class _ConnectOnce:
    __slots__ = ("_conn", "_kwargs", "_sem")

    def __init__(self, sem: asyncio.Semaphore, kwargs: dict[str, Any]) -> None:
        self._sem = sem
        self._kwargs = kwargs
        self._conn: Any = None

    async def __aenter__(self) -> Any:
        import asyncmy

        await self._sem.acquire()
        try:
            self._conn = await asyncmy.connect(**self._kwargs)
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
    workloads = frozenset({"W1", "W2", "W3", "W4", "W5"})
    on_release = "reset query on every release (unlock advisory, CLOSE ALL, UNLISTEN, RESET ALL)"

    async def open(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(
            self.endpoint.url("postgresql"), min_size=self.min_size, max_size=self.size
        )

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
            self.endpoint.conninfo(), min_size=self.min_size, max_size=self.size, open=False
        )
        await self._pool.open(wait=True)

    def opened(self) -> int | None:
        """``connections_num`` from ``get_stats()``: connections opened since ``open()``."""
        return int(self._pool.get_stats().get("connections_num", 0))

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
        FairFloorAdapter,
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
    "floor": "fair-floor",
    "asyncpg": "asyncpg (PG)",
    "psycopg": "psycopg_pool (PG)",
}

"""One adapter per contender: the same logical work, each library's own idiom.

Every adapter offers:

* ``open()`` / ``close()``: start with exactly ``min_size`` ready connections
  (``size`` unless given), growing up to ``size``;
* ``acquire()``: the library's own async context manager for one loan,
  yielding its connection as is; ``ops[name](conn)`` runs ``select1`` or
  ``sleep2ms`` on it (one statement through a cursor, its row fetched);
* ``held()``: for the bare contenders, the connection the current task uses
  with no loan at all, else None.  The harness then runs the statement on it
  directly, as a program with its own connection would: no ``async with``.

  The harness adds nothing per loan of its own.  Before, each loan built a
  handle object, and the bare side went through an ``async with`` of the
  bench's: W2 (aiopool ÷ a bare connection) counted 71,913 against 62,536
  instructions per ``SELECT 1`` (uvloop; asyncio 112,932 against 102,996),
  now 64,042 against 58,174 (asyncio 104,295 against 97,599; callgrind);
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
from collections.abc import Awaitable, Callable, Mapping
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


# --------------------------------------------------------------------------- operations
# One function per statement and driver style, called with the connection the
# contender's own context manager yields.


async def _mysql_select1(conn: Any) -> None:
    # DB-API style (asyncmy, aiomysql, psycopg): cursor, execute, fetchone.
    async with conn.cursor() as cur:
        await cur.execute(SELECT1)
        await cur.fetchone()


async def _mysql_sleep2ms(conn: Any) -> None:
    async with conn.cursor() as cur:
        await cur.execute(MYSQL_SLEEP)
        await cur.fetchone()


async def _psycopg_sleep2ms(conn: Any) -> None:
    async with conn.cursor() as cur:
        await cur.execute(PG_SLEEP)
        await cur.fetchone()


async def _sa_select1(conn: Any) -> None:
    # A SQLAlchemy AsyncConnection: driver-level SQL, buffered result.
    (await conn.exec_driver_sql(SELECT1)).fetchone()


async def _sa_sleep2ms(conn: Any) -> None:
    (await conn.exec_driver_sql(MYSQL_SLEEP)).fetchone()


async def _asyncpg_select1(conn: Any) -> None:
    await conn.fetchrow(SELECT1)


async def _asyncpg_sleep2ms(conn: Any) -> None:
    await conn.fetchrow(PG_SLEEP)


Op = Callable[[Any], Awaitable[None]]
MYSQL_OPS: Mapping[str, Op] = {"select1": _mysql_select1, "sleep2ms": _mysql_sleep2ms}
SA_OPS: Mapping[str, Op] = {"select1": _sa_select1, "sleep2ms": _sa_sleep2ms}
ASYNCPG_OPS: Mapping[str, Op] = {"select1": _asyncpg_select1, "sleep2ms": _asyncpg_sleep2ms}
PSYCOPG_OPS: Mapping[str, Op] = {"select1": _mysql_select1, "sleep2ms": _psycopg_sleep2ms}


# --------------------------------------------------------------------------- adapters


class Adapter:
    name = ""
    # workload -> task count when this contender runs it with other than the usual count
    tasks_for: ClassVar[dict[str, int]] = {}
    backend = "mysql"
    workloads: frozenset[str] = frozenset({"W1", "W2", "W3", "W4", "W5", "W6"})
    on_release = ""
    # What ``acquire()``'s connection runs: the statements in this driver's idiom.
    ops: ClassVar[Mapping[str, Op]] = MYSQL_OPS

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

    def held(self) -> Any:
        """The current task's own connection, used with no loan (bare contenders), or None."""
        return None

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
        return self._pool.connection()

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
        return self._pool.acquire()

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
    ops = SA_OPS
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
        return self._engine.connect()

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
        self._by_task: dict[object, Any] = {}

    async def close(self) -> None:
        for c in self._conns:
            await c.ensure_closed()

    def acquire(self) -> Any:
        return _Bare(self.held())

    def held(self) -> Any:
        """The current task's connection: each new task takes the next one, in turn."""
        task = asyncio.current_task()
        conn = self._by_task.get(task)
        if conn is None:
            conn = self._by_task[task] = self._conns[len(self._by_task) % self.size]
        return conn


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
        return self._pools.Loan(self._pool)

    def opened(self) -> int | None:
        """It opens ``size`` connections and no more."""
        return self.size


class _Bare:
    """A loan of a connection already held: ``async with`` yields it, and gives nothing back."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def __aenter__(self) -> Any:
        return self._conn

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

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def slice_start(self) -> None:
        self._conn = await self._pool.acquire()

    async def slice_end(self) -> None:
        conn, self._conn = self._conn, None
        await self._pool.release(conn)

    def acquire(self) -> Any:
        return _Bare(self._conn)

    def held(self) -> Any:
        """The connection borrowed for this slice."""
        return self._conn


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
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._conn.ensure_closed()
        finally:
            self._sem.release()


class AsyncpgAdapter(Adapter):
    name = "asyncpg (PG)"
    backend = "pg"
    ops = ASYNCPG_OPS
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
        return self._pool.acquire()

    async def raw_batch(self, n: int) -> None:
        pool = self._pool
        for _ in range(n):
            conn = await pool.acquire()
            await pool.release(conn)


class PsycopgAdapter(Adapter):
    name = "psycopg_pool (PG)"
    backend = "pg"
    ops = PSYCOPG_OPS
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
        return self._pool.connection()

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

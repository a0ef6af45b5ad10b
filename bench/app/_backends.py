"""One backend per pool: the same three database operations, each library's idiom.

Every backend borrows one connection per HTTP request and offers:

* ``one(id)``: one ``tfb_world`` row by id (TechEmpower's *single query*);
* ``many(ids)``: one query per id on the same connection (*multiple queries*);
* ``update(ids, numbers)``: in one transaction, every distinct row read with
  ``SELECT ... FOR UPDATE`` in ascending id order (so that concurrent requests
  lock in the same order and cannot deadlock), then one batched write (``update_sql``)
  (*database updates*).

The DB-API pools (aiopool, asyncmy, aiomysql) connect with ``autocommit=True``:
with the driver's default (off) a plain ``SELECT`` on InnoDB leaves a
transaction open, and asyncmy's and aiomysql's pools close a connection given
back inside a transaction (see ``/work/shared/research/asyncmy-facts.md``).
SQLAlchemy keeps its own default: a ``ROLLBACK`` when a connection goes back.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any
from urllib.parse import quote

from aiopool._config import parse_url

SIZE = 16
SELECT_WORLD = "SELECT id, randomNumber FROM tfb_world WHERE id = %s"
LOCK_WORLD = SELECT_WORLD + " FOR UPDATE"

Row = tuple[int, int]


def update_sql(numbers: dict[int, int]) -> str:
    """One statement writing every row; ids and numbers are ints the app drew itself.

    ``INSERT ... ON DUPLICATE KEY UPDATE`` touches each row by its primary key,
    in ascending id order: an ``UPDATE ... WHERE id IN (...)`` may scan the
    table instead (a small table, many ids) and lock rows other requests hold.
    """
    values = ",".join(f"({i},{numbers[i]})" for i in sorted(numbers))
    return (
        f"INSERT INTO tfb_world (id, randomNumber) VALUES {values} "
        "ON DUPLICATE KEY UPDATE randomNumber = VALUES(randomNumber)"
    )


def sqlalchemy_url(url: str) -> str:
    """``mysql+asyncmy://`` form of an aiopool URL (same server, user and database)."""
    kw = parse_url(url)
    auth = quote(kw.get("user", "root"), safe="")
    if kw.get("password"):
        auth += ":" + quote(kw["password"], safe="")
    host = f"{kw.get('host', '127.0.0.1')}:{kw.get('port', 3306)}"
    return f"mysql+asyncmy://{auth}@{host}/{kw.get('database', '')}"


# --------------------------------------------------------------------- DB-API cursors


async def _fetch(conn: Any, sql: str, world_id: int) -> Row:
    async with conn.cursor() as cur:
        await cur.execute(sql, (world_id,))
        row = await cur.fetchone()
    return (int(row[0]), int(row[1]))


async def _fetch_many(conn: Any, ids: list[int]) -> list[Row]:
    return [await _fetch(conn, SELECT_WORLD, i) for i in ids]


async def _lock_and_update(conn: Any, numbers: dict[int, int]) -> None:
    for i in sorted(numbers):
        await _fetch(conn, LOCK_WORLD, i)
    async with conn.cursor() as cur:
        await cur.execute(update_sql(numbers))


class Backend:
    """The interface every backend offers (see the module docstring)."""

    name = ""
    idiom = ""

    def __init__(self, url: str, size: int = SIZE) -> None:
        self.url = url
        self.size = size

    def unavailable(self) -> str | None:
        """Why this backend cannot run here, or None."""
        return None

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def one(self, world_id: int) -> Row:
        raise NotImplementedError

    async def many(self, ids: list[int]) -> list[Row]:
        raise NotImplementedError

    async def update(self, numbers: dict[int, int]) -> None:
        raise NotImplementedError


class AiopoolBackend(Backend):
    name = "aiopool"
    idiom = "`async with pool.connection()`; updates: `begin()`, the block commits on exit"

    async def open(self) -> None:
        from aiopool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(
            self.url, min_size=self.size, max_size=self.size, autocommit=True, name="tfb"
        )
        await self.pool.open(wait=True)

    async def close(self) -> None:
        await self.pool.close()

    async def one(self, world_id: int) -> Row:
        async with self.pool.connection() as conn:
            return await _fetch(conn, SELECT_WORLD, world_id)

    async def many(self, ids: list[int]) -> list[Row]:
        async with self.pool.connection() as conn:
            return await _fetch_many(conn, ids)

    async def update(self, numbers: dict[int, int]) -> None:
        async with self.pool.connection() as conn:
            await conn.begin()
            await _lock_and_update(conn, numbers)


class AsyncmyBackend(Backend):
    name = "asyncmy"
    idiom = "`async with pool.acquire()`; updates: `begin()` ... `commit()`, rollback on error"

    async def _create_pool(self, **kwargs: Any) -> Any:
        import asyncmy

        return await asyncmy.create_pool(**kwargs)

    def _kwargs(self) -> dict[str, Any]:
        kw = parse_url(self.url)
        kw.pop("connect_timeout", None)
        return kw

    async def open(self) -> None:
        self.pool = await self._create_pool(
            minsize=self.size, maxsize=self.size, autocommit=True, **self._kwargs()
        )

    async def close(self) -> None:
        self.pool.close()
        await self.pool.wait_closed()

    async def one(self, world_id: int) -> Row:
        async with self.pool.acquire() as conn:
            return await _fetch(conn, SELECT_WORLD, world_id)

    async def many(self, ids: list[int]) -> list[Row]:
        async with self.pool.acquire() as conn:
            return await _fetch_many(conn, ids)

    async def update(self, numbers: dict[int, int]) -> None:
        async with self.pool.acquire() as conn:
            await conn.begin()
            try:
                await _lock_and_update(conn, numbers)
                await conn.commit()
            except Exception:
                await conn.rollback()
                raise


class AiomysqlBackend(AsyncmyBackend):
    name = "aiomysql"

    async def _create_pool(self, **kwargs: Any) -> Any:
        import aiomysql  # type: ignore[import-untyped]

        kwargs["db"] = kwargs.pop("database", None)
        return await aiomysql.create_pool(**kwargs)


class SQLAlchemyBackend(Backend):
    name = "sqlalchemy"
    idiom = (
        "`async with engine.connect()` (ROLLBACK on return, SQLAlchemy's default); "
        "updates: `async with engine.begin()`"
    )

    async def _create_engine(self) -> Any:
        from sqlalchemy.ext.asyncio import create_async_engine

        return create_async_engine(
            sqlalchemy_url(self.url), pool_size=self.size, max_overflow=0, pool_timeout=30
        )

    async def open(self) -> None:
        self.engine = await self._create_engine()

    async def close(self) -> None:
        await self.engine.dispose()

    async def one(self, world_id: int) -> Row:
        async with self.engine.connect() as conn:
            row = (await conn.exec_driver_sql(SELECT_WORLD, (world_id,))).one()
        return (int(row[0]), int(row[1]))

    async def many(self, ids: list[int]) -> list[Row]:
        out = []
        async with self.engine.connect() as conn:
            for i in ids:
                row = (await conn.exec_driver_sql(SELECT_WORLD, (i,))).one()
                out.append((int(row[0]), int(row[1])))
        return out

    async def update(self, numbers: dict[int, int]) -> None:
        async with self.engine.begin() as conn:
            for i in sorted(numbers):
                await conn.exec_driver_sql(LOCK_WORLD, (i,))
            await conn.exec_driver_sql(update_sql(numbers))


class SQLAlchemyOnAiopoolBackend(SQLAlchemyBackend):
    """SQLAlchemy's engine drawing its connections from an aiopool pool."""

    name = "sqlalchemy+aiopool"
    idiom = "as *sqlalchemy*, on `aiopool.sqlalchemy.create_async_engine(pool)`"

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("aiopool.sqlalchemy") is None:
            return "aiopool.sqlalchemy does not exist in this tree yet"
        return None

    async def _create_engine(self) -> Any:
        # The one place that knows the adapter's API: adjust here if it changes.
        aiopool_sqlalchemy: Any = importlib.import_module("aiopool.sqlalchemy")
        from aiopool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(
            self.url, min_size=self.size, max_size=self.size, name="tfb-sqlalchemy"
        )
        await self.pool.open(wait=True)
        return aiopool_sqlalchemy.create_async_engine(self.pool)

    async def close(self) -> None:
        await self.engine.dispose()
        await self.pool.close()


BACKENDS: dict[str, type[Backend]] = {
    cls.name: cls
    for cls in (
        AiopoolBackend,
        AsyncmyBackend,
        AiomysqlBackend,
        SQLAlchemyBackend,
        SQLAlchemyOnAiopoolBackend,
    )
}

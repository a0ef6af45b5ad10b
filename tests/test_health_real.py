"""Return-time behaviour and leak handling against the real server."""

from __future__ import annotations

import asyncio
import gc
import warnings

import asyncmy
import pytest

from aiopool import AsyncConnectionPool
from tests.support.realdb import ConnectionWatcher, ScratchDatabase


async def fetch(conn: asyncmy.Connection, sql: str) -> tuple[object, ...]:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
        return tuple(row) if row is not None else ()


async def questions(conn: asyncmy.Connection) -> int:
    """Statements this session has sent (the SHOW itself counts as one)."""
    (_, value) = await fetch(conn, "SHOW SESSION STATUS LIKE 'Questions'")
    return int(str(value))


async def test_clean_return_costs_no_round_trip(scratch: ScratchDatabase) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=1) as pool:
        async with pool.connection() as conn:
            before = await questions(conn)
        async with pool.connection() as again:
            assert again is conn
            after = await questions(conn)
        assert after - before == 1, "nothing but our own SHOW was sent between the two"


async def test_reset_session_restores_a_new_connections_state(scratch: ScratchDatabase) -> None:
    async def configure(conn: asyncmy.Connection) -> None:
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION time_zone = '+03:00'")

    async with AsyncConnectionPool(
        scratch.url, min_size=1, max_size=1, reset_session=True, configure=configure
    ) as pool:
        async with pool.connection() as conn:
            thread_id = conn.thread_id()
            async with conn.cursor() as cur:
                await cur.execute("SET @leftover = 42")
                await cur.execute("CREATE TEMPORARY TABLE tmp_leftover (x INT)")
                # Named after the scratch database: lock names are server-wide, and
                # the core suite runs in several processes at once (make test-pythons).
                await cur.execute(f"SELECT GET_LOCK('{scratch.name}', 0)")
                await cur.execute("SET SESSION time_zone = '+09:00'")
                await cur.execute("SET SESSION sql_mode = 'ANSI'")
                await cur.execute("USE mysql")
            await conn.autocommit(True)
        async with pool.connection() as conn:
            assert conn.thread_id() == thread_id, "reset, not reconnected"
            assert await fetch(conn, "SELECT @leftover") == (None,)
            assert await fetch(conn, "SELECT @@autocommit") == (0,)
            assert await fetch(conn, "SELECT DATABASE()") == (scratch.name,)
            assert await fetch(conn, "SELECT @@time_zone") == ("+03:00",), "configure re-run"
            assert await fetch(conn, f"SELECT IS_USED_LOCK('{scratch.name}')") == (None,)
            assert "ANSI" not in str(await fetch(conn, "SELECT @@sql_mode"))
            with pytest.raises(asyncmy.errors.ProgrammingError):
                await fetch(conn, "SELECT * FROM tmp_leftover")


async def test_reset_session_rolls_back_uncommitted_work(scratch: ScratchDatabase) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=1, reset_session=True) as pool:
        async with pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        conn = await pool.acquire()
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO t VALUES (1)")
        await pool.release(conn)
        async with pool.connection() as conn:
            assert await fetch(conn, "SELECT COUNT(*) FROM t") == (0,)


async def test_dropped_connection_is_closed_on_the_server(scratch: ScratchDatabase) -> None:
    async with (
        AsyncConnectionPool(scratch.url, min_size=0, max_size=2) as pool,
        ConnectionWatcher(scratch) as watcher,
    ):

        async def forgetful() -> None:
            conn = await pool.acquire()
            await fetch(conn, "SELECT 1")

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await forgetful()
            gc.collect()
        assert any(issubclass(w.category, ResourceWarning) for w in caught)
        for _ in range(100):
            if await watcher.count() == 0:
                break
            await asyncio.sleep(0.02)
        assert await watcher.count() == 0, "the orphaned session was closed"
        assert pool.get_stats().pool_size == 0

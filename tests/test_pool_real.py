"""The pool against a real MariaDB/MySQL server (found by tests/conftest.py)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import asyncmy
import pytest
from asyncmy import errors as mysql_errors

from aiopool import AsyncConnectionPool, PoolTimeout
from tests.support.realdb import ConnectionWatcher, ScratchDatabase, connect_kwargs, execute


async def scalar(conn: object, sql: str) -> object:
    async with conn.cursor() as cur:  # type: ignore[attr-defined]
        await cur.execute(sql)
        row = await cur.fetchone()
        return row[0]


async def test_quickstart(database_url: str) -> None:
    async with AsyncConnectionPool(database_url, min_size=2, max_size=10) as pool:
        async with pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
                assert await cur.fetchone() == (1,)
        stats = pool.get_stats()
        assert stats["pool_size"] >= 2 and stats["pool_min"] == 2 and stats["pool_max"] == 10
    assert pool.closed


async def test_handed_out_connections_are_asyncmy_connections(database_url: str) -> None:
    async with AsyncConnectionPool(database_url, min_size=1) as pool:
        async with pool.connection() as conn:
            assert isinstance(conn, asyncmy.Connection)
            assert conn.get_autocommit() is False, "asyncmy's default (autocommit off) is kept"
    async with AsyncConnectionPool(database_url, min_size=1, autocommit=True) as pool:
        async with pool.connection() as conn:
            assert await scalar(conn, "SELECT @@autocommit") == 1


async def test_a_connection_its_borrower_reconnected_is_fast_to_lend_again(
    database_url: str,
) -> None:
    # The hand-out fast path reads the socket objects the pool keeps on the
    # slot; asyncmy makes new ones when a connection reconnects.
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
        conn = await pool.acquire()
        slot = pool._ledger.lent[id(conn)]
        old_stream = slot.stream
        conn.close()
        await conn.ping(reconnect=True)  # the borrower's own doing
        await pool.release(conn)
        await asyncio.sleep(0.05)  # the old socket's close reaches its protocol
        assert old_stream.gone()
        # The first hand-out pings it (the old socket is gone), then knows the new one.
        assert await pool.acquire() is conn
        assert slot.stream.proto is conn._proto and slot.stream.transport is conn._transport
        assert slot.transport is conn._transport
        await pool.release(conn)
        assert pool._ledger.lend_fresh(time.monotonic()) is conn, "fresh again: lent without a ping"
        await pool.release(conn)
        assert pool.get_stats()["connections_lost"] == 0


async def test_thousand_tasks_through_five_connections(scratch: ScratchDatabase) -> None:
    served = 0

    async def task(i: int) -> None:
        nonlocal served
        async with pool.connection() as conn:
            assert await scalar(conn, f"SELECT {i}") == i
            if i % 7 == 0:
                await asyncio.sleep(random.random() * 0.002)
            served += 1

    async with (
        AsyncConnectionPool(scratch.url, min_size=2, max_size=5, timeout=60) as pool,
        ConnectionWatcher(scratch) as watcher,
    ):
        async with asyncio.timeout(120):
            await asyncio.gather(*(task(i) for i in range(1000)))
        assert served == 1000
        stats = pool.get_stats()
        assert stats.requests_num == 1000 and stats.requests_errors == 0
        assert watcher.samples > 0
        assert watcher.max_seen <= 5, f"server saw {watcher.max_seen} connections"
        assert stats.connections_num <= 5
        assert await watcher.count() == pool.get_stats().pool_size
    await asyncio.sleep(0.1)
    async with ConnectionWatcher(scratch) as watcher:
        assert await watcher.count() == 0, "close() closed every connection"


async def test_commit_and_rollback_seen_from_another_connection(scratch: ScratchDatabase) -> None:
    await execute(scratch.url, "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=2) as pool:
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(RuntimeError):
            async with pool.connection() as conn, conn.cursor() as cur:
                await cur.execute("INSERT INTO t VALUES (2)")
                raise RuntimeError("the block failed")
        conn = await pool.acquire()
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO t VALUES (3)")
        await pool.release(conn)  # release() rolls back what was not committed
        (rows,) = await execute(scratch.url, "SELECT id FROM t ORDER BY id")
        assert rows == ((1,),)


async def test_read_only_block_costs_no_commit(scratch: ScratchDatabase) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=1) as pool:
        async with pool.connection() as conn:
            assert await scalar(conn, "SELECT 1") == 1
            assert not conn.get_transaction_status()
        async with pool.connection() as again:
            assert again is conn


async def test_cancelled_query_connection_is_never_reused(scratch: ScratchDatabase) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=1, timeout=10) as pool:
        victim: object = None

        async def slow() -> None:
            nonlocal victim
            async with pool.connection() as conn:
                victim = conn
                await scalar(conn, "SELECT SLEEP(5), 'old'")

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(slow(), 0.2)
        async with pool.connection() as conn:
            assert conn is not victim
            assert await scalar(conn, "SELECT 'new'") == "new"
        assert pool.get_stats().returns_bad == 1


async def test_killed_idle_connections_are_replaced_silently(scratch: ScratchDatabase) -> None:
    async with (
        AsyncConnectionPool(scratch.url, min_size=3, max_size=3) as pool,
        ConnectionWatcher(scratch) as watcher,
    ):
        ids = await watcher.ids()
        assert len(ids) == 3
        for thread_id in ids:
            await execute(scratch.server_url, f"KILL {thread_id}")
        await asyncio.sleep(0.05)  # let the loop see the FINs
        for _ in range(6):
            async with pool.connection() as conn:
                assert await scalar(conn, "SELECT 1") == 1
        assert pool.get_stats().connections_lost == 3


async def test_close_with_borrowers_still_active(scratch: ScratchDatabase) -> None:
    pool = AsyncConnectionPool(scratch.url, min_size=2, max_size=2)
    await pool.open()
    finished = asyncio.Event()

    async def borrower() -> None:
        async with pool.connection() as conn:
            await scalar(conn, "SELECT SLEEP(0.2)")
        finished.set()

    task = asyncio.create_task(borrower())
    await asyncio.sleep(0.05)
    await pool.close(timeout=5)
    assert finished.is_set(), "close() let the borrower finish"
    await task
    async with ConnectionWatcher(scratch) as watcher:
        await asyncio.sleep(0.05)
        assert await watcher.count() == 0


async def test_configure_runs_on_every_new_connection(scratch: ScratchDatabase) -> None:
    async def configure(conn: asyncmy.Connection) -> None:
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION time_zone = '+05:00'")

    async with AsyncConnectionPool(
        scratch.url, min_size=2, max_size=2, configure=configure
    ) as pool:
        a = await pool.acquire()
        b = await pool.acquire()
        assert await scalar(a, "SELECT @@time_zone") == "+05:00"
        assert await scalar(b, "SELECT @@time_zone") == "+05:00"
        await pool.release(a)
        await pool.release(b)


async def test_wrong_password_is_the_servers_error(database_url: str) -> None:
    # A name of its own: the core suite runs in several processes at once on
    # the same server (make test-pythons), and a shared name would race.
    user = f"aiopool_pw_{uuid.uuid4().hex[:8]}"
    await execute(
        database_url,
        f"DROP USER IF EXISTS '{user}'@'%'",
        f"CREATE USER '{user}'@'%' IDENTIFIED BY 'the-right-one'",
    )
    try:
        pool = AsyncConnectionPool(
            database_url, min_size=1, user=user, password="wrong-password-123"
        )
        with pytest.raises(mysql_errors.OperationalError) as info:
            await pool.open(timeout=10)
        assert info.value.args[0] == 1045, info.value
        assert "wrong-password-123" not in str(info.value)
        assert pool.closed
    finally:
        await execute(database_url, f"DROP USER IF EXISTS '{user}'@'%'")


async def test_unknown_database_is_the_servers_error(database_url: str) -> None:
    pool = AsyncConnectionPool(database_url, min_size=1, database="aiopool_no_such_db")
    with pytest.raises(mysql_errors.OperationalError) as info:
        await pool.open(timeout=10)
    assert info.value.args[0] == 1049


async def test_refused_port_times_out_with_the_cause(database_url: str) -> None:
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pool = AsyncConnectionPool(f"mysql://root@127.0.0.1:{port}/test", min_size=1)
    cause = r"could not open 1 connection.*Can.t connect to MySQL server.*Errno 111"
    with pytest.raises(PoolTimeout, match=cause):
        await pool.open(timeout=0.5)


async def test_unknown_host_times_out_with_the_cause() -> None:
    pool = AsyncConnectionPool("mysql://root@no-such-host.invalid:3306/test", min_size=1)
    with pytest.raises(PoolTimeout, match=r"no-such-host\.invalid"):
        await pool.open(timeout=1)


async def test_percent_escaped_password_in_url(scratch: ScratchDatabase) -> None:
    # A name of its own, as above: another run of the suite may be at this test too.
    user, password = f"aiopool_esc_{uuid.uuid4().hex[:8]}", "p@ss:w/rd%?#"
    await execute(
        scratch.server_url,
        f"DROP USER IF EXISTS '{user}'@'%'",
        f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'",
        f"GRANT ALL ON `{scratch.name}`.* TO '{user}'@'%'",
    )
    try:
        host = connect_kwargs(scratch.server_url)
        escaped = "p%40ss%3Aw%2Frd%25%3F%23"
        url = f"mysql://{user}:{escaped}@{host['host']}:{host['port']}/{scratch.name}"
        async with AsyncConnectionPool(url, min_size=1) as pool:
            async with pool.connection() as conn:
                assert await scalar(conn, "SELECT CURRENT_USER()") == f"{user}@%"
            assert password not in repr(pool) and "p%40ss" not in repr(pool)
    finally:
        await execute(scratch.server_url, f"DROP USER IF EXISTS '{user}'@'%'")


async def test_unix_socket_from_url(database_url: str) -> None:
    (rows,) = await execute(database_url, "SELECT @@socket")
    socket_path = rows[0][0]
    import os

    if not socket_path or not os.path.exists(socket_path):
        pytest.skip(f"the server's socket {socket_path!r} is not on this machine")
    url = f"mysql://root@localhost/test?unix_socket={socket_path}"
    async with AsyncConnectionPool(url, min_size=1) as pool:
        async with pool.connection() as conn:
            where = await scalar(
                conn, "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
            )
            assert where == "localhost", f"connected over TCP ({where}), not the socket"


async def test_a_connection_whose_socket_is_closing_is_not_lent(database_url: str) -> None:
    # A reset (RST) closes the transport at once; the protocol hears of it
    # (connection_lost sets eof) a loop turn later. A hand-out in that turn
    # must not lend the connection: abort() opens the same window.
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
        conn = await pool.acquire()
        await pool.release(conn)
        conn._transport.abort()
        assert not conn._proto.eof, "the window this test is about"
        async with pool.connection() as again:
            assert again is not conn
            assert await scalar(again, "SELECT 1") == 1
        assert pool.get_stats()["connections_lost"] == 1

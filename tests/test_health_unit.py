"""drain, resize, leak detection and return-time resets, on the fake server."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings

import pytest

from aiopool import PoolClosed
from tests.support.fakes import FakeServer
from tests.support.pooltools import check_invariants, fake_pool, settle


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


async def test_drain_replaces_idle_now_and_lent_on_return(server: FakeServer) -> None:
    async with fake_pool(server, min_size=2, max_size=3) as pool:
        lent = await pool.acquire()
        old_idle = {slot.conn for slot in pool._ledger.idle}
        await pool.drain()
        await settle(pool)
        assert all(not c.connected for c in old_idle)
        assert lent.connected, "a lent connection is not taken from its borrower"
        await pool.release(lent)
        await settle(pool)
        assert not lent.connected, "retired when returned"
        fresh = {slot.conn for slot in pool._ledger.idle}
        assert fresh and not fresh & (old_idle | {lent})
        check_invariants(pool, server)


async def test_drain_retires_connections_opened_before_it(server: FakeServer) -> None:
    # Long beside the polling before drain(), so that a loaded machine cannot
    # finish the connect first.
    server.connect_delay = 0.3
    async with fake_pool(server, min_size=0, max_size=2) as pool:
        task = asyncio.create_task(pool.acquire())
        for _ in range(100):
            if pool._ledger.opening:
                break
            await asyncio.sleep(0)
        assert pool._ledger.opening == 1
        await pool.drain()  # the connection being opened predates the drain
        conn = await task
        assert conn.connected, "the waiter still gets served"
        assert server.opened == 2, "...by a connection opened after the drain"
        assert conn.id == max(c.id for c in server.connections())
        await pool.release(conn)
        await settle(pool)
        assert len(server.live) == 1
        check_invariants(pool, server)


async def test_resize_grows_and_shrinks(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=2) as pool:
        await pool.resize(3, 5)
        await settle(pool)
        assert len(pool._ledger.idle) == 3 and pool.max_size == 5
        held = [await pool.acquire() for _ in range(5)]
        await pool.resize(1, 2)
        await settle(pool)
        for conn in held:
            await pool.release(conn)
        await settle(pool)
        assert pool._ledger.size == 2 and len(server.live) == 2
        server.max_live = len(server.live)  # the old peak was under the old limit
        check_invariants(pool, server)
        with pytest.raises(ValueError, match="min_size"):
            await pool.resize(3, 2)


async def test_drain_and_resize_need_an_open_pool(server: FakeServer) -> None:
    pool = fake_pool(server)
    with pytest.raises(PoolClosed):
        await pool.drain()
    with pytest.raises(PoolClosed):
        await pool.resize(1, 2)


async def test_dropped_connection_warns_and_comes_back(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1, leak_threshold=60) as pool:

        async def forgetful_borrower() -> None:
            conn = await pool.acquire()
            assert conn.connected

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await forgetful_borrower()  # reference counting frees the connection here
            gc.collect()
        messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert messages and "garbage-collected without being returned" in messages[0]
        assert "forgetful_borrower" in messages[0], "names where it was acquired"
        assert not server.live or len(server.live) == 1
        conn = await pool.acquire(timeout=2)  # the slot came back: a new connection
        await pool.release(conn)
        await settle(pool)
        assert pool.get_stats().returns_bad == 1
        check_invariants(pool, server)


async def test_leak_threshold_logs_the_acquiring_stack(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with fake_pool(server, min_size=1, leak_threshold=0.05) as pool:

        async def slow_borrower() -> None:
            async with pool.connection():
                await asyncio.sleep(0.3)

        with caplog.at_level(logging.WARNING, logger="aiopool"):
            await slow_borrower()
        leaks = [r for r in caplog.records if "possible leak" in r.getMessage()]
        assert len(leaks) == 1, "warned once per loan"
        assert "slow_borrower" in leaks[0].getMessage()


async def test_reset_callback_runs_on_every_return(server: FakeServer) -> None:
    seen: list[object] = []

    async def reset(conn: object) -> None:
        seen.append(conn)

    async with fake_pool(server, min_size=1, reset=reset) as pool:
        for _ in range(3):
            async with pool.connection() as conn:
                pass
        assert seen == [conn] * 3


async def test_failing_reset_callback_closes_the_connection(server: FakeServer) -> None:
    async def reset(conn: object) -> None:
        raise RuntimeError("cannot reset")

    async with fake_pool(server, min_size=1, max_size=1, reset=reset) as pool:
        async with pool.connection() as conn:
            pass
        await settle(pool)
        assert not conn.connected
        assert pool.get_stats().returns_bad == 1
        check_invariants(pool, server)


async def test_null_pool_keeps_nothing(server: FakeServer) -> None:
    from aiopool import NullConnectionPool

    async with NullConnectionPool(connection_factory=server.connect, max_size=2) as pool:
        assert pool.get_stats().pool_size == 0
        async with pool.connection() as conn:
            await conn.query()
        await settle(pool)
        assert not conn.connected and conn.quit_sent and conn.commits == 1
        assert pool.get_stats().pool_size == 0 and not server.live

        async def worker() -> None:
            async with pool.connection() as c:
                await c.query(0.01, begin=False)

        await asyncio.gather(*(worker() for _ in range(10)))
        await settle(pool)
        assert server.max_live <= 2 and not server.live
    with pytest.raises(ValueError, match="min_size must be 0"):
        NullConnectionPool(min_size=1)

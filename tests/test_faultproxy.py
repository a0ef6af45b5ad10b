"""Integration tests for the fault-injecting proxy, against the real server.

Timing assertions are lower bounds that follow from injected faults only; the
machine is shared and noisy, so nothing asserts that something was fast beyond
the generous `asyncio.timeout` that bounds each test.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncmy
import pytest
import uvloop
from asyncmy.errors import OperationalError

from tests.support.faultproxy import FaultProxy

MYSQL_HOST = "127.0.0.1"
MYSQL_PORT = 3306
# Generous per-test bound: a hang is a failure, not a slow pass.
TEST_TIMEOUT = 5.0
# asyncmy's "server has gone away" and "lost connection during query".
CONNECTION_LOST_ERRNOS = {2006, 2013}


def _server_reachable() -> bool:
    try:
        socket.create_connection((MYSQL_HOST, MYSQL_PORT), timeout=1).close()
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _server_reachable(), reason=f"no MySQL server on {MYSQL_HOST}:{MYSQL_PORT}"
)


async def _connect(proxy: FaultProxy, **kwargs: Any) -> Any:
    return await asyncmy.connect(
        host=proxy.host, port=proxy.port, user="root", password="", db="test", **kwargs
    )


async def _select_one(conn: Any) -> Any:
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        return await cur.fetchone()


async def _eventually(predicate: Callable[[], bool]) -> None:
    """Poll `predicate` until true; the surrounding test timeout bounds it."""
    while not predicate():
        await asyncio.sleep(0.01)


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    async with FaultProxy(MYSQL_HOST, MYSQL_PORT) as p:
        yield p


async def _pass_through(proxy: FaultProxy) -> None:
    conn = await _connect(proxy)
    try:
        assert await _select_one(conn) == (1,)
        assert proxy.active_connections == 1
        assert proxy.total_connections == 1
    finally:
        await conn.ensure_closed()
    # The client's close travels through the proxy, which then drops the pair.
    await _eventually(lambda: proxy.active_connections == 0)


async def test_pass_through(proxy: FaultProxy) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        await _pass_through(proxy)


async def _reset_all(proxy: FaultProxy) -> None:
    conn = await _connect(proxy)
    try:
        assert await _select_one(conn) == (1,)
        assert proxy.reset_all() == 1
        assert proxy.active_connections == 0
        with pytest.raises(OperationalError) as exc_info:
            await _select_one(conn)
        assert exc_info.value.args[0] in CONNECTION_LOST_ERRNOS
    finally:
        conn.close()


async def test_reset_all_breaks_existing_connection(proxy: FaultProxy) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        await _reset_all(proxy)


def _run_on_uvloop(scenario: Callable[[FaultProxy], Awaitable[None]]) -> None:
    async def main() -> None:
        async with asyncio.timeout(TEST_TIMEOUT), FaultProxy(MYSQL_HOST, MYSQL_PORT) as p:
            await scenario(p)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_pass_through_reset_and_refuse_on_uvloop() -> None:
    # uvloop has its own socket wrapper (SO_LINGER) and add_reader: check both.
    _run_on_uvloop(_pass_through)
    _run_on_uvloop(_reset_all)
    _run_on_uvloop(_refuse_new)


async def test_blackhole_hangs_then_heal_allows_new_connections(proxy: FaultProxy) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        conn = await _connect(proxy)
        try:
            proxy.blackhole()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_select_one(conn), 0.5)
            # New connections are accepted but never see the server greeting.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_connect(proxy), 0.3)
            assert proxy.active_connections == 2
        finally:
            conn.close()
        proxy.heal()
        fresh = await _connect(proxy)
        try:
            assert await _select_one(fresh) == (1,)
        finally:
            await fresh.ensure_closed()


async def _refuse_new(proxy: FaultProxy) -> None:
    existing = await _connect(proxy)
    try:
        proxy.refuse_new()
        with pytest.raises(OperationalError) as exc_info:
            await _connect(proxy, connect_timeout=3)
        # 2003: "Can't connect to MySQL server", from ECONNREFUSED.
        assert exc_info.value.args[0] == 2003
        # Only new connections are refused.
        assert await _select_one(existing) == (1,)
        proxy.heal()
        fresh = await _connect(proxy)
        assert await _select_one(fresh) == (1,)
        await fresh.ensure_closed()
    finally:
        existing.close()
    # The refused attempt never reached the proxy.
    assert proxy.total_connections == 2


async def test_blackhole_pushes_back_instead_of_buffering(proxy: FaultProxy) -> None:
    payload = b"\0" * (32 * 1024 * 1024)  # well beyond loopback socket buffers
    async with asyncio.timeout(TEST_TIMEOUT):
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        try:
            await reader.readexactly(4)  # the server greeting: upstream is up
            proxy.blackhole()
            writer.write(payload)
            # The proxy stops reading, so the sender is held back by TCP.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(writer.drain(), 0.5)
            assert writer.transport.get_write_buffer_size() > 0
        finally:
            writer.transport.abort()


async def test_refuse_new_fails_connect_fast(proxy: FaultProxy) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        await _refuse_new(proxy)


async def test_refuse_new_reset_mode_resets_after_accept(proxy: FaultProxy) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        proxy.refuse_new(mode="reset")
        with pytest.raises(OperationalError) as exc_info:
            await _connect(proxy, connect_timeout=3)
        # ECONNRESET: 2003 if it lands while asyncmy is still connecting (the
        # usual case on loopback), 2013 if while it reads the greeting.
        assert exc_info.value.args[0] in {2003, 2013}
        assert proxy.total_connections == 1
        assert proxy.active_connections == 0
        proxy.refuse_new(False)
        conn = await _connect(proxy)
        assert await _select_one(conn) == (1,)
        await conn.ensure_closed()


async def test_latency_delays_round_trip(proxy: FaultProxy) -> None:
    latency = 0.2
    async with asyncio.timeout(TEST_TIMEOUT):
        conn = await _connect(proxy)
        try:
            proxy.set_latency(latency)
            started = time.monotonic()
            assert await _select_one(conn) == (1,)
            elapsed = time.monotonic() - started
            proxy.heal()
            # Request and reply are each delayed; allow for timer rounding.
            assert elapsed >= 2 * latency * 0.95
            assert await _select_one(conn) == (1,)
        finally:
            await conn.ensure_closed()


async def test_set_latency_rejects_negative(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="latency"):
        proxy.set_latency(-0.1)


async def test_stop_closes_connections_and_leaves_no_tasks() -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        before = asyncio.all_tasks()
        proxy = FaultProxy(MYSQL_HOST, MYSQL_PORT)
        await proxy.start()
        conn = await _connect(proxy)
        blackholed = await _connect(proxy)
        try:
            assert await _select_one(conn) == (1,)
            proxy.blackhole()
            await proxy.stop()
            await proxy.stop()  # idempotent
            assert proxy.active_connections == 0
            assert asyncio.all_tasks() <= before
            with pytest.raises(OperationalError) as exc_info:
                await _select_one(conn)
            assert exc_info.value.args[0] in CONNECTION_LOST_ERRNOS
        finally:
            conn.close()
            blackholed.close()


async def test_url_for_rewrites_host_and_port(proxy: FaultProxy) -> None:
    url = "mysql://root:s3cret@db.example:3307/test?charset=utf8mb4"
    expected = f"mysql://root:s3cret@{proxy.host}:{proxy.port}/test?charset=utf8mb4"
    assert proxy.url_for(url) == expected
    assert proxy.url_for("mysql://db/test") == f"mysql://{proxy.host}:{proxy.port}/test"

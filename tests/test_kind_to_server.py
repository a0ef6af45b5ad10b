"""Kind to the server (and to the user), against the real server.

Connection attempts are counted at a TCP proxy in front of the server, so
what is counted is what the server saw, not what the pool says it did.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncmy
import pytest

from aiopool import AsyncConnectionPool, PoolError, PoolTimeout, WrongEventLoop
from tests.support.faultproxy import FaultProxy
from tests.support.realdb import ScratchDatabase, connect_kwargs, execute


def host_port(url: str) -> tuple[str, int]:
    kwargs = connect_kwargs(url)
    return kwargs["host"], int(kwargs["port"])


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(*host_port(database_url)) as p:
        yield p


def slow_connect(delay: float) -> Any:
    """asyncmy.connect, taking ``delay`` longer: a server far away, or busy at login."""

    async def connect(**kwargs: Any) -> Any:
        await asyncio.sleep(delay)
        return await asyncmy.connect(**kwargs)

    return connect


async def hold(pool: AsyncConnectionPool, seconds: float, log: list[tuple[str, float]]) -> None:
    loop = asyncio.get_running_loop()
    async with pool.connection():
        log.append(("got", loop.time()))
        await asyncio.sleep(seconds)
        log.append(("back", loop.time()))


# ---------------------------------------------------------------- no storms


async def test_a_failing_check_is_paced_not_a_storm(
    proxy: FaultProxy, scratch: ScratchDatabase
) -> None:
    checks = 0

    async def always_fails(conn: Any) -> None:
        nonlocal checks
        checks += 1
        raise RuntimeError("replica lagging: refusing this connection")

    url = proxy.url_for(scratch.url)
    pool = AsyncConnectionPool(url, min_size=1, max_size=4, check=always_fails, check_after=0)
    async with pool:
        with pytest.raises(PoolTimeout, match="replica lagging") as caught:
            async with pool.connection(timeout=2):
                pass
    # Before the back-off applied to checks: about 1,300 connections in 2 s.
    opened = proxy.total_connections
    assert opened <= 4, f"{opened} connections opened in 2 s for one request"
    assert checks <= opened
    assert "failing after opening" in str(caught.value)


async def test_a_burst_of_short_loans_does_not_grow_the_pool(
    proxy: FaultProxy, scratch: ScratchDatabase
) -> None:
    url = proxy.url_for(scratch.url)
    pool = AsyncConnectionPool(url, min_size=4, max_size=12, connection_factory=slow_connect(0.150))
    async with pool:
        # Loans of 2 ms have been seen before the burst (a warm application).
        for _ in range(20):
            async with pool.connection():
                await asyncio.sleep(0.002)
        before = proxy.total_connections
        log: list[tuple[str, float]] = []
        await asyncio.gather(*(hold(pool, 0.002, log) for _ in range(60)))
        await asyncio.sleep(0.4)  # openers started during the burst would have finished
        extra = proxy.total_connections - before
    assert before == 4
    assert extra <= 2, f"the burst opened {extra} connections the returns could serve"


async def test_long_loans_grow_the_pool_before_any_loan_ends(scratch: ScratchDatabase) -> None:
    pool = AsyncConnectionPool(scratch.url, min_size=1, max_size=10)
    async with pool:
        log: list[tuple[str, float]] = []
        await asyncio.gather(*(hold(pool, 0.5, log) for _ in range(20)))
    got = [t for kind, t in log if kind == "got"]
    first_back = min(t for kind, t in log if kind == "back")
    # Ten loans were running at once before the first of them ended: the pool
    # grew to max_size instead of waiting for returns that were far away.
    assert sorted(got)[9] < first_back


# ---------------------------------------------------------------- check()


async def test_check_replaces_dead_idle_connections_and_keeps_healthy_ones(
    scratch: ScratchDatabase,
) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=3, max_size=3) as pool:
        ids = []
        conns = [await pool.acquire() for _ in range(3)]
        for conn in conns:
            ids.append(conn.thread_id())
        for conn in conns:
            await pool.release(conn)
        await execute(scratch.server_url, f"KILL {ids[0]}")
        await asyncio.sleep(0.1)
        lost_before = pool.get_stats().connections_lost
        await pool.check()
        assert pool.get_stats().connections_lost == lost_before + 1
        for _ in range(100):
            if pool.get_stats().pool_available == 3:
                break
            await asyncio.sleep(0.02)
        after = []
        conns = [await pool.acquire() for _ in range(3)]
        for conn in conns:
            after.append(conn.thread_id())
            await pool.release(conn)
    assert set(ids[1:]) <= set(after), "healthy connections were kept"
    assert ids[0] not in after, "the killed one was replaced"


async def test_check_runs_alongside_hand_outs(scratch: ScratchDatabase) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=4, max_size=4) as pool:
        checking = asyncio.create_task(pool.check())
        async with pool.connection(timeout=5) as conn:
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
        await checking
        assert pool.get_stats().connections_lost == 0


# ---------------------------------------------------------------- the server's limits


@pytest.fixture
async def limited_user(database_url: str, scratch: ScratchDatabase) -> AsyncIterator[str]:
    """A user of the shared server allowed 3 connections; dropped afterwards."""
    name = f"aiopool_lim_{uuid.uuid4().hex[:8]}"
    await execute(
        database_url,
        f"CREATE USER '{name}'@'%' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 3",
        f"CREATE USER '{name}'@'localhost' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 3",
        f"GRANT ALL ON `{scratch.name}`.* TO '{name}'@'%'",
        f"GRANT ALL ON `{scratch.name}`.* TO '{name}'@'localhost'",
    )
    host, port = host_port(database_url)
    try:
        yield f"mysql://{name}:pw@{host}:{port}/{scratch.name}"
    finally:
        await execute(
            database_url,
            f"DROP USER IF EXISTS '{name}'@'%'",
            f"DROP USER IF EXISTS '{name}'@'localhost'",
        )


async def test_max_user_connections_serves_waiters_and_warns_once(
    limited_user: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = AsyncConnectionPool(limited_user, min_size=1, max_size=6)
    served = 0

    async def request() -> None:
        nonlocal served
        async with pool.connection(timeout=20) as conn:
            async with conn.cursor() as cur:
                await cur.execute("SELECT SLEEP(0.2)")
            served += 1

    with caplog.at_level(logging.WARNING, logger="aiopool"):
        async with pool:
            await asyncio.gather(*(request() for _ in range(12)))
            stats = pool.get_stats()
    assert served == 12, "every request was served by the connections the server allowed"
    assert stats.connections_errors >= 1, "the pool did hit the limit"
    assert stats.pool_size <= 3 + 1  # at most one probing opener beyond the limit
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    limit = [m for m in warnings if "max_user_connections" in m]
    assert len(limit) == 1, warnings


# ---------------------------------------------------------------- kind to the user


async def test_nothing_listening_fails_open_quickly_with_the_address() -> None:
    with socket_bound_and_closed() as port:
        pool = AsyncConnectionPool(f"mysql://root@127.0.0.1:{port}/test", timeout=60)
        with pytest.raises(PoolError, match=f"127.0.0.1:{port}.*wait_for_server") as caught:
            async with asyncio.timeout(30):  # "did not hang" bound; the pool's timeout is 60
                await pool.open()
        assert not isinstance(caught.value, PoolTimeout)
        assert pool.closed


async def test_wait_for_server_keeps_trying_until_the_timeout() -> None:
    with socket_bound_and_closed() as port:
        pool = AsyncConnectionPool(f"mysql://root@127.0.0.1:{port}/test")
        with pytest.raises(PoolTimeout, match=r"Can.t connect"):
            await pool.open(timeout=3.5, wait_for_server=True)


async def test_wait_for_server_sees_a_late_server(
    database_url: str, scratch: ScratchDatabase
) -> None:
    async with FaultProxy(*host_port(database_url)) as proxy:
        proxy.refuse_new()
        pool = AsyncConnectionPool(proxy.url_for(scratch.url), min_size=1)
        loop = asyncio.get_running_loop()
        loop.call_later(2.5, proxy.heal)  # the server "finishes starting" after the grace
        await pool.open(timeout=30, wait_for_server=True)
        async with pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
        await pool.close()


class socket_bound_and_closed:
    """A local port with nothing listening (bound, then released)."""

    def __enter__(self) -> int:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        sock.close()
        return port

    def __exit__(self, *exc: object) -> None:
        pass


async def test_negative_timeout_is_refused_even_with_an_idle_connection(
    scratch: ScratchDatabase,
) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=1) as pool:
        assert pool.get_stats().pool_available == 1
        with pytest.raises(ValueError, match="timeout must be >= 0"):
            await pool.acquire(timeout=-1)
        assert pool.get_stats().pool_available == 1, "nothing was lent"


def test_a_misspelt_argument_fails_at_construction() -> None:
    with pytest.raises(TypeError, match=r"max_sise.*did you mean 'max_size'"):
        AsyncConnectionPool("mysql://root@127.0.0.1/test", max_sise=10)


async def test_another_threads_loop_gets_wrong_event_loop(scratch: ScratchDatabase) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=1) as pool:
        assert pool.get_stats().pool_available == 1  # the fast path would apply
        seen: list[BaseException] = []

        async def borrow() -> None:
            try:
                await pool.acquire()
            except BaseException as exc:
                seen.append(exc)

        def other_thread() -> None:
            asyncio.run(borrow())

        # The pool's loop keeps running while the other thread tries.
        thread = threading.Thread(target=other_thread)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)
        assert len(seen) == 1 and isinstance(seen[0], WrongEventLoop), seen
        assert pool.get_stats().pool_available == 1, "nothing was lent to the other loop"


async def test_timed_out_requests_count_as_queued(scratch: ScratchDatabase) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=1) as pool:
        async with pool.connection():
            with pytest.raises(PoolTimeout):
                await pool.acquire(timeout=0.05)
        stats = pool.get_stats()
    assert stats.requests_queued == 1 and stats.requests_errors == 1

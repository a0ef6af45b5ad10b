"""The cancellation sweep of ``test_cancel_sweep.py``, against the real server.

Here a round trip takes as many loop turns as the answer takes to arrive, so
the sweep lands on every await of the pool and of asyncmy underneath (which
closes a connection cancelled mid-command), including the session reset that
the fake server cannot play.  After every run the books are exact, the pool
lends a working connection, and once it is closed the server has no session
of it left.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncmy
import pytest
from asyncmy import errors as mysql_errors

from aiopool import AsyncConnectionPool
from tests.support.faultproxy import FaultProxy
from tests.support.pooltools import (
    cancel_after,
    cancel_sweep,
    check_invariants,
    fault_after,
    settle,
)
from tests.support.realdb import ScratchDatabase, connect_kwargs, execute


class Boom(Exception):
    """An application error inside the block."""


async def _insert(pool: AsyncConnectionPool, fail: bool) -> None:
    async with pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO t VALUES (1)")
        if fail:
            raise Boom


async def _session_variable(pool: AsyncConnectionPool, fail: bool) -> None:
    async with pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute("SET @leftover = 1")


SCENARIOS: dict[str, tuple[Any, bool, dict[str, Any]]] = {
    "commit": (_insert, False, {}),
    "rollback": (_insert, True, {}),
    "reset-session": (_session_variable, False, {"reset_session": True}),
    "checked": (_insert, False, {"check_after": 0}),
}


@pytest.fixture
async def admin(scratch: ScratchDatabase) -> AsyncIterator[Any]:
    """A session outside the scratch database (so not counted), with a table ``t`` in it."""
    await execute(scratch.url, "CREATE TABLE t (x INT)")
    kwargs = connect_kwargs(scratch.server_url)
    kwargs.pop("database", None)
    conn = await asyncmy.connect(**kwargs)
    yield conn
    await conn.ensure_closed()


async def _still_right(pool: AsyncConnectionPool) -> None:
    """Exact books, and a working connection with a fresh session."""
    await settle(pool)
    check_invariants(pool)
    async with asyncio.timeout(10), pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT @leftover")
            assert await cur.fetchone() == (None,), "a session variable leaked"
    await settle(pool)
    check_invariants(pool)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_cancel_a_borrower_at_every_turn_on_the_real_server(
    scratch: ScratchDatabase, admin: Any, scenario: str
) -> None:
    borrow, fail, settings = SCENARIOS[scenario]

    async def run_once(k: int) -> bool:
        async with AsyncConnectionPool(scratch.url, min_size=1, max_size=2, **settings) as pool:
            finished = await cancel_after(k, borrow(pool, fail), allowed=(Boom,))
            await _still_right(pool)
        assert await scratch.sessions_left(admin) == 0, "a session outlived close()"
        return finished

    assert await cancel_sweep(run_once, limit=1000) >= 2


# What a borrower may see when its connection is reset under it.
LOST = (mysql_errors.OperationalError, mysql_errors.InterfaceError, ConnectionError)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_every_connection_reset_at_every_turn_on_the_real_server(
    scratch: ScratchDatabase, admin: Any, scenario: str
) -> None:
    # Through a proxy that resets every TCP connection (RST) after k turns:
    # the borrower may fail with the driver's error; the pool must recover.
    borrow, fail, settings = SCENARIOS[scenario]
    server = connect_kwargs(scratch.server_url)
    async with FaultProxy(server["host"], server["port"]) as proxy:
        url = proxy.url_for(scratch.url)

        async def run_once(k: int) -> bool:
            async with AsyncConnectionPool(url, min_size=1, max_size=2, **settings) as pool:
                finished = await fault_after(
                    k,
                    borrow(pool, fail),
                    lambda _task: proxy.reset_all(),
                    expected=LOST,
                    allowed=(Boom,),
                )
                # The resets reach the pool's sockets a few loop turns later:
                # until then nobody, the pool included, can know of them.
                await asyncio.sleep(0.01)
                await _still_right(pool)
            assert await scratch.sessions_left(admin) == 0, "a session outlived close()"
            return finished

        assert await cancel_sweep(run_once, limit=1000) >= 2

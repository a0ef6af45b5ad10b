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
from typing import Any

import asyncmy
import pytest

from aiopool import AsyncConnectionPool
from tests.support.pooltools import cancel_after, cancel_sweep, check_invariants, settle
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


async def _sessions_left(scratch: ScratchDatabase, admin: Any) -> int:
    # A closed session leaves PROCESSLIST a moment after the client hung up.
    for _ in range(200):
        if not await scratch.connections(admin):
            return 0
        await asyncio.sleep(0.01)
    return len(await scratch.connections(admin))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_cancel_a_borrower_at_every_turn_on_the_real_server(
    scratch: ScratchDatabase, scenario: str
) -> None:
    borrow, fail, settings = SCENARIOS[scenario]
    await execute(scratch.url, "CREATE TABLE t (x INT)")
    kwargs = connect_kwargs(scratch.server_url)
    kwargs.pop("database", None)
    admin = await asyncmy.connect(**kwargs)  # not in the scratch database: not counted
    try:

        async def run_once(k: int) -> bool:
            async with AsyncConnectionPool(scratch.url, min_size=1, max_size=2, **settings) as pool:
                finished = await cancel_after(k, borrow(pool, fail), allowed=(Boom,))
                await settle(pool)
                check_invariants(pool)
                async with asyncio.timeout(10), pool.connection() as conn:
                    async with conn.cursor() as cur:
                        await cur.execute("SELECT @leftover")
                        assert await cur.fetchone() == (None,), "a session variable leaked"
                await settle(pool)
                check_invariants(pool)
            assert await _sessions_left(scratch, admin) == 0, "a session outlived close()"
            return finished

        assert await cancel_sweep(run_once, limit=1000) >= 2
    finally:
        await admin.ensure_closed()

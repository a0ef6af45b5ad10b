"""A cancelled task sees CancelledError at every await of the pool, and no DeprecationWarning.

Python 3.12 deprecates ``throw(type, value, traceback)`` for futures and
coroutines, and mypyc's ``await`` passes that triple when it forwards a
cancellation (mypyc/mypyc#1214).  Under warnings-as-errors (pytest's
``filterwarnings = error``, ``python -W error``) the warning would replace
the CancelledError: ``asyncio.timeout()`` would not turn it into a
TimeoutError, and the caller would get a DeprecationWarning instead.  These
tests run on both builds (``make test`` runs them compiled and pure, on every
supported Python).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.fakes import FakeServer
from tests.support.pooltools import check_invariants, fake_pool, settle

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


async def test_timeout_while_waiting_in_line(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        async with pool.connection():
            for enter in (pool.connection().__aenter__, pool.acquire):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.02):
                        await enter()
        await settle(pool)
        check_invariants(pool, server)


async def test_timeout_while_the_connection_is_checked(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1, check_after=0) as pool:
        server.ping_delay = 1.0
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                async with pool.connection():
                    pass
        await settle(pool)
        check_invariants(pool, server)


@pytest.mark.parametrize("block_fails", [False, True], ids=["committing", "rolling-back"])
async def test_timeout_while_leaving_the_block(server: FakeServer, block_fails: bool) -> None:
    # A clean block commits on the way out; a failed one is rolled back by the
    # slow return, which the caller awaits.
    server.commit_delay = server.rollback_delay = 1.0
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                async with pool.connection() as conn:
                    await conn.query()
                    if block_fails:
                        raise ValueError("rolled back on the way out")
        await settle(pool)
        check_invariants(pool, server)

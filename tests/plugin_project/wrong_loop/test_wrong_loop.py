"""Misuse: a pool opened in the session's loop, used from a test in its own loop.

These tests fail on purpose; tests/test_plugin.py checks how.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from aiopool import AsyncConnectionPool


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def empty_pool(aiopool_database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(aiopool_database_url, min_size=0, max_size=2) as pool:
        yield pool


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def ready_pool(aiopool_database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(aiopool_database_url, min_size=1, max_size=2) as pool:
        yield pool


async def select_one(pool: AsyncConnectionPool) -> None:
    async with asyncio.timeout(5):  # a failure, never a hang
        async with pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")


@pytest.mark.asyncio  # the function's own loop, not the pool's
async def test_no_idle_connection(empty_pool: AsyncConnectionPool) -> None:
    await select_one(empty_pool)


@pytest.mark.asyncio
async def test_idle_connection(ready_pool: AsyncConnectionPool) -> None:
    await select_one(ready_pool)


@pytest.mark.asyncio(loop_scope="session")
async def test_pools_still_work_in_their_own_loop(
    empty_pool: AsyncConnectionPool, ready_pool: AsyncConnectionPool
) -> None:
    await select_one(empty_pool)
    await select_one(ready_pool)
    assert ready_pool.get_stats()["pool_in_use"] == 0

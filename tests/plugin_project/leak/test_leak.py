"""Misuse: a test that keeps a connection checked out past its end.

It errors at teardown on purpose; tests/test_plugin.py checks the message.
"""

import pytest

from aiopool import AsyncConnectionPool

KEPT = []


@pytest.mark.asyncio
async def test_keeps_a_connection(aiopool_pool: AsyncConnectionPool) -> None:
    KEPT.append(await aiopool_pool.acquire())


@pytest.mark.asyncio
async def test_gives_it_back(aiopool_pool: AsyncConnectionPool) -> None:
    async with aiopool_pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1")

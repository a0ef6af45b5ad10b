"""Tests that use the session pool run in the session's loop too."""

import asyncio

import pytest

from aiopool import AsyncConnectionPool

pytestmark = pytest.mark.asyncio(loop_scope="session")

first_seen: dict[str, object] = {}


async def connection_id(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT CONNECTION_ID()")
            (cid,) = await cur.fetchone()
    return int(cid)


async def test_first(shared_pool: AsyncConnectionPool) -> None:
    first_seen.update(
        pool=shared_pool, loop=asyncio.get_running_loop(), cid=await connection_id(shared_pool)
    )


async def test_second_uses_the_same_pool_and_connection(shared_pool: AsyncConnectionPool) -> None:
    assert shared_pool is first_seen["pool"]
    assert asyncio.get_running_loop() is first_seen["loop"]
    assert await connection_id(shared_pool) == first_seen["cid"]

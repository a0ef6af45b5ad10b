"""The aiopool_pool fixture, with default sizes and with the aiopool marker."""

import pytest

from aiopool import AsyncConnectionPool


@pytest.mark.asyncio
async def test_default_pool(aiopool_pool: AsyncConnectionPool, aiopool_database: str) -> None:
    assert (aiopool_pool.min_size, aiopool_pool.max_size) == (1, 5)
    async with aiopool_pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute("CREATE TABLE t (x INT)")
            await cur.execute("INSERT INTO t VALUES (42)")
        # pool.connection() commits when the block succeeds
    async with aiopool_pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT DATABASE(), (SELECT x FROM t)")
            name, x = await cur.fetchone()
    assert aiopool_database.endswith(f"/{name}") and x == 42


@pytest.mark.asyncio
@pytest.mark.aiopool(min_size=2, max_size=3, name="marked", autocommit=True)
async def test_marker_sets_pool_arguments(aiopool_pool: AsyncConnectionPool) -> None:
    assert (aiopool_pool.min_size, aiopool_pool.max_size) == (2, 3)
    assert aiopool_pool.name == "marked"
    assert aiopool_pool.get_stats()["pool_size"] == 2
    async with aiopool_pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT @@autocommit")
            assert await cur.fetchone() == (1,)


@pytest.mark.aiopool(max_size=2)
class TestMarksMerge:
    @pytest.mark.asyncio
    @pytest.mark.aiopool(min_size=0)
    async def test_class_and_function_marks(self, aiopool_pool: AsyncConnectionPool) -> None:
        assert (aiopool_pool.min_size, aiopool_pool.max_size) == (0, 2)

"""Each test gets its own database: same table name, no clash, nothing left behind."""

import pytest

from aiopool import AsyncConnectionPool


async def fill_items(url: str) -> int:
    async with AsyncConnectionPool(url, min_size=1, max_size=1) as pool:
        async with pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.execute("SELECT DATABASE()")
                (name,) = await cur.fetchone()
                print(f"AIOPOOL_DB={name}")
                await cur.execute("CREATE TABLE items (id INT PRIMARY KEY)")
                await cur.execute("INSERT INTO items VALUES (1), (2)")
                await cur.execute("SELECT COUNT(*) FROM items")
                (count,) = await cur.fetchone()
    assert url.endswith(f"/{name}")
    return int(count)


@pytest.mark.asyncio
async def test_one(aiopool_database: str) -> None:
    assert await fill_items(aiopool_database) == 2


@pytest.mark.asyncio
async def test_two(aiopool_database: str) -> None:
    assert await fill_items(aiopool_database) == 2


def test_sync_tests_get_a_database_too(aiopool_database: str) -> None:
    assert "/aiopool_test_" in aiopool_database


leaked: list[object] = []


@pytest.mark.asyncio
async def test_leaves_a_transaction_open(aiopool_database: str) -> None:
    # A test that forgets a connection mid-transaction, holding a lock on its table:
    # dropping the database must not wait for it.
    await fill_items(aiopool_database)
    pool = AsyncConnectionPool(aiopool_database, min_size=1, max_size=1)
    await pool.open()
    conn = await pool.acquire()
    async with conn.cursor() as cur:
        await cur.execute("INSERT INTO items VALUES (3)")
    leaked.append((pool, conn))

"""Quickstart: open a pool, run a query in a transaction, look at the stats.

Run it with `make demo`, or `python examples/quickstart.py` with AIOPOOL_URL set
(default: mysql://root:@127.0.0.1:3306/test).
"""

from __future__ import annotations

import asyncio
import os

from aiopool import AsyncConnectionPool

URL = os.environ.get("AIOPOOL_URL", "mysql://root:@127.0.0.1:3306/test")


async def main() -> None:
    async with AsyncConnectionPool(URL, min_size=2, max_size=10) as pool:
        async with pool.connection() as conn:  # commit on success, rollback on exception
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
                print(await cur.fetchone())

        # Many tasks share a few connections; each block is one transaction.
        async def count_tables(schema: str) -> int:
            async with pool.connection() as conn:
                async with conn.cursor() as cur:
                    await cur.execute(
                        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                        (schema,),
                    )
                    row = await cur.fetchone()
                    return int(row[0])

        counts = await asyncio.gather(*(count_tables("mysql") for _ in range(50)))
        print(f"50 tasks, {pool.get_stats().pool_size} connections: {counts[0]} tables in mysql")
        print(pool.get_stats())


if __name__ == "__main__":
    asyncio.run(main())

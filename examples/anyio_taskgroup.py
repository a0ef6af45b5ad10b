"""anyio task groups and aiopool: one task fails, the group cancels the rest, the pool stays whole.

100 tasks share a pool of 5 connections. After 0.2 s one more task raises; the
task group cancels every other task wherever it is: waiting for a connection,
in the middle of a query, or between two. Afterwards nothing is lent out,
nobody is waiting, the pool never grew past max_size, and it still works.
Exits with status 1 if any of that is not so.

    AIOPOOL_URL=mysql://root:@127.0.0.1:3306/test python examples/anyio_taskgroup.py
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import anyio

from aiopool import AsyncConnectionPool

URL = os.environ.get("AIOPOOL_URL", "mysql://root:@127.0.0.1:3306/test")
TASKS = 100
MAX_SIZE = 5
ROUNDS = 50  # each task borrows at most this many times


class Boom(Exception):
    """The failure that brings the task group down."""


async def worker(pool: AsyncConnectionPool, n: int, cancelled: Counter[str]) -> None:
    where = "between loans"
    try:
        for _ in range(ROUNDS):
            where = "waiting for a connection"
            async with pool.connection() as conn:
                where = "in a query"
                async with conn.cursor() as cur:
                    await cur.execute("SELECT SLEEP(0.01), %s", (n,))
                    await cur.fetchone()
                where = "committing"
            where = "between loans"
            await anyio.sleep(0)
    except anyio.get_cancelled_exc_class():
        cancelled[where] += 1
        raise


async def fail_soon() -> None:
    await anyio.sleep(0.2)
    raise Boom("one task failed")


async def main() -> int:
    cancelled: Counter[str] = Counter()
    with anyio.fail_after(30):
        async with AsyncConnectionPool(URL, min_size=1, max_size=MAX_SIZE, timeout=10) as pool:
            try:
                async with anyio.create_task_group() as tg:
                    for n in range(TASKS):
                        tg.start_soon(worker, pool, n, cancelled)
                    tg.start_soon(fail_soon)
            except* Boom as group:
                print(f"task group failed with {group.exceptions[0]!r}")
            where = ", ".join(f"{count} {place}" for place, count in cancelled.most_common())
            print(f"cancelled {cancelled.total()} of {TASKS} tasks: {where}")

            stats = pool.get_stats()
            print(
                f"pool after the group: pool_in_use={stats.pool_in_use}"
                f" requests_waiting={stats.requests_waiting}"
                f" pool_size={stats.pool_size} (max {stats.pool_max})"
                f" connections_num={stats.connections_num} returns_bad={stats.returns_bad}"
            )
            whole = (
                stats.pool_in_use == 0
                and stats.requests_waiting == 0
                and stats.pool_size <= stats.pool_max
            )
            async with pool.connection() as conn:  # and it still hands out working connections
                async with conn.cursor() as cur:
                    await cur.execute("SELECT 1")
                    print(f"pool still works: SELECT 1 -> {await cur.fetchone()}")
    print("pool is whole" if whole else "POOL IS NOT WHOLE")
    return 0 if whole else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main, backend="asyncio"))

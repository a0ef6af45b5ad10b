"""The suite runs every async test under asyncio's loop and under uvloop."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from aiopool import AsyncConnectionPool


async def test_each_variant_runs_on_its_loop(request: pytest.FixtureRequest) -> None:
    loop = asyncio.get_running_loop()
    variant = request.node.callspec.id
    if "uvloop" in variant:
        assert isinstance(loop, uvloop.Loop)
    else:
        assert not isinstance(loop, uvloop.Loop)


def test_pool_works_under_uvloop_run(database_url: str) -> None:
    async def main() -> tuple[int, str]:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=2) as pool:
            async with pool.connection() as conn, conn.cursor() as cur:
                await cur.execute("SELECT 1")
                (value,) = await cur.fetchone()
            return value, type(asyncio.get_running_loop()).__module__

    assert uvloop.run(main()) == (1, "uvloop")


def test_pool_works_under_a_runner_with_uvloop_factory(database_url: str) -> None:
    async def main() -> int:
        async with AsyncConnectionPool(database_url, min_size=2, max_size=4) as pool:
            results = await asyncio.gather(*(query(pool, i) for i in range(20)))
            return sum(results)

    async def query(pool: AsyncConnectionPool, i: int) -> int:
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.execute("SELECT %s", (i,))
            (value,) = await cur.fetchone()
            return int(value)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == sum(range(20))

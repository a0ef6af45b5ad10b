"""Start-up time and the pool's own memory per connection."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from ._adapters import MYSQL, MYSQL_URL, PG_CONNINFO, PG_DSN, SELECT1
from ._order import turn_order

StartFn = Callable[[int], Awaitable[Callable[[], Awaitable[None]]]]


async def _start_aiopool(n: int) -> Callable[[], Awaitable[None]]:
    from aiopool import AsyncConnectionPool

    pool = AsyncConnectionPool(MYSQL_URL, min_size=n, max_size=n, timeout=30.0)
    await pool.open(wait=True)
    return pool.close


async def _start_asyncmy(n: int) -> Callable[[], Awaitable[None]]:
    import asyncmy

    pool = await asyncmy.create_pool(minsize=n, maxsize=n, **MYSQL)

    async def close() -> None:
        pool.close()
        await pool.wait_closed()

    return close


async def _start_aiomysql(n: int) -> Callable[[], Awaitable[None]]:
    import aiomysql

    pool = await aiomysql.create_pool(minsize=n, maxsize=n, **MYSQL)

    async def close() -> None:
        pool.close()
        await pool.wait_closed()

    return close


async def _start_asyncpg(n: int) -> Callable[[], Awaitable[None]]:
    import asyncpg

    pool = await asyncpg.create_pool(PG_DSN, min_size=n, max_size=n)
    return pool.close


async def _start_psycopg(n: int) -> Callable[[], Awaitable[None]]:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(PG_CONNINFO, min_size=n, max_size=n, open=False)
    await pool.open(wait=True)
    return pool.close


STARTERS: dict[str, StartFn] = {
    "aiopool": _start_aiopool,
    "asyncmy": _start_asyncmy,
    "aiomysql": _start_aiomysql,
    "asyncpg (PG)": _start_asyncpg,
    "psycopg_pool (PG)": _start_psycopg,
}


async def startup(names: list[str], size: int, reps: int) -> dict[str, Any]:
    """Time from the call to ``size`` ready connections; interleaved (``turn_order``), medians."""
    times: dict[str, list[float]] = {n: [] for n in names}
    errors: dict[str, str] = {}
    for rep in range(reps):
        for name in turn_order(names, rep):
            if name in errors:
                continue
            try:
                t0 = time.perf_counter()
                close = await STARTERS[name](size)
                times[name].append(time.perf_counter() - t0)
                await close()
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.05)  # let the server retire the closed sessions
    out: dict[str, Any] = {}
    for name in names:
        if name in errors:
            out[name] = {"error": errors[name]}
        else:
            ms = [t * 1e3 for t in times[name]]
            out[name] = {"median_ms": statistics.median(ms), "runs_ms": ms}
    return out


# --------------------------------------------------------------------------- memory

MEMORY_METHOD = (
    "tracemalloc. N asyncmy connections are opened (and run SELECT 1) before the measurement and "
    "handed to the pool through its connection factory (aiopool: connection_factory=; asyncmy: "
    "its module-level connect patched), so the connections themselves are never counted. "
    "Measured: traced bytes still held after the pool is created, opened with N connections and "
    "exercised (all N borrowed at once, all returned, twice), after gc.collect(). Per-connection "
    "cost is the slope between N={lo} and N={hi}, so the pool's fixed cost drops out; median of "
    "{reps} repetitions after one discarded warm-up. For scale, one bare asyncmy connection "
    "(connect + SELECT 1, traced the same way) is also shown."
)


async def _open_conns(n: int) -> list[Any]:
    import asyncmy

    conns = [await asyncmy.connect(**MYSQL) for _ in range(n)]
    for c in conns:
        async with c.cursor() as cur:
            await cur.execute(SELECT1)
            await cur.fetchone()
    return conns


async def _exercise(acquire: Any, release: Any, n: int) -> None:
    for _ in range(2):
        conns = [await acquire() for _ in range(n)]
        for c in conns:
            await release(c)


async def _aiopool_from(conns: list[Any]) -> Callable[[], Awaitable[None]]:
    from aiopool import AsyncConnectionPool

    async def factory(**_: Any) -> Any:
        return conns.pop()

    n = len(conns)
    pool = AsyncConnectionPool(
        MYSQL_URL, min_size=n, max_size=n, timeout=30.0, connection_factory=factory
    )
    await pool.open(wait=True)
    await _exercise(pool.acquire, pool.release, n)
    return pool.close


async def _asyncmy_from(conns: list[Any]) -> Callable[[], Awaitable[None]]:
    import asyncmy
    import asyncmy.pool

    async def factory(**_: Any) -> Any:
        return conns.pop()

    n = len(conns)
    original = asyncmy.pool.connect
    asyncmy.pool.connect = factory
    try:
        pool = await asyncmy.create_pool(minsize=n, maxsize=n, **MYSQL)
    finally:
        asyncmy.pool.connect = original

    async def release(c: Any) -> None:
        await pool.release(c)

    await _exercise(pool.acquire, release, n)

    async def close() -> None:
        pool.close()
        await pool.wait_closed()

    return close


async def _held_by_pool(build: Callable[[list[Any]], Awaitable[Any]], n: int) -> int:
    conns = await _open_conns(n)
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    close = await build(conns)
    await asyncio.sleep(0)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    await close()
    return held


async def _bare_conn_bytes() -> int:
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    (conn,) = await _open_conns(1)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    await conn.ensure_closed()
    return held


async def memory(lo: int, hi: int, reps: int, with_aiopool: bool) -> dict[str, Any]:
    builders: dict[str, Callable[[list[Any]], Awaitable[Any]]] = {"asyncmy": _asyncmy_from}
    if with_aiopool:
        builders["aiopool"] = _aiopool_from
    tracemalloc.start(1)
    try:
        samples: dict[str, list[float]] = {k: [] for k in builders}
        fixed: dict[str, list[float]] = {k: [] for k in builders}
        bare: list[int] = []
        for rep in range(reps + 1):
            bare.append(await _bare_conn_bytes())
            for name, build in builders.items():
                small = await _held_by_pool(build, lo)
                big = await _held_by_pool(build, hi)
                if rep == 0:
                    continue  # warm-up: imports, caches, interned strings
                slope = (big - small) / (hi - lo)
                samples[name].append(slope)
                fixed[name].append(big - slope * hi)
    finally:
        tracemalloc.stop()
    out: dict[str, Any] = {
        "method": MEMORY_METHOD.format(lo=lo, hi=hi, reps=reps),
        "bare_conn_bytes": round(statistics.median(bare[1:])),
        "asyncmy_pool_overhead_bytes": round(statistics.median(samples["asyncmy"])),
        "asyncmy_pool_fixed_bytes": round(statistics.median(fixed["asyncmy"])),
    }
    if with_aiopool:
        out["aiopool_overhead_bytes"] = round(statistics.median(samples["aiopool"]))
        out["aiopool_fixed_bytes"] = round(statistics.median(fixed["aiopool"]))
        out["aiopool_samples"] = [round(s) for s in samples["aiopool"]]
    return out

"""FastAPI with aiopool: one pool per application, one connection per request.

The pool is opened by the `lifespan` handler and closed on shutdown; a
dependency lends each request a connection for exactly one transaction
(commit when the endpoint returns, rollback when it raises).

    AIOPOOL_URL=mysql://root:@127.0.0.1:3306/test python examples/fastapi_app.py --port 8000
    cd examples && uvicorn fastapi_app:app --port 8000      # the same, with uvicorn's CLI
    curl localhost:8000/items/7; curl -X POST localhost:8000/visits/home; curl localhost:8000/health

The app creates its table, aiopool_example_visits, when it starts (unless it
exists) and drops it when it stops if it created it, so it leaves nothing
behind in the database. A real application would create its tables with
migrations instead.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response

from aiopool import AsyncConnectionPool, Connection

URL = os.environ.get("AIOPOOL_URL", "mysql://root:@127.0.0.1:3306/test")
POOL_NAME = "fastapi-example"
"""The pool's name: the ``pool`` label of its metrics."""
POOL_WAIT_HEADER = "X-Pool-Wait-Ms"
"""Response header: how long this request waited for its connection, in milliseconds."""

CREATE_VISITS = """
    CREATE TABLE IF NOT EXISTS aiopool_example_visits (
        name VARCHAR(100) PRIMARY KEY,
        hits BIGINT NOT NULL
    ) ENGINE=InnoDB
"""


async def create_visits_table(pool: AsyncConnectionPool) -> bool:
    """Create the example's table unless it exists (checked first: no server warning).

    Returns whether this call created it.
    """
    async with pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT COUNT(*) FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'aiopool_example_visits'"
            )
            (exists,) = await cur.fetchone()
            if not exists:
                await cur.execute(CREATE_VISITS)
    return not exists


async def drop_visits_table(pool: AsyncConnectionPool) -> None:
    """Drop the example's table: an example leaves nothing behind."""
    async with pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute("DROP TABLE IF EXISTS aiopool_example_visits")


def get_pool(request: Request) -> AsyncConnectionPool:
    """The application's pool, opened by `lifespan`."""
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


# --8<-- [start:dependency]
async def get_conn(request: Request, response: Response) -> AsyncIterator[Connection]:
    """Lend the request a connection: one transaction, returned to the pool afterwards."""
    started = time.perf_counter()
    async with get_pool(request).connection() as conn:  # commit, or rollback if the endpoint raises
        response.headers[POOL_WAIT_HEADER] = f"{(time.perf_counter() - started) * 1000:.3f}"
        yield conn


# scope="function": the transaction ends (commit or rollback) and the connection
# goes back to the pool *before* the response is sent, not after.
Conn = Annotated[Connection, Depends(get_conn, scope="function")]
# --8<-- [end:dependency]
SleepMs = Annotated[int, Query(ge=0, le=1000, description="server time of the query")]


def create_app(
    url: str = URL,
    *,
    min_size: int = 2,
    max_size: int = 10,
    timeout: float = 10.0,
    on_pool: Callable[[AsyncConnectionPool], object] | None = None,
) -> FastAPI:
    """The application; nothing is opened until uvicorn runs its lifespan.

    ``on_pool`` is called with the pool before it opens (to export its metrics,
    say: see examples/metrics_app.py).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, timeout=timeout, name=POOL_NAME
        )
        app.state.pool = pool
        if on_pool is not None:
            on_pool(pool)
        async with pool:  # opens min_size connections, closes the pool on shutdown
            created = await create_visits_table(pool)
            try:
                yield
            finally:
                if created:
                    await drop_visits_table(pool)

    app = FastAPI(title="aiopool FastAPI example", lifespan=lifespan)

    @app.get("/items/{n}")
    async def read_item(n: int, conn: Conn, ms: SleepMs = 5) -> dict[str, int]:
        """A small query that keeps the connection busy for `ms` milliseconds (default 5)."""
        async with conn.cursor() as cur:
            await cur.execute("SELECT SLEEP(%s), %s, CONNECTION_ID()", (ms / 1000, n))
            _, value, connection_id = await cur.fetchone()
        return {"n": int(value), "connection_id": int(connection_id)}

    @app.post("/visits/{name}")
    async def visit(name: str, conn: Conn, fail: bool = False) -> dict[str, str | int]:
        """Count a visit: two statements in one transaction; `?fail=true` rolls it back."""
        async with conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO aiopool_example_visits (name, hits) VALUES (%s, 1)"
                " ON DUPLICATE KEY UPDATE hits = hits + 1",
                (name,),
            )
            await cur.execute("SELECT hits FROM aiopool_example_visits WHERE name = %s", (name,))
            (hits,) = await cur.fetchone()
        if fail:
            raise HTTPException(status_code=409, detail=f"rolled back visit {hits} of {name}")
        return {"name": name, "hits": int(hits)}

    @app.get("/health")
    async def health(request: Request) -> dict[str, int | float]:
        """The pool's counters (no connection needed)."""
        return dict(get_pool(request).get_stats())

    return app


app = create_app()
"""For `uvicorn fastapi_app:app`: the URL comes from AIOPOOL_URL; nothing opens until startup."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="aiopool FastAPI example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--max-size", type=int, default=10, help="pool max_size")
    args = parser.parse_args(argv)
    app = create_app(min_size=min(2, args.max_size), max_size=args.max_size)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()

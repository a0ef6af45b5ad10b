"""aiohttp with aiopool: the pool lives in a `cleanup_ctx`, handlers borrow per request.

Run it, then try it:

    AIOPOOL_URL=mysql://root:@127.0.0.1:3306/test python examples/aiohttp_app.py --port 8080
    curl localhost:8080/items/7; curl localhost:8080/health
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from aiopool import AsyncConnectionPool

URL = os.environ.get("AIOPOOL_URL", "mysql://root:@127.0.0.1:3306/test")
POOL = web.AppKey("pool", AsyncConnectionPool)


async def read_item(request: web.Request) -> web.Response:
    """A small query that takes a few milliseconds on the server."""
    n = int(request.match_info["n"])
    async with request.app[POOL].connection() as conn:  # one transaction
        async with conn.cursor() as cur:
            await cur.execute("SELECT SLEEP(0.005), %s, CONNECTION_ID()", (n,))
            _, value, connection_id = await cur.fetchone()
    return web.json_response({"n": int(value), "connection_id": int(connection_id)})


async def health(request: web.Request) -> web.Response:
    """The pool's counters (no connection needed)."""
    return web.json_response(dict(request.app[POOL].get_stats()))


def create_app(
    url: str = URL, *, min_size: int = 2, max_size: int = 10, timeout: float = 10.0
) -> web.Application:
    """The application; the pool opens on startup and closes on cleanup."""

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, timeout=timeout, name="aiohttp-example"
        )
        app[POOL] = pool
        async with pool:  # opened before the first request, closed on shutdown
            yield

    app = web.Application()
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get(r"/items/{n:\d+}", read_item)
    app.router.add_get("/health", health)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="aiopool aiohttp example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--max-size", type=int, default=10, help="pool max_size")
    args = parser.parse_args(argv)
    app = create_app(min_size=min(2, args.max_size), max_size=args.max_size)
    web.run_app(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()

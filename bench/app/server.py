"""The FastAPI app: TechEmpower's ``/db``, ``/queries`` and ``/updates`` on one pool backend.

Run it alone with ``python -m bench.app.server --backend aiopool`` (uvicorn,
uvloop, one process); ``python -m bench.app`` starts it once per backend and
round and points ``wrk`` at it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from ._backends import BACKENDS, Backend
from ._schema import ROWS

MAX_QUERIES = 500
DEFAULT_URL = "mysql://root:@127.0.0.1:3306/aiopool_bench"


def clamp_queries(text: str | None) -> int:
    """TechEmpower's rule: not a number counts as 1, then clamp to 1..500."""
    try:
        n = int(text) if text is not None else 1
    except ValueError:
        return 1
    return min(max(n, 1), MAX_QUERIES)


def _json(obj: object) -> Response:
    return Response(json.dumps(obj, separators=(",", ":")), media_type="application/json")


def create_app(backend: Backend, rows: int = ROWS) -> FastAPI:
    """The app; its lifespan opens the backend's pool and closes it on shutdown."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await backend.open()
        try:
            yield
        finally:
            await backend.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    randint = random.randint

    @app.get("/db")
    async def single_query() -> Response:
        world_id, number = await backend.one(randint(1, rows))
        return _json({"id": world_id, "randomNumber": number})

    @app.get("/queries")
    async def multiple_queries(queries: str | None = None) -> Response:
        ids = [randint(1, rows) for _ in range(clamp_queries(queries))]
        worlds = await backend.many(ids)
        return _json([{"id": i, "randomNumber": n} for i, n in worlds])

    @app.get("/updates")
    async def updates(queries: str | None = None) -> Response:
        ids = [randint(1, rows) for _ in range(clamp_queries(queries))]
        # A repeated id gets one new number: the response and the table agree.
        numbers = {i: randint(1, 10_000) for i in ids}
        await backend.update(numbers)
        return _json([{"id": i, "randomNumber": numbers[i]} for i in ids])

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.app.server", description=__doc__)
    p.add_argument("--backend", choices=sorted(BACKENDS), default="aiopool")
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--rows", type=int, default=ROWS)
    p.add_argument("--size", type=int, default=16, help="pool size (min = max)")
    args = p.parse_args(argv)
    import uvicorn

    backend = BACKENDS[args.backend](args.url, args.size)
    reason = backend.unavailable()
    if reason:
        print(f"unavailable: {reason}", file=sys.stderr)
        return 3
    uvicorn.run(
        create_app(backend, args.rows),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="auto",  # httptools when installed (the bench extra), else h11
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

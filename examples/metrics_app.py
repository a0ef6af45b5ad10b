"""FastAPI with aiopool and Prometheus: the FastAPI example plus ``/metrics``.

The app of examples/fastapi_app.py, with its pool registered in a
prometheus_client registry before it opens, and that registry served at
``/metrics``: the pool's gauges and counters, and the histograms of how long
requests waited for a connection, how long they held it and how long
connections took to open.

    cd examples && AIOPOOL_URL=mysql://root:@127.0.0.1:3306/test uvicorn metrics_app:app
    curl localhost:8000/items/7; curl localhost:8000/metrics

p99 pool wait per pool, in PromQL (more in docs/metrics-histograms.md):

    histogram_quantile(0.99, sum by (le, pool) (rate(aiopool_connection_wait_seconds_bucket[5m])))
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi_app import URL
from fastapi_app import create_app as create_base_app
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from aiopool import AsyncConnectionPool
from aiopool.metrics.prometheus import register


def create_app(
    url: str = URL,
    *,
    min_size: int = 2,
    max_size: int = 10,
    timeout: float = 10.0,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The FastAPI example with ``/metrics``; nothing is opened until uvicorn runs its lifespan.

    Each app gets its own registry unless one is passed (``prometheus_client.REGISTRY``
    adds the process metrics, but holds one pool named "fastapi-example" at a time).
    """
    metrics_registry = CollectorRegistry() if registry is None else registry

    def export(pool: AsyncConnectionPool) -> None:
        # Before the pool opens, so that its first connections are in the histograms too.
        register(pool, metrics_registry)

    app = create_base_app(
        url, min_size=min_size, max_size=max_size, timeout=timeout, on_pool=export
    )
    app.state.registry = metrics_registry

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """The registry in the format the scraper asked for (Prometheus text or OpenMetrics)."""
        # async: collected in the event loop, never concurrently with the pool's own work.
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(metrics_registry), media_type=content_type)

    return app


app = create_app()
"""For ``uvicorn metrics_app:app``: the pool opens when uvicorn starts the app."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="aiopool FastAPI example with /metrics")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--max-size", type=int, default=10, help="pool max_size")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(min_size=min(2, args.max_size), max_size=args.max_size),
        host=args.host,
        port=args.port,
    )


if __name__ == "__main__":
    main()

"""The real-application benchmark's harness (bench/app) at tiny size, so it cannot rot.

Every pool backend serves TechEmpower's three test types in-process (httpx over
ASGI, the app's own lifespan): JSON shapes, the 1..500 clamp, updates that
persist, and concurrent updates that neither deadlock nor exceed the pool.
One run goes through the real child process under uvicorn, as the bench does;
wrk is not needed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bench.app._backends import BACKENDS, update_sql
from bench.app._process import AppServer, SessionSampler
from bench.app._schema import create_world, read_world
from bench.app._wrk import parse
from bench.app.server import clamp_queries, create_app
from tests.support.realdb import ScratchDatabase

ROWS = 50
SIZE = 2
DEADLINE = 60  # "did not hang", not a timing claim


@pytest.fixture
async def world(scratch: ScratchDatabase) -> ScratchDatabase:
    await create_world(scratch.url, ROWS, seed=1)
    return scratch


@pytest.fixture(params=sorted(BACKENDS))
async def client(request: Any, world: ScratchDatabase) -> AsyncIterator[httpx.AsyncClient]:
    backend = BACKENDS[request.param](world.url, SIZE)
    reason = backend.unavailable()
    if reason:
        pytest.skip(reason)
    app = create_app(backend, ROWS)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
            yield c


def _is_world(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and set(obj) == {"id", "randomNumber"}
        and 1 <= obj["id"] <= ROWS
        and 1 <= obj["randomNumber"] <= 10_000
    )


async def _get(client: httpx.AsyncClient, path: str) -> Any:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


async def test_single_query_returns_the_stored_row(
    client: httpx.AsyncClient, world: ScratchDatabase
) -> None:
    for _ in range(5):
        w = await _get(client, "/db")
        assert _is_world(w)
        assert (await read_world(world.url, [w["id"]])) == {w["id"]: w["randomNumber"]}


@pytest.mark.parametrize(
    ("query", "count"),
    [("?queries=3", 3), ("", 1), ("?queries=0", 1), ("?queries=abc", 1), ("?queries=501", 500)],
)
async def test_multiple_queries_clamped(
    client: httpx.AsyncClient, world: ScratchDatabase, query: str, count: int
) -> None:
    worlds = await _get(client, "/queries" + query)
    assert isinstance(worlds, list) and len(worlds) == count
    assert all(_is_world(w) for w in worlds)
    stored = await read_world(world.url, [w["id"] for w in worlds])
    assert all(stored[w["id"]] == w["randomNumber"] for w in worlds)


async def test_updates_persist_and_concurrent_ones_do_not_deadlock(
    client: httpx.AsyncClient, world: ScratchDatabase
) -> None:
    before = await read_world(world.url, list(range(1, ROWS + 1)))
    worlds = await _get(client, "/updates?queries=5")
    assert len(worlds) == 5 and all(_is_world(w) for w in worlds)
    assert await read_world(world.url, [w["id"] for w in worlds]) == {
        w["id"]: w["randomNumber"] for w in worlds
    }
    # More requests than connections, each locking 20 of 50 rows: overlapping locks.
    async with asyncio.timeout(DEADLINE):
        bursts = await asyncio.gather(
            *(_get(client, "/updates?queries=20") for _ in range(4 * SIZE))
        )
    assert all(len(ws) == 20 for ws in bursts)
    after = await read_world(world.url, list(range(1, ROWS + 1)))
    assert after != before  # 8 x 20 fresh numbers drawn from 10,000 all equal: no
    last = bursts[-1]
    assert all(_is_world(w) for w in last)


def test_query_count_rules() -> None:
    assert [clamp_queries(t) for t in (None, "", "x", "-3", "0", "1", "20", "500", "501")] == [
        1, 1, 1, 1, 1, 1, 20, 500, 500,
    ]  # fmt: skip
    assert update_sql({3: 7, 1: 9}) == (
        "INSERT INTO tfb_world (id, randomNumber) VALUES (1,9),(3,7) "
        "ON DUPLICATE KEY UPDATE randomNumber = VALUES(randomNumber)"
    )


def test_wrk_summary_is_read() -> None:
    summary = {
        "requests": 1000, "duration_us": 2_000_000, "bytes": 1, "connect": 1, "read": 2,
        "write": 0, "status": 4, "timeout": 3, "p50_us": 1500, "p90_us": 9000,
        "p99_us": 25000, "max_us": 31000, "mean_us": 2500.5,
    }  # fmt: skip
    res = parse("Running 2s test\nWRK-JSON " + json.dumps(summary) + "\n")
    assert (res.req_per_s, res.p50_ms, res.p99_ms, res.max_ms) == (500.0, 1.5, 25.0, 31.0)
    assert (res.non_2xx, res.socket_errors, res.timeouts) == (4, 3, 3)
    with pytest.raises(RuntimeError, match="no wrk summary"):
        parse("unable to connect\n")


async def test_the_app_under_uvicorn_in_its_own_process(world: ScratchDatabase) -> None:
    server = AppServer("aiopool", world.url, ROWS, SIZE)
    sampler = SessionSampler(world.url, interval=0.05)
    await sampler.open()
    try:
        async with asyncio.timeout(DEADLINE):
            await server.start()
            sampler.start()
            async with httpx.AsyncClient(base_url=server.base) as c:
                paths = ["/db", "/queries?queries=4", "/updates?queries=3"] * 2 * SIZE
                answers = await asyncio.gather(*(c.get(p) for p in paths))
            samples = await sampler.stop()
            seen = await sampler.count()
    finally:
        code = await server.stop()
        await sampler.close()
        log = server.log()
        server.discard_log()
    assert [r.status_code for r in answers] == [200] * len(paths), log
    assert _is_world(answers[0].json()) and len(answers[1].json()) == 4
    assert samples and max(samples) <= SIZE and seen == SIZE  # min = max = SIZE
    assert code in (0, -15), log  # uvicorn re-raises the SIGTERM it handled

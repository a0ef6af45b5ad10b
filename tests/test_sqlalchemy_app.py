"""examples/fastapi_orm_app.py under real HTTP: FastAPI on uvicorn, ORM on aiopool."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.support.realdb import execute
from tests.test_frameworks import (
    MAX_SIZE,
    STAT_NAMES,
    load_example,
    serve_a_burst,
    uvicorn_server,
)

orm_app = load_example("fastapi_orm_app")


async def table_exists(database_url: str, name: str) -> bool:
    sql = (
        "SELECT COUNT(*) FROM information_schema.TABLES"
        f" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{name}'"
    )
    return bool((await execute(database_url, sql))[0][0][0])


async def test_fastapi_orm_requests_transactions_and_cleanup(database_url: str) -> None:
    app = orm_app.create_app(database_url, min_size=1, max_size=MAX_SIZE)
    table = orm_app.Visit.__tablename__
    async with asyncio.timeout(60):
        async with uvicorn_server(app) as base, httpx.AsyncClient(base_url=base) as http:
            assert await table_exists(database_url, table)
            response = await http.get("/items/7")
            assert response.status_code == 200
            assert response.json()["n"] == 7

            health = (await http.get("/health")).json()
            assert set(health) == STAT_NAMES
            assert health["pool_in_use"] == 0  # returned before the response was sent

            name = f"test-{uuid.uuid4().hex[:12]}"
            assert (await http.post(f"/visits/{name}")).json()["hits"] == 1
            assert (await http.post(f"/visits/{name}")).json()["hits"] == 2
            failed = await http.post(f"/visits/{name}", params={"fail": "true"})
            assert failed.status_code == 409  # the endpoint raised: rolled back
            assert (await http.post(f"/visits/{name}")).json()["hits"] == 3
            assert (await http.get("/visits")).json()[name] == 3
            assert (await http.get("/health")).json()["pool_in_use"] == 0
        assert app.state.pool.closed
    assert not await table_exists(database_url, table), "the example left its table behind"


async def test_fastapi_orm_burst_larger_than_pool(database_url: str) -> None:
    await serve_a_burst(orm_app.create_app(database_url, min_size=1, max_size=MAX_SIZE))


def test_module_level_app_is_not_started() -> None:
    # `uvicorn examples.fastapi_orm_app:app` needs the object; importing it opens nothing.
    assert orm_app.app.title == "aiopool FastAPI ORM example"

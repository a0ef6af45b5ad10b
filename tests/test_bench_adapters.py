"""The bench's MySQL contenders lend the library's own connection, with no wrapper per loan.

A wrapper object built for every loan is work the pooled contenders did and a
bare connection did not: W2 (a pool ÷ a bare connection) then charged the
pool for the harness. Each contender's ``acquire()`` must yield the
connection object of the library it measures, and its ``ops`` must run on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from aiopool._config import parse_url
from bench._adapters import CONTENDER_KEYS, CONTENDERS, Adapter, Endpoint

TEST_TIMEOUT = 60.0
MYSQL_KEYS = ["aiopool", "asyncmy", "aiomysql", "sqlalchemy", "sqla-aiopool", "bare", "connect"]
# The library whose objects a loan must yield, by contender.
LIBRARY = {"aiomysql": "aiomysql", "sqlalchemy": "sqlalchemy", "sqla-aiopool": "sqlalchemy"}


def _server(database_url: str) -> Endpoint:
    kw = parse_url(database_url)
    return Endpoint(
        kw["host"], kw["port"], kw["user"], kw.get("password") or "", kw.get("database") or ""
    )


@asynccontextmanager
async def _opened(key: str, database_url: str) -> AsyncIterator[Adapter]:
    (contender,) = [c for c in CONTENDERS if c.name == CONTENDER_KEYS[key]]
    adapter = contender.factory(2, endpoint=_server(database_url))
    async with asyncio.timeout(TEST_TIMEOUT):
        await adapter.open()
        try:
            yield adapter
        finally:
            await adapter.close()


@pytest.mark.parametrize("key", MYSQL_KEYS)
async def test_a_loan_yields_the_librarys_connection(key: str, database_url: str) -> None:
    async with _opened(key, database_url) as adapter:
        for _ in range(2):
            async with adapter.acquire() as conn:
                module = type(conn).__module__.split(".")[0]
                assert module == LIBRARY.get(key, "asyncmy"), type(conn)
                for op in ("select1", "sleep2ms"):
                    await adapter.ops[op](conn)


@pytest.mark.parametrize("key", MYSQL_KEYS)
async def test_only_the_bare_contender_runs_with_no_loan(key: str, database_url: str) -> None:
    async with _opened(key, database_url) as adapter:
        held = adapter.held()
        if key != "bare":
            assert held is None
        else:
            # One task keeps its connection; the next task takes the next one.
            assert type(held).__module__.split(".")[0] == "asyncmy"
            assert adapter.held() is held
            assert await asyncio.create_task(_held_elsewhere(adapter)) is not held
            await adapter.ops["select1"](held)


async def _held_elsewhere(adapter: Adapter) -> Any:
    return adapter.held()

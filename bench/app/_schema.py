"""The bench's own database and its ``tfb_world`` table (TechEmpower's ``World``)."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiopool._config import parse_url

ROWS = 10_000
DATABASE = "aiopool_bench"
_BATCH = 2_000


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database (empty: none)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}" if database else ""))


def database_of(url: str) -> str:
    """The database a URL names; the bench refuses to run without one."""
    name = str(parse_url(url).get("database", ""))
    if not name:
        raise ValueError("the bench URL must name its own database, e.g. .../aiopool_bench")
    return name


async def connect(url: str) -> Any:
    """A plain asyncmy connection in autocommit mode, for setup and monitoring."""
    import asyncmy

    kw = parse_url(url)
    kw.pop("connect_timeout", None)
    kw["autocommit"] = True
    return await asyncmy.connect(**kw)


async def create_world(url: str, rows: int = ROWS, seed: int | None = None) -> None:
    """(Re)create the database ``url`` names and fill ``tfb_world`` with ``rows`` rows.

    Ids run 1..rows, each ``randomNumber`` is drawn from 1..10,000, as
    TechEmpower's setup scripts do.
    """
    name = database_of(url)
    rng = random.Random(seed)
    conn = await connect(with_database(url, ""))
    try:
        async with conn.cursor() as cur:
            await cur.execute("SET sql_notes = 0")  # no "already exists" or "unknown" notes
            await cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
            await cur.execute(f"USE `{name}`")
            await cur.execute("DROP TABLE IF EXISTS tfb_world")
            await cur.execute(
                "CREATE TABLE tfb_world (id INT UNSIGNED NOT NULL, "
                "randomNumber INT NOT NULL DEFAULT 0, PRIMARY KEY (id)) ENGINE=InnoDB"
            )
            for start in range(1, rows + 1, _BATCH):
                values = ",".join(
                    f"({i},{rng.randint(1, 10_000)})"
                    for i in range(start, min(start + _BATCH, rows + 1))
                )
                await cur.execute(f"INSERT INTO tfb_world (id, randomNumber) VALUES {values}")
    finally:
        await conn.ensure_closed()


async def read_world(url: str, ids: list[int]) -> dict[int, int]:
    """``randomNumber`` of each id, read on a fresh connection (tests check updates with it)."""
    conn = await connect(url)
    try:
        async with conn.cursor() as cur:
            marks = ",".join(["%s"] * len(ids))
            await cur.execute(f"SELECT id, randomNumber FROM tfb_world WHERE id IN ({marks})", ids)
            return {int(i): int(n) for i, n in await cur.fetchall()}
    finally:
        await conn.ensure_closed()


async def count_sessions(monitor: Any, database: str) -> int:
    """Server-side sessions whose current database is ``database`` (the pool's own)."""
    async with monitor.cursor() as cur:
        await cur.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s", (database,)
        )
        row = await cur.fetchone()
    return int(row[0])

"""Helpers for tests against a real server: scratch databases and a watcher."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncmy

from aiopool._config import parse_url


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def connect_kwargs(url: str) -> dict[str, Any]:
    """``asyncmy.connect`` keywords for ``url`` (autocommit on: an observer)."""
    kwargs = parse_url(url)
    kwargs.pop("connect_timeout", None)
    kwargs["autocommit"] = True
    return kwargs


async def execute(url: str, *statements: str) -> list[Any]:
    """Run statements on a fresh connection; returns each statement's rows."""
    conn = await asyncmy.connect(**connect_kwargs(url))
    try:
        results = []
        async with conn.cursor() as cur:
            for sql in statements:
                await cur.execute(sql)
                results.append(await cur.fetchall())
        return results
    finally:
        await conn.ensure_closed()


class ScratchDatabase:
    """A database of the test's own, so it can count its connections by name."""

    def __init__(self, server_url: str) -> None:
        self.name = f"aiopool_t_{uuid.uuid4().hex[:12]}"
        self.server_url = server_url
        self.url = with_database(server_url, self.name)

    async def create(self) -> None:
        await execute(self.server_url, f"CREATE DATABASE `{self.name}`")

    async def drop(self) -> None:
        await execute(self.server_url, f"DROP DATABASE IF EXISTS `{self.name}`")

    async def connections(self, admin: Any) -> list[int]:
        """Server-side ids of the sessions using this database (via ``admin``)."""
        async with admin.cursor() as cur:
            await cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s", (self.name,)
            )
            return [row[0] for row in await cur.fetchall()]

    async def sessions_left(self, admin: Any) -> int:
        """How many sessions still use the database, once closed ones had time to leave."""
        return len(await self.sessions_besides(admin))

    async def sessions_besides(self, admin: Any, *keep: int) -> set[int]:
        """The sessions using the database other than ``keep``, once closed ones had time to leave.

        A closed session leaves PROCESSLIST a moment after the client hung up.
        """
        left: set[int] = set()
        for _ in range(200):
            left = set(await self.connections(admin)) - set(keep)
            if not left:
                break
            await asyncio.sleep(0.01)
        return left


class ConnectionWatcher:
    """Samples the server's count of a scratch database's sessions while a test runs."""

    def __init__(self, scratch: ScratchDatabase) -> None:
        self.scratch = scratch
        self.max_seen = 0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None
        self._admin: Any = None
        # One connection serves one task at a time (asyncmy hangs otherwise).
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> ConnectionWatcher:
        # The watcher's own session uses no database, so it is not counted.
        kwargs = connect_kwargs(self.scratch.server_url)
        kwargs.pop("database", None)
        self._admin = await asyncmy.connect(**kwargs)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            async with self._lock:
                ids = await self.scratch.connections(self._admin)
            self.max_seen = max(self.max_seen, len(ids))
            self.samples += 1
            await asyncio.sleep(0.002)

    async def ids(self) -> list[int]:
        """The server-side ids of the scratch database's sessions now."""
        async with self._lock:
            return await self.scratch.connections(self._admin)

    async def count(self) -> int:
        """The current number of sessions on the scratch database."""
        return len(await self.ids())

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._admin.ensure_closed()

"""Fixtures shared by the test suite: a database to test against, and one to break."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

import pytest

from aiopool.testing import DatabaseNotFound, PrivateMariaDB, find_database
from tests.support.realdb import ScratchDatabase


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """The URL of a server for the whole run (found, or started and stopped at the end).

    No server is a failure, never a skip: a green run must have talked to a database.
    """
    try:
        handle = find_database()
    except DatabaseNotFound as exc:
        pytest.fail(str(exc), pytrace=False)
    with handle:
        yield handle.url


@pytest.fixture
async def scratch(database_url: str) -> AsyncIterator[ScratchDatabase]:
    """A database of the test's own on the shared server, dropped afterwards.

    Its sessions can be counted by name in PROCESSLIST, whatever else uses the server.
    """
    db = ScratchDatabase(database_url)
    await db.create()
    try:
        yield db
    finally:
        await db.drop()


@pytest.fixture
def scratch_sync(database_url: str) -> Iterator[ScratchDatabase]:
    """``scratch`` for synchronous tests (which then run once, not once per event loop)."""
    db = ScratchDatabase(database_url)
    asyncio.run(db.create())
    try:
        yield db
    finally:
        asyncio.run(db.drop())


@pytest.fixture
def private_server() -> Iterator[PrivateMariaDB]:
    """A started private mariadbd that the test may kill, restart or misconfigure."""
    server = PrivateMariaDB()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--loop",
        choices=("asyncio", "uvloop", "both"),
        default="both",
        help="event loop(s) to run every async test under (default: both)",
    )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run each async test under asyncio's own loop and under uvloop."""
    import uvloop

    choice = config.getoption("--loop")
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {}
    if choice in ("asyncio", "both"):
        factories["asyncio"] = asyncio.new_event_loop
    if choice in ("uvloop", "both"):
        factories["uvloop"] = uvloop.new_event_loop
    return factories

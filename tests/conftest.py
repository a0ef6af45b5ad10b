"""Fixtures shared by the test suite: a database to test against, and one to break."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiopool.testing import DatabaseNotFound, PrivateMariaDB, find_database


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
def private_server() -> Iterator[PrivateMariaDB]:
    """A started private mariadbd that the test may kill, restart or misconfigure."""
    server = PrivateMariaDB()
    try:
        server.start()
        yield server
    finally:
        server.stop()

"""Without pytest-asyncio: the sync fixtures work, aiopool_pool says what to install."""

from aiopool import AsyncConnectionPool


def test_database_works(aiopool_database: str) -> None:
    assert "/aiopool_test_" in aiopool_database


def test_pool_needs_pytest_asyncio(aiopool_pool: AsyncConnectionPool) -> None:
    raise AssertionError("not reached: the fixture fails first")

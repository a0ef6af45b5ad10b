"""One pool for the whole session, opened in the session's event loop."""

from collections.abc import AsyncIterator

import pytest_asyncio

from aiopool import AsyncConnectionPool


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def shared_pool(aiopool_database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(aiopool_database_url, min_size=1, max_size=5) as pool:
        yield pool

"""Framework/lifecycle audit: regressions found there."""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings

import pytest

from aiopool import AsyncConnectionPool
from tests.support.fakes import FakeServer
from tests.support.pooltools import check_invariants, fake_pool, settle


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


async def test_dropped_connection_comes_back_under_warnings_as_errors(server: FakeServer) -> None:
    """`-W error` / `filterwarnings = error` (common in test suites): the leak
    warning raises inside the weakref callback; the slot must still be closed
    and its place given back, not lost with its socket left open."""
    async with fake_pool(server, min_size=1, max_size=1) as pool:

        async def forgetful_borrower() -> None:
            await pool.acquire()

        unraisable: list[BaseException | None] = []
        old_hook = sys.unraisablehook
        sys.unraisablehook = lambda u: unraisable.append(u.exc_value)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                await forgetful_borrower()  # reference counting frees the connection here
                gc.collect()
        finally:
            sys.unraisablehook = old_hook
        # The warning still reaches the application (as an unraisable ResourceWarning).
        assert any(isinstance(e, ResourceWarning) for e in unraisable), unraisable
        assert not server.live, "the dropped connection's socket was left open"
        conn = await pool.acquire(timeout=1)  # the place came back: a new connection
        await pool.release(conn)
        await settle(pool)
        check_invariants(pool, server)


def test_unknown_keyword_hint_is_not_the_catch_all_itself() -> None:
    """A misspelt connect keyword must not be answered with "did you mean 'connect_kwargs'"."""
    with pytest.raises(TypeError) as info:
        AsyncConnectionPool("mysql://root@127.0.0.1/test", connect_kwargs={"autocommit": True})
    assert "did you mean 'connect_kwargs'" not in str(info.value), str(info.value)
    with pytest.raises(TypeError) as info:
        AsyncConnectionPool("mysql://root@127.0.0.1/test", sef=1)
    assert "did you mean 'self'" not in str(info.value), str(info.value)


def test_connection_collected_after_the_loop_closed_does_not_start_an_opener() -> None:
    """A pool never closed, its lent connection dropped after asyncio.run() returned:
    the leak callback must not try to open a replacement in the closed loop
    ("RuntimeError: Event loop is closed" and "coroutine 'Opener._open_one' was
    never awaited" at interpreter shutdown)."""
    server = FakeServer()
    holder: dict[str, object] = {}

    async def main() -> None:
        pool = fake_pool(server, min_size=1, max_size=1)
        await pool.open()
        holder["pool"] = pool
        holder["conn"] = await pool.acquire()

    asyncio.run(main())
    pool = holder["pool"]
    assert isinstance(pool, AsyncConnectionPool)
    unraisable: list[BaseException | None] = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(u.exc_value)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del holder["conn"]
            gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert unraisable == [], unraisable
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], caught
    assert any("garbage-collected" in str(w.message) for w in caught), caught
    assert pool._ledger.opening == 0
    assert pool._ledger.size == len(pool._ledger.idle) + len(pool._ledger.lent)

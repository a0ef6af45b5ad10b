"""Cancel a borrower at every await it passes, one loop turn after another.

Each scenario runs against a new pool on the fake server, where every round
trip (connect, ping, statement, commit, rollback) takes one loop turn.  The
borrower is cancelled after ``k`` turns, for every ``k`` from 0 until it
finishes before being cancelled; so each await on its way (waiting in line,
a connection being opened for it, the check, its own statement, the commit
or rollback on the way out, the return) is hit by one of the runs.  After
every run: the books are exact, no connection in an unknown state sits idle,
a request queued behind the cancelled one is still served (its wake-up is
not lost), and the pool goes on lending.  This runs on both builds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asyncmy import errors as mysql_errors

from aiopool import AsyncConnectionPool, NullConnectionPool
from tests.support.fakes import FakeServer
from tests.support.pooltools import (
    cancel_after,
    cancel_sweep,
    check_invariants,
    fake_pool,
    fault_after,
    settle,
    turns,
)


class Boom(Exception):
    """An application error inside the block."""


# What a round trip on a connection the server ended raises.
QUERY_ERRORS = (mysql_errors.OperationalError, mysql_errors.InterfaceError)


async def _block(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.query()  # opens a transaction: committed on the way out


async def _failing_block(pool: AsyncConnectionPool) -> None:
    with pytest.raises(Boom):
        async with pool.connection() as conn:
            await conn.query()
            raise Boom  # rolled back on the way out


async def _acquire_release(pool: AsyncConnectionPool) -> None:
    conn = await pool.acquire()
    try:
        await conn.query()
    finally:
        await pool.release(conn)  # rolls the open transaction back


async def _clean_acquire_release(pool: AsyncConnectionPool) -> None:
    conn = await pool.acquire()
    try:
        await conn.query(begin=False)
    finally:
        await pool.release(conn)  # clean: the fast return


async def _round_trip(conn: Any) -> None:
    """A pool callback that talks to the server (one loop turn)."""
    await conn.query(begin=False)


Borrow = Callable[[AsyncConnectionPool], Awaitable[None]]

SCENARIOS: dict[str, tuple[Borrow, dict[str, Any]]] = {
    "block": (_block, {}),
    "failing-block": (_failing_block, {}),
    "acquire-release": (_acquire_release, {}),
    "clean-acquire-release": (_clean_acquire_release, {}),
    # Every hand-out is checked first.
    "checked": (_block, {"check_after": 0}),
    # Nothing is open yet: a connection is opened for the request.
    "opened-for-it": (_block, {"min_size": 0}),
    # The same, with the pool's callbacks on the way.
    "configured-for-it": (_block, {"min_size": 0, "configure": _round_trip}),
    "check-callback": (_block, {"check_after": 0, "check": _round_trip}),
    "reset-callback": (_clean_acquire_release, {"reset": _round_trip}),
}


async def _after_the_run(pool: AsyncConnectionPool, server: FakeServer) -> None:
    await settle(pool)
    check_invariants(pool, server)
    assert not pool._ledger.waiters
    # The pool goes on lending, and what it lends works.
    async with asyncio.timeout(5):
        async with pool.connection() as conn:
            await conn.query()
    await settle(pool)
    check_invariants(pool, server)


@pytest.mark.parametrize(
    ("scenario", "null_pool"),
    [(name, False) for name in SCENARIOS]
    # A NullConnectionPool closes what is returned: nothing to reset.
    + [(name, True) for name, (_, settings) in SCENARIOS.items() if "reset" not in settings],
)
async def test_cancel_a_borrower_at_every_turn(scenario: str, null_pool: bool) -> None:
    borrow, settings = SCENARIOS[scenario]
    settings = {"min_size": 0 if null_pool else 1, "max_size": 2, **settings}

    async def run_once(k: int) -> bool:
        server = FakeServer()
        if null_pool:
            pool = NullConnectionPool(connection_factory=server.connect, timeout=5.0, **settings)
        else:
            pool = fake_pool(server, **settings)
        async with pool:
            await settle(pool)
            finished = await cancel_after(k, borrow(pool))
            await _after_the_run(pool, server)
        assert not server.live, "close() left a socket open"
        return finished

    finished_after = await cancel_sweep(run_once)
    assert finished_after >= 2, "the sweep should have cancelled the borrower mid-way at least once"


async def test_cancel_a_waiter_at_every_turn_and_the_next_is_still_served() -> None:
    # One connection, held by another task for a few turns; two requests wait
    # in line behind it and the first of them is cancelled.
    async def run_once(k: int) -> bool:
        server = FakeServer()
        async with fake_pool(server, min_size=1, max_size=1) as pool:
            await settle(pool)
            holder_has_it = asyncio.Event()

            async def holder() -> None:
                async with pool.connection() as conn:
                    holder_has_it.set()
                    for _ in range(3):
                        await conn.query()

            holding = asyncio.create_task(holder())
            await holder_has_it.wait()
            first = asyncio.create_task(_block(pool))
            await asyncio.sleep(0)
            second = asyncio.create_task(_block(pool))
            await turns(k)
            finished = first.done()
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
            async with asyncio.timeout(5):  # a lost wake-up would leave it waiting
                await second
            await holding
            await _after_the_run(pool, server)
        return finished

    finished_after = await cancel_sweep(run_once)
    assert finished_after >= 2


@pytest.mark.parametrize("operation", ["check", "drain", "resize"])
async def test_cancel_a_pool_operation_at_every_turn(operation: str) -> None:
    async def run_once(k: int) -> bool:
        server = FakeServer()
        async with fake_pool(server, min_size=3, max_size=4, check=_round_trip) as pool:
            await settle(pool)
            borrower = asyncio.create_task(_block(pool))
            if operation == "check":
                work = pool.check()
            elif operation == "drain":
                work = pool.drain()
            else:
                work = pool.resize(1, 2)
            finished = await cancel_after(k, work)
            await borrower
            if operation == "resize":
                await settle(pool)
                server.max_live = len(server.live)  # what counts from now on is the new limit
            await _after_the_run(pool, server)
        assert not server.live
        return finished

    assert await cancel_sweep(run_once) >= 1


async def test_cancel_open_at_every_turn_closes_the_pool() -> None:
    # open(wait=True) that does not finish closes the pool (as on a timeout).
    async def run_once(k: int) -> bool:
        server = FakeServer()
        pool = fake_pool(server, min_size=3, max_size=4, check_after=0, configure=_round_trip)
        finished = await cancel_after(k, pool.open(wait=True))
        if finished:
            await _after_the_run(pool, server)
        else:
            assert pool.closed
        await pool.close()
        await settle(pool)
        assert not server.live, f"{len(server.live)} connection(s) left open"
        return finished

    assert await cancel_sweep(run_once) >= 2


@pytest.mark.parametrize("while_opening", [False, True], ids=["open", "while-opening"])
async def test_cancel_close_at_every_turn_then_close_again_finishes(while_opening: bool) -> None:
    async def run_once(k: int) -> bool:
        server = FakeServer()
        pool = fake_pool(server, min_size=2, max_size=4, configure=_round_trip)
        await pool.open(wait=True)
        lent = await pool.acquire()
        await lent.query()  # a transaction: its return rolls back
        returning = asyncio.create_task(pool.release(lent))
        if while_opening:
            await pool.resize(4, 4)  # two more connections being opened and configured
            assert pool._ledger.opening == 2
        finished = await cancel_after(k, pool.close(timeout=1.0))
        await returning
        await pool.close()
        assert pool.closed
        assert not server.live, f"{len(server.live)} connection(s) left open"
        return finished

    assert await cancel_sweep(run_once) >= 2


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_server_kills_every_connection_at_every_turn(scenario: str) -> None:
    # Not a cancellation: the server ends every session (KILL, a restart) after
    # k turns. The borrower may fail with the driver's error; the pool must then
    # hand out only live connections.
    borrow, settings = SCENARIOS[scenario]
    settings = {"min_size": 1, "max_size": 2, **settings}

    async def run_once(k: int) -> bool:
        server = FakeServer()
        async with fake_pool(server, **settings) as pool:
            await settle(pool)
            finished = await fault_after(
                k, borrow(pool), lambda _task: server.kill_all(), expected=QUERY_ERRORS
            )
            await _after_the_run(pool, server)
        return finished

    assert await cancel_sweep(run_once) >= 2

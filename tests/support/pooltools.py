"""Helpers shared by the pool tests: invariant checks and waiting for quiet."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiopool import AsyncConnectionPool

from .fakes import FakeServer


def fake_pool(server: FakeServer, **kwargs: Any) -> AsyncConnectionPool:
    """A pool on the fake server, with quick defaults for tests."""
    kwargs.setdefault("min_size", 1)
    kwargs.setdefault("max_size", 4)
    kwargs.setdefault("timeout", 5.0)
    return AsyncConnectionPool(connection_factory=server.connect, **kwargs)


async def settle(pool: AsyncConnectionPool, rounds: int = 200) -> None:
    """Let pool-owned tasks (openers, returns, closes) finish."""
    for _ in range(rounds):
        if not pool._tasks.tasks and not pool._opener.tasks.tasks and not pool._ledger.waiters:
            # One more turn so done-callbacks have run.
            await asyncio.sleep(0)
            if not pool._tasks.tasks and not pool._opener.tasks.tasks:
                return
        await asyncio.sleep(0.005)


def check_invariants(pool: AsyncConnectionPool, server: FakeServer | None = None) -> None:
    """What must hold whenever the pool is quiet (no return or close in flight)."""
    idle = list(pool._ledger.idle)
    lent = list(pool._ledger.lent.values())
    assert pool._ledger.size <= pool.max_size, (pool._ledger.size, pool.max_size)
    assert pool._ledger.size == len(idle) + len(lent) + pool._ledger.opening, (
        pool._ledger.size,
        len(idle),
        len(lent),
        pool._ledger.opening,
    )
    assert len({id(s) for s in idle + lent}) == len(idle) + len(lent), "a slot is in two places"
    for slot in idle:
        assert slot.conn.connected, "a closed connection sits idle"
        assert not slot.conn.get_transaction_status(), "an idle connection is in a transaction"
    stats = pool.get_stats()
    assert stats.pool_size == pool._ledger.size
    assert stats.pool_available == len(idle)
    assert stats.requests_waiting == len(pool._ledger.waiters)
    if server is not None:
        assert len(server.live) == len(idle) + len(lent), (len(server.live), len(idle), len(lent))
        assert server.max_live <= pool.max_size


async def turns(n: int) -> None:
    """Let ``n`` loop turns pass (the fake server's round trips take one each)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def cancel_sweep(run_once: Callable[[int], Awaitable[bool]], limit: int = 200) -> int:
    """Call ``run_once(k)`` for k = 0, 1, ... until it reports a run that finished.

    ``run_once`` cancels what it started after ``k`` turns and returns True
    if it had finished before; the sweep returns that ``k``.
    """
    for k in range(limit):
        if await run_once(k):
            return k
    raise AssertionError(f"still not finished after {limit} loop turns")


async def fault_after(
    k: int,
    work: Awaitable[Any],
    fault: Callable[[asyncio.Future[Any]], object],
    *,
    expected: tuple[type[BaseException], ...] = (),
    allowed: tuple[type[BaseException], ...] = (),
) -> bool:
    """Run ``work`` as a task, call ``fault(task)`` after ``k`` loop turns; True if it had finished.

    The work may then fail with an ``expected`` exception, but only if it had
    not finished before the fault; its own ``allowed`` exceptions are swallowed.
    """
    task = asyncio.ensure_future(work)
    await turns(k)
    finished = task.done()
    fault(task)
    try:
        await task
    except expected:
        assert not finished, "a finished task failed from the fault"
    except allowed:
        pass
    return finished


async def cancel_after(
    k: int, work: Awaitable[Any], *, allowed: tuple[type[BaseException], ...] = ()
) -> bool:
    """``fault_after`` whose fault is cancelling the task."""
    return await fault_after(
        k, work, lambda task: task.cancel(), expected=(asyncio.CancelledError,), allowed=allowed
    )

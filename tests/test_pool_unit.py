"""The pool's bookkeeping, driven through a fake server (fast and deterministic)."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop
from asyncmy import errors as mysql_errors

from aiopool import (
    AsyncConnectionPool,
    PoolClosed,
    PoolError,
    PoolTimeout,
    TooManyRequests,
    WrongEventLoop,
)
from tests.support.fakes import FakeServer
from tests.support.pooltools import check_invariants, fake_pool, settle


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


async def test_open_waits_for_min_size(server: FakeServer) -> None:
    async with fake_pool(server, min_size=3, max_size=5) as pool:
        assert len(pool._ledger.idle) == 3
        assert server.max_opening == 3, "min_size connections are opened concurrently"
        check_invariants(pool, server)
    assert not server.live


async def test_fast_paths_follow_the_gate_through_the_life_cycle(server: FakeServer) -> None:
    class Counting:
        def __init__(self) -> None:
            self.events = 0

        def on_acquire(self, event: object) -> None:
            self.events += 1

        def on_release(self, event: object) -> None:
            self.events += 1

    pool = fake_pool(server, min_size=1)
    assert pool._gate.loop is None
    async with pool:
        assert pool._gate.loop is asyncio.get_running_loop()
        assert pool._gate.fast_return
        listener = Counting()
        pool.add_listener(listener)
        assert pool._gate.lend_hooks and pool._gate.return_hooks
        conn = await pool.acquire()
        await pool.release(conn)
        async with pool.connection():
            pass
        assert listener.events == 4, "both fast paths report once the hooks are on"
        pool.remove_listener(listener)
        assert not pool._gate.lend_hooks and not pool._gate.return_hooks
        conn = await pool.acquire()
        await pool.release(conn)
        assert listener.events == 4, "nothing reports once the hooks are off"
    assert pool._gate.loop is None and not pool._gate.fast_return
    with pytest.raises(PoolClosed):
        await pool.acquire()
    with pytest.raises(PoolClosed):
        async with pool.connection():
            pass


async def test_reuses_the_most_recently_returned_connection(server: FakeServer) -> None:
    async with fake_pool(server, min_size=2) as pool:
        first = await pool.acquire()
        await pool.release(first)
        again = await pool.acquire()
        assert again is first
        await pool.release(again)
        assert server.opened == 2


async def test_never_more_than_max_size_under_load(server: FakeServer) -> None:
    served = 0

    async def worker() -> None:
        nonlocal served
        async with pool.connection() as conn:
            await conn.query(0.001, begin=False)
            served += 1

    async with fake_pool(server, min_size=0, max_size=5, timeout=30) as pool:
        await asyncio.gather(*(worker() for _ in range(500)))
        await settle(pool)
        assert served == 500
        assert server.max_live == 5
        check_invariants(pool, server)


async def test_waiters_are_served_first_come_first_served(server: FakeServer) -> None:
    order: list[int] = []
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        held = await pool.acquire()

        async def waiter(i: int) -> None:
            conn = await pool.acquire()
            order.append(i)
            await pool.release(conn)

        tasks = []
        for i in range(6):
            tasks.append(asyncio.create_task(waiter(i)))
            await asyncio.sleep(0)  # make the arrival order certain
        await pool.release(held)
        await asyncio.gather(*tasks)
        assert order == list(range(6))


async def test_newcomer_does_not_barge_past_waiters(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        held = await pool.acquire()
        waiting = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)
        await pool.release(held)  # handed to the waiter, not left idle
        assert not pool._ledger.idle
        newcomer = asyncio.create_task(pool.acquire(timeout=0.05))
        assert await waiting is held
        with pytest.raises(PoolTimeout):
            await newcomer
        await pool.release(held)


async def test_waiters_share_one_timer_and_time_out_in_deadline_order(
    server: FakeServer,
) -> None:
    async with fake_pool(server, min_size=1, max_size=1, timeout=0.3) as pool:
        held = await pool.acquire()
        loop = asyncio.get_running_loop()
        timers_before = len(getattr(loop, "_scheduled", ()))
        finished: list[str] = []

        async def wait(name: str, timeout: float | None = None) -> None:
            with pytest.raises(PoolTimeout):
                await pool.acquire(timeout)
            finished.append(name)

        tasks = [asyncio.create_task(wait(f"default-{i}")) for i in range(100)]
        await asyncio.sleep(0)
        # A shorter timeout queued behind longer deadlines gets a timer of its
        # own: it must not wait for theirs.
        tasks.append(asyncio.create_task(wait("short", 0.05)))
        await asyncio.sleep(0)
        if hasattr(loop, "_scheduled"):  # asyncio's timer heap (uvloop's is in libuv)
            assert len(loop._scheduled) - timers_before <= 3, "one timer per waiter"
        async with asyncio.timeout(5):
            await asyncio.gather(*tasks)
        assert finished[0] == "short", finished[:3]
        assert sorted(finished[1:]) == sorted(f"default-{i}" for i in range(100))
        assert pool.get_stats().requests_errors == 101
        # A waiter served before its deadline is not timed out afterwards.
        served = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.1)
        await pool.release(held)
        conn = await served
        await asyncio.sleep(0.4)  # past the served waiter's deadline
        assert pool.get_stats().requests_errors == 101
        await pool.release(conn)
        check_invariants(pool, server)


async def test_timeout_says_how_long_and_the_counts(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        held = await pool.acquire()
        with pytest.raises(PoolTimeout) as info:
            await pool.acquire(timeout=0.05)
        assert isinstance(info.value, TimeoutError)
        text = str(info.value)
        assert "after 0.0" in text and "size 1/1" in text and "in use 1" in text
        assert pool.get_stats().requests_errors == 1
        await pool.release(held)
        check_invariants(pool, server)


async def test_timeout_names_the_last_connection_error(server: FakeServer) -> None:
    server.go_down()
    async with fake_pool(server, min_size=0, max_size=2) as pool:
        with pytest.raises(PoolTimeout, match="Connection refused"):
            await pool.acquire(timeout=0.2)
        assert pool.get_stats().connections_errors >= 1


async def test_max_waiting_refuses_at_once(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1, max_waiting=2) as pool:
        held = await pool.acquire()
        waiting = [asyncio.create_task(pool.acquire()) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(TooManyRequests, match="max_waiting=2"):
            await pool.acquire()
        assert pool.get_stats().requests_errors == 1
        await pool.release(held)
        for task in waiting:
            await pool.release(await task)
        check_invariants(pool, server)


async def test_release_twice_or_from_elsewhere_changes_nothing(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1) as pool, fake_pool(server, min_size=1) as other:
        conn = await pool.acquire()
        await pool.release(conn)
        before = (list(pool._ledger.idle), dict(pool._ledger.lent), pool._ledger.size)
        with pytest.raises(PoolError, match="already released"):
            await pool.release(conn)
        foreign = await other.acquire()
        with pytest.raises(PoolError, match="another pool"):
            await pool.release(foreign)
        assert (list(pool._ledger.idle), dict(pool._ledger.lent), pool._ledger.size) == before
        await other.release(foreign)
        check_invariants(pool)


async def test_stale_context_cannot_release_a_later_loan(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        ctx = pool.connection()
        conn = await ctx.__aenter__()
        await pool.release(conn)  # misuse: released behind the context's back
        other = await pool.acquire()  # lent again to someone else
        assert other is conn
        with pytest.raises(PoolError):
            await ctx.__aexit__(None, None, None)
        assert pool._ledger.lent[id(conn)] is not None, "the second borrower keeps its connection"
        await pool.release(other)


async def test_release_rolls_back_an_open_transaction(server: FakeServer) -> None:
    async with fake_pool(server) as pool:
        conn = await pool.acquire()
        await conn.query()
        await pool.release(conn)
        assert conn.rollbacks == 1 and not conn.in_trans
        assert await pool.acquire() is conn, "rolled back connections are reused"
        await pool.release(conn)


async def test_failed_rollback_closes_and_replaces(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1) as pool:
        conn = await pool.acquire()
        await conn.query()
        server.rollback_error = mysql_errors.OperationalError(1205, "Lock wait timeout")
        await pool.release(conn)
        await settle(pool)
        assert not conn.connected
        assert pool.get_stats().returns_bad == 1
        check_invariants(pool, server)
        assert len(pool._ledger.idle) == 1, "min_size refilled"


async def test_broken_connection_is_closed_on_return(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1) as pool:
        conn = await pool.acquire()
        conn.close()  # e.g. cancelled mid-query: asyncmy closed it
        await pool.release(conn)
        await settle(pool)
        assert pool.get_stats().returns_bad == 1
        assert conn not in [s.conn for s in pool._ledger.idle]
        check_invariants(pool, server)


async def test_unread_result_is_never_reused(server: FakeServer) -> None:
    from tests.support.fakes import FakeResult

    async with fake_pool(server, min_size=1) as pool:
        conn = await pool.acquire()
        conn._result = FakeResult(unbuffered_active=True)
        await pool.release(conn)
        await settle(pool)
        assert not conn.connected
        check_invariants(pool, server)


async def test_connection_commits_only_when_a_transaction_is_open(server: FakeServer) -> None:
    async with fake_pool(server) as pool:
        async with pool.connection() as conn:
            await conn.query(begin=False)
        assert conn.commits == 0
        async with pool.connection() as conn:
            await conn.query()
        assert conn.commits == 1 and conn.rollbacks == 0


async def test_connection_rolls_back_when_the_block_raises(server: FakeServer) -> None:
    async with fake_pool(server) as pool:
        with pytest.raises(KeyError):
            async with pool.connection() as conn:
                await conn.query()
                raise KeyError("boom")
        assert conn.rollbacks == 1 and conn.commits == 0
        assert conn.connected, "an ordinary error does not cost the connection"
        check_invariants(pool, server)


async def test_failed_commit_is_raised_and_the_connection_cleaned(server: FakeServer) -> None:
    async with fake_pool(server) as pool:
        server.commit_error = mysql_errors.OperationalError(1213, "Deadlock found")
        with pytest.raises(mysql_errors.OperationalError, match="Deadlock"):
            async with pool.connection() as conn:
                await conn.query()
        server.commit_error = None
        await settle(pool)
        assert conn.rollbacks == 1 and conn.connected
        check_invariants(pool, server)


async def test_connection_error_in_block_closes_the_connection(server: FakeServer) -> None:
    async with fake_pool(server) as pool:
        with pytest.raises(mysql_errors.OperationalError):
            async with pool.connection() as conn:
                raise mysql_errors.OperationalError(2013, "Lost connection")
        await settle(pool)
        assert not conn.connected
        assert pool.get_stats().returns_bad == 1
        check_invariants(pool, server)


# ---------------------------------------------------------------- cancellation


async def test_cancel_while_waiting_leaves_no_trace(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        held = await pool.acquire()
        victim = asyncio.create_task(pool.acquire())
        survivor = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.01)
        victim.cancel()
        await asyncio.sleep(0)
        assert len(pool._ledger.waiters) == 1
        await pool.release(held)
        assert await survivor is held
        assert victim.cancelled()
        await pool.release(held)
        check_invariants(pool, server)


async def test_cancel_at_the_moment_of_hand_off_passes_it_on(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        held = await pool.acquire()
        first = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)
        second = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)
        await pool.release(held)  # first's future now holds the connection...
        first.cancel()  # ...and first is cancelled before it could run
        assert await second is held, "the hand-off went to the next waiter"
        assert first.cancelled()
        await pool.release(held)
        check_invariants(pool, server)


async def test_cancel_while_a_connection_is_opened_for_it(server: FakeServer) -> None:
    # The delays in these tests are long beside the sleeps before each cancel,
    # so that a loaded machine (CI runs suites side by side) cannot finish
    # the work before the cancel lands; settle() waits for it after.
    server.connect_delay = 0.3
    async with fake_pool(server, min_size=0, max_size=2) as pool:
        task = asyncio.create_task(pool.acquire())
        for _ in range(100):
            if pool._ledger.opening:
                break
            await asyncio.sleep(0)
        assert pool._ledger.opening == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle(pool)
        assert len(pool._ledger.idle) == 1, "the connection opened for it is kept, not leaked"
        check_invariants(pool, server)


async def test_cancel_while_using_closes_and_replaces(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        entered = asyncio.Event()

        async def use() -> None:
            async with pool.connection() as conn:
                entered.set()
                await conn.query(10)

        task = asyncio.create_task(use())
        await entered.wait()
        conn = next(iter(pool._ledger.lent.values())).ref()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle(pool)
        assert not conn.connected, "a connection cancelled mid-command is never reused"
        replacement = await pool.acquire(timeout=1)
        assert replacement is not conn
        await pool.release(replacement)
        check_invariants(pool, server)


async def test_cancel_outside_a_query_still_discards(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        entered = asyncio.Event()

        async def use() -> None:
            async with pool.connection() as conn:
                await conn.query()
                entered.set()
                await asyncio.sleep(10)

        task = asyncio.create_task(use())
        await entered.wait()
        conn = next(iter(pool._ledger.lent.values())).ref()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle(pool)
        assert not conn.connected
        assert conn.quit_sent, "a healthy socket is closed politely (COM_QUIT)"
        check_invariants(pool, server)


async def test_cancel_while_returning_still_finishes_the_return(server: FakeServer) -> None:
    server.rollback_delay = 0.3
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        conn = await pool.acquire()
        await conn.query()

        releasing = asyncio.create_task(pool.release(conn))
        await asyncio.sleep(0.01)
        releasing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await releasing
        await settle(pool)
        assert conn.rollbacks == 1 and conn.connected
        assert pool._ledger.idle[0].conn is conn
        check_invariants(pool, server)


async def test_repeated_cancellation_during_return(server: FakeServer) -> None:
    """anyio task groups cancel again and again; the return still completes."""
    server.rollback_delay = 0.3
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        conn = await pool.acquire()
        await conn.query()

        async def release_under_fire() -> None:
            try:
                await pool.release(conn)
            except asyncio.CancelledError:
                await asyncio.sleep(0)
                raise

        task = asyncio.create_task(release_under_fire())
        for _ in range(5):
            await asyncio.sleep(0.002)
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle(pool)
        assert conn.rollbacks == 1
        check_invariants(pool, server)


# ---------------------------------------------------------------- close


async def test_close_wakes_waiters_and_closes_everything(server: FakeServer) -> None:
    pool = fake_pool(server, min_size=2, max_size=2)
    await pool.open()
    a = await pool.acquire()
    b = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)

    async def borrower_returns_later() -> None:
        await asyncio.sleep(0.05)
        await pool.release(a)

    returning = asyncio.create_task(borrower_returns_later())
    await pool.close(timeout=0.2)  # b is never returned: closed after the timeout
    with pytest.raises(PoolClosed):
        await waiter
    await returning
    assert not a.connected and not b.connected
    await pool.release(b)  # the late borrower's release is accepted quietly
    assert not server.live
    assert pool._ledger.size == 0
    await pool.close()  # a second close does nothing
    with pytest.raises(PoolClosed, match="closed"):
        await pool.acquire()
    with pytest.raises(PoolClosed):
        async with pool.connection():
            pass


@pytest.mark.parametrize("how", ["release", "connection"])
async def test_a_return_cut_short_by_close_before_it_starts_is_not_a_cancellation(
    server: FakeServer, how: str
) -> None:
    # Found by test_pool_properties: a connection returned while close(timeout=0)
    # runs, at the turn where close() cancels the return task before its first
    # step (where the task cannot catch it).  The borrower was not cancelled:
    # its release() returns, its block raises its own error.  The sweep over
    # loop turns finds that turn whatever close() awaits on the way.
    for turns in range(8):
        pool = fake_pool(server, min_size=1, max_size=1)
        await pool.open()
        entered = asyncio.Event()
        go = asyncio.Event()

        async def block(
            pool: AsyncConnectionPool, entered: asyncio.Event, go: asyncio.Event
        ) -> None:
            async with pool.connection():
                entered.set()
                await go.wait()
                raise ValueError("the block's own error")

        if how == "release":
            conn = await pool.acquire()
        else:
            borrower = asyncio.create_task(block(pool, entered, go))
            await entered.wait()
        closing = asyncio.create_task(pool.close(timeout=0))
        for _ in range(turns):
            await asyncio.sleep(0)
        if how == "release":
            await pool.release(conn)  # no CancelledError
        else:
            go.set()
            with pytest.raises(ValueError, match="own error"):
                await borrower
        await closing
        assert not server.live and pool._ledger.size == 0, turns


async def test_using_a_pool_that_was_never_opened(server: FakeServer) -> None:
    pool = fake_pool(server)
    with pytest.raises(PoolClosed, match="not open yet"):
        await pool.acquire()


async def test_closed_pool_cannot_be_reopened(server: FakeServer) -> None:
    pool = fake_pool(server)
    await pool.open()
    await pool.close()
    with pytest.raises(PoolClosed, match="create a new pool"):
        await pool.open()


async def test_close_is_polite(server: FakeServer) -> None:
    async with fake_pool(server, min_size=3, max_size=3) as pool:
        conns = [slot.conn for slot in pool._ledger.idle]
    assert all(c.quit_sent for c in conns), "idle connections get COM_QUIT on close"


# ---------------------------------------------------------------- opening and recovery


async def test_open_raises_the_servers_error_for_a_wrong_password(server: FakeServer) -> None:
    server.connect_error = mysql_errors.OperationalError(
        1045, "Access denied for user 'root'@'localhost' (using password: YES)"
    )
    pool = fake_pool(server, min_size=2)
    with pytest.raises(mysql_errors.OperationalError, match="Access denied"):
        await pool.open(wait=True, timeout=30)
    assert pool.closed


async def test_open_timeout_names_the_cause(server: FakeServer) -> None:
    server.go_down()
    pool = fake_pool(server, min_size=1)
    with pytest.raises(PoolTimeout, match=r"could not open 1 connection.*Connection refused"):
        await pool.open(wait=True, timeout=0.3)
    assert pool.closed


async def test_only_one_probe_while_the_server_is_down(server: FakeServer) -> None:
    server.go_down()
    async with fake_pool(server, min_size=0, max_size=10) as pool:
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.1)  # now the pool knows the server is down
        server.max_opening = server.attempts = 0
        # The back-off's first step is about 1 s (+-25 %): 2 s see at least one probe.
        waiters = [asyncio.create_task(pool.acquire(timeout=2.0)) for _ in range(20)]
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, PoolTimeout) for r in results)
        assert server.max_opening == 1, "a down server is probed by one opener at a time"
        assert server.attempts <= 3, f"backed off, not hammered: {server.attempts} attempts"


async def test_recovers_when_the_server_comes_back(server: FakeServer) -> None:
    async with fake_pool(server, min_size=2, max_size=4) as pool:
        server.go_down()
        with pytest.raises(PoolTimeout, match="refused"):
            for _ in range(5):  # the dead idle ones are discarded, then it waits
                async with pool.connection(timeout=0.2) as conn:
                    await conn.query(begin=False)
        server.come_back()
        async with pool.connection(timeout=5) as conn:
            await conn.query(begin=False)
        for _ in range(200):
            if len(pool._ledger.idle) >= 2:
                break
            await asyncio.sleep(0.01)
        await settle(pool)
        assert len(pool._ledger.idle) == 2, "min_size refilled after the outage"
        check_invariants(pool, server)


async def _pool_backing_off(server: FakeServer) -> AsyncConnectionPool:
    """A pool whose server refused two connects: the next try is a second or more away."""
    server.go_down()
    pool = fake_pool(server, min_size=1)
    await pool.open(wait=False)
    backoff = pool._ledger.backoff
    for _ in range(200):
        if backoff.attempts >= 2:
            break
        await asyncio.sleep(0.02)
    assert backoff.attempts == 2
    assert backoff.next_attempt_at - time.monotonic() > 0.5
    return pool


async def test_server_seen_answering_ends_the_back_off_pause(server: FakeServer) -> None:
    # What a ClusterPool's probe does when it connects to a node again.
    pool = await _pool_backing_off(server)
    server.come_back()
    attempts = server.attempts
    pool._server_answers()
    for _ in range(25):  # well within the pause the back-off had set
        if pool._ledger.idle:
            break
        await asyncio.sleep(0.02)
    assert len(pool._ledger.idle) == 1, "reconnected at once, not after the pause"
    assert server.attempts == attempts + 1, "one attempt, not a burst"
    pool._server_answers()  # nothing pending: changes nothing
    assert server.attempts == attempts + 1
    check_invariants(pool, server)
    await pool.close()


async def test_server_seen_answering_while_down_keeps_pacing(server: FakeServer) -> None:
    pool = await _pool_backing_off(server)
    backoff = pool._ledger.backoff
    pool._server_answers()  # wrongly: the server still refuses
    for _ in range(50):
        if backoff.attempts > 2:
            break
        await asyncio.sleep(0.02)
    assert backoff.attempts == 3
    # The early attempt's failure waits the third step (4 s, +-25 %), longer
    # than the second could (at most 2.5 s).
    assert backoff.next_attempt_at - time.monotonic() > 2.5
    check_invariants(pool, server)
    await pool.close()


async def test_reconnect_failed_is_called_once_per_outage(server: FakeServer) -> None:
    calls: list[AsyncConnectionPool] = []

    async def on_failed(p: AsyncConnectionPool) -> None:
        calls.append(p)

    server.go_down()
    pool = fake_pool(server, min_size=1, reconnect_timeout=0.1, reconnect_failed=on_failed)
    await pool.open(wait=False)
    for _ in range(100):
        if calls:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert calls == [pool]
    await pool.close()


async def test_configure_runs_once_per_new_connection(server: FakeServer) -> None:
    seen: list[object] = []

    async def configure(conn: object) -> None:
        seen.append(conn)

    async with fake_pool(server, min_size=2, configure=configure) as pool:
        for _ in range(5):
            async with pool.connection():
                pass
        assert len(seen) == 2 and set(seen) == {s.conn for s in pool._ledger.idle}


async def test_configure_that_leaves_a_transaction_is_refused(server: FakeServer) -> None:
    async def configure(conn: object) -> None:
        await conn.query()  # type: ignore[attr-defined]

    pool = fake_pool(server, min_size=1, configure=configure)
    with pytest.raises(PoolError, match="configure callback left a transaction open"):
        await pool.open(timeout=2)
    assert not server.live


async def test_connect_timeout_bounds_a_silent_server(server: FakeServer) -> None:
    server.connect_delay = 60
    pool = fake_pool(server, min_size=1, connect_timeout=0.1)
    with pytest.raises(PoolTimeout, match=r"connect_timeout=0\.1"):
        await pool.open(timeout=0.5)


# ---------------------------------------------------------------- health and lifetime


async def test_dead_idle_connections_are_skipped_without_a_round_trip(server: FakeServer) -> None:
    async with fake_pool(server, min_size=3, max_size=3) as pool:
        dead = {slot.conn for slot in pool._ledger.idle}
        server.kill_all()
        conn = await pool.acquire(timeout=2)
        assert conn not in dead
        assert all(c.pings == 0 for c in dead)
        assert pool.get_stats().connections_lost == 3
        await pool.release(conn)


async def test_idle_connection_is_pinged_after_check_after(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, check_after=0.05) as pool:
        conn = await pool.acquire()
        await pool.release(conn)
        assert (await pool.acquire()) is conn and conn.pings == 0
        await pool.release(conn)
        await asyncio.sleep(0.08)
        assert (await pool.acquire()) is conn and conn.pings == 1
        await pool.release(conn)


async def test_failed_ping_discards_and_hands_out_another(server: FakeServer) -> None:
    async with fake_pool(server, min_size=2, max_size=2, check_after=0) as pool:
        server.eof_visible = False  # half-open: only a round trip can tell
        server.kill_all()
        conn = await pool.acquire(timeout=2)
        assert conn.connected and not conn.dead
        assert pool.get_stats().connections_lost == 2
        await pool.release(conn)


async def test_check_after_none_never_pings(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, check_after=None) as pool:
        conn = await pool.acquire()
        await pool.release(conn)
        await asyncio.sleep(0.02)
        await pool.release(await pool.acquire())
        assert conn.pings == 0


async def test_check_callback_can_reject(server: FakeServer) -> None:
    rejected: list[object] = []

    async def check(conn: object) -> None:
        if not rejected:
            rejected.append(conn)
            raise RuntimeError("read-only replica")

    async with fake_pool(server, min_size=1, check=check, check_after=0) as pool:
        conn = await pool.acquire(timeout=2)
        assert rejected and conn is not rejected[0]
        await pool.release(conn)


async def test_max_lifetime_retires_connections(server: FakeServer) -> None:
    async with fake_pool(server, min_size=2, max_size=2, max_lifetime=0.1) as pool:
        first = {slot.conn for slot in pool._ledger.idle}
        await asyncio.sleep(0.35)
        await settle(pool)
        now = {slot.conn for slot in pool._ledger.idle}
        assert len(now) == 2 and not (now & first)
        assert all(c.quit_sent for c in first), "retired politely"
        check_invariants(pool, server)


async def test_in_use_connection_retires_on_return_after_max_lifetime(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1, max_lifetime=0.05) as pool:
        conn = await pool.acquire()
        await asyncio.sleep(0.1)
        await pool.release(conn)
        await settle(pool)
        assert not conn.connected
        check_invariants(pool, server)


async def test_max_idle_shrinks_to_min_size(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=4, max_idle=0.1) as pool:
        conns = [await pool.acquire() for _ in range(4)]
        for conn in conns:
            await pool.release(conn)
        assert len(pool._ledger.idle) == 4
        await asyncio.sleep(0.4)
        await settle(pool)
        assert len(pool._ledger.idle) == 1
        check_invariants(pool, server)


async def test_keepalive_pings_idle_connections(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, keepalive=0.05) as pool:
        conn = pool._ledger.idle[0].conn
        await asyncio.sleep(0.3)
        assert conn.pings >= 1
        server.eof_visible = False
        server.kill_all()
        await asyncio.sleep(0.3)
        await settle(pool)
        assert not conn.connected
        assert pool.get_stats().connections_lost >= 1
        assert len(pool._ledger.idle) == 1 and pool._ledger.idle[0].conn is not conn


# ---------------------------------------------------------------- stats


async def test_stats_and_pop_stats(server: FakeServer) -> None:
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        held = await pool.acquire()
        waiting = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.02)
        stats = pool.get_stats()
        assert stats["requests_waiting"] == 1 and stats.pool_in_use == 1
        await pool.release(held)
        await pool.release(await waiting)
        stats = pool.pop_stats()
        assert stats.requests_num == 2 and stats.requests_queued == 1
        assert stats.requests_wait_ms > 0
        assert stats.connections_num == 1
        assert dict(stats)["pool_max"] == 1
        after = pool.get_stats()
        assert after.requests_num == 0 and after.pool_size == 1


# ---------------------------------------------------------------- arguments, loops, fork


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"min_size": -1}, "min_size"),
        ({"max_size": 0}, "max_size"),
        ({"min_size": 5, "max_size": 2}, "min_size"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"max_lifetime": 0}, "max_lifetime"),
        ({"max_idle": -5}, "max_idle"),
        ({"max_waiting": -1}, "max_waiting"),
        ({"check_after": -1}, "check_after"),
        ({"keepalive": 0}, "keepalive"),
        ({"min_size": 1.5}, "min_size"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"port": 70000}, "port"),
        ({"reconnect_timeout": -1}, "reconnect_timeout"),
    ],
)
def test_bad_arguments_are_refused_at_construction(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        AsyncConnectionPool("mysql://root@localhost/test", **kwargs)  # type: ignore[arg-type]


async def test_bad_per_call_timeout(server: FakeServer) -> None:
    async with fake_pool(server, min_size=0) as pool:
        with pytest.raises(ValueError, match="timeout"):
            await pool.acquire(timeout=-1)


def test_using_a_pool_from_another_event_loop_is_a_clear_error() -> None:
    server = FakeServer()
    pool = fake_pool(server, min_size=0)
    with asyncio.Runner() as first:
        first.run(pool.open())
        with asyncio.Runner() as second:
            with pytest.raises(WrongEventLoop, match="belongs to one loop"):
                second.run(pool.acquire())
            with pytest.raises(WrongEventLoop):
                second.run(pool.open())
        first.run(pool.close())


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_an_idle_connection_is_not_lent_to_another_loop_in_the_same_thread(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    # The fast path's "is this the pool's loop?" test: same thread, the pool's
    # loop stopped, another loop running (two asyncio.run() calls in a row).
    server = FakeServer()
    pool = fake_pool(server, min_size=1)
    with asyncio.Runner(loop_factory=loop_factory) as first:
        first.run(pool.open())
        assert pool.get_stats().pool_available == 1
        with asyncio.Runner(loop_factory=loop_factory) as second:
            with pytest.raises(WrongEventLoop, match="belongs to one loop"):
                second.run(pool.acquire())
            with pytest.raises(WrongEventLoop, match="belongs to one loop"):
                second.run(pool.connection().__aenter__())
        assert pool.get_stats().pool_available == 1
        first.run(pool.close())


class _OwnFuturesLoop(asyncio.SelectorEventLoop):
    """A loop with its own create_future, as third-party loops may have."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[asyncio.Future[Any]] = []

    def create_future(self) -> asyncio.Future[Any]:
        future = super().create_future()
        self.made.append(future)
        return future


def test_waiting_requests_get_their_future_from_a_loop_s_own_create_future() -> None:
    # asyncio's own loops get a plain Future built directly (one frame fewer
    # per wait); a loop that overrides create_future must still be asked.
    server = FakeServer()
    pool = fake_pool(server, min_size=1, max_size=1)

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, _OwnFuturesLoop)
        async with pool:
            held = await pool.acquire()
            waiting = asyncio.ensure_future(pool.acquire())
            await asyncio.sleep(0)
            assert len(pool._ledger.waiters) == 1
            from_loop = any(f is pool._ledger.waiters[0] for f in loop.made)
            await pool.release(held)
            await pool.release(await waiting)
        return from_loop

    with asyncio.Runner(loop_factory=_OwnFuturesLoop) as runner:
        assert runner.run(main()), "the waiter's future did not come from loop.create_future()"


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_waiter_s_future_belongs_to_the_pool_s_loop(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def main() -> None:
        pool = fake_pool(FakeServer(), min_size=0)
        async with pool:
            assert pool._gate.plain_futures, "built directly: the loop's own would be a plain one"
            future = pool._gate.new_waiter()
            assert type(future) is asyncio.Future
            assert future.get_loop() is asyncio.get_running_loop()
            future.cancel()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_child_process_after_fork_gets_a_clear_error() -> None:
    server = FakeServer()
    pool = fake_pool(server, min_size=1)
    with asyncio.Runner() as runner:
        runner.run(pool.open())
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                asyncio.run(pool.acquire())
            except WrongEventLoop as exc:
                code = 0 if "after fork()" in str(exc) else 2
            except BaseException:
                code = 3
            os.write(write_end, bytes([code]))
            os._exit(0)
        os.close(write_end)
        result = os.read(read_end, 1)
        os.waitpid(pid, 0)
        os.close(read_end)
        assert result == b"\x00", f"child saw code {result!r}"
        # The parent's pool is untouched by the child.
        assert len(pool._ledger.idle) == 1 and pool._ledger.idle[0].conn.connected
        runner.run(pool.close())
    sys.stdout.flush()


async def test_release_when_the_only_waiter_just_left_keeps_one_idle_entry(
    server: FakeServer,
) -> None:
    """A released connection must not land in the idle stack twice (two borrowers)."""
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        held = await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)  # the waiter is queued
        waiter.cancel()  # its future is cancelled; its task has not run yet
        await pool.release(held)  # no live waiter: the connection goes idle, once
        assert len(pool._ledger.idle) == 1
        with pytest.raises(asyncio.CancelledError):
            await waiter
        a = await pool.acquire()
        b_task = asyncio.create_task(pool.acquire(timeout=0.05))
        with pytest.raises(PoolTimeout):
            await b_task
        await pool.release(a)
        check_invariants(pool, server)


async def test_a_server_hanging_up_during_connect_is_named_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # asyncmy's RuntimeError when the socket is gone before keep-alive is set
    # (seen under uvloop while a crashed server restarts).
    import asyncmy

    from aiopool._opener import default_factory

    async def no_socket(**_: object) -> None:
        raise RuntimeError("Transport does not expose socket instance")

    monkeypatch.setattr(asyncmy, "connect", no_socket)
    with pytest.raises(ConnectionResetError, match="server closed the connection") as info:
        await default_factory(host="127.0.0.1")
    assert isinstance(info.value.__cause__, RuntimeError)

    async def other(**_: object) -> None:
        raise RuntimeError("something else")

    monkeypatch.setattr(asyncmy, "connect", other)
    with pytest.raises(RuntimeError, match="something else"):
        await default_factory(host="127.0.0.1")

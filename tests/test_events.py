"""Listeners: every connect, hand-out, return, time-out and close is told, and a
listener that raises never breaks the pool."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest
from asyncmy import errors as mysql_errors

from aiopool import AsyncConnectionPool, PoolTimeout
from aiopool.events import AcquireEvent, CloseEvent, ConnectEvent, ReleaseEvent, TimeoutEvent
from tests.support.fakes import FakeServer
from tests.support.pooltools import fake_pool, settle


class Recorder:
    """Keeps every event it is told, by kind."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def on_connect(self, event: ConnectEvent) -> None:
        self.events.append(event)

    def on_acquire(self, event: AcquireEvent) -> None:
        self.events.append(event)

    def on_release(self, event: ReleaseEvent) -> None:
        self.events.append(event)

    def on_timeout(self, event: TimeoutEvent) -> None:
        self.events.append(event)

    def on_close(self, event: CloseEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


async def test_connect_acquire_release_and_close_are_told(server: FakeServer) -> None:
    rec = Recorder()
    async with fake_pool(server, min_size=1, max_size=1, name="ev", listeners=[rec]) as pool:
        assert [e.error for e in rec.of(ConnectEvent)] == [None]
        assert rec.of(ConnectEvent)[0].pool_name == "ev"
        async with pool.connection() as conn:
            waiting = asyncio.create_task(pool.acquire())
            await asyncio.sleep(0.03)
            await conn.query(begin=False)
        second = await waiting
        await pool.release(second)
    acquires = rec.of(AcquireEvent)
    assert [a.queued for a in acquires] == [False, True]
    assert acquires[1].wait_s >= 0.02, "the queued request's wait is measured"
    releases = rec.of(ReleaseEvent)
    assert [r.outcome for r in releases] == ["reused", "reused"]
    assert releases[0].held_s >= 0.02
    assert [c.reason for c in rec.of(CloseEvent)] == ["pool_closed"]


async def test_release_outcomes_reset_and_closed(server: FakeServer) -> None:
    rec = Recorder()
    async with fake_pool(server, min_size=1, max_size=1, listeners=[rec]) as pool:
        async with pool.connection() as conn:
            await conn.query()  # opens a transaction: committed on exit, no reset
        conn = await pool.acquire()
        await conn.query()  # a transaction left open: release rolls it back
        await pool.release(conn)
        with pytest.raises(mysql_errors.OperationalError):
            async with pool.connection() as conn:
                server.kill_all()
                await conn.query()
        await settle(pool)
    outcomes = [r.outcome for r in rec.of(ReleaseEvent)]
    assert outcomes == ["reused", "reset", "closed"], outcomes
    assert "returned_bad" in [c.reason for c in rec.of(CloseEvent)]


async def test_timeouts_and_failed_connects_are_told(server: FakeServer) -> None:
    rec = Recorder()
    server.connect_error = mysql_errors.OperationalError(2003, "Can't connect: refused")
    pool = AsyncConnectionPool(
        connection_factory=server.connect, min_size=0, max_size=1, listeners=[rec]
    )
    await pool.open()
    try:
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.05)
    finally:
        await pool.close()
    (timeout,) = rec.of(TimeoutEvent)
    assert timeout.wait_s >= 0.04  # uvloop's timers may fire a little early
    failed = rec.of(ConnectEvent)
    assert failed and all(isinstance(e.error, mysql_errors.OperationalError) for e in failed)


async def test_close_reasons(server: FakeServer) -> None:
    rec = Recorder()
    async with fake_pool(server, min_size=2, max_size=3, listeners=[rec]) as pool:
        await pool.drain()
        await settle(pool)
        await pool.resize(0, 1)
        await settle(pool)

        async def forgetful_borrower() -> None:
            await pool.acquire()  # dropped without being returned

        with pytest.warns(ResourceWarning):
            await forgetful_borrower()
            gc.collect()
        await settle(pool)
    reasons = {c.reason for c in rec.of(CloseEvent)}
    assert {"drain", "resize", "returned_bad"} <= reasons, reasons


async def test_a_raising_listener_is_logged_once_and_harms_nothing(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def on_acquire(self, event: AcquireEvent) -> None:
            raise RuntimeError("listener bug")

    rec = Recorder()
    async with fake_pool(server, listeners=[Broken(), rec]) as pool:
        with caplog.at_level(logging.ERROR, logger="aiopool"):
            for _ in range(5):
                async with pool.connection():
                    pass
    logged = [r for r in caplog.records if "listener" in r.getMessage()]
    assert len(logged) == 1, "once per listener and event kind, not once per event"
    assert len(rec.of(AcquireEvent)) == 5, "the listener after the broken one is still told"


async def test_add_and_remove_listener(server: FakeServer) -> None:
    rec = Recorder()
    async with fake_pool(server) as pool:
        pool.add_listener(rec)
        async with pool.connection():
            pass
        pool.remove_listener(rec)
        async with pool.connection():
            pass
        with pytest.raises(ValueError, match="not a listener"):
            pool.remove_listener(rec)
        with pytest.raises(TypeError, match="on_connect"):
            pool.add_listener(object())
    assert len(rec.of(AcquireEvent)) == 1

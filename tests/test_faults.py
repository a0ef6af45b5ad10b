"""The pool under faults: idle timeouts, a crashed server, a broken network, a soak.

Destructive tests use a private ``mariadbd`` (``private_server``) or the
fault-injecting proxy in front of the shared server; nothing here stops or
reconfigures the shared server.  The machine is small and noisy: timings are
only asserted as lower bounds that follow from an injected fault, or as
generous "did not hang" bounds enforced with ``asyncio.timeout``.

``AIOPOOL_SOAK_SECONDS`` (default 20) sets how long the soak runs.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncmy
import pytest
from asyncmy import errors as mysql_errors
from asyncmy.cursors import SSCursor

from aiopool import AsyncConnectionPool, PoolTimeout
from aiopool.testing import PrivateMariaDB
from tests.support.faultproxy import FaultProxy
from tests.support.pooltools import check_invariants, settle
from tests.support.realdb import ScratchDatabase, connect_kwargs, execute

SOAK_SECONDS = float(os.environ.get("AIOPOOL_SOAK_SECONDS", "20"))

# "Server has gone away" and "lost connection during query": what a call in
# flight sees when the server dies or the link is reset.
LOST = frozenset({2006, 2013})
# The cause a PoolTimeout must name while the server refuses connections.
REFUSED = re.compile(r"Can.t connect|refused", re.IGNORECASE)
DYING = re.compile(
    r"opening connections is failing: .*(Lost connection|server closed the connection)",
    re.IGNORECASE,
)


@pytest.fixture
async def private_scratch(private_server: PrivateMariaDB) -> ScratchDatabase:
    # Dropped with the private server's datadir.
    db = ScratchDatabase(private_server.url)
    await db.create()
    return db


async def scalar(conn: Any, sql: str) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
        return row[0]


async def select_one(pool: AsyncConnectionPool, timeout: float = 5.0) -> None:
    async with pool.connection(timeout=timeout) as conn:
        assert await scalar(conn, "SELECT 1") == 1


async def sessions(db: ScratchDatabase) -> int:
    """The server's count of sessions using ``db`` (the observer uses another database)."""
    (rows,) = await execute(
        db.server_url,
        f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{db.name}'",
    )
    return int(rows[0][0])


async def session_ids(db: ScratchDatabase) -> list[int]:
    """The server's ids of the sessions using ``db``."""
    (rows,) = await execute(
        db.server_url, f"SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{db.name}'"
    )
    return [int(row[0]) for row in rows]


async def eventually(predicate: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail (not hang) after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while not await predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not within {within:g} s: {what}")


async def server_sees_pool(db: ScratchDatabase, pool: AsyncConnectionPool, within: float) -> None:
    """Once quiet, the server's sessions on ``db`` are exactly the pool's connections."""
    last: list[tuple[int, int]] = []

    async def same() -> bool:
        await settle(pool)
        seen, held = await sessions(db), pool.get_stats().pool_size
        last[:] = [(seen, held)]
        return seen == held

    await eventually(same, within, f"server sessions == pool_size (last {last})")


def errno(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def host_port(url: str) -> tuple[str, int]:
    kwargs = connect_kwargs(url)
    return kwargs["host"], int(kwargs["port"])


# --------------------------------------------------------------------------- idle timeout


async def test_server_side_idle_timeout_is_invisible_to_users(
    private_server: PrivateMariaDB, private_scratch: ScratchDatabase
) -> None:
    # The pool's connections inherit the global; no ping, no keepalive: only the
    # free local checks (EOF already seen on the socket), at hand-out and in the
    # maintenance round, can save the hand-out.
    await execute(
        private_server.url, "SET GLOBAL wait_timeout = 2", "SET GLOBAL interactive_timeout = 2"
    )
    async with asyncio.timeout(30):
        async with AsyncConnectionPool(
            private_scratch.url, min_size=3, max_size=3, check_after=None, keepalive=None
        ) as pool:
            async with pool.connection() as conn:
                assert await scalar(conn, "SELECT @@session.wait_timeout") == 2
            assert await sessions(private_scratch) == 3
            first = set(await session_ids(private_scratch))

            async def server_closed_them() -> bool:
                # The pool replaces dead idle sessions at once, so the count
                # need not reach 0: wait for the original ones to be gone.
                return not first & set(await session_ids(private_scratch))

            await asyncio.sleep(3)
            await eventually(server_closed_them, 10, "the server ends idle sessions")
            await asyncio.sleep(0.1)  # let the loop read the FINs

            # Three at once, then three in a row: nobody sees an error.
            await asyncio.gather(*(select_one(pool) for _ in range(3)))
            for _ in range(3):
                await select_one(pool)
            stats = pool.get_stats()
            # The maintenance task also drops idle connections it sees dead (and
            # their replacements die again after 2 s idle), so at least 3.
            assert stats.connections_lost >= 3, stats
            assert stats.requests_errors == 0 and stats.returns_bad == 0, stats
            await server_sees_pool(private_scratch, pool, 10)


# --------------------------------------------------------------------------- crash and restart


@dataclass
class Call:
    start: float
    end: float
    exc: BaseException | None


class Load:
    """``tasks`` tasks looping ``SELECT 1`` through the pool, recording every call."""

    def __init__(self, pool: AsyncConnectionPool, tasks: int, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self.calls: list[Call] = []
        self.hung: list[float] = []
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(tasks)]

    async def _run(self) -> None:
        now = self._loop.time
        while not self._stop.is_set():
            start = now()
            exc: BaseException | None = None
            try:
                # The pool's timeout must fire long before this one.
                async with asyncio.timeout(self.timeout + 9):
                    await select_one(self.pool, self.timeout)
            except PoolTimeout as e:
                exc = e
            except TimeoutError as e:
                self.hung.append(start)
                exc = e
            except Exception as e:
                exc = e
            self.calls.append(Call(start, now(), exc))
            await asyncio.sleep(random.uniform(0.0, 0.02) if exc is None else 0.05)

    def failures(self, since: float = 0.0) -> list[Call]:
        return [c for c in self.calls if c.exc is not None and c.start >= since]

    async def stop(self) -> None:
        self._stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*self._tasks)


async def test_server_crash_and_restart_under_load(
    private_server: PrivateMariaDB, private_scratch: ScratchDatabase
) -> None:
    loop = asyncio.get_running_loop()
    pool = AsyncConnectionPool(
        private_scratch.url, min_size=2, max_size=10, max_idle=1.0, connect_timeout=2
    )
    async with asyncio.timeout(90):
        await pool.open()
        load = Load(pool, tasks=100, timeout=1.0)
        try:
            await asyncio.sleep(1.5)
            killed = loop.time()
            await asyncio.to_thread(private_server.kill)
            await asyncio.sleep(3.0)
            restarting = loop.time()
            await asyncio.to_thread(private_server.restart)
            up = loop.time()

            # Recovered: for a whole second, every call succeeded (and there were some).
            async def recovered() -> bool:
                recent = [c for c in load.calls if c.start >= loop.time() - 1.0]
                return (
                    loop.time() - up > 1.0 and len(recent) > 100 and not any(c.exc for c in recent)
                )

            await eventually(recovered, 15, "all calls succeed again after the restart")
            back = loop.time() - 1.0
        finally:
            await load.stop()

        assert not load.hung, f"{len(load.hung)} calls outlived their timeout by 9 s"
        outage = load.failures()
        assert outage, "the outage went unnoticed"
        assert all(c.end >= killed for c in outage), "a call failed before the crash"
        assert not load.failures(back), load.failures(back)[:3]
        kinds = Counter(
            "PoolTimeout"
            if isinstance(c.exc, PoolTimeout)
            else f"{type(c.exc).__name__}({errno(c.exc) if c.exc else ''})"
            for c in outage
        )
        for call in outage:
            exc = call.exc
            if isinstance(exc, PoolTimeout):
                # The pool's own timeout, not much later ("did not hang" bound).
                assert call.end - call.start < 1.0 + 5.0, (call, exc)
                if call.end < restarting:
                    # It names the last connect error: refused, or (in the
                    # back-off's first second) the reset of the dying server.
                    assert REFUSED.search(str(exc)) or DYING.search(str(exc)), str(exc)
            else:
                assert isinstance(exc, mysql_errors.OperationalError), (kinds, repr(exc))
                assert errno(exc) in LOST, (kinds, repr(exc))
        stats = pool.get_stats()
        print(
            f"\ncrash/restart: {len(load.calls)} calls, failures {dict(kinds)}, "
            f"back {back - up:+.2f} s after restart (restart took {up - restarting:.2f} s); "
            f"stats {stats}"
        )

        async def shrunk() -> bool:
            return pool.get_stats().pool_size == pool.min_size

        await eventually(shrunk, 15, "the pool shrinks back to min_size")
        await server_sees_pool(private_scratch, pool, 10)
        check_invariants(pool)
        await pool.close()

        async def none_left() -> bool:
            return await sessions(private_scratch) == 0

        await eventually(none_left, 10, "no session left after close()")


# --------------------------------------------------------------------------- network faults


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(*host_port(database_url)) as p:
        yield p


async def test_blackholed_network_fails_by_timeouts_and_close_does_not_hang(
    proxy: FaultProxy, scratch: ScratchDatabase
) -> None:
    loop = asyncio.get_running_loop()
    url = proxy.url_for(scratch.url)
    pool = AsyncConnectionPool(url, min_size=3, max_size=4, connect_timeout=1, check_after=0)
    async with asyncio.timeout(60):
        await pool.open()
        lent = asyncio.Event()
        go = asyncio.Event()

        async def query_with_own_timeout() -> None:
            async with asyncio.timeout(1.5):
                async with pool.connection(timeout=2) as conn:
                    lent.set()
                    await go.wait()
                    await scalar(conn, "SELECT 1")

        stuck_lent = asyncio.Event()

        async def query_without_timeout() -> None:
            async with pool.connection(timeout=2) as conn:
                stuck_lent.set()
                await go.wait()
                await scalar(conn, "SELECT 1")

        own = asyncio.create_task(query_with_own_timeout())
        stuck = asyncio.create_task(query_without_timeout())
        await lent.wait()
        await stuck_lent.wait()
        assert pool.get_stats().pool_available == 1

        proxy.blackhole()
        start = loop.time()
        go.set()
        with pytest.raises(TimeoutError):
            await own
        assert loop.time() - start >= 1.4
        assert not stuck.done()

        # The idle one fails its ping, new ones time out connecting: PoolTimeout
        # at the caller's timeout, naming the cause.
        start = loop.time()
        results = await asyncio.gather(
            *(select_one(pool, timeout=2) for _ in range(3)), return_exceptions=True
        )
        waited = loop.time() - start
        assert all(isinstance(r, PoolTimeout) for r in results), results
        assert waited >= 1.9
        message = str(results[0])
        assert "connect_timeout=1" in message, message
        stats = pool.get_stats()
        assert stats.connections_lost >= 1, stats
        assert stats.pool_size <= pool.max_size

        start = loop.time()
        await pool.close(timeout=1)
        closing = loop.time() - start
        assert closing >= 0.9  # it waited for the stuck borrower, then cut it off
        stuck_error = await asyncio.gather(stuck, return_exceptions=True)
        print(
            f"\nblackhole: close() took {closing:.2f} s; stuck borrower got {stuck_error[0]!r}; "
            f"PoolTimeout after {waited:.2f} s: {message}"
        )
        assert isinstance(stuck_error[0], mysql_errors.OperationalError), stuck_error
        assert errno(stuck_error[0]) in LOST

        proxy.heal()
        async with AsyncConnectionPool(url, min_size=2, max_size=4, connect_timeout=1) as fresh:
            await asyncio.gather(*(select_one(fresh) for _ in range(8)))
            await server_sees_pool(scratch, fresh, 10)
        assert fresh.get_stats().requests_errors == 0

        async def none_left() -> bool:
            return await sessions(scratch) == 0

        await eventually(none_left, 10, "no session left once the proxy has healed")


@pytest.mark.parametrize(
    ("check_after", "pause"),
    [(1.0, 0.1), (0, 0.0)],
    ids=["local-check-after-pause", "ping-at-once"],
)
async def test_reset_idle_connections_are_replaced_silently(
    proxy: FaultProxy, scratch: ScratchDatabase, check_after: float, pause: float
) -> None:
    # With a pause the loop has read the RSTs and the free local check sees
    # them; without one (the RST not read yet), only the ping can tell.
    url = proxy.url_for(scratch.url)
    async with asyncio.timeout(30):
        async with AsyncConnectionPool(
            url, min_size=3, max_size=3, connect_timeout=2, check_after=check_after
        ) as pool:
            assert await sessions(scratch) == 3
            assert proxy.reset_all() == 3
            await asyncio.sleep(pause)
            await asyncio.gather(*(select_one(pool) for _ in range(3)))
            for _ in range(3):
                await select_one(pool)
            stats = pool.get_stats()
            assert stats.connections_lost == 3, stats
            assert stats.requests_errors == 0 and stats.returns_bad == 0, stats
            await server_sees_pool(scratch, pool, 10)


@pytest.mark.parametrize("hang_up", ["server closes (FIN)", "link reset (RST)"])
async def test_an_idle_connection_hung_up_on_is_seen_gone_without_a_round_trip(
    proxy: FaultProxy, scratch: ScratchDatabase, hang_up: str
) -> None:
    # The hand-out's local check reads only the transport's closing flag
    # (_slot._SelectorSocketState): asyncmy's protocol has the transport
    # closed at the end of the stream, and a reset closes it when read.
    url = proxy.url_for(scratch.url)
    async with asyncio.timeout(30):
        async with AsyncConnectionPool(
            url, min_size=2, max_size=2, connect_timeout=2, check_after=60
        ) as pool:
            slots = list(pool._ledger.idle)
            assert len(slots) == 2 and not any(slot.stream.gone() for slot in slots)
            if hang_up.endswith("(RST)"):
                assert proxy.reset_all() == 2
            else:
                for session in await session_ids(scratch):
                    await execute(scratch.server_url, f"KILL CONNECTION {session}")

            async def all_seen_gone() -> bool:
                # The slots seen before, wherever maintenance has put them since.
                return all(slot.stream.gone() for slot in slots)

            await eventually(all_seen_gone, 5, "both idle connections seen gone, locally")
            await select_one(pool)  # replaced, not lent dead
            assert pool.get_stats().requests_errors == 0


async def test_maintenance_replaces_idle_connections_already_seen_dead(
    proxy: FaultProxy, scratch: ScratchDatabase
) -> None:
    # README: the background task "keeps min_size connections ready".  After the
    # RSTs the loop knows (conn._stream_broken) without a round trip.
    url = proxy.url_for(scratch.url)
    async with asyncio.timeout(30):
        async with AsyncConnectionPool(url, min_size=3, max_size=3, connect_timeout=2) as pool:
            assert proxy.reset_all() == 3

            async def ready_again() -> bool:
                stats = pool.get_stats()
                return stats.pool_available == 3 and await sessions(scratch) == 3

            # Maintenance runs every second here; no request is made meanwhile.
            await eventually(ready_again, 5, "3 live idle connections again, without a request")


async def test_refused_connections_time_out_with_the_cause_then_refill_alone(
    proxy: FaultProxy, scratch: ScratchDatabase
) -> None:
    url = proxy.url_for(scratch.url)
    async with asyncio.timeout(40):
        async with AsyncConnectionPool(url, min_size=2, max_size=4, connect_timeout=1) as pool:
            proxy.refuse_new()
            proxy.reset_all()
            await asyncio.sleep(0.1)
            with pytest.raises(PoolTimeout) as info:
                await select_one(pool, timeout=1)
            assert REFUSED.search(str(info.value)), str(info.value)
            stats = pool.get_stats()
            assert stats.pool_size - stats.pool_opening < pool.min_size, stats
            assert stats.connections_errors >= 1, stats

            # No request, no restart: the pool fills up to min_size by itself.
            proxy.heal()

            async def refilled() -> bool:
                return pool.get_stats().pool_available == pool.min_size

            await eventually(refilled, 15, "the pool refills to min_size after heal()")
            await select_one(pool, timeout=1)
            await server_sees_pool(scratch, pool, 10)


async def test_latency_beyond_connect_timeout_then_tolerable(
    proxy: FaultProxy, scratch: ScratchDatabase
) -> None:
    # The login takes three trips through the proxy: 3 x 0.3 s > 0.5 s.
    url = proxy.url_for(scratch.url)
    async with asyncio.timeout(30):
        proxy.set_latency(0.3)
        slow = AsyncConnectionPool(url, min_size=1, max_size=2, connect_timeout=0.5)
        with pytest.raises(PoolTimeout, match=r"connect_timeout=0\.5"):
            await slow.open(timeout=2)
        assert slow.closed
        proxy.set_latency(0.05)
        async with AsyncConnectionPool(
            url, min_size=1, max_size=2, connect_timeout=0.5, check_after=0
        ) as pool:
            await asyncio.gather(*(select_one(pool) for _ in range(4)))
            stats = pool.get_stats()
            assert stats.connections_lost == 0 and stats.requests_errors == 0, stats


# --------------------------------------------------------------------------- soak


class Boom(Exception):
    """Raised on purpose inside a block: the pool must roll back."""


# What a user may see while an admin kills sessions and queries: lost or killed
# connections, interrupted queries.  1317 query interrupted, 1927 connection
# killed, 1053 server shutdown in progress (what a killed session's query gets).
SOAK_ERRNOS = LOST | {1317, 1927, 1053}


@pytest.mark.slow
async def test_soak_mixed_load_with_kills(scratch: ScratchDatabase) -> None:
    await execute(
        scratch.url,
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, kind VARCHAR(16)) ENGINE=InnoDB",
    )
    pool = AsyncConnectionPool(scratch.url, min_size=2, max_size=8, timeout=20, max_idle=2)
    outcomes: Counter[str] = Counter()
    unexpected: list[BaseException] = []
    stop = asyncio.Event()

    async def plain() -> None:
        async with pool.connection() as conn:
            await scalar(conn, f"SELECT SLEEP({random.uniform(0, 0.02):.3f})")

    async def rolled_back() -> None:
        async with pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.execute("INSERT INTO t (kind) VALUES ('rolled_back')")
            raise Boom

    async def committed() -> None:
        async with pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.execute("INSERT INTO t (kind) VALUES ('committed')")

    async def unread_rows() -> None:
        async with pool.connection() as conn:
            async with conn.cursor(SSCursor) as cur:
                await cur.execute("SELECT seq FROM seq_1_to_5000")
                await cur.fetchone()

    async def timed_out_inside() -> None:
        async with pool.connection() as conn:
            # Interrupted mid-query: the block fails, the connection must not come back.
            await asyncio.wait_for(scalar(conn, "SELECT SLEEP(0.05)"), random.uniform(0, 0.04))

    async def raw() -> None:
        conn = await pool.acquire()
        try:
            await scalar(conn, "SELECT 1")
        finally:
            await pool.release(conn)

    actions = [plain, plain, plain, rolled_back, committed, unread_rows, timed_out_inside, raw]

    async def user() -> None:
        while not stop.is_set():
            action = random.choice(actions)
            try:
                if random.random() < 0.25:
                    await asyncio.wait_for(action(), random.uniform(0.0, 0.03))
                else:
                    await action()
                outcomes["ok"] += 1
            except Boom:
                outcomes["boom"] += 1
            except TimeoutError as exc:
                if isinstance(exc, PoolTimeout):
                    unexpected.append(exc)
                outcomes["cancelled"] += 1
            except mysql_errors.MySQLError as exc:
                if errno(exc) in SOAK_ERRNOS:
                    outcomes[f"errno {errno(exc)}"] += 1
                else:
                    unexpected.append(exc)
            except Exception as exc:
                unexpected.append(exc)
            await asyncio.sleep(random.uniform(0, 0.01))

    async def admin() -> None:
        kwargs = connect_kwargs(scratch.server_url)  # its own session is not in the scratch db
        conn = await asyncmy.connect(**kwargs)
        try:
            while not stop.is_set():
                await asyncio.sleep(random.uniform(0.1, 0.4))
                kill_query = random.random() < 0.5
                async with conn.cursor() as cur:
                    busy = " AND COMMAND = 'Query'" if kill_query else ""
                    await cur.execute(
                        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s" + busy,
                        (scratch.name,),
                    )
                    ids = [row[0] for row in await cur.fetchall()]
                    if not ids:
                        continue
                    victim = random.choice(ids)
                    try:
                        await cur.execute(f"KILL {'QUERY ' if kill_query else ''}{victim}")
                        outcomes["killed query" if kill_query else "killed"] += 1
                    except mysql_errors.OperationalError as exc:
                        if errno(exc) != 1094:  # already gone
                            raise
        finally:
            await conn.ensure_closed()

    async with asyncio.timeout(SOAK_SECONDS + 60):
        await pool.open()
        users = [asyncio.create_task(user()) for _ in range(100)]
        killer = asyncio.create_task(admin())
        await asyncio.sleep(SOAK_SECONDS)
        stop.set()
        await asyncio.gather(*users, killer)

        await settle(pool)
        check_invariants(pool)
        stats = pool.get_stats()
        print(f"\nsoak {SOAK_SECONDS:g} s: {dict(outcomes)}; {stats}")
        assert not unexpected, unexpected[:5]
        assert outcomes["ok"] > 100 and outcomes["killed"] > 0, outcomes
        assert stats.pool_size <= pool.max_size and stats.requests_waiting == 0, stats
        assert stats.pool_in_use == 0, stats
        (rows,) = await execute(scratch.url, "SELECT COUNT(*) FROM t WHERE kind = 'rolled_back'")
        assert rows[0][0] == 0, "a block that raised was committed"
        await server_sees_pool(scratch, pool, 15)
        await pool.close()

        async def none_left() -> bool:
            return await sessions(scratch) == 0

        await eventually(none_left, 10, "no session left after close()")

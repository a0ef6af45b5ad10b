"""Resets and cancellations at every turn of the pool's background and administrative work.

Against the real server, through the fault proxy.  The maintenance round
(keep-alive pings, retiring past ``max_lifetime``, closing surplus idle
connections, replacing dead ones and refilling to ``min_size``),
``check()``, ``drain()``, ``resize()`` and ``open()`` each run while every
TCP connection of the pool is reset (RST) after ``k`` loop turns, for every
``k`` until the job finished before the fault.  The maintenance round is
also cancelled, and the pool closed, at every turn of a round and of each
operation.  (The sweeps use a fast back-off so that hundreds of runs fit;
the connect-storm tests at the end use the default one.)

After every run: the work raised nothing (or, when the pool was closed under
it, ``PoolClosed`` at once); ``idle + in use + opening`` never exceeded
``size <= max_size`` at any turn; the books are exact; the pool refills to
``min_size`` by itself; every connection it lends works; it did not open
connections faster than its back-off allows; and after ``close()`` the
server has no session of it left.  Each sweep asserts that its fault landed
while the job was under way in at least two runs.

Also: ``close(timeout)`` with a ping, a check or a return hung on a
partitioned link ends within about its timeout, with every socket closed,
and nobody awaiting that work gets a ``CancelledError`` it did not ask for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

import asyncmy
import pytest

from aiopool import AsyncConnectionPool, PoolClosed
from aiopool._backoff import Backoff
from tests.support.faultproxy import FaultProxy
from tests.support.pooltools import cancel_sweep, check_invariants, fault_after, settle, turns
from tests.support.realdb import ScratchDatabase, connect_kwargs

# ---------------------------------------------------------------------------- helpers


@pytest.fixture
async def admin(scratch: ScratchDatabase) -> AsyncIterator[Any]:
    """A session outside the scratch database (so not counted)."""
    kwargs = connect_kwargs(scratch.server_url)
    kwargs.pop("database", None)
    conn = await asyncmy.connect(**kwargs)
    yield conn
    await conn.ensure_closed()


@pytest.fixture
async def proxy(scratch: ScratchDatabase) -> AsyncIterator[FaultProxy]:
    server = connect_kwargs(scratch.server_url)
    async with FaultProxy(server["host"], server["port"]) as p:
        yield p


class BooksWatch:
    """Checks at every loop turn that ``idle + in use + opening <= size <= max_size``."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.violations: list[tuple[int, int, int, int, int]] = []
        self.samples = 0
        # Shrinking leaves the slots being closed counted in size for a while.
        self.largest_max = pool._ledger.limits.max_size
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        ledger = self.pool._ledger
        counted = (len(ledger.idle), len(ledger.lent), ledger.opening, ledger.size)
        self.samples += 1
        max_size = ledger.limits.max_size
        self.largest_max = max(self.largest_max, max_size)
        if sum(counted[:3]) > min(ledger.size, max_size) or ledger.size > self.largest_max:
            self.violations.append((*counted, ledger.limits.max_size))

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0)

    async def __aenter__(self) -> BooksWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.sample()
        assert not self.violations, f"idle, lent, opening, size, max_size: {self.violations[:5]}"


def _busy(pool: AsyncConnectionPool) -> bool:
    """Pool work in flight: pings, closes, returns, openers."""
    return bool(pool._tasks.tasks or pool._opener.tasks.tasks or pool._ledger.opening)


async def _until_quiet(pool: AsyncConnectionPool) -> None:
    while _busy(pool):
        await asyncio.sleep(0)


async def _stop_maintenance(pool: AsyncConnectionPool) -> None:
    task = pool._maintenance_task
    assert task is not None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _restart_maintenance(pool: AsyncConnectionPool) -> None:
    pool._maintenance_task = asyncio.get_running_loop().create_task(pool._maintenance.run())


async def _select_one(conn: Any) -> None:
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        assert await cur.fetchone() == (1,)


async def _refilled(pool: AsyncConnectionPool, within: float = 10.0) -> None:
    """By itself (no request), ``min_size`` live idle connections again."""
    ledger = pool._ledger
    try:
        async with asyncio.timeout(within):
            while not (
                not _busy(pool)
                and len(ledger.idle) >= ledger.limits.min_size
                and all(
                    not s.stream.gone() and s.conn is not None and s.conn.connected
                    for s in ledger.idle
                )
            ):
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(
            f"the pool did not refill to min_size={ledger.limits.min_size} by itself: {pool!r}, "
            f"opening={ledger.opening}, backoff next in "
            f"{ledger.backoff.next_attempt_at - monotonic():.2f} s"
        ) from None


async def _every_idle_connection_works(pool: AsyncConnectionPool) -> None:
    """Borrow as many connections as are idle, at once: each one answers."""
    n = max(len(pool._ledger.idle), 1)
    everyone = asyncio.Barrier(n)

    async def borrow() -> None:
        async with pool.connection(timeout=10) as conn:
            await everyone.wait()
            await _select_one(conn)

    async with asyncio.timeout(15):
        await asyncio.gather(*(borrow() for _ in range(n)))


# A back-off fast enough for a sweep of hundreds of runs, still exponential.
FAST_FIRST, FAST_CAP = 0.02, 0.1


@dataclass
class Run:
    """What one run saw."""

    finished: bool = False
    reset: int = 0  # TCP connections the fault reset
    landed: bool = False  # the job was doing what the scenario is about when the fault hit
    connects: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


Job = Callable[[AsyncConnectionPool], Awaitable[None]]
Landed = Callable[[AsyncConnectionPool], bool]


async def _pool_run(
    url: str,
    proxy: FaultProxy,
    scratch: ScratchDatabase,
    admin: Any,
    k: int,
    *,
    settings: dict[str, Any],
    prepare: Job,
    job: Job,
    landed: Landed,
    connect_budget: int,
    open_in_job: bool = False,
    cancel: bool = False,
) -> Run:
    run = Run()
    before = proxy.total_connections
    pool = _fast_pool(url, settings)
    try:
        if not open_in_job:
            await pool.open()
            await _stop_maintenance(pool)
            await prepare(pool)
            await settle(pool)
            check_invariants(pool)
        start_connects = proxy.total_connections

        def fault(task: asyncio.Future[Any]) -> None:
            run.landed = landed(pool)
            if cancel:
                task.cancel()
            else:
                run.reset = proxy.reset_all()

        expected = (asyncio.CancelledError,) if cancel else ()
        async with BooksWatch(pool):
            run.finished = await fault_after(k, job(pool), fault, expected=expected)
            # The resets reach the pool's sockets a few loop turns later.
            await asyncio.sleep(0.01)
            if not open_in_job:
                _restart_maintenance(pool)
            await _refilled(pool)
            await settle(pool)
            check_invariants(pool)
            await _every_idle_connection_works(pool)
            await settle(pool)
            check_invariants(pool)
        run.connects = proxy.total_connections - start_connects
        assert run.connects <= connect_budget, (
            f"{run.connects} connects in one run (budget {connect_budget}): a connect storm?"
        )
    finally:
        await pool.close()
    assert pool._ledger.size == 0, pool
    assert await scratch.sessions_left(admin) == 0, "a session outlived close()"
    run.extra["total"] = proxy.total_connections - before
    return run


def _fast_pool(url: str, settings: dict[str, Any]) -> AsyncConnectionPool:
    """A pool for the sweeps: a fast back-off, so hundreds of runs fit."""
    pool = AsyncConnectionPool(url, connect_timeout=2, **settings)
    pool._ledger.backoff = Backoff(FAST_FIRST, FAST_CAP)
    return pool


async def _closed_clean(pool: AsyncConnectionPool, scratch: ScratchDatabase, admin: Any) -> None:
    """After close(): nothing on the books, no pool task left, no session on the server."""
    assert pool.closed
    assert pool._ledger.size == 0, pool
    assert not pool._tasks.tasks and not pool._opener.tasks.tasks, pool
    assert await scratch.sessions_left(admin) == 0, "a session outlived close()"


def _landed_mid_job(runs: list[Run], fault: str, job: str, *, reset: bool = False) -> None:
    """The sweep is not vacuous: its fault hit the job while it ran, twice at least."""
    hits = [r for r in runs if r.landed and (r.reset or not reset) and not r.finished]
    assert len(hits) >= 2, f"{fault} never landed during the {job} ({len(runs)} runs)"


async def _sweep(run_once: Callable[[int], Awaitable[Run]], limit: int = 400) -> list[Run]:
    runs: list[Run] = []

    async def once(k: int) -> bool:
        run = await run_once(k)
        runs.append(run)
        return run.finished

    await cancel_sweep(once, limit=limit)
    return runs


async def _pool_sweep(
    proxy: FaultProxy,
    scratch: ScratchDatabase,
    admin: Any,
    *,
    settings: dict[str, Any],
    prepare: Job,
    job: Job,
    landed: Landed,
    open_in_job: bool = False,
    cancel: bool = False,
) -> None:
    """``_pool_run`` at every turn until the job finishes first; its fault must have landed."""
    url = proxy.url_for(scratch.url)

    async def run_once(k: int) -> Run:
        return await _pool_run(
            url,
            proxy,
            scratch,
            admin,
            k,
            settings=settings,
            prepare=prepare,
            job=job,
            landed=landed,
            connect_budget=3 * settings["max_size"],
            open_in_job=open_in_job,
            cancel=cancel,
        )

    runs = await _sweep(run_once)
    if cancel:
        _landed_mid_job(runs, "the cancellation", "job")
    else:
        _landed_mid_job(runs, "the resets", "job", reset=True)


def _age_idle(pool: AsyncConnectionPool, *, idle_for: float = 0.0, expire: bool = False) -> None:
    now = monotonic()
    for slot in pool._ledger.idle:
        slot.idle_since = now - idle_for
        slot.fresh_until = min(slot.fresh_until, now)
        if expire:
            slot.expires_at = now - 1.0
            slot.fresh_until = slot.expires_at


def _out_of_idle(pool: AsyncConnectionPool) -> int:
    """Slots that exist but are neither idle, lent nor being opened: pinged or closing."""
    ledger = pool._ledger
    return ledger.size - len(ledger.idle) - len(ledger.lent) - ledger.opening


async def _round_then_quiet(pool: AsyncConnectionPool) -> None:
    await pool._maintenance.round()
    await _until_quiet(pool)


async def _nothing(pool: AsyncConnectionPool) -> None:
    pass


async def _fill(pool: AsyncConnectionPool, n: int) -> None:
    """``n`` connections idle (opened by ``n`` borrowers at once)."""
    everyone = asyncio.Barrier(n)

    async def borrow() -> None:
        async with pool.connection() as conn:
            await everyone.wait()
            await _select_one(conn)

    await asyncio.gather(*(borrow() for _ in range(n)))


# ---------------------------------------------------------------------------- maintenance


async def _prepare_keepalive(pool: AsyncConnectionPool) -> None:
    _age_idle(pool, idle_for=10.0)  # keepalive=0.1: every idle connection is due a ping


async def _prepare_lifetime(pool: AsyncConnectionPool) -> None:
    _age_idle(pool, expire=True)


async def _prepare_max_idle(pool: AsyncConnectionPool) -> None:
    await _fill(pool, 3)
    await settle(pool)
    _age_idle(pool, idle_for=100.0)  # max_idle=50: the two above min_size go


async def _prepare_dead_idle(pool: AsyncConnectionPool) -> None:
    # Reset through the proxy, and seen by the loop: the round drops them, refills.
    assert proxy_of[pool].reset_all() >= 2
    for _ in range(200):
        if all(s.stream.gone() for s in pool._ledger.idle):
            break
        await asyncio.sleep(0.005)
    assert all(s.stream.gone() for s in pool._ledger.idle)


# The proxy a pool goes through (for prepare steps that need it).
proxy_of: dict[AsyncConnectionPool, FaultProxy] = {}

MAINTENANCE: dict[str, tuple[dict[str, Any], Job, Landed]] = {
    # keepalive pings of every idle connection
    "keepalive": (
        {"min_size": 2, "max_size": 3, "keepalive": 0.1},
        _prepare_keepalive,
        lambda pool: _out_of_idle(pool) > 0,
    ),
    # every idle connection past max_lifetime: closed politely, replaced
    "lifetime": (
        {"min_size": 2, "max_size": 3, "keepalive": 0.1},
        _prepare_lifetime,
        lambda pool: _out_of_idle(pool) > 0 or pool._ledger.opening > 0,
    ),
    # two idle connections above min_size past max_idle: closed politely
    "max-idle": (
        {"min_size": 1, "max_size": 3, "keepalive": 0.1, "max_idle": 50.0},
        _prepare_max_idle,
        lambda pool: _out_of_idle(pool) > 0,
    ),
    # idle connections seen dead: dropped, min_size opened again
    "dead-idle-refill": (
        {"min_size": 2, "max_size": 3, "keepalive": 0.1},
        _prepare_dead_idle,
        lambda pool: pool._ledger.opening > 0,
    ),
}


def _prep_with_proxy(prepare: Job, proxy: FaultProxy) -> Job:
    async def prep(pool: AsyncConnectionPool) -> None:
        proxy_of[pool] = proxy
        try:
            await prepare(pool)
        finally:
            proxy_of.pop(pool, None)

    return prep


@pytest.mark.parametrize("fault", ["reset", "cancel"])
@pytest.mark.parametrize("scenario", list(MAINTENANCE))
async def test_reset_or_cancel_at_every_turn_of_a_maintenance_round(
    proxy: FaultProxy, scratch: ScratchDatabase, admin: Any, scenario: str, fault: str
) -> None:
    """Every connection reset, or the round cancelled, at each turn of the round."""
    settings, prepare, landed = MAINTENANCE[scenario]
    await _pool_sweep(
        proxy,
        scratch,
        admin,
        settings=settings,
        prepare=_prep_with_proxy(prepare, proxy),
        job=_round_then_quiet,
        landed=landed,
        cancel=fault == "cancel",
    )


@pytest.mark.parametrize("also_reset", [False, True], ids=["close", "reset-and-close"])
@pytest.mark.parametrize("scenario", list(MAINTENANCE))
async def test_close_the_pool_at_every_turn_of_a_maintenance_round(
    proxy: FaultProxy, scratch: ScratchDatabase, admin: Any, scenario: str, also_reset: bool
) -> None:
    settings, prepare, landed = MAINTENANCE[scenario]
    url = proxy.url_for(scratch.url)

    async def run_once(k: int) -> Run:
        run = Run()
        pool = _fast_pool(url, settings)
        closing: list[asyncio.Future[None]] = []
        try:
            await pool.open()
            await _stop_maintenance(pool)
            await _prep_with_proxy(prepare, proxy)(pool)
            await settle(pool)
            check_invariants(pool)

            async def maintenance_round() -> None:
                # The pool's own maintenance task, as close() finds it mid-round.
                pool._maintenance_task = asyncio.current_task()
                await _round_then_quiet(pool)

            def fault(_task: asyncio.Future[Any]) -> None:
                run.landed = landed(pool)
                if also_reset:
                    run.reset = proxy.reset_all()
                closing.append(asyncio.ensure_future(pool.close()))

            async with BooksWatch(pool):
                run.finished = await fault_after(
                    k, maintenance_round(), fault, expected=(asyncio.CancelledError,)
                )
                async with asyncio.timeout(10):
                    await closing[0]
        finally:
            await pool.close()
        await _closed_clean(pool, scratch, admin)
        return run

    runs = await _sweep(run_once)
    _landed_mid_job(runs, "the close", "job")


# ---------------------------------------------------------------------------- operations


async def _check(pool: AsyncConnectionPool) -> None:
    await pool.check()
    await _until_quiet(pool)


async def _drain(pool: AsyncConnectionPool) -> None:
    await pool.drain()
    await _until_quiet(pool)


async def _grow(pool: AsyncConnectionPool) -> None:
    await pool.resize(4, 4)
    await _until_quiet(pool)


async def _shrink(pool: AsyncConnectionPool) -> None:
    await pool.resize(1, 2)
    await _until_quiet(pool)


async def _open(pool: AsyncConnectionPool) -> None:
    await pool.open()
    await _until_quiet(pool)


async def _fill_four(pool: AsyncConnectionPool) -> None:
    await _fill(pool, 4)


OPERATIONS: dict[str, tuple[dict[str, Any], Job, Job, Landed, bool]] = {
    "check": (
        {"min_size": 3, "max_size": 4, "keepalive": 0.1},
        _nothing,
        _check,
        lambda pool: _out_of_idle(pool) > 0,
        False,
    ),
    "drain": (
        {"min_size": 2, "max_size": 4, "keepalive": 0.1},
        _nothing,
        _drain,
        lambda pool: _out_of_idle(pool) > 0 or pool._ledger.opening > 0,
        False,
    ),
    "resize-grow": (
        {"min_size": 2, "max_size": 4, "keepalive": 0.1},
        _nothing,
        _grow,
        lambda pool: pool._ledger.opening > 0,
        False,
    ),
    "resize-shrink": (
        {"min_size": 1, "max_size": 4, "keepalive": 0.1},
        _fill_four,
        _shrink,
        lambda pool: _out_of_idle(pool) > 0,
        False,
    ),
    "open": (
        {"min_size": 3, "max_size": 4, "keepalive": 0.1},
        _nothing,
        _open,
        lambda pool: pool._ledger.opening > 0,
        True,
    ),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_every_connection_reset_at_every_turn_of_a_pool_operation(
    proxy: FaultProxy, scratch: ScratchDatabase, admin: Any, operation: str
) -> None:
    settings, prepare, job, landed, open_in_job = OPERATIONS[operation]
    await _pool_sweep(
        proxy,
        scratch,
        admin,
        settings=settings,
        prepare=prepare,
        job=job,
        landed=landed,
        open_in_job=open_in_job,
    )


# ---------------------------------------------------------------------------- close on a hung link


async def _hung_keepalive_ping(pool: AsyncConnectionPool) -> asyncio.Future[Any] | None:
    await _stop_maintenance(pool)
    _age_idle(pool, idle_for=10.0)
    _restart_maintenance(pool)  # its next round pings, and the ping hangs
    for _ in range(200):
        if _out_of_idle(pool):
            return None
        await asyncio.sleep(0.005)
    raise AssertionError("no keep-alive ping started")


async def _hung_check(pool: AsyncConnectionPool) -> asyncio.Future[Any]:
    task = asyncio.ensure_future(pool.check())
    for _ in range(200):
        if _out_of_idle(pool):
            return task
        await asyncio.sleep(0.005)
    raise AssertionError("check() took no connection out")


async def _hung_return(pool: AsyncConnectionPool) -> asyncio.Future[Any]:
    conn = await pool.acquire()
    await asyncio.sleep(0)
    proxy_of[pool].blackhole()
    task = asyncio.ensure_future(pool.release(conn))  # reset_session: a round trip
    await asyncio.sleep(0.05)
    return task


HUNG: dict[str, tuple[dict[str, Any], Callable[[AsyncConnectionPool], Awaitable[Any]]]] = {
    "keepalive-ping": ({"keepalive": 0.1}, _hung_keepalive_ping),
    "check": ({}, _hung_check),
    "reset-on-return": ({"reset_session": True}, _hung_return),
}


@pytest.mark.parametrize("work", list(HUNG))
async def test_close_cuts_work_on_a_hung_link_short_within_its_timeout(
    proxy: FaultProxy,
    scratch: ScratchDatabase,
    admin: Any,
    work: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A partitioned network: a ping or a reset in flight hangs (up to
    # connect_timeout, 10 s by default). close(timeout) must still end within
    # about its timeout, with every socket closed when it returns, and whoever
    # awaited that work (not cancelled themselves) must not get CancelledError.
    settings, start = HUNG[work]
    url = proxy.url_for(scratch.url)
    timeout = 0.5
    pool = AsyncConnectionPool(url, min_size=2, max_size=3, connect_timeout=10, **settings)
    await pool.open()
    proxy_of[pool] = proxy
    try:
        if work != "reset-on-return":
            proxy.blackhole()
        waiter = await start(pool)
        assert _out_of_idle(pool) >= 1, pool  # the work holds a connection
        began = monotonic()
        await pool.close(timeout=timeout)
        took = monotonic() - began
        size_after, tasks_after = pool._ledger.size, len(pool._tasks.tasks)
        outcome: BaseException | None = None
        if waiter is not None:
            try:
                await asyncio.wait_for(asyncio.shield(waiter), 1)
            except BaseException as exc:
                outcome = exc
    finally:
        proxy_of.pop(pool, None)
        proxy.heal()
        await pool.close()
    problems = []
    if took >= timeout + 0.4:
        problems.append(f"close(timeout={timeout}) took {took:.2f} s")
    if size_after:
        problems.append(f"close() returned with {size_after} connection(s) not closed yet")
    if tasks_after:
        problems.append(f"close() returned with {tasks_after} pool task(s) still running")
    if isinstance(outcome, asyncio.CancelledError):
        problems.append("a caller that was never cancelled got CancelledError")
    # The warning names what was still running, not "0 connection(s) still in use".
    if "still in use" in caplog.text and "pool task(s)" not in caplog.text:
        problems.append("misleading warning: " + caplog.text.strip())
    assert not problems, f"{work}: " + "; ".join(problems)
    assert await scratch.sessions_left(admin) == 0, "a session outlived close()"


# ---------------------------------------------------------------------------- no connect storm


async def _connects_during(proxy: FaultProxy, seconds: float) -> int:
    before = proxy.total_connections
    await asyncio.sleep(seconds)
    return proxy.total_connections - before


async def test_maintenance_refills_a_refusing_server_at_the_back_off_pace(
    proxy: FaultProxy, scratch: ScratchDatabase, admin: Any
) -> None:
    # Every connection reset, and every new one reset on accept: maintenance
    # (every 25 ms here) keeps trying to refill min_size=3, at the default
    # back-off's pace (1 s, then 2 s, ... with 25 % jitter), one opener at a time.
    url = proxy.url_for(scratch.url)
    async with asyncio.timeout(30):
        async with AsyncConnectionPool(
            url, min_size=3, max_size=4, keepalive=0.1, connect_timeout=2
        ) as pool:
            proxy.refuse_new(mode="reset")
            assert proxy.reset_all() == 3
            async with BooksWatch(pool):
                connects = await _connects_during(proxy, 1.5)
                # Three replacements at once, all failing, then one probe ~1 s later.
                assert 3 <= connects <= 5, f"{connects} connects in 1.5 s: a connect storm"
                assert pool._ledger.opening <= 1, pool._ledger.opening
                proxy.heal()
                # What a ClusterPool's probe does on seeing the server again:
                # end the pause now rather than up to 4 s later.
                pool._opener.retry_now()
                await _refilled(pool, within=10)
            check_invariants(pool)
            await _every_idle_connection_works(pool)
    assert await scratch.sessions_left(admin) == 0, "a session outlived close()"


async def test_a_server_that_kills_new_connections_is_not_flooded(
    proxy: FaultProxy, scratch: ScratchDatabase, admin: Any
) -> None:
    # The server accepts, logs in, then the link dies within ~20 ms, before the
    # connection is ever lent: maintenance finds each one dead. Those count as
    # failed connects (the pool cannot tell them apart), so the pace backs off.
    url = proxy.url_for(scratch.url)

    async def killer() -> None:
        while True:
            await asyncio.sleep(0.02)
            proxy.reset_all()

    async with asyncio.timeout(30):
        async with AsyncConnectionPool(
            url, min_size=3, max_size=4, keepalive=0.1, connect_timeout=2
        ) as pool:
            killing = asyncio.create_task(killer())
            try:
                async with BooksWatch(pool):
                    connects = await _connects_during(proxy, 1.5)
            finally:
                killing.cancel()
                await asyncio.gather(killing, return_exceptions=True)
            # Three, three more at once (one loss is news), then 2 s of pause.
            assert 3 <= connects <= 8, f"{connects} connects in 1.5 s: a connect storm"
            pool._opener.retry_now()
            await _refilled(pool, within=15)
            check_invariants(pool)
            await _every_idle_connection_works(pool)
    assert await scratch.sessions_left(admin) == 0, "a session outlived close()"


# ------------------------------------------------------------------------ close during operations


@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_close_the_pool_at_every_turn_of_a_pool_operation(
    proxy: FaultProxy, scratch: ScratchDatabase, admin: Any, operation: str
) -> None:
    settings, prepare, job, landed, open_in_job = OPERATIONS[operation]
    url = proxy.url_for(scratch.url)

    async def run_once(k: int) -> Run:
        run = Run()
        pool = _fast_pool(url, settings)
        closing: list[asyncio.Future[None]] = []
        try:
            if not open_in_job:
                await pool.open()
                await prepare(pool)
                await settle(pool)
                check_invariants(pool)

            def fault(_task: asyncio.Future[Any]) -> None:
                run.landed = landed(pool)
                closing.append(asyncio.ensure_future(pool.close()))

            async with BooksWatch(pool), asyncio.timeout(10):
                # The operation may see the pool closed under it: PoolClosed at
                # once (open() too: not its PoolTimeout after waiting in vain).
                run.finished = await fault_after(k, job(pool), fault, expected=(PoolClosed,))
                async with asyncio.timeout(10):
                    await closing[0]
        finally:
            await pool.close()
        await _closed_clean(pool, scratch, admin)
        return run

    runs = await _sweep(run_once)
    _landed_mid_job(runs, "the close", "operation")


async def test_open_ends_at_once_when_the_pool_is_closed_meanwhile(
    scratch: ScratchDatabase, admin: Any
) -> None:
    # An application shut down while it starts: close() runs while open()
    # waits for min_size connections. open() must raise PoolClosed at once,
    # not wait out its whole timeout and then blame the server (PoolTimeout,
    # "last connection error: none").
    pool = AsyncConnectionPool(scratch.url, min_size=3, max_size=4, timeout=5)
    opening = asyncio.ensure_future(pool.open())
    await turns(2)  # open() is waiting, its openers are connecting
    assert pool._ledger.opening > 0
    began = monotonic()
    await pool.close()
    try:
        async with asyncio.timeout(4):
            with pytest.raises(PoolClosed):
                await opening
    except TimeoutError:
        pytest.fail("open() still waiting for min_size 4 s after close() returned")
    assert monotonic() - began < 1.0
    assert pool.closed and pool._ledger.size == 0
    assert await scratch.sessions_left(admin) == 0, "a session outlived close()"

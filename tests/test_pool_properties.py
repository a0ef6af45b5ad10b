"""Property-based tests: random sequences of borrows, returns, cancellations,
server faults, drain/resize and close against a pool on the fake server,
checking the pool's invariants after every step and a clean shutdown at the end.

Each hypothesis example runs in its own event loop (``asyncio.run``), so the
tests are plain synchronous functions and pytest-asyncio stays out of the way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from asyncmy import errors as mysql_errors
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopool import AsyncConnectionPool, PoolClosed, PoolTimeout
from tests.support.fakes import FakeConnection, FakeServer
from tests.support.pooltools import check_invariants

# ---------------------------------------------------------------- the pool under test


class ObservedPool(AsyncConnectionPool):
    """The real pool, saying whether a maintenance round is under way.

    A maintenance round takes slots out of the idle stack while it pings
    them, so the pool is only "quiet" (``check_invariants`` applies) between
    rounds.  Behaviour is unchanged.
    """

    @property
    def maintaining(self) -> bool:
        return self._maintenance.busy


class Boom(Exception):
    """An application error raised inside a ``pool.connection()`` block."""


# What a query on a killed or closed connection raises (and only then).
QUERY_ERRORS = (mysql_errors.OperationalError, mysql_errors.InterfaceError)

# ---------------------------------------------------------------- steps


@dataclass(frozen=True)
class Config:
    min_size: int
    extra: int  # max_size = max(1, min_size + extra)
    timeout: float
    max_lifetime: float
    max_idle: float
    check_after: float | None
    keepalive: float | None
    eof_visible: bool
    connect_delay: float

    @property
    def max_size(self) -> int:
        return max(1, self.min_size + self.extra)

    def pool_kwargs(self) -> dict[str, Any]:
        return {
            "min_size": self.min_size,
            "max_size": self.max_size,
            "timeout": self.timeout,
            "max_lifetime": self.max_lifetime,
            "max_idle": self.max_idle,
            "check_after": self.check_after,
            "keepalive": self.keepalive,
        }


@dataclass(frozen=True)
class Acquire:
    """Raw ``acquire``; the connection is held until a ``Release`` step."""

    timeout: float | None
    cancel_after: int | None  # loop turns before cancelling it; None: leave it be


@dataclass(frozen=True)
class Use:
    """``async with pool.connection()``: a query, maybe an error in the block."""

    timeout: float | None
    delay: float
    begin: bool
    fail: bool
    cancel_after: int | None


@dataclass(frozen=True)
class Release:
    """Tell one raw holder to give its connection back."""

    pick: int
    how: str  # "clean", "transaction" (rollback path), "closed" (broken path)
    cancel_after: int | None


@dataclass(frozen=True)
class Cancel:
    """Cancel one unfinished client, whatever it is doing."""

    pick: int
    turns: int


@dataclass(frozen=True)
class Fault:
    kind: str


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class Drain:
    """``pool.drain()``: retire every connection, idle now, lent on return."""


@dataclass(frozen=True)
class Resize:
    min_size: int
    extra: int


@dataclass(frozen=True)
class Close:
    timeout: float
    from_end: int  # how many steps before the end the pool is closed


Step = Acquire | Use | Release | Cancel | Fault | Wait | Drain | Resize

timeouts = st.sampled_from([None, 0.0, 0.005, 0.03])
turns = st.integers(min_value=0, max_value=6)
# Mostly not cancelled (None comes first, so it is also what shrinking aims for).
maybe_turns = st.sampled_from([None, None, None, 0, 1, 2, 3, 5])

configs = st.builds(
    Config,
    min_size=st.integers(0, 2),
    extra=st.integers(0, 2),
    timeout=st.sampled_from([0.02, 0.1]),
    max_lifetime=st.sampled_from([math.inf, 0.03, 0.3]),
    max_idle=st.sampled_from([math.inf, 0.02, 0.3]),
    check_after=st.sampled_from([None, 0.0, 0.01, 1.0]),
    keepalive=st.sampled_from([None, 0.01, 0.1]),
    eof_visible=st.booleans(),
    connect_delay=st.sampled_from([0.0, 0.002]),
)

FAULTS = [
    "kill_all",
    "go_down",
    "come_back",
    "slow_connect",
    "slow_ping",
    "slow_rollback",
    "fast",
]

acquires = st.builds(Acquire, timeout=timeouts, cancel_after=maybe_turns)
uses = st.builds(
    Use,
    timeout=timeouts,
    delay=st.sampled_from([0.0, 0.002, 0.02]),
    begin=st.booleans(),
    fail=st.booleans(),
    cancel_after=maybe_turns,
)
releases = st.builds(
    Release,
    pick=st.integers(0, 7),
    how=st.sampled_from(["clean", "transaction", "closed"]),
    cancel_after=maybe_turns,
)
# Borrowing and returning come up more often than the rest (one_of picks its
# branches evenly), so that the pool is often full and requests queue.
# Wait comes first: it is what steps shrink to (Wait(0.0) does nothing).
step_strategy: st.SearchStrategy[Step] = st.one_of(
    st.builds(Wait, seconds=st.sampled_from([0.0, 0.002, 0.01, 0.04])),
    acquires,
    uses,
    releases,
    acquires,
    uses,
    releases,
    st.builds(Cancel, pick=st.integers(0, 7), turns=turns),
    st.builds(Fault, kind=st.sampled_from(FAULTS)),
    st.builds(Drain) | st.builds(Resize, min_size=st.integers(0, 2), extra=st.integers(0, 2)),
)
steps_strategy = st.lists(step_strategy, min_size=8, max_size=40)

closes = st.none() | st.builds(
    Close, timeout=st.sampled_from([0.0, 0.01, 0.2]), from_end=st.integers(0, 3)
)

# ---------------------------------------------------------------- the world


class Client:
    """One application task borrowing from the pool."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.phase = "acquiring"  # -> "holding" -> "returning" -> "done"
        self.conn: FakeConnection | None = None
        self.instruction: asyncio.Future[str] | None = None
        self.cancelled_by_test = False
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Client {self.kind} {self.phase} {self.conn!r}>"


class World:
    """The pool, the fake server, the clients, and the checks."""

    def __init__(self, pool: ObservedPool, server: FakeServer) -> None:
        self.pool = pool
        self.server = server
        self.clients: list[Client] = []
        self.held: dict[FakeConnection, Client] = {}
        self.failures: list[BaseException] = []
        self.closer: asyncio.Task[None] | None = None
        self.tearing_down = False
        # The most slots the pool may have: max_size, or more for a while
        # after resize() shrank it, as long as the surplus only goes away.
        self.ceiling = pool.max_size
        self.peak_max_size = pool.max_size

    # ------------------------------------------------------------ client side

    def fail(self, message: str) -> None:
        self.failures.append(AssertionError(message))

    def took(self, client: Client, conn: Any) -> None:
        pool = self.pool
        assert isinstance(conn, FakeConnection)
        assert conn.connected and not conn._stream_broken, f"handed out a broken {conn!r}"
        assert conn not in self.held, f"{conn!r} for {client!r} is held by {self.held[conn]!r}"
        slot = pool._ledger.lent.get(id(conn))
        assert slot is not None and slot.ref() is conn, f"{conn!r} handed out but not lent"
        assert not pool.closed, "a connection was handed out after close() started"
        self.held[conn] = client
        client.conn = conn
        client.phase = "holding"

    def gave_back(self, client: Client) -> None:
        assert client.conn is not None
        assert self.held.pop(client.conn) is client
        client.phase = "returning"

    def spawn(self, client: Client, body: Callable[[Client], Awaitable[None]]) -> Client:
        async def run() -> None:
            try:
                await body(client)
            except asyncio.CancelledError:
                if not client.cancelled_by_test:
                    self.fail(f"{client!r} was cancelled by nobody")
                raise
            except PoolTimeout:
                if client.phase != "acquiring":
                    self.fail(f"PoolTimeout outside acquire in {client!r}")
            except PoolClosed:
                if client.phase != "acquiring" or self.closer is None:
                    self.fail(f"PoolClosed in {client!r} while the pool was open")
            except Boom:
                pass
            except QUERY_ERRORS as exc:
                if client.phase == "acquiring":
                    self.fail(f"acquire raised {exc!r} in {client!r}")
            except BaseException as exc:
                self.failures.append(exc)
            finally:
                if client.phase == "holding":  # only when took() itself failed
                    self.gave_back(client)
                client.phase = "done"

        self.clients.append(client)
        client.task = asyncio.get_running_loop().create_task(run())
        return client

    async def hold(self, client: Client, timeout: float | None) -> None:
        conn = await self.pool.acquire(timeout)
        self.took(client, conn)
        assert isinstance(conn, FakeConnection)
        try:
            client.instruction = asyncio.get_running_loop().create_future()
            if self.tearing_down:
                client.instruction.set_result("clean")
            how = await client.instruction
            if how == "transaction":
                await conn.query(0.001, begin=True)
            elif how == "closed":
                conn.close()
        finally:
            self.gave_back(client)
            await self.pool.release(conn)

    async def use(self, client: Client, step: Use) -> None:
        async with self.pool.connection(step.timeout) as conn:
            self.took(client, conn)
            assert isinstance(conn, FakeConnection)
            try:
                await conn.query(step.delay, begin=step.begin)
                if step.fail:
                    raise Boom
            finally:
                self.gave_back(client)

    def unfinished(self) -> list[Client]:
        return [c for c in self.clients if c.task is not None and not c.task.done()]

    async def cancel_later(self, client: Client, turns: int | None) -> None:
        if turns is None:
            return
        for _ in range(turns):
            await asyncio.sleep(0)
        assert client.task is not None
        if not client.task.done():
            client.cancelled_by_test = True
            client.task.cancel()

    # ------------------------------------------------------------ steps

    async def do(self, step: Step | Close) -> None:
        server = self.server
        match step:
            case Acquire(timeout, cancel_after):
                client = self.spawn(Client("raw"), lambda c: self.hold(c, timeout))
                await self.cancel_later(client, cancel_after)
            case Use(cancel_after=cancel_after):
                client = self.spawn(Client("ctx"), lambda c: self.use(c, step))
                await self.cancel_later(client, cancel_after)
            case Release(pick, how, cancel_after):
                holders = [
                    c
                    for c in self.clients
                    if c.phase == "holding" and c.instruction and not c.instruction.done()
                ]
                if holders:
                    client = holders[pick % len(holders)]
                    assert client.instruction is not None
                    client.instruction.set_result(how)
                    await self.cancel_later(client, cancel_after)
            case Cancel(pick, turns):
                for _ in range(turns):
                    await asyncio.sleep(0)
                victims = self.unfinished()
                if victims:
                    client = victims[pick % len(victims)]
                    assert client.task is not None
                    client.cancelled_by_test = True
                    client.task.cancel()
            case Fault("kill_all"):
                server.kill_all()
            case Fault("go_down"):
                server.go_down()
            case Fault("come_back"):
                server.come_back()
            case Fault("slow_connect"):
                server.connect_delay = 0.01
            case Fault("slow_ping"):
                server.ping_delay = 0.003
            case Fault("slow_rollback"):
                server.rollback_delay = 0.005
            case Fault("fast"):
                server.connect_delay = server.ping_delay = server.rollback_delay = 0.0
            case Wait(seconds):
                await asyncio.sleep(seconds)
            case Drain():
                if self.closer is None:
                    await self.pool.drain()
            case Resize(min_size, extra):
                if self.closer is None:
                    max_size = max(1, min_size + extra)
                    self.ceiling = max(max_size, self.pool._ledger.size)
                    self.peak_max_size = max(self.peak_max_size, max_size)
                    await self.pool.resize(min_size, max_size)
            case Close(timeout):
                self.closer = asyncio.get_running_loop().create_task(self.pool.close(timeout))
                await asyncio.sleep(0)  # close() has begun: acquire must now refuse
                try:
                    await self.pool.acquire(0.01)
                except PoolClosed:
                    pass
                else:
                    raise AssertionError("acquire on a closing pool did not raise PoolClosed")
            case _:
                raise AssertionError(f"unknown step {step!r}")

    # ------------------------------------------------------------ checks

    async def quiesce(self) -> bool:
        """Wait (briefly) until no return, close or maintenance round is in flight."""
        pool = self.pool
        for _ in range(100):
            if not pool._tasks.tasks and not pool.maintaining:
                await asyncio.sleep(0)  # done-callbacks run
                if not pool._tasks.tasks and not pool.maintaining:
                    return True
            await asyncio.sleep(0.001)
        return False

    def raise_failures(self) -> None:
        if self.failures:
            raise self.failures[0]

    async def check(self) -> None:
        pool, server = self.pool, self.server
        quiet = await self.quiesce()
        self.raise_failures()

        # At every moment, quiet or not.
        assert pool._ledger.opening >= 0
        in_lists = len(pool._ledger.idle) + len(pool._ledger.lent) + pool._ledger.opening
        books = pool._ledger
        assert in_lists <= books.size <= self.ceiling, (in_lists, books.size, self.ceiling)
        self.ceiling = max(pool.max_size, pool._ledger.size)
        assert len(server.live) <= self.ceiling, (len(server.live), self.ceiling)
        assert server.max_live <= self.peak_max_size, (server.max_live, self.peak_max_size)
        for conn, client in self.held.items():
            assert client.phase == "holding" and client.conn is conn
            slot = pool._ledger.lent.get(id(conn))
            assert slot is not None and slot.ref() is conn, f"{client!r} holds a conn not lent"
        acquiring = sum(c.phase == "acquiring" for c in self.clients)
        in_between = sum(c.phase in ("acquiring", "returning") for c in self.clients)
        live_waiters = [w for w in pool._ledger.waiters if not w.done()]
        assert len(live_waiters) <= acquiring, (live_waiters, acquiring)
        if not acquiring:
            assert not pool._ledger.waiters, "a waiter future is left with no task waiting"
        unclaimed = set(pool._ledger.lent) - {id(conn) for conn in self.held}
        assert len(unclaimed) <= in_between, f"lent to nobody: {unclaimed}"

        closing = self.closer is not None and not self.closer.done()
        if not quiet or closing:
            return
        if pool._ledger.size <= pool.max_size:  # else shrinking after resize(): see below
            check_invariants(pool)
        else:
            books = pool._ledger
            assert books.size == len(books.idle) + len(books.lent) + books.opening
        slots = [*pool._ledger.idle, *pool._ledger.lent.values()]
        sockets = {s.transport for s in slots if not s.transport.closed}
        assert server.live == sockets, "the server's connections are not the pool's"
        if pool.closed:
            assert not pool._ledger.idle and not pool._ledger.opening
            return
        if not pool._ledger.lent and not pool._ledger.opening:
            # Nothing lent, nothing being opened: a surplus left by resize() is gone.
            size = pool._ledger.size
            assert size <= pool.max_size, ("above max_size", size, pool.max_size)
        if live_waiters:
            assert not pool._ledger.idle, "a request waits while a connection sits idle"
            # Growth may wait for loans expected back sooner than a connect,
            # but then it has a look-again timer set.
            assert (
                pool._ledger.opening
                or pool._ledger.size >= pool.max_size
                or pool._opener.recheck_pending
            ), "a request waits, there is room, nothing is being opened, and no look-again is due"
        books = pool._ledger
        assert books.size >= pool.min_size or books.opening, "below min_size, not refilling"

    async def teardown(self) -> None:
        pool, server = self.pool, self.server
        self.tearing_down = True
        for client in self.clients:
            if client.instruction is not None and not client.instruction.done():
                client.instruction.set_result("clean")
        tasks = [c.task for c in self.clients if c.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2.0)
            assert not pending, f"clients stuck: {self.unfinished()}"
        self.raise_failures()
        assert not self.held
        if self.closer is None:
            await self.check()
        await pool.close(timeout=1.0)
        if self.closer is not None:
            await self.closer
        for _ in range(3):
            await asyncio.sleep(0)  # cancelled leftovers finish
        assert pool._ledger.size == 0, pool
        books = pool._ledger
        assert not books.idle and not books.lent and not books.opening and not books.waiters
        assert all(t.done() for t in (*pool._tasks.tasks, *pool._opener.tasks.tasks))
        assert pool._maintenance_task is not None and pool._maintenance_task.done()
        assert not server.live, server.live
        try:
            await pool.acquire(0.01)
        except PoolClosed:
            pass
        else:
            raise AssertionError("acquire on a closed pool did not raise PoolClosed")


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def scenario(config: Config, steps: list[Step], close: Close | None) -> None:
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    errors = ErrorLog()
    logging.getLogger("aiopool").addHandler(errors)
    plan: list[Step | Close] = list(steps)
    if close is not None:
        plan.insert(max(0, len(plan) - close.from_end), close)
    server = FakeServer()
    server.eof_visible = config.eof_visible
    server.connect_delay = config.connect_delay
    pool = ObservedPool(connection_factory=server.connect, **config.pool_kwargs())
    world = World(pool, server)
    try:
        async with asyncio.timeout(10):
            await pool.open(timeout=2.0)
            await world.check()
            for step in plan:
                await world.do(step)
                await world.check()
            await world.teardown()
    finally:
        logging.getLogger("aiopool").removeHandler(errors)
        if not pool.closed:
            await pool.close(timeout=0)
    assert not loop_errors, loop_errors
    assert not errors.records, [r.getMessage() for r in errors.records]


@settings(max_examples=300, deadline=None)
@given(config=configs, steps=steps_strategy, close=closes)
def test_random_operations_keep_the_pool_consistent(
    config: Config, steps: list[Step], close: Close | None
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(scenario(config, steps, close))
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks

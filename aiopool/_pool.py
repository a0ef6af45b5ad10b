"""AsyncConnectionPool: the pool itself.

How the pieces fit:

* Bookkeeping changes (which connection goes to whom, which one closes) are
  made in plain synchronous methods; network work (connect, ping, rollback,
  close) happens afterwards, outside them.  asyncio runs one task at a time,
  so a stretch of code without ``await`` is atomic: every state change is made
  with no other task between its reads and writes, which is what holding the
  Condition's lock would give, without paying for the lock on the hot path.
  The Condition is where tasks wait for the pool's state to change (``open``
  waiting for ``min_size`` connections, ``close`` waiting for borrowers), and
  it is notified after every such change.
* Tasks waiting for a connection wait on their own future in a FIFO
  (``_waiters.py``): a returned connection is handed straight to the oldest
  live waiter, so newcomers cannot barge ahead and a cancelled waiter cannot
  swallow a wake-up.
* New connections are opened by pool-owned tasks, never by the task that asks,
  and never while anything is locked.  They count against ``max_size`` from
  the moment they are started, so ``idle + in use + opening <= max_size``
  holds at every ``await``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from time import monotonic
from types import TracebackType
from typing import Any, Self

from ._backoff import Backoff
from ._base import (
    _CLOSED,
    _CLOSING,
    _FORKED,
    _MIN_CHECK_BUDGET,
    _NEW,
    _OPEN,
    _check_timeout,
    _describe,
    _drop_socket,
    logger,
)
from ._config import ConnectOptions, PoolLimits
from ._context import ConnectionContext
from ._health import (
    has_pending_result,
    is_broken,
    is_connection_error,
)
from ._leaks import capture_origin
from ._maintenance import Maintenance, run_maintenance
from ._opening import _default_factory
from ._protocols import Connection, ConnectionCallback, ConnectionFactory
from ._reset import baseline_sql, reset_session
from ._slot import Slot
from ._stats import Counters, PoolStats
from ._waiters import Waiter, WaitQueue, expire_waiter
from .errors import PoolClosed, PoolError, PoolTimeout, TooManyRequests, WrongEventLoop

__all__ = ["AsyncConnectionPool", "ConnectionContext"]

_open_pools: weakref.WeakSet[AsyncConnectionPool] = weakref.WeakSet()


def _forget_pools_after_fork() -> None:
    for pool in list(_open_pools):
        pool._forget_after_fork()


os.register_at_fork(after_in_child=_forget_pools_after_fork)


class AsyncConnectionPool(Maintenance):
    """A pool of asyncmy connections to one MySQL or MariaDB server.

    ``url`` is a ``mysql://`` or ``mariadb://`` URL; keyword arguments not
    listed below go to ``asyncmy.connect`` and win over the URL.  Open it with
    ``async with AsyncConnectionPool(...) as pool`` or ``await pool.open()``,
    borrow with ``async with pool.connection() as conn``.

    Sizes and times (seconds; ``math.inf`` switches a limit off):

    * ``min_size``: connections kept open and ready; ``max_size``: the most
      that ever exist at once, counting those being opened.
    * ``timeout``: how long ``acquire``/``connection`` wait before
      ``PoolTimeout``; ``max_waiting``: with a value above 0, a request beyond
      that many waiting is refused with ``TooManyRequests``.
    * ``max_lifetime``: connections are retired after this age (minus up to
      5 % jitter); ``max_idle``: idle connections above ``min_size`` are
      closed after this long unused.
    * ``check_after``: an idle connection unused for longer than this is
      pinged before it is handed out (``0``: always, ``None``: never);
      ``keepalive``: idle connections are pinged this often in the
      background (``None``: never).
    * ``configure``: async callback run once on every new connection.
      ``check``: async callback run when a connection is checked before
      hand-out; it raises to reject the connection.
    * ``reconnect_timeout``: after this long of failing to open connections,
      ``reconnect_failed(pool)`` is called (the pool keeps trying).
    * ``reset_session``: reset every returned connection with
      ``COM_RESET_CONNECTION`` and restore the connect-time settings (one or
      two round trips per return); ``reset``: async callback run on return.
    * ``leak_threshold``: log a warning, with the acquiring stack, for any
      connection lent out longer than this.
    * ``connection_factory``: opens a connection from keyword arguments
      (default ``asyncmy.connect``).
    * ``connect_timeout`` (in the URL or as a keyword, default 10): bounds the
      TCP connect *and* the login, and every round trip the pool makes itself
      (ping, rollback).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        max_waiting: int = 0,
        max_lifetime: float = 1800.0,
        max_idle: float = 600.0,
        name: str | None = None,
        configure: ConnectionCallback | None = None,
        check: ConnectionCallback | None = None,
        check_after: float | None = 1.0,
        keepalive: float | None = 300.0,
        reconnect_timeout: float = 300.0,
        reconnect_failed: Callable[[AsyncConnectionPool], Awaitable[None] | None] | None = None,
        reset_session: bool = False,
        reset: ConnectionCallback | None = None,
        leak_threshold: float | None = None,
        connection_factory: ConnectionFactory | None = None,
        **connect_kwargs: Any,
    ) -> None:
        self._limits = PoolLimits.build(
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            max_waiting=max_waiting,
            max_lifetime=max_lifetime,
            max_idle=max_idle,
            check_after=check_after,
            keepalive=keepalive,
        )
        self._options = ConnectOptions.build(url, connect_kwargs)
        self._reconnect_timeout = _check_timeout("reconnect_timeout", reconnect_timeout)
        self._leak_threshold = (
            None if leak_threshold is None else _check_timeout("leak_threshold", leak_threshold)
        )
        # Recording the acquiring stack costs tens of microseconds: only on request.
        self._track_origin = leak_threshold is not None
        self._reset_session = bool(reset_session)
        self._reset = reset
        # With a reset to run, every return takes the slow path.
        self._resets_on_return = self._reset_session or reset is not None
        # True while the release fast path may be taken: open, and no reset to run.
        self._fast_return = False
        self._baseline = baseline_sql(self._options.kwargs)
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name must be a string, got {type(name).__name__}")
        self.name: str = name or self._options.address
        """The pool's name, in logs, errors and metrics (never shows the password)."""
        self._configure = configure
        self._check = check
        self._reconnect_failed = reconnect_failed
        self._factory: ConnectionFactory = connection_factory or _default_factory
        # The fast path compares one number: an idle slot is handed out
        # without a check while now < slot.fresh_until.
        self._check_after = math.inf if check_after is None else self._limits.check_after or 0.0

        self._state: str = _NEW
        # The loop the pool was opened in, while it may be used; None turns
        # every fast path off (not open, closing, closed, forked).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened_loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._cond: asyncio.Condition | None = None
        self._idle: deque[Slot] = deque()
        # Keyed by id(conn): the pool must not keep lent connections alive.
        self._lent: dict[int, Slot] = {}
        self._waiters = WaitQueue()
        self._size = 0  # every slot that exists: opening, idle, lent, being returned or closed
        self._opening = 0
        self._generation = 0  # bumped by drain(): connections opened before it retire
        self._tasks: set[asyncio.Task[Any]] = set()
        self._openers: set[asyncio.Task[Any]] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self._backoff = Backoff()
        self._last_error: BaseException | None = None
        self._fatal_error: BaseException | None = None
        self._counters = Counters()
        self._closed_event: asyncio.Event | None = None
        self._forked_leftovers: list[Slot] = []

    # ------------------------------------------------------------------ life cycle

    async def open(self, wait: bool = True, timeout: float | None = None) -> None:
        """Start the pool in the running event loop.

        With ``wait=True`` (the default) return once ``min_size`` connections
        are ready; if they cannot be made within ``timeout`` (default: the
        pool's ``timeout``), close the pool and raise the cause: the server's
        own error for a wrong password or unknown database at once, otherwise
        ``PoolTimeout`` naming the last connection error.
        """
        loop = asyncio.get_running_loop()
        if self._state == _OPEN:
            self._check_loop(loop)
        elif self._state == _NEW:
            self._start(loop)
        elif self._state == _FORKED:
            raise self._forked_error()
        else:
            raise PoolClosed(f"pool {self.name!r} is closed; create a new pool to reconnect")
        if wait:
            limit = self._limits.timeout if timeout is None else _check_timeout("timeout", timeout)
            try:
                await self._wait_ready(limit)
            except BaseException:
                await self.close()
                raise

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._state = _OPEN
        self._loop = self._opened_loop = loop
        self._fast_return = not self._resets_on_return
        self._pid = os.getpid()
        # Created here, not in __init__: asyncio primitives belong to a loop.
        self._cond = asyncio.Condition()
        self._closed_event = asyncio.Event()
        _open_pools.add(self)
        self._maintenance = loop.create_task(
            run_maintenance(self), name=f"aiopool maintenance {self.name}"
        )
        logger.debug("pool %r opening (min_size=%d)", self.name, self._limits.min_size)
        self._grow()

    async def _wait_ready(self, timeout: float) -> None:
        want = self._limits.min_size

        def ready() -> bool:
            return self._size - self._opening >= want or self._fatal_error is not None

        if not await self._wait_until(ready, timeout):
            have = self._size - self._opening
            raise PoolTimeout(
                f"pool {self.name!r} could not open {want} connection(s) within "
                f"{timeout:g} s ({have} ready); last connection error: "
                f"{_describe(self._last_error)}"
            ) from self._last_error
        if self._fatal_error is not None:
            raise self._fatal_error

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait on the Condition until ``predicate()``; False if ``timeout`` passed first.

        Wakes every 50 ms as well: some changes (a garbage-collected
        connection, a task's done-callback) happen where nobody can await a
        notify, and a waiter must not depend on every path remembering to.
        """
        cond = self._cond
        assert cond is not None
        deadline = monotonic() + timeout
        async with cond:
            while not predicate():
                left = deadline - monotonic()
                if left <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, 0.05)):
                        await cond.wait()
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pool; calling it again does nothing.

        Waiting requests get ``PoolClosed`` at once, idle connections are
        closed at once, and connections still lent out are closed when they
        are returned, or closed anyway once ``timeout`` seconds have passed.
        """
        timeout = _check_timeout("timeout", timeout)
        if self._state in (_CLOSED, _FORKED):
            return
        if self._state == _NEW:
            self._state = _CLOSED
            return
        if self._state == _CLOSING:
            assert self._closed_event is not None
            await self._closed_event.wait()
            return
        self._state = _CLOSING
        self._loop = None
        self._fast_return = False
        _open_pools.discard(self)
        self._waiters.fail_all(PoolClosed(f"pool {self.name!r} was closed"))
        try:
            await self._stop_background_tasks()
            await self._close_idle()
            await self._wait_borrowers(timeout)
            await self._finish_tasks(timeout)
        finally:
            self._close_everything_left()
            self._state = _CLOSED
            assert self._closed_event is not None
            self._closed_event.set()
            logger.debug("pool %r closed", self.name)

    async def _stop_background_tasks(self) -> None:
        tasks = [t for t in (self._maintenance, *self._openers) if t is not None]
        for task in tasks:
            task.cancel()  # their done-callbacks settle the accounting
        if tasks:
            await asyncio.wait(tasks)

    async def _close_idle(self) -> None:
        slots = list(self._idle)
        self._idle.clear()
        await self._close_all(slots)

    async def _wait_borrowers(self, timeout: float) -> None:
        if await self._wait_until(lambda: self._size == 0, timeout):
            return
        stuck = list(self._lent.values())
        logger.warning(
            "pool %r: %d connection(s) still in use %g s after close(); closing them",
            self.name,
            len(stuck),
            timeout,
        )
        for slot in stuck:
            # Left in _lent: the borrower's release() finishes the accounting.
            _drop_socket(slot)

    async def _finish_tasks(self, timeout: float) -> None:
        tasks = set(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def _close_everything_left(self) -> None:
        for task in (*self._tasks, *self._openers):
            task.cancel()  # done-callbacks close what each task owned
        while self._idle:
            self._finish_close(self._idle.pop())

    async def __aenter__(self) -> Self:
        await self.open(wait=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _forget_after_fork(self) -> None:
        # The sockets belong to the parent's sessions: sending COM_QUIT (or
        # anything) on them from here would break the parent.  Keep them
        # referenced so the garbage collector does not close them either.
        self._forked_leftovers.extend(self._idle)
        self._forked_leftovers.extend(self._lent.values())
        self._idle.clear()
        self._lent.clear()
        self._waiters.clear()
        self._tasks.clear()
        self._openers.clear()
        self._maintenance = None
        self._size = self._opening = 0
        self._state = _FORKED
        self._loop = None
        self._fast_return = False

    # ------------------------------------------------------------------ checks

    def _forked_error(self) -> WrongEventLoop:
        return WrongEventLoop(
            f"pool {self.name!r} was opened in process {self._pid} and cannot be used in "
            f"process {os.getpid()} after fork(): its connections belong to the parent. "
            "Create and open a new pool in the child process."
        )

    def _check_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._opened_loop:
            opened = self._opened_loop
            raise WrongEventLoop(
                f"pool {self.name!r} was opened in event loop {type(opened).__name__} "
                f"at {id(opened):#x} and is used from {type(loop).__name__} at {id(loop):#x}; "
                "a pool (like its connections) belongs to one loop. Open one pool per "
                "event loop, e.g. in the application's lifespan hook."
            )

    def _check_usable(self) -> asyncio.AbstractEventLoop:
        """The loop to work in, or the error that says why the pool can't be used."""
        if self._state != _OPEN:
            if self._state == _FORKED:
                raise self._forked_error()
            if self._state == _NEW:
                raise PoolClosed(
                    f"pool {self.name!r} is not open yet: use 'async with pool' or "
                    "'await pool.open()' first"
                )
            raise PoolClosed(f"pool {self.name!r} is closed")
        loop = asyncio.get_running_loop()
        self._check_loop(loop)
        return loop

    # ------------------------------------------------------------------ hand-out

    async def acquire(self, timeout: float | None = None) -> Connection:
        """Borrow a connection; give it back with ``release``.

        Waits up to ``timeout`` seconds (default: the pool's ``timeout``) and
        raises ``PoolTimeout`` after that.  Prefer ``connection()``, which
        always gives the connection back.
        """
        idle = self._idle
        # Fast path: an idle connection, nobody queued ahead, checked recently.
        # The caller must run in the pool's loop; that loop running is the
        # cheap proxy (one thread runs one loop at a time, and Python 3.11's
        # get_running_loop() costs a getpid() syscall).  _loop is None when closed.
        loop = self._loop
        if idle and not self._waiters and loop is not None and loop.is_running():
            slot = idle[-1]
            conn = slot.conn
            now = monotonic()
            if now < slot.fresh_until and not conn._stream_broken:  # type: ignore[union-attr]
                idle.pop()
                slot.conn = None
                self._lent[slot.key] = slot
                slot.lent_at = now  # also the loan's identity (see ConnectionContext)
                self._counters.requests_num += 1
                if self._track_origin:
                    slot.origin = capture_origin()
                    slot.warned = False
                return conn  # type: ignore[return-value]
        return await self._acquire_slow(timeout)

    async def _acquire_slow(self, timeout: float | None) -> Connection:
        loop = self._check_usable()
        limit = self._limits.timeout if timeout is None else _check_timeout("timeout", timeout)
        counters = self._counters
        counters.requests_num += 1
        start = monotonic()
        deadline = start + limit
        queued = False
        while True:
            slot = self._take_idle()
            if slot is None:
                queued = True
                slot = await self._wait_for_slot(loop, deadline, start)
            if await self._usable(slot, deadline):
                break
        if self._state != _OPEN:
            # close() started while this request was checking its connection.
            self._discard(slot, polite=False)
            raise PoolClosed(f"pool {self.name!r} was closed")
        now = monotonic()
        if queued:
            counters.requests_queued += 1
            counters.requests_wait_ms += (now - start) * 1000.0
        slot.lent_at = now
        if self._track_origin:
            slot.origin = capture_origin()
            slot.warned = False
        conn = slot.conn
        assert conn is not None
        slot.conn = None
        return conn

    def _take_idle(self) -> Slot | None:
        """Pop an idle slot for the caller if nobody is queued ahead of it."""
        self._waiters.prune()
        if self._waiters or not self._idle:
            return None
        slot = self._idle.pop()
        self._lent[slot.key] = slot
        return slot

    async def _wait_for_slot(
        self, loop: asyncio.AbstractEventLoop, deadline: float, start: float
    ) -> Slot:
        max_waiting = self._limits.max_waiting
        if max_waiting and len(self._waiters) >= max_waiting:
            self._counters.requests_errors += 1
            raise TooManyRequests(
                f"pool {self.name!r} already has {len(self._waiters)} requests waiting "
                f"(max_waiting={max_waiting}); refusing this one"
            )
        waiter: Waiter = loop.create_future()
        self._waiters.append(waiter)
        self._serve_waiters_from_idle()
        self._grow()
        timer = None
        if deadline != math.inf:
            timer = loop.call_later(max(0.0, deadline - monotonic()), expire_waiter, waiter)
        try:
            slot = await waiter
        except BaseException:
            self._abandon(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if slot is None:
            self._waiters.discard(waiter)
            self._counters.requests_errors += 1
            raise PoolTimeout(self._timeout_message(monotonic() - start))
        return slot

    def _abandon(self, waiter: Waiter) -> None:
        """The waiting task is leaving (cancelled, closed): pass on what it was given."""
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            slot = waiter.result()
            if slot is not None:
                del self._lent[slot.key]
                self._put_back(slot)
                return
        waiter.cancel()
        self._waiters.discard(waiter)

    def _serve_waiters_from_idle(self) -> None:
        while self._idle and self._waiters:
            slot = self._idle.pop()
            if not self._lend_to_waiter(slot):
                self._idle.append(slot)
                return

    def _lend_to_waiter(self, slot: Slot) -> bool:
        """Hand ``slot`` to the oldest live waiter; False (slot untouched) if none."""
        self._lent[slot.key] = slot
        if self._waiters.hand_off(slot):
            return True
        del self._lent[slot.key]
        return False

    def _put_back(self, slot: Slot) -> None:
        """A usable slot goes to the oldest waiter, or else to the idle stack."""
        if slot.generation != self._generation or self._size > self._limits.max_size:
            self._discard(slot, polite=True)  # drained, or surplus after resize()
        elif not self._waiters or not self._lend_to_waiter(slot):
            self._idle.append(slot)

    async def _usable(self, slot: Slot, deadline: float) -> bool:
        """Check a slot about to be handed out; close it and say False if it is bad."""
        conn = slot.conn
        assert conn is not None
        now = monotonic()
        if now < slot.fresh_until and not conn._stream_broken:
            return True
        if is_broken(conn):
            self._counters.connections_lost += 1
            self._discard(slot, polite=False)
            return False
        if now >= slot.expires_at:
            self._discard(slot, polite=True)
            return False
        try:
            # At least a short budget: a ping cut off by the caller's own
            # deadline would close a healthy connection (asyncmy closes on cancel).
            limit = min(max(deadline - now, _MIN_CHECK_BUDGET), self._options.connect_timeout)
            async with asyncio.timeout(limit):
                await conn.ping(reconnect=False)
                if self._check is not None:
                    await self._check(conn)
        except asyncio.CancelledError:
            # The ping may be half-way: its reply would reach the next user.
            self._discard(slot, polite=False)
            raise
        except Exception as exc:
            logger.info(
                "pool %r: connection failed its check (%s); replacing it", self.name, _describe(exc)
            )
            self._counters.connections_lost += 1
            self._discard(slot, polite=False)
            return False
        slot.fresh_until = min(monotonic() + self._check_after, slot.expires_at)
        return True

    def _timeout_message(self, waited: float) -> str:
        lim = self._limits
        text = (
            f"couldn't get a connection from pool {self.name!r} after {waited:.2f} s "
            f"(size {self._size}/{lim.max_size}, idle {len(self._idle)}, "
            f"in use {len(self._lent)}, waiting {len(self._waiters)}, opening {self._opening})"
        )
        if self._backoff.failing:
            text += f"; opening connections is failing: {_describe(self._last_error)}"
        return text

    # ------------------------------------------------------------------ return

    async def release(self, conn: Connection) -> None:
        """Give back a connection borrowed with ``acquire``.

        An unfinished transaction is rolled back; a connection in an unknown
        state is closed and replaced.  Releasing a connection twice, or one
        from another pool, raises ``PoolError`` and changes nothing.
        """
        slot = self._lent.pop(id(conn), None)
        if slot is None:
            raise self._not_lent_error(conn)
        slot.conn = conn
        now = monotonic()
        result = conn._result
        # Fast path: open pool, no reset configured, not expired, and the
        # connection is clean by the server's status flags: no round trip.
        # A socket that died while lent is caught at the next hand-out or
        # maintenance round; a locally closed one (cancelled) here.
        if (
            self._fast_return
            and now < slot.expires_at
            and conn.connected
            and not conn.get_transaction_status()
            and (result is None or not (result.unbuffered_active or result.has_next))
        ):
            self._counters.usage_s += now - slot.lent_at
            slot.idle_since = now
            fresh = now + self._check_after
            slot.fresh_until = fresh if fresh < slot.expires_at else slot.expires_at
            if not self._waiters or not self._lend_to_waiter(slot):
                self._idle.append(slot)
            return
        await self._return_slow(slot, None)

    async def _release_lease(
        self, conn: Connection, lease: float, exc: BaseException | None
    ) -> None:
        """``connection()``'s return: refuses a connection already returned and lent again."""
        slot = self._lent.get(id(conn))
        if slot is None or slot.lent_at != lease:
            raise self._not_lent_error(conn)
        if exc is None:
            await self.release(conn)
        else:
            del self._lent[slot.key]
            slot.conn = conn
            await self._return_slow(slot, exc)

    def _not_lent_error(self, conn: Connection) -> PoolError:
        return PoolError(
            f"connection {conn!r} is not checked out from pool {self.name!r}: "
            "it was already released, or it belongs to another pool"
        )

    async def _return_slow(self, slot: Slot, exc: BaseException | None) -> None:
        # The return work (rollback, close) runs in a pool-owned task and the
        # caller waits for it shielded: cancelling the caller, even again and
        # again as anyio task groups do, cannot leave the slot half-returned.
        loop = self._opened_loop
        assert loop is not None
        self._counters.usage_s += monotonic() - slot.lent_at
        task = self._spawn(self._finish_return(slot, exc), slot)
        await asyncio.shield(task)

    async def _finish_return(self, slot: Slot, exc: BaseException | None) -> None:
        conn = slot.conn
        assert conn is not None
        unknown = exc is not None and (not isinstance(exc, Exception) or is_connection_error(exc))
        if self._state != _OPEN:
            await self._close_slot(slot)
        elif unknown or is_broken(conn) or has_pending_result(conn):
            self._counters.returns_bad += 1
            logger.debug(
                "pool %r: closing a connection returned in an unknown state (%s)",
                self.name,
                _describe(exc),
            )
            await self._close_slot(slot, polite=not is_broken(conn))
        elif monotonic() >= slot.expires_at:
            await self._close_slot(slot)
        elif not await self._clean_up(conn):
            self._counters.returns_bad += 1
            await self._close_slot(slot, polite=False)
        else:
            now = monotonic()
            slot.idle_since = now
            slot.fresh_until = min(now + self._check_after, slot.expires_at)
            self._put_back(slot)
        await self._notify()

    async def _clean_up(self, conn: Connection) -> bool:
        """Roll back and reset a returned connection; False if that failed."""
        try:
            async with asyncio.timeout(self._options.connect_timeout):
                if self._reset_session:
                    await reset_session(conn, self._baseline)  # also rolls back
                    if self._configure is not None:
                        await self._configure(conn)
                elif conn.get_transaction_status():
                    await conn.rollback()
                if self._reset is not None:
                    await self._reset(conn)
                if conn.get_transaction_status():
                    raise PoolError("the reset callback left a transaction open")
        except Exception as exc:
            logger.info(
                "pool %r: cleaning up a returned connection failed (%s); closing it",
                self.name,
                _describe(exc),
            )
            return False
        return True

    # ------------------------------------------------------------------ opening and closing

    # ------------------------------------------------------------------ context manager

    def connection(self, timeout: float | None = None) -> ConnectionContext:
        """Borrow a connection for an ``async with`` block: one transaction.

        On leaving the block the transaction is committed if the block
        succeeded (only when one is open: the server's status says so, no
        extra round trip otherwise) and rolled back if it raised; a block that
        was cancelled, or that failed with a connection error, gives back a
        connection in an unknown state, which the pool closes and replaces.
        """
        return ConnectionContext(self, timeout)

    # ------------------------------------------------------------------ drain and resize

    async def drain(self) -> None:
        """Retire every current connection: idle ones now, lent ones when returned.

        New connections replace them (for fail-over, or after rotating
        credentials); requests keep being served meanwhile.
        """
        self._check_usable()
        self._generation += 1
        for slot in self._lent.values():
            slot.expires_at = -math.inf  # retire on return
        idle = list(self._idle)
        self._idle.clear()
        logger.info(
            "pool %r: draining %d idle and %d lent connection(s)",
            self.name,
            len(idle),
            len(self._lent),
        )
        await self._close_all(idle)

    async def resize(self, min_size: int, max_size: int) -> None:
        """Change the size limits of an open pool.

        Growing opens connections as needed; shrinking closes surplus idle
        connections at once and surplus lent ones when they are returned.
        """
        self._check_usable()
        self._limits = self._limits.with_sizes(min_size, max_size)
        # Connections being opened are turned away when they arrive (_put_back).
        excess = self._size - self._opening - max_size
        surplus: list[Slot] = []
        while excess > 0 and self._idle:
            surplus.append(self._idle.popleft())  # the least recently used
            excess -= 1
        for slot in list(self._lent.values())[: max(excess, 0)]:
            slot.expires_at = -math.inf  # retire on return
        self._grow()
        await self._close_all(surplus)

    # ------------------------------------------------------------------ stats and introspection

    @property
    def min_size(self) -> int:
        """The configured minimum number of connections."""
        return self._limits.min_size

    @property
    def max_size(self) -> int:
        """The configured maximum number of connections."""
        return self._limits.max_size

    @property
    def closed(self) -> bool:
        """True unless the pool is open (or opening)."""
        return self._state != _OPEN

    def get_stats(self) -> PoolStats:
        """A snapshot of sizes and counters (counters since open or the last ``pop_stats``)."""
        c = self._counters
        idle = len(self._idle)
        return PoolStats(
            pool_min=self._limits.min_size,
            pool_max=self._limits.max_size,
            pool_size=self._size,
            pool_available=idle,
            pool_in_use=self._size - idle - self._opening,
            pool_opening=self._opening,
            requests_waiting=len(self._waiters),
            requests_num=c.requests_num,
            requests_queued=c.requests_queued,
            requests_wait_ms=round(c.requests_wait_ms, 3),
            requests_errors=c.requests_errors,
            usage_ms=round(c.usage_s * 1000.0, 3),
            connections_num=c.connections_num,
            connections_ms=round(c.connections_ms, 3),
            connections_errors=c.connections_errors,
            connections_lost=c.connections_lost,
            returns_bad=c.returns_bad,
        )

    def pop_stats(self) -> PoolStats:
        """Like ``get_stats()``, and reset the counters to zero."""
        stats = self.get_stats()
        self._counters.reset()
        return stats

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} {self._state} "
            f"size={self._size}/{self._limits.max_size} idle={len(self._idle)}>"
        )

    # ------------------------------------------------------------------ maintenance hooks

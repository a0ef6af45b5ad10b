"""AsyncConnectionPool: the public pool, gluing the ledger to its workers.

How the pieces fit:

* ``_ledger.Ledger`` owns the books (idle stack, slot table and loans, waiters, counts)
  and decides every change to them in plain synchronous methods.  asyncio
  runs one task at a time, so each such call is atomic: what holding the
  Condition's lock would give, without paying for the lock on the hot path.
* Workers carry out what needs I/O, each holding the ledger: the opener
  (``_opener``), the closer (``_closer``), the checker (``_checker``), the
  returner (``_returner``) and the maintenance loop (``_maintenance``).
* This class holds no bookkeeping of its own: the life cycle (loop, Condition,
  fork) and argument checks.  Its two hot methods, ``acquire`` and
  ``release``, are functions of the pool in ``_loans`` (so that the compiled
  build can compile them): they ask the ledger for an idle connection (or
  give one back) without awaiting anything, and a request that must wait
  goes on to ``_handout.acquire_slow``.  ``connection()``'s context manager
  (``_context``) holds its own copy of both fast paths.
* The Condition is where tasks wait for the pool's state to change (``open``
  waiting for ``min_size`` connections, ``close`` waiting for borrowers);
  connection requests wait on their own futures in the ledger's FIFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import weakref
from collections.abc import Awaitable, Callable, Iterable
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Self

from . import _loans
from ._checker import Checker
from ._closer import Closer, drop_socket
from ._common import check_timeout, describe, logger
from ._config import ConnectOptions, PoolLimits, check_connect_kwargs, check_pool_arguments
from ._context import ConnectionContext, new_context
from ._deadlines import Deadlines
from ._gate import Gate
from ._health import is_unreachable
from ._leaks import capture_origin
from ._ledger import CLOSED, CLOSING, FORKED, NEW, OPEN, Ledger
from ._listeners import Listeners
from ._maintenance import Maintenance
from ._opener import Opener
from ._protocols import Connection, ConnectionCallback, ConnectionFactory
from ._reset import baseline_sql
from ._returner import Returner
from ._slot import Slot
from ._stats import PoolStats, snapshot
from ._stopper import StatementStopper
from ._tasks import TaskSet, outcome_of
from ._waiters import Waiter
from .errors import PoolClosed, PoolError, PoolTimeout, TooManyRequests, WrongEventLoop
from .events import AcquireEvent, ReleaseEvent, ReleaseOutcome, TimeoutEvent

__all__ = ["AsyncConnectionPool", "ConnectionContext"]

_open_pools: weakref.WeakSet[AsyncConnectionPool] = weakref.WeakSet()


def _forget_pools_after_fork() -> None:
    for pool in list(_open_pools):
        pool._forget_after_fork()


os.register_at_fork(after_in_child=_forget_pools_after_fork)

# How long open() keeps trying a server it has never reached before it says so.
_UNREACHABLE_GRACE = 2.0


class AsyncConnectionPool:
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
    * ``kill_cancelled_queries``: when a borrower is cancelled while its
      statement runs (a timeout, a client gone), send ``KILL QUERY`` for it
      from a side connection, so the server stops it and frees its locks
      (default ``True``).
    * ``leak_threshold``: log a warning, with the acquiring stack, for any
      connection lent out longer than this.
    * ``listeners``: objects told about every connect, hand-out, return,
      time-out and close (see ``aiopool.events``).
    * ``connection_factory``: opens a connection from keyword arguments
      (default ``asyncmy.connect``).
    * ``connect_timeout`` (in the URL or as a keyword, default 10): bounds the
      TCP connect *and* the login, and every round trip the pool makes itself
      (ping, rollback).
    """

    # NullConnectionPool keeps no idle connections.
    _keeps_idle: ClassVar[bool] = True

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
        kill_cancelled_queries: bool = True,
        leak_threshold: float | None = None,
        listeners: Iterable[object] = (),
        connection_factory: ConnectionFactory | None = None,
        **connect_kwargs: Any,
    ) -> None:
        limits = PoolLimits.build(
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            max_waiting=max_waiting,
            max_lifetime=max_lifetime,
            max_idle=max_idle,
            check_after=check_after,
            keepalive=keepalive,
        )
        options = ConnectOptions.build(url, connect_kwargs)
        check_connect_kwargs(options.kwargs, connection_factory, AsyncConnectionPool.__init__)
        reconnect_timeout = check_timeout("reconnect_timeout", reconnect_timeout)
        if leak_threshold is not None:
            leak_threshold = check_timeout("leak_threshold", leak_threshold)
        check_pool_arguments(
            name=name,
            callbacks={
                "configure": configure,
                "check": check,
                "reset": reset,
                "reconnect_failed": reconnect_failed,
                "connection_factory": connection_factory,
            },
            flags={
                "reset_session": reset_session,
                "kill_cancelled_queries": kill_cancelled_queries,
            },
            listeners=listeners,
        )
        self.name: str = name or options.address
        """The pool's name, in logs, errors and metrics (never shows the password)."""
        self._options = options
        # Recording the acquiring stack costs tens of microseconds: only on request.
        self._track_origin = leak_threshold is not None
        # With a reset to run, every return takes the slow path.
        self._resets_on_return = bool(reset_session) or reset is not None
        ledger = self._ledger = Ledger(limits, keep_idle=self._keeps_idle)
        self._listeners = Listeners(listeners)
        self._tasks = TaskSet()
        self._deadlines = Deadlines()
        self._closer = Closer(ledger, self._tasks, self._listeners, self.name)
        on_outage = None if reconnect_failed is None else functools.partial(reconnect_failed, self)
        self._opener = Opener(
            ledger,
            self._closer,
            self._listeners,
            name=self.name,
            options=options,
            factory=connection_factory,
            configure=configure,
            max_lifetime=lambda: ledger.limits.max_lifetime,
            notify=self._notify,
            reconnect_timeout=reconnect_timeout,
            on_outage=on_outage,
        )
        self._stopper = StatementStopper(
            self._opener.open_unpooled,
            self._tasks,
            name=self.name,
            timeout=options.connect_timeout,
        )
        self._checker = Checker(
            ledger, name=self.name, check=check, timeout=options.connect_timeout
        )
        self._returner = Returner(
            ledger,
            self._listeners,
            name=self.name,
            timeout=options.connect_timeout,
            reset_session=bool(reset_session),
            baseline=baseline_sql(options.kwargs),
            configure=configure,
            reset=reset,
            notify=self._notify,
            stop_statement=self._stopper.stop if kill_cancelled_queries else None,
        )
        self._maintenance = Maintenance(
            ledger,
            self._tasks,
            self._checker,
            self._closer,
            self._opener,
            name=self.name,
            leak_threshold=leak_threshold,
        )
        ledger.bind(open=self._opener.start, close=self._closer.close, recheck=self._opener.recheck)
        # What the fast paths test: the pool's loop and their switches
        # (acquire() and release() read them here, as does connection()).
        self._gate = Gate(ledger, self._deadlines)
        self._listeners_changed()
        self._opened_loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._cond: asyncio.Condition | None = None
        self._closed_event: asyncio.Event | None = None
        self._maintenance_task: asyncio.Task[None] | None = None
        self._forked_leftovers: list[Slot] = []

    # ------------------------------------------------------------------ life cycle

    async def open(
        self, wait: bool = True, timeout: float | None = None, *, wait_for_server: bool = False
    ) -> None:
        """Start the pool in the running event loop.

        With ``wait=True`` (the default) return once ``min_size`` connections
        are ready; if they cannot be made within ``timeout`` (default: the
        pool's ``timeout``), close the pool and raise the cause: the server's
        own error for a wrong password or unknown database at once, otherwise
        ``PoolTimeout`` naming the last connection error.  A cancelled
        ``open()`` closes the pool too.

        A server that cannot be reached at all (nothing listening on the
        port, a host name that does not resolve) fails ``open()`` within about
        two seconds with ``PoolError`` naming the address, rather than after
        the whole ``timeout``: that is usually a wrong URL.  Pass
        ``wait_for_server=True`` to keep trying for the whole ``timeout``
        instead, for a server that is still starting (containers, CI).
        """
        loop = asyncio.get_running_loop()
        # Checked before the pool starts: a bad argument must leave it unopened.
        limit = check_timeout(
            "timeout", self._ledger.limits.timeout if timeout is None else timeout
        )
        state = self._ledger.state
        if state == OPEN:
            self._check_loop(loop)
        elif state == NEW:
            self._start(loop)
        elif state == FORKED:
            raise self._forked_error()
        else:
            raise PoolClosed(f"pool {self.name!r} is closed; create a new pool to reconnect")
        if wait:
            try:
                await self._wait_ready(limit, wait_for_server)
            except BaseException:
                await self.close()
                raise

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._opened_loop = loop
        self._gate.open(loop, fast_return=not self._resets_on_return)
        self._pid = os.getpid()
        # Created here, not in __init__: asyncio primitives belong to a loop.
        self._cond = asyncio.Condition()
        self._closed_event = asyncio.Event()
        self._tasks.loop = loop
        self._opener.attach(loop)
        _open_pools.add(self)
        self._maintenance_task = loop.create_task(
            self._maintenance.run(), name=f"aiopool maintenance {self.name}"
        )
        logger.debug("pool %r opening (min_size=%d)", self.name, self._ledger.limits.min_size)
        self._ledger.start(monotonic())

    async def _wait_ready(self, timeout: float, wait_for_server: bool) -> None:
        ledger = self._ledger
        want = ledger.limits.min_size
        backoff = ledger.backoff
        give_up_at = monotonic() + _UNREACHABLE_GRACE

        def unreachable() -> bool:
            return (
                not wait_for_server
                and not backoff.ever_connected
                and is_unreachable(backoff.last_error)
                and monotonic() >= give_up_at
            )

        def ready() -> bool:
            return (
                ledger.state != OPEN  # close() ran meanwhile: nothing will come
                or ledger.size - ledger.opening >= want
                or backoff.fatal_error is not None
                or unreachable()
            )

        if not await self._wait_until(ready, timeout):
            have = ledger.size - ledger.opening
            raise PoolTimeout(
                f"pool {self.name!r} could not open {want} connection(s) within "
                f"{timeout:g} s ({have} ready); last connection error: "
                f"{describe(backoff.last_error)}"
            ) from backoff.last_error
        if ledger.state != OPEN:
            raise PoolClosed(f"pool {self.name!r} was closed while open() waited for it")
        if backoff.fatal_error is not None:
            raise backoff.fatal_error
        if ledger.size - ledger.opening < want and unreachable():
            raise PoolError(
                f"pool {self.name!r} cannot reach the server at {self._options.address}: "
                f"{describe(backoff.last_error)}. Check the host and port in the URL; for a "
                "server that is still starting, use 'await pool.open(wait_for_server=True)'"
            ) from backoff.last_error

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

    async def _notify(self) -> None:
        cond = self._cond
        if cond is not None:
            async with cond:
                cond.notify_all()

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pool; calling it again does nothing.

        Waiting requests get ``PoolClosed`` at once, idle connections are
        closed at once, and connections still lent out are closed when they
        are returned, or closed anyway once ``timeout`` seconds have passed.
        """
        timeout = check_timeout("timeout", timeout)
        ledger = self._ledger
        if ledger.state in (CLOSED, FORKED):
            return
        if ledger.state == NEW:
            ledger.close_unopened()
            return
        # From another loop (or thread) the closing work would wait forever on
        # this loop's futures, or corrupt it: refuse before changing anything.
        self._check_loop(asyncio.get_running_loop())
        if ledger.state == CLOSING:
            assert self._closed_event is not None
            await self._closed_event.wait()
            return
        self._gate.shut()
        _open_pools.discard(self)
        idle = ledger.begin_close(PoolClosed(f"pool {self.name!r} was closed"))
        self._deadlines.stop()  # every waiter was just failed
        # Before the first await: a close() cancelled there must not strand
        # the idle connections just taken off the books, sockets open.
        now = monotonic()
        for slot in idle:
            ledger.retire(slot, "pool_closed", now)
        try:
            await self._stop_background_tasks()
            await self._closer.wait_closing()
            # One deadline for the borrowers and for the pool's own work in
            # flight (a ping, a check, a return): on a hung link each of those
            # may take connect_timeout, and close() must not wait twice.
            deadline = monotonic() + timeout
            await self._wait_borrowers(timeout)
            await self._tasks.wait(max(0.0, deadline - monotonic()))
            await self._cut_short()
        finally:
            self._close_everything_left()
            assert self._closed_event is not None
            self._closed_event.set()
            logger.debug("pool %r closed", self.name)

    async def _stop_background_tasks(self) -> None:
        tasks = [*self._opener.tasks.tasks]
        if self._maintenance_task is not None:
            tasks.append(self._maintenance_task)
            self._maintenance_task.cancel()
        self._opener.stop()  # done-callbacks settle the accounting
        if tasks:
            await asyncio.wait(tasks)

    async def _wait_borrowers(self, timeout: float) -> None:
        ledger = self._ledger
        if await self._wait_until(ledger.is_quiet, timeout):
            return
        stuck = list(ledger.lent.values())
        busy = len(self._tasks.tasks)
        logger.warning(
            "pool %r: %d connection(s) still in use and %d pool task(s) (checks, returns, "
            "closes) still running %g s after close(); closing them",
            self.name,
            len(stuck),
            busy,
            timeout,
        )
        for slot in stuck:
            # Left lent: the borrower's release() finishes the accounting.
            drop_socket(slot)
        await self._cut_short()

    async def _cut_short(self) -> None:
        """Cancel the pool's work still running and let it end before close() returns.

        Each task's done-callback closes the slot it owned, so close() returns
        with every socket closed rather than a loop turn or more later (never,
        if the caller stops the loop then).  A cancelled task ends at its next
        step; the bound only guards against one that swallows cancellation.
        """
        tasks = list(self._tasks.tasks)
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=1.0)

    def _close_everything_left(self) -> None:
        self._tasks.cancel_all()  # done-callbacks close what each task owned
        self._opener.stop()
        for slot in self._ledger.finish_close():
            self._closer.finish(slot)

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
        self._forked_leftovers.extend(self._ledger.forget_after_fork())
        self._tasks.forget()
        self._opener.tasks.forget()
        self._deadlines.stop()
        self._maintenance_task = None
        self._gate.shut()

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

    def _server_answers(self) -> None:
        # A ClusterPool's probe just connected to this pool's server: end the
        # back-off's pause so the pool reconnects now (see Opener.retry_now).
        if self._gate.here():
            self._opener.retry_now()

    def _check_usable(self) -> asyncio.AbstractEventLoop:
        """The loop to work in, or the error that says why the pool can't be used."""
        state = self._ledger.state
        if state != OPEN:
            if state == FORKED:
                raise self._forked_error()
            if state == NEW:
                raise PoolClosed(
                    f"pool {self.name!r} is not open yet: use 'async with pool' or "
                    "'await pool.open()' first"
                )
            raise PoolClosed(f"pool {self.name!r} is closed")
        loop = self._gate.loop
        if loop is not None and self._gate.here():
            # Known without get_running_loop(), whose getpid() on Python 3.11
            # was 15 % of the CPU in W4 (py-spy).
            return loop
        loop = asyncio.get_running_loop()
        self._check_loop(loop)
        return loop

    # ------------------------------------------------------------------ hand-out

    # The two hot methods are functions of the pool, compiled in the compiled
    # build (see _loans); these signatures are what type checkers and the
    # documentation read.
    if TYPE_CHECKING:

        async def acquire(self, timeout: float | None = None) -> Connection:
            """Borrow a connection; give it back with ``release``.

            Waits up to ``timeout`` seconds (default: the pool's ``timeout``) and
            raises ``PoolTimeout`` after that.  Prefer ``connection()``, which
            always gives the connection back.
            """

        async def release(self, conn: Connection) -> None:
            """Give back a connection borrowed with ``acquire``.

            An unfinished transaction is rolled back; a connection in an unknown
            state is closed and replaced.  Releasing a connection twice, or one
            from another pool, raises ``PoolError`` and changes nothing.
            """

    else:
        acquire = _loans.acquire
        release = _loans.release

    def _lent_now(self, conn: Connection, waited: float, queued: bool) -> None:
        """What a hand-out reports, when leak tracking or an acquire listener wants it."""
        if self._track_origin:
            self._note_origin(conn)
        if self._listeners.acquire:
            event = AcquireEvent(self.name, waited, queued)
            self._listeners.emit(self._listeners.acquire, event)

    def _note_origin(self, conn: Connection) -> None:
        slot = self._ledger.slots[id(conn)]
        slot.origin = capture_origin()
        slot.warned = False

    def _check_room(self) -> None:
        """Refuse to queue one more request past ``max_waiting``."""
        ledger = self._ledger
        max_waiting = ledger.limits.max_waiting
        if max_waiting and len(ledger.waiters) >= max_waiting:
            ledger.counters.requests_errors += 1
            raise TooManyRequests(
                f"pool {self.name!r} already has {len(ledger.waiters)} requests waiting "
                f"(max_waiting={max_waiting}); refusing this one"
            )

    def _timed_out(self, waiter: Waiter, start: float) -> NoReturn:
        ledger = self._ledger
        ledger.give_up(waiter, monotonic())
        ledger.counters.requests_errors += 1
        waited = monotonic() - start
        if self._listeners.timeout:
            self._listeners.emit(self._listeners.timeout, TimeoutEvent(self.name, waited))
        raise PoolTimeout(self._timeout_message(waited))

    def _timeout_message(self, waited: float) -> str:
        ledger = self._ledger
        text = (
            f"couldn't get a connection from pool {self.name!r} after {waited:.2f} s "
            f"(size {ledger.size}/{ledger.limits.max_size}, idle {len(ledger.idle)}, "
            f"in use {ledger.lent_count}, waiting {len(ledger.waiters)}, "
            f"opening {ledger.opening})"
        )
        backoff = ledger.backoff
        if backoff.failing:
            text += f"; opening connections is failing: {describe(backoff.last_error)}"
        elif backoff.attempts and backoff.last_error is not None:
            text += f"; new connections are failing after opening: {describe(backoff.last_error)}"
        return text

    # ------------------------------------------------------------------ return

    def _report_return(self, slot: Slot) -> None:
        outcome: ReleaseOutcome = "closed" if slot.closing else "reused"
        self._listeners.emit(self._listeners.release, ReleaseEvent(self.name, slot.held, outcome))

    def _check_release_loop(self, conn: Connection) -> None:
        """Off the fast path: the loop check, and a release of a connection not lent."""
        if self._ledger.state in (OPEN, CLOSING):
            self._check_loop(asyncio.get_running_loop())
        if self._ledger.slot_of(conn) is None:
            raise self._not_lent_error(conn)

    def _not_lent_error(self, conn: Connection) -> PoolError:
        return PoolError(
            f"connection {conn!r} is not checked out from pool {self.name!r}: "
            "it was already released, or it belongs to another pool"
        )

    def _return_slow(
        self, conn: Connection, lease: float | None, exc: BaseException | None
    ) -> asyncio.Future[None]:
        # The return work (rollback, close) starts now in a pool-owned task and
        # the caller waits for it shielded: cancelling the caller, even again
        # and again as anyio task groups do, cannot leave the slot half-returned.
        now = monotonic()
        slot = self._ledger.take_back(conn, now, lease)
        if slot is None:
            raise self._not_lent_error(conn)
        work = self._returner.finish(slot, slot.held, exc)
        task = self._tasks.spawn(work, functools.partial(self._closer.reclaim, slot))
        return outcome_of(task)

    # ------------------------------------------------------------------ context manager

    def connection(self, timeout: float | None = None) -> ConnectionContext:
        """Borrow a connection for an ``async with`` block: one transaction.

        On leaving the block the transaction is committed if the block
        succeeded (only when one is open: the server's status says so, no
        extra round trip otherwise) and rolled back if it raised; a block that
        was cancelled, or that failed with a connection error, gives back a
        connection in an unknown state, which the pool closes and replaces.
        """
        if timeout is not None:
            check_timeout("timeout", timeout)
        return new_context(self, self._gate, timeout)

    # ------------------------------------------------------------------ operations

    async def drain(self) -> None:
        """Retire every current connection: idle ones now, lent ones when returned.

        New connections replace them (for fail-over, or after rotating
        credentials); requests keep being served meanwhile.
        """
        self._check_usable()
        idle, lent = self._ledger.drain(monotonic())
        logger.info("pool %r: draining %d idle and %d lent connection(s)", self.name, idle, lent)
        await self._closer.wait_closing()

    async def resize(self, min_size: int, max_size: int) -> None:
        """Change the size limits of an open pool.

        Growing opens connections as needed; shrinking closes surplus idle
        connections at once and surplus lent ones when they are returned.
        """
        self._check_usable()
        limits = self._ledger.limits.with_sizes(min_size, max_size)
        self._ledger.resize(limits, monotonic())
        await self._closer.wait_closing()

    async def check(self) -> None:
        """Check every idle connection now: ping it (and run ``check=``), replace the bad.

        Connections are taken out of the idle stack one at a time, so the
        others stay available and hand-outs go on meanwhile; a healthy one
        goes straight back, a failed one is closed, counted in
        ``connections_lost`` and replaced (at the back-off's pace if new
        connections keep failing).  Cancelling the caller does not strand
        the connection being checked.
        """
        self._check_usable()
        ledger = self._ledger
        for slot in list(ledger.idle):
            if not ledger.take_for_check(slot):
                continue  # lent or retired meanwhile
            task = self._tasks.spawn(
                self._checker.recheck_idle(slot, run_check=True),
                functools.partial(self._closer.reclaim, slot),
            )
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not task.cancelled() or (current is not None and current.cancelling()):
                    raise  # the caller itself was cancelled
                # close() cut the check short: the caller was not cancelled.
                raise PoolClosed(f"pool {self.name!r} was closed during check()") from None

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: object) -> None:
        """Tell ``listener`` about this pool's events from now on (see ``aiopool.events``)."""
        self._listeners.add(listener)
        self._listeners_changed()

    def remove_listener(self, listener: object) -> None:
        """Stop telling ``listener``; ``ValueError`` if it is not registered."""
        self._listeners.remove(listener)
        self._listeners_changed()

    def _listeners_changed(self) -> None:
        self._gate.lend_hooks = self._track_origin or bool(self._listeners.acquire)
        self._gate.return_hooks = bool(self._listeners.release)

    # ------------------------------------------------------------------ stats and introspection

    @property
    def min_size(self) -> int:
        """The configured minimum number of connections."""
        return self._ledger.limits.min_size

    @property
    def max_size(self) -> int:
        """The configured maximum number of connections."""
        return self._ledger.limits.max_size

    @property
    def closed(self) -> bool:
        """True unless the pool is open (or opening)."""
        return self._ledger.state != OPEN

    def get_stats(self) -> PoolStats:
        """A snapshot of sizes and counters (counters since open or the last ``pop_stats``)."""
        return snapshot(self._ledger)

    def pop_stats(self) -> PoolStats:
        """Like ``get_stats()``, and reset the counters to zero."""
        stats = self.get_stats()
        self._ledger.counters.reset()
        return stats

    def __repr__(self) -> str:
        ledger = self._ledger
        return (
            f"<{type(self).__name__} {self.name!r} {ledger.state} "
            f"size={ledger.size}/{ledger.limits.max_size} idle={len(ledger.idle)}>"
        )

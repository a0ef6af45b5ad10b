"""Opening connections for the pool: connect, configure, TLS rules, and the back-off pace.

The ledger decides when a connection is wanted and counts its place; the
opener runs one pool task per wanted connection and reports back: a slot, or
a failure.  While failing, the ledger keeps a single opener probing, and every
attempt waits for the back-off's next attempt time, so neither a refusing
server nor one that fails its new connections' checks is flooded.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any, cast

from ._closer import Closer
from ._common import describe, logger, thread_id
from ._config import ConnectOptions
from ._health import close_hard, errno_of, is_encrypted, is_fatal_connect_error, is_tls_failure
from ._ledger import OPEN, Ledger
from ._listeners import Listeners
from ._protocols import Connection, ConnectionCallback, ConnectionFactory
from ._slot import Slot
from ._tasks import TaskSet
from .errors import PoolError
from .events import ConnectEvent

__all__ = ["Opener", "default_factory"]

# How far below max_lifetime a connection may retire, so a batch opened
# together does not expire together.
_LIFETIME_JITTER = 0.05

# Server refusals that name one of its own limits, said in the warning.
_SERVER_LIMITS = {
    1040: "the server's max_connections",
    1203: "this user's max_user_connections",
    1226: "a per-user resource limit",
}


# asyncmy asks the transport for its socket (keep-alive, TCP_NODELAY) right
# after connecting; when the server hung up in between (a dying server accepts,
# then closes), uvloop has no socket to give and asyncmy raises this.
_NO_SOCKET = "Transport does not expose socket instance"


async def default_factory(**kwargs: Any) -> Connection:
    """``asyncmy.connect``, imported on first use.

    A server that closes the connection while it is being opened is reported
    as a ``ConnectionResetError`` that says so, not as asyncmy's RuntimeError.
    """
    import asyncmy

    try:
        # asyncmy's own stubs describe a narrower Connection than our Protocol.
        return cast(Connection, await asyncmy.connect(**kwargs))
    except RuntimeError as exc:
        if str(exc) != _NO_SOCKET:
            raise
        raise ConnectionResetError(
            f"the server closed the connection while it was being opened ({_NO_SOCKET})"
        ) from exc


class _Attempt:
    """Whether an opener task handed its place over (else its done-callback frees it)."""

    __slots__ = ("settled",)

    def __init__(self) -> None:
        self.settled = False


class Opener:
    """Runs the ledger's wanted openers; owns the connect, the pace and the outage report."""

    def __init__(
        self,
        ledger: Ledger,
        closer: Closer,
        listeners: Listeners,
        *,
        name: str,
        options: ConnectOptions,
        factory: ConnectionFactory | None,
        configure: ConnectionCallback | None,
        max_lifetime: Callable[[], float],
        notify: Callable[[], Awaitable[None]],
        reconnect_timeout: float,
        on_outage: Callable[[], Awaitable[None] | None] | None,
    ) -> None:
        self._ledger = ledger
        self._closer = closer
        self._listeners = listeners
        self._name = name
        self._options = options
        self._factory: ConnectionFactory = factory or default_factory
        self._configure = configure
        self._max_lifetime = max_lifetime
        self._notify = notify
        self._reconnect_timeout = reconnect_timeout
        self._on_outage = on_outage
        self.tasks = TaskSet()
        self._recheck_handle: asyncio.TimerHandle | None = None
        # Set and cleared at once by retry_now(): wakes every opener pausing now.
        # Made in attach(): asyncio primitives belong to a loop.
        self._retry: asyncio.Event | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the openers in ``loop`` (the pool is opening)."""
        self.tasks.loop = loop
        self._retry = asyncio.Event()

    # ------------------------------------------------------------------ the ledger's effects

    def start(self, generation: int) -> None:
        """Open one connection in a pool task (the ledger counted its place)."""
        if not self.tasks.usable():
            # The loop is closed: a pool never closed whose lent connection was
            # garbage-collected after asyncio.run() returned.  Nothing can open
            # here; give the place back without asking the ledger to grow again.
            self._ledger.opener_not_started()
            return
        attempt = _Attempt()
        self.tasks.spawn(
            self._open_one(generation, attempt),
            lambda: self._ended(attempt),
            name=f"aiopool opener {self._name}",
        )

    def recheck(self, delay: float) -> None:
        """Ask the ledger again in ``delay`` seconds whether to grow (one timer at most)."""
        loop = self.tasks.loop
        if self._recheck_handle is not None or loop is None or loop.is_closed():
            return
        self._recheck_handle = loop.call_later(delay, self._recheck_now)

    @property
    def recheck_pending(self) -> bool:
        """Whether the ledger asked to reconsider growth and the timer has not fired yet."""
        return self._recheck_handle is not None

    def _recheck_now(self) -> None:
        self._recheck_handle = None
        self._ledger.grow(monotonic())

    def retry_now(self) -> None:
        """The server was seen accepting connections elsewhere: end the back-off's pause.

        A ClusterPool calls this when its probe connects to a node again, so
        the node's pool reconnects at once instead of up to the back-off's cap
        later.  One attempt follows, paced as before if it fails.
        """
        if not self._ledger.server_answers(monotonic()):
            return
        logger.info("pool %r: the server answers again; retrying to connect now", self._name)
        if self._retry is not None:
            self._retry.set()
            self._retry.clear()

    def stop(self) -> None:
        """Cancel the openers and the recheck timer (the pool is closing)."""
        if self._recheck_handle is not None:
            self._recheck_handle.cancel()
            self._recheck_handle = None
        self.tasks.cancel_all()

    def _ended(self, attempt: _Attempt) -> None:
        # A done-callback, not a finally: it also runs for an opener cancelled
        # before its first step (close() right after open()).
        if not attempt.settled:
            self._ledger.opener_ended(monotonic())

    # ------------------------------------------------------------------ one opener

    async def _open_one(self, generation: int, attempt: _Attempt) -> None:
        ledger = self._ledger
        while ledger.state == OPEN:
            pause = ledger.backoff.next_attempt_at - monotonic()
            if pause > 0:
                # retry_now() may end the pause early.
                assert self._retry is not None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._retry.wait()
                continue  # the state may have changed meanwhile
            start = monotonic()
            try:
                conn = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc, start)
                if not ledger.opener_should_retry():
                    return
                await self._notify()
                continue
            now = monotonic()
            self._emit(now - start, None)
            lifetime = self._max_lifetime() * (1.0 - _LIFETIME_JITTER * random.random())
            slot = Slot(conn, now, now + lifetime, generation, self._closer.collected)
            attempt.settled = True
            logger.debug("pool %r: opened connection %d", self._name, thread_id(conn))
            if ledger.backoff.failing:
                logger.info("pool %r: connecting works again", self._name)
            ledger.opener_connected(slot, now - start, now)
            await self._notify()
            return

    def _emit(self, duration: float, error: BaseException | None) -> None:
        if self._listeners.connect:
            event = ConnectEvent(self._name, duration, error)
            self._listeners.emit(self._listeners.connect, event)

    def _failed(self, exc: BaseException, start: float) -> None:
        now = monotonic()
        self._emit(now - start, exc)
        backoff = self._ledger.backoff
        first = not backoff.failing
        changed = describe(exc) != describe(backoff.last_error)
        self._ledger.opener_failed(exc, now, fatal=is_fatal_connect_error(exc))
        if first or changed:
            limit = _SERVER_LIMITS.get(errno_of(exc) or 0)
            hint = f" (the server refuses: {limit} is reached)" if limit else ""
            logger.warning(
                "pool %r: opening a connection to %s failed%s: %s",
                self._name,
                self._options.address,
                hint,
                describe(exc),
            )
        else:
            logger.debug("pool %r: still failing to connect: %s", self._name, describe(exc))
        self.maybe_report_outage(now)

    def maybe_report_outage(self, now: float) -> None:
        """After ``reconnect_timeout`` of failing: log an error and call ``reconnect_failed``."""
        backoff = self._ledger.backoff
        since = backoff.failing_since
        if since is None or backoff.reported or now - since < self._reconnect_timeout:
            return
        backoff.reported = True
        logger.error(
            "pool %r: could not open connections for %.0f s: %s",
            self._name,
            now - since,
            describe(backoff.last_error),
        )
        if self._on_outage is not None and self.tasks.usable():
            self.tasks.spawn(self._call_on_outage())

    async def _call_on_outage(self) -> None:
        assert self._on_outage is not None
        try:
            result = self._on_outage()
            if result is not None:
                await result
        except Exception:
            logger.exception("pool %r: reconnect_failed callback raised", self._name)

    # ------------------------------------------------------------------ connecting

    async def _connect(self) -> Connection:
        """One configured connection, within ``connect_timeout`` for login and configure."""
        timeout = self._options.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                conn = await self._open_connection()
        except TimeoutError:
            raise TimeoutError(
                f"connecting to {self._options.address} took longer than "
                f"connect_timeout={timeout:g} s (TCP connect and login)"
            ) from None
        try:
            if self._configure is not None:
                async with asyncio.timeout(timeout):
                    pending = self._configure(conn)
                    if not inspect.isawaitable(pending):
                        raise TypeError(
                            "configure must be an async function (async def configure(conn)); "
                            f"it returned {type(pending).__name__}, not an awaitable"
                        )
                    await pending
                if conn.get_transaction_status():
                    raise PoolError(
                        "the configure callback left a transaction open; "
                        "commit it (await conn.commit()) at the end of configure"
                    )
        except BaseException:
            close_hard(conn)
            raise
        return conn

    async def open_unpooled(self) -> Connection:
        """A connection outside the pool's books, for the pool's own errands (``KILL QUERY``).

        Opened as the pool's are (credentials, TLS rules) but not configured:
        it runs one statement of the pool's and is closed.
        """
        return await self._open_connection()

    async def _open_connection(self) -> Connection:
        """One connection, with a fresh password and the TLS mode's rules applied."""
        options = self._options
        kwargs = options.kwargs
        if options.password_source is not None:
            password = options.password_source()
            if inspect.isawaitable(password):
                password = await password
            kwargs = {**kwargs, "password": password}
        tls = options.tls
        try:
            conn = await self._factory(**kwargs)
        except Exception as exc:
            if tls.context is not None and not tls.fallback_to_plain and is_tls_failure(exc):
                # Retrying cannot fix a certificate or a server without TLS.
                hint = ""
                if "WRONG_VERSION_NUMBER" in str(exc):
                    hint = " (the server does not seem to support TLS: is it started with TLS?)"
                raise PoolError(
                    f"TLS with {options.address} failed (ssl_mode={tls.mode.value}){hint}: "
                    f"{describe(exc)}"
                ) from exc
            if not tls.fallback_to_plain or not is_tls_failure(exc):
                raise
            # ssl_mode=PREFERRED: this server cannot do TLS; plain text it is.
            logger.debug(
                "pool %r: TLS failed (%s); PREFERRED falls back to plain text",
                self._name,
                describe(exc),
            )
            plain = {key: value for key, value in kwargs.items() if key != "ssl"}
            return await self._factory(**plain)
        if tls.must_encrypt and not is_encrypted(conn):
            close_hard(conn)
            raise PoolError(
                f"ssl_mode={tls.mode.value} but the connection to {options.address} is not "
                "encrypted; refusing to use it"
            )
        return conn

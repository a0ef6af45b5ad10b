"""Opening connections for the pool, in its own tasks, with back-off while failing."""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
from time import monotonic
from typing import Any, cast

from ._base import (
    _LIFETIME_JITTER,
    _OPEN,
    _describe,
    _thread_id,
    logger,
)
from ._closing import Closing
from ._health import (
    close_hard,
    is_encrypted,
    is_fatal_connect_error,
    is_tls_failure,
)
from ._protocols import Connection
from ._slot import Slot
from .errors import PoolError


class _Opener:
    """Whether an opener task handed its place over (else its done-callback frees it)."""

    __slots__ = ("settled",)

    def __init__(self) -> None:
        self.settled = False


async def _default_factory(**kwargs: Any) -> Connection:
    import asyncmy

    # asyncmy's own stubs describe a narrower Connection than our Protocol.
    return cast(Connection, await asyncmy.connect(**kwargs))


class Opening(Closing):
    """Starting openers for ``min_size`` and for waiters, and opening one connection."""

    def _grow(self) -> None:
        """Start openers for missing ``min_size`` connections and for waiters."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        lim = self._limits
        room = lim.max_size - self._size
        if room <= 0:
            return
        wanted = max(lim.min_size - self._size, len(self._waiters) - self._opening)
        if self._backoff.failing:
            # One opener probes a failing server; the rest follow its success.
            wanted = min(wanted, 1 - self._opening)
        for _ in range(min(room, wanted)):
            self._size += 1
            self._opening += 1
            opener = _Opener()
            task = loop.create_task(self._open_one(self._generation, opener))
            self._openers.add(task)
            task.add_done_callback(functools.partial(self._opener_done, opener=opener))

    def _opener_done(self, task: asyncio.Task[None], *, opener: _Opener) -> None:
        # A done-callback, not a finally: it also runs for an opener cancelled
        # before its first step (close() right after open()).
        self._openers.discard(task)
        if not opener.settled:
            self._opening -= 1
            self._size -= 1
            self._grow()

    def _still_needed(self) -> bool:
        # Called by an opener that failed: keep trying while requests wait or
        # the pool is below min_size (counting this opener's own place).
        return bool(self._waiters) or self._size - self._opening < self._limits.min_size

    async def _open_one(self, generation: int, opener: _Opener) -> None:
        """Open one connection for the pool and hand it over (settling ``opener``)."""
        while self._state == _OPEN:
            try:
                slot = await self._connect(generation)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self._connect_failed(exc)
                # While failing, one opener keeps probing; the others step back.
                if self._opening > 1 or not self._still_needed():
                    return
                await self._notify()
                await asyncio.sleep(delay)
                continue
            self._connect_succeeded()
            self._opening -= 1
            opener.settled = True
            if generation != self._generation:
                self._discard(slot, polite=True)  # drained while it was being opened
            else:
                self._put_back(slot)
            await self._notify()
            return

    async def _connect(self, generation: int) -> Slot:
        start = monotonic()
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
                    await self._configure(conn)
                if conn.get_transaction_status():
                    raise PoolError(
                        "the configure callback left a transaction open; "
                        "commit it (await conn.commit()) at the end of configure"
                    )
        except BaseException:
            close_hard(conn)
            raise
        now = monotonic()
        self._counters.connections_num += 1
        self._counters.connections_ms += (now - start) * 1000.0
        lifetime = self._limits.max_lifetime * (1.0 - _LIFETIME_JITTER * random.random())
        slot = Slot(conn, now, now + lifetime, generation, self._collected)
        slot.fresh_until = min(now + self._check_after, slot.expires_at)
        logger.debug("pool %r: opened connection %d", self.name, _thread_id(conn))
        return slot

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
                    f"{_describe(exc)}"
                ) from exc
            if not tls.fallback_to_plain or not is_tls_failure(exc):
                raise
            # ssl_mode=PREFERRED: this server cannot do TLS; plain text it is.
            logger.debug(
                "pool %r: TLS failed (%s); PREFERRED falls back to plain text",
                self.name,
                _describe(exc),
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

    def _connect_failed(self, exc: BaseException) -> float:
        now = monotonic()
        first = not self._backoff.failing
        delay = self._backoff.failed(now)
        changed = _describe(exc) != _describe(self._last_error)
        self._last_error = exc
        self._counters.connections_errors += 1
        if is_fatal_connect_error(exc):
            self._fatal_error = exc
        if first or changed:
            logger.warning(
                "pool %r: opening a connection to %s failed: %s",
                self.name,
                self._options.address,
                _describe(exc),
            )
        else:
            logger.debug("pool %r: still failing to connect: %s", self.name, _describe(exc))
        self._maybe_report_outage(now)
        return delay

    def _maybe_report_outage(self, now: float) -> None:
        since = self._backoff.failing_since
        if since is None or self._backoff.reported or now - since < self._reconnect_timeout:
            return
        self._backoff.reported = True
        logger.error(
            "pool %r: could not open connections for %.0f s: %s",
            self.name,
            now - since,
            _describe(self._last_error),
        )
        if self._reconnect_failed is not None and self._opened_loop is not None:
            self._track(self._opened_loop.create_task(self._call_reconnect_failed()))

    async def _call_reconnect_failed(self) -> None:
        assert self._reconnect_failed is not None
        try:
            result = self._reconnect_failed(self)
            if result is not None:
                await result
        except Exception:
            logger.exception("pool %r: reconnect_failed callback raised", self.name)

    def _connect_succeeded(self) -> None:
        if self._backoff.failing:
            logger.info("pool %r: connecting works again", self.name)
        self._backoff.succeeded()
        self._fatal_error = None

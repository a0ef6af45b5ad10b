"""A scriptable stand-in for asyncmy, for unit tests of the pool's bookkeeping.

``FakeServer.connect`` is passed as the pool's ``connection_factory``; the
server counts live connections so tests can check the pool's limits, and its
knobs (down, slow connects, failing pings) drive the failure paths.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from typing import Any

from asyncmy import errors as mysql_errors

_ids = itertools.count(1)


class FakeResult:
    """What asyncmy keeps as ``conn._result``."""

    def __init__(self, unbuffered_active: bool = False, has_next: bool = False) -> None:
        self.unbuffered_active = unbuffered_active
        self.has_next = has_next


class FakeTransport:
    """The socket: the server counts it until it is closed, like a real one.

    It holds no reference to its connection, so a connection its borrower
    drops is garbage-collected while the socket stays open (as with asyncmy).
    """

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.server.live.discard(self)


class FakeConnection:
    """Implements the part of asyncmy's Connection the pool uses."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.id = next(_ids)
        self._transport = FakeTransport(server)
        self.connected = True
        self.dead = False  # the server side is gone, the client has not noticed yet
        self.in_trans = False
        self._result: FakeResult | None = None
        self.server_status = 0
        self.pings = 0
        self.rollbacks = 0
        self.commits = 0
        self.quit_sent = False
        self.busy = False

    @property
    def _stream_broken(self) -> bool:
        return not self.connected or (self.dead and self.server.eof_visible)

    def get_transaction_status(self) -> bool:
        return self.in_trans

    def thread_id(self) -> int:
        return self.id

    async def _round_trip(self, delay: float = 0.0) -> None:
        if not self.connected:
            raise mysql_errors.InterfaceError(0, "Not connected")
        if self.busy:
            raise AssertionError("two tasks used one connection at the same time")
        self.busy = True
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            # asyncmy >= 0.2.12 closes a connection cancelled mid-command.
            self.close()
            raise
        finally:
            self.busy = False
        if self.dead:
            self.close()
            raise mysql_errors.OperationalError(2013, "Lost connection to MySQL server")

    async def ping(self, reconnect: bool = True) -> None:
        assert reconnect is False, "the pool must never let asyncmy reconnect silently"
        self.pings += 1
        await self._round_trip(self.server.ping_delay)
        if self.server.ping_error is not None:
            raise self.server.ping_error

    async def query(self, delay: float = 0.0, *, begin: bool = True) -> None:
        """Stand-in for running a statement (opens a transaction like autocommit=0)."""
        await self._round_trip(delay)
        if self.server.query_error is not None:
            raise self.server.query_error
        if begin:
            self.in_trans = True

    async def commit(self) -> None:
        await self._round_trip(self.server.commit_delay)
        if self.server.commit_error is not None:
            raise self.server.commit_error
        self.commits += 1
        self.in_trans = False

    async def rollback(self) -> None:
        await self._round_trip(self.server.rollback_delay)
        if self.server.rollback_error is not None:
            raise self.server.rollback_error
        self.rollbacks += 1
        self.in_trans = False

    def close(self) -> None:
        if self.connected:
            self.connected = False
            self._transport.close()

    async def ensure_closed(self) -> None:
        if self.connected and not self.dead:
            self.quit_sent = True
        self.close()

    def cursor(self, cursor: Any = None) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<FakeConnection {self.id}>"


class FakeServer:
    """Counts connections and fails on demand."""

    def __init__(self) -> None:
        self.live: set[FakeTransport] = set()
        self.made: list[weakref.ref[FakeConnection]] = []
        self.opened = 0
        self.attempts = 0
        self.max_live = 0
        self.connect_delay = 0.0
        self.connect_error: BaseException | None = None
        self.ping_delay = 0.0
        self.ping_error: BaseException | None = None
        self.commit_delay = 0.0
        self.commit_error: BaseException | None = None
        self.query_error: BaseException | None = None
        self.rollback_delay = 0.0
        self.rollback_error: BaseException | None = None
        self.eof_visible = True
        self.connect_kwargs: list[dict[str, Any]] = []
        self.opening = 0
        self.max_opening = 0

    async def connect(self, **kwargs: Any) -> FakeConnection:
        self.attempts += 1
        self.connect_kwargs.append(kwargs)
        self.opening += 1
        self.max_opening = max(self.max_opening, self.opening)
        try:
            await asyncio.sleep(self.connect_delay)
            if self.connect_error is not None:
                raise self.connect_error
        finally:
            self.opening -= 1
        conn = FakeConnection(self)
        self.live.add(conn._transport)
        self.made.append(weakref.ref(conn))
        self.opened += 1
        self.max_live = max(self.max_live, len(self.live))
        return conn

    def kill_all(self) -> None:
        """Like KILL from another session: every connection dies server-side."""
        for conn in self.connections():
            conn.dead = True

    def connections(self) -> list[FakeConnection]:
        """The connections whose sockets are open and whose objects still exist."""
        alive = (ref() for ref in self.made)
        return [c for c in alive if c is not None and c._transport in self.live]

    def go_down(self) -> None:
        self.kill_all()
        self.connect_error = mysql_errors.OperationalError(
            2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)"
        )

    def come_back(self) -> None:
        self.connect_error = None

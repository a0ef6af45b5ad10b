"""One pooled connection and the times that decide what happens to it next.

A ``Slot`` is made once per connection and reused for every loan, so handing
a connection out allocates nothing.  While the connection is lent, the slot
keeps it only through a weak reference: a borrower that drops it lets the
garbage collector tell the pool (see ``_leaks.py``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from ._protocols import Connection

__all__ = ["Slot", "StreamState"]


class StreamState:
    """What the hand-out reads, every time, to see that a connection's socket is gone.

    A native class in the compiled build, so that ``gone()`` is a direct
    call; the subclasses read each kind of connection's own flags.  This
    base is for a connection the pool cannot look into: it never reports
    one gone (the check and the driver's own errors still catch it).
    """

    __slots__ = ()

    def gone(self) -> bool:
        """True once the server hung up or the socket failed."""
        return False


class _BrokenProbe(StreamState):
    """A connection without asyncmy's protocol: its ``_stream_broken``.

    Holds the connection weakly, as the slot does while it is lent.
    """

    __slots__ = ("_ref",)

    def __init__(self, conn: Connection) -> None:
        self._ref = weakref.ref(conn)

    def gone(self) -> bool:
        conn = self._ref()
        return conn is None or bool(conn._stream_broken)


class _ProtocolState(StreamState):
    """asyncmy's protocol sets ``eof`` when the server hangs up or the socket fails.

    One attribute read: a tenth of ``conn._stream_broken``, which calls back
    into Python for ``transport.is_closing()`` (callgrind).
    """

    __slots__ = ("proto",)

    def __init__(self, proto: Any) -> None:
        self.proto = proto

    def gone(self) -> bool:
        return bool(self.proto.eof)


class _SocketState(_ProtocolState):
    """The protocol's flag, or the transport already closing.

    A reset (RST) closes the transport at once but reaches the protocol's
    ``connection_lost``, which sets ``eof``, only a loop turn later: a
    hand-out in between lent a dead connection (measured through a proxy
    that resets every connection).
    """

    __slots__ = ("transport",)

    def __init__(self, proto: Any, transport: Any) -> None:
        super().__init__(proto)
        self.transport = transport

    def gone(self) -> bool:
        return bool(self.proto.eof) or bool(self.transport.is_closing())


class _SelectorSocketState(_SocketState):
    """The same for transports with a ``_closing`` flag (asyncio's sockets, uvloop's).

    The flag alone answers: asyncmy's protocol asks to be closed at the end
    of the stream (``eof_received`` returns False), so the transport is
    closing from the moment ``eof`` is set, and from the moment a reset is
    read, a loop turn before ``connection_lost`` sets ``eof``.  One read
    instead of two: ``is_closing()`` is a Python method on asyncio's
    transports (on every hand-out, a tenth of a pair's rate), and the
    protocol's flag another lookup.
    """

    __slots__ = ()

    def gone(self) -> bool:
        return bool(self.transport._closing)


def _stream_state(conn: Connection) -> StreamState:
    proto = getattr(conn, "_proto", None)
    if not isinstance(getattr(proto, "eof", None), bool):
        return _BrokenProbe(conn)
    transport = getattr(conn, "_transport", None)
    if isinstance(getattr(transport, "_closing", None), bool):
        return _SelectorSocketState(proto, transport)
    if callable(getattr(transport, "is_closing", None)):
        return _SocketState(proto, transport)
    return _ProtocolState(proto)


class Slot:
    """A connection plus the pool's bookkeeping for it."""

    __slots__ = (
        "closed",
        "closing",
        "conn",
        "created_at",
        "expires_at",
        "fresh_until",
        "generation",
        "held",
        "idle_since",
        "key",
        "lent_at",
        "on_loan",
        "origin",
        "proven",
        "ref",
        "stream",
        "transport",
        "warned",
    )

    def __init__(
        self,
        conn: Connection,
        now: float,
        expires_at: float,
        generation: int,
        on_collected: Callable[[Slot], None],
    ) -> None:
        # Strong while the pool holds the connection; None while it is lent.
        self.conn: Connection | None = conn
        # The slot table's key, boxed once: compiled code boxes a native int
        # into a new object at every use.
        self.key: object = id(conn)
        self.ref = weakref.ref(conn, lambda _ref: on_collected(self))
        # Kept to close the socket if the borrower drops the connection.
        self.transport: Any = getattr(conn, "_transport", None)
        # What the hand-out fast path asks to see that the server hung up or
        # the socket died (see StreamState's subclasses).
        self.stream: StreamState = _stream_state(conn)
        self.created_at = now
        # When the connection is retired (max_lifetime, with jitter).
        self.expires_at = expires_at
        # Until when an idle connection may be handed out without a ping;
        # never past expires_at, so the fast path compares one number.
        self.fresh_until = now
        # drain() bumps the pool's generation; older slots retire.
        self.generation = generation
        self.idle_since = now
        # Lent out now (the ledger's lent count says how many are).
        self.on_loan = False
        # When the current loan started; also tells one loan from the next.
        self.lent_at = now
        # How long the last finished loan lasted (for listeners).
        self.held = 0.0
        # Where the current loan was taken, kept only when leak tracking is on.
        self.origin: str | None = None
        self.warned = False
        # Handed out at least once after passing its checks: the server is fine.
        self.proven = False
        # A close task owns the slot / the socket is closed and the place freed.
        self.closing = False
        self.closed = False

    def rebind(self, conn: Connection) -> None:
        """Read the socket objects again: asyncmy makes new ones on a reconnect.

        Called after a successful check, so a connection its borrower
        reconnected (``ping(reconnect=True)``) is fast to hand out again and
        the socket closed for it is the live one.
        """
        self.transport = getattr(conn, "_transport", None)
        self.stream = _stream_state(conn)

    def __repr__(self) -> str:
        return f"<Slot key={self.key:#x} lent_at={self.lent_at}>"

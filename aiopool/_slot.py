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

__all__ = ["Slot"]


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
        "idle_since",
        "key",
        "lent_at",
        "origin",
        "proven",
        "ref",
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
        self.key = id(conn)
        self.ref = weakref.ref(conn, lambda _ref: on_collected(self))
        # Kept to close the socket if the borrower drops the connection.
        self.transport: Any = getattr(conn, "_transport", None)
        self.created_at = now
        # When the connection is retired (max_lifetime, with jitter).
        self.expires_at = expires_at
        # Until when an idle connection may be handed out without a ping;
        # never past expires_at, so the fast path compares one number.
        self.fresh_until = now
        # drain() bumps the pool's generation; older slots retire.
        self.generation = generation
        self.idle_since = now
        # When the current loan started; also tells one loan from the next.
        self.lent_at = now
        # Where the current loan was taken, kept only when leak tracking is on.
        self.origin: str | None = None
        self.warned = False
        # Handed out at least once after passing its checks: the server is fine.
        self.proven = False
        # A close task owns the slot / the socket is closed and the place freed.
        self.closing = False
        self.closed = False

    def __repr__(self) -> str:
        return f"<Slot key={self.key:#x} lent_at={self.lent_at}>"

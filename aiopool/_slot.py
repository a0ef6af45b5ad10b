"""One pooled connection and the times that decide what happens to it next.

A ``Slot`` is made once per connection and reused for every loan, so handing
a connection out allocates nothing.
"""

from __future__ import annotations

from ._protocols import Connection

__all__ = ["Slot"]


class Slot:
    """A connection plus the pool's bookkeeping for it."""

    __slots__ = (
        "conn",
        "created_at",
        "expires_at",
        "fresh_until",
        "generation",
        "idle_since",
        "lease",
        "lent_at",
        "origin",
    )

    def __init__(self, conn: Connection, now: float, expires_at: float, generation: int) -> None:
        self.conn = conn
        self.created_at = now
        # When the connection is retired (max_lifetime, with jitter).
        self.expires_at = expires_at
        # Until when an idle connection may be handed out without a ping;
        # also never past expires_at, so the fast path compares one number.
        self.fresh_until = now
        # drain() bumps the pool's generation; older slots retire on return.
        self.generation = generation
        self.idle_since = now
        # Counts loans, so a context manager can tell its own loan from a later one.
        self.lease = 0
        self.lent_at = now
        # Where the current loan was taken, kept only when leak tracking is on.
        self.origin: str | None = None

    def __repr__(self) -> str:
        try:
            tid = self.conn.thread_id()
        except Exception:  # a fake or half-closed connection
            tid = -1
        return f"<Slot thread_id={tid} lease={self.lease}>"

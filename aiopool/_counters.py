"""The counters a pool bumps on its hand-out and return paths.

A module of its own so that the compiled build compiles them with the ledger:
the ledger's compiled code reads and writes a native class's fields directly,
where an interpreted class costs it a generic attribute lookup for each.
"""

from __future__ import annotations

__all__ = ["Counters"]


class Counters:
    """Monotonic counters, bumped on the hot path: plain attributes, no locking.

    asyncio runs one task at a time and no increment spans an ``await``.
    """

    __slots__ = (
        "connections_errors",
        "connections_lost",
        "connections_ms",
        "connections_num",
        "requests_errors",
        "requests_num",
        "requests_queued",
        "requests_wait_ms",
        "returns_bad",
        "usage_s",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Set every counter back to zero."""
        self.requests_num = 0
        self.requests_queued = 0
        self.requests_wait_ms = 0.0
        self.requests_errors = 0
        self.usage_s = 0.0  # seconds: the hot path skips the conversion
        self.connections_num = 0
        self.connections_ms = 0.0
        self.connections_errors = 0
        self.connections_lost = 0
        self.returns_bad = 0

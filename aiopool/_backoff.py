"""Exponential back-off with jitter for opening connections while they fail."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Spaces out connection attempts after failures, capped, with jitter.

    While failing, the pool lets a single opener probe the server, waiting
    ``delay()`` between attempts, so a server that is down is not hammered by
    every waiting request.
    """

    __slots__ = ("_attempts", "_cap", "_first", "failing_since", "reported")

    def __init__(self, first: float = 0.1, cap: float = 2.0) -> None:
        self._first = first
        self._cap = cap
        self._attempts = 0
        self.failing_since: float | None = None
        # Whether reconnect_failed was already called for this outage.
        self.reported = False

    @property
    def failing(self) -> bool:
        """True from the first failed attempt until the next success."""
        return self.failing_since is not None

    def failed(self, now: float) -> float:
        """Record a failure; returns how long to wait before the next attempt."""
        if self.failing_since is None:
            self.failing_since = now
        self._attempts += 1
        base = min(self._cap, self._first * 2.0 ** (self._attempts - 1))
        # +-25 % so that many pools (or processes) restarting together spread out.
        return base * random.uniform(0.75, 1.25)

    def succeeded(self) -> None:
        """Record a success: the next failure starts over from the first delay."""
        self._attempts = 0
        self.failing_since = None
        self.reported = False

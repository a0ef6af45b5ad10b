"""Pacing connection attempts while the server fails us, and remembering why it failed.

One failure counter serves every way a new connection can disappoint: the
connect itself fails, the connection fails its first check, or it is found
dead before it was ever used.  A server that accepts connections and then
answers badly (read-only after a fail-over, a replica lagging) is thereby
paced exactly like one that refuses them, instead of being flooded.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Exponential back-off with jitter, and the last error that caused it.

    ``failing`` is true from a failed connect until the next successful one;
    while it is, the pool lets a single opener probe.  The attempt count (and
    so the delay) is kept across a successful connect and cleared only when a
    connection proves itself by being handed out: a connection that opens and
    then fails its check does not restart the back-off from its first step.
    """

    __slots__ = (
        "_attempts",
        "_cap",
        "_first",
        "ever_connected",
        "failing_since",
        "fatal_error",
        "last_error",
        "last_failure_at",
        "next_attempt_at",
        "reported",
    )

    def __init__(self, first: float = 1.0, cap: float = 10.0) -> None:
        self._first = first
        self._cap = cap
        self._attempts = 0
        self.failing_since: float | None = None
        # No attempt before this time (monotonic seconds).
        self.next_attempt_at = 0.0
        self.last_error: BaseException | None = None
        self.last_failure_at = -1e300
        # An error retrying cannot fix (wrong password, unknown database).
        self.fatal_error: BaseException | None = None
        # Whether reconnect_failed was already called for this outage.
        self.reported = False
        self.ever_connected = False

    @property
    def failing(self) -> bool:
        """True from a failed connect until the next successful one."""
        return self.failing_since is not None

    @property
    def attempts(self) -> int:
        """Failures since a connection last proved itself."""
        return self._attempts

    def failed(self, now: float, exc: BaseException, *, connecting: bool = True) -> float:
        """Record a failure; returns how long to wait before the next attempt.

        ``connecting=False`` is a connection that opened but failed its first
        check or died unused: paced the same, though the server is reachable,
        except that the first such loss is replaced at once (one lost
        connection is news, not yet a pattern).
        """
        if connecting and self.failing_since is None:
            self.failing_since = now
        self._attempts += 1
        self.last_error = exc
        self.last_failure_at = now
        if not connecting and self._attempts == 1:
            delay = 0.0
        else:
            base = min(self._cap, self._first * 2.0 ** (self._attempts - 1))
            # +-25 % so that many pools (or processes) restarting together spread out.
            delay = base * random.uniform(0.75, 1.25)
        self.next_attempt_at = now + delay
        return delay

    def connected(self) -> None:
        """A connect succeeded: stop limiting openers, keep the pace until proven."""
        self.failing_since = None
        self.fatal_error = None
        self.reported = False
        self.ever_connected = True

    def retry_now(self, now: float) -> bool:
        """The server was seen accepting connections: the next attempt may start now.

        The attempt count stays, so a failure of that attempt waits longer
        than the last one did.  False when no pause was pending.
        """
        if self.next_attempt_at <= now:
            return False
        self.next_attempt_at = now
        return True

    def proven(self) -> None:
        """A new connection was handed out: the next failure starts from the first step."""
        self._attempts = 0
        self.next_attempt_at = 0.0

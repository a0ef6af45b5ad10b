"""What a pool tells its listeners: one frozen event per thing that happened.

Register listeners with ``AsyncConnectionPool(..., listeners=[obj])`` or
``pool.add_listener(obj)``.  A listener is any object with some of the
methods ``on_connect``, ``on_acquire``, ``on_release``, ``on_timeout`` and
``on_close``, each taking one event; the methods it lacks are skipped.  They
are called synchronously in the pool's event loop, so they must be quick
(bump a histogram, append to a list) and must not block.  A listener that
raises never breaks the pool or reaches the caller: the error is logged, once
per listener and event kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "AcquireEvent",
    "CloseEvent",
    "CloseReason",
    "ConnectEvent",
    "PoolListener",
    "ReleaseEvent",
    "ReleaseOutcome",
    "TimeoutEvent",
]

ReleaseOutcome = Literal["reused", "reset", "closed"]
"""What a return did: back in the pool with no round trip, cleaned up then reused, or closed."""

CloseReason = Literal[
    "lifetime",
    "idle",
    "broken",
    "check_failed",
    "returned_bad",
    "drain",
    "resize",
    "pool_closed",
]
"""Why the pool closed a connection."""


@dataclass(frozen=True, slots=True)
class ConnectEvent:
    """One attempt to open a connection; ``error`` is None on success.

    The error's text never holds the password (the pool redacts it before any
    error leaves it).
    """

    pool_name: str
    duration_s: float
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class AcquireEvent:
    """A connection handed out; ``queued`` says whether the request had to wait."""

    pool_name: str
    wait_s: float
    queued: bool


@dataclass(frozen=True, slots=True)
class ReleaseEvent:
    """A connection given back after ``held_s`` seconds, and what the pool did with it."""

    pool_name: str
    held_s: float
    outcome: ReleaseOutcome


@dataclass(frozen=True, slots=True)
class TimeoutEvent:
    """A request that gave up with ``PoolTimeout`` after waiting ``wait_s`` seconds."""

    pool_name: str
    wait_s: float


@dataclass(frozen=True, slots=True)
class CloseEvent:
    """A connection the pool closed, and why."""

    pool_name: str
    reason: CloseReason


class PoolListener(Protocol):
    """The full listener shape, for type checkers; a listener may define any subset."""

    def on_connect(self, event: ConnectEvent) -> None:
        """A connection attempt ended (successfully or not)."""

    def on_acquire(self, event: AcquireEvent) -> None:
        """A connection was handed out."""

    def on_release(self, event: ReleaseEvent) -> None:
        """A connection was given back."""

    def on_timeout(self, event: TimeoutEvent) -> None:
        """A request timed out."""

    def on_close(self, event: CloseEvent) -> None:
        """The pool closed a connection."""

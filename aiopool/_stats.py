"""The frozen snapshot of a pool's state and counters that users read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._ledger import Ledger

__all__ = ["PoolStats", "snapshot"]


@dataclass(frozen=True, slots=True)
class PoolStats(Mapping[str, float]):
    """A snapshot of a pool's state and counters, from ``get_stats()``/``pop_stats()``.

    It is also a read-only mapping (``stats["pool_size"]``, ``dict(stats)``),
    the shape psycopg_pool users know.
    """

    pool_min: int
    """Configured ``min_size``."""
    pool_max: int
    """Configured ``max_size``."""
    pool_size: int
    """Connections the pool holds now: idle, in use, being opened or checked."""
    pool_available: int
    """Idle connections ready to be handed out."""
    pool_in_use: int
    """Connections lent to callers (or being checked or returned)."""
    pool_opening: int
    """Connections being opened."""
    requests_waiting: int
    """Tasks waiting for a connection now."""
    requests_num: int
    """Connection requests (acquire calls)."""
    requests_queued: int
    """Requests that had to wait because no idle connection was free."""
    requests_wait_ms: float
    """Total time queued requests waited, in milliseconds."""
    requests_errors: int
    """Requests that failed: timeouts and refusals (``TooManyRequests``)."""
    usage_ms: float
    """Total time connections were lent out, in milliseconds."""
    connections_num: int
    """Connections opened successfully."""
    connections_ms: float
    """Total time spent opening connections, in milliseconds."""
    connections_errors: int
    """Failed attempts to open a connection."""
    connections_lost: int
    """Connections found dead while idle or when checked before hand-out."""
    returns_bad: int
    """Connections returned in a state that made the pool close them."""

    def __getitem__(self, key: str) -> float:
        if key not in _FIELD_NAMES:
            raise KeyError(key)
        value: float = getattr(self, key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELD_NAMES)

    def __len__(self) -> int:
        return len(_FIELD_NAMES)


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(PoolStats))


def snapshot(ledger: Ledger) -> PoolStats:
    """The pool's sizes now and its counters, from its books."""
    c = ledger.counters
    idle = len(ledger.idle)
    return PoolStats(
        pool_min=ledger.limits.min_size,
        pool_max=ledger.limits.max_size,
        pool_size=ledger.size,
        pool_available=idle,
        pool_in_use=ledger.size - idle - ledger.opening,
        pool_opening=ledger.opening,
        requests_waiting=len(ledger.waiters),
        requests_num=c.requests_num,
        requests_queued=c.requests_queued,
        requests_wait_ms=round(c.requests_wait_ms, 3),
        requests_errors=c.requests_errors,
        usage_ms=round(c.usage_s * 1000.0, 3),
        connections_num=c.connections_num,
        connections_ms=round(c.connections_ms, 3),
        connections_errors=c.connections_errors,
        connections_lost=c.connections_lost,
        returns_bad=c.returns_bad,
    )

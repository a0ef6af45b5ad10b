"""NullConnectionPool: the pool's API with pooling switched off."""

from __future__ import annotations

from typing import Any

from ._pool import AsyncConnectionPool
from ._slot import Slot

__all__ = ["NullConnectionPool"]


class NullConnectionPool(AsyncConnectionPool):
    """Same API as ``AsyncConnectionPool``, keeping no idle connections.

    Every ``connection()`` opens a connection and closes it (politely) when
    the block ends, unless a request is already waiting for one, which then
    gets it.  ``max_size`` still bounds how many exist at once.  For serverless
    jobs and tests, or to rule the pool out while debugging: switch by
    configuration without touching application code.
    """

    def __init__(self, url: str | None = None, *, min_size: int = 0, **kwargs: Any) -> None:
        if min_size != 0:
            raise ValueError(
                f"NullConnectionPool keeps no connections: min_size must be 0, got {min_size!r}"
            )
        super().__init__(url, min_size=0, **kwargs)
        # Every return goes through the slow path, which ends in _put_back.
        self._resets_on_return = True

    def _put_back(self, slot: Slot) -> None:
        if slot.generation == self._generation:
            self._waiters.prune()
            if self._waiters:
                self._lent[slot.key] = slot
                if self._waiters.hand_off(slot):
                    return
                del self._lent[slot.key]
        self._discard(slot, polite=True)

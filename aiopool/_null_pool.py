"""NullConnectionPool: the pool's API with pooling switched off."""

from __future__ import annotations

from typing import Any, ClassVar

from ._pool import AsyncConnectionPool

__all__ = ["NullConnectionPool"]


class NullConnectionPool(AsyncConnectionPool):
    """Same API as ``AsyncConnectionPool``, keeping no idle connections.

    Every ``connection()`` opens a connection and closes it (politely) when
    the block ends, unless a request is already waiting for one, which then
    gets it.  ``max_size`` still bounds how many exist at once.  For serverless
    jobs and tests, or to rule the pool out while debugging: switch by
    configuration without touching application code.
    """

    # The ledger closes a returned connection that no request is waiting for.
    _keeps_idle: ClassVar[bool] = False

    def __init__(self, url: str | None = None, *, min_size: int = 0, **kwargs: Any) -> None:
        if min_size != 0:
            raise ValueError(
                f"NullConnectionPool keeps no connections: min_size must be 0, got {min_size!r}"
            )
        super().__init__(url, min_size=0, **kwargs)

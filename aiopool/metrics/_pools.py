"""The pools one exporter reports, and how an exporter takes its listener off a pool.

Scrapes may come from another thread (``start_http_server``, OpenTelemetry's
periodic reader), hence the lock; weak references, so that exporting a pool
never keeps it alive.
"""

from __future__ import annotations

import contextlib
import threading
import weakref

from .._pool import AsyncConnectionPool

__all__ = ["WeakPoolSet", "detach"]


def detach(pool: AsyncConnectionPool, listener: object) -> None:
    """Unregister ``listener`` from ``pool``; no error if it is not registered."""
    # The user may have removed it already (pool.remove_listener): nothing left to do.
    with contextlib.suppress(ValueError):
        pool.remove_listener(listener)


class WeakPoolSet:
    """A set of pools, in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[int, weakref.ref[AsyncConnectionPool]] = {}

    def add(self, pool: AsyncConnectionPool) -> bool:
        """Add ``pool``; False if it is there already, ``ValueError`` if its name is taken."""
        with self._lock:
            for other in self._live():
                if other is pool:
                    return False
                if other.name == pool.name:
                    raise ValueError(f"a pool named {pool.name!r} is already reported")
            self._pools[id(pool)] = weakref.ref(pool)
            return True

    def remove(self, pool: AsyncConnectionPool) -> None:
        """Forget ``pool`` (no error if it is not there)."""
        with self._lock:
            ref = self._pools.get(id(pool))
            if ref is not None and ref() is pool:
                del self._pools[id(pool)]

    def live(self) -> list[AsyncConnectionPool]:
        """The pools still alive (garbage-collected ones are dropped)."""
        with self._lock:
            return self._live()

    def _live(self) -> list[AsyncConnectionPool]:
        alive = [(key, ref()) for key, ref in self._pools.items()]
        for key, pool in alive:
            if pool is None:
                del self._pools[key]
        return [pool for _key, pool in alive if pool is not None]

"""Prometheus metrics for aiopool pools (``pip install 'aiopool-mysql[prometheus]'``).

>>> from aiopool.metrics.prometheus import register
>>> collector = register(pool)  # doctest: +SKIP

``PoolCollector`` is a custom collector.  Its gauges and counters read
``pool.get_stats()`` when Prometheus scrapes.  Its histograms
``aiopool_connection_wait_seconds``, ``aiopool_connection_use_seconds`` and
``aiopool_connection_create_seconds`` and its counter
``aiopool_connection_timeouts_total`` are filled by a listener the collector
adds to each pool (``pool.add_listener``) and removes with it: one
observation per hand-out, per return and per connection opened, counted into
buckets from 100 µs to 30 s.  No background task; the pool's hot path pays one
bucket increment per event.

One collector serves any number of pools, told apart by the ``pool`` label
(the pool's ``name``, which never shows the password); pool names must be
unique within a collector.

The collector holds pools weakly: a pool that is garbage-collected drops out
of the output.  Counters are cumulative since the pool opened (the histograms
and ``aiopool_connection_timeouts_total``: since it was registered); don't
call ``pool.pop_stats()`` on a pool you export (Prometheus would see a counter
reset and lose the increments since the last scrape).

Scrapes served from another thread (``start_http_server``) read the pool while
the event loop changes it: the gauges of one pool can then be off by one
connection between each other for that scrape.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable

try:
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
    from prometheus_client.utils import floatToGoString as _go_float
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "aiopool.metrics.prometheus needs prometheus_client:"
        " pip install 'aiopool-mysql[prometheus]'"
    ) from exc

from .._pool import AsyncConnectionPool
from .._stats import PoolStats
from . import _names as n
from ._histogram import HistogramSnapshot, PoolHistograms
from ._pools import WeakPoolSet, detach

__all__ = ["PoolCollector", "register", "unregister"]

# How prometheus_client writes ``le`` (its own Histogram uses it; the library leaves it untyped).
_format_bound: Callable[[float], str] = _go_float

_MS = 1000.0  # milliseconds per second

# (name, help, PoolStats field, divisor)
_COUNTERS: tuple[tuple[str, str, str, float], ...] = (
    (n.PROM_REQUESTS, "Connection requests (acquire calls).", "requests_num", 1.0),
    (
        n.PROM_REQUESTS_QUEUED,
        "Requests that had to wait because no idle connection was free.",
        "requests_queued",
        1.0,
    ),
    (
        n.PROM_REQUEST_WAIT_SECONDS,
        "Total time queued requests waited for a connection.",
        "requests_wait_ms",
        _MS,
    ),
    (
        n.PROM_REQUEST_ERRORS,
        "Requests that failed: timeouts and refusals (TooManyRequests).",
        "requests_errors",
        1.0,
    ),
    (n.PROM_CONNECTIONS_OPENED, "Connections opened successfully.", "connections_num", 1.0),
    (
        n.PROM_CONNECTION_OPEN_SECONDS,
        "Total time spent opening connections.",
        "connections_ms",
        _MS,
    ),
    (n.PROM_CONNECTION_ERRORS, "Failed attempts to open a connection.", "connections_errors", 1.0),
    (
        n.PROM_CONNECTIONS_LOST,
        "Connections found dead while idle or when checked before hand-out.",
        "connections_lost",
        1.0,
    ),
    (
        n.PROM_RETURNS_BAD,
        "Connections returned in a state that made the pool close them.",
        "returns_bad",
        1.0,
    ),
    (n.PROM_USE_SECONDS, "Total time connections were lent out.", "usage_ms", _MS),
)

# (name, help, PoolStats field)
_GAUGES: tuple[tuple[str, str, str], ...] = (
    (n.PROM_CONNECTIONS_MAX, "Configured maximum number of connections.", "pool_max"),
    (n.PROM_CONNECTIONS_MIN, "Configured minimum number of connections.", "pool_min"),
    (n.PROM_REQUESTS_WAITING, "Tasks waiting for a connection now.", "requests_waiting"),
)

_STATES: tuple[tuple[str, str], ...] = (
    (n.PROM_STATE_IDLE, "pool_available"),
    (n.PROM_STATE_USED, "pool_in_use"),
    (n.PROM_STATE_OPENING, "pool_opening"),
)


# (name, help, PoolHistograms attribute)
_HISTOGRAMS: tuple[tuple[str, str, str], ...] = (
    (
        n.PROM_WAIT_HISTOGRAM,
        "Time each request waited for a connection (every hand-out, queued or not).",
        "wait",
    ),
    (
        n.PROM_USE_HISTOGRAM,
        "Time each connection was lent out, from hand-out to return.",
        "use",
    ),
    (
        n.PROM_CREATE_HISTOGRAM,
        "Time it took to open each new connection (failed attempts are left out).",
        "create",
    ),
)

_Snapshot = tuple[str, PoolStats, PoolHistograms | None]


def _unit(name: str) -> str:
    return "seconds" if name.removesuffix("_total").endswith("_seconds") else ""


class PoolCollector(Collector):
    """Reports one or more pools' ``get_stats()`` at every scrape.

    ``PoolCollector(pool)`` or ``PoolCollector([pool_a, pool_b])``; register
    it yourself with ``registry.register(collector)``, or let ``register()``
    do it.  ``add()`` and ``remove()`` change the pools it reports.
    """

    def __init__(self, pools: AsyncConnectionPool | Iterable[AsyncConnectionPool] = ()) -> None:
        self._pools = WeakPoolSet()
        # Each pool's listener; weak keys, so the pool (which holds the listener) can go.
        self._listeners: weakref.WeakKeyDictionary[AsyncConnectionPool, PoolHistograms] = (
            weakref.WeakKeyDictionary()
        )
        self._listeners_lock = threading.Lock()
        for pool in (pools,) if isinstance(pools, AsyncConnectionPool) else pools:
            self.add(pool)

    @property
    def pools(self) -> list[AsyncConnectionPool]:
        """The pools reported, in the order they were added."""
        return self._pools.live()

    def add(self, pool: AsyncConnectionPool) -> None:
        """Report ``pool`` too; ``ValueError`` if another pool has its name.

        Adds the listener that fills the histograms to the pool.
        """
        try:
            added = self._pools.add(pool)
        except ValueError:
            raise ValueError(
                f"a pool named {pool.name!r} is already reported by this collector: "
                "give each pool a unique name=..."
            ) from None
        if not added:
            return
        listener = PoolHistograms(n.SECONDS_BUCKETS)
        try:
            pool.add_listener(listener)
        except BaseException:
            self._pools.remove(pool)
            raise
        with self._listeners_lock:
            self._listeners[pool] = listener

    def remove(self, pool: AsyncConnectionPool) -> None:
        """Stop reporting ``pool`` and take its listener off (no error if it was not reported)."""
        self._pools.remove(pool)
        with self._listeners_lock:
            listener = self._listeners.pop(pool, None)
        if listener is not None:
            detach(pool, listener)

    def describe(self) -> Iterable[Metric]:
        """The metric families without samples (lets the registry catch name clashes)."""
        return _families([])

    def collect(self) -> Iterable[Metric]:
        """Read every pool's stats now."""
        snapshots: list[_Snapshot] = []
        for pool in self.pools:
            # A pool renamed after add() could repeat a name: keep the exposition valid.
            if all(pool.name != name for name, _stats, _listener in snapshots):
                with self._listeners_lock:
                    listener = self._listeners.get(pool)
                snapshots.append((pool.name, pool.get_stats(), listener))
        return _families(snapshots)


def _families(snapshots: list[_Snapshot]) -> list[Metric]:
    return [*_stats_families(snapshots), *_event_families(snapshots)]


def _stats_families(snapshots: list[_Snapshot]) -> list[Metric]:
    connections = GaugeMetricFamily(
        n.PROM_CONNECTIONS,
        "Connections in the pool by state: idle, used (lent out), opening.",
        labels=(n.PROM_POOL_LABEL, n.PROM_STATE_LABEL),
    )
    for pool_name, stats, _listener in snapshots:
        for state, field in _STATES:
            connections.add_metric((pool_name, state), stats[field])
    families: list[Metric] = [connections]
    for name, doc, field in _GAUGES:
        gauge = GaugeMetricFamily(name, doc, labels=(n.PROM_POOL_LABEL,))
        for pool_name, stats, _listener in snapshots:
            gauge.add_metric((pool_name,), stats[field])
        families.append(gauge)
    for name, doc, field, divisor in _COUNTERS:
        counter = CounterMetricFamily(name, doc, labels=(n.PROM_POOL_LABEL,), unit=_unit(name))
        for pool_name, stats, _listener in snapshots:
            counter.add_metric((pool_name,), stats[field] / divisor)
        families.append(counter)
    return families


def _event_families(snapshots: list[_Snapshot]) -> list[Metric]:
    """The histograms and the timeout counter, from each pool's listener."""
    listeners = [(name, listener) for name, _stats, listener in snapshots if listener is not None]
    families: list[Metric] = []
    for name, doc, attribute in _HISTOGRAMS:
        histogram = HistogramMetricFamily(name, doc, labels=(n.PROM_POOL_LABEL,), unit="seconds")
        for pool_name, listener in listeners:
            snapshot: HistogramSnapshot = getattr(listener, attribute).snapshot()
            histogram.add_metric((pool_name,), _buckets(snapshot), snapshot.sum)
        families.append(histogram)
    timeouts = CounterMetricFamily(
        n.PROM_TIMEOUTS,
        "Requests that gave up waiting for a connection (PoolTimeout).",
        labels=(n.PROM_POOL_LABEL,),
    )
    for pool_name, listener in listeners:
        timeouts.add_metric((pool_name,), listener.timeouts)
    families.append(timeouts)
    return families


def _buckets(snapshot: HistogramSnapshot) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs, formatted as prometheus_client formats ``le``."""
    return [(_format_bound(bound), count) for bound, count in snapshot.cumulative()]


# One collector per registry, so several pools share the metric families.
_collectors: weakref.WeakKeyDictionary[CollectorRegistry, PoolCollector] = (
    weakref.WeakKeyDictionary()
)
_collectors_lock = threading.Lock()


def register(pool: AsyncConnectionPool, registry: CollectorRegistry = REGISTRY) -> PoolCollector:
    """Report ``pool`` in ``registry``; returns the registry's aiopool collector.

    Every pool registered in one registry goes to the same collector, so pool
    names must be unique (``ValueError`` otherwise: pass ``name=`` to the pool).
    """
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = PoolCollector(pool)
            try:
                registry.register(collector)
            except BaseException:
                collector.remove(pool)  # and its listener: nothing would read it
                raise
            _collectors[registry] = collector
        else:
            collector.add(pool)
    return collector


def unregister(pool: AsyncConnectionPool, registry: CollectorRegistry = REGISTRY) -> None:
    """Stop reporting ``pool`` in ``registry``; the last one removes the collector."""
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            return
        collector.remove(pool)
        if not collector.pools:
            registry.unregister(collector)
            del _collectors[registry]

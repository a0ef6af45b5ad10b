"""OpenTelemetry metrics for aiopool pools (``pip install 'aiopool-mysql[otel]'``).

>>> from aiopool.metrics.otel import instrument
>>> instrumentation = instrument(pool)  # doctest: +SKIP
>>> instrumentation.close()  # doctest: +SKIP

``instrument(pool)`` reports the pool through observable instruments whose
callbacks read ``pool.get_stats()`` when the meter provider collects: nothing
runs in the background and the pool's hot path pays nothing.  The names follow
OpenTelemetry's database-client connection-pool conventions (still marked
"development"), every observation carries ``db.client.connection.pool.name``:

* ``db.client.connection.count`` (``db.client.connection.state`` = ``idle`` |
  ``used``; connections being opened are in neither), ``.max`` (``max_size``),
  ``.idle.max`` (``max_size``: every connection may be idle), ``.idle.min``
  (``min_size``), ``.pending_requests``: observable up-down counters.
* ``db.client.connection.timeouts``: observable counter of failed requests,
  timeouts and ``TooManyRequests`` refusals (the pool counts them together).

The conventions' ``create_time``, ``wait_time`` and ``use_time`` are
histograms with one observation per connection opened, per request and per
loan.  The pool only keeps running totals, and a histogram built from them
would be made up, so they are reported as observable counters of total
seconds, ``aiopool.connection.create_time.total``, ``.wait_time.total`` and
``.use_time.total``, until the pool can report each event.  ``wait_time``
counts only requests that had to queue (the others waited no time).

Counters are cumulative since the pool opened: don't call ``pool.pop_stats()``
on an instrumented pool.  OpenTelemetry cannot remove an instrument, so the
instruments are created once per meter provider and shared by every pool
instrumented with it; ``Instrumentation.close()`` takes the pool out of their
callbacks.  Pools are held weakly and pool names must be unique per provider.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from types import TracebackType

try:
    from opentelemetry.metrics import (
        CallbackOptions,
        Meter,
        MeterProvider,
        Observation,
        get_meter_provider,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "aiopool.metrics.otel needs opentelemetry-api: pip install 'aiopool-mysql[otel]'"
    ) from exc

from .. import __version__
from .._pool import AsyncConnectionPool
from .._stats import PoolStats
from . import _names as n
from ._pools import WeakPoolSet

__all__ = ["Instrumentation", "instrument"]

_Callback = Callable[[CallbackOptions], Iterable[Observation]]

_COUNT_DESCRIPTION = (
    "The number of connections that are currently in state described by the `state` attribute."
)
# (name, PoolStats field, unit, description)
_UP_DOWN: tuple[tuple[str, str, str, str], ...] = (
    (
        n.OTEL_IDLE_MAX,
        "pool_max",
        n.OTEL_UNIT_CONNECTION,
        "The maximum number of idle open connections allowed.",
    ),
    (
        n.OTEL_IDLE_MIN,
        "pool_min",
        n.OTEL_UNIT_CONNECTION,
        "The minimum number of idle open connections allowed.",
    ),
    (
        n.OTEL_MAX,
        "pool_max",
        n.OTEL_UNIT_CONNECTION,
        "The maximum number of open connections allowed.",
    ),
    (
        n.OTEL_PENDING_REQUESTS,
        "requests_waiting",
        n.OTEL_UNIT_REQUEST,
        "The number of current pending requests for an open connection.",
    ),
)
_COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    (
        n.OTEL_TIMEOUTS,
        "requests_errors",
        n.OTEL_UNIT_TIMEOUT,
        "The number of connection timeouts that have occurred trying to obtain a connection "
        "from the pool (refusals included).",
    ),
)
# Totals of milliseconds, reported in seconds.
_SECONDS: tuple[tuple[str, str, str, str], ...] = (
    (
        n.OTEL_CREATE_TIME_TOTAL,
        "connections_ms",
        n.OTEL_UNIT_SECONDS,
        "Total time it took to create new connections.",
    ),
    (
        n.OTEL_WAIT_TIME_TOTAL,
        "requests_wait_ms",
        n.OTEL_UNIT_SECONDS,
        "Total time requests that had to queue waited for an open connection.",
    ),
    (
        n.OTEL_USE_TIME_TOTAL,
        "usage_ms",
        n.OTEL_UNIT_SECONDS,
        "Total time between borrowing connections and returning them to the pool.",
    ),
)


class _Observer:
    """The instruments of one meter provider, and the pools they report."""

    def __init__(self, meter: Meter) -> None:
        self._pools = WeakPoolSet()
        self._create_instruments(meter)

    def _create_instruments(self, meter: Meter) -> None:
        meter.create_observable_up_down_counter(
            n.OTEL_CONNECTION_COUNT, [self._count], n.OTEL_UNIT_CONNECTION, _COUNT_DESCRIPTION
        )
        for name, field, unit, description in _UP_DOWN:
            meter.create_observable_up_down_counter(name, [self._field(field)], unit, description)
        for name, field, unit, description in _COUNTERS:
            meter.create_observable_counter(name, [self._field(field)], unit, description)
        for name, field, unit, description in _SECONDS:
            meter.create_observable_counter(name, [self._seconds(field)], unit, description)

    def add(self, pool: AsyncConnectionPool) -> None:
        try:
            added = self._pools.add(pool)
        except ValueError:
            added, what = False, f"a pool named {pool.name!r} is"
        else:
            what = "this pool is"
        if not added:
            raise ValueError(
                f"{what} already instrumented with this meter provider: "
                "close its Instrumentation first, or give each pool a unique name=..."
            )

    def remove(self, pool: AsyncConnectionPool) -> None:
        self._pools.remove(pool)

    def _snapshots(self) -> list[tuple[dict[str, str], PoolStats]]:
        pools = self._pools.live()
        return [({n.OTEL_POOL_NAME: pool.name}, pool.get_stats()) for pool in pools]

    def _count(self, options: CallbackOptions) -> Iterable[Observation]:
        observations: list[Observation] = []
        for attributes, stats in self._snapshots():
            idle = {**attributes, n.OTEL_STATE: n.OTEL_STATE_IDLE}
            used = {**attributes, n.OTEL_STATE: n.OTEL_STATE_USED}
            observations.append(Observation(stats.pool_available, idle))
            observations.append(Observation(stats.pool_in_use, used))
        return observations

    def _field(self, field: str) -> _Callback:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(stats[field], attributes) for attributes, stats in self._snapshots()
            ]

        return observe

    def _seconds(self, field: str) -> _Callback:
        """A callback reporting a total of milliseconds in seconds."""

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(stats[field] / 1000.0, attributes)
                for attributes, stats in self._snapshots()
            ]

        return observe


# One set of instruments per meter provider (OpenTelemetry cannot remove them).
_observers: weakref.WeakKeyDictionary[MeterProvider, _Observer] = weakref.WeakKeyDictionary()
_observers_lock = threading.Lock()


class Instrumentation:
    """What ``instrument()`` returns: ``close()`` stops reporting the pool.

    Also a context manager: ``with instrument(pool): ...``.
    """

    def __init__(self, observer: _Observer, pool: AsyncConnectionPool) -> None:
        self._observer: _Observer | None = observer
        self._pool = weakref.ref(pool)

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._observer is None

    def close(self) -> None:
        """Stop reporting the pool (safe to call more than once)."""
        observer, self._observer = self._observer, None
        pool = self._pool()
        if observer is not None and pool is not None:
            observer.remove(pool)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def instrument(
    pool: AsyncConnectionPool, meter_provider: MeterProvider | None = None
) -> Instrumentation:
    """Report ``pool`` through ``meter_provider`` (default: the global one).

    ``ValueError`` if a pool with the same name is already instrumented with
    that provider.
    """
    provider = meter_provider if meter_provider is not None else get_meter_provider()
    with _observers_lock:
        observer = _observers.get(provider)
        if observer is None:
            meter = provider.get_meter(n.OTEL_METER_NAME, __version__)
            observer = _observers[provider] = _Observer(meter)
    observer.add(pool)
    return Instrumentation(observer, pool)

"""OpenTelemetry metrics for aiopool pools (``pip install 'aiopool-mysql[otel]'``).

>>> from aiopool.metrics.otel import instrument
>>> instrumentation = instrument(pool)  # doctest: +SKIP
>>> instrumentation.close()  # doctest: +SKIP

``instrument(pool)`` reports the pool under OpenTelemetry's database-client
connection-pool conventions (still marked "development"); every measurement
carries ``db.client.connection.pool.name``.

Read from ``pool.get_stats()`` when the meter provider collects (observable
up-down counters):

* ``db.client.connection.count`` (``db.client.connection.state`` = ``idle`` |
  ``used``; connections being opened are in neither), ``.max`` (``max_size``),
  ``.idle.max`` (``max_size``: every connection may be idle), ``.idle.min``
  (``min_size``), ``.pending_requests``.

Recorded by a listener that ``instrument()`` adds to the pool
(``pool.add_listener``), one measurement per event:

* ``db.client.connection.wait_time`` (histogram, s): every hand-out, queued
  or not; ``.use_time`` (histogram, s): every return, from hand-out to return;
  ``.create_time`` (histogram, s): every connection opened (failed attempts
  opened nothing and are left out).  Buckets from 100 µs to 30 s (an advisory
  the SDK follows unless a View says otherwise).
* ``db.client.connection.timeouts`` (counter): requests that gave up with
  ``PoolTimeout`` (``TooManyRequests`` refusals are not timeouts).

No background task; the pool's hot path pays one SDK ``record()`` per event.
OpenTelemetry cannot remove an instrument, so the instruments are created once
per meter provider and shared by every pool instrumented with it;
``Instrumentation.close()`` takes the pool out of their callbacks and its
listener off the pool.  Pools are held weakly and pool names must be unique
per provider.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from types import TracebackType

try:
    from opentelemetry.metrics import (
        CallbackOptions,
        Counter,
        Histogram,
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
from ..events import AcquireEvent, ConnectEvent, ReleaseEvent, TimeoutEvent
from . import _names as n
from ._pools import WeakPoolSet, detach

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
# (name, description) of the event histograms
_WAIT_TIME = (
    n.OTEL_WAIT_TIME,
    "The time it took to obtain an open connection from the pool.",
)
_USE_TIME = (
    n.OTEL_USE_TIME,
    "The time between borrowing a connection and returning it to the pool.",
)
_CREATE_TIME = (n.OTEL_CREATE_TIME, "The time it took to create a new connection.")
_TIMEOUTS_DESCRIPTION = (
    "The number of connection timeouts that have occurred trying to obtain a connection "
    "from the pool."
)


class _EventInstruments:
    """The synchronous instruments of one meter provider, fed by every pool's listener."""

    def __init__(self, meter: Meter) -> None:
        def histogram(name: str, description: str) -> Histogram:
            return meter.create_histogram(
                name,
                n.OTEL_UNIT_SECONDS,
                description,
                explicit_bucket_boundaries_advisory=n.SECONDS_BUCKETS,
            )

        self.wait_time = histogram(*_WAIT_TIME)
        self.use_time = histogram(*_USE_TIME)
        self.create_time = histogram(*_CREATE_TIME)
        self.timeouts: Counter = meter.create_counter(
            n.OTEL_TIMEOUTS, n.OTEL_UNIT_TIMEOUT, _TIMEOUTS_DESCRIPTION
        )


class _Recorder:
    """The listener ``instrument()`` adds to a pool: one measurement per event."""

    __slots__ = ("_attributes", "_instruments", "_name")

    def __init__(self, instruments: _EventInstruments) -> None:
        self._instruments = instruments
        self._name = ""
        self._attributes: dict[str, str] = {}

    def _for(self, pool_name: str) -> dict[str, str]:
        # Events carry the pool's current name; the attribute dict is rebuilt
        # only when it changes, not once per event.
        if pool_name != self._name or not self._attributes:
            self._name = pool_name
            self._attributes = {n.OTEL_POOL_NAME: pool_name}
        return self._attributes

    def on_acquire(self, event: AcquireEvent) -> None:
        """Record the request's wait."""
        self._instruments.wait_time.record(event.wait_s, self._for(event.pool_name))

    def on_release(self, event: ReleaseEvent) -> None:
        """Record how long the connection was lent out."""
        self._instruments.use_time.record(event.held_s, self._for(event.pool_name))

    def on_connect(self, event: ConnectEvent) -> None:
        """Record a connection opened (a failed attempt created nothing)."""
        if event.error is None:
            self._instruments.create_time.record(event.duration_s, self._for(event.pool_name))

    def on_timeout(self, event: TimeoutEvent) -> None:
        """Count a request that gave up."""
        self._instruments.timeouts.add(1, self._for(event.pool_name))


class _Observer:
    """The instruments of one meter provider, and the pools they report."""

    def __init__(self, meter: Meter) -> None:
        self._pools = WeakPoolSet()
        self._create_instruments(meter)
        self.events = _EventInstruments(meter)

    def _create_instruments(self, meter: Meter) -> None:
        meter.create_observable_up_down_counter(
            n.OTEL_CONNECTION_COUNT, [self._count], n.OTEL_UNIT_CONNECTION, _COUNT_DESCRIPTION
        )
        for name, field, unit, description in _UP_DOWN:
            meter.create_observable_up_down_counter(name, [self._field(field)], unit, description)

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


# One set of instruments per meter provider (OpenTelemetry cannot remove them).
_observers: weakref.WeakKeyDictionary[MeterProvider, _Observer] = weakref.WeakKeyDictionary()
_observers_lock = threading.Lock()


class Instrumentation:
    """What ``instrument()`` returns: ``close()`` stops reporting the pool.

    Also a context manager: ``with instrument(pool): ...``.
    """

    def __init__(self, observer: _Observer, pool: AsyncConnectionPool, recorder: _Recorder) -> None:
        self._observer: _Observer | None = observer
        self._pool = weakref.ref(pool)
        self._recorder = recorder

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
            detach(pool, self._recorder)

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
    recorder = _Recorder(observer.events)
    try:
        pool.add_listener(recorder)
    except BaseException:
        observer.remove(pool)
        raise
    return Instrumentation(observer, pool, recorder)

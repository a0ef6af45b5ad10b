"""Bucketed histograms of one pool's events, filled by a pool listener.

The Prometheus exporter attaches a ``PoolHistograms`` to each pool it reports
and turns its snapshots into histogram families at scrape time.  Nothing here
imports an optional library.

The listener runs in the pool's event loop; a scrape may come from another
thread (``start_http_server``), hence one lock per histogram: a snapshot never
shows a count without its sum.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from ..events import AcquireEvent, ConnectEvent, ReleaseEvent, TimeoutEvent

__all__ = ["BucketHistogram", "HistogramSnapshot", "PoolHistograms"]


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Per-bucket (not cumulative) counts; the last one is above every bound."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float

    @property
    def count(self) -> int:
        """Observations in all."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` pairs, ending with ``(inf, count)``."""
        pairs: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


class BucketHistogram:
    """Counts observations per bucket ``(previous bound, bound]``, like Prometheus's ``le``."""

    __slots__ = ("_bounds", "_counts", "_lock", "_sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if not bounds or any(b >= a for a, b in zip(bounds[1:], bounds, strict=False)):
            raise ValueError(f"bucket bounds must be increasing and not empty, got {bounds!r}")
        self._bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Count one observation (seconds)."""
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le).
        index = bisect_left(self._bounds, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    def snapshot(self) -> HistogramSnapshot:
        """A consistent copy of the counts and sum."""
        with self._lock:
            return HistogramSnapshot(self._bounds, tuple(self._counts), self._sum)


class PoolHistograms:
    """A pool listener keeping wait, use and create histograms and a timeout count.

    * wait: ``AcquireEvent.wait_s`` of every hand-out, queued or not;
    * use: ``ReleaseEvent.held_s`` of every return, whatever its outcome;
    * create: ``ConnectEvent.duration_s`` of every connection opened (failed
      attempts opened nothing and are left out);
    * timeouts: one per ``TimeoutEvent``.
    """

    __slots__ = ("_timeouts", "_timeouts_lock", "create", "use", "wait")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.wait = BucketHistogram(bounds)
        self.use = BucketHistogram(bounds)
        self.create = BucketHistogram(bounds)
        self._timeouts = 0
        self._timeouts_lock = threading.Lock()

    @property
    def timeouts(self) -> int:
        """Requests that gave up with ``PoolTimeout``."""
        with self._timeouts_lock:
            return self._timeouts

    def on_acquire(self, event: AcquireEvent) -> None:
        """A connection was handed out after ``event.wait_s``."""
        self.wait.observe(event.wait_s)

    def on_release(self, event: ReleaseEvent) -> None:
        """A connection came back after ``event.held_s``."""
        self.use.observe(event.held_s)

    def on_connect(self, event: ConnectEvent) -> None:
        """A connection attempt ended; only successes are connections created."""
        if event.error is None:
            self.create.observe(event.duration_s)

    def on_timeout(self, event: TimeoutEvent) -> None:
        """A request gave up."""
        with self._timeouts_lock:
            self._timeouts += 1

"""The Prometheus collector and the OpenTelemetry instruments, on pools over a fake server.

The histograms come from pool events: some tests feed events to the
exporters' listeners directly, others let a pool (over the fake server, and
one over MariaDB) emit them.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import itertools
import math
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as OtelHistogram
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aiopool import AsyncConnectionPool, PoolStats, PoolTimeout
from aiopool.events import AcquireEvent, ConnectEvent, ReleaseEvent, TimeoutEvent
from aiopool.metrics import _names as n
from aiopool.metrics import otel, prometheus
from aiopool.metrics._histogram import BucketHistogram, PoolHistograms
from tests.support.fakes import FakeServer
from tests.support.pooltools import fake_pool, settle

SECRET = "Sup3rS3cret"
BOUNDS = n.SECONDS_BUCKETS


# Prometheus counter -> (PoolStats field, divisor)
PROM_COUNTERS = {
    n.PROM_REQUESTS: ("requests_num", 1),
    n.PROM_REQUESTS_QUEUED: ("requests_queued", 1),
    n.PROM_REQUEST_WAIT_SECONDS: ("requests_wait_ms", 1000.0),
    n.PROM_REQUEST_ERRORS: ("requests_errors", 1),
    n.PROM_CONNECTIONS_OPENED: ("connections_num", 1),
    n.PROM_CONNECTION_OPEN_SECONDS: ("connections_ms", 1000.0),
    n.PROM_CONNECTION_ERRORS: ("connections_errors", 1),
    n.PROM_CONNECTIONS_LOST: ("connections_lost", 1),
    n.PROM_RETURNS_BAD: ("returns_bad", 1),
    n.PROM_USE_SECONDS: ("usage_ms", 1000.0),
}
PROM_GAUGES = {
    n.PROM_CONNECTIONS_MAX: "pool_max",
    n.PROM_CONNECTIONS_MIN: "pool_min",
    n.PROM_REQUESTS_WAITING: "requests_waiting",
}
PROM_STATES = {"idle": "pool_available", "used": "pool_in_use", "opening": "pool_opening"}


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
async def pools(
    server: FakeServer,
) -> AsyncIterator[tuple[AsyncConnectionPool, AsyncConnectionPool]]:
    alpha = fake_pool(server, name="alpha", min_size=2, max_size=4)
    beta = fake_pool(server, name="beta", min_size=1, max_size=1)
    async with alpha, beta:
        yield alpha, beta


async def exercise(alpha: AsyncConnectionPool, beta: AsyncConnectionPool) -> None:
    """Borrow and return on both pools, queue a request on beta and time one out."""
    for _ in range(3):
        async with alpha.connection():
            await asyncio.sleep(0.002)
    held = await beta.acquire()
    waiter = asyncio.create_task(beta.acquire())
    await asyncio.sleep(0.01)
    await beta.release(held)
    held = await waiter
    with pytest.raises(PoolTimeout):
        await beta.acquire(timeout=0.02)
    await beta.release(held)
    await settle(alpha)
    await settle(beta)


def check_prometheus(registry: CollectorRegistry, name: str, stats: PoolStats) -> None:
    for metric, (field, divisor) in PROM_COUNTERS.items():
        value = registry.get_sample_value(metric, {"pool": name})
        assert value == pytest.approx(stats[field] / divisor), metric
    for metric, field in PROM_GAUGES.items():
        assert registry.get_sample_value(metric, {"pool": name}) == stats[field], metric
    for state, field in PROM_STATES.items():
        labels = {"pool": name, "state": state}
        assert registry.get_sample_value(n.PROM_CONNECTIONS, labels) == stats[field], state


# ---------------------------------------------------------------- Prometheus


async def test_prometheus_reports_two_pools(
    pools: tuple[AsyncConnectionPool, AsyncConnectionPool],
) -> None:
    alpha, beta = pools
    registry = CollectorRegistry()
    collector = prometheus.register(alpha, registry)
    assert prometheus.register(beta, registry) is collector
    assert collector.pools == [alpha, beta]
    await exercise(alpha, beta)

    a, b = alpha.get_stats(), beta.get_stats()
    assert a.requests_num == 3 and a.pool_available == 2 and a.connections_num == 2
    # Queued counts every request that had to wait, the one that timed out too.
    assert b.requests_num == 3 and b.requests_queued == 2 and b.requests_errors == 1
    assert b.requests_wait_ms > 0 and a.usage_ms > 0
    check_prometheus(registry, "alpha", a)
    check_prometheus(registry, "beta", b)


async def test_prometheus_text_exposition(
    pools: tuple[AsyncConnectionPool, AsyncConnectionPool],
) -> None:
    alpha, beta = pools
    registry = CollectorRegistry()
    prometheus.register(alpha, registry)
    prometheus.register(beta, registry)
    await exercise(alpha, beta)

    text = generate_latest(registry).decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    for name, pool in (("alpha", alpha), ("beta", beta)):
        stats = pool.get_stats()
        for metric, (field, divisor) in PROM_COUNTERS.items():
            key = (metric, (("pool", name),))
            assert samples[key] == pytest.approx(stats[field] / divisor), metric
        for metric, field in PROM_GAUGES.items():
            assert samples[(metric, (("pool", name),))] == stats[field]
        for state, field in PROM_STATES.items():
            state_key = (n.PROM_CONNECTIONS, (("pool", name), ("state", state)))
            assert samples[state_key] == stats[field]
    # Each family is declared once, whatever the number of pools.
    assert text.count(f"# TYPE {n.PROM_CONNECTIONS} gauge") == 1
    assert text.count("# TYPE aiopool_requests_total counter") == 1


async def test_prometheus_live_gauges_at_scrape_time(server: FakeServer) -> None:
    registry = CollectorRegistry()
    async with fake_pool(server, name="p", min_size=1, max_size=1) as pool:
        prometheus.register(pool, registry)
        held = await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.005)
        assert registry.get_sample_value(n.PROM_REQUESTS_WAITING, {"pool": "p"}) == 1
        assert registry.get_sample_value(n.PROM_CONNECTIONS, {"pool": "p", "state": "used"}) == 1
        assert registry.get_sample_value(n.PROM_CONNECTIONS, {"pool": "p", "state": "idle"}) == 0
        check_prometheus(registry, "p", pool.get_stats())
        await pool.release(held)
        await pool.release(await waiter)
        await settle(pool)
        assert registry.get_sample_value(n.PROM_CONNECTIONS, {"pool": "p", "state": "idle"}) == 1


async def test_prometheus_names_must_be_unique_and_unregister(server: FakeServer) -> None:
    registry = CollectorRegistry()
    first = fake_pool(server, name="same")
    second = fake_pool(server, name="same")
    collector = prometheus.register(first, registry)
    assert prometheus.register(first, registry) is collector  # twice is harmless
    with pytest.raises(ValueError, match=r"'same'.*unique name="):
        prometheus.register(second, registry)
    # A second collector would duplicate the families: the registry refuses it.
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(prometheus.PoolCollector(second))

    prometheus.unregister(first, registry)
    assert registry.get_sample_value(n.PROM_CONNECTIONS_MAX, {"pool": "same"}) is None
    assert "aiopool" not in generate_latest(registry).decode()
    prometheus.unregister(first, registry)  # not registered: no error
    assert prometheus.register(second, registry) is not collector


async def test_prometheus_forgets_collected_pools(server: FakeServer) -> None:
    registry = CollectorRegistry()
    kept = fake_pool(server, name="kept")
    collector = prometheus.PoolCollector([kept, fake_pool(server, name="dropped")])
    registry.register(collector)
    gc.collect()
    assert collector.pools == [kept]
    assert registry.get_sample_value(n.PROM_CONNECTIONS_MIN, {"pool": "kept"}) == 1
    assert registry.get_sample_value(n.PROM_CONNECTIONS_MIN, {"pool": "dropped"}) is None


# ------------------------------------------------------- histograms from events


def le_counts(values: list[float]) -> dict[float, int]:
    """What a Prometheus histogram's cumulative buckets hold for ``values``."""
    return {bound: sum(v <= bound for v in values) for bound in (*BOUNDS, math.inf)}


def test_bucket_histogram_puts_a_bound_in_its_own_bucket() -> None:
    histogram = BucketHistogram((0.001, 0.01, 1.0))
    for value in (0.0, 0.001, 0.0010001, 0.01, 0.5, 1.0, 7.0, 7.0):
        histogram.observe(value)
    snapshot = histogram.snapshot()
    assert snapshot.counts == (2, 2, 2, 2)  # (..0.001], (..0.01], (..1], above
    assert snapshot.count == 8
    assert snapshot.sum == pytest.approx(15.5120001)
    assert snapshot.cumulative() == [(0.001, 2), (0.01, 4), (1.0, 6), (math.inf, 8)]
    for bad in ((), (1.0, 1.0), (2.0, 1.0)):
        with pytest.raises(ValueError, match="increasing"):
            BucketHistogram(bad)


def test_buckets_span_100_microseconds_to_30_seconds() -> None:
    assert BOUNDS[0] == 0.0001 and BOUNDS[-1] == 30.0
    assert list(BOUNDS) == sorted(set(BOUNDS))


def prom_histogram(text: str, name: str, pool: str) -> tuple[dict[float, float], float, float]:
    """One pool's cumulative buckets (le -> count), _count and _sum, from the exposition."""
    buckets: dict[float, float] = {}
    count = total = math.nan
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        assert family.type == "histogram", family.type
        for sample in family.samples:
            if sample.labels.get("pool") != pool:
                continue
            if sample.name == f"{name}_bucket":
                buckets[float(sample.labels["le"])] = sample.value
            elif sample.name == f"{name}_count":
                count = sample.value
            elif sample.name == f"{name}_sum":
                total = sample.value
    return buckets, count, total


def prom_listener(collector: prometheus.PoolCollector, pool: AsyncConnectionPool) -> PoolHistograms:
    listener = collector._listeners.get(pool)
    assert listener is not None, "register() gave the pool no listener"
    return listener


async def test_prometheus_histograms_count_the_events_fed(server: FakeServer) -> None:
    registry = CollectorRegistry()
    alpha, beta = fake_pool(server, name="alpha"), fake_pool(server, name="beta")
    collector = prometheus.register(alpha, registry)
    prometheus.register(beta, registry)
    a, b = prom_listener(collector, alpha), prom_listener(collector, beta)

    waits = [0.00005] * 5 + [0.03, 0.03, 45.0]  # five not queued, three queued
    for wait in waits:
        a.on_acquire(AcquireEvent("alpha", wait, queued=wait > 0.001))
    held = [0.0001, 0.2, 0.2, 0.2]
    for hold in held:
        a.on_release(ReleaseEvent("alpha", hold, "reused"))
    a.on_connect(ConnectEvent("alpha", 0.004, None))
    a.on_connect(ConnectEvent("alpha", 0.004, None))
    a.on_connect(ConnectEvent("alpha", 3.0, OSError("refused")))  # opened nothing
    b.on_timeout(TimeoutEvent("beta", 5.0))
    b.on_timeout(TimeoutEvent("beta", 5.0))

    text = generate_latest(registry).decode()
    buckets, count, total = prom_histogram(text, n.PROM_WAIT_HISTOGRAM, "alpha")
    assert buckets == le_counts(waits)
    assert buckets[0.0001] == 5 and buckets[0.025] == 5 and buckets[0.05] == 7
    assert buckets[30.0] == 7 and buckets[math.inf] == 8  # 45 s: above every bound
    assert count == 8 and total == pytest.approx(sum(waits))

    buckets, count, total = prom_histogram(text, n.PROM_USE_HISTOGRAM, "alpha")
    assert buckets == le_counts(held)
    assert buckets[0.1] == 1 and buckets[0.25] == 4
    assert count == 4 and total == pytest.approx(sum(held))

    buckets, count, total = prom_histogram(text, n.PROM_CREATE_HISTOGRAM, "alpha")
    assert buckets == le_counts([0.004, 0.004])
    assert count == 2 and total == pytest.approx(0.008)

    # beta saw no hand-out: its histograms are there, empty.
    buckets, count, total = prom_histogram(text, n.PROM_WAIT_HISTOGRAM, "beta")
    assert set(buckets.values()) == {0} and count == 0 and total == 0
    assert registry.get_sample_value(n.PROM_TIMEOUTS, {"pool": "beta"}) == 2
    assert registry.get_sample_value(n.PROM_TIMEOUTS, {"pool": "alpha"}) == 0

    for name in (n.PROM_WAIT_HISTOGRAM, n.PROM_USE_HISTOGRAM, n.PROM_CREATE_HISTOGRAM):
        assert text.count(f"# TYPE {name} histogram") == 1
        assert f'{name}_bucket{{le="0.0001",pool="alpha"}}' in text
        assert f'{name}_bucket{{le="30.0",pool="alpha"}}' in text
    assert text.count(f"# TYPE {n.PROM_TIMEOUTS} counter") == 1


async def test_prometheus_unregister_takes_the_listener_off(server: FakeServer) -> None:
    registry = CollectorRegistry()
    pool = fake_pool(server, name="p")
    collector = prometheus.register(pool, registry)
    listener = prom_listener(collector, pool)
    other = fake_pool(server, name="other")
    prometheus.register(other, registry)
    prometheus.unregister(pool, registry)
    assert pool not in collector._listeners
    with pytest.raises(ValueError, match="not a listener"):
        pool.remove_listener(listener)  # already off
    assert registry.get_sample_value(f"{n.PROM_WAIT_HISTOGRAM}_count", {"pool": "p"}) is None
    assert registry.get_sample_value(f"{n.PROM_WAIT_HISTOGRAM}_count", {"pool": "other"}) == 0
    # A user who took it off first: unregister does not mind.
    prometheus.register(pool, registry)
    pool.remove_listener(prom_listener(collector, pool))
    prometheus.unregister(pool, registry)


async def test_prometheus_register_refused_leaves_no_listener(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = CollectorRegistry()
    Histogram(n.PROM_WAIT_HISTOGRAM, "someone else's", registry=registry)
    pool = fake_pool(server, name="p")
    added: list[object] = []
    removed: list[object] = []
    add, remove = pool.add_listener, pool.remove_listener
    monkeypatch.setattr(pool, "add_listener", lambda obj: (added.append(obj), add(obj))[1])
    monkeypatch.setattr(pool, "remove_listener", lambda obj: (removed.append(obj), remove(obj))[1])
    with pytest.raises(ValueError, match="Duplicated"):
        prometheus.register(pool, registry)
    assert len(added) == 1 and removed == added
    assert "aiopool_connections" not in generate_latest(registry).decode()


async def test_prometheus_histograms_from_a_pool(server: FakeServer) -> None:
    """What the pool did, seen in the histograms: counts match, known durations land right."""
    registry = CollectorRegistry()
    pool = fake_pool(server, name="p", min_size=2, max_size=2, timeout=5)
    prometheus.register(pool, registry)  # before open: the first connections count too
    async with pool:
        await settle(pool)
        for _ in range(4):  # four hand-outs from idle connections, each held >= 60 ms
            async with pool.connection():
                await asyncio.sleep(0.06)
        first, second = await pool.acquire(), await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())  # queued for >= 60 ms
        await asyncio.sleep(0.06)
        await pool.release(first)
        third = await waiter
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.01)
        await pool.release(second)
        await pool.release(third)
        await settle(pool)
        stats = pool.get_stats()
        text = generate_latest(registry).decode()

    wait, wait_count, _ = prom_histogram(text, n.PROM_WAIT_HISTOGRAM, "p")
    assert wait_count == stats.requests_num - stats.requests_errors == 7
    assert wait[0.05] <= 6, "the queued request waited >= 60 ms"
    use, use_count, use_sum = prom_histogram(text, n.PROM_USE_HISTOGRAM, "p")
    assert use_count == 7
    assert use[0.05] <= 2, "five loans lasted >= 60 ms"  # only second and third may be short
    assert use_sum >= 5 * 0.05
    _, create_count, _ = prom_histogram(text, n.PROM_CREATE_HISTOGRAM, "p")
    assert create_count == stats.connections_num == server.opened == 2
    assert registry.get_sample_value(n.PROM_TIMEOUTS, {"pool": "p"}) == 1


# ------------------------------------------------------------- OpenTelemetry


def read_otel(reader: InMemoryMetricReader) -> dict[str, Metric]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def sum_of(metric: Metric) -> Sum:
    """Every aiopool instrument is an observable (up-down) counter: a Sum, cumulative."""
    assert isinstance(metric.data, Sum), metric.name
    assert metric.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    return metric.data


def points(metric: Metric) -> dict[tuple[tuple[str, Any], ...], float]:
    values: dict[tuple[tuple[str, Any], ...], float] = {}
    for point in sum_of(metric).data_points:
        assert isinstance(point, NumberDataPoint)
        values[tuple(sorted((point.attributes or {}).items()))] = point.value
    return values


def pool_attr(name: str) -> tuple[tuple[str, Any], ...]:
    return ((n.OTEL_POOL_NAME, name),)


OTEL_FIELDS: dict[str, tuple[str, float, str, bool]] = {
    # name: (PoolStats field, divisor, unit, monotonic)
    n.OTEL_IDLE_MAX: ("pool_max", 1, "{connection}", False),
    n.OTEL_IDLE_MIN: ("pool_min", 1, "{connection}", False),
    n.OTEL_MAX: ("pool_max", 1, "{connection}", False),
    n.OTEL_PENDING_REQUESTS: ("requests_waiting", 1, "{request}", False),
}
OTEL_EVENT_METRICS = {n.OTEL_WAIT_TIME, n.OTEL_USE_TIME, n.OTEL_CREATE_TIME, n.OTEL_TIMEOUTS}


def check_otel(metrics: dict[str, Metric], name: str, stats: PoolStats) -> None:
    count = metrics[n.OTEL_CONNECTION_COUNT]
    assert count.unit == "{connection}" and not sum_of(count).is_monotonic
    values = points(count)
    idle = ((n.OTEL_POOL_NAME, name), (n.OTEL_STATE, "idle"))
    used = ((n.OTEL_POOL_NAME, name), (n.OTEL_STATE, "used"))
    assert values[idle] == stats.pool_available
    assert values[used] == stats.pool_in_use
    for metric_name, (field, divisor, unit, monotonic) in OTEL_FIELDS.items():
        metric = metrics[metric_name]
        assert metric.unit == unit, metric_name
        assert sum_of(metric).is_monotonic is monotonic, metric_name
        value = points(metric)[pool_attr(name)]
        assert value == pytest.approx(stats[field] / divisor), metric_name


async def test_otel_reports_two_pools(
    pools: tuple[AsyncConnectionPool, AsyncConnectionPool],
) -> None:
    alpha, beta = pools
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        with otel.instrument(alpha, provider), otel.instrument(beta, provider):
            await exercise(alpha, beta)
            metrics = read_otel(reader)
            # The event instruments show up once the pool has emitted events.
            assert set(metrics) - OTEL_EVENT_METRICS == {n.OTEL_CONNECTION_COUNT, *OTEL_FIELDS}
            check_otel(metrics, "alpha", alpha.get_stats())
            check_otel(metrics, "beta", beta.get_stats())
    finally:
        provider.shutdown()


async def test_otel_close_stops_reporting(server: FakeServer) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        async with fake_pool(server, name="one") as one, fake_pool(server, name="two") as two:
            first = otel.instrument(one, provider)
            second = otel.instrument(two, provider)
            with pytest.raises(ValueError, match="already instrumented"):
                otel.instrument(one, provider)
            with pytest.raises(ValueError, match="'two' is already instrumented"):
                otel.instrument(fake_pool(server, name="two"), provider)
            assert pool_attr("one") in points(read_otel(reader)[n.OTEL_MAX])
            first.close()
            first.close()
            assert first.closed and not second.closed
            assert set(points(read_otel(reader)[n.OTEL_MAX])) == {pool_attr("two")}
            # The instruments stay; the pool can be instrumented again.
            with otel.instrument(one, provider):
                assert len(points(read_otel(reader)[n.OTEL_MAX])) == 2
            second.close()
    finally:
        provider.shutdown()


async def test_otel_pending_requests_at_collection(server: FakeServer) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        async with fake_pool(server, name="p", min_size=1, max_size=1) as pool:
            with otel.instrument(pool, provider):
                held = await pool.acquire()
                waiter = asyncio.create_task(pool.acquire())
                await asyncio.sleep(0.005)
                metrics = read_otel(reader)
                assert points(metrics[n.OTEL_PENDING_REQUESTS])[pool_attr("p")] == 1
                check_otel(metrics, "p", pool.get_stats())
                await pool.release(held)
                await pool.release(await waiter)
    finally:
        provider.shutdown()


# ------------------------------------------------ OpenTelemetry histograms from events


def otel_histogram(metric: Metric, name: str) -> HistogramDataPoint:
    assert isinstance(metric.data, OtelHistogram), metric.name
    assert metric.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    assert metric.unit == "s"
    found = [p for p in metric.data.data_points if p.attributes == {n.OTEL_POOL_NAME: name}]
    assert len(found) == 1, metric.data.data_points
    return found[0]


def bucket_counts(values: list[float]) -> list[int]:
    """OpenTelemetry's per-bucket counts for ``values``: (previous bound, bound], then above."""
    edges = [-math.inf, *BOUNDS, math.inf]
    return [sum(lo < v <= hi for v in values) for lo, hi in itertools.pairwise(edges)]


async def test_otel_histograms_count_the_events_fed(server: FakeServer) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        alpha, beta = fake_pool(server, name="alpha"), fake_pool(server, name="beta")
        with otel.instrument(alpha, provider) as a_inst, otel.instrument(beta, provider) as b_inst:
            a, b = a_inst._recorder, b_inst._recorder
            waits = [0.00005] * 5 + [0.03, 0.03, 45.0]
            for wait in waits:
                a.on_acquire(AcquireEvent("alpha", wait, queued=wait > 0.001))
            held = [0.0001, 0.2, 0.2, 0.2]
            for hold in held:
                a.on_release(ReleaseEvent("alpha", hold, "reset"))
            a.on_connect(ConnectEvent("alpha", 0.004, None))
            a.on_connect(ConnectEvent("alpha", 3.0, OSError("refused")))
            b.on_acquire(AcquireEvent("beta", 0.5, queued=True))
            b.on_timeout(TimeoutEvent("beta", 5.0))
            b.on_timeout(TimeoutEvent("beta", 5.0))
            metrics = read_otel(reader)

        wait = otel_histogram(metrics[n.OTEL_WAIT_TIME], "alpha")
        assert tuple(wait.explicit_bounds) == BOUNDS
        assert list(wait.bucket_counts) == bucket_counts(waits)
        assert wait.bucket_counts[0] == 5 and wait.bucket_counts[-1] == 1
        assert wait.count == 8 and wait.sum == pytest.approx(sum(waits))
        assert otel_histogram(metrics[n.OTEL_WAIT_TIME], "beta").count == 1
        use = otel_histogram(metrics[n.OTEL_USE_TIME], "alpha")
        assert list(use.bucket_counts) == bucket_counts(held)
        create = otel_histogram(metrics[n.OTEL_CREATE_TIME], "alpha")
        assert create.count == 1 and create.sum == pytest.approx(0.004)
        timeouts = metrics[n.OTEL_TIMEOUTS]
        assert timeouts.unit == "{timeout}" and sum_of(timeouts).is_monotonic
        assert points(timeouts) == {pool_attr("beta"): 2}
    finally:
        provider.shutdown()


async def test_otel_close_takes_the_listener_off(server: FakeServer) -> None:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        pool = fake_pool(server, name="p")
        instrumentation = otel.instrument(pool, provider)
        recorder = instrumentation._recorder
        instrumentation.close()
        with pytest.raises(ValueError, match="not a listener"):
            pool.remove_listener(recorder)
        # Taken off by hand first: close() does not mind.
        instrumentation = otel.instrument(pool, provider)
        pool.remove_listener(instrumentation._recorder)
        instrumentation.close()
    finally:
        provider.shutdown()


async def test_otel_histograms_from_a_pool(server: FakeServer) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        pool = fake_pool(server, name="p", min_size=2, max_size=2, timeout=5)
        with otel.instrument(pool, provider):  # before open: the first connections count too
            async with pool:
                await settle(pool)
                for _ in range(3):
                    async with pool.connection():
                        await asyncio.sleep(0.06)
                first, second = await pool.acquire(), await pool.acquire()
                waiter = asyncio.create_task(pool.acquire())
                await asyncio.sleep(0.06)
                await pool.release(first)
                third = await waiter
                with pytest.raises(PoolTimeout):
                    await pool.acquire(timeout=0.01)
                await pool.release(second)
                await pool.release(third)
                await settle(pool)
                metrics = read_otel(reader)
                stats = pool.get_stats()
    finally:
        provider.shutdown()
    wait = otel_histogram(metrics[n.OTEL_WAIT_TIME], "p")
    assert wait.count == 6
    index_50ms = BOUNDS.index(0.05)
    assert sum(wait.bucket_counts[index_50ms + 1 :]) >= 1, "the queued request waited >= 60 ms"
    use = otel_histogram(metrics[n.OTEL_USE_TIME], "p")
    assert use.count == 6
    assert sum(use.bucket_counts[index_50ms + 1 :]) >= 4, "four loans lasted >= 60 ms"
    create = otel_histogram(metrics[n.OTEL_CREATE_TIME], "p")
    assert create.count == stats.connections_num == server.opened == 2
    assert points(metrics[n.OTEL_TIMEOUTS]) == {pool_attr("p"): 1}


# ------------------------------------------------------------------ a real server


async def test_both_exporters_on_a_real_server(database_url: str) -> None:
    """One pool on MariaDB, exported both ways: the same events in both histograms."""
    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    pool = AsyncConnectionPool(database_url, name="real", min_size=1, max_size=2, timeout=10)
    prometheus.register(pool, registry)
    try:
        with otel.instrument(pool, provider):
            async with pool:
                for _ in range(3):  # each loan holds its connection through SLEEP(0.06)
                    async with pool.connection() as conn:
                        async with conn.cursor() as cur:
                            await cur.execute("SELECT SLEEP(0.06)")
                            await cur.fetchall()
                await settle(pool)
                stats = pool.get_stats()
                metrics = read_otel(reader)
                text = generate_latest(registry).decode()
    finally:
        provider.shutdown()
    opened = stats.connections_num
    assert opened >= 1
    _, wait_count, _ = prom_histogram(text, n.PROM_WAIT_HISTOGRAM, "real")
    use, use_count, _ = prom_histogram(text, n.PROM_USE_HISTOGRAM, "real")
    _, create_count, _ = prom_histogram(text, n.PROM_CREATE_HISTOGRAM, "real")
    assert wait_count == use_count == 3 and create_count == opened
    assert use[0.05] == 0 and use[math.inf] == 3  # every loan lasted >= 60 ms
    assert otel_histogram(metrics[n.OTEL_WAIT_TIME], "real").count == 3
    otel_use = otel_histogram(metrics[n.OTEL_USE_TIME], "real")
    assert otel_use.count == 3 and sum(otel_use.bucket_counts[: BOUNDS.index(0.05) + 1]) == 0
    assert otel_histogram(metrics[n.OTEL_CREATE_TIME], "real").count == opened


# ------------------------------------------------------------------ secrets, imports


async def test_password_never_reaches_labels_or_attributes(server: FakeServer) -> None:
    url = f"mysql://u:{SECRET}@h/db"
    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    pool = AsyncConnectionPool(url, connection_factory=server.connect, min_size=1, max_size=2)
    try:
        async with pool:
            prometheus.register(pool, registry)
            with otel.instrument(pool, provider):
                async with pool.connection():
                    pass
                text = generate_latest(registry).decode()
                data = reader.get_metrics_data()
                assert data is not None
                dumped = data.to_json()
        assert SECRET not in pool.name
        assert f'pool="{pool.name}"' in text and SECRET not in text
        assert pool.name in dumped and SECRET not in dumped
    finally:
        provider.shutdown()


def test_importing_the_package_imports_no_optional_library() -> None:
    code = (
        "import sys, aiopool.metrics, aiopool.metrics._names\n"
        "assert 'prometheus_client' not in sys.modules\n"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("aiopool.metrics.prometheus", "prometheus_client", "aiopool-mysql[prometheus]"),
        ("aiopool.metrics.otel", "opentelemetry", "aiopool-mysql[otel]"),
    ],
)
def test_missing_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, missing: str, extra: str
) -> None:
    for name in [m for m in sys.modules if m == missing or m.startswith(missing + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, missing, None)
    monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ImportError, match=re.escape(f"pip install '{extra}'")):
        importlib.import_module(module)

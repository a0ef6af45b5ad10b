"""The Prometheus collector and the OpenTelemetry instruments, on pools over a fake server."""

from __future__ import annotations

import asyncio
import gc
import importlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    Sum,
)
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aiopool import AsyncConnectionPool, PoolStats, PoolTimeout
from aiopool.metrics import _names as n
from aiopool.metrics import otel, prometheus
from tests.support.fakes import FakeServer
from tests.support.pooltools import fake_pool, settle

SECRET = "Sup3rS3cret"

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
    n.OTEL_TIMEOUTS: ("requests_errors", 1, "{timeout}", True),
    n.OTEL_CREATE_TIME_TOTAL: ("connections_ms", 1000.0, "s", True),
    n.OTEL_WAIT_TIME_TOTAL: ("requests_wait_ms", 1000.0, "s", True),
    n.OTEL_USE_TIME_TOTAL: ("usage_ms", 1000.0, "s", True),
}


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
            assert set(metrics) == {n.OTEL_CONNECTION_COUNT, *OTEL_FIELDS}
            check_otel(metrics, "alpha", alpha.get_stats())
            check_otel(metrics, "beta", beta.get_stats())
            assert points(metrics[n.OTEL_TIMEOUTS])[pool_attr("beta")] == 1
            assert points(metrics[n.OTEL_TIMEOUTS])[pool_attr("alpha")] == 0
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

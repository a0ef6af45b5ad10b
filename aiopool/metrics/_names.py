"""Every metric, label and attribute name aiopool exports, in one place.

OpenTelemetry's database-client connection-pool conventions are still marked
"development": when they change, this module is the only one to edit.
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------- Prometheus
# Counter names are written as they appear in the exposition (with ``_total``);
# prometheus_client's CounterMetricFamily strips the suffix and adds it back.

PROM_POOL_LABEL: Final = "pool"
PROM_STATE_LABEL: Final = "state"
PROM_STATE_IDLE: Final = "idle"
PROM_STATE_USED: Final = "used"
PROM_STATE_OPENING: Final = "opening"

PROM_CONNECTIONS: Final = "aiopool_connections"
PROM_CONNECTIONS_MAX: Final = "aiopool_connections_max"
PROM_CONNECTIONS_MIN: Final = "aiopool_connections_min"
PROM_REQUESTS_WAITING: Final = "aiopool_requests_waiting"

PROM_REQUESTS: Final = "aiopool_requests_total"
PROM_REQUESTS_QUEUED: Final = "aiopool_requests_queued_total"
PROM_REQUEST_WAIT_SECONDS: Final = "aiopool_request_wait_seconds_total"
PROM_REQUEST_ERRORS: Final = "aiopool_request_errors_total"
PROM_CONNECTIONS_OPENED: Final = "aiopool_connections_opened_total"
PROM_CONNECTION_OPEN_SECONDS: Final = "aiopool_connection_open_seconds_total"
PROM_CONNECTION_ERRORS: Final = "aiopool_connection_errors_total"
PROM_CONNECTIONS_LOST: Final = "aiopool_connections_lost_total"
PROM_RETURNS_BAD: Final = "aiopool_returns_bad_total"
PROM_USE_SECONDS: Final = "aiopool_use_seconds_total"

# Histograms and counters fed by pool events (a listener), one observation per event.
PROM_WAIT_HISTOGRAM: Final = "aiopool_connection_wait_seconds"
PROM_USE_HISTOGRAM: Final = "aiopool_connection_use_seconds"
PROM_CREATE_HISTOGRAM: Final = "aiopool_connection_create_seconds"
PROM_TIMEOUTS: Final = "aiopool_connection_timeouts_total"

# ------------------------------------------------------------- OpenTelemetry
# https://opentelemetry.io/docs/specs/semconv/database/database-metrics/

OTEL_METER_NAME: Final = "aiopool"

OTEL_POOL_NAME: Final = "db.client.connection.pool.name"
OTEL_STATE: Final = "db.client.connection.state"
OTEL_STATE_IDLE: Final = "idle"
OTEL_STATE_USED: Final = "used"

OTEL_CONNECTION_COUNT: Final = "db.client.connection.count"
OTEL_IDLE_MAX: Final = "db.client.connection.idle.max"
OTEL_IDLE_MIN: Final = "db.client.connection.idle.min"
OTEL_MAX: Final = "db.client.connection.max"
OTEL_PENDING_REQUESTS: Final = "db.client.connection.pending_requests"
OTEL_TIMEOUTS: Final = "db.client.connection.timeouts"
OTEL_CREATE_TIME: Final = "db.client.connection.create_time"
OTEL_WAIT_TIME: Final = "db.client.connection.wait_time"
OTEL_USE_TIME: Final = "db.client.connection.use_time"

OTEL_UNIT_CONNECTION: Final = "{connection}"
OTEL_UNIT_REQUEST: Final = "{request}"
OTEL_UNIT_TIMEOUT: Final = "{timeout}"
OTEL_UNIT_SECONDS: Final = "s"

# ------------------------------------------------------------------- buckets
# Upper bounds, in seconds, of the wait, use and create histograms of both
# exporters: from 100 µs (a hand-out from an idle connection lands in the
# first bucket) to 30 s (the pool's default timeout, as in psycopg_pool and
# HikariCP, bounds a wait), in 1-2.5-5 steps so that a quantile interpolated
# inside a bucket is off by less than a factor 2.5.
SECONDS_BUCKETS: Final[tuple[float, ...]] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

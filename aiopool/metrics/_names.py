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

# The conventions' create_time, wait_time and use_time are histograms of
# single events; the pool keeps only running totals, exported under our own
# namespace until the pool can report each event.
OTEL_CREATE_TIME_TOTAL: Final = "aiopool.connection.create_time.total"
OTEL_WAIT_TIME_TOTAL: Final = "aiopool.connection.wait_time.total"
OTEL_USE_TIME_TOTAL: Final = "aiopool.connection.use_time.total"

OTEL_UNIT_CONNECTION: Final = "{connection}"
OTEL_UNIT_REQUEST: Final = "{request}"
OTEL_UNIT_TIMEOUT: Final = "{timeout}"
OTEL_UNIT_SECONDS: Final = "s"

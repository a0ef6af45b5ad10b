"""Export a pool's statistics and latency histograms to Prometheus or OpenTelemetry.

Gauges and counters read ``pool.get_stats()`` when metrics are collected.
The wait, use and create histograms and the timeout counter are filled by a
listener the exporter adds to the pool (``pool.add_listener``): one
observation per hand-out, return, connection opened and timeout.  Nothing
runs in the background.

* ``aiopool.metrics.prometheus`` (``pip install 'aiopool-mysql[prometheus]'``):
  ``register(pool)`` adds the pool to a collector in a prometheus_client
  registry.
* ``aiopool.metrics.otel`` (``pip install 'aiopool-mysql[otel]'``):
  ``instrument(pool)`` reports the pool through OpenTelemetry instruments
  named after the database-client connection-pool conventions.

Importing this package imports neither library; each submodule imports its
own and says which extra to install when it is missing.  All the names live
in ``aiopool.metrics._names``.

Counters are cumulative since the pool opened.  ``pool.pop_stats()`` sets them
back to zero, which both systems read as a counter reset (as after a process
restart) and lose what happened since the last collection: don't call
``pop_stats()`` on a pool you export.
"""

from __future__ import annotations

__all__: list[str] = []

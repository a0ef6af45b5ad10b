"""Export a pool's statistics to Prometheus or OpenTelemetry.

Both exporters read ``pool.get_stats()`` when metrics are collected: nothing
runs in the background and the pool's hot path pays nothing.

* ``aiopool.metrics.prometheus`` (``pip install 'aiopool-mysql[prometheus]'``):
  ``register(pool)`` adds the pool to a collector in a prometheus_client
  registry.
* ``aiopool.metrics.otel`` (``pip install 'aiopool-mysql[otel]'``):
  ``instrument(pool)`` reports the pool through OpenTelemetry observable
  instruments named after the database-client connection-pool conventions.

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

"""Throwaway MariaDB clusters for tests of a cluster-aware pool.

``ReplicationCluster`` is a primary and N replicas (binlog replication with
GTID, ``gtid_strict_mode``, replicas ``read_only``). ``GaleraCluster`` is three
Galera nodes (``galera-4``, rsync state transfers, failure detection tuned to
about 2 s). Everything listens on 127.0.0.1 only, on ports below the kernel's
ephemeral range, in temp dirs; every wait is bounded; ``stop()``, the context
manager and ``atexit`` stop every process. The shared server is never touched.

Each cluster has two users besides root: ``app``/``app`` (ALL on ``app.*``,
plus SLAVE MONITOR and BINLOG MONITOR to read replica status and REPLICATION
MASTER ADMIN for ``SHOW REPLICA HOSTS``, but *not* READ_ONLY ADMIN, so a
replica refuses its writes with 1290) and
``admin``/``admin`` (ALL on ``*.*``). Database ``app`` exists everywhere.

Methods block (they drive the ``mariadb`` command-line client): from async
code call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ._cluster_common import SqlError, run_sql
from ._galera import GaleraCluster, GaleraNode, ensure_galera_installed, galera_missing
from ._replication import ReplicationCluster, ReplicationNode

__all__ = [
    "GaleraCluster",
    "GaleraNode",
    "ReplicationCluster",
    "ReplicationNode",
    "SqlError",
    "ensure_galera_installed",
    "galera_missing",
    "run_sql",
]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aiopool.testing._cluster ensure-galera``: install Galera's packages."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["ensure-galera"]:
        sys.stderr.write("usage: python -m aiopool.testing._cluster ensure-galera\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ok, reason = ensure_galera_installed()
    (sys.stdout if ok else sys.stderr).write(reason + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

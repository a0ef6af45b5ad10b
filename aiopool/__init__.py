"""aiopool: an asyncio-native connection pool for MySQL and MariaDB, built on asyncmy.

>>> from aiopool import AsyncConnectionPool
>>> async with AsyncConnectionPool("mysql://root:@127.0.0.1:3306/test") as pool:  # doctest: +SKIP
...     async with pool.connection() as conn:
...         ...
"""

from __future__ import annotations

from ._cluster import ClusterConnection, ClusterPool
from ._cluster_node import NodeInfo
from ._cluster_probe import NodeRole, NodeState, NodeStatus, Probe, read_node_status
from ._null_pool import NullConnectionPool
from ._pool import AsyncConnectionPool, ConnectionContext
from ._protocols import Connection
from ._stats import PoolStats
from .errors import PoolClosed, PoolError, PoolTimeout, TooManyRequests, WrongEventLoop

__all__ = [
    "AsyncConnectionPool",
    "ClusterConnection",
    "ClusterPool",
    "Connection",
    "ConnectionContext",
    "NodeInfo",
    "NodeRole",
    "NodeState",
    "NodeStatus",
    "NullConnectionPool",
    "PoolClosed",
    "PoolError",
    "PoolStats",
    "PoolTimeout",
    "Probe",
    "TooManyRequests",
    "WrongEventLoop",
    "read_node_status",
]

__version__ = "0.1.0"

"""aiopool: an asyncio-native connection pool for MySQL and MariaDB, built on asyncmy.

>>> from aiopool import AsyncConnectionPool
>>> async with AsyncConnectionPool("mysql://root:@127.0.0.1:3306/test") as pool:  # doctest: +SKIP
...     async with pool.connection() as conn:
...         ...

The names below are imported on first use (PEP 562): the package's pytest
plugin is loaded into every test session of every project that installs
aiopool, and must not make them pay for the pool, the cluster router or asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import PoolClosed, PoolError, PoolTimeout, TooManyRequests, WrongEventLoop

if TYPE_CHECKING:
    from ._cluster import ClusterConnection, ClusterPool
    from ._cluster_node import NodeInfo
    from ._cluster_probe import NodeRole, NodeState, NodeStatus, Probe, read_node_status
    from ._context import ConnectionContext
    from ._null_pool import NullConnectionPool
    from ._pool import AsyncConnectionPool
    from ._protocols import Connection
    from ._stats import PoolStats

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

_LAZY = {
    "AsyncConnectionPool": "._pool",
    "ClusterConnection": "._cluster",
    "ClusterPool": "._cluster",
    "Connection": "._protocols",
    "ConnectionContext": "._context",
    "NodeInfo": "._cluster_node",
    "NodeRole": "._cluster_probe",
    "NodeState": "._cluster_probe",
    "NodeStatus": "._cluster_probe",
    "NullConnectionPool": "._null_pool",
    "PoolStats": "._stats",
    "Probe": "._cluster_probe",
    "read_node_status": "._cluster_probe",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aiopool' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

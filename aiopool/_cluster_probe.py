"""What a cluster node is (primary, replica, Galera) and whether it may serve.

The probe reads the node's own view of itself; ``classify`` turns that into a
role and a state by plain rules, with no I/O, so the rules are unit-tested
with scripted ``NodeStatus`` values and the real probe is a thin reader.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ._health import _mysql_errors, errno_of
from ._protocols import Connection

__all__ = [
    "Classified",
    "NodeRole",
    "NodeState",
    "NodeStatus",
    "Probe",
    "classify",
    "read_node_status",
]


class NodeRole(StrEnum):
    """What a node is in its cluster."""

    PRIMARY = "primary"
    """Writable and not a Galera node: takes the writes (and reads no replica can take)."""
    REPLICA = "replica"
    """``read_only`` (or ``innodb_read_only``): takes reads while replication keeps up."""
    GALERA = "galera"
    """A Galera node (``wsrep_on``): takes reads and writes while Synced."""
    UNKNOWN = "unknown"
    """Not checked yet, or unreachable since the cluster opened."""


class NodeState(StrEnum):
    """Whether a node serves its role now, and if not, why."""

    ONLINE = "online"
    """Serving its role."""
    LAGGING = "lagging"
    """A replica further behind than ``max_replica_lag``: no reads."""
    STOPPED = "stopped"
    """A replica whose replication is not running: no reads."""
    NOT_SYNCED = "not_synced"
    """A Galera node not ready, not Synced or outside the Primary component."""
    SUSPECT = "suspect"
    """A statement got a wrong-node error (1290, 1792, 1036, 1047): re-checking now."""
    DOWN = "down"
    """Unreachable (connection refused or lost, or the probe timed out)."""
    UNKNOWN = "unknown"
    """Not checked yet."""


# wsrep_local_state: 1 Joining, 2 Donor/Desynced, 3 Joined, 4 Synced.
_SYNCED = 4
_WSREP_STATES = {0: "Initialized", 1: "Joining", 2: "Donor/Desynced", 3: "Joined", 4: "Synced"}


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What one probe read from a node (a custom ``probe=`` returns one of these)."""

    read_only: bool = False
    """``@@read_only``."""
    innodb_read_only: bool = False
    """``@@innodb_read_only``."""
    wsrep_on: bool = False
    """``@@wsrep_on``: the node is a Galera node."""
    wsrep_ready: bool = False
    """Status ``wsrep_ready`` is ON."""
    wsrep_local_state: int | None = None
    """Status ``wsrep_local_state`` (4 = Synced)."""
    wsrep_cluster_status: str | None = None
    """Status ``wsrep_cluster_status`` (``Primary`` when in the quorum)."""
    wsrep_reject_queries: str | None = None
    """``@@wsrep_reject_queries``: anything but ``NONE`` is a node in maintenance."""
    replication_running: bool | None = None
    """Replication threads running (None: not a replica, or unknown)."""
    lag: float | None = None
    """Seconds behind the primary (None: not a replica, or unknown)."""

    @classmethod
    def primary(cls) -> NodeStatus:
        """A writable, non-Galera server."""
        return cls()

    @classmethod
    def replica(cls, lag: float | None = 0.0, *, running: bool = True) -> NodeStatus:
        """A ``read_only`` server replicating with ``lag`` seconds of delay."""
        return cls(read_only=True, replication_running=running, lag=lag)

    @classmethod
    def galera(
        cls, local_state: int = _SYNCED, cluster_status: str = "Primary", *, ready: bool = True
    ) -> NodeStatus:
        """A Galera node (Synced in the Primary component by default)."""
        return cls(
            wsrep_on=True,
            wsrep_ready=ready,
            wsrep_local_state=local_state,
            wsrep_cluster_status=cluster_status,
        )


@dataclass(frozen=True, slots=True)
class Classified:
    """The routing verdict for one node."""

    role: NodeRole
    state: NodeState
    writable: bool
    readable: bool
    detail: str | None = None


def _galera(status: NodeStatus) -> Classified:
    local = status.wsrep_local_state
    synced = status.wsrep_ready and status.wsrep_cluster_status == "Primary" and local == _SYNCED
    if not synced:
        name = _WSREP_STATES.get(local, "?") if local is not None else "?"
        detail = (
            f"wsrep_ready={'ON' if status.wsrep_ready else 'OFF'}, "
            f"wsrep_cluster_status={status.wsrep_cluster_status}, "
            f"wsrep_local_state={local} ({name})"
        )
        return Classified(NodeRole.GALERA, NodeState.NOT_SYNCED, False, False, detail)
    rejecting = status.wsrep_reject_queries
    if rejecting is not None and rejecting.upper() != "NONE":
        # Maintenance: table queries get 1047 although the node is Synced.
        detail = f"wsrep_reject_queries={rejecting}"
        return Classified(NodeRole.GALERA, NodeState.NOT_SYNCED, False, False, detail)
    writable = not (status.read_only or status.innodb_read_only)
    return Classified(NodeRole.GALERA, NodeState.ONLINE, writable, True)


def _replica(status: NodeStatus, max_lag: float | None) -> Classified:
    if max_lag is None:  # staleness of any size is acceptable
        return Classified(NodeRole.REPLICA, NodeState.ONLINE, False, True)
    if status.replication_running is False:
        detail = "replication is not running"
        return Classified(NodeRole.REPLICA, NodeState.STOPPED, False, False, detail)
    lag = status.lag
    if lag is not None and lag > max_lag:
        detail = f"{lag:g} s behind (max_replica_lag={max_lag:g})"
        return Classified(NodeRole.REPLICA, NodeState.LAGGING, False, False, detail)
    return Classified(NodeRole.REPLICA, NodeState.ONLINE, False, True)


def classify(status: NodeStatus, max_lag: float | None) -> Classified:
    """Role, state and what the node may serve, from what its probe read.

    * ``wsrep_on``: a Galera node; it serves only while ``wsrep_ready``, in
      the ``Primary`` component and Synced (a non-Primary node still answers
      pings and ``SELECT 1``).
    * ``read_only`` or ``innodb_read_only``: a replica; it serves reads while
      its replication runs and its lag does not exceed ``max_lag`` (``None``:
      any lag, even stopped replication, is acceptable).  What the server
      does not report (no privilege to read it, the I/O thread reconnecting
      to a lost primary) counts as acceptable: the data applied so far is
      still there, and refusing it would stop all reads during a fail-over.
    * Otherwise a primary, which takes the writes.
    """
    if status.wsrep_on:
        return _galera(status)
    if status.read_only or status.innodb_read_only:
        return _replica(status, max_lag)
    return Classified(NodeRole.PRIMARY, NodeState.ONLINE, True, True)


Probe = Callable[[Connection], Awaitable[NodeStatus]]
"""Reads a node's status on the cluster's own probe connection to it."""

# Status variables are not system variables: @@wsrep_ready is error 1193.
_STATUS_VARS = ("WSREP_READY", "WSREP_LOCAL_STATE", "WSREP_CLUSTER_STATUS", "SLAVE_RUNNING")
_MARIADB_SQL = (
    "SELECT @@read_only, @@innodb_read_only, @@wsrep_on, "
    + ", ".join(
        f"(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '{n}')"
        for n in _STATUS_VARS
    )
    # A variable read this way is NULL where it does not exist, never an error.
    + ", (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES "
    "WHERE VARIABLE_NAME = 'WSREP_REJECT_QUERIES')"
)
# MySQL has neither wsrep variables nor information_schema.GLOBAL_STATUS.
_MYSQL_SQL = "SELECT @@read_only, @@innodb_read_only"
_UNKNOWN_VARIABLE, _UNKNOWN_TABLE, _NO_PRIVILEGE, _SYNTAX_ERROR = 1193, 1109, 1227, 1064


def _on(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().upper() in ("ON", "1", "YES")
    return bool(value)


async def _query(conn: Connection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        rows = list(await cur.fetchall())
        names = [str(col[0]) for col in cur.description or ()]
    return names, rows


def _mysql_error(exc: BaseException, *errnos: int) -> bool:
    return isinstance(exc, _mysql_errors().MySQLError) and errno_of(exc) in errnos


async def _replica_status(conn: Connection) -> tuple[bool | None, float | None]:
    """(running, lag) from ``SHOW REPLICA STATUS``; (None, None) without the privilege."""
    try:
        names, rows = await _query(conn, "SHOW REPLICA STATUS")
    except Exception as exc:
        if _mysql_error(exc, _NO_PRIVILEGE):
            return None, None
        if not _mysql_error(exc, _SYNTAX_ERROR):
            raise
        names, rows = await _query(conn, "SHOW SLAVE STATUS")  # MariaDB < 10.5, MySQL < 8.0.22
    if not rows:
        return False, None  # read_only, but no replication configured
    row = dict(zip(names, rows[0], strict=False))

    def field(*keys: str) -> Any:
        return next((row[k] for k in keys if k in row), None)

    io = str(field("Slave_IO_Running", "Replica_IO_Running") or "No")
    sql = str(field("Slave_SQL_Running", "Replica_SQL_Running") or "No")
    # "Connecting": the primary is away; the data applied so far is still served.
    running = sql == "Yes" and io in ("Yes", "Connecting")
    lag = field("Seconds_Behind_Master", "Seconds_Behind_Source")
    return running, None if lag is None else float(lag)


async def read_node_status(conn: Connection) -> NodeStatus:
    """The default probe: one query for roles and Galera state, one more on replicas.

    ``SHOW REPLICA STATUS`` needs the SLAVE MONITOR (or REPLICATION CLIENT)
    privilege; without it the lag is unknown and MariaDB's ``Slave_running``
    status tells whether replication runs.
    """
    try:
        _, rows = await _query(conn, _MARIADB_SQL)
        read_only, innodb_ro, wsrep_on, ready, local, cluster, slave, reject = rows[0]
    except Exception as exc:
        if not _mysql_error(exc, _UNKNOWN_VARIABLE, _UNKNOWN_TABLE):
            raise
        _, rows = await _query(conn, _MYSQL_SQL)
        read_only, innodb_ro = rows[0]
        wsrep_on = ready = local = cluster = slave = reject = None
    status = NodeStatus(
        read_only=_on(read_only),
        innodb_read_only=_on(innodb_ro),
        wsrep_on=_on(wsrep_on),
        wsrep_ready=_on(ready),
        wsrep_local_state=None if local is None else int(local),
        wsrep_cluster_status=None if cluster is None else str(cluster),
        wsrep_reject_queries=None if reject is None else str(reject),
    )
    if status.wsrep_on or not (status.read_only or status.innodb_read_only):
        return status
    running, lag = await _replica_status(conn)
    if running is None and slave is not None:
        running = _on(slave)
    return NodeStatus(
        read_only=status.read_only,
        innodb_read_only=status.innodb_read_only,
        replication_running=running,
        lag=lag,
    )

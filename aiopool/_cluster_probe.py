"""What a cluster node is (primary, replica, Galera) and whether it may serve.

The probe reads the node's own view of itself; ``classify`` turns that into a
role and a state by plain rules, with no I/O, so the rules are unit-tested
with scripted ``NodeStatus`` values and the real probe is a thin reader.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
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
    "SourceLink",
    "classify",
    "read_node_status",
    "replica_verdict",
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
    FENCED = "fenced"
    """Writable, but no member replicates from it while another writable one is
    followed: a stray old primary.  No writes and no reads go to it."""
    AMBIGUOUS = "ambiguous"
    """Writable, but the replication graph cannot tell whether it is the
    primary (two writable servers nobody follows, or both followed): no
    writes and no reads until it can."""
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
class SourceLink:
    """The server a node replicates from, as its ``SHOW REPLICA STATUS`` says."""

    host: str
    """``Master_Host``."""
    port: int
    """``Master_Port``."""
    server_id: int | None = None
    """``Master_Server_Id``, only while the I/O thread is connected (the
    server keeps the old value after ``CHANGE MASTER`` until it reconnects)."""
    io_running: str = "Yes"
    """``Slave_IO_Running``: ``Yes``, ``Connecting``, ``Preparing`` or ``No``."""
    sql_running: bool = True
    """``Slave_SQL_Running`` is ``Yes``."""

    @property
    def active(self) -> bool:
        """Replication is running (or trying to): the node follows this source."""
        return self.sql_running or self.io_running != "No"


def _source(text: str | None) -> SourceLink | None:
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    return SourceLink(host, int(port))


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
    server_id: int | None = None
    """``@@server_id``: how other members' replication status names this node."""
    hostname: str | None = None
    """``@@hostname``, to match a replica's ``Master_Host`` when it is a name."""
    port: int | None = None
    """``@@port``."""
    source: SourceLink | None = None
    """What it replicates from (None: no replication configured, or unknown)."""
    source_visible: bool = True
    """False when ``SHOW REPLICA STATUS`` could not be read (no privilege):
    ``source`` is then unknown, not absent."""
    replica_ids: frozenset[int] | None = None
    """``Server_id`` of the replicas ``SHOW REPLICA HOSTS`` lists on this node
    (None: not readable, it needs REPLICATION MASTER ADMIN)."""

    @classmethod
    def primary(cls, server_id: int | None = None, *, source: str | None = None) -> NodeStatus:
        """A writable, non-Galera server (``source``: ``host:port`` it replicates from)."""
        return cls(server_id=server_id, source=_source(source))

    @classmethod
    def replica(
        cls,
        lag: float | None = 0.0,
        *,
        running: bool = True,
        source: str | None = None,
        server_id: int | None = None,
        read_only: bool = True,
    ) -> NodeStatus:
        """A ``read_only`` server replicating with ``lag`` seconds of delay.

        ``source`` (``host:port``) names the server it replicates from;
        ``read_only=False`` makes it a replica made writable by mistake.
        """
        link = _source(source)
        if link is not None and not running:
            link = SourceLink(link.host, link.port, None, "No", False)
        return cls(
            read_only=read_only,
            replication_running=running,
            lag=lag,
            server_id=server_id,
            source=link,
        )

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


def replica_verdict(status: NodeStatus, max_lag: float | None) -> Classified:
    """A replica's state: it serves reads while replication runs and keeps up."""
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
    * Otherwise a primary, which takes the writes: a node's own view; the
      replication graph (``_cluster_graph.decide``) has the last word on
      which writable server is the primary.
    """
    if status.wsrep_on:
        return _galera(status)
    if status.read_only or status.innodb_read_only:
        return replica_verdict(status, max_lag)
    return Classified(NodeRole.PRIMARY, NodeState.ONLINE, True, True)


Probe = Callable[[Connection], Awaitable[NodeStatus]]
"""Reads a node's status on the cluster's own probe connection to it."""

# Status variables are not system variables: @@wsrep_ready is error 1193.
_STATUS_VARS = ("WSREP_READY", "WSREP_LOCAL_STATE", "WSREP_CLUSTER_STATUS", "SLAVE_RUNNING")
_IDENTITY = "@@server_id, @@hostname, @@port"
_MARIADB_SQL = (
    f"SELECT @@read_only, @@innodb_read_only, {_IDENTITY}, @@wsrep_on, "
    + ", ".join(
        f"(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '{n}')"
        for n in _STATUS_VARS
    )
    # A variable read this way is NULL where it does not exist, never an error.
    + ", (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES "
    "WHERE VARIABLE_NAME = 'WSREP_REJECT_QUERIES')"
)
# MySQL has neither wsrep variables nor information_schema.GLOBAL_STATUS.
_MYSQL_SQL = f"SELECT @@read_only, @@innodb_read_only, {_IDENTITY}"
_UNKNOWN_VARIABLE, _UNKNOWN_TABLE, _NO_PRIVILEGE, _SYNTAX_ERROR = 1193, 1109, 1227, 1064


def _on(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().upper() in ("ON", "1", "YES")
    return bool(value)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return None if value is None else str(value)


_Rows = tuple[list[str], list[tuple[Any, ...]]]


async def _query(conn: Connection, sql: str) -> _Rows:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        rows = list(await cur.fetchall())
        names = [str(col[0]) for col in cur.description or ()]
    return names, rows


def _mysql_error(exc: BaseException, *errnos: int) -> bool:
    return isinstance(exc, _mysql_errors().MySQLError) and errno_of(exc) in errnos


async def _show(
    conn: Connection, new: str, old: str
) -> tuple[list[str], list[tuple[Any, ...]]] | None:
    """``SHOW REPLICA ...`` (or the pre-10.5 ``SHOW SLAVE ...``); None without the privilege."""
    try:
        return await _query(conn, new)
    except Exception as exc:
        if _mysql_error(exc, _NO_PRIVILEGE):
            return None
        if not _mysql_error(exc, _SYNTAX_ERROR):
            raise
    try:
        return await _query(conn, old)  # MariaDB < 10.5, MySQL < 8.0.22
    except Exception as exc:
        if _mysql_error(exc, _NO_PRIVILEGE):
            return None
        raise


_Replication = tuple[bool | None, float | None, SourceLink | None, bool]


async def _replica_status(conn: Connection) -> _Replication:
    """(running, lag, source, visible) from ``SHOW REPLICA STATUS``."""
    shown = await _show(conn, "SHOW REPLICA STATUS", "SHOW SLAVE STATUS")
    if shown is None:
        return None, None, None, False
    names, rows = shown
    if not rows:
        return False, None, None, True  # no replication configured
    row = dict(zip(names, rows[0], strict=False))

    def field(*keys: str) -> Any:
        return next((row[k] for k in keys if k in row), None)

    io = _text(field("Slave_IO_Running", "Replica_IO_Running")) or "No"
    sql = _text(field("Slave_SQL_Running", "Replica_SQL_Running")) or "No"
    # "Connecting": the primary is away; the data applied so far is still served.
    running = sql == "Yes" and io in ("Yes", "Connecting")
    lag = field("Seconds_Behind_Master", "Seconds_Behind_Source")
    host = _text(field("Master_Host", "Source_Host"))
    port = _int(field("Master_Port", "Source_Port"))
    source = None
    if host and port:
        # The server keeps the old source's id after CHANGE MASTER until it
        # connects to the new one: only a connected I/O thread's id is true.
        source_id = _int(field("Master_Server_Id", "Source_Server_Id")) if io == "Yes" else None
        source = SourceLink(host, port, source_id or None, io, sql == "Yes")
    return running, None if lag is None else float(lag), source, True


async def _replica_ids(conn: Connection) -> frozenset[int] | None:
    """Server ids of the replicas connected to this node (None without the privilege)."""
    shown = await _show(conn, "SHOW REPLICA HOSTS", "SHOW SLAVE HOSTS")
    if shown is None:
        return None
    names, rows = shown
    column = names.index("Server_id") if "Server_id" in names else 0
    return frozenset(i for row in rows if (i := _int(row[column])) is not None)


async def read_node_status(conn: Connection) -> NodeStatus:
    """The default probe: roles and Galera state in one query; on a non-Galera
    node also where it replicates from and who replicates from it.

    ``SHOW REPLICA STATUS`` needs the SLAVE MONITOR (or REPLICATION CLIENT)
    privilege, ``SHOW REPLICA HOSTS`` REPLICATION MASTER ADMIN; without them
    that part of the graph is unknown, and MariaDB's ``Slave_running`` status
    tells whether replication runs.
    """
    try:
        _, rows = await _query(conn, _MARIADB_SQL)
        read_only, innodb_ro, server_id, hostname, port, wsrep_on = rows[0][:6]
        ready, local, cluster, slave, reject = rows[0][6:]
    except Exception as exc:
        if not _mysql_error(exc, _UNKNOWN_VARIABLE, _UNKNOWN_TABLE):
            raise
        _, rows = await _query(conn, _MYSQL_SQL)
        read_only, innodb_ro, server_id, hostname, port = rows[0]
        wsrep_on = ready = local = cluster = slave = reject = None
    status = NodeStatus(
        read_only=_on(read_only),
        innodb_read_only=_on(innodb_ro),
        wsrep_on=_on(wsrep_on),
        wsrep_ready=_on(ready),
        wsrep_local_state=None if local is None else int(local),
        wsrep_cluster_status=_text(cluster),
        wsrep_reject_queries=_text(reject),
        server_id=_int(server_id),
        hostname=_text(hostname),
        port=_int(port),
    )
    if status.wsrep_on:
        return status
    running, lag, source, visible = await _replica_status(conn)
    if running is None and slave is not None:
        running = _on(slave)
    # Read on writable nodes too: a replica made writable by mistake is
    # still a replica, and its reads still depend on its threads and lag.
    return replace(
        status,
        replication_running=running,
        lag=lag,
        source=source,
        source_visible=visible,
        replica_ids=await _replica_ids(conn),
    )

"""A primary and N replicas with GTID binlog replication, on free loopback ports."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from ._cluster_common import (
    _REPL_ARGS,
    _REPL_USER_SQL,
    _USERS_SQL,
    Role,
    Row,
    _gtid_seq,
    _live,
    _Node,
    _port_block,
)
from ._mariadbd import (
    HOST,
    PrivateMariaDB,
    ServerError,
)

__all__ = ["ReplicationCluster", "ReplicationNode"]

_log = logging.getLogger("aiopool.testing")


class ReplicationNode(_Node):
    """One server of a ``ReplicationCluster``; ``role`` is primary, replica or failed."""

    role: Role

    def __init__(self, index: int, port: int, workdir: Path, start_timeout: float) -> None:
        self.index = index
        self.name = f"node{index}"
        self._init_file = workdir / f"{self.name}-init.sql"
        self.set_role("replica")
        # The init file runs before the first client connects: a restarted
        # replica is read-only from its first query.
        args = [*_REPL_ARGS, f"--server-id={index + 1}", f"--init-file={self._init_file}"]
        self.server = PrivateMariaDB(extra_args=args, port=port, start_timeout=start_timeout)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def set_role(self, role: Role, *, writable: bool | None = None) -> None:
        """Record the role; anything but the primary restarts with ``read_only=1``
        (``writable`` overrides that for the next restarts)."""
        self.role = role
        read_only = role != "primary" if writable is None else not writable
        self._init_file.write_text(f"SET GLOBAL read_only = {int(read_only)};\n")

    def kill(self) -> None:
        """SIGKILL, as a crash would; ``restart()`` brings it back with its data."""
        self.server.kill()

    def restart(self) -> Self:
        """Stop (gracefully, if running) and start again on the same port and data.

        A replica resumes replicating by itself.
        """
        self.server.restart()
        return self


class ReplicationCluster:
    """A primary and ``replicas`` replicas, GTID replication, each on its own port.

    ``start()`` takes about 3 s. ``failover()`` kills the primary and promotes
    a replica; ``rejoin()`` brings the killed node back as a replica.
    """

    def __init__(self, replicas: int = 2, *, timeout: float = 60.0) -> None:
        if not 1 <= replicas <= 8:
            raise ValueError(f"replicas must be in 1..8, got {replicas}")
        self._size = replicas + 1
        self._timeout = timeout
        self._dir: Path | None = None
        self.nodes: list[ReplicationNode] = []
        self.start_seconds: float | None = None

    @property
    def primary(self) -> ReplicationNode:
        """The node that takes writes."""
        return next(n for n in self.nodes if n.role == "primary")

    @property
    def replicas(self) -> list[ReplicationNode]:
        """The nodes replicating from the primary (a failed old primary is not one)."""
        return [n for n in self.nodes if n.role == "replica"]

    @property
    def urls(self) -> list[str]:
        """App-user URLs: the primary's first, then the replicas'."""
        return [self.primary.url(), *(n.url() for n in self.replicas)]

    def start(self) -> Self:
        """Start every node, create the users and database, wire and sync replication."""
        if self.nodes:
            return self
        started = time.monotonic()
        self._dir = Path(tempfile.mkdtemp(prefix="aiopool-replication-"))
        _live.add(self)
        try:
            ports = _port_block(self._size)
            self.nodes = [
                ReplicationNode(i, ports[i], self._dir, self._timeout) for i in range(self._size)
            ]
            primary = self.nodes[0]
            primary.set_role("primary")
            for node in self.nodes:  # one by one: the death signal only works from this thread
                node.server.start()
            primary.query(_REPL_USER_SQL + _USERS_SQL)
            for node in self.nodes[1:]:
                self._point_at(node, primary)
            self.wait_caught_up(self._timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        _log.info("replication cluster %s up in %.2f s", self.urls, self.start_seconds)
        return self

    def stop(self) -> None:
        """Stop every node and remove the temp dirs. Idempotent."""
        try:
            for node in self.nodes:
                node.server.stop()
        finally:
            self.nodes = []
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
            _live.discard(self)

    def stop_replica(self, node: ReplicationNode) -> None:
        """``STOP SLAVE`` on ``node``: it falls behind the primary."""
        node.query("STOP SLAVE")

    def start_replica(self, node: ReplicationNode) -> None:
        """``START SLAVE`` on ``node``: it catches up."""
        node.query("START SLAVE")

    def delay_replica(self, node: ReplicationNode, seconds: int) -> None:
        """Apply events ``seconds`` late (``MASTER_DELAY``): a real ``Seconds_Behind_Master``."""
        node.query(f"STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = {int(seconds)}; START SLAVE")

    def replica_status(self, node: ReplicationNode) -> Row:
        """``SHOW SLAVE STATUS`` of ``node`` ({} if it replicates from nobody)."""
        rows = node.query("SHOW SLAVE STATUS")
        return rows[0] if rows else {}

    def gtid_position(self, node: ReplicationNode) -> str:
        """``@@gtid_current_pos``: what ``node`` has applied or written."""
        return node.scalar("SELECT @@gtid_current_pos") or ""

    def wait_caught_up(self, timeout: float = 30.0) -> float:
        """Wait until every running replica has applied all the primary wrote; seconds."""
        started = time.monotonic()
        target = self.primary.scalar("SELECT @@gtid_binlog_pos") or ""
        for node in self.replicas:
            if not node.running:
                continue
            left = max(0.0, timeout - (time.monotonic() - started))
            sql = f"SELECT MASTER_GTID_WAIT('{target}', {left:.3f})"
            if node.scalar(sql, timeout=left + 10) != "0":
                raise TimeoutError(
                    f"{node.name} did not reach GTID {target} within {timeout:.1f} s: "
                    f"{self._describe(node)}"
                )
        return time.monotonic() - started

    def failover(self, new_primary: ReplicationNode | None = None) -> ReplicationNode:
        """SIGKILL the primary, promote ``new_primary`` (default: the most advanced
        replica), repoint the other replicas at it; the new primary.
        """
        old = self.primary
        candidates = [n for n in self.replicas if n.running]
        if new_primary is not None and new_primary not in candidates:
            raise ValueError(f"{new_primary!r} is not a running replica")
        if not candidates:
            raise ServerError("no running replica to promote")
        old.kill()
        old.set_role("failed")
        for node in candidates:
            self._drain_relay_log(node)
        if new_primary is None:
            new_primary = max(candidates, key=lambda n: _gtid_seq(self.gtid_position(n)))
        new_primary.query("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0")
        new_primary.set_role("primary")
        for node in candidates:
            if node is not new_primary:
                self._point_at(node, new_primary)
        _log.info("failover: %s -> %s", old.name, new_primary.name)
        return new_primary

    def revive_stray(self, node: ReplicationNode) -> None:
        """Restart a failed old primary the way it comes back by itself after a
        crash: writable, replicating from nobody, nobody replicating from it.

        Its role stays ``failed`` (a client must not write to it: split brain);
        ``rejoin()`` makes it a replica of the current primary.
        """
        if node.role != "failed":
            raise ValueError(f"{node!r} is not a failed old primary")
        node.set_role("failed", writable=True)
        node.restart()

    def rejoin(self, node: ReplicationNode) -> None:
        """Bring a failed (killed) old primary back as a read-only replica.

        Writes it made that no replica received break ``gtid_strict_mode`` (error 1950).
        """
        if node.role == "primary":
            raise ValueError(f"{node!r} is the primary")
        if not node.running:
            node.restart()
        self._point_at(node, self.primary)

    def _point_at(self, node: ReplicationNode, primary: ReplicationNode) -> None:
        # @@gtid_current_pos is right for a fresh node, a replica and an old primary
        # alike; @@gtid_binlog_pos fails with 1947 on a demoted primary.
        node.set_role("replica")
        node.query(
            "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL gtid_slave_pos = @@gtid_current_pos; "
            f"CHANGE MASTER TO MASTER_HOST='{HOST}', MASTER_PORT={primary.port}, "
            "MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, "
            "MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1; "
            "SET GLOBAL read_only = 1; START SLAVE"
        )

    def _drain_relay_log(self, node: ReplicationNode, timeout: float = 10.0) -> None:
        """Let ``node`` apply what it had received before its primary died."""
        status = self.replica_status(node)
        received = status.get("Gtid_IO_Pos") or ""
        if not received:
            return
        if status.get("Slave_SQL_Running") != "Yes":
            node.query("START SLAVE SQL_THREAD")
        if node.scalar(f"SELECT MASTER_GTID_WAIT('{received}', {timeout})") != "0":
            _log.warning("%s did not apply its relay log up to %s", node.name, received)

    def _describe(self, node: ReplicationNode) -> str:
        try:
            status = self.replica_status(node)
        except ServerError as exc:
            return str(exc)
        keys = ("Slave_IO_Running", "Slave_SQL_Running", "Gtid_IO_Pos", "Last_IO_Error",
                "Last_SQL_Error")  # fmt: skip
        return ", ".join(f"{k}={status.get(k)!r}" for k in keys)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

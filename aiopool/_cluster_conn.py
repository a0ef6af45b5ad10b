"""What ``ClusterPool.connection()`` returns: one loan from one node's pool.

It wraps the node pool's own ``connection()`` context, so the node pool's
guarantees (commit or rollback, a connection in an unknown state closed) hold
unchanged; around it, it picks the node, routes again when the node stops
serving while the request queues in its pool, waits for a replica to catch up
with a write token, and classifies errors raised in the block.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Final

from ._cluster_node import ClusterNode, Watch
from ._cluster_probe import NodeRole
from ._config import _check_duration
from ._pool import ConnectionContext
from ._protocols import Connection
from .errors import PoolTimeout

if TYPE_CHECKING:
    from ._cluster import ClusterPool

__all__ = ["ClusterConnection"]

# 0 once the replica applied the GTID, -1 on timeout.
_REPLICA_WAIT_SQL: Final = "SELECT MASTER_GTID_WAIT(%s, %s)"
# Galera: wait until this node applied every write committed anywhere in the
# cluster before the statement began (a causality check, no GTID needed).
# WSREP_SYNC_WAIT_UPTO_GTID was measured returning before the row was visible
# (3 reads in 1,000 missed it); this missed none.
_GALERA_WAIT_SQL: Final = "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT 1"


class ClusterConnection:
    """An async context manager for one loan: ``async with cluster.connection() as conn``."""

    __slots__ = ("_after", "_cluster", "_inner", "_node", "_readonly", "_timeout")

    def __init__(
        self, cluster: ClusterPool, readonly: bool, after: str | None, timeout: float | None
    ) -> None:
        self._cluster = cluster
        self._readonly = readonly
        self._after = after
        self._timeout = timeout
        self._node: ClusterNode | None = None
        self._inner: ConnectionContext | None = None

    async def __aenter__(self) -> Connection:
        cluster = self._cluster
        limit = (
            cluster._timeout
            if self._timeout is None
            else _check_duration("timeout", self._timeout, allow_zero=True, allow_inf=True)
        )
        started = monotonic()
        deadline = started + limit
        write = not self._readonly
        after = self._after
        while True:
            node = None if cluster.closed else cluster._pick(write)
            if node is None:
                node = await cluster._wait_for_node(write, deadline, started)
            conn = await self._borrow(node, write, deadline)
            if conn is None:
                continue  # the node stopped serving while we queued in its pool
            if after is None or node.role is NodeRole.PRIMARY:
                return conn
            if node.role is NodeRole.GALERA:
                await self._galera_caught_up(conn, deadline)
                return conn
            if await self._replica_caught_up(conn, after, deadline):
                return conn
            # The replica did not catch up in time (its connection is back in
            # its pool, or closed): the primary has the write.
            write, after = True, None

    async def _borrow(self, node: ClusterNode, write: bool, deadline: float) -> Connection | None:
        """A connection from ``node``'s pool, or None if the node stopped serving meanwhile.

        Leaving the node pool's queue works like ``asyncio.timeout``: the
        node cancels the waiting task, and the cancellation is taken back
        here when it was the node's and not the caller's.
        """
        inner = node.pool.connection(max(0.0, deadline - monotonic()))
        task = asyncio.current_task()
        assert task is not None
        watch = Watch(task, write)
        node.watches.add(watch)
        node.busy += 1
        cancelling = task.cancelling()
        try:
            conn = await inner.__aenter__()
        except asyncio.CancelledError:
            node.busy -= 1
            if watch.fired and task.uncancel() <= cancelling:
                self._cluster._check_open()
                return None
            raise
        except BaseException:
            node.busy -= 1
            raise
        finally:
            node.watches.discard(watch)
        self._node, self._inner = node, inner
        return conn

    async def _replica_caught_up(self, conn: Connection, after: str, deadline: float) -> bool:
        """Wait until the replica applied ``after``; False (the loan ended) if it did not in time.

        ``MASTER_GTID_WAIT`` times out on the server; a replica that stops
        answering (partition, stalled host) would never send that answer, so
        the wait is also bounded here: by the server's wait plus one probe
        timeout, and by the request's deadline.  A wait cut short leaves the
        connection mid-command: the node pool closes it.
        """
        cluster = self._cluster
        left = max(0.0, deadline - monotonic())
        wait = min(cluster._gtid_wait, left)
        limit = min(left, wait + cluster._probe_timeout)
        bound = asyncio.timeout(limit)
        try:
            async with bound:
                async with conn.cursor() as cur:
                    await cur.execute(_REPLICA_WAIT_SQL, (after, wait))
                    row = await cur.fetchone()
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, TimeoutError) and bound.expired():
                return False
            raise
        if row is not None and row[0] is not None and int(row[0]) == 0:
            return True
        await self.__aexit__(None, None, None)
        return False

    async def _galera_caught_up(self, conn: Connection, deadline: float) -> None:
        """Wait until this Galera node applied every write committed before now.

        There is no primary to fall back to: it waits up to the request's
        deadline, then raises ``PoolTimeout``.
        """
        left = max(0.0, deadline - monotonic())
        try:
            async with asyncio.timeout(left):
                async with conn.cursor() as cur:
                    await cur.execute(_GALERA_WAIT_SQL)
                    await cur.fetchone()
        except BaseException as exc:
            # A wait cut short leaves the connection mid-command: the pool closes it.
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(
                    f"cluster {self._cluster.name!r}: a Galera node did not catch up with "
                    f"the cluster's writes within the request's timeout ({left:.2f} s left)"
                ) from None
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        node, inner = self._node, self._inner
        assert node is not None and inner is not None
        self._node = self._inner = None
        try:
            if exc is not None:
                self._cluster._note_error(node, exc)
            try:
                await inner.__aexit__(exc_type, exc, tb)
            except BaseException as err:
                if err is not exc:
                    self._cluster._note_error(node, err)
                raise
        finally:
            node.busy -= 1

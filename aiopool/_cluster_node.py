"""One node of a ClusterPool: its pool, its probe connection and its routing state.

The node's routing state changes only in plain synchronous methods (a probe
verdict, an error seen by a borrower); each change that takes the node out of
a role cancels the requests queued in its pool for that role, so they are
routed again instead of waiting for a node that will not serve them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from time import monotonic
from typing import Any

from ._cluster_graph import Member
from ._cluster_probe import Classified, NodeRole, NodeState, NodeStatus, Probe
from ._cluster_url import NodeAddress
from ._health import close_hard, close_politely, is_broken
from ._pool import AsyncConnectionPool
from ._protocols import Connection, ConnectionFactory
from ._stats import PoolStats

__all__ = ["ClusterNode", "NodeInfo", "Watch"]

logger = logging.getLogger("aiopool")

_QUIT_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node as ``ClusterPool.topology()`` reports it."""

    address: str
    """``host:port`` (no user, no password)."""
    role: NodeRole
    """Primary, replica or Galera node (the last role seen if it is down now)."""
    state: NodeState
    """Whether it serves that role now, and if not why."""
    writable: bool
    """Writes may go to it now."""
    readable: bool
    """Reads may go to it now (a primary takes reads only when no replica can)."""
    lag: float | None
    """Replication lag in seconds, when the node is a replica and reports it."""
    last_error: str | None
    """The last error seen from this node (probe or borrower), if any."""
    detail: str | None
    """Why it does not serve, when the state alone does not say (Galera state, lag)."""
    checked_ago: float | None
    """Seconds since the last successful probe; None if it never answered."""
    stats: PoolStats
    """The node pool's ``get_stats()``."""
    server_id: int | None = None
    """Its ``@@server_id`` (the last one it reported)."""
    replicates_from: str | None = None
    """The member it replicates from (``host:port``), or the source's address
    marked ``(outside the cluster)`` or ``(not identified)``; None if none."""


class Watch:
    """A request waiting in a node pool, to be cancelled if the node stops serving it."""

    __slots__ = ("fired", "task", "write")

    def __init__(self, task: asyncio.Task[Any], write: bool) -> None:
        self.task = task
        self.write = write
        self.fired = False

    def fire(self) -> None:
        """Cancel the waiting task once; the borrower turns it into a re-route."""
        if not self.fired:
            self.fired = True
            self.task.cancel("aiopool: node left the rotation")


def describe(exc: BaseException) -> str:
    """``Type: message`` for logs and ``topology()`` (asyncmy errors show their errno)."""
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


class ClusterNode:
    """A node's pool, probe connection and routing state (used by ClusterPool only)."""

    def __init__(
        self,
        cluster: str,
        address: NodeAddress,
        pool: AsyncConnectionPool,
        probe_kwargs: Mapping[str, Any],
    ) -> None:
        self.cluster = cluster
        self.address = address
        self.name = str(address)
        self.pool = pool
        self._probe_kwargs = dict(probe_kwargs)
        self.role = NodeRole.UNKNOWN
        self.state = NodeState.UNKNOWN
        self.writable = False
        self.readable = False
        self.lag: float | None = None
        self.detail: str | None = None
        self.last_error: str | None = None
        self.last_exc: BaseException | None = None
        self.checked_at: float | None = None
        # The latest probe (None once a probe failed): the graph decision
        # reads every node's.  An error mark takes the node out of service
        # until the next probe, but leaves its status in the graph.
        self.status: NodeStatus | None = None
        self.server_id: int | None = None
        self.marked = False
        self.source: str | None = None
        self.warned_writable = False
        self.warned_fenced = False
        self.busy = 0  # cluster requests on this node now: waiting in its pool or holding
        # Bumped by every error mark: a probe that started before the mark
        # read the node before the error and must not overrule it.
        self.epoch = 0
        self.watches: set[Watch] = set()
        self._probe_conn: Connection | None = None

    # ------------------------------------------------------------------ routing state

    def serves(self, write: bool) -> bool:
        """Whether a request of this kind may use the node now."""
        return self.writable if write else self.writable or self.readable

    def observe(self, status: NodeStatus) -> None:
        """Keep a probe's result; the cluster then decides every node's verdict."""
        self.checked_at = monotonic()
        self.status = status
        if status.server_id is not None:
            self.server_id = status.server_id
        self.lag = status.lag
        self.marked = False

    def member(self) -> Member:
        """The node as the graph decision sees it."""
        return Member(self.name, self.address.host, self.address.port, self.status, self.server_id)

    def settle(self, verdict: Classified) -> bool:
        """Take the graph's verdict (unless an error mark holds); True if it changed."""
        if self.marked or self.status is None:
            return False
        self.detail = verdict.detail
        return self._set(verdict.role, verdict.state, verdict.writable, verdict.readable)

    def mark(self, state: NodeState, exc: BaseException) -> bool:
        """An error says the node does not serve now; True if routing must be recomputed."""
        self.epoch += 1
        self.last_exc = exc
        self.last_error = describe(exc)
        self.marked = True
        return self._set(self.role, state, False, False)

    def _set(self, role: NodeRole, state: NodeState, writable: bool, readable: bool) -> bool:
        was = (self.role, self.state, self.writable, self.readable)
        if was == (role, state, writable, readable):
            return False
        if (role, state) != was[:2]:
            # The cluster warns once per episode about these, from whole rounds.
            quiet = (NodeState.ONLINE, NodeState.SUSPECT, NodeState.AMBIGUOUS, NodeState.FENCED)
            level = logging.INFO if state in quiet else logging.WARNING
            reason = self.detail or (self.last_error if state is not NodeState.ONLINE else None)
            logger.log(
                level,
                "cluster %r: node %s is %s/%s (was %s/%s)%s",
                self.cluster,
                self.name,
                role,
                state,
                was[0],
                was[1],
                f": {reason}" if reason else "",
            )
        self.role, self.state, self.writable, self.readable = role, state, writable, readable
        for watch in list(self.watches):
            if not self.serves(watch.write):
                watch.fire()
        return True

    def info(self, now: float) -> NodeInfo:
        """A frozen snapshot for ``topology()``."""
        return NodeInfo(
            address=self.name,
            role=self.role,
            state=self.state,
            writable=self.writable,
            readable=self.readable,
            lag=self.lag,
            last_error=self.last_error,
            detail=self.detail,
            checked_ago=None if self.checked_at is None else round(now - self.checked_at, 3),
            stats=self.pool.get_stats(),
            server_id=self.server_id,
            replicates_from=self.source,
        )

    # ------------------------------------------------------------------ probing

    async def read_status(
        self, probe: Probe, factory: ConnectionFactory, timeout: float
    ) -> NodeStatus:
        """Run ``probe`` on the node's own probe connection, all within ``timeout``.

        The connection is opened on first need and kept; any failure closes
        it, so the next round starts from a fresh one.
        """
        conn = self._probe_conn
        reconnected = False
        try:
            async with asyncio.timeout(timeout):
                if conn is None or is_broken(conn):
                    self._drop_probe_conn()
                    conn = await factory(**self._probe_kwargs)
                    self._probe_conn = conn
                    reconnected = True
                status = await probe(conn)
        except TimeoutError:
            self._drop_probe_conn()
            raise TimeoutError(f"probing {self.name} took longer than {timeout:g} s") from None
        except BaseException:
            self._drop_probe_conn()
            raise
        if reconnected:
            # The node accepts connections again (or for the first time): its
            # pool need not wait out a back-off pause from the outage.  Once
            # per probe connection, so a flapping node is not flooded.
            self.pool._server_answers()
        return status

    def probe_failed(self, exc: BaseException) -> bool:
        """The probe could not read the node: it is down; True if routing changed."""
        self.last_exc = exc
        self.last_error = describe(exc)
        self.detail = None
        self.status = None
        self.marked = False
        return self._set(self.role, NodeState.DOWN, False, False)

    def _drop_probe_conn(self) -> None:
        conn, self._probe_conn = self._probe_conn, None
        if conn is not None:
            close_hard(conn)

    async def close_probe(self) -> None:
        """Close the probe connection politely (``COM_QUIT``)."""
        conn, self._probe_conn = self._probe_conn, None
        if conn is not None:
            await close_politely(conn, _QUIT_TIMEOUT)

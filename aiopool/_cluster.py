"""ClusterPool: one AsyncConnectionPool per node, and routing between them.

How the pieces fit:

* Each node has its own ``AsyncConnectionPool`` (everything that pool
  promises holds per node) and its own small probe connection, so the
  monitor's queries never wait behind users for a connection, never count in
  the node pool's stats, and notice a node coming back while its pool is still
  backing off.
* One monitor task probes every node concurrently each ``refresh_interval``
  (each probe bounded by ``probe_timeout``) and applies each verdict as soon
  as it arrives.  A borrower that sees a wrong-node or connection error marks
  the node at once and wakes the monitor.
* Routing is a synchronous pick from candidate tuples recomputed on every
  change (``_recompute``); a request for a role nobody serves waits on an
  ``asyncio.Event`` the monitor sets, bounded by the request's timeout.
* A request queued in a node pool whose node stops serving it is cancelled
  (``Watch``) and routed again, so fail-over does not leave it waiting out
  its timeout on a dead primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from time import monotonic
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self

from ._cluster_conn import ClusterConnection
from ._cluster_graph import Decision, decide
from ._cluster_node import ClusterNode, NodeInfo
from ._cluster_probe import NodeRole, NodeState, Probe, read_node_status
from ._cluster_report import report
from ._cluster_url import check_node_kwargs, split_cluster_url
from ._cluster_watch import watching
from ._config import ConnectOptions, _check_duration, check_factory_kwargs
from ._health import _mysql_errors, errno_of, is_fatal_connect_error
from ._opener import default_factory
from ._pool import AsyncConnectionPool
from ._protocols import Connection, ConnectionFactory
from .errors import PoolClosed, PoolTimeout, WrongEventLoop

__all__ = ["ClusterConnection", "ClusterPool"]

logger = logging.getLogger("aiopool")

# 1290 --read-only, 1792 READ ONLY transaction, 1036 read-only table,
# 1047 Galera node not ready (non-Primary, or wsrep_reject_queries).
WRONG_NODE_ERRNOS: Final = frozenset({1290, 1792, 1036, 1047})
# 2003 refused, 2006 gone away, 2013 lost, 1053 shutting down, 2055 lost (system error).
NODE_LOST_ERRNOS: Final = frozenset({1053, 2003, 2006, 2013, 2055})

# Woken rounds (after an error) start at most this often: a burst of errors
# from many borrowers must not turn the monitor into a busy loop.
_MIN_ROUND_GAP = 0.02

_POOL_PARAMETERS = frozenset(inspect.signature(AsyncConnectionPool.__init__).parameters) - {
    "self",
    "url",
    "connect_kwargs",
}

_NEW, _OPEN, _CLOSED = "new", "open", "closed"


def asyncmy_connect() -> Any:
    import asyncmy

    return asyncmy.connect


class ClusterPool:
    """Connection pools for a replication or Galera cluster, with read/write routing.

    ``url`` lists the nodes, ``mysql://user:password@host1:3306,host2:3306/db``,
    or is a list of single-host URLs.  ``min_size``, ``max_size``, ``timeout``
    and every other keyword argument go to each node's ``AsyncConnectionPool``
    (sizes are per node); so do ``listeners=``, whose events name the node in
    ``pool_name`` (``name[host:port]``, or the node's address without a name).

    * ``connection()`` gives a connection to the writable node (the primary,
      or the least busy Synced Galera node); ``connection(readonly=True)`` to
      the least busy healthy replica, else a Synced Galera node, else the
      primary.  With no node for the role, it waits up to ``timeout`` and
      then raises ``PoolTimeout`` naming the missing role.
    * The primary is proven from the replication graph, not from
      ``read_only`` alone (``_cluster_graph``): a server replicating from
      another member is a replica even if writable; of several writable
      servers replicating from nobody, the one the others follow is the
      primary and the rest are fenced (no writes, no reads); when the graph
      cannot tell, writes are refused (``PoolTimeout`` names the candidates).
    * ``refresh_interval``: seconds between re-reads of every node's role and
      health (``@@read_only``, Galera's ``wsrep_*`` status, replica lag);
      ``probe_timeout`` bounds each (default ``max(2, refresh_interval)``,
      at most ``connect_timeout``).
    * ``max_replica_lag``: a replica further behind (or with replication
      stopped) gets no reads; ``None`` accepts any lag.
    * ``gtid_wait_timeout``: how long a replica may take to apply the write
      named by ``connection(readonly=True, after=token)`` before the read
      goes to the primary instead.
    * ``probe``: ``async def probe(conn) -> NodeStatus`` replacing the
      built-in one (for tests, or servers that report roles differently).
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        refresh_interval: float = 1.0,
        max_replica_lag: float | None = 5.0,
        probe_timeout: float | None = None,
        gtid_wait_timeout: float = 1.0,
        probe: Probe | None = None,
        name: str | None = None,
        **pool_kwargs: Any,
    ) -> None:
        addresses = split_cluster_url(url)
        check_node_kwargs(pool_kwargs)
        self._refresh_interval = _check_duration(
            "refresh_interval", refresh_interval, allow_zero=False, allow_inf=False
        )
        self._max_lag = (
            None
            if max_replica_lag is None
            else _check_duration(
                "max_replica_lag", max_replica_lag, allow_zero=True, allow_inf=True
            )
        )
        self._timeout = _check_duration("timeout", timeout, allow_zero=True, allow_inf=True)
        self._gtid_wait = _check_duration(
            "gtid_wait_timeout", gtid_wait_timeout, allow_zero=True, allow_inf=False
        )
        connect_kwargs = {k: v for k, v in pool_kwargs.items() if k not in _POOL_PARAMETERS}
        options = [ConnectOptions.build(a.url, connect_kwargs) for a in addresses]
        self._probe_timeout = (
            min(max(2.0, self._refresh_interval), options[0].connect_timeout)
            if probe_timeout is None
            else _check_duration("probe_timeout", probe_timeout, allow_zero=False, allow_inf=False)
        )
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name must be a string, got {type(name).__name__}")
        self.name: str = name or _default_name(options[0].kwargs, addresses)
        """The cluster's name in logs and errors (never shows the password)."""
        if probe is not None and not callable(probe):
            raise TypeError(f"probe must be an async function, got {type(probe).__name__}")
        self._probe: Probe = probe or read_node_status
        self._factory: ConnectionFactory = pool_kwargs.pop("connection_factory", None) or (
            default_factory
        )
        # The node pools see only the watching wrapper (**kwargs): check a typo
        # such as max_sise=10 here, against the real factory, as a pool does.
        check_factory_kwargs(
            options[0].kwargs,
            asyncmy_connect() if self._factory is default_factory else self._factory,
            "asyncmy.connect()" if self._factory is default_factory else "the connection_factory",
            [
                *_POOL_PARAMETERS,
                "refresh_interval",
                "max_replica_lag",
                "probe_timeout",
                "gtid_wait_timeout",
                "probe",
            ],
        )
        nodes = []
        for address, opts in zip(addresses, options, strict=True):
            node = ClusterNode(
                self.name,
                address,
                AsyncConnectionPool(
                    address.url,
                    min_size=min_size,
                    max_size=max_size,
                    timeout=timeout,
                    name=None if name is None else f"{name}[{address}]",
                    # Every user connection reports the wrong-node and
                    # connection errors it sees, even those user code catches.
                    connection_factory=watching(self._factory, self._error_sink(address)),
                    **pool_kwargs,
                ),
                # Autocommit: a probe must never hold a snapshot or a transaction open.
                {**opts.kwargs, "autocommit": True},
            )
            nodes.append(node)
        self._nodes: tuple[ClusterNode, ...] = tuple(nodes)
        self._writers: tuple[ClusterNode, ...] = ()
        self._readers: tuple[ClusterNode, ...] = ()
        self._turn = 0  # rotates ties between equally busy nodes
        self._state = _NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._monitor: asyncio.Task[None] | None = None
        # The closing work, once close() started it (see close()).
        self._closing: asyncio.Task[None] | None = None
        # Created in open(): asyncio primitives belong to a loop.
        self._changed: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._round_done: asyncio.Event | None = None
        self._rounds = 0
        self._in_round = False
        self._decision: Decision | None = None
        self._refused: str | None = None  # why writes are refused, while they are
        self._warned_refused: str | None = None

    # ------------------------------------------------------------------ life cycle

    async def open(self, wait: bool = True, timeout: float | None = None) -> None:
        """Open every node's pool and start the monitor.

        With ``wait=True`` return once every node has been probed once (so
        the first reads already know every replica).  If no node answered
        within ``timeout`` (default: the pool ``timeout``),
        close and raise: the server's own error when it is one retrying will
        not fix (wrong password, unknown database), else ``PoolTimeout``.
        A cluster with some nodes down opens: they join when they answer.
        """
        if self._state == _CLOSED:
            raise PoolClosed(f"cluster {self.name!r} is closed; create a new ClusterPool")
        if self._state == _OPEN:
            self._check_loop()
            return
        self._loop = asyncio.get_running_loop()
        self._state = _OPEN
        self._changed, self._wake, self._round_done = (
            asyncio.Event(),
            asyncio.Event(),
            asyncio.Event(),
        )
        for node in self._nodes:
            await node.pool.open(wait=False)
        self._monitor = self._loop.create_task(
            self._run_monitor(), name=f"aiopool cluster monitor {self.name}"
        )
        if wait:
            limit = (
                self._timeout
                if timeout is None
                else _check_duration("timeout", timeout, allow_zero=True, allow_inf=True)
            )
            try:
                await self._wait_first_answer(limit)
            except BaseException:
                await self.close()
                raise

    async def _wait_first_answer(self, limit: float) -> None:
        """Wait for a whole round (so reads know every replica) in which a node answered."""
        deadline = monotonic() + limit
        while True:
            if self._rounds:
                if any(n.checked_at is not None for n in self._nodes):
                    return
                errors = [n.last_exc for n in self._nodes if n.last_exc is not None]
                if errors and all(is_fatal_connect_error(e) for e in errors):
                    raise errors[0]
            left = deadline - monotonic()
            if left <= 0:
                raise PoolTimeout(
                    f"cluster {self.name!r}: no node answered within {limit:g} s; "
                    + self._describe_nodes()
                )
            await self._next_round(left)

    async def _next_round(self, limit: float) -> None:
        done = self._round_done
        assert done is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await done.wait()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the monitor and close every node's pool (see ``AsyncConnectionPool.close``).

        The work runs in a task of its own: a caller cancelled meanwhile does
        not stop it halfway, and calling ``close()`` again waits for it.
        """
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        if self._state != _OPEN:
            self._state = _CLOSED
            return
        self._state = _CLOSED
        loop = self._loop
        assert loop is not None
        closing = loop.create_task(self._close_all(timeout), name=f"aiopool close {self.name}")
        self._closing = closing
        await asyncio.shield(closing)

    async def _close_all(self, timeout: float) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.wait([self._monitor])
        # Requests waiting for a role see the cluster closed; those queued in
        # a node pool get PoolClosed from it.
        self._signal_change()
        await asyncio.gather(
            *(node.close_probe() for node in self._nodes),
            *(node.pool.close(timeout) for node in self._nodes),
        )

    async def __aenter__(self) -> Self:
        await self.open(wait=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """True unless the cluster is open."""
        return self._state != _OPEN

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            raise WrongEventLoop(
                f"cluster {self.name!r} was opened in another event loop; a cluster "
                "(like its connections) belongs to the loop it was opened in"
            )

    def _check_open(self) -> None:
        if self._state == _NEW:
            raise PoolClosed(
                f"cluster {self.name!r} is not open yet: use 'async with cluster' or "
                "'await cluster.open()' first"
            )
        if self._state == _CLOSED:
            raise PoolClosed(f"cluster {self.name!r} is closed")

    # ------------------------------------------------------------------ borrowing

    def connection(
        self, readonly: bool = False, *, after: str | None = None, timeout: float | None = None
    ) -> ClusterConnection:
        """Borrow a connection for an ``async with`` block: one transaction on one node.

        ``readonly=False``: the writable node.  ``readonly=True``: a healthy
        replica (or Synced Galera node), else the primary.  ``after``: a token
        from ``write_token()``; the replica first waits (up to
        ``gtid_wait_timeout``) until it has applied that write, and if none
        does in time the read goes to the primary.  ``timeout`` (default: the
        cluster's) bounds everything: waiting for a node, for a connection,
        and for the replica to catch up.

        A wrong-node error (1290, 1792, 1036, 1047) or a lost connection
        seen in the block marks the node for an immediate re-check, even when
        the block's code catches it; raised ones are re-raised, and the
        statement is never re-run.
        """
        return ClusterConnection(self, readonly, after, timeout)

    async def write_token(self, conn: Connection) -> str | None:
        """A token naming the session's last write, for ``connection(after=...)``.

        Commits the open transaction first (a write only counts once
        committed), then reads the session's last GTID: ``@@last_gtid`` on a
        replication primary (MariaDB), ``WSREP_LAST_WRITTEN_GTID()`` on a
        Galera node.  None if the session has written nothing.  A replica
        waits for that GTID; a Galera node waits until it applied every write
        committed anywhere in the cluster (``wsrep_sync_wait``), which covers it.
        """
        if conn.get_transaction_status():
            await conn.commit()
        async with conn.cursor() as cur:
            await cur.execute("SELECT @@last_gtid, @@wsrep_on")
            gtid, wsrep_on = await cur.fetchone()
            if wsrep_on:
                await cur.execute("SELECT WSREP_LAST_WRITTEN_GTID()")
                (gtid,) = await cur.fetchone()
        if isinstance(gtid, bytes):
            gtid = gtid.decode()
        return str(gtid) if gtid else None

    def _pick(self, write: bool) -> ClusterNode | None:
        """The node for a request now, from the current candidates (no I/O)."""
        nodes = self._writers if write else self._readers
        if len(nodes) <= 1:
            return nodes[0] if nodes else None
        # Least busy; ties are broken by rotating the starting point.
        self._turn += 1
        start = self._turn % len(nodes)
        best = nodes[start]
        for i in range(1, len(nodes)):
            node = nodes[(start + i) % len(nodes)]
            if node.busy < best.busy:
                best = node
        return best

    async def _wait_for_node(self, write: bool, deadline: float, started: float) -> ClusterNode:
        """Wait until a node serves ``write`` (or reads); PoolTimeout at ``deadline``."""
        self._check_open()
        self._check_loop()
        while True:
            node = self._pick(write)
            if node is not None:
                return node
            left = deadline - monotonic()
            if left <= 0:
                raise PoolTimeout(self._no_node_message(write, monotonic() - started))
            changed = self._changed
            assert changed is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await changed.wait()
            self._check_open()

    def _no_node_message(self, write: bool, waited: float) -> str:
        role = "writable node (primary)" if write else "readable node (replica or primary)"
        refused = f"writes are refused: {self._refused}; " if self._refused else ""
        return (
            f"cluster {self.name!r}: no {role} after {waited:.2f} s; {refused}"
            + self._describe_nodes()
        )

    def _describe_nodes(self) -> str:
        parts = []
        for node in self._nodes:
            why = node.detail or node.last_error
            parts.append(f"{node.name} {node.role}/{node.state}" + (f" ({why})" if why else ""))
        return "nodes: " + ", ".join(parts)

    def _error_sink(self, address: object) -> Callable[[BaseException], None]:
        def sink(exc: BaseException) -> None:
            node = next((n for n in self._nodes if n.address is address), None)
            if node is not None and self._state == _OPEN:
                self._note_error(node, exc)

        return sink

    def _note_error(self, node: ClusterNode, exc: BaseException) -> None:
        """Classify an error a borrower saw on ``node``; mark the node if it says so."""
        if exc is node.last_exc:
            return  # seen when raised, and now again as the block's exception
        code = errno_of(exc) if isinstance(exc, _mysql_errors().MySQLError) else None
        if code in WRONG_NODE_ERRNOS:
            state = NodeState.SUSPECT
        elif code in NODE_LOST_ERRNOS or isinstance(exc, ConnectionError):
            state = NodeState.DOWN
        else:
            return
        if node.mark(state, exc):
            self._recompute()
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ routing state

    def _recompute(self) -> None:
        """Decide every node's verdict from the replication graph, rebuild the
        candidate tuples, and wake waiters."""
        nodes = self._nodes
        decision = decide([n.member() for n in nodes], self._max_lag)
        for node in nodes:
            node.source = decision.sources.get(node.name)
            verdict = decision.verdicts.get(node.name)
            if verdict is not None:
                node.settle(verdict)
        self._decision = decision
        self._refused = decision.refused
        primary = next((n for n in nodes if n.name == decision.primary and n.writable), None)
        galera_writers = tuple(n for n in nodes if n.writable and n.role is NodeRole.GALERA)
        self._writers = (primary,) if primary is not None else galera_writers
        replicas = tuple(n for n in nodes if n.readable and n.role is NodeRole.REPLICA)
        galera = tuple(n for n in nodes if n.readable and n.role is NodeRole.GALERA)
        self._readers = replicas or galera or self._writers
        self._signal_change()

    def _report(self) -> None:
        """Warn once per episode, from a whole round's probes (a round's probes
        arrive one by one, and a half-updated graph can look wrong for a moment).
        """
        if self._decision is not None:
            self._warned_refused = report(
                self.name, self._nodes, self._decision, self._warned_refused
            )

    def _signal_change(self) -> None:
        changed = self._changed
        if changed is not None:
            # A fresh Event for the next change; everyone waiting on this one wakes.
            self._changed = asyncio.Event()
            changed.set()

    # ------------------------------------------------------------------ monitor

    async def _run_monitor(self) -> None:
        wake, done = self._wake, self._round_done
        assert wake is not None and done is not None
        while True:
            wake.clear()
            started = monotonic()
            self._in_round = True
            try:
                await asyncio.gather(*(self._refresh(node) for node in self._nodes))
            except Exception:
                # A bug in one round must not stop the monitor for good.
                logger.exception("cluster %r: refreshing the nodes failed", self.name)
            self._in_round = False
            self._report()
            self._rounds += 1
            done.set()
            done.clear()
            left = self._refresh_interval - (monotonic() - started)
            if left > 0 and not wake.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await wake.wait()
            gap = _MIN_ROUND_GAP - (monotonic() - started)
            if gap > 0:
                await asyncio.sleep(gap)

    async def _refresh(self, node: ClusterNode) -> None:
        epoch = node.epoch
        try:
            status = await node.read_status(self._probe, self._factory, self._probe_timeout)
        except Exception as exc:
            changed = node.probe_failed(exc)
        else:
            if node.epoch != epoch:
                return  # an error marked it meanwhile; the woken next round decides
            node.observe(status)
            changed = True  # another node's verdict may depend on this one's status
        if changed:
            self._recompute()

    async def refresh(self) -> None:
        """Re-read every node now and return when that round is done."""
        self._check_open()
        wake, done = self._wake, self._round_done
        assert wake is not None and done is not None
        # The round running now may have read a node before the caller's
        # change: wait for one that starts after this call.
        target = self._rounds + (2 if self._in_round else 1)
        while self._rounds < target:
            wake.set()
            await done.wait()

    # ------------------------------------------------------------------ introspection

    @property
    def pools(self) -> Mapping[str, AsyncConnectionPool]:
        """Each node's pool by ``host:port`` (for metrics, ``drain()``, ``resize()``)."""
        return MappingProxyType({node.name: node.pool for node in self._nodes})

    def topology(self) -> list[NodeInfo]:
        """Every node: address, role, state, lag, last error and its pool's stats."""
        now = monotonic()
        return [node.info(now) for node in self._nodes]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state} nodes={len(self._nodes)}>"


def _default_name(kwargs: Any, addresses: Sequence[object]) -> str:
    user = kwargs.get("user")
    db = kwargs.get("database")
    hosts = ",".join(str(a) for a in addresses)
    return f"{user + '@' if user else ''}{hosts}{'/' + db if db else ''}"

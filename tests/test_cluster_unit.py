"""ClusterPool routing, driven by fake node servers and a scripted probe (no real server)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable
from time import monotonic
from typing import Any

import pytest
from asyncmy import errors as mysql_errors

from aiopool import PoolClosed, PoolTimeout
from aiopool._cluster import ClusterPool
from aiopool._cluster_graph import Decision, Member, decide
from aiopool._cluster_probe import NodeRole, NodeState, NodeStatus, SourceLink, classify
from aiopool._cluster_url import split_cluster_url
from aiopool._cluster_watch import watch
from tests.support.fakes import FakeConnection, FakeServer
from tests.support.pooltools import (
    cancel_after,
    cancel_sweep,
    check_invariants,
    fault_after,
    settle,
)

HOSTS = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
URL = "mysql://app:secret@10.0.0.1:3306,10.0.0.2:3306,10.0.0.3:3306/shop"


class FakeCursor:
    """Answers the two statements the cluster itself sends on user connections."""

    def __init__(self, conn: FakeConnection, node: FakeNode) -> None:
        self.conn = conn
        self.node = node
        self.row: tuple[Any, ...] | None = None

    async def __aenter__(self) -> FakeCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        self.node.statements.append((sql, args))
        if sql.startswith("SELECT MASTER_GTID_WAIT"):
            if self.node.silent:  # a partition: the server's answer never arrives
                await asyncio.Event().wait()
            for _ in range(self.node.wait_turns):
                await self.conn.query(begin=False)
            await self.conn.query(min(self.node.catch_up_after, args[1]), begin=False)
            self.row = (0 if self.node.catch_up_after <= args[1] else -1,)
        elif sql == "SELECT @@last_gtid, @@wsrep_on":
            await self.conn.query(begin=False)
            wsrep = isinstance(self.node.status, NodeStatus) and self.node.status.wsrep_on
            self.row = ("" if wsrep else self.node.last_gtid, int(wsrep))
        elif sql == "SELECT WSREP_LAST_WRITTEN_GTID()":
            await self.conn.query(begin=False)
            self.row = (self.node.last_gtid.encode(),)
        elif sql == "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT 1":
            await self.conn.query(self.node.catch_up_after, begin=False)
            self.row = (1,)
        else:
            raise AssertionError(f"unexpected statement {sql!r}")

    async def fetchone(self) -> tuple[Any, ...] | None:
        return self.row


class FakeNode(FakeServer):
    """One node: a fake server plus what its probe reports."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host
        self.status: NodeStatus | BaseException = NodeStatus.primary()
        self.probe_delay = 0.0
        self.probes = 0
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self.catch_up_after = 0.0  # seconds MASTER_GTID_WAIT takes to succeed
        self.silent = False  # MASTER_GTID_WAIT never answers
        self.wait_turns = 0  # extra round trips MASTER_GTID_WAIT takes
        self.last_gtid = ""

    async def connect(self, **kwargs: Any) -> FakeConnection:
        conn = await super().connect(**kwargs)
        conn.cursor = lambda *a: FakeCursor(conn, self)  # type: ignore[method-assign]
        return conn


class FakeCluster:
    """Three fake nodes; ``connect`` dispatches on the host, ``probe`` reads the script."""

    def __init__(self) -> None:
        self.nodes = {host: FakeNode(host) for host in HOSTS}

    def __getitem__(self, host: str) -> FakeNode:
        return self.nodes[host]

    async def connect(self, **kwargs: Any) -> FakeConnection:
        return await self.nodes[kwargs["host"]].connect(**kwargs)

    async def probe(self, conn: Any) -> NodeStatus:
        node = conn.server
        assert isinstance(node, FakeNode)
        node.probes += 1
        await asyncio.sleep(node.probe_delay)
        if isinstance(node.status, BaseException):
            raise node.status
        return node.status

    def script(self, *statuses: NodeStatus | BaseException) -> None:
        for host, status in zip(HOSTS, statuses, strict=True):
            self.nodes[host].status = status

    def replication(self, lag1: float = 0.0, lag2: float = 0.0) -> None:
        """10.0.0.1 the primary (server_id 1); 10.0.0.2 and 10.0.0.3 replicate from it."""
        self.script(
            NodeStatus.primary(1),
            NodeStatus.replica(lag1, source="10.0.0.1:3306", server_id=2),
            NodeStatus.replica(lag2, source="10.0.0.1:3306", server_id=3),
        )


def make_cluster(fake: FakeCluster, **kwargs: Any) -> ClusterPool:
    kwargs.setdefault("refresh_interval", 0.05)
    kwargs.setdefault("timeout", 2.0)
    kwargs.setdefault("max_size", 4)
    return ClusterPool(URL, connection_factory=fake.connect, probe=fake.probe, **kwargs)


@pytest.fixture
def fake() -> FakeCluster:
    cluster = FakeCluster()
    cluster.replication()
    return cluster


@pytest.fixture
async def cluster(fake: FakeCluster) -> AsyncIterator[ClusterPool]:
    async with make_cluster(fake) as pool:
        yield pool


async def host_of(cluster: ClusterPool, readonly: bool = False, **kw: Any) -> str:
    async with cluster.connection(readonly, **kw) as conn:
        host: str = conn.server.host
        return host


def states(cluster: ClusterPool) -> dict[str, tuple[NodeRole, NodeState]]:
    return {n.address.split(":")[0]: (n.role, n.state) for n in cluster.topology()}


async def until(predicate: Any, timeout: float = 2.0) -> None:
    deadline = monotonic() + timeout
    while not predicate():
        assert monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


# ---------------------------------------------------------------- routing


async def test_writes_go_to_the_primary_and_reads_spread_over_replicas(
    cluster: ClusterPool,
) -> None:
    assert {await host_of(cluster) for _ in range(20)} == {"10.0.0.1"}
    reads = Counter([await host_of(cluster, readonly=True) for _ in range(40)])
    assert set(reads) == {"10.0.0.2", "10.0.0.3"}, reads
    assert abs(reads["10.0.0.2"] - reads["10.0.0.3"]) <= 2, reads


async def test_concurrent_reads_go_to_the_least_busy_replica(cluster: ClusterPool) -> None:
    async with cluster.connection(readonly=True) as first:
        async with cluster.connection(readonly=True) as second:
            async with cluster.connection(readonly=True) as third:
                hosts = [c.server.host for c in (first, second, third)]
    assert hosts[0] != hosts[1], "the second read goes to the idle replica"
    assert "10.0.0.1" not in hosts


async def test_lagging_and_stopped_replicas_get_no_reads(
    fake: FakeCluster, cluster: ClusterPool
) -> None:
    fake["10.0.0.2"].status = NodeStatus.replica(lag=30.0)
    await cluster.refresh()
    assert states(cluster)["10.0.0.2"] == (NodeRole.REPLICA, NodeState.LAGGING)
    assert {await host_of(cluster, True) for _ in range(10)} == {"10.0.0.3"}
    fake["10.0.0.2"].status = NodeStatus.replica(lag=1.0)
    fake["10.0.0.3"].status = NodeStatus.replica(lag=None, running=False)
    await cluster.refresh()
    assert states(cluster)["10.0.0.3"] == (NodeRole.REPLICA, NodeState.STOPPED)
    assert {await host_of(cluster, True) for _ in range(10)} == {"10.0.0.2"}
    info = {n.address: n for n in cluster.topology()}
    assert info["10.0.0.2:3306"].lag == 1.0
    assert info["10.0.0.3:3306"].detail == "replication is not running"


async def test_reads_fall_back_to_the_primary_when_no_replica_is_healthy(
    fake: FakeCluster, cluster: ClusterPool
) -> None:
    fake.replication(lag1=60.0, lag2=60.0)
    await cluster.refresh()
    assert {await host_of(cluster, True) for _ in range(5)} == {"10.0.0.1"}
    fake.replication()
    await cluster.refresh()
    assert "10.0.0.1" not in {await host_of(cluster, True) for _ in range(5)}


async def test_max_replica_lag_none_ignores_lag(fake: FakeCluster) -> None:
    fake.replication(lag1=3600.0)
    async with make_cluster(fake, max_replica_lag=None) as cluster:
        assert "10.0.0.2" in {await host_of(cluster, True) for _ in range(6)}


async def test_galera_spreads_over_synced_nodes_least_busy_first(fake: FakeCluster) -> None:
    fake.script(NodeStatus.galera(), NodeStatus.galera(), NodeStatus.galera())
    async with make_cluster(fake) as cluster:
        assert all(n.role is NodeRole.GALERA and n.writable for n in cluster.topology())
        writes = Counter([await host_of(cluster) for _ in range(30)])
        assert writes == Counter({h: 10 for h in HOSTS}), writes
        async with cluster.connection() as a, cluster.connection() as b:
            async with cluster.connection(readonly=True) as c:
                assert len({a.server.host, b.server.host, c.server.host}) == 3


@pytest.mark.parametrize(
    "bad",
    [
        NodeStatus.galera(cluster_status="non-Primary", local_state=0, ready=False),
        NodeStatus.galera(local_state=2),  # Donor/Desynced
        NodeStatus.galera(ready=False),
    ],
    ids=["non-primary", "desynced", "not-ready"],
)
async def test_galera_node_leaves_until_synced_again(fake: FakeCluster, bad: NodeStatus) -> None:
    fake.script(NodeStatus.galera(), NodeStatus.galera(), NodeStatus.galera())
    async with make_cluster(fake) as cluster:
        fake["10.0.0.2"].status = bad
        await cluster.refresh()
        assert states(cluster)["10.0.0.2"] == (NodeRole.GALERA, NodeState.NOT_SYNCED)
        hosts = {await host_of(cluster, ro) for ro in (False, True) * 10}
        assert hosts == {"10.0.0.1", "10.0.0.3"}
        fake["10.0.0.2"].status = NodeStatus.galera()
        await cluster.refresh()
        assert "10.0.0.2" in {await host_of(cluster) for _ in range(6)}


async def test_replica_made_writable_stays_a_replica_and_is_named_once(
    fake: FakeCluster, cluster: ClusterPool, caplog: pytest.LogCaptureFixture
) -> None:
    fake["10.0.0.2"].status = NodeStatus.replica(
        source="10.0.0.1:3306", server_id=2, read_only=False
    )
    with caplog.at_level(logging.WARNING, "aiopool"):
        for _ in range(3):
            await cluster.refresh()
    warnings = [r.getMessage() for r in caplog.records if "stays a replica" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert (
        "node 10.0.0.2:3306 is writable (read_only=OFF) but replicates from 10.0.0.1:3306"
        in (warnings[0])
    )
    assert {await host_of(cluster) for _ in range(20)} == {"10.0.0.1"}
    assert states(cluster)["10.0.0.2"] == (NodeRole.REPLICA, NodeState.ONLINE)
    info = {n.address: n for n in cluster.topology()}["10.0.0.2:3306"]
    assert (info.writable, info.readable, info.replicates_from) == (False, True, "10.0.0.1:3306")
    assert "10.0.0.2" in {await host_of(cluster, True) for _ in range(10)}, "it still serves reads"


async def test_old_primary_back_writable_is_fenced_once_per_episode(
    fake: FakeCluster, cluster: ClusterPool, caplog: pytest.LogCaptureFixture
) -> None:
    # Fail-over: 10.0.0.2 promoted, 10.0.0.3 repointed to it; the old primary
    # comes back writable, replicating from nobody, followed by nobody.
    fake.script(
        NodeStatus.primary(1),
        NodeStatus.primary(2),
        NodeStatus.replica(source="10.0.0.2:3306", server_id=3),
    )
    with caplog.at_level(logging.WARNING, "aiopool"):
        for _ in range(3):
            await cluster.refresh()
        assert {await host_of(cluster) for _ in range(20)} == {"10.0.0.2"}
        assert states(cluster)["10.0.0.1"] == (NodeRole.PRIMARY, NodeState.FENCED)
        fenced = [r.getMessage() for r in caplog.records if "fenced" in r.getMessage()]
        assert len(fenced) == 1 and "10.0.0.1:3306" in fenced[0], fenced
        assert "10.0.0.2:3306 is followed by 10.0.0.3:3306" in fenced[0]
        assert {await host_of(cluster, True) for _ in range(20)} == {"10.0.0.3"}
        # The operator repoints it: the fence lifts.
        fake["10.0.0.1"].status = NodeStatus.replica(source="10.0.0.2:3306", server_id=1)
        await cluster.refresh()
        assert states(cluster)["10.0.0.1"] == (NodeRole.REPLICA, NodeState.ONLINE)
        assert "10.0.0.1" in {await host_of(cluster, True) for _ in range(20)}
        # A new episode warns again.
        fake["10.0.0.1"].status = NodeStatus.primary(1)
        await cluster.refresh()
        await cluster.refresh()
    fenced = [r.getMessage() for r in caplog.records if "fenced" in r.getMessage()]
    assert len(fenced) == 2, fenced


async def test_ambiguous_graph_refuses_writes_until_it_is_resolved(
    fake: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script(
        NodeStatus.primary(1),
        NodeStatus.primary(2),
        NodeStatus.replica(lag=None, running=False, source="10.0.0.1:3306", server_id=3),
    )
    async with make_cluster(fake, timeout=0.3) as cluster:
        with pytest.raises(PoolTimeout, match="writes are refused") as raised:
            await host_of(cluster)
        message = str(raised.value)
        assert "10.0.0.1:3306, 10.0.0.2:3306" in message, message
        assert "10.0.0.1:3306 primary/ambiguous" in message
        assert states(cluster)["10.0.0.2"] == (NodeRole.PRIMARY, NodeState.AMBIGUOUS)
        # Reads have no primary to fall back on either (the replica is stopped).
        with pytest.raises(PoolTimeout):
            await host_of(cluster, True)
        writer = asyncio.create_task(host_of(cluster, timeout=10.0))
        await asyncio.sleep(0.1)
        assert not writer.done()
        with caplog.at_level(logging.INFO, "aiopool"):
            fake["10.0.0.3"].status = NodeStatus.replica(source="10.0.0.1:3306", server_id=3)
            async with asyncio.timeout(5):  # resumed by the refresh_interval monitor alone
                assert await writer == "10.0.0.1"
            await cluster.refresh()  # the round's end reports
        assert "writes resume, the primary is 10.0.0.1:3306" in caplog.text
        assert states(cluster)["10.0.0.2"] == (NodeRole.PRIMARY, NodeState.FENCED)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("errno", [1290, 1792, 1036, 1047])
async def test_wrong_node_error_marks_for_refresh_and_is_raised(
    fake: FakeCluster, errno: int
) -> None:
    async with make_cluster(fake, refresh_interval=60.0) as cluster:
        probes = fake["10.0.0.1"].probes
        # An operator swapped the roles; the cluster has not looked yet.
        fake.script(NodeStatus.replica(), NodeStatus.primary(), NodeStatus.replica())
        error = mysql_errors.OperationalError(errno, "wrong node")
        with pytest.raises(mysql_errors.OperationalError) as raised:
            async with cluster.connection() as conn:
                assert conn.server.host == "10.0.0.1"
                raise error
        assert raised.value is error, "the error reaches the caller unchanged"
        assert states(cluster)["10.0.0.1"][1] is NodeState.SUSPECT
        # refresh_interval is a minute: only the mark can have triggered this.
        assert await host_of(cluster) == "10.0.0.2"
        assert fake["10.0.0.1"].probes > probes


@pytest.mark.parametrize("errno", [1290, 1792, 1047])
async def test_a_wrong_node_error_the_user_caught_still_reroutes(
    fake: FakeCluster, errno: int
) -> None:
    async with make_cluster(fake, refresh_interval=60.0) as cluster:
        fake.script(
            NodeStatus.replica(source="10.0.0.2:3306", server_id=1),
            NodeStatus.primary(2),
            NodeStatus.replica(source="10.0.0.2:3306", server_id=3),
        )
        fake["10.0.0.1"].query_error = mysql_errors.OperationalError(errno, "wrong node")
        async with cluster.connection() as conn:
            assert conn.server.host == "10.0.0.1"
            with pytest.raises(mysql_errors.OperationalError):
                await conn.query(begin=False)  # the user's code catches it and goes on
        # refresh_interval is a minute: only the caught error can have triggered this.
        assert await host_of(cluster) == "10.0.0.2"


async def test_a_lost_connection_the_user_caught_takes_the_node_out(
    fake: FakeCluster, cluster: ClusterPool
) -> None:
    async with cluster.connection(readonly=True) as conn:
        replica: FakeNode = conn.server
        replica.go_down()
        replica.status = mysql_errors.OperationalError(2003, "Can't connect")
        try:
            await conn.query(begin=False)
        except mysql_errors.OperationalError as exc:
            assert exc.args[0] == 2013
        else:
            raise AssertionError("the statement should have failed")
        assert states(cluster)[replica.host][1] is NodeState.DOWN, "marked when raised"
    other = ({"10.0.0.2", "10.0.0.3"} - {replica.host}).pop()
    assert {await host_of(cluster, True) for _ in range(6)} == {other}


async def test_other_caught_errors_change_nothing(fake: FakeCluster, cluster: ClusterPool) -> None:
    fake["10.0.0.1"].query_error = mysql_errors.IntegrityError(1062, "Duplicate entry")
    async with cluster.connection() as conn:
        with pytest.raises(mysql_errors.IntegrityError):
            await conn.query(begin=False)
    assert states(cluster)["10.0.0.1"] == (NodeRole.PRIMARY, NodeState.ONLINE)
    assert {n.last_error for n in cluster.topology()} == {None}


def test_a_watched_connection_is_freed_without_the_garbage_collector() -> None:
    seen: list[BaseException] = []
    conn = FakeConnection(FakeServer())
    watch(conn, seen.append)
    assert type(conn) is FakeConnection, "only the instance changes"
    ref = weakref.ref(conn)
    del conn
    assert ref() is None, "the wrappers hold no strong reference to their connection"


async def test_errors_in_commit_are_classified_too(fake: FakeCluster, cluster: ClusterPool) -> None:
    fake["10.0.0.1"].commit_error = mysql_errors.OperationalError(1290, "read-only")
    fake.script(NodeStatus.replica(), NodeStatus.primary(), NodeStatus.replica())
    with pytest.raises(mysql_errors.OperationalError):
        async with cluster.connection() as conn:
            conn.in_trans = True
    assert await host_of(cluster) == "10.0.0.2"


async def test_other_errors_change_nothing(fake: FakeCluster, cluster: ClusterPool) -> None:
    with pytest.raises(mysql_errors.OperationalError):
        async with cluster.connection():
            raise mysql_errors.OperationalError(1213, "Deadlock found")
    with pytest.raises(ValueError):
        async with cluster.connection():
            raise ValueError("application error")
    assert states(cluster)["10.0.0.1"] == (NodeRole.PRIMARY, NodeState.ONLINE)


@pytest.mark.parametrize("errno", [2003, 2006, 2013])
async def test_connection_error_takes_the_node_out_until_it_answers(
    fake: FakeCluster, cluster: ClusterPool, errno: int
) -> None:
    with pytest.raises(mysql_errors.OperationalError):
        async with cluster.connection(readonly=True) as conn:
            replica: FakeNode = conn.server
            replica.go_down()  # the node dies under the statement
            raise mysql_errors.OperationalError(errno, "Lost connection")
    down, other = replica.host, ({"10.0.0.2", "10.0.0.3"} - {replica.host}).pop()
    assert states(cluster)[down] == (NodeRole.REPLICA, NodeState.DOWN)
    await cluster.refresh()
    assert states(cluster)[down][1] is NodeState.DOWN, "its probe cannot connect"
    assert {await host_of(cluster, True) for _ in range(6)} == {other}
    replica.come_back()
    await cluster.refresh()
    assert states(cluster)[down] == (NodeRole.REPLICA, NodeState.ONLINE)
    assert down in {await host_of(cluster, True) for _ in range(6)}


async def test_a_hung_probe_counts_as_down(fake: FakeCluster) -> None:
    async with make_cluster(fake, probe_timeout=0.1) as cluster:
        fake["10.0.0.3"].probe_delay = 600.0
        async with asyncio.timeout(30):  # far less than the hung probe: it was cut off
            await cluster.refresh()
        assert states(cluster)["10.0.0.3"][1] is NodeState.DOWN
        info = {n.address: n for n in cluster.topology()}
        assert "took longer than 0.1 s" in (info["10.0.0.3:3306"].last_error or "")


# ---------------------------------------------------------------- fail-over


async def test_failover_waits_for_a_new_primary(fake: FakeCluster, cluster: ClusterPool) -> None:
    fake["10.0.0.1"].go_down()
    fake["10.0.0.1"].status = mysql_errors.OperationalError(2003, "Can't connect")
    writer = asyncio.create_task(host_of(cluster))
    await asyncio.sleep(0.2)
    assert not writer.done(), "no writable node: the request waits"
    fake["10.0.0.2"].status = NodeStatus.primary()  # the operator promotes a replica
    assert await writer == "10.0.0.2"
    assert {await host_of(cluster, True) for _ in range(4)} == {"10.0.0.3"}


async def test_no_primary_raises_pool_timeout_naming_the_role(
    fake: FakeCluster, cluster: ClusterPool
) -> None:
    fake["10.0.0.1"].status = NodeStatus.replica()
    await cluster.refresh()
    with pytest.raises(PoolTimeout, match=r"no writable node \(primary\) after 0\.3") as raised:
        await host_of(cluster, timeout=0.3)
    assert "10.0.0.1:3306 replica/online" in str(raised.value)
    assert "secret" not in str(raised.value)
    assert await host_of(cluster, True, timeout=0.3) in HOSTS, "reads still work"


async def test_request_queued_on_a_dead_primary_is_rerouted(fake: FakeCluster) -> None:
    async with make_cluster(fake, max_size=1) as cluster:
        async with cluster.connection() as held:
            assert held.server.host == "10.0.0.1"
            queued = asyncio.create_task(host_of(cluster, timeout=600.0))
            await asyncio.sleep(0.05)
            assert not queued.done()
            fake["10.0.0.1"].status = mysql_errors.OperationalError(2003, "Can't connect")
            fake["10.0.0.2"].status = NodeStatus.primary()
            async with asyncio.timeout(30):  # not after its own 600 s timeout
                assert await queued == "10.0.0.2", "it left the dead node's queue"
        assert cluster.topology()[0].stats.requests_waiting == 0


async def test_caller_cancellation_is_not_mistaken_for_a_reroute(fake: FakeCluster) -> None:
    async with make_cluster(fake, max_size=1) as cluster:
        async with cluster.connection():
            queued = asyncio.create_task(host_of(cluster))
            await asyncio.sleep(0.02)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
        assert [n.stats.pool_in_use for n in cluster.topology()] == [0, 0, 0]
        assert await host_of(cluster) == "10.0.0.1"


def _kill_every_session(fake: FakeCluster) -> Callable[[object], None]:
    def kill(_task: object) -> None:
        for host in HOSTS:
            fake[host].kill_all()

    return kill


@pytest.mark.parametrize("fault", ["cancel", "kill"])
@pytest.mark.parametrize(
    ("readonly", "after"),
    [(False, None), (True, None), (True, "0-1-42")],
    ids=["write", "read", "read-after-token"],
)
async def test_a_fault_at_every_turn_of_a_cluster_borrower(
    fake: FakeCluster, readonly: bool, after: str | None, fault: str
) -> None:
    """The borrower cancelled, or every node ending every session, after k loop turns."""

    async def borrow(cluster: ClusterPool) -> None:
        async with cluster.connection(readonly, after=after) as conn:
            await conn.query()

    async def run_once(k: int) -> bool:
        async with make_cluster(fake) as cluster:
            await host_of(cluster)  # the topology is known, every node has its pool
            if fault == "cancel":
                finished = await cancel_after(k, borrow(cluster))
            else:
                finished = await fault_after(
                    k,
                    borrow(cluster),
                    _kill_every_session(fake),
                    expected=(mysql_errors.OperationalError, mysql_errors.InterfaceError),
                )
            for pool in cluster.pools.values():
                await settle(pool)
                check_invariants(pool)
            assert [n.stats.pool_in_use for n in cluster.topology()] == [0, 0, 0]
            assert await host_of(cluster) == "10.0.0.1"
            assert await host_of(cluster, True) in HOSTS[1:]
        return finished

    assert await cancel_sweep(run_once) >= 2


async def test_cancel_cluster_close_at_every_turn_then_close_again(fake: FakeCluster) -> None:
    """A cancelled close() leaves nothing open once close() is called again."""

    async def run_once(k: int) -> bool:
        cluster = make_cluster(fake)
        await cluster.open(wait=True)
        await host_of(cluster)
        await host_of(cluster, True)
        finished = await cancel_after(k, cluster.close())
        await cluster.close()
        for pool in cluster.pools.values():
            await settle(pool)
            assert pool.closed
        open_left = {host: len(fake[host].live) for host in HOSTS if fake[host].live}
        assert not open_left, f"connections left open: {open_left}"
        return finished

    assert await cancel_sweep(run_once) >= 1


async def test_cancel_cluster_open_at_every_turn_then_close(fake: FakeCluster) -> None:
    async def run_once(k: int) -> bool:
        cluster = make_cluster(fake, min_size=2)
        finished = await cancel_after(k, cluster.open(wait=True))
        await cluster.close()
        for pool in cluster.pools.values():
            await settle(pool)
        open_left = {host: len(fake[host].live) for host in HOSTS if fake[host].live}
        assert not open_left, f"connections left open: {open_left}"
        return finished

    assert await cancel_sweep(run_once) >= 1


# ---------------------------------------------------------------- read-your-writes


async def test_write_token_commits_and_reads_last_gtid(
    fake: FakeCluster, cluster: ClusterPool
) -> None:
    fake["10.0.0.1"].last_gtid = "0-1-42"
    async with cluster.connection() as conn:
        conn.in_trans = True
        assert await cluster.write_token(conn) == "0-1-42"
        assert conn.commits == 1 and not conn.in_trans
    fake["10.0.0.1"].last_gtid = ""
    async with cluster.connection() as conn:
        assert await cluster.write_token(conn) is None


async def test_read_after_token_waits_on_the_replica(
    fake: FakeCluster, cluster: ClusterPool
) -> None:
    for host in HOSTS[1:]:
        fake[host].catch_up_after = 0.05
    assert await host_of(cluster, True, after="0-1-42") in HOSTS[1:]
    waits = [s for h in HOSTS for s in fake[h].statements if "GTID_WAIT" in s[0]]
    assert len(waits) == 1 and waits[0][1] == ("0-1-42", 1.0)


async def test_read_after_token_falls_back_to_the_primary(fake: FakeCluster) -> None:
    async with make_cluster(fake, gtid_wait_timeout=0.1) as cluster:
        for host in HOSTS[1:]:
            fake[host].catch_up_after = 600.0
        async with asyncio.timeout(30):  # the replicas never catch up: gtid_wait_timeout ends it
            assert await host_of(cluster, True, after="0-1-42") == "10.0.0.1"
        assert [n.stats.pool_in_use for n in cluster.topology()] == [0, 0, 0]
        assert await host_of(cluster, True) != "10.0.0.1", "plain reads still use replicas"


async def test_a_silent_replica_cannot_hold_a_read_after_token_past_its_timeout(
    fake: FakeCluster,
) -> None:
    """MASTER_GTID_WAIT's timeout runs on the server: a replica cut off mid-wait
    never answers.  The read falls back to the primary once the server's wait
    and a probe timeout passed, within the request's timeout."""
    async with make_cluster(fake, gtid_wait_timeout=0.1, probe_timeout=0.2) as cluster:
        for host in HOSTS[1:]:
            fake[host].silent = True
        started = monotonic()
        async with asyncio.timeout(5):
            assert await host_of(cluster, True, after="0-1-42", timeout=2.0) == "10.0.0.1"
        assert monotonic() - started < 1.0
        nodes = cluster.topology()
        assert [n.stats.pool_in_use for n in nodes] == [0, 0, 0]
        assert sum(n.stats.returns_bad for n in nodes) == 1, "the cut-short connection is closed"
        assert all(n.busy == 0 for n in cluster._nodes)
        for node in cluster._nodes:
            check_invariants(node.pool)


@pytest.mark.parametrize("fault", ["cancel", "lost", "cancel+lost"])
async def test_a_fault_at_every_turn_of_a_read_after_token(fake: FakeCluster, fault: str) -> None:
    """Cancel the borrower, lose the replicas' connections, or both at once, at
    every turn of a read that waits for its token; books exact after each run."""
    for host in HOSTS[1:]:
        fake[host].wait_turns = 5
    async with make_cluster(fake, gtid_wait_timeout=0.05) as cluster:
        in_wait: list[bool] = []

        def hit(task: asyncio.Future[Any]) -> None:
            # Did the fault land while a replica held the request in MASTER_GTID_WAIT?
            in_wait.append(
                not task.done()
                and any("GTID_WAIT" in sql for h in HOSTS[1:] for sql, _ in fake[h].statements)
            )
            if "cancel" in fault:
                task.cancel()
            if "lost" in fault:
                for host in HOSTS[1:]:
                    fake[host].kill_all()

        expected = (
            asyncio.CancelledError,
            mysql_errors.OperationalError,
            mysql_errors.InterfaceError,
            PoolTimeout,
        )
        for k in range(400):
            for host in HOSTS[1:]:
                fake[host].statements.clear()
            finished = await fault_after(
                k, host_of(cluster, True, after="0-1-42"), hit, expected=expected
            )
            for node in cluster._nodes:
                await settle(node.pool)
                check_invariants(node.pool)
                assert node.busy == 0 and not node.watches, node.name
            await until(lambda: all(n.state is NodeState.ONLINE for n in cluster._nodes))
            assert await host_of(cluster, True) in HOSTS[1:]
            if finished:
                break
        else:
            raise AssertionError("never finished")
        assert sum(in_wait) >= 5, f"the fault landed in the wait only {sum(in_wait)} times"


async def test_galera_read_after_token_waits_for_causality(fake: FakeCluster) -> None:
    fake.script(NodeStatus.galera(), NodeStatus.galera(), NodeStatus.galera())
    for host in HOSTS:
        fake[host].last_gtid = "0-1-8"
    async with make_cluster(fake) as cluster:
        async with cluster.connection() as conn:
            token = await cluster.write_token(conn)
        assert token == "0-1-8"
        host = await host_of(cluster, True, after=token)
        assert [s for s, _ in fake[host].statements][-1].startswith("SET STATEMENT wsrep_sync_wait")


async def test_galera_read_after_token_times_out(fake: FakeCluster) -> None:
    fake.script(NodeStatus.galera(), NodeStatus.galera(), NodeStatus.galera())
    for host in HOSTS:
        fake[host].catch_up_after = 10.0
    async with make_cluster(fake) as cluster:
        with pytest.raises(PoolTimeout, match="did not catch up"):
            await host_of(cluster, True, after="0-1-8", timeout=0.2)
        nodes = cluster.topology()
        assert sum(n.stats.pool_in_use for n in nodes) == 0
        assert sum(n.stats.returns_bad for n in nodes) == 1, "the cut-short connection is closed"


# ---------------------------------------------------------------- life cycle and topology


async def test_topology_reports_each_node(fake: FakeCluster, cluster: ClusterPool) -> None:
    fake["10.0.0.3"].status = NodeStatus.replica(lag=7.5)
    await cluster.refresh()
    nodes = cluster.topology()
    assert [n.address for n in nodes] == [f"{h}:3306" for h in HOSTS]
    assert [(n.role, n.state) for n in nodes] == [
        (NodeRole.PRIMARY, NodeState.ONLINE),
        (NodeRole.REPLICA, NodeState.ONLINE),
        (NodeRole.REPLICA, NodeState.LAGGING),
    ]
    assert nodes[2].lag == 7.5 and "7.5 s behind" in (nodes[2].detail or "")
    assert nodes[0].stats.pool_max == 4 and nodes[0].checked_ago is not None
    assert "secret" not in repr(nodes) + repr(cluster)
    assert list(cluster.pools) == [n.address for n in nodes]
    assert cluster.pools["10.0.0.1:3306"].get_stats() == nodes[0].stats
    with pytest.raises(AttributeError):
        nodes[0].state = NodeState.DOWN  # type: ignore[misc]


async def test_probes_use_their_own_connection(fake: FakeCluster, cluster: ClusterPool) -> None:
    for _ in range(3):
        await cluster.refresh()
    for node in cluster.topology():
        assert node.stats.requests_num == 0, "probes are not user requests"
    assert all(len(fake[h].connections()) == 2 for h in HOSTS), "min_size 1 + one probe"


async def test_open_with_some_nodes_down_then_they_join(fake: FakeCluster) -> None:
    fake["10.0.0.3"].go_down()
    fake["10.0.0.3"].status = mysql_errors.OperationalError(2003, "Can't connect")
    async with make_cluster(fake) as cluster:
        assert states(cluster)["10.0.0.3"] == (NodeRole.UNKNOWN, NodeState.DOWN)
        fake["10.0.0.3"].come_back()
        fake["10.0.0.3"].status = NodeStatus.replica()
        await cluster.refresh()
        assert states(cluster)["10.0.0.3"] == (NodeRole.REPLICA, NodeState.ONLINE)


async def test_a_node_back_after_an_outage_is_reconnected_at_once(fake: FakeCluster) -> None:
    async with make_cluster(fake) as cluster:
        node = next(n for n in cluster._nodes if n.address.host == "10.0.0.3")
        fake["10.0.0.3"].go_down()
        fake["10.0.0.3"].status = mysql_errors.OperationalError(2003, "Can't connect")
        await node.pool.check()  # its idle connection is found dead: reconnecting starts
        backoff = node.pool._ledger.backoff
        await until(lambda: backoff.attempts >= 2, timeout=5.0)
        # Its pool now waits a second or more before trying again.
        assert backoff.next_attempt_at - monotonic() > 0.5
        fake["10.0.0.3"].come_back()
        fake["10.0.0.3"].status = NodeStatus.replica(source="10.0.0.1:3306", server_id=3)
        await cluster.refresh()  # the probe connects again
        assert states(cluster)["10.0.0.3"] == (NodeRole.REPLICA, NodeState.ONLINE)
        await until(lambda: bool(node.pool._ledger.idle), timeout=0.4)


async def test_open_fails_when_no_node_answers(fake: FakeCluster) -> None:
    for node in fake.nodes.values():
        node.status = mysql_errors.OperationalError(2003, "Can't connect")
    cluster = make_cluster(fake)
    with pytest.raises(PoolTimeout, match=r"no node answered within 0\.2 s"):
        await cluster.open(timeout=0.2)
    assert cluster.closed


async def test_open_raises_a_wrong_password_at_once(fake: FakeCluster) -> None:
    denied = mysql_errors.OperationalError(1045, "Access denied for user 'app'")
    for node in fake.nodes.values():
        node.connect_error = denied
    with pytest.raises(mysql_errors.OperationalError, match="Access denied"):
        async with asyncio.timeout(30):  # raised at once, not after open()'s 600 s
            await make_cluster(fake).open(timeout=600.0)


async def test_closed_cluster_refuses_and_waiters_see_it(fake: FakeCluster) -> None:
    fake.replication()
    fake["10.0.0.1"].status = NodeStatus.replica()
    cluster = make_cluster(fake)
    with pytest.raises(PoolClosed, match="not open yet"):
        await host_of(cluster)
    await cluster.open()
    waiter = asyncio.create_task(host_of(cluster))
    await asyncio.sleep(0.05)
    await cluster.close()
    with pytest.raises(PoolClosed):
        await waiter
    with pytest.raises(PoolClosed, match="is closed"):
        await host_of(cluster, True)
    assert all(not fake[h].live for h in HOSTS), "every connection closed, probes too"


# ---------------------------------------------------------------- the primary, from the graph
# decide() is pure: these scripts are what the probes of each member read.

A, B, C, D = "10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306", "10.0.0.4:3306"


def member(name: str, status: NodeStatus | None, server_id: int | None = None) -> Member:
    host, port = name.split(":")
    return Member(name, host, int(port), status, server_id)


def roles(decision: Decision) -> dict[str, tuple[NodeRole, NodeState, bool, bool]]:
    return {n: (v.role, v.state, v.writable, v.readable) for n, v in decision.verdicts.items()}


PRIMARY = (NodeRole.PRIMARY, NodeState.ONLINE, True, True)
REPLICA = (NodeRole.REPLICA, NodeState.ONLINE, False, True)
FENCED = (NodeRole.PRIMARY, NodeState.FENCED, False, False)
AMBIGUOUS = (NodeRole.PRIMARY, NodeState.AMBIGUOUS, False, False)


def test_a_single_writable_server_is_the_primary() -> None:
    alone = decide([member(A, NodeStatus.primary(1))], 5.0)
    assert (alone.primary, roles(alone)) == (A, {A: PRIMARY})
    # Read-only servers that replicate from nobody do not make it less so.
    idle = decide([member(A, NodeStatus.primary(1)), member(B, NodeStatus.replica())], 5.0)
    assert idle.primary == A and idle.refused is None


def test_a_replica_made_writable_is_still_a_replica() -> None:
    decision = decide(
        [
            member(A, NodeStatus.primary(1)),
            member(B, NodeStatus.replica(source=A, server_id=2, read_only=False)),
            member(C, NodeStatus.replica(source=A, server_id=3)),
        ],
        5.0,
    )
    assert decision.primary == A
    assert roles(decision) == {A: PRIMARY, B: REPLICA, C: REPLICA}
    assert decision.writable_replicas == (B,)
    assert f"writable (read_only=OFF) but replicates from {A}" in (
        decision.verdicts[B].detail or ""
    )
    # Its reads still follow the replica rules.
    lagging = NodeStatus(read_only=False, replication_running=True, lag=60.0, source=link(A))
    late = decide([member(A, NodeStatus.primary(1)), member(B, lagging)], 5.0)
    assert roles(late)[B] == (NodeRole.REPLICA, NodeState.LAGGING, False, False)


def link(address: str, server_id: int | None = None, io: str = "Yes", sql: bool = True) -> Any:
    host, port = address.split(":")
    return SourceLink(host, int(port), server_id, io, sql)


def test_the_source_is_matched_by_server_id_when_the_names_differ() -> None:
    # The replica was pointed at a DNS name; the cluster URL lists addresses.
    by_name = NodeStatus(read_only=False, source=link("db-a.internal:3306", server_id=1))
    decision = decide([member(A, NodeStatus.primary(1)), member(B, by_name)], 5.0)
    assert decision.primary == A and decision.sources == {B: A}
    # Or by the source's own @@hostname and @@port.
    named = NodeStatus(server_id=1, hostname="db-a", port=3306)
    by_host = NodeStatus(read_only=False, source=link("DB-A:3306"))
    assert decide([member(A, named), member(B, by_host)], 5.0).primary == A


def test_an_unidentified_source_keeps_a_writable_node_out_of_the_primary_role() -> None:
    # Not connected (no Master_Server_Id) and no address matches: it may be a
    # member under another name, so the node is not a candidate...
    unknown = NodeStatus(read_only=False, source=link("db-z:3306", io="Connecting"))
    decision = decide([member(A, NodeStatus.primary(1)), member(B, unknown, 2)], 5.0)
    assert decision.primary == A and decision.sources[B] == "db-z:3306 (not identified)"
    # ...but a connected source whose id is no member's is outside the cluster:
    # a cluster whose primary replicates from another site keeps its primary.
    outside = NodeStatus(server_id=1, read_only=False, source=link("site-b:3306", server_id=9))
    replica = NodeStatus.replica(source=A, server_id=2)
    downstream = decide([member(A, outside), member(B, replica)], 5.0)
    assert downstream.primary == A
    assert downstream.sources == {A: "site-b:3306 (outside the cluster)", B: A}


def test_stopped_replication_is_no_edge() -> None:
    # Promoted with STOP SLAVE but no RESET SLAVE ALL: it follows nobody now.
    promoted = NodeStatus(server_id=2, source=link(A, io="No", sql=False))
    decision = decide([member(A, None, 1), member(B, promoted)], 5.0)
    assert decision.primary == B


def test_the_followed_writable_server_is_primary_and_the_other_is_fenced() -> None:
    members = [
        member(A, NodeStatus.primary(1)),  # the old primary, back writable
        member(B, NodeStatus.primary(2)),  # promoted
        member(C, NodeStatus.replica(source=B, server_id=3)),  # repointed
    ]
    decision = decide(members, 5.0)
    assert decision.primary == B and decision.fenced == (A,)
    assert roles(decision) == {A: FENCED, B: PRIMARY, C: REPLICA}
    assert decision.verdicts[A].detail == (
        f"writable (read_only=OFF) but no member replicates from it, while {B} is followed by {C}"
    )
    # The fence lifts once the operator repoints it.
    members[0] = member(A, NodeStatus.replica(source=B, server_id=1))
    assert roles(decide(members, 5.0)) == {A: REPLICA, B: PRIMARY, C: REPLICA}


def test_two_writable_servers_nobody_follows_are_ambiguous() -> None:
    decision = decide([member(A, NodeStatus.primary(1)), member(B, NodeStatus.primary(2))], 5.0)
    assert decision.primary is None and roles(decision) == {A: AMBIGUOUS, B: AMBIGUOUS}
    assert decision.refused == (
        "2 writable servers replicate from no member and no member replicates from any of "
        f"them: {A}, {B}"
    )


def test_two_followed_writable_servers_are_ambiguous() -> None:
    decision = decide(
        [
            member(A, NodeStatus.primary(1)),
            member(B, NodeStatus.primary(2)),
            member(C, NodeStatus.replica(source=A, server_id=3)),
            member(D, NodeStatus.replica(source=B, server_id=4)),
        ],
        5.0,
    )
    assert decision.primary is None
    assert decision.refused == (
        f"2 writable servers each have replicas: {A} (followed by {C}), {B} (followed by {D})"
    )
    assert roles(decision)[C] == REPLICA, "replicas keep serving reads"


def test_a_replication_cycle_is_ambiguous() -> None:
    decision = decide(
        [
            member(A, NodeStatus.primary(1, source=B)),
            member(B, NodeStatus.primary(2, source=A)),
            member(C, NodeStatus.replica(source=A, server_id=3)),
        ],
        5.0,
    )
    assert decision.primary is None
    assert decision.refused == f"replication cycle {A} -> {B} -> {A}"
    assert set(decision.writable_replicas) == {A, B}


def test_a_down_member_contributes_no_edges() -> None:
    # C followed B before it went down; that may no longer be true.
    members = [
        member(A, NodeStatus.primary(1)),
        member(B, NodeStatus.primary(2)),
        member(C, None, 3),
    ]
    assert decide(members, 5.0).refused is not None
    # The source's SHOW REPLICA HOSTS still lists C: B is followed.
    members[1] = member(B, dataclasses.replace(NodeStatus.primary(2), replica_ids=frozenset({3})))
    decision = decide(members, 5.0)
    assert decision.primary == B and decision.fenced == (A,)


def test_the_replicas_own_view_wins_over_a_stale_replica_hosts_list() -> None:
    # SHOW REPLICA HOSTS keeps listing a replica for a while after it stopped.
    members = [
        member(A, NodeStatus.primary(1)),
        member(B, dataclasses.replace(NodeStatus.primary(2), replica_ids=frozenset({3}))),
        member(C, NodeStatus.replica(running=False, source=B, server_id=3)),
    ]
    assert decide(members, 5.0).primary is None


def test_galera_nodes_are_left_to_classify() -> None:
    decision = decide([member(n, NodeStatus.galera()) for n in (A, B, C)], 5.0)
    assert decision.primary is None and decision.refused is None
    assert {v.role for v in decision.verdicts.values()} == {NodeRole.GALERA}
    assert all(v.writable for v in decision.verdicts.values())


# ---------------------------------------------------------------- rules and URLs


def test_classify_rules() -> None:
    assert classify(NodeStatus.primary(), 5.0).role is NodeRole.PRIMARY
    assert classify(NodeStatus(innodb_read_only=True, replication_running=True), 5.0).readable
    lagging = classify(NodeStatus.replica(lag=5.5), 5.0)
    assert (lagging.state, lagging.readable) == (NodeState.LAGGING, False)
    assert classify(NodeStatus.replica(lag=5.0), 5.0).readable
    unknown_lag = classify(NodeStatus(read_only=True, replication_running=None), 5.0)
    assert unknown_lag.readable, "lag we may not read does not exclude the replica"
    galera_ro = classify(
        NodeStatus(
            read_only=True,
            wsrep_on=True,
            wsrep_ready=True,
            wsrep_local_state=4,
            wsrep_cluster_status="Primary",
        ),
        5.0,
    )
    assert (galera_ro.readable, galera_ro.writable) == (True, False)
    maintenance = classify(
        NodeStatus(**{**vars_of(NodeStatus.galera()), "wsrep_reject_queries": "ALL"}), 5.0
    )
    assert (maintenance.state, maintenance.readable) == (NodeState.NOT_SYNCED, False)
    assert classify(
        NodeStatus(**{**vars_of(NodeStatus.galera()), "wsrep_reject_queries": "NONE"}), 5.0
    ).writable


def vars_of(status: NodeStatus) -> dict[str, Any]:
    return {f.name: getattr(status, f.name) for f in dataclasses.fields(status)}


def test_split_urls() -> None:
    nodes = split_cluster_url("mysql://a:p%40ss@h1:3307,[::1]:3308,h3/db?charset=utf8mb4")
    assert [str(n) for n in nodes] == ["h1:3307", "[::1]:3308", "h3:3306"]
    assert nodes[1].url == "mysql://a:p%40ss@[::1]:3308/db?charset=utf8mb4"
    listed = split_cluster_url(["mysql://a@h1:1/db", "mariadb://a@h2:2/db"])
    assert [(n.host, n.port) for n in listed] == [("h1", 1), ("h2", 2)]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://app:secret@/shop", "names no hosts"),
        ("mysql://app:secret@h1:3306,h2:x/shop", r"host 2 \('h2:x'\) has a bad port"),
        ("mysql://app:secret@h1:3306,h2:0/shop", "bad port"),
        ("mysql://app:secret@h1:3306,h2:70000/shop", "bad port"),
        ("mysql://app:secret@h1,,h2/shop", "host 2 .* has no host name"),
        ("mysql://app:secret@h1:1,H1:1/shop", "listed twice"),
        ("postgres://app:secret@h1,h2/shop", "scheme 'postgres'"),
        ("mysql://app:secret@h1,h2/shop?chrset=x", "unknown URL option"),
        ("app:secret@h1,h2", "not a URL"),
        ([], "list of node URLs is empty"),
    ],
)
def test_bad_urls_name_the_problem_never_the_password(url: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        ClusterPool(url)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "h"}, "host= cannot be given"),
        ({"port": 1}, "port= cannot be given"),
        ({"refresh_interval": 0}, "refresh_interval must be > 0"),
        ({"max_replica_lag": -1}, "max_replica_lag must be >= 0"),
        ({"min_size": 5, "max_size": 2}, "min_size"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClusterPool(URL, **kwargs)


async def test_listeners_hear_every_nodes_pool(fake: FakeCluster) -> None:
    from aiopool.events import AcquireEvent

    seen: list[str] = []

    class Listener:
        def on_acquire(self, event: AcquireEvent) -> None:
            seen.append(event.pool_name)

    async with make_cluster(fake, name="shop", listeners=[Listener()]) as cluster:
        await host_of(cluster)
        for _ in range(4):
            await host_of(cluster, readonly=True)
    assert "shop[10.0.0.1:3306]" in seen, seen
    assert {"shop[10.0.0.2:3306]", "shop[10.0.0.3:3306]"} & set(seen), seen

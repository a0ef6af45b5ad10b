"""ClusterPool under network faults: a FaultProxy in front of every node of a real
replication cluster (primary + 2 replicas), RST or blackhole mid-operation.

After every run: each node pool's books are exact, ``busy`` is back to 0, the
next borrower's query works, no write reached a replica, and ``close()``
leaves no session on any server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from time import monotonic

import pytest
from asyncmy import errors as mysql_errors

from aiopool import PoolTimeout
from aiopool._cluster import ClusterPool
from aiopool._cluster_node import ClusterNode
from aiopool._cluster_probe import NodeState
from aiopool.testing._cluster import ReplicationCluster
from aiopool.testing._mariadbd import _which
from tests.support.faultproxy import FaultProxy
from tests.support.pooltools import check_invariants, turns

# What a statement on a connection the proxy reset may raise.
LOST = (mysql_errors.OperationalError, mysql_errors.InterfaceError, ConnectionError)
CLEAR = (*LOST, PoolTimeout)


@pytest.fixture(scope="module")
def replication() -> Iterator[ReplicationCluster]:
    if _which("mariadbd", "mysqld") is None:
        pytest.skip("mariadbd is not installed")
    with ReplicationCluster(replicas=2) as cluster:
        cluster.primary.query(
            "CREATE TABLE IF NOT EXISTS app.f (id VARCHAR(40) PRIMARY KEY, v INT)"
        )
        cluster.wait_caught_up()
        yield cluster


class Rig:
    def __init__(self, cluster: ReplicationCluster, proxies: list[FaultProxy], pool: ClusterPool):
        self.cluster = cluster
        self.proxies = proxies  # [primary, replica, replica]
        self.pool = pool

    @property
    def primary_proxy(self) -> FaultProxy:
        return self.proxies[0]

    @property
    def replica_proxies(self) -> list[FaultProxy]:
        return self.proxies[1:]

    def node_of(self, proxy: FaultProxy) -> ClusterNode:
        return next(n for n in self.pool._nodes if n.address.port == proxy.port)

    def state_of(self, proxy: FaultProxy) -> NodeState:
        return self.node_of(proxy).state


@pytest.fixture
async def rig(replication: ReplicationCluster) -> AsyncIterator[Rig]:
    nodes = [replication.primary, *replication.replicas]
    proxies = [FaultProxy("127.0.0.1", n.port) for n in nodes]
    for p in proxies:
        await p.start()
    pool = ClusterPool(
        [p.url_for(n.url()) for p, n in zip(proxies, nodes, strict=True)],
        refresh_interval=0.1,
        probe_timeout=0.5,
        gtid_wait_timeout=0.5,
        timeout=3.0,
        max_size=4,
        connect_timeout=2,
    )
    try:
        await pool.open()
        yield Rig(replication, proxies, pool)
    finally:
        for p in proxies:
            p.heal()
        await pool.close()
        for p in proxies:
            await p.stop()
    # Nothing left running, no session left on any server.
    assert pool._monitor is not None and pool._monitor.done()
    deadline = monotonic() + 10
    while True:
        counts = [
            n.scalar("SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'app'")
            for n in nodes
        ]
        if all(c == "0" for c in counts):
            break
        assert monotonic() < deadline, f"app sessions left after close(): {counts}"
        await asyncio.sleep(0.05)


async def check_books(rig: Rig) -> None:
    """Books exact on every node, busy back to 0, a fresh borrower works."""
    pool = rig.pool
    for p in rig.proxies:
        p.heal()
    # Let returns and closes in flight finish.
    for _ in range(50):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)
    # A return or close in flight (a polite COM_QUIT, a rollback on the way
    # back) may still hold a slot for a moment; a slot that stays uncounted
    # for seconds is a leak in the books.
    deadline = monotonic() + 3
    while True:
        try:
            for node in pool._nodes:
                check_invariants(node.pool)
                assert node.busy == 0, (node.name, node.busy)
                assert not node.watches, (node.name, node.watches)
        except AssertionError:
            if monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            break
    # Every node back online before the next run.
    deadline = monotonic() + 10
    while any(n.state is not NodeState.ONLINE for n in pool._nodes):
        assert monotonic() < deadline, pool.topology()
        await asyncio.sleep(0.02)
    for readonly in (False, True, True):
        async with pool.connection(readonly) as conn:
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
                assert await cur.fetchone() == (1,)


def no_write_on_a_replica(rig: Rig, key: str) -> None:
    """The replicas hold exactly the primary's rows, and every GTID they logged is the primary's."""
    primary = rig.cluster.primary
    rig.cluster.wait_caught_up()
    count = f"SELECT COUNT(*) FROM app.f WHERE id LIKE '{key}%'"
    want = primary.scalar(count)
    primary_id = primary.scalar("SELECT @@server_id")
    for r in rig.cluster.replicas:
        assert r.scalar(count) == want
        pos = r.scalar("SELECT @@gtid_binlog_pos") or ""
        ids = {g.split("-")[1] for g in pos.split(",") if g}
        assert ids <= {primary_id}, f"replica {r.port} logged its own write: {pos}"


# ---------------------------------------------------------------- bugs


async def test_a_replica_blackholed_during_the_read_your_writes_wait_does_not_hang(
    rig: Rig,
) -> None:
    """The token names a write no replica has: MASTER_GTID_WAIT waits gtid_wait_timeout.
    The replicas go silent meanwhile; the request must end within its timeout
    (a read from the primary, or PoolTimeout), not hang on the silent replica."""
    token = "0-1-999999999"  # never applied within the test

    async def read() -> int:
        async with rig.pool.connection(readonly=True, after=token, timeout=2.0) as conn:
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
            port: int = conn._port
            return port

    task = asyncio.ensure_future(read())
    await asyncio.sleep(0.2)  # the GTID wait runs on a replica now
    assert not task.done()
    for p in rig.replica_proxies:
        p.blackhole()
    started = monotonic()
    done, _ = await asyncio.wait([task], timeout=6.0)
    waited = monotonic() - started
    if not done:
        for p in rig.replica_proxies:
            p.heal()
        await asyncio.gather(asyncio.wait_for(task, 5), return_exceptions=True)
        pytest.fail(f"the read-your-writes request still hung {waited:.1f} s after its 2 s timeout")
    try:
        port = task.result()
    except PoolTimeout:
        pass
    else:
        assert port == rig.primary_proxy.port
    await check_books(rig)


async def test_a_primary_blackholed_fails_writes_clearly_and_reads_go_on(rig: Rig) -> None:
    """A statement already running on the primary when it goes silent is the
    driver's (asyncmy has no read timeout); what the cluster owes: the monitor
    marks the primary down within its probe timeout, then every write fails
    with PoolTimeout naming the role within the request's timeout, and reads
    go on on the replicas."""
    primary = rig.node_of(rig.primary_proxy)
    rig.primary_proxy.blackhole()
    started = monotonic()
    while primary.state is not NodeState.DOWN:
        await asyncio.sleep(0.01)
        assert monotonic() - started < 0.5 + 0.1 + 0.3, "not marked down within the probe timeout"
    started = monotonic()
    with pytest.raises(PoolTimeout, match="writable node"):
        async with asyncio.timeout(6):
            async with rig.pool.connection(timeout=2.0) as conn:
                async with conn.cursor() as cur:
                    await cur.execute("SELECT 1")
    assert 1.9 < monotonic() - started < 3.0
    for _ in range(5):
        async with asyncio.timeout(3):
            async with rig.pool.connection(readonly=True, timeout=2.0) as conn:
                async with conn.cursor() as cur:
                    await cur.execute("SELECT 1")
                assert conn._port in {p.port for p in rig.replica_proxies}
    await check_books(rig)


async def test_a_blackholed_replica_leaves_within_the_probe_timeout_and_comes_back(
    rig: Rig,
) -> None:
    proxy = rig.replica_proxies[0]
    node = rig.node_of(proxy)
    proxy.blackhole()
    started = monotonic()
    while node.state is not NodeState.DOWN:
        await asyncio.sleep(0.01)
        assert monotonic() - started < 0.5 + 0.1 + 0.3, "not marked down within the probe timeout"
    for _ in range(10):
        async with rig.pool.connection(readonly=True, timeout=2.0) as conn:
            assert conn._port == rig.replica_proxies[1].port
    proxy.heal()
    started = monotonic()
    while rig.state_of(proxy) is not NodeState.ONLINE:
        await asyncio.sleep(0.01)
        assert monotonic() - started < 3, rig.pool.topology()
    await check_books(rig)


# ---------------------------------------------------------------- RST sweeps


async def _ryw_pair(rig: Rig, key: str) -> None:
    async with rig.pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO f VALUES (%s, 1)", (key,))
        token = await rig.pool.write_token(conn)
    assert token
    async with rig.pool.connection(readonly=True, after=token) as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT v FROM f WHERE id = %s", (key,))
            assert await cur.fetchone() == (1,)


@pytest.mark.parametrize("which", ["primary", "replicas", "all", "cancel+replicas"])
async def test_reset_at_every_turn_of_a_write_then_read_your_writes(rig: Rig, which: str) -> None:
    targets = {
        "primary": [rig.primary_proxy],
        "replicas": rig.replica_proxies,
        "all": rig.proxies,
        "cancel+replicas": rig.replica_proxies,
    }[which]
    prefix = f"s{uuid.uuid4().hex[:8]}"
    mid = 0  # runs in which the reset hit a target node while the request used it
    # Real I/O decides at which turn the fault lands: sweep again (at most
    # 5 times) until it landed mid-request on a target node at least 3 times.
    for sweep in range(5):
        for k in range(400):
            task = asyncio.ensure_future(_ryw_pair(rig, f"{prefix}-{sweep}-{k}"))
            await turns(k)
            finished = task.done()
            if not finished and any(rig.node_of(p).busy for p in targets):
                mid += 1
            if which.startswith("cancel"):
                task.cancel()  # the caller gives up just as the node fails
            for p in targets:
                p.reset_all()
            try:
                async with asyncio.timeout(10):
                    await task
            except (*CLEAR, asyncio.CancelledError):
                assert not finished
            await check_books(rig)
            if finished:
                break
        else:
            raise AssertionError("never finished")
        if mid >= 3:
            break
    assert mid >= 3, f"the reset landed mid-request on a target node only {mid} times"
    no_write_on_a_replica(rig, prefix)


@pytest.mark.parametrize("busy", [False, True])
async def test_close_with_every_node_blackholed_ends_within_its_timeout(
    rig: Rig, busy: bool
) -> None:
    """close() while no node answers (optionally with a read stuck on one): it
    ends within about its timeout, the monitor stopped, nothing left running;
    the fixture then checks no session is left once the network heals."""
    stuck = None
    if busy:

        async def read() -> None:
            async with rig.pool.connection(readonly=True) as conn:
                async with conn.cursor() as cur:
                    await cur.execute("SELECT SLEEP(0.3)")

        stuck = asyncio.ensure_future(read())
        while not any(n.busy for n in rig.pool._nodes):
            await asyncio.sleep(0.001)
    for p in rig.proxies:
        p.blackhole()
    started = monotonic()
    async with asyncio.timeout(5):
        await rig.pool.close(timeout=1.0)
    assert monotonic() - started < 2.0
    assert rig.pool._monitor is not None and rig.pool._monitor.done()
    if stuck is not None:
        for p in rig.proxies:
            p.heal()
        async with asyncio.timeout(5):
            await asyncio.gather(stuck, return_exceptions=True)
    for node in rig.pool._nodes:
        check_invariants(node.pool)
        assert node.pool.get_stats().pool_size == 0, node.name

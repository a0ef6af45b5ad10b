"""The cluster test infrastructure itself: replication with GTID, and Galera.

Each cluster starts once for the module (replication ~3 s, Galera ~10 s). The
tests run in file order and later ones build on earlier ones (the failover
comes last). Measured times are printed at the end of the module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncmy
import pytest
from asyncmy import errors as mysql_errors

from aiopool.testing import _cluster_common, _galera
from aiopool.testing._cluster import (
    GaleraCluster,
    GaleraNode,
    ReplicationCluster,
    ReplicationNode,
    SqlError,
    ensure_galera_installed,
)
from tests.support.realdb import connect_kwargs

READ_ONLY = 1290  # ER_OPTION_PREVENTS_STATEMENT: --read-only
NOT_READY = 1047  # ER_UNKNOWN_COM_ERROR: "WSREP has not yet prepared node for application use"

_timings: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_timings(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    plugins = request.config.pluginmanager
    reporter: Any = plugins.get_plugin("terminalreporter")
    capture: Any = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not _timings:
        return
    with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
        reporter.write_line("")
        for step, value in _timings.items():
            unit = "MiB" if "MiB" in step else "s"
            reporter.write_line(f"cluster: {step.replace(' (MiB)', ''):<48} {value:6.2f} {unit}")


def timed(step: str, seconds: float) -> float:
    _timings[step] = seconds
    return seconds


def app_sql(node: ReplicationNode | GaleraNode, sql: str) -> list[dict[str, str | None]]:
    return node.query(sql, user="app", password="app")


@pytest.fixture(scope="module")
def replication() -> Iterator[ReplicationCluster]:
    with ReplicationCluster(replicas=2) as cluster:
        assert cluster.start_seconds is not None
        timed("replication start (primary + 2 replicas)", cluster.start_seconds)
        for node in cluster.nodes:
            _timings[f"replication {node.name} RSS (MiB)"] = node.rss_mib or 0.0
        yield cluster


@pytest.fixture(scope="module")
def galera() -> Iterator[GaleraCluster]:
    ok, reason = ensure_galera_installed()
    if not ok:
        pytest.skip(f"Galera is not available: {reason}")
    with GaleraCluster() as cluster:
        assert cluster.start_seconds is not None
        timed("galera start (bootstrap + 2 rsync SST joins)", cluster.start_seconds)
        for node in cluster.nodes:
            _timings[f"galera {node.name} RSS (MiB)"] = node.rss_mib or 0.0
        yield cluster


# --- replication ------------------------------------------------------------------------


def test_replication_roles_and_users(replication: ReplicationCluster) -> None:
    primary, replicas = replication.primary, replication.replicas
    assert len(replicas) == 2
    assert replication.urls == [n.url() for n in (primary, *replicas)]
    assert primary.scalar("SELECT @@read_only") == "0"
    for node in replicas:
        assert node.scalar("SELECT @@read_only") == "1"
        # SLAVE MONITOR lets the app user read the replica's lag.
        status = node.query("SHOW SLAVE STATUS", user="app", password="app")[0]
        assert status["Slave_IO_Running"] == status["Slave_SQL_Running"] == "Yes"
        assert status["Seconds_Behind_Master"] == "0"
    grants = " ".join(str(r) for r in app_sql(primary, "SHOW GRANTS"))
    assert "READ_ONLY ADMIN" not in grants and "SUPER" not in grants
    # REPLICATION MASTER ADMIN lets it see the replicas from the primary's side.
    hosts = app_sql(primary, "SHOW REPLICA HOSTS")
    assert {int(r["Port"] or 0) for r in hosts} == {n.port for n in replicas}


def test_writes_on_the_primary_reach_every_replica(replication: ReplicationCluster) -> None:
    app_sql(replication.primary, "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
    app_sql(replication.primary, "INSERT INTO app.t VALUES (1, 'from primary')")
    timed("replication catch-up after one write", replication.wait_caught_up(10))
    for node in replication.replicas:
        assert app_sql(node, "SELECT v FROM app.t WHERE id = 1") == [{"v": "from primary"}]


def test_app_user_cannot_write_to_a_replica(replication: ReplicationCluster) -> None:
    replica = replication.replicas[0]
    with pytest.raises(SqlError) as caught:
        app_sql(replica, "INSERT INTO app.t VALUES (99, 'diverged')")
    assert caught.value.code == READ_ONLY
    assert app_sql(replica, "SELECT COUNT(*) AS n FROM app.t WHERE id = 99") == [{"n": "0"}]


async def test_app_url_sees_read_only_error_through_asyncmy(
    replication: ReplicationCluster,
) -> None:
    primary_url, replica_url, _ = replication.urls
    conn = await asyncmy.connect(**connect_kwargs(replica_url))
    try:
        async with conn.cursor() as cur:
            with pytest.raises(mysql_errors.OperationalError) as caught:
                await cur.execute("INSERT INTO t VALUES (98, 'diverged')")
            assert caught.value.args[0] == READ_ONLY
            await cur.execute("SELECT @@read_only, @@port")  # the connection stays usable
            assert await cur.fetchone() == (1, replication.replicas[0].port)
    finally:
        await conn.ensure_closed()
    conn = await asyncmy.connect(**connect_kwargs(primary_url))
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT @@read_only")
            assert await cur.fetchone() == (0,)
    finally:
        await conn.ensure_closed()


def test_stopped_replica_lags_then_catches_up(replication: ReplicationCluster) -> None:
    primary, replica = replication.primary, replication.replicas[1]
    replication.stop_replica(replica)
    app_sql(primary, "INSERT INTO app.t VALUES (2, 'while stopped')")
    status = replication.replica_status(replica)
    assert status["Slave_SQL_Running"] == "No"
    assert status["Seconds_Behind_Master"] is None  # NULL while stopped: lag is unknown
    behind = replication.gtid_position(replica)
    ahead = replication.gtid_position(primary)
    assert _cluster_common._gtid_seq(behind) < _cluster_common._gtid_seq(ahead)
    assert app_sql(replica, "SELECT COUNT(*) AS n FROM app.t WHERE id = 2") == [{"n": "0"}]
    started = time.monotonic()
    replication.start_replica(replica)
    replication.wait_caught_up(10)
    timed("start_replica -> caught up", time.monotonic() - started)
    assert replication.gtid_position(replica) == replication.gtid_position(primary)
    assert app_sql(replica, "SELECT COUNT(*) AS n FROM app.t WHERE id = 2") == [{"n": "1"}]


def test_delayed_replica_reports_seconds_behind(replication: ReplicationCluster) -> None:
    primary, replica = replication.primary, replication.replicas[1]
    replication.delay_replica(replica, 3)
    try:
        app_sql(primary, "INSERT INTO app.t VALUES (3, 'delayed')")

        def behind() -> bool:
            lag = replication.replica_status(replica).get("Seconds_Behind_Master")
            return lag is not None and int(lag) >= 1

        timed(
            "delayed replica shows Seconds_Behind_Master>=1",
            _cluster_common._wait_for(behind, 5, "no lag"),
        )
    finally:
        replication.delay_replica(replica, 0)
    replication.wait_caught_up(10)
    assert replication.replica_status(replica)["Seconds_Behind_Master"] == "0"


def test_failover_promotes_a_replica_and_the_other_follows(
    replication: ReplicationCluster,
) -> None:
    old = replication.primary
    chosen, other = replication.replicas
    started = time.monotonic()
    new = replication.failover(chosen)
    timed("failover (SIGKILL, promote, repoint)", time.monotonic() - started)
    assert new is chosen and replication.primary is chosen
    assert old.role == "failed" and not old.running and old.pid is None
    assert replication.replicas == [other]
    assert new.scalar("SELECT @@read_only") == "0"
    app_sql(new, "INSERT INTO app.t VALUES (4, 'after failover')")
    replication.wait_caught_up(10)
    assert app_sql(other, "SELECT v FROM app.t WHERE id = 4") == [{"v": "after failover"}]
    assert replication.replica_status(other)["Master_Port"] == str(new.port)
    with pytest.raises(SqlError) as caught:
        app_sql(other, "INSERT INTO app.t VALUES (5, 'diverged')")
    assert caught.value.code == READ_ONLY

    replication.revive_stray(old)  # back by itself: writable, replicating from nobody
    assert old.running and old.role == "failed"
    assert old.scalar("SELECT @@read_only") == "0" and replication.replica_status(old) == {}
    assert other.port not in {int(r["Port"] or 0) for r in old.query("SHOW REPLICA HOSTS")}
    started = time.monotonic()
    replication.rejoin(old)
    replication.wait_caught_up(10)
    timed("old primary rejoins as replica (restart+sync)", time.monotonic() - started)
    assert old.role == "replica" and old.scalar("SELECT @@read_only") == "1"
    assert app_sql(old, "SELECT COUNT(*) AS n FROM app.t WHERE id = 4") == [{"n": "1"}]
    assert replication.urls[0] == new.url()


# --- Galera -----------------------------------------------------------------------------


def test_galera_write_is_visible_on_every_node(galera: GaleraCluster) -> None:
    first, *others = galera.nodes
    for node in galera.nodes:
        status = node.status()
        assert status["wsrep_cluster_size"] == "3"
        assert status["wsrep_local_state_comment"] == "Synced"
    app_sql(first, "CREATE TABLE app.g (id INT PRIMARY KEY, v VARCHAR(20))")
    app_sql(first, "INSERT INTO app.g VALUES (1, 'from node 0')")
    for node in others:
        # wsrep_sync_wait: the read waits for the writes the cluster has committed.
        rows = app_sql(node, "SET SESSION wsrep_sync_wait = 1; SELECT v FROM app.g")
        assert rows == [{"v": "from node 0"}]


def test_galera_survives_a_killed_node_and_it_rejoins(galera: GaleraCluster) -> None:
    first, second, victim = galera.nodes
    started = time.monotonic()
    victim.kill()
    galera.wait_cluster_size(2, timeout=15, nodes=[first, second])
    timed("galera SIGKILL -> survivors at size 2", time.monotonic() - started)
    for n, node in enumerate((first, second), start=10):
        app_sql(node, f"INSERT INTO app.g VALUES ({n}, 'two nodes')")
        assert node.status()["wsrep_cluster_status"] == "Primary"

    started = time.monotonic()
    victim.restart(timeout=60)
    timed("galera restart of killed node -> Synced", time.monotonic() - started)
    galera.wait_cluster_size(3, timeout=15)
    assert "IST completed on joiner" in victim.error_log.read_text(errors="replace")
    rows = app_sql(victim, "SET SESSION wsrep_sync_wait = 1; SELECT COUNT(*) AS n FROM app.g")
    assert rows == [{"n": "3"}]


def test_galera_isolated_node_goes_non_primary_then_resyncs(galera: GaleraCluster) -> None:
    node = galera.nodes[1]
    timed("galera isolate -> non-Primary", galera.isolate(node, on=True, timeout=20))
    status = node.status()
    assert status["wsrep_cluster_status"] != "Primary"
    assert status["wsrep_ready"] == "OFF"
    assert app_sql(node, "SELECT 1 AS one") == [{"one": "1"}]  # a ping still succeeds
    with pytest.raises(SqlError) as caught:
        app_sql(node, "SELECT COUNT(*) FROM app.g")
    assert caught.value.code == NOT_READY
    timed("galera de-isolate -> Synced", galera.isolate(node, on=False, timeout=30))
    galera.wait_cluster_size(3, timeout=15)
    assert node.status()["wsrep_ready"] == "ON"


# --- installing Galera ------------------------------------------------------------------


def test_ensure_galera_updates_lists_only_when_install_cannot_find_packages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed: list[str] = []
    calls: list[list[str]] = []

    def run_apt(args: list[str], timeout: float) -> tuple[int, str]:
        calls.append(list(args))
        if args[0] == "install" and "update" not in [c[0] for c in calls]:
            return 100, "E: Unable to locate package galera-4"
        if args[0] == "install":
            installed.extend(["galera-4", "rsync"])
        return 0, ""

    monkeypatch.setattr(_galera, "_run_apt", run_apt)
    monkeypatch.setattr(_galera, "_which", lambda *names: Path("/usr/bin", names[0]))
    monkeypatch.setattr(
        _galera, "galera_missing", lambda: [p for p in ("galera-4", "rsync") if p not in installed]
    )
    assert ensure_galera_installed() == (True, "installed galera-4, rsync")
    assert [c[0] for c in calls] == ["install", "update", "install"]
    assert calls[0][-2:] == ["galera-4", "rsync"]


def test_ensure_galera_reports_why_it_cannot_install(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def run_apt(args: list[str], timeout: float) -> tuple[int, str]:
        calls.append(list(args))
        return 100, "E: Could not open lock file /var/lib/dpkg/lock-frontend"

    monkeypatch.setattr(_galera, "_run_apt", run_apt)
    monkeypatch.setattr(_galera, "_which", lambda *names: Path("/usr/bin", names[0]))
    monkeypatch.setattr(_galera, "galera_missing", lambda: ["galera-4"])
    ok, reason = ensure_galera_installed()
    assert not ok
    assert "galera-4" in reason and "lock" in reason
    assert [c[0] for c in calls] == ["install"]  # no update: the lists were not the problem

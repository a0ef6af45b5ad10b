"""SQLAlchemy on aiopool, against the real server: Core, ORM, faults, cancellation.

`make test-sqlalchemy-versions` runs this file again on the other SQLAlchemy
minor version (2.0 while the venv has 2.1).
"""

from __future__ import annotations

import asyncio
import gc
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import String, event, exc, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aiopool import AsyncConnectionPool, PoolTimeout
from aiopool.sqlalchemy import AiopoolPool, UnsupportedArgument, create_async_engine
from tests.support.faultproxy import FaultProxy
from tests.support.pooltools import (
    cancel_after,
    cancel_sweep,
    check_invariants,
    fault_after,
    settle,
)
from tests.support.realdb import ConnectionWatcher, ScratchDatabase, connect_kwargs, execute

DEADLINE = 60.0  # "did not hang", never a timing assertion


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(100))


@pytest.fixture
async def pool(scratch: ScratchDatabase) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=4, timeout=10) as p:
        yield p


@pytest.fixture
async def engine(pool: AsyncConnectionPool) -> AsyncIterator[Any]:
    eng = create_async_engine(pool)
    async with eng.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield eng
    await eng.dispose()


async def connection_id(conn: Any) -> int:
    return int((await conn.exec_driver_sql("SELECT CONNECTION_ID()")).scalar_one())


async def settled(pool: AsyncConnectionPool, engine: Any) -> None:
    """Wait until nothing is checked out, on either side (returns run in tasks)."""
    async with asyncio.timeout(DEADLINE):
        while engine.pool.checkedout() or pool.get_stats().pool_in_use:
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------------- Core


async def test_core_connect_and_exec_driver_sql(engine: Any, pool: AsyncConnectionPool) -> None:
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT 1 + 1")).scalar_one() == 2
        assert (await conn.execute(text("SELECT :x * 2"), {"x": 21})).scalar_one() == 42
        assert engine.pool.checkedout() == 1
        assert pool.get_stats().pool_in_use == 1
    assert engine.pool.checkedout() == 0
    assert pool.get_stats().pool_in_use == 0
    assert engine.dialect.driver == "asyncmy"


async def test_core_commit_and_rollback(engine: Any) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql("INSERT INTO notes (id, body) VALUES (1, 'kept')")
    async with engine.connect() as conn:
        await conn.exec_driver_sql("INSERT INTO notes (id, body) VALUES (2, 'dropped')")
        await conn.rollback()
    async with engine.connect() as conn:
        # Left without commit: the check-in must not keep the row.
        await conn.exec_driver_sql("INSERT INTO notes (id, body) VALUES (3, 'unfinished')")
    async with engine.connect() as conn:
        rows = (await conn.exec_driver_sql("SELECT id FROM notes ORDER BY id")).all()
    assert [r[0] for r in rows] == [1]


# ---------------------------------------------------------------------- ORM


async def test_orm_insert_select_commit_rollback(engine: Any) -> None:
    make = async_sessionmaker(engine, expire_on_commit=False)
    async with make() as session:
        session.add_all([Note(id=1, body="one"), Note(id=2, body="two")])
        await session.commit()
    async with make() as session:
        session.add(Note(id=3, body="three"))
        await session.flush()
        await session.rollback()
    async with make() as session:
        notes = (await session.scalars(select(Note).order_by(Note.id))).all()
    assert [(n.id, n.body) for n in notes] == [(1, "one"), (2, "two")]


async def test_orm_rollback_on_exception(engine: Any, pool: AsyncConnectionPool) -> None:
    make = async_sessionmaker(engine)
    with pytest.raises(RuntimeError, match="boom"):
        async with make() as session, session.begin():
            session.add(Note(id=7, body="never"))
            await session.flush()
            raise RuntimeError("boom")
    async with make() as session:
        assert (await session.get(Note, 7)) is None
    await settled(pool, engine)


# ---------------------------------------------------------------------- records and events


async def test_one_record_per_physical_connection(pool: AsyncConnectionPool) -> None:
    engine = create_async_engine(pool)
    seen: list[int] = []

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute("SELECT CONNECTION_ID()")
        (cid,) = cur.fetchone()
        cur.close()
        record.info["cid"] = cid
        seen.append(cid)

    infos = []
    for _ in range(5):
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            infos.append((await connection_id(conn), raw.info.get("cid")))
    await engine.dispose()
    # One physical connection reused: one connect event, and record.info
    # carries over from loan to loan.
    assert len(seen) == 1
    assert {cid for cid, _ in infos} == set(seen)
    assert all(cid == info_cid for cid, info_cid in infos)


@pytest.mark.parametrize("reset_on_return", [None, "rollback"])
async def test_no_doubled_reset(pool: AsyncConnectionPool, reset_on_return: str | None) -> None:
    kwargs = {} if reset_on_return is None else {"pool_reset_on_return": reset_on_return}
    engine = create_async_engine(pool, **kwargs)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)

    async def rollbacks() -> tuple[int, int]:
        async with engine.begin() as conn:
            row = (await conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_rollback'")).one()
            return await connection_id(conn), int(row[1])

    first, before = await rollbacks()
    for _ in range(3):
        async with engine.begin() as conn:
            await conn.exec_driver_sql("INSERT INTO notes (body) VALUES ('x')")
    same, after = await rollbacks()
    assert same == first
    assert pool.get_stats().connections_num == 1
    if reset_on_return is None:
        # The default: committed loans come back without a ROLLBACK (aiopool
        # sends one only when the server reports an open transaction).
        assert after == before
    else:
        # SQLAlchemy's own reset-on-return, when asked for, adds one per check-in.
        assert after == before + 4
    await engine.dispose()


async def test_connect_event_settings_and_reset_session(scratch: ScratchDatabase) -> None:
    """The documented rule: connect-event settings survive unless reset_session=True."""

    async def values(reset_session: bool, configure: Any = None) -> list[Any]:
        async with AsyncConnectionPool(
            scratch.url, min_size=1, max_size=1, reset_session=reset_session, configure=configure
        ) as p:
            engine = create_async_engine(p)

            @event.listens_for(engine.sync_engine, "connect")
            def on_connect(dbapi_connection: Any, record: Any) -> None:
                cur = dbapi_connection.cursor()
                cur.execute("SET @aiopool_sa = 'from-event'")
                cur.close()

            out = []
            for _ in range(2):
                async with engine.connect() as conn:
                    out.append((await conn.exec_driver_sql("SELECT @aiopool_sa")).scalar_one())
            await engine.dispose()
            return out

    async def configure(conn: Any) -> None:
        async with conn.cursor() as cur:
            await cur.execute("SET @aiopool_sa = 'from-configure'")

    assert await values(False) == ["from-event", "from-event"]
    assert await values(True) == ["from-event", None]
    assert await values(True, configure) == ["from-event", "from-configure"]


# ---------------------------------------------------------------------- limits and errors


async def test_200_tasks_never_exceed_max_size(scratch: ScratchDatabase) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=8, timeout=30) as p:
        engine = create_async_engine(p)
        make = async_sessionmaker(engine)

        async def work(i: int) -> int:
            async with make() as session:
                query = text("SELECT SLEEP(0.005) + :i")
                return int((await session.execute(query, {"i": i})).scalar_one())

        async with ConnectionWatcher(scratch) as watcher:
            async with asyncio.timeout(DEADLINE):
                results = await asyncio.gather(*(work(i) for i in range(200)))
            assert watcher.samples > 0
            assert 1 <= watcher.max_seen <= 8
        assert results == list(range(200))
        assert engine.pool.checkedout() == 0
        assert p.get_stats().pool_size <= 8
        await engine.dispose()


async def test_pool_timeout_is_sqlalchemy_timeout(scratch: ScratchDatabase) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=1) as p:
        engine = create_async_engine(p, pool_timeout=0.2)
        async with engine.connect():
            with pytest.raises(exc.TimeoutError) as info:
                async with engine.connect():
                    pass
        assert isinstance(info.value.__cause__, PoolTimeout)
        assert "after" in str(info.value)
        async with engine.connect() as conn:  # the pool works on afterwards
            assert (await conn.exec_driver_sql("SELECT 1")).scalar_one() == 1
        await engine.dispose()


@pytest.mark.parametrize(
    ("kwarg", "value", "names"),
    [
        ("pool_size", 5, "max_size"),
        ("max_overflow", 10, "max_size"),
        ("pool_recycle", 3600, "max_lifetime"),
        ("pool_use_lifo", True, "max_idle"),
        ("pool_pre_ping", True, "check_after=0"),
    ],
)
async def test_pool_arguments_are_refused(
    pool: AsyncConnectionPool, kwarg: str, value: Any, names: str
) -> None:
    with pytest.raises(UnsupportedArgument, match=names) as info:
        create_async_engine(pool, **{kwarg: value})
    assert kwarg in str(info.value)
    assert isinstance(info.value, exc.ArgumentError)
    assert isinstance(info.value, ValueError)
    # The same through SQLAlchemy's own create_async_engine and poolclass=.
    with pytest.raises(UnsupportedArgument, match=names):
        sa_create_async_engine(
            "mysql+asyncmy://", poolclass=AiopoolPool, aiopool=pool, **{kwarg: value}
        )


@pytest.mark.parametrize("kwarg", ["creator", "async_creator", "connect_args", "poolclass"])
async def test_connection_making_arguments_are_refused(
    pool: AsyncConnectionPool, kwarg: str
) -> None:
    with pytest.raises(UnsupportedArgument, match=kwarg):
        create_async_engine(pool, **{kwarg: object()})


async def test_pool_class_with_sqlalchemy_create_async_engine(pool: AsyncConnectionPool) -> None:
    engine = sa_create_async_engine(
        "mysql+asyncmy://ignored@nowhere/none",
        poolclass=AiopoolPool,
        aiopool=pool,
        pool_timeout=5,
        pool_pre_ping=False,
    )
    assert isinstance(engine.pool, AiopoolPool)
    assert engine.pool.aiopool is pool
    async with engine.connect() as conn:
        assert (
            (await conn.exec_driver_sql("SELECT DATABASE()")).scalar_one().startswith("aiopool_t_")
        )
    assert "checked out" in engine.pool.status()
    await engine.dispose()


async def test_dispose_drains_the_aiopool(
    pool: AsyncConnectionPool, scratch: ScratchDatabase
) -> None:
    engine = create_async_engine(pool)
    async with engine.connect() as conn:
        before = await connection_id(conn)
    await engine.dispose()
    assert not pool.closed
    async with engine.connect() as conn:
        after = await connection_id(conn)
    assert after != before
    async with asyncio.timeout(DEADLINE):  # closed by the drain (COM_QUIT is not awaited)
        while await session_exists(scratch, before):
            await asyncio.sleep(0.01)
    await engine.dispose()


async def session_exists(scratch: ScratchDatabase, cid: int) -> bool:
    sql = f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {cid}"
    return bool((await execute(scratch.server_url, sql))[0][0][0])


# ---------------------------------------------------------------------- disconnects


async def test_kill_mid_session_invalidates_only_that_connection(
    scratch: ScratchDatabase,
) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=2, max_size=2) as p:
        engine = create_async_engine(p)
        make = async_sessionmaker(engine)
        async with make() as a, make() as b:
            victim = await connection_id(await a.connection())
            other = await connection_id(await b.connection())
        async with make() as session:
            cid = await connection_id(await session.connection())
            await execute(scratch.server_url, f"KILL {cid}")
            with pytest.raises(exc.DBAPIError) as info:
                await session.execute(text("SELECT 1"))
            assert info.value.connection_invalidated
        # Only the killed connection went; the next checkouts just work,
        # and the other pooled connection is still the same session.
        async with make() as a, make() as b:
            ids = {
                await connection_id(await a.connection()),
                await connection_id(await b.connection()),
            }
        assert cid in (victim, other)
        survivor = other if cid == victim else victim
        assert survivor in ids
        assert cid not in ids
        await settled(p, engine)
        await engine.dispose()


async def test_idle_connection_killed_between_sessions(scratch: ScratchDatabase) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=1) as p:
        engine = create_async_engine(p)
        async with engine.connect() as conn:
            cid = await connection_id(conn)
        await execute(scratch.server_url, f"KILL {cid}")
        async with asyncio.timeout(DEADLINE):
            while await session_exists(scratch, cid):
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # let the client see the socket close
        async with AsyncSession(engine) as session:
            new = await connection_id(await session.connection())
        assert new != cid
        await engine.dispose()


# ---------------------------------------------------------------------- cancellation and GC


@pytest.mark.parametrize("how", ["core", "orm"])
async def test_cancel_a_sqlalchemy_borrower_at_every_turn(
    scratch: ScratchDatabase, pool: AsyncConnectionPool, engine: Any, how: str
) -> None:
    """Cancelled after k loop turns, for every k: nothing stays checked out anywhere."""
    make = async_sessionmaker(engine)
    next_id = iter(range(1, 100_000))

    async def borrow() -> None:
        if how == "core":
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO notes VALUES (:i, 'n')"), {"i": next(next_id)})
        else:
            async with make() as session, session.begin():
                session.add(Note(id=next(next_id), body="n"))

    async def run_once(k: int) -> bool:
        finished = await cancel_after(k, borrow())
        await settled(pool, engine)
        await settle(pool)
        check_invariants(pool)
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT 1")).scalar_one() == 1
        return finished

    assert await cancel_sweep(run_once, limit=2000) >= 2
    await settled(pool, engine)
    assert engine.pool.checkedout() == 0


@pytest.mark.parametrize("how", ["core", "orm"])
async def test_every_connection_reset_at_every_turn_under_sqlalchemy(
    scratch: ScratchDatabase, how: str
) -> None:
    """Every TCP connection reset (RST) after k loop turns: the engine and the pool recover."""
    server = connect_kwargs(scratch.server_url)
    async with FaultProxy(server["host"], server["port"]) as proxy:
        async with AsyncConnectionPool(proxy.url_for(scratch.url), min_size=1, max_size=4) as p:
            engine = create_async_engine(p)
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            make = async_sessionmaker(engine)
            next_id = iter(range(1, 100_000))

            async def borrow() -> None:
                if how == "core":
                    async with engine.begin() as conn:
                        await conn.execute(
                            text("INSERT INTO notes VALUES (:i, 'n')"), {"i": next(next_id)}
                        )
                else:
                    async with make() as session, session.begin():
                        session.add(Note(id=next(next_id), body="n"))

            async def run_once(k: int) -> bool:
                finished = await fault_after(
                    k, borrow(), lambda _task: proxy.reset_all(), expected=(exc.DBAPIError,)
                )
                await asyncio.sleep(0.01)  # the resets reach the pool's sockets
                await settled(p, engine)
                await settle(p)
                check_invariants(p)
                async with engine.connect() as conn:
                    assert (await conn.exec_driver_sql("SELECT 1")).scalar_one() == 1
                return finished

            assert await cancel_sweep(run_once, limit=2000) >= 2
            await settled(p, engine)
            assert engine.pool.checkedout() == 0
            await engine.dispose()


async def test_300_orm_tasks_half_cancelled_leave_nothing_checked_out(
    scratch: ScratchDatabase,
) -> None:
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=8, timeout=30) as p:
        engine = create_async_engine(p)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        make = async_sessionmaker(engine)
        rng = random.Random(14)

        async def work(i: int) -> None:
            async with make() as session, session.begin():
                session.add(Note(id=i, body=f"n{i}"))
                await session.flush()
                await session.execute(text("SELECT SLEEP(0.01)"))

        # ids from 1: MySQL turns an inserted 0 into the next AUTO_INCREMENT value.
        tasks = [asyncio.create_task(work(i)) for i in range(1, 301)]
        for task in rng.sample(tasks, 150):
            await asyncio.sleep(rng.random() * 0.002)
            task.cancel()
        async with asyncio.timeout(DEADLINE):
            results = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [
            r for r in results if r is not None and not isinstance(r, asyncio.CancelledError)
        ]
        assert failures == []
        await settled(p, engine)
        assert engine.pool.checkedout() == 0
        stats = p.get_stats()
        assert stats.pool_in_use == 0
        assert stats.pool_size <= 8
        # The pool still serves, and every committed note is whole.
        async with make() as session:
            count = (await session.execute(text("SELECT COUNT(*) FROM notes"))).scalar_one()
        assert 0 < count <= 300
        await engine.dispose()


async def test_connection_left_to_the_garbage_collector_is_released(
    pool: AsyncConnectionPool,
) -> None:
    engine = create_async_engine(pool)
    conn = await engine.connect()
    await conn.exec_driver_sql("SELECT 1")
    assert pool.get_stats().pool_in_use == 1
    with pytest.warns(exc.SAWarning, match="garbage collector") as caught:
        del conn
        gc.collect()
        await settled(pool, engine)
        gc.collect()
    # Given back by this module on the pool's loop, not found by aiopool's own
    # garbage-collection net (which warns with a ResourceWarning).
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert pool.get_stats().returns_bad >= 1  # closed, not reused in an unknown state
    async with engine.connect() as again:
        assert (await again.exec_driver_sql("SELECT 1")).scalar_one() == 1
    await engine.dispose()


def test_import_aiopool_does_not_import_sqlalchemy() -> None:
    code = "import sys, aiopool; aiopool.AsyncConnectionPool; print('sqlalchemy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


async def test_disconnection_error_in_checkout_event_swaps_the_loan(
    scratch: ScratchDatabase,
) -> None:
    """SQLAlchemy's pessimistic-disconnect recipe: it replaces the record's connection."""
    async with AsyncConnectionPool(scratch.url, min_size=1, max_size=1) as p:
        engine = create_async_engine(p)
        async with engine.connect() as conn:
            first = await connection_id(conn)
        raised = []

        @event.listens_for(engine.sync_engine, "checkout")
        def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            if not raised:
                raised.append(True)
                raise exc.DisconnectionError("pretend the connection is gone")

        async with engine.connect() as conn:
            second = await connection_id(conn)
            assert engine.pool.checkedout() == 1
        assert raised
        assert second != first  # a new loan from aiopool, not a connection of SQLAlchemy's
        await settled(p, engine)
        stats = p.get_stats()
        assert stats.pool_size == 1
        assert stats.connections_num == 2
        await engine.dispose()


async def test_detach_closes_and_gives_the_place_back(pool: AsyncConnectionPool) -> None:
    engine = create_async_engine(pool)
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        raw.detach()
        assert engine.pool.checkedout() == 0
    await settled(pool, engine)
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT 1")).scalar_one() == 1
    await engine.dispose()


async def test_other_dialects_are_refused(pool: AsyncConnectionPool) -> None:
    with pytest.raises(exc.ArgumentError, match="mysql\\+asyncmy"):
        sqlalchemy.create_engine("mysql+pymysql://", poolclass=AiopoolPool, aiopool=pool)

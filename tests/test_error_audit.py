"""Bad inputs and misuse found by the error audit: each gets an error that names the problem.

Every test states what a user should get, and fails on the code before the
audit's fixes (see the audit report for the case each one comes from).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from asyncmy import errors as mysql_errors

from aiopool import AsyncConnectionPool, ClusterPool, PoolError, WrongEventLoop
from aiopool._config import ConnectOptions
from aiopool._ledger import NEW
from tests.support.fakes import FakeServer
from tests.support.pooltools import fake_pool

SECRET = "S3cr3t-pw"


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


# ---------------------------------------------------------------- open()


async def test_open_with_a_bad_timeout_leaves_the_pool_unopened(server: FakeServer) -> None:
    pool = fake_pool(server, min_size=1)
    with pytest.raises(ValueError, match="timeout must be >= 0"):
        await pool.open(timeout=-1)
    # Before the fix the pool was started (maintenance task, a connection
    # being opened) although open() raised: left to leak unless closed.
    assert pool._ledger.state == NEW
    assert pool._maintenance_task is None
    assert pool.get_stats().pool_size == 0


# ---------------------------------------------------------------- release()


@pytest.mark.parametrize("thing", [object(), None, "conn"])
async def test_release_of_something_that_is_not_a_connection(
    server: FakeServer, thing: Any
) -> None:
    async with fake_pool(server, min_size=1) as pool:
        with pytest.raises(PoolError, match="is not checked out from pool"):
            await pool.release(thing)
        assert pool.get_stats().pool_available == 1


def test_a_release_that_needs_the_pool_loop_from_another_loop_is_refused() -> None:
    pool = fake_pool(FakeServer(), min_size=1)
    with asyncio.Runner() as first:
        first.run(pool.open())
        conn = first.run(pool.acquire())
        # An open transaction: the return needs a rollback, in the pool's loop.
        conn.in_trans = True
        with asyncio.Runner() as second:
            with pytest.raises(WrongEventLoop, match="belongs to one loop"):
                second.run(pool.release(conn))
        assert pool.get_stats().pool_in_use == 1
        first.run(pool.release(conn))
        assert pool.get_stats().pool_available == 1
        first.run(pool.close())


def test_a_release_that_needs_the_pool_loop_from_another_thread_is_refused() -> None:
    pool = fake_pool(FakeServer(), min_size=1)
    errors: list[BaseException] = []

    async def main() -> None:
        await pool.open()
        conn = await pool.acquire()
        conn.in_trans = True  # in a transaction: the return needs the pool's loop

        def other_thread() -> None:
            try:
                asyncio.run(pool.release(conn))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        await asyncio.to_thread(thread.join)
        assert pool.get_stats().pool_in_use == 1
        await pool.release(conn)
        await pool.close()

    asyncio.run(main())
    assert len(errors) == 1 and isinstance(errors[0], WrongEventLoop), errors


# ---------------------------------------------------------------- close()


def test_close_from_another_event_loop_is_refused_not_a_hang() -> None:
    pool = fake_pool(FakeServer(), min_size=1)
    with asyncio.Runner() as first:
        first.run(pool.open())
        with asyncio.Runner() as second:
            # Before the fix: close() began closing and then waited forever
            # on futures of the first loop, the pool stuck "closing".
            with pytest.raises(WrongEventLoop, match="belongs to one loop"):
                second.run(asyncio.wait_for(pool.close(), 2))
        assert not pool.closed
        first.run(pool.close())
        assert pool.closed


# ---------------------------------------------------------------- callables and flags


@pytest.mark.parametrize(
    "name", ["configure", "check", "reset", "reconnect_failed", "connection_factory"]
)
def test_a_callback_that_is_not_callable_is_refused_at_construction(name: str) -> None:
    with pytest.raises(TypeError, match=f"{name} must be a callable"):
        AsyncConnectionPool("mysql://root@localhost/test", **{name: 5})


def test_listeners_that_are_not_a_list_are_named() -> None:
    with pytest.raises(TypeError, match="listeners must be a list"):
        AsyncConnectionPool("mysql://root@localhost/test", listeners=5)  # type: ignore[arg-type]


def test_reset_session_must_be_a_bool() -> None:
    # "no" is truthy: before the fix it silently switched the reset on.
    with pytest.raises(TypeError, match="reset_session must be True or False"):
        AsyncConnectionPool("mysql://root@localhost/test", reset_session="no")  # type: ignore[arg-type]


async def test_a_sync_configure_is_named_when_the_pool_opens(server: FakeServer) -> None:
    pool = fake_pool(server, min_size=1, configure=lambda conn: None)
    with pytest.raises(TypeError, match="configure must be an async function"):
        await pool.open(timeout=2)
    assert pool.closed


# ---------------------------------------------------------------- URL and keywords


def test_db_keyword_wins_over_the_url_database() -> None:
    # Documented: keyword arguments win over the URL.  Before the fix the
    # URL's database was used and db= silently ignored.
    options = ConnectOptions.build("mysql://u@h/test", {"db": "other"})
    assert options.kwargs["database"] == "other"
    assert "db" not in options.kwargs


def test_db_and_database_keywords_that_disagree() -> None:
    with pytest.raises(ValueError, match="db='x' and database='y' disagree"):
        AsyncConnectionPool("mysql://u@h/test", db="x", database="y")


@pytest.mark.parametrize("char", ["/", "?", "#"])
def test_an_unescaped_special_character_in_the_password_says_escape_it(char: str) -> None:
    with pytest.raises(ValueError, match="bad port") as info:
        AsyncConnectionPool(f"mysql://app:{SECRET}{char}x@h:3306/db")
    assert "escape" in str(info.value) and "%2F" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("bad", ["%zz", "%4", "100%"])
def test_a_bad_percent_escape_in_the_password_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="password has a '%' that is not a %XX escape") as info:
        AsyncConnectionPool(f"mysql://app:{SECRET}{bad}@h:3306/db")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("key", ["user", "host", "database"])
def test_connect_strings_of_the_wrong_type_are_named(key: str) -> None:
    with pytest.raises(ValueError, match=f"{key} must be a string"):
        AsyncConnectionPool("mysql://root@localhost/test", **{key: 5})


def test_an_unknown_charset_is_refused_at_construction() -> None:
    # Before the fix: AttributeError "'NoneType' object has no attribute 'encoding'" at open().
    with pytest.raises(ValueError, match="charset='bogus'"):
        AsyncConnectionPool("mysql://root@localhost/test?charset=bogus")


def test_a_negative_read_timeout_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="read_timeout must be > 0"):
        AsyncConnectionPool("mysql://root@localhost/test?read_timeout=-1")


# ---------------------------------------------------------------- ClusterPool


def test_cluster_pool_refuses_a_misspelt_keyword_at_construction() -> None:
    # AsyncConnectionPool says so at construction; ClusterPool said nothing
    # until open(), then asyncmy's "connect() got an unexpected keyword".
    with pytest.raises(TypeError, match=r"'max_sise'.*did you mean 'max_size'"):
        ClusterPool("mysql://root@h1:3306,h2:3306/test", max_sise=3)


def test_cluster_pool_refuses_a_probe_that_is_not_callable() -> None:
    with pytest.raises(TypeError, match="probe must be an async function"):
        ClusterPool("mysql://root@h1:3306,h2:3306/test", probe=5)  # type: ignore[arg-type]


# ---------------------------------------------------------------- SQLAlchemy


def test_sqlalchemy_pool_timeout_is_checked_when_the_engine_is_made() -> None:
    from aiopool import sqlalchemy as aiopool_sa

    pool = AsyncConnectionPool("mysql://root@localhost/test", min_size=0)
    with pytest.raises(ValueError, match="pool_timeout must be >= 0"):
        aiopool_sa.create_async_engine(pool, pool_timeout=-1)


def test_sqlalchemy_aiopool_argument_must_be_a_pool() -> None:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.ext.asyncio import create_async_engine

    from aiopool.sqlalchemy import AiopoolPool

    with pytest.raises(
        sa_exc.ArgumentError, match=r"aiopool= must be an aiopool\.AsyncConnectionPool"
    ):
        create_async_engine("mysql+asyncmy://", poolclass=AiopoolPool, aiopool=5)


# ---------------------------------------------------------------- deterministic connect errors


@pytest.mark.parametrize(
    ("errno", "text"),
    [
        (1064, "You have an error in your SQL syntax near 'SELEC 1'"),
        (1193, "Unknown system variable 'nope'"),
        (1231, "Variable 'sql_mode' can't be set to the value of 'NOPE'"),
    ],
)
async def test_open_fails_at_once_on_a_connect_setting_the_server_refuses(
    server: FakeServer, errno: int, text: str
) -> None:
    # init_command= or sql_mode= the server refuses fails every connection the
    # same way: open() should say so at once, as for a wrong password, rather
    # than after the whole timeout as a PoolTimeout.
    server.connect_error = mysql_errors.ProgrammingError(errno, text)
    pool = fake_pool(server, min_size=1)
    start = time.monotonic()
    with pytest.raises(mysql_errors.ProgrammingError, match=str(errno)):
        await pool.open(wait=True, timeout=3)
    assert time.monotonic() - start < 1
    assert pool.closed

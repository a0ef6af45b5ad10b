"""pytest plugin (pytest11 entry point ``aiopool``): a throwaway database and a pool for tests.

Inert until used: loading it adds the ``--aiopool-url`` option, the
``aiopool_url`` ini key and the ``aiopool`` marker, and nothing else.  A
server is found (or started) only when a test asks for one of the fixtures:

* ``aiopool_database_url`` (session): the URL of a server, from
  ``--aiopool-url``, the ``aiopool_url`` ini key, ``AIOPOOL_TEST_URL``, or
  :func:`aiopool.testing.find_database`; what was started is stopped at the end.
* ``aiopool_database`` (function): a new database with a unique name on that
  server, dropped after the test; the value is its URL.
* ``aiopool_pool`` (function, async): an open ``AsyncConnectionPool`` on
  ``aiopool_database`` (``min_size=1, max_size=5``), closed after the test;
  ``@pytest.mark.aiopool(min_size=..., max_size=..., **kwargs)`` changes its
  arguments.  It needs pytest-asyncio, and runs in the loop that
  ``asyncio_default_fixture_loop_scope`` names.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import pytest

from . import _server
from ._server import DatabaseHandle, DatabaseNotFound, find_database, redact

if TYPE_CHECKING:
    from aiopool import AsyncConnectionPool

__all__ = ["aiopool_database", "aiopool_database_url", "aiopool_pool"]

MARKER = "aiopool"
DEFAULT_POOL_ARGS: dict[str, Any] = {"min_size": 1, "max_size": 5}
# Creating or dropping a database: bounds the whole job, connecting included.
ADMIN_TIMEOUT = 30.0
# DROP DATABASE waits for metadata locks; a leaked transaction must not hang the run.
LOCK_WAIT_TIMEOUT = 10

_T = TypeVar("_T")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aiopool", "aiopool test database")
    group.addoption(
        "--aiopool-url",
        dest="aiopool_url",
        default=None,
        metavar="URL",
        help="mysql:// URL of the server for the aiopool_* fixtures "
        f"(overrides the aiopool_url ini key and {_server.ENV_URL})",
    )
    parser.addini(
        "aiopool_url",
        help=f"mysql:// URL of the server for the aiopool_* fixtures (overrides {_server.ENV_URL})",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(min_size=1, max_size=5, **kwargs): arguments for the AsyncConnectionPool "
        "of the aiopool_pool fixture",
    )


# ---------------------------------------------------------------------------- the server


@pytest.fixture(scope="session")
def aiopool_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a MySQL/MariaDB server for the whole session.

    From ``--aiopool-url``, the ``aiopool_url`` ini key, ``AIOPOOL_TEST_URL``,
    a server on 127.0.0.1:3306, a testcontainers container or a private
    ``mariadbd``; a container or server started here is stopped at the end.
    """
    try:
        handle = _find_server(request.config)
    except DatabaseNotFound as exc:
        pytest.fail(str(exc), pytrace=False)
    with handle:
        yield handle.url


def _find_server(config: pytest.Config) -> DatabaseHandle:
    # In this thread, not a worker: a private mariadbd dies with the thread that started it.
    named = config.getoption("aiopool_url")
    origin = "--aiopool-url"
    if not named:
        named, origin = config.getini("aiopool_url"), "the aiopool_url ini key"
    if not named:
        return find_database()  # AIOPOOL_TEST_URL first, then the other sources
    try:
        _in_thread(_server._login(_server._parse(named), create_db=None))
    except Exception as exc:
        raise DatabaseNotFound(
            f"{origin} {redact(named)} does not work: {_server._describe(exc)}"
        ) from exc
    return DatabaseHandle(named, "env")


# ---------------------------------------------------------------------------- a database per test


@pytest.fixture
def aiopool_database(aiopool_database_url: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test.

    Its name is ``aiopool_test_`` and 12 random hex digits; the server's user
    needs the CREATE and DROP privileges.
    """
    name = f"aiopool_test_{secrets.token_hex(6)}"
    try:
        _in_thread(_create_database(aiopool_database_url, name))
    except Exception as exc:
        pytest.fail(
            f"aiopool_database: could not create database {name} on "
            f"{redact(aiopool_database_url)}: {type(exc).__name__}: {exc}\n"
            "The user in the URL needs the CREATE and DROP privileges.",
            pytrace=False,
        )
    try:
        yield _with_database(aiopool_database_url, name)
    finally:
        try:
            _in_thread(_drop_database(aiopool_database_url, name))
        except Exception as exc:
            pytest.fail(
                f"aiopool_database: could not drop database {name}: {type(exc).__name__}: {exc}",
                pytrace=False,
            )


def _with_database(server_url: str, name: str) -> str:
    """``server_url`` with its database replaced by ``name`` (query options kept)."""
    return urlsplit(server_url)._replace(path=f"/{name}").geturl()


def _in_thread(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` in a loop of its own, in a worker thread.

    Works whether or not a loop runs here (pytest-asyncio's runners), and
    leaves this thread's event loop alone.
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="aiopool-admin") as worker:
        return worker.submit(asyncio.run, asyncio.wait_for(coro, ADMIN_TIMEOUT)).result()


@contextlib.asynccontextmanager
async def _admin_cursor(server_url: str) -> AsyncIterator[Any]:
    from aiopool import AsyncConnectionPool

    async with AsyncConnectionPool(
        server_url, min_size=1, max_size=1, autocommit=True, name="aiopool_database"
    ) as pool:
        async with pool.connection() as conn:
            async with conn.cursor() as cur:
                yield cur


async def _create_database(server_url: str, name: str) -> None:
    async with _admin_cursor(server_url) as cur:
        await cur.execute(f"CREATE DATABASE `{name}`")


async def _drop_database(server_url: str, name: str) -> None:
    from asyncmy.errors import MySQLError

    async with _admin_cursor(server_url) as cur:
        # Sessions the test left in the database could hold locks DROP waits for.
        await cur.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
            (name,),
        )
        for (thread_id,) in await cur.fetchall():
            with contextlib.suppress(MySQLError):  # gone already, or not ours to kill
                await cur.execute(f"KILL CONNECTION {int(thread_id)}")
        await cur.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT_TIMEOUT}")
        await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


# ---------------------------------------------------------------------------- a pool per test


def _pool_arguments(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Defaults, then the test's ``aiopool`` marks from the outermost (module, class) in."""
    args = dict(DEFAULT_POOL_ARGS)
    for mark in reversed(list(request.node.iter_markers(MARKER))):
        if mark.args:
            pytest.fail(
                f"{request.node.nodeid}: @pytest.mark.{MARKER} takes keyword arguments only "
                f"(min_size=..., max_size=..., other AsyncConnectionPool arguments), "
                f"got {mark.args!r}",
                pytrace=False,
            )
        args.update(mark.kwargs)
    return args


@pytest.fixture
def _aiopool_needs_asyncio(request: pytest.FixtureRequest) -> None:
    """Fail with the fix when pytest-asyncio is not there to run ``aiopool_pool``."""
    plugins = request.config.pluginmanager.get_plugins()
    if not any(getattr(p, "__name__", None) == "pytest_asyncio.plugin" for p in plugins):
        pytest.fail(
            "aiopool_pool is an async fixture and needs pytest-asyncio: "
            "pip install pytest-asyncio (and do not disable it with -p no:asyncio)",
            pytrace=False,
        )


async def _open_pool(
    request: pytest.FixtureRequest, aiopool_database: str, _aiopool_needs_asyncio: None
) -> AsyncIterator[AsyncConnectionPool]:
    """An open ``AsyncConnectionPool`` on ``aiopool_database``, closed after the test.

    ``min_size=1, max_size=5`` unless ``@pytest.mark.aiopool(...)`` says
    otherwise (its other keyword arguments go to the pool too).  Runs in the
    event loop ``asyncio_default_fixture_loop_scope`` names (by default the
    test's own).
    """
    from aiopool import AsyncConnectionPool

    async with AsyncConnectionPool(aiopool_database, **_pool_arguments(request)) as pool:
        yield pool
        # The test is over: a connection still checked out was never given back.
        # Say so, rather than let close() wait its 5 s for it and pass the test.
        in_use = pool.get_stats().pool_in_use
        if in_use:
            await pool.close(timeout=0.0)
    if in_use:
        pytest.fail(
            f"aiopool_pool: {in_use} connection(s) still checked out when the test ended "
            "(acquire() without release(): prefer 'async with pool.connection()'); "
            "the pool closed them",
            pytrace=False,
        )


def _async_fixture() -> Any:
    try:
        import pytest_asyncio
    except ImportError:  # then _aiopool_needs_asyncio fails the test, saying what to install
        return pytest.fixture(name="aiopool_pool")
    return pytest_asyncio.fixture(name="aiopool_pool")


aiopool_pool = _async_fixture()(_open_pool)

"""Passwords: never shown anywhere, and rotated without a failed request.

The leak tests give the pool a distinctive password (the canary) and collect
everything a user or an operator could see during a pool's life: every log
record of every logger at DEBUG (with tracebacks), every warning, the str,
repr and formatted traceback (causes included) of every exception, repr and
str of the pool and its stats, the pool's name.  The canary must appear
nowhere, in clear or percent-encoded.

One private ``mariadbd`` serves the module; a test that kills it restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from time import monotonic
from typing import Any
from urllib.parse import quote, quote_plus

import asyncmy
import pytest
from asyncmy import errors as mysql_errors

from aiopool import AsyncConnectionPool, PoolTimeout
from aiopool.testing import PrivateMariaDB
from tests.support.realdb import connect_kwargs, execute

CANARY = "Zq9!leak-canary-7731"
# The password a rotation moves to: a canary too.
CANARY_B = "Xk4?leak-canary-9902"
# Fragments without the characters URL encoding changes: catch every spelling.
FRAGMENTS = ("leak-canary-7731", "leak-canary-9902")

LEAKY_USER = "leaky"  # its password is CANARY
REFUSED_USER = "refused"  # its password is not CANARY: a pool holding CANARY is refused
ROTATING_USER = "rotating"

TEST_TIMEOUT = 60.0


def spellings(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), quote_plus(secret), repr(secret)[1:-1]]


SECRETS = [*spellings(CANARY), *spellings(CANARY_B), *FRAGMENTS]


# ---------------------------------------------------------------- collecting what users see


class _Capture(logging.Handler):
    def __init__(self, sink: Evidence) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        label = f"log {record.name} {record.levelname}"
        self.sink.records.append(record)
        self.sink.add(label, self.format(record))  # message, traceback and stack
        self.sink.add(f"{label} args", repr(record.args))


@dataclass
class Evidence:
    """Every text the test collected, labelled by where it came from."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)
    warnings: list[warnings.WarningMessage] = field(default_factory=list)

    def add(self, label: str, text: str) -> None:
        self.texts.append((label, text))

    def exception(self, label: str, exc: BaseException) -> None:
        self.add(f"{label}: str", str(exc))
        self.add(f"{label}: repr", repr(exc))
        # Causes and contexts too: what a traceback on the console shows.
        self.add(f"{label}: traceback", "".join(traceback.format_exception(exc)))

    def show(self, label: str, obj: object) -> None:
        self.add(f"{label}: str", str(obj))
        self.add(f"{label}: repr", repr(obj))

    def pool(self, label: str, pool: AsyncConnectionPool) -> None:
        self.show(label, pool)
        self.add(f"{label}: name", pool.name)
        self.show(f"{label}: stats", pool.get_stats())
        self.show(f"{label}: dict(stats)", dict(pool.get_stats()))

    def leaks(self) -> list[str]:
        texts = self.texts + [
            (f"warning {w.category.__name__}", str(w.message)) for w in self.warnings
        ]
        return [
            f"{label}: {text!r}"
            for label, text in texts
            if any(secret in text for secret in SECRETS)
        ]

    def assert_clean(self) -> None:
        found = self.leaks()
        assert not found, "the password leaked:\n" + "\n".join(found)

    def levels(self, logger: str) -> set[str]:
        return {r.levelname for r in self.records if r.name.startswith(logger)}


@pytest.fixture
def evidence() -> Iterator[Evidence]:
    """Collect every log record (all loggers, DEBUG and up) and warning during the test.

    Each test ends with ``evidence.assert_clean()``, after closing its pools.
    """
    sink = Evidence()
    handler = _Capture(sink)
    root = logging.getLogger()
    loggers = [root] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    # Loggers that do not propagate get the handler themselves.
    direct = [lg for lg in loggers if lg is not root and not lg.propagate]
    root.addHandler(handler)
    for lg in direct:
        lg.addHandler(handler)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sink.warnings = caught
            yield sink
    finally:
        root.removeHandler(handler)
        for lg in direct:
            lg.removeHandler(handler)
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled


# ---------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def module_server() -> Iterator[PrivateMariaDB]:
    server = PrivateMariaDB()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def server(module_server: PrivateMariaDB) -> AsyncIterator[PrivateMariaDB]:
    """The module's server, running, with the test users; restarted if a test killed it."""
    if not module_server.running:
        module_server.restart()
    await execute(
        module_server.url,
        f"CREATE OR REPLACE USER '{LEAKY_USER}'@'%' IDENTIFIED BY '{CANARY}'",
        f"GRANT ALL ON test.* TO '{LEAKY_USER}'@'%'",
        f"CREATE OR REPLACE USER '{REFUSED_USER}'@'%' IDENTIFIED BY 'not-the-canary'",
        f"GRANT ALL ON test.* TO '{REFUSED_USER}'@'%'",
    )
    yield module_server
    if not module_server.running:
        module_server.restart()


def url_for(server: PrivateMariaDB, user: str, password: str | None = None) -> str:
    secret = "" if password is None else ":" + quote(password, safe="")
    return f"mysql://{user}{secret}@{server.host}:{server.port}/test"


async def select_one(pool: AsyncConnectionPool, timeout: float = 5.0) -> None:
    async with pool.connection(timeout=timeout) as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1")
            assert await cur.fetchone() == (1,)


async def raised(label: str, evidence: Evidence, action: Awaitable[Any]) -> BaseException:
    """Await ``action``, which must raise; its exception goes into the evidence."""
    try:
        await action
    except Exception as exc:
        evidence.exception(label, exc)
        return exc
    pytest.fail(f"{label}: did not raise")


# ---------------------------------------------------------------- bad URLs


BAD_URLS = {
    "bad-port": f"mysql://u:{CANARY}@h:99999/db",
    "bad-port-encoded": f"mysql://u:{quote(CANARY, safe='')}@h:99999/db",
    "port-zero": f"mysql://u:{CANARY}@h:0/db",
    "port-not-a-number": f"mysql://u:{CANARY}@h:abc/db",
    "unknown-scheme": f"postgres://u:{CANARY}@h/db",
    "no-scheme": f"u:{CANARY}@h/db",
    "unparsable": f"mysql://u:{CANARY}@[::1/db",
    "bad-database": f"mysql://u:{CANARY}@h/a/b",
    "ssl-mode-bogus": f"mysql://u:{CANARY}@h/db?ssl_mode=BOGUS",
    "unknown-option": f"mysql://u:{CANARY}@h/db?no_such_option=1",
    "bad-number": f"mysql://u:{CANARY}@h/db?connect_timeout=soon",
    "password-in-query": f"mysql://u@h:99999/db?password={quote(CANARY, safe='')}",
    # Users paste generated passwords unencoded; '/' then ends the host part early.
    "unencoded-slash": "mysql://u:Zq9/leak-canary-7731@h/db",
}


@pytest.mark.parametrize("case", list(BAD_URLS))
def test_bad_urls_never_show_the_password(case: str, evidence: Evidence) -> None:
    with pytest.raises(ValueError) as info:
        AsyncConnectionPool(BAD_URLS[case])
    evidence.exception(case, info.value)
    evidence.assert_clean()


@pytest.mark.parametrize(
    "options",
    [
        {"ssl_mode": "BOGUS"},
        {"port": 99999},
        {"min_size": 5, "max_size": 2},
        {"connect_timeout": -1},
        {"ssl_mode": "VERIFY_CA"},
    ],
    ids=["ssl-mode", "port", "sizes", "connect-timeout", "verify-ca-without-ca"],
)
@pytest.mark.parametrize("where", ["url", "keyword", "callable"])
def test_bad_arguments_never_show_the_password(
    options: dict[str, Any], where: str, evidence: Evidence
) -> None:
    url = f"mysql://u:{CANARY}@h/db" if where == "url" else "mysql://u@h/db"
    extra: dict[str, Any] = {}
    if where == "keyword":
        extra["password"] = CANARY
    elif where == "callable":
        extra["password"] = lambda: CANARY
    with pytest.raises(ValueError) as info:
        AsyncConnectionPool(url, **options, **extra)
    evidence.exception(where, info.value)
    evidence.assert_clean()


# ---------------------------------------------------------------- a pool's whole life


async def _async_canary() -> str:
    await asyncio.sleep(0)
    return CANARY


PASSWORD_FORMS: dict[str, Callable[[PrivateMariaDB, str], tuple[str, dict[str, Any]]]] = {
    "url": lambda s, user: (url_for(s, user, CANARY), {}),
    "keyword": lambda s, user: (url_for(s, user), {"password": CANARY}),
    "callable": lambda s, user: (url_for(s, user), {"password": lambda: CANARY}),
    "async-callable": lambda s, user: (url_for(s, user), {"password": _async_canary}),
}


def make_pool(server: PrivateMariaDB, user: str, form: str, **kwargs: Any) -> AsyncConnectionPool:
    url, extra = PASSWORD_FORMS[form](server, user)
    kwargs.setdefault("min_size", 2)
    kwargs.setdefault("max_size", 3)
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("connect_timeout", 2.0)
    # Ping before every hand-out, so a dead server shows at once.
    kwargs.setdefault("check_after", 0)
    return AsyncConnectionPool(url, **kwargs, **extra)


async def each(
    pools: dict[str, AsyncConnectionPool],
    step: Callable[[str, AsyncConnectionPool], Awaitable[Any]],
) -> None:
    """Run ``step`` on every pool at once (one kind of password each)."""
    await asyncio.gather(*(step(form, pool) for form, pool in pools.items()))


def pools_for(server: PrivateMariaDB, user: str, **kwargs: Any) -> dict[str, AsyncConnectionPool]:
    return {form: make_pool(server, user, form, **kwargs) for form in PASSWORD_FORMS}


async def test_refused_password_never_shown(server: PrivateMariaDB, evidence: Evidence) -> None:
    async def refused_at_open(form: str, pool: AsyncConnectionPool) -> None:
        evidence.pool(f"{form} constructed", pool)
        error = await raised(f"{form} open", evidence, pool.open(wait=True, timeout=10))
        assert isinstance(error, mysql_errors.OperationalError), repr(error)
        assert error.args[0] == 1045, repr(error)
        evidence.pool(f"{form} after open", pool)

    async def refused_at_acquire(form: str, pool: AsyncConnectionPool) -> None:
        # Without waiting in open(), the refusal reaches the caller in PoolTimeout.
        await pool.open(wait=False)
        try:
            error = await raised(f"{form} acquire", evidence, pool.acquire(timeout=0.5))
            assert isinstance(error, PoolTimeout), repr(error)
            assert "Access denied" in str(error), str(error)
            evidence.pool(f"{form} refused", pool)
        finally:
            await pool.close()
        evidence.pool(f"{form} closed", pool)

    async with asyncio.timeout(TEST_TIMEOUT):
        await each(pools_for(server, REFUSED_USER), refused_at_open)
        await each(pools_for(server, REFUSED_USER), refused_at_acquire)
    assert "WARNING" in evidence.levels("aiopool"), "the refusal was not logged"
    evidence.assert_clean()


async def test_pool_life_never_shows_the_password(
    server: PrivateMariaDB, evidence: Evidence
) -> None:
    async def opened(form: str, pool: AsyncConnectionPool) -> None:
        evidence.pool(f"{form} constructed", pool)
        await pool.open(wait=True, timeout=10)
        await select_one(pool)
        evidence.pool(f"{form} open", pool)

    async def server_down(form: str, pool: AsyncConnectionPool) -> None:
        error = await raised(f"{form} server down", evidence, pool.acquire(timeout=0.5))
        assert isinstance(error, PoolTimeout), repr(error)
        assert "failing" in str(error), str(error)
        evidence.pool(f"{form} server down", pool)

    async def cannot_open(form: str, pool: AsyncConnectionPool) -> None:
        error = await raised(f"{form} open", evidence, pool.open(wait=True, timeout=0.5))
        assert isinstance(error, PoolTimeout), repr(error)
        evidence.pool(f"{form} never opened", pool)

    async def recovered(form: str, pool: AsyncConnectionPool) -> None:
        await select_one(pool, timeout=10.0)  # the pool reconnects by itself
        await pool.drain()
        await select_one(pool)
        evidence.pool(f"{form} drained", pool)
        await pool.close()
        evidence.pool(f"{form} closed", pool)

    async with asyncio.timeout(TEST_TIMEOUT):
        pools = pools_for(server, LEAKY_USER)
        await each(pools, opened)
        server.kill()
        await each(pools, server_down)
        await each(pools_for(server, LEAKY_USER), cannot_open)
        server.restart()
        await each(pools, recovered)
    levels = evidence.levels("aiopool")
    assert {"DEBUG", "INFO", "WARNING"} <= levels, f"too little logged to prove anything: {levels}"
    evidence.assert_clean()


# ---------------------------------------------------------------- rotating credentials


async def server_sessions(server: PrivateMariaDB, user: str) -> set[int]:
    (rows,) = await execute(
        server.url, f"SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
    )
    return {int(row[0]) for row in rows}


@dataclass
class Traffic:
    """Tasks borrowing connections in a loop; every request's outcome is recorded."""

    pool: AsyncConnectionPool
    ids: list[tuple[float, int]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    running: bool = True

    async def worker(self) -> None:
        while self.running:
            try:
                async with self.pool.connection(timeout=5.0) as conn:
                    async with conn.cursor() as cur:
                        await cur.execute("SELECT CONNECTION_ID()")
                        (cid,) = await cur.fetchone()
                    await asyncio.sleep(0.002)  # hold it a little: some are lent at drain()
                self.ids.append((monotonic(), int(cid)))
            except Exception as exc:
                self.errors.append(exc)
            await asyncio.sleep(0)


@pytest.mark.parametrize("kind", ["callable", "async-callable"])
async def test_drain_moves_every_connection_to_rotated_credentials(
    server: PrivateMariaDB, evidence: Evidence, kind: str
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        await execute(
            server.url,
            f"CREATE OR REPLACE USER '{ROTATING_USER}'@'%' IDENTIFIED BY '{CANARY}'",
            f"GRANT ALL ON test.* TO '{ROTATING_USER}'@'%'",
        )
        current = {"pw": CANARY}
        calls: list[str] = []

        def source() -> str:
            calls.append(current["pw"])
            return current["pw"]

        async def async_source() -> str:
            await asyncio.sleep(0)
            return source()

        password = source if kind == "callable" else async_source
        pool = AsyncConnectionPool(
            url_for(server, ROTATING_USER), password=password, min_size=3, max_size=3, timeout=10
        )
        async with pool:
            traffic = Traffic(pool)
            workers = [asyncio.create_task(traffic.worker()) for _ in range(5)]
            try:
                await asyncio.sleep(0.3)
                old = await server_sessions(server, ROTATING_USER)
                old |= {cid for _, cid in traffic.ids}
                assert len(old) == 3, old

                await execute(
                    server.url, f"ALTER USER '{ROTATING_USER}'@'%' IDENTIFIED BY '{CANARY_B}'"
                )
                current["pw"] = CANARY_B
                calls_before = len(calls)
                await pool.drain()
                drained_at = monotonic()
                await asyncio.sleep(0.5)
            finally:
                traffic.running = False
                await asyncio.gather(*workers)
            evidence.pool("rotated", pool)

            assert not traffic.errors, f"requests failed during the rotation: {traffic.errors!r}"
            served_after = [cid for at, cid in traffic.ids if at > drained_at]
            assert len(served_after) > 20, "too few requests after drain() to prove anything"
            assert set(served_after) - old, "no request was served by a new connection"
            # Every connection opened after the rotation asked for the new password.
            assert calls[calls_before:] and set(calls[calls_before:]) == {CANARY_B}
            assert len(calls) == pool.get_stats().connections_num, "a connection skipped it"

            # No session logged in with the old password is left on the server,
            # and min_size new ones (logged in with the new one) replace them.
            deadline = monotonic() + 5.0
            while (now := await server_sessions(server, ROTATING_USER)) & old or len(now) != 3:
                assert monotonic() < deadline, f"sessions {now}; opened before the drain: {old}"
                await asyncio.sleep(0.05)
            await select_one(pool)
        # The rotation was real: the old password no longer logs in.
        kwargs = connect_kwargs(url_for(server, ROTATING_USER, CANARY))
        with pytest.raises(mysql_errors.OperationalError) as info:
            await asyncmy.connect(**kwargs)
        assert info.value.args[0] == 1045
    evidence.assert_clean()

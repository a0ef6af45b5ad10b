"""TLS: ssl_mode, ssl_ca, ssl_cert/ssl_key and ssl=SSLContext against private servers.

Three private ``mariadbd`` serve the whole module: one with a certificate for
``localhost``/``127.0.0.1``, one with a certificate for another host name only,
and one without TLS. The shared server's configuration is never touched.
Whether a session is encrypted is asked of the server itself
(``Ssl_cipher`` is empty on a plain-text session).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from asyncmy import errors as mysql_errors

from aiopool import AsyncConnectionPool
from aiopool.testing import PrivateMariaDB
from tests.support.realdb import execute
from tests.support.tls import Pki, have_ssl, make_pki, server_tls_args

# Every test finishes well within this, or fails instead of hanging.
TEST_TIMEOUT = 30.0
# A TLS failure must be raised as itself, not as this timeout running out.
OPEN_TIMEOUT = 20.0
# Never part of a message about TLS options.
SECRET = "Zq9!tls-canary-4410"

CERT_VERIFICATION = re.compile(r"certificate verif", re.IGNORECASE)
X509_USER = "x509_user"
X509_PASSWORD = "x509-pw"


def _server(extra_args: list[str], expect_ssl: str) -> Iterator[PrivateMariaDB]:
    server = PrivateMariaDB(extra_args=extra_args)
    try:
        server.start()
        # The server must really have TLS on (or off): a typo in an option
        # would otherwise turn every "encrypted" test into a plain-text one.
        assert have_ssl(server.url) == expect_ssl, server.error_log.read_text()[-2000:]
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(pki: Pki) -> Iterator[PrivateMariaDB]:
    """TLS with a certificate for localhost and 127.0.0.1, signed by ``pki.ca``."""
    yield from _server(server_tls_args(pki), "YES")


@pytest.fixture(scope="module")
def other_host_server(pki: Pki) -> Iterator[PrivateMariaDB]:
    """TLS with a certificate for db.example.invalid only, signed by ``pki.ca``."""
    yield from _server(server_tls_args(pki, other_host=True), "YES")


@pytest.fixture(scope="module")
def plain_server() -> Iterator[PrivateMariaDB]:
    """No TLS at all (MariaDB 10.11 enables none unless told to)."""
    yield from _server([], "DISABLED")


def make_pool(url: str, **kwargs: Any) -> AsyncConnectionPool:
    kwargs.setdefault("min_size", 1)
    kwargs.setdefault("max_size", 3)
    kwargs.setdefault("timeout", 10.0)
    kwargs.setdefault("connect_timeout", 5.0)
    return AsyncConnectionPool(url, **kwargs)


async def scalar(conn: Any, sql: str) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
        return row[-1]


async def cipher(conn: Any) -> str:
    """The session's TLS cipher as the server sees it; empty in plain text."""
    return str(await scalar(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'"))


async def ciphers_of_every_connection(pool: AsyncConnectionPool) -> dict[int, str]:
    """Borrow every connection the pool may hold at once; each one's id and cipher."""
    conns = [await pool.acquire(timeout=10) for _ in range(pool.max_size)]
    try:
        return {await scalar(c, "SELECT CONNECTION_ID()"): await cipher(c) for c in conns}
    finally:
        for conn in conns:
            await pool.release(conn)


async def open_error(pool: AsyncConnectionPool) -> BaseException:
    """What ``open(wait=True)`` raises; it must fail at once, not wait out its timeout."""
    try:
        await pool.open(wait=True, timeout=OPEN_TIMEOUT)
    except Exception as exc:
        error: BaseException = exc
    else:
        await pool.close()
        pytest.fail("open() succeeded where it had to fail")
    # PoolTimeout is a TimeoutError: this is what rules out "waited, then timed out".
    assert not isinstance(error, TimeoutError), f"a bare timeout, not the cause: {error!r}"
    assert pool.closed
    assert pool.get_stats().connections_num == 0, "no connection may have been made"
    return error


async def create_x509_user(server: PrivateMariaDB) -> None:
    await execute(
        server.url,
        f"CREATE OR REPLACE USER '{X509_USER}'@'%' IDENTIFIED BY '{X509_PASSWORD}' REQUIRE X509",
        f"GRANT ALL ON test.* TO '{X509_USER}'@'%'",
    )


def x509_url(server: PrivateMariaDB) -> str:
    return f"mysql://{X509_USER}:{X509_PASSWORD}@{server.host}:{server.port}/test"


# ---------------------------------------------------------------- encryption on


@pytest.mark.parametrize("mode", ["REQUIRED", "required", "Required"])
async def test_required_encrypts_every_pooled_connection(
    tls_server: PrivateMariaDB, mode: str
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        async with make_pool(tls_server.url, min_size=3, max_size=3, ssl_mode=mode) as pool:
            before = await ciphers_of_every_connection(pool)
            assert len(before) == 3
            assert all(before.values()), f"a plain-text connection in the pool: {before}"
            # The replacements after a drain are encrypted too.
            await pool.drain()
            after = await ciphers_of_every_connection(pool)
            assert not set(before) & set(after), "drain() kept an old connection"
            assert all(after.values()), f"a plain-text connection after drain: {after}"


async def test_verify_ca_with_the_right_ca(tls_server: PrivateMariaDB, pki: Pki) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        pool = make_pool(tls_server.url, ssl_mode="VERIFY_CA", ssl_ca=str(pki.ca))
        async with pool:
            async with pool.connection() as conn:
                assert await cipher(conn)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_verify_identity_with_a_matching_certificate(
    tls_server: PrivateMariaDB, pki: Pki, host: str
) -> None:
    # The certificate names both: an IP address SAN and a DNS SAN.
    async with asyncio.timeout(TEST_TIMEOUT):
        pool = make_pool(tls_server.url, host=host, ssl_mode="verify_identity", ssl_ca=str(pki.ca))
        async with pool:
            async with pool.connection() as conn:
                assert await cipher(conn)


async def test_verify_ca_with_the_wrong_ca_fails_open(tls_server: PrivateMariaDB, pki: Pki) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        pool = make_pool(tls_server.url, ssl_mode="VERIFY_CA", ssl_ca=str(pki.wrong_ca))
        error = await open_error(pool)
        assert CERT_VERIFICATION.search(str(error)), repr(error)


async def test_verify_identity_against_another_hosts_certificate_fails(
    other_host_server: PrivateMariaDB, pki: Pki
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        pool = make_pool(other_host_server.url, ssl_mode="VERIFY_IDENTITY", ssl_ca=str(pki.ca))
        error = await open_error(pool)
        assert CERT_VERIFICATION.search(str(error)), repr(error)
        assert re.search(r"mismatch|not valid for", str(error)), repr(error)


async def test_verify_ca_accepts_another_hosts_certificate(
    other_host_server: PrivateMariaDB, pki: Pki
) -> None:
    # VERIFY_CA checks the chain, not the name.
    async with asyncio.timeout(TEST_TIMEOUT):
        pool = make_pool(other_host_server.url, ssl_mode="VERIFY_CA", ssl_ca=str(pki.ca))
        async with pool:
            async with pool.connection() as conn:
                assert await cipher(conn)


async def test_ssl_context_passed_directly(tls_server: PrivateMariaDB, pki: Pki) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        context = ssl.create_default_context(cafile=str(pki.ca))
        async with make_pool(tls_server.url, min_size=2, ssl=context) as pool:
            assert all((await ciphers_of_every_connection(pool)).values())


async def test_ssl_context_with_the_wrong_ca_fails_open(
    tls_server: PrivateMariaDB, pki: Pki
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        context = ssl.create_default_context(cafile=str(pki.wrong_ca))
        error = await open_error(make_pool(tls_server.url, ssl=context))
        assert CERT_VERIFICATION.search(str(error)), repr(error)


async def test_url_options(tls_server: PrivateMariaDB, pki: Pki) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        query = urlencode({"ssl_mode": "VERIFY_CA", "ssl_ca": str(pki.ca)})
        async with make_pool(f"{tls_server.url}?{query}") as pool:
            async with pool.connection() as conn:
                assert await cipher(conn)


# ---------------------------------------------------------------- client certificates


async def test_x509_user_connects_with_the_client_certificate(
    tls_server: PrivateMariaDB, pki: Pki
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        await create_x509_user(tls_server)
        pool = make_pool(
            x509_url(tls_server),
            ssl_mode="VERIFY_IDENTITY",
            ssl_ca=str(pki.ca),
            ssl_cert=str(pki.client_cert),
            ssl_key=str(pki.client_key),
        )
        async with pool:
            async with pool.connection() as conn:
                assert await scalar(conn, "SELECT CURRENT_USER()") == f"{X509_USER}@%"
                assert await cipher(conn)


async def test_x509_user_client_certificate_in_the_url(
    tls_server: PrivateMariaDB, pki: Pki
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        await create_x509_user(tls_server)
        query = urlencode(
            {
                "ssl_mode": "VERIFY_CA",
                "ssl_ca": str(pki.ca),
                "ssl_cert": str(pki.client_cert),
                "ssl_key": str(pki.client_key),
            }
        )
        async with make_pool(f"{x509_url(tls_server)}?{query}") as pool:
            async with pool.connection() as conn:
                assert await scalar(conn, "SELECT CURRENT_USER()") == f"{X509_USER}@%"


async def test_x509_user_is_refused_without_the_client_certificate(
    tls_server: PrivateMariaDB, pki: Pki
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        await create_x509_user(tls_server)
        pool = make_pool(x509_url(tls_server), ssl_mode="VERIFY_CA", ssl_ca=str(pki.ca))
        error = await open_error(pool)
        # The server's own refusal, raised as it is.
        assert isinstance(error, mysql_errors.OperationalError), repr(error)
        assert error.args[0] == 1045, repr(error)
        assert X509_PASSWORD not in str(error)


# ---------------------------------------------------------------- servers without TLS


async def test_required_against_a_server_without_tls_fails(
    plain_server: PrivateMariaDB,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        error = await open_error(make_pool(plain_server.url, ssl_mode="REQUIRED"))
        assert re.search(r"TLS|SSL", str(error)), repr(error)


async def test_preferred_falls_back_to_plain_text(plain_server: PrivateMariaDB) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        async with make_pool(plain_server.url, min_size=2, ssl_mode="PREFERRED") as pool:
            assert set((await ciphers_of_every_connection(pool)).values()) == {""}


async def test_preferred_encrypts_when_the_server_can(tls_server: PrivateMariaDB) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        async with make_pool(tls_server.url, min_size=2, ssl_mode="preferred") as pool:
            assert all((await ciphers_of_every_connection(pool)).values())


async def test_disabled_never_encrypts(tls_server: PrivateMariaDB) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        async with make_pool(tls_server.url, min_size=2, ssl_mode="DISABLED") as pool:
            assert set((await ciphers_of_every_connection(pool)).values()) == {""}


# ---------------------------------------------------------------- bad arguments


def _bad_arguments(pki: Pki, tmp: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Keyword sets that must fail at construction, and the option each must name."""
    garbage = tmp / "not-a-ca.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    missing = str(tmp / "no-such-ca.pem")
    return {
        "mode-bogus": ({"ssl_mode": "BOGUS"}, "ssl_mode"),
        "mode-empty": ({"ssl_mode": ""}, "ssl_mode"),
        "ca-missing": ({"ssl_mode": "VERIFY_CA", "ssl_ca": missing}, "ssl_ca"),
        "ca-missing-preferred": ({"ssl_ca": missing}, "ssl_ca"),
        "ca-garbage": ({"ssl_mode": "VERIFY_CA", "ssl_ca": str(garbage)}, "ssl_ca"),
        "cert-without-key": (
            {"ssl_mode": "REQUIRED", "ssl_cert": str(pki.client_cert)},
            "ssl_key",
        ),
        "key-without-cert": (
            {"ssl_mode": "REQUIRED", "ssl_key": str(pki.client_key)},
            "ssl_cert",
        ),
        "verify-ca-without-ca": ({"ssl_mode": "VERIFY_CA"}, "ssl_ca"),
    }


BAD_CASES = [
    "mode-bogus",
    "mode-empty",
    "ca-missing",
    "ca-missing-preferred",
    "ca-garbage",
    "cert-without-key",
    "key-without-cert",
    "verify-ca-without-ca",
]


@pytest.mark.parametrize("case", BAD_CASES)
@pytest.mark.parametrize("form", ["keyword", "url"])
def test_bad_tls_options_fail_at_construction(
    pki: Pki, tmp_path: Path, case: str, form: str
) -> None:
    options, named = _bad_arguments(pki, tmp_path)[case]
    base = f"mysql://someone:{SECRET}@127.0.0.1:3306/test"
    with pytest.raises(ValueError) as info:
        if form == "keyword":
            AsyncConnectionPool(base, **options)
        else:
            AsyncConnectionPool(f"{base}?{urlencode(options)}")
    message = str(info.value)
    assert named in message, message
    assert SECRET not in message and "tls-canary" not in message, message


@pytest.mark.parametrize(
    "mode", ["disabled", "Preferred", "required", "Verify_CA", "verify_identity"]
)
def test_ssl_mode_is_case_insensitive(pki: Pki, mode: str) -> None:
    options = {"ssl_mode": mode}
    if mode.upper().startswith("VERIFY"):
        options["ssl_ca"] = str(pki.ca)
    pool = AsyncConnectionPool("mysql://u@127.0.0.1/test", **options)
    assert pool.closed  # constructed; nothing opened
    AsyncConnectionPool(f"mysql://u@127.0.0.1/test?{urlencode(options)}")

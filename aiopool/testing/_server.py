"""Find a MySQL/MariaDB server for the tests, or start one.

Tried in order, first that works wins:

1. ``AIOPOOL_TEST_URL`` (an explicit choice: if it does not work, we stop there);
2. a server on 127.0.0.1:3306 taking root with an empty password
   (skipped when ``AIOPOOL_TEST_SKIP_LOCAL=1``);
3. ``mariadb:11.4`` through testcontainers, when a Docker engine answers;
4. a private ``mariadbd`` from the local binary (:class:`PrivateMariaDB`).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import warnings
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import unquote, urlsplit

from ._mariadbd import PrivateMariaDB, ServerError

__all__ = ["DatabaseHandle", "DatabaseNotFound", "find_database"]

_log = logging.getLogger("aiopool.testing")

ENV_URL = "AIOPOOL_TEST_URL"
ENV_SKIP_LOCAL = "AIOPOOL_TEST_SKIP_LOCAL"
LOCAL_URL = "mysql://root@127.0.0.1:3306/test"
CONTAINER_IMAGE = "mariadb:11.4"
PROBE_TIMEOUT = 3.0
DOCKER_TIMEOUT = 2.0
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

Source = Literal["env", "local", "testcontainers", "private"]

_HELP = """\
Do one of:
  - set AIOPOOL_TEST_URL=mysql://user:pass@host:port/db
  - start MariaDB or MySQL on 127.0.0.1:3306 with root and an empty password
  - start a Docker engine (testcontainers then runs mariadb:11.4)
  - install the mariadb-server package (apt-get install mariadb-server),
    so a private server can be started from /usr/sbin/mariadbd"""


class DatabaseNotFound(RuntimeError):
    """No server could be found or started; the message says what was tried and why."""

    __module__ = "aiopool.testing"


class _Unavailable(Exception):
    """One source did not work; the message is the reason."""


class DatabaseHandle:
    """A server to test against: ``url``, where it came from, and ``close()``.

    ``close()`` stops whatever :func:`find_database` started (a container or a
    private server) and does nothing for a server that was already there.
    ``tried`` lists the sources passed over before this one, with the reason.
    """

    def __init__(
        self,
        url: str,
        source: Source,
        *,
        tried: Sequence[str] = (),
        closer: Callable[[], None] | None = None,
    ) -> None:
        self._url = url
        self._source: Source = source
        self._tried = tuple(tried)
        self._closer = closer

    @property
    def url(self) -> str:
        """A ``mysql://user[:password]@host:port/db`` URL."""
        return self._url

    @property
    def source(self) -> Source:
        """``"env"``, ``"local"``, ``"testcontainers"`` or ``"private"``."""
        return self._source

    @property
    def tried(self) -> tuple[str, ...]:
        """``"source: reason"`` for each source passed over before this one."""
        return self._tried

    def close(self) -> None:
        """Stop what was started for this handle; idempotent."""
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DatabaseHandle {self._source} {redact(self._url)}>"


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    user: str
    password: str
    db: str | None


def _parse(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("mysql", "mariadb"):
        raise ValueError(f"expected a mysql:// URL, got scheme {parts.scheme!r}")
    try:
        port = parts.port or 3306
    except ValueError as exc:  # a port out of range or not a number
        raise ValueError(f"bad port in URL: {exc}") from None
    return _Target(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        db=unquote(parts.path.lstrip("/")) or None,
    )


def redact(url: str) -> str:
    """The URL with its password replaced by ``***``, safe for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{hostport}").geturl()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {PROBE_TIMEOUT:.0f} s"
    return f"{type(exc).__name__}: {exc}"


async def _login(target: _Target, *, create_db: str | None) -> None:
    """Log in, ``SELECT 1`` and optionally create a database; raise on any failure."""
    import asyncmy  # the driver is heavy: only pay for it when probing

    conn = await asyncmy.connect(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        db=target.db,
        connect_timeout=PROBE_TIMEOUT,
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1")
            # Only when missing: IF NOT EXISTS on an existing db makes asyncmy log a warning.
            if create_db is not None and not await cur.execute(
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (create_db,)
            ):
                await cur.execute(f"CREATE DATABASE IF NOT EXISTS `{create_db}`")
    finally:
        await conn.ensure_closed()


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run a probe to completion, bounded, whether or not a loop already runs here."""
    import asyncio  # kept out of the package import, which pytest plugins pay for
    import concurrent.futures

    bounded = asyncio.wait_for(coro, PROBE_TIMEOUT + 1)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(bounded)
        return
    # Called from async code (an async fixture): a loop of our own, in a thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, bounded).result()


def _from_env(url: str) -> DatabaseHandle:
    try:
        _run(_login(_parse(url), create_db=None))
    except Exception as exc:
        raise DatabaseNotFound(
            f"{ENV_URL}={redact(url)} does not work: {_describe(exc)}\n"
            f"Fix or unset {ENV_URL}.\n{_HELP}"
        ) from exc
    return DatabaseHandle(url, "env")


def _try_local(tried: list[str]) -> DatabaseHandle:
    if os.environ.get(ENV_SKIP_LOCAL, "").strip().lower() in ("1", "true", "yes", "on"):
        raise _Unavailable(f"skipped ({ENV_SKIP_LOCAL} is set)")
    target = _parse(LOCAL_URL)
    try:
        # Connect without a db: it may not exist yet, and creating it is our job.
        _run(_login(_Target(target.host, target.port, "root", "", None), create_db="test"))
    except Exception as exc:
        raise _Unavailable(
            f"root with an empty password on 127.0.0.1:3306: {_describe(exc)}"
        ) from exc
    return DatabaseHandle(LOCAL_URL, "local", tried=tried)


def _docker_unreachable() -> str | None:
    """Why no Docker engine can be used, or ``None`` when one answers a ping."""
    host = os.environ.get("DOCKER_HOST", "").strip() or DEFAULT_DOCKER_HOST
    if host.startswith("unix://"):
        return _ping_unix(host.removeprefix("unix://"))
    return _ping_sdk()


def _ping_unix(path: str) -> str | None:
    # By hand: the Docker SDK leaks its socket when the engine is missing.
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(DOCKER_TIMEOUT)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status = sock.recv(64).split(b"\r\n", 1)[0]
    except OSError as exc:
        return f"no Docker engine at unix://{path} ({exc.strerror or exc})"
    if not (status.startswith(b"HTTP/1.") and b" 200" in status):
        return f"unix://{path} answered {status!r} to a Docker ping"
    return None


def _ping_sdk() -> str | None:
    try:
        # Through importlib: the SDK ships no types, and it is only pinged here.
        docker = importlib.import_module("docker")
    except ImportError:
        return "the docker package is not installed (pip install 'testcontainers[mysql]')"
    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"no Docker engine reachable ({type(exc).__name__}: {exc})"
    return None


def _container_class() -> Any:
    try:
        from testcontainers.community.mysql import MySqlContainer
    except ImportError:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                from testcontainers.mysql import MySqlContainer
        except ImportError:
            raise _Unavailable(
                "testcontainers is not installed (pip install 'testcontainers[mysql]')"
            ) from None
    return MySqlContainer


def _try_testcontainers(tried: list[str]) -> DatabaseHandle:
    reason = _docker_unreachable()
    if reason is not None:
        raise _Unavailable(reason)
    # root, so that fault tests may KILL sessions and read server variables.
    container = _container_class()(CONTAINER_IMAGE, username="root", password="test", dbname="test")
    try:
        container.start()
        url = str(container.get_connection_url())
    except Exception as exc:
        try:
            container.stop()
        except Exception:  # the start error is the one worth reporting
            _log.debug("stopping a container that failed to start", exc_info=True)
        raise _Unavailable(f"starting {CONTAINER_IMAGE} failed: {_describe(exc)}") from exc
    return DatabaseHandle(url, "testcontainers", tried=tried, closer=container.stop)


def _try_private(tried: list[str]) -> DatabaseHandle:
    server = PrivateMariaDB()
    try:
        server.start()
    except (ServerError, OSError) as exc:
        server.stop()
        raise _Unavailable(str(exc)) from exc
    return DatabaseHandle(server.url, "private", tried=tried, closer=server.stop)


def find_database(*, allow_private: bool = True) -> DatabaseHandle:
    """Find a server to test against, or start one; see the module docstring for the order.

    Raises :class:`DatabaseNotFound`, listing each source and why it failed.
    """
    return _find(allow_private=allow_private, allow_containers=True)


def _find(*, allow_private: bool, allow_containers: bool) -> DatabaseHandle:
    env_url = os.environ.get(ENV_URL, "").strip()
    if env_url:
        return _from_env(env_url)
    tried = [f"env: {ENV_URL} is not set"]
    steps: list[tuple[str, Callable[[list[str]], DatabaseHandle], bool]] = [
        ("local", _try_local, True),
        ("testcontainers", _try_testcontainers, allow_containers),
        ("private", _try_private, allow_private),
    ]
    for name, step, allowed in steps:
        if not allowed:
            tried.append(f"{name}: not tried (a server that stops with this process was refused)")
            continue
        try:
            handle = step(list(tried))
        except _Unavailable as exc:
            tried.append(f"{name}: {exc}")
            _log.info("test database: %s unavailable: %s", name, exc)
            continue
        _log.info("test database: %s at %s", name, redact(handle.url))
        return handle
    lines = "\n".join(f"  - {line}" for line in tried)
    raise DatabaseNotFound(f"No MySQL/MariaDB server for the tests. Tried:\n{lines}\n{_HELP}")

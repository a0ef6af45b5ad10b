"""aiopool.testing against real servers: the private mariadbd, find_database and the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncmy
import pytest

from aiopool.testing import (
    DatabaseNotFound,
    PrivateMariaDB,
    ServerError,
    find_database,
    redact,
)
from aiopool.testing._server import _ping_unix

# Points the Docker SDK at nothing, so the testcontainers step fails fast everywhere.
NO_DOCKER = "unix:///nonexistent/aiopool-test/docker.sock"
# The environment that leaves a child process only the private server.
PRIVATE_ONLY = {"AIOPOOL_TEST_SKIP_LOCAL": "1", "DOCKER_HOST": NO_DOCKER, "AIOPOOL_TEST_URL": ""}


async def connect(url: str, **kwargs: Any) -> Any:
    parts = urlsplit(url)
    return await asyncmy.connect(
        host=parts.hostname,
        port=parts.port,
        user=parts.username or "root",
        password=parts.password or "",
        db=parts.path.lstrip("/") or None,
        connect_timeout=3,
        **kwargs,
    )


async def scalar(url: str, sql: str) -> Any:
    conn = await connect(url)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
            row = await cur.fetchone()
            return row[0]
    finally:
        await conn.ensure_closed()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No env URL, no local server, no Docker: only the private server is left."""
    monkeypatch.delenv("AIOPOOL_TEST_URL", raising=False)
    monkeypatch.setenv("AIOPOOL_TEST_SKIP_LOCAL", "1")
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    return monkeypatch


async def test_database_url_fixture_answers(database_url: str) -> None:
    assert database_url.startswith("mysql://")
    assert await scalar(database_url, "SELECT 1") == 1
    assert await scalar(database_url, "SELECT DATABASE()") == "test"


async def test_private_server_accepts_connections(private_server: PrivateMariaDB) -> None:
    server = private_server
    assert server.running
    assert server.pid is not None
    assert server.host == "127.0.0.1"
    assert server.url == f"mysql://root@127.0.0.1:{server.port}/test"
    assert server.datadir.is_dir()
    assert await scalar(server.url, "SELECT CURRENT_USER()") == "root@127.0.0.1"
    assert await scalar(server.url, "SELECT DATABASE()") == "test"


async def test_kill_breaks_connections(private_server: PrivateMariaDB) -> None:
    conn = await connect(private_server.url)
    try:
        private_server.kill()
        assert not private_server.running
        assert private_server.pid is None
        with pytest.raises(asyncmy.errors.OperationalError):
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
    finally:
        conn.close()
    with pytest.raises(asyncmy.errors.OperationalError):
        await connect(private_server.url)


async def test_restart_after_kill_keeps_port_and_data(private_server: PrivateMariaDB) -> None:
    server = private_server
    conn = await connect(server.url, autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute("CREATE TABLE kept (id INT PRIMARY KEY)")
            await cur.execute("INSERT INTO kept VALUES (1), (2)")
    finally:
        await conn.ensure_closed()
    port, url = server.port, server.url
    server.kill()
    server.restart()
    assert server.running
    assert (server.port, server.url) == (port, url)
    assert await scalar(url, "SELECT COUNT(*) FROM kept") == 2
    server.restart()  # graceful this time
    assert await scalar(url, "SELECT SUM(id) FROM kept") == 3


async def test_extra_args_and_fixed_port() -> None:
    port = closed_port()
    with PrivateMariaDB(extra_args=["--wait-timeout=2"], port=port) as server:
        assert server.port == port
        assert await scalar(server.url, "SELECT @@wait_timeout") == 2


def test_stop_removes_everything_and_is_idempotent() -> None:
    server = PrivateMariaDB()
    with pytest.raises(ServerError):
        server.url  # noqa: B018 - the property itself must refuse
    with server:
        datadir, pid = server.datadir, server.pid
        assert pid is not None
    assert not server.running
    assert not datadir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()
    server.kill()


def test_bad_server_option_shows_the_log() -> None:
    server = PrivateMariaDB(extra_args=["--no-such-option-for-aiopool"])
    try:
        with pytest.raises(ServerError, match="no-such-option-for-aiopool"):
            server.start()
    finally:
        server.stop()


async def test_find_database_falls_through_to_private(no_env: pytest.MonkeyPatch) -> None:
    handle = find_database()
    with handle:
        assert handle.source == "private"
        assert await scalar(handle.url, "SELECT 1") == 1
        reasons = dict(line.split(": ", 1) for line in handle.tried)
        assert "AIOPOOL_TEST_SKIP_LOCAL" in reasons["local"]
        assert "Docker" in reasons["testcontainers"]
    port = urlsplit(handle.url).port
    assert port is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    handle.close()


def test_nothing_found_says_what_was_tried_and_what_to_do(no_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatabaseNotFound) as info:
        find_database(allow_private=False)
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    for needle in ("local:", "testcontainers:", "private:", "Docker", "mariadb-server"):
        assert needle in message
    assert "AIOPOOL_TEST_URL=mysql://user:pass@host:port/db" in message


def test_bogus_env_url_names_it_without_password(monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("AIOPOOL_TEST_URL", f"mysql://root:s3cret@127.0.0.1:{port}/test")
    with pytest.raises(DatabaseNotFound) as info:
        find_database()
    message = str(info.value)
    assert f"mysql://root:***@127.0.0.1:{port}/test" in message
    assert "s3cret" not in message
    assert "AIOPOOL_TEST_URL" in message


def test_env_url_is_used_as_given(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOPOOL_TEST_URL", database_url)
    with find_database() as handle:
        assert (handle.source, handle.url) == ("env", database_url)


def test_redact() -> None:
    assert redact("mysql://u:p%40ss@h:1/db") == "mysql://u:***@h:1/db"
    assert redact("mysql://u@h:1/db") == "mysql://u@h:1/db"


def test_docker_ping_by_hand(tmp_path: Path) -> None:
    path = str(tmp_path / "docker.sock")
    assert "No such file" in (_ping_unix(path) or "")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(2)

        def answer(replies: list[bytes]) -> None:
            for reply in replies:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(1024)
                    conn.sendall(reply)

        replies = [b"HTTP/1.1 200 OK\r\n\r\nOK", b"SSH-2.0-nope\r\n"]
        thread = threading.Thread(target=answer, args=(replies,), daemon=True)
        thread.start()
        assert _ping_unix(path) is None
        assert "answered" in (_ping_unix(path) or "")
        thread.join(5)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiopool.testing", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_run_exports_url_and_returns_exit_code() -> None:
    child = "import os, sys; print(os.environ['AIOPOOL_URL']); sys.exit(7)"
    done = run_cli("run", "--", sys.executable, "-c", child, env=PRIVATE_ONLY)
    assert done.returncode == 7, done.stderr
    url = done.stdout.strip()
    assert url.startswith("mysql://root@127.0.0.1:")
    assert "private" in done.stderr
    port = urlsplit(url).port
    assert port is not None
    with pytest.raises(OSError):  # the CLI stopped the server it started
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_cli_url_refuses_throwaway_servers() -> None:
    done = run_cli("url", env=PRIVATE_ONLY)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "run -- CMD" in done.stderr

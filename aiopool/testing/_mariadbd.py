"""A private, throwaway ``mariadbd`` for tests that need to break the server.

The local MariaDB (or a container) is shared with other tests; killing it or
changing its settings would hurt them. A private server runs from the local
binary in a temp dir, on its own loopback port, and can be killed, restarted
and configured per test.

Bootstrapping a datadir (``mariadb-install-db``) costs most of a second, so it
happens once per process into a template that each server copies.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["PrivateMariaDB", "ServerError"]

_log = logging.getLogger("aiopool.testing")

HOST = "127.0.0.1"

# Packages put the server in sbin, which a non-root PATH often lacks.
_EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/mysql/bin")

# Shared by bootstrap and server: InnoDB settings must agree between the two.
_SMALL = (
    "--skip-name-resolve",
    "--skip-log-bin",
    "--loose-performance-schema=OFF",
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    # io_uring/libaio can be refused in sandboxes (memlock limits); speed is moot here.
    "--innodb-use-native-aio=0",
)

_SERVER_ONLY = (
    "--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
    # The redo log still reaches the OS at each commit, so a SIGKILL loses nothing.
    "--innodb-flush-log-at-trx-commit=2",
    "--loose-innodb-buffer-pool-dump-at-shutdown=OFF",
    "--loose-innodb-buffer-pool-load-at-startup=OFF",
)

# Anonymous and hostname accounts shadow or warn about ''@'%'-style test users.
_BOOTSTRAP_SQL = """\
DELETE FROM mysql.global_priv WHERE User = '' OR Host NOT IN ('localhost', '127.0.0.1', '::1');
DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1');
CREATE DATABASE IF NOT EXISTS test;
"""

_BIND_FAILED = ("Bind on TCP/IP port", "Address already in use")


class ServerError(RuntimeError):
    """A private server could not be found, bootstrapped, started or stopped."""

    __module__ = "aiopool.testing"


def _which(*names: str) -> Path | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_DIRS])
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return Path(found)
    return None


def _binaries() -> tuple[Path, Path]:
    server = _which("mariadbd", "mysqld")
    install = _which("mariadb-install-db", "mysql_install_db")
    if server is None or install is None:
        missing = "mariadbd" if server is None else "mariadb-install-db"
        raise ServerError(
            f"{missing} not found on PATH or in {', '.join(_EXTRA_DIRS)} "
            "(install the mariadb-server package)"
        )
    return server, install


def _user_args() -> list[str]:
    # mariadbd refuses to run as root unless told to; as anyone else it needs nothing.
    return ["--user=root"] if os.geteuid() == 0 else []


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _greets(port: int) -> bool:
    """True once the server sends a protocol-10 handshake (it is really serving)."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            head = sock.recv(5)
    except OSError:
        return False
    return len(head) == 5 and head[4] == 10


class _Template:
    """One bootstrapped datadir per process, copied by every server."""

    _lock = threading.Lock()
    _datadir: Path | None = None

    @classmethod
    def datadir(cls, install_db: Path, timeout: float) -> Path:
        with cls._lock:
            if cls._datadir is None or not cls._datadir.is_dir():
                cls._datadir = cls._bootstrap(install_db, timeout)
            return cls._datadir

    @staticmethod
    def _bootstrap(install_db: Path, timeout: float) -> Path:
        root = Path(tempfile.mkdtemp(prefix="aiopool-mariadb-template-"))
        atexit.register(shutil.rmtree, root, True)
        sql, log = root / "bootstrap.sql", root / "bootstrap.log"
        sql.write_text(_BOOTSTRAP_SQL)
        cmd = [
            str(install_db), "--no-defaults", f"--datadir={root / 'data'}",
            "--auth-root-authentication-method=normal", f"--extra-file={sql}",
            *_user_args(), *_SMALL,
        ]  # fmt: skip
        started = time.monotonic()
        with log.open("wb") as out:
            try:
                done = subprocess.run(cmd, stdout=out, stderr=out, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise ServerError(
                    f"mariadb-install-db took over {timeout:.0f} s:\n{_tail(log)}"
                ) from None
        if done.returncode != 0:
            raise ServerError(f"mariadb-install-db exited {done.returncode}:\n{_tail(log)}")
        _log.debug("bootstrapped template datadir in %.2f s", time.monotonic() - started)
        return root / "data"


def _parent_death_kill() -> Callable[[], None] | None:
    """A preexec hook so the server dies with us even if atexit never runs (SIGKILL)."""
    # PR_SET_PDEATHSIG fires when the forking *thread* exits: only safe from the main one.
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def hook() -> None:
        libc.prctl(1, signal.SIGKILL)  # 1 == PR_SET_PDEATHSIG

    return hook


class PrivateMariaDB:
    """A ``mariadbd`` of our own on 127.0.0.1, root with an empty password, db ``test``.

    ``extra_args`` are passed to the server (not to the bootstrap), e.g.
    ``["--wait-timeout=2"]``. ``port=None`` picks a free port on first start;
    ``restart()`` always reuses the port and datadir. ``stop()`` removes the
    temp dir; ``kill()`` leaves it for ``restart()``. Every wait is bounded.
    """

    def __init__(
        self,
        *,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 20.0,
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port}")
        self._extra_args = list(extra_args)
        self._fixed_port = port
        self._port = port
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """Always ``127.0.0.1``: the server binds loopback only."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port; known once the server has been started."""
        if self._port is None:
            raise ServerError("the private server has not been started: no port yet")
        return self._port

    @property
    def url(self) -> str:
        """``mysql://root@127.0.0.1:PORT/test``."""
        return f"mysql://root@{HOST}:{self.port}/test"

    @property
    def datadir(self) -> Path:
        """The server's data directory (inside the temp dir)."""
        if self._dir is None:
            raise ServerError("the private server has no datadir: not started, or stopped")
        return self._dir / "data"

    @property
    def error_log(self) -> Path:
        """The server's error log, the first place to look when it misbehaves."""
        if self._dir is None:
            raise ServerError("the private server has no log: not started, or stopped")
        return self._dir / "error.log"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else ``None``."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Bootstrap a datadir (from the per-process template) and start the server."""
        if self.running:
            return self
        server, install_db = _binaries()
        if self._dir is None:
            template = _Template.datadir(install_db, self._start_timeout)
            self._dir = Path(tempfile.mkdtemp(prefix="aiopool-mariadb-"))
            _live.add(self)
            shutil.copytree(template, self._dir / "data")
        # A port picked at random can be taken before mariadbd binds it: pick again.
        for attempt in range(3):
            if self._fixed_port is None and (self._port is None or attempt > 0):
                self._port = _free_port()
            try:
                return self._launch(server)
            except ServerError as exc:
                if self._fixed_port is not None or not any(m in str(exc) for m in _BIND_FAILED):
                    raise
        raise ServerError(f"no free port could be bound:\n{_tail(self.error_log)}")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after ``stop_timeout``); remove the temp dir.

        Idempotent.
        """
        try:
            self._terminate()
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
            _live.discard(self)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; the datadir stays for ``restart()``."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=self._stop_timeout)
        self._proc = None

    def restart(self) -> Self:
        """Stop (gracefully, if still running) and start again: same port, same data."""
        self._terminate()
        if self._dir is None:
            return self.start()
        server, _ = _binaries()
        return self._launch(server)

    def _launch(self, server: Path) -> Self:
        assert self._dir is not None and self._port is not None
        log = self._dir / "error.log"
        # Appending keeps earlier runs' lines, which explain a failed restart.
        offset = log.stat().st_size if log.exists() else 0
        cmd = [
            str(server), "--no-defaults", f"--datadir={self._dir / 'data'}",
            f"--bind-address={HOST}", f"--port={self._port}",
            f"--socket={self._dir / 'mysqld.sock'}", f"--pid-file={self._dir / 'mysqld.pid'}",
            f"--log-error={log}", f"--tmpdir={self._dir}",
            *_user_args(), *_SMALL, *_SERVER_ONLY, *self._extra_args,
        ]  # fmt: skip
        started = time.monotonic()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C is for us; atexit stops the server
            preexec_fn=_parent_death_kill(),
        )
        self._wait_ready(log, offset, started)
        _log.info(
            "private mariadbd pid %d ready on %s:%d in %.2f s",
            self._proc.pid, HOST, self._port, time.monotonic() - started,
        )  # fmt: skip
        return self

    def _wait_ready(self, log: Path, offset: int, started: float) -> None:
        assert self._proc is not None and self._port is not None
        deadline = started + self._start_timeout
        while not _greets(self._port):
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise ServerError(
                    f"mariadbd exited with code {code} while starting on port {self._port}; "
                    f"log {log}:\n{self._new_log(log, offset)}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(
                    f"mariadbd did not answer on {HOST}:{self._port} within "
                    f"{self._start_timeout:.0f} s; log {log}:\n{self._new_log(log, offset)}"
                )
            time.sleep(0.02)

    @staticmethod
    def _new_log(log: Path, offset: int) -> str:
        try:
            with log.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-25:])

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=self._stop_timeout)
        except subprocess.TimeoutExpired:
            _log.warning(
                "mariadbd pid %d ignored SIGTERM for %.0f s; killing it",
                proc.pid, self._stop_timeout,
            )  # fmt: skip
            proc.kill()
            proc.wait(timeout=self._stop_timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        port = self._port if self._port is not None else "?"
        return f"<PrivateMariaDB {HOST}:{port} {state}>"


# Strong references on purpose: a server nobody holds any more must still be stopped.
_live: set[PrivateMariaDB] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        try:
            server.stop()
        except Exception:  # at exit, stopping the others matters more than one error
            _log.exception("could not stop %r", server)

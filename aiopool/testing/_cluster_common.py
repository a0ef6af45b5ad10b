"""What the throwaway clusters share: SQL through the client, ports, nodes, clean-up."""

from __future__ import annotations

import atexit
import logging
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

from ._mariadbd import (
    HOST,
    ServerError,
    _which,
)

__all__ = ["SqlError", "run_sql"]

_log = logging.getLogger("aiopool.testing")

APP_USER = APP_PASSWORD = DATABASE = "app"
ADMIN_USER = ADMIN_PASSWORD = "admin"

_USERS_SQL = """\
CREATE USER 'admin'@'%' IDENTIFIED BY 'admin';
GRANT ALL ON *.* TO 'admin'@'%' WITH GRANT OPTION;
CREATE DATABASE app;
CREATE USER 'app'@'%' IDENTIFIED BY 'app';
GRANT ALL ON app.* TO 'app'@'%';
GRANT SLAVE MONITOR, BINLOG MONITOR, REPLICATION CLIENT ON *.* TO 'app'@'%';
GRANT REPLICATION MASTER ADMIN ON *.* TO 'app'@'%';
"""
_REPL_USER_SQL = """\
CREATE USER 'repl'@'%' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
"""

_REPL_ARGS = (
    "--log-bin=mysql-bin",  # after _SMALL's --skip-log-bin: the later option wins
    "--relay-log=relay-bin",
    "--log-slave-updates=1",  # a promoted replica must hold every transaction
    "--gtid-strict-mode=1",
    "--binlog-format=ROW",
    "--slave-net-timeout=5",  # with the 1 s heartbeat: a dead primary is noticed in ~5 s
)

# Failure detection in ~2 s instead of ~6 s (SIGKILL -> survivors at size 2 in 1.8 s).
FAST_EVS = (
    "evs.suspect_timeout=PT1S;evs.inactive_timeout=PT2S;evs.inactive_check_period=PT0.5S;"
    "evs.keepalive_period=PT0.2S;evs.join_retrans_period=PT0.2S;evs.install_timeout=PT2S;"
    # An isolated node may reconnect after 1 s, not 5: de-isolation takes 1-3 s, not 4.
    "gmcast.time_wait=PT1S"
)
_GALERA_LIBS = (
    "/usr/lib/galera/libgalera_smm.so",
    "/usr/lib/galera-4/libgalera_smm.so",
    "/usr/lib64/galera-4/libgalera_smm.so",
    "/usr/lib64/galera/libgalera_smm.so",
)
_GALERA_PACKAGES = ("galera-4", "rsync")
_STATUS = (
    "WSREP_READY", "WSREP_LOCAL_STATE", "WSREP_LOCAL_STATE_COMMENT",
    "WSREP_CLUSTER_STATUS", "WSREP_CLUSTER_SIZE",
)  # fmt: skip

Row = dict[str, str | None]
Role = Literal["primary", "replica", "failed"]


class SqlError(ServerError):
    """A statement sent by the cluster helpers failed; ``code`` is the server's error."""

    __module__ = "aiopool.testing"

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"({code}) {message}")
        self.code = code


# --- SQL through the command-line client -------------------------------------------------


def _unescape(value: str) -> str | None:
    if value == "NULL":
        return None
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(m[1], m[1]), value)


def run_sql(
    port: int,
    sql: str,
    *,
    user: str = "root",
    password: str = "",
    database: str | None = None,
    timeout: float = 20.0,
) -> list[Row]:
    """Run ``sql`` on 127.0.0.1:``port``; the rows of its (single) result set.

    Raises ``SqlError`` with the server's code when a statement fails.
    """
    client = _which("mariadb", "mysql")
    if client is None:
        raise ServerError("the mariadb client is not installed (package mariadb-client)")
    cmd = [
        str(client), "--no-defaults", "--protocol=TCP", f"--host={HOST}", f"--port={port}",
        f"--user={user}", "--connect-timeout=5", "--batch", f"--execute={sql}",
    ]  # fmt: skip
    if database:
        cmd.append(f"--database={database}")
    env = {**os.environ, "MYSQL_PWD": password}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ServerError(f"{sql[:60]!r} on port {port} took over {timeout:.0f} s") from None
    if done.returncode != 0:
        err = done.stderr.strip()
        found = re.search(r"ERROR (\d+) \([^)]*\)(?: at line \d+)?: (.*)", err)
        if found:
            raise SqlError(int(found[1]), found[2])
        raise ServerError(f"mariadb client exited {done.returncode} on port {port}: {err}")
    lines = done.stdout.splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    return [dict(zip(header, map(_unescape, ln.split("\t")), strict=True)) for ln in lines[1:]]


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until true; the seconds it took. ``TimeoutError`` names ``what``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} within {timeout:.1f} s")
        time.sleep(0.05)
    return time.monotonic() - started


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_block(count: int) -> list[int]:
    """``count`` consecutive free ports in 20000-32000, below Linux's ephemeral range.

    An ephemeral port could be taken by some client's outgoing connection while
    its node is down, and a restart would then fail to bind it.
    """
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        if base <= 3306 < base + count:
            continue
        if all(_bindable(p) for p in range(base, base + count)):
            return list(range(base, base + count))
    raise ServerError(f"no block of {count} free ports in 20000-32000")


def _gtid_seq(pos: str | None) -> int:
    """The highest sequence number in a GTID list like ``0-1-42,1-2-7``."""
    return max((int(g.rsplit("-", 1)[1]) for g in (pos or "").split(",") if g.strip()), default=0)


# --- nodes ------------------------------------------------------------------------------


class _Node:
    name: str

    @property
    def host(self) -> str:
        """Always ``127.0.0.1``."""
        return HOST

    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.pid is not None

    def url(
        self, user: str = APP_USER, password: str = APP_PASSWORD, database: str = DATABASE
    ) -> str:
        """``mysql://user:password@127.0.0.1:PORT/database`` (the app user by default)."""
        return f"mysql://{user}:{password}@{HOST}:{self.port}/{database}"

    def query(
        self, sql: str, *, user: str = "root", password: str = "", timeout: float = 20.0
    ) -> list[Row]:
        """Rows of ``sql`` run on this node (as root by default); see ``run_sql``."""
        return run_sql(self.port, sql, user=user, password=password, timeout=timeout)

    def scalar(
        self, sql: str, *, user: str = "root", password: str = "", timeout: float = 20.0
    ) -> str | None:
        """The first column of the first row, or ``None``."""
        rows = self.query(sql, user=user, password=password, timeout=timeout)
        return next(iter(rows[0].values())) if rows else None

    @property
    def rss_mib(self) -> float | None:
        """The server process's resident memory (VmRSS) in MiB, while it runs."""
        pid = self.pid
        try:
            status = Path(f"/proc/{pid}/status").read_text() if pid else ""
        except OSError:
            return None
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(found[1]) / 1024 if found else None

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "down"
        return f"<{type(self).__name__} {self.name} {HOST}:{self.port} {state}>"


_WATCHDOG = """\
import os, signal, sys
pids = set()
for line in sys.stdin:
    pid = int(line)
    pids.add(pid) if pid > 0 else pids.discard(-pid)
for pid in pids:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""


class _Watchdog:
    """A helper process that SIGKILLs the Galera servers when we die, however we die.

    ``PR_SET_PDEATHSIG`` cannot do it: mariadbd switches to another user, which
    clears it. The helper reads PIDs from a pipe; when we die the pipe closes.
    """

    _lock = threading.Lock()
    _proc: subprocess.Popen[str] | None = None

    @classmethod
    def watch(cls, pid: int) -> None:
        cls._send(pid)

    @classmethod
    def forget(cls, pid: int) -> None:
        cls._send(-pid)

    @classmethod
    def close(cls) -> None:
        """Let the helper exit (it kills whatever is still registered)."""
        with cls._lock:
            proc, cls._proc = cls._proc, None
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
            proc.wait(timeout=10)

    @classmethod
    def _send(cls, signed_pid: int) -> None:
        with cls._lock:
            if cls._proc is None or cls._proc.poll() is not None:
                cls._proc = subprocess.Popen(
                    [sys.executable, "-c", _WATCHDOG],
                    stdin=subprocess.PIPE,
                    text=True,
                    start_new_session=True,  # a terminal's Ctrl-C is for us, not for it
                )
            assert cls._proc.stdin is not None
            cls._proc.stdin.write(f"{signed_pid}\n")
            cls._proc.stdin.flush()


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_live: set[_Stoppable] = set()


@atexit.register
def _stop_all() -> None:
    for cluster in list(_live):
        try:
            cluster.stop()
        except Exception:  # at exit, stopping the others matters more than one error
            _log.exception("could not stop %r", cluster)
    _Watchdog.close()

"""A Galera cluster (galera-4, rsync state transfers) on free loopback ports."""

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from ._cluster_common import (
    _GALERA_LIBS,
    _STATUS,
    _USERS_SQL,
    FAST_EVS,
    Row,
    _live,
    _Node,
    _port_block,
    _wait_for,
    _Watchdog,
)
from ._mariadbd import (
    _SERVER_ONLY,
    _SMALL,
    HOST,
    ServerError,
    _binaries,
    _tail,
    _Template,
    _which,
)

__all__ = ["GaleraCluster", "GaleraNode", "ensure_galera_installed", "galera_missing"]

_log = logging.getLogger("aiopool.testing")

# --- Galera -----------------------------------------------------------------------------


def _galera_library() -> Path | None:
    return next((Path(p) for p in _GALERA_LIBS if Path(p).is_file()), None)


def galera_missing() -> list[str]:
    """Debian packages that Galera tests need and that are not installed."""
    missing = []
    if _galera_library() is None:
        missing.append("galera-4")
    if _which("rsync") is None:
        missing.append("rsync")
    if _which("wsrep_sst_rsync") is None or _which("mariadbd", "mysqld") is None:
        missing.append("mariadb-server")
    return missing


def _run_apt(args: Sequence[str], timeout: float) -> tuple[int, str]:
    """Run ``apt-get ARGS`` (through ``sudo -n`` unless root); exit code and output."""
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    cmd = [*prefix, "apt-get", "-q", "-o", "DPkg::Lock::Timeout=120", *args]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, f"{' '.join(cmd)}: {exc}"
    return done.returncode, done.stdout + done.stderr


# apt-get's words for "no package lists yet" (or lists too old to fetch from).
_NO_LISTS = ("Unable to locate package", "has no installation candidate", "Failed to fetch")


def ensure_galera_installed(timeout: float = 900.0) -> tuple[bool, str]:
    """Make sure ``galera-4`` and ``rsync`` are installed; ``(ok, reason)``.

    Installs what is missing with ``apt-get install -y`` (as root, or through
    ``sudo -n``), running ``apt-get update`` first only when the install fails
    for lack of package lists. Never raises: ``(False, reason)`` says why
    Galera tests cannot run. The server itself (``mariadb-server``, which
    brings ``wsrep_sst_rsync``) is not installed here: its package starts a
    service.
    """
    missing = galera_missing()
    if not missing:
        return True, "galera-4 and rsync are installed"
    if "mariadb-server" in missing:
        return False, "mariadbd or wsrep_sst_rsync not found: install mariadb-server"
    hint = f"apt-get install -y {' '.join(missing)}"
    if _which("apt-get") is None:
        return False, f"missing {', '.join(missing)} and there is no apt-get ({hint})"
    if os.geteuid() != 0 and _which("sudo") is None:
        return False, f"missing {', '.join(missing)}; as root: {hint}"
    install = ["install", "-y", "--no-install-recommends", *missing]
    _log.info("installing %s", " ".join(missing))
    code, output = _run_apt(install, timeout)
    if code != 0 and any(marker in output for marker in _NO_LISTS):
        _log.info("apt-get install found no package lists: running apt-get update")
        code, output = _run_apt(["update"], timeout)
        if code == 0:
            code, output = _run_apt(install, timeout)
    still = galera_missing()
    if code != 0 or still:
        tail = "\n".join(output.strip().splitlines()[-8:])
        return False, f"could not install {', '.join(still or missing)} ({hint}):\n{tail}"
    return True, f"installed {', '.join(missing)}"


def _galera_user() -> str | None:
    """The account Galera nodes run as when we are root, else ``None``.

    Not root itself: as root, the joiner's ``rsync --daemon`` switches to
    ``nobody`` and cannot write the datadir (SST fails with rsync code 3).
    """
    if os.geteuid() != 0:
        return None
    for name in ("mysql", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise ServerError("running as root, but there is no 'mysql' or 'nobody' account to run as")


def _galera_user_args() -> list[str]:
    user = _galera_user()
    return [f"--user={user}"] if user else []


def _hand_over(path: Path) -> None:
    """Give ``path`` (recursively) and its parent to the account the nodes run as."""
    user = _galera_user()
    if user is None:
        return
    shutil.chown(path.parent, user)
    for root, dirs, files in os.walk(path):
        for name in (root, *(os.path.join(root, n) for n in (*dirs, *files))):
            shutil.chown(name, user)


class GaleraNode(_Node):
    """One node of a ``GaleraCluster``, with four ports: SQL, gcomm, IST and SST."""

    def __init__(self, index: int, ports: Sequence[int], workdir: Path, timeout: float) -> None:
        self.index = index
        self.name = f"galera{index}"
        self.sql_port, self.gcomm_port, self.ist_port, self.sst_port = ports
        self.dir = workdir / self.name
        self.dir.mkdir()
        self.config = self.dir / "my.cnf"
        self.error_log = self.dir / "error.log"
        self._timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self.sql_port

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def write_config(self, cluster: str, peers: str, provider_options: str) -> None:
        """Write ``my.cnf``: the server and its SST script both read it."""
        small = "\n".join(arg[2:] for arg in (*_SMALL, *_SERVER_ONLY))
        self.config.write_text(f"""\
[mysqld]
datadir={self.dir / "data"}
port={self.sql_port}
bind-address={HOST}
socket={self.dir / "mysqld.sock"}
pid-file={self.dir / "mysqld.pid"}
log-error={self.error_log}
tmpdir={self.dir}
{small}
binlog-format=ROW
innodb-autoinc-lock-mode=2
wsrep-on=ON
wsrep-provider={_galera_library()}
wsrep-cluster-name={cluster}
wsrep-cluster-address=gcomm://{peers}
wsrep-node-name={self.name}
wsrep-node-address={HOST}:{self.gcomm_port}
wsrep-node-incoming-address={HOST}:{self.sql_port}
wsrep-sst-receive-address={HOST}:{self.sst_port}
wsrep-sst-method=rsync
wsrep-provider-options="gmcast.listen_addr=tcp://{HOST}:{self.gcomm_port};\
ist.recv_addr={HOST}:{self.ist_port};gcache.size=16M;{provider_options}"
[sst]
sockopt=bind={HOST}
""")

    def launch(self, *args: str) -> None:
        """Start ``mariadbd`` without waiting (``wait_ready`` waits)."""
        server, _ = _binaries()
        if not (self.dir / "data").exists():
            _, install_db = _binaries()
            shutil.copytree(_Template.datadir(install_db, self._timeout), self.dir / "data")
        _hand_over(self.dir)
        cmd = [str(server), f"--defaults-file={self.config}", *_galera_user_args(), *args]
        self._log_offset = self.error_log.stat().st_size if self.error_log.exists() else 0
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _Watchdog.watch(self._proc.pid)

    def wait_ready(self, timeout: float | None = None) -> float:
        """Wait until the node is Synced and Primary; seconds.

        A joiner keeps its SQL port closed until its state transfer is done.
        """
        limit = self._timeout if timeout is None else timeout

        def ready() -> bool:
            if self.pid is None:
                raise ServerError(f"{self.name} exited while starting:\n{self._new_log()}")
            try:
                status = self.status()
            except ServerError:
                return False
            return (
                status.get("wsrep_local_state_comment") == "Synced"
                and status.get("wsrep_cluster_status") == "Primary"
            )

        try:
            return _wait_for(ready, limit, f"{self.name} did not become Synced")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; log {self.error_log}:\n{self._new_log()}") from None

    def status(self) -> Row:
        """The wsrep status: ready, local state (comment), cluster status and size."""
        names = ", ".join(f"'{n}'" for n in _STATUS)
        rows = self.query(
            "SELECT LOWER(VARIABLE_NAME) AS n, VARIABLE_VALUE AS v "
            f"FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN ({names})",
            timeout=10,
        )
        return {str(r["n"]): r["v"] for r in rows}

    def kill(self) -> None:
        """SIGKILL, as a crash would; ``restart()`` rejoins the cluster by IST."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            _Watchdog.forget(proc.pid)

    def terminate(self) -> None:
        """Ask the server to shut down (SIGTERM) without waiting."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down gracefully (SIGTERM), SIGKILL after ``timeout``. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        self.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _log.warning("%s ignored SIGTERM for %.0f s; killing it", self.name, timeout)
        self.kill()

    def restart(self, timeout: float | None = None) -> Self:
        """Stop (gracefully, if running), recover the position, rejoin; waits for Synced.

        The recovered position (``--wsrep-recover``) lets it rejoin by IST; a plain
        start after SIGKILL would take a full state transfer.
        """
        self.stop()
        position = self._recover()
        self.launch(*([f"--wsrep-start-position={position}"] if position else []))
        self.wait_ready(timeout)
        return self

    def _recover(self) -> str | None:
        server, _ = _binaries()
        log = self.dir / "recover.log"
        log.unlink(missing_ok=True)
        cmd = [str(server), f"--defaults-file={self.config}", *_galera_user_args(),
               "--wsrep-recover", f"--log-error={log}"]  # fmt: skip
        try:
            subprocess.run(cmd, capture_output=True, timeout=self._timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ServerError(f"{self.name}: --wsrep-recover took over {self._timeout} s") from None
        text = log.read_text(errors="replace") if log.exists() else ""
        found = re.search(r"Recovered position:\s*([0-9a-f-]{36}:-?\d+)", text)
        if found is None or found[1].endswith(":-1"):
            _log.warning("%s: no position recovered; it will need a full SST", self.name)
            return None
        return found[1]

    def _new_log(self) -> str:
        try:
            with self.error_log.open("rb") as f:
                f.seek(getattr(self, "_log_offset", 0))
                text = f.read().decode(errors="replace")
        except OSError:
            return _tail(self.error_log)
        return "\n".join(text.splitlines()[-25:])


class GaleraCluster:
    """``size`` Galera nodes (rsync SST); ``start()`` takes 10-15 s.

    ``fast_detection`` (default) tunes ``evs.*`` so a dead or isolated node is
    noticed in about 2 s instead of 6 s.
    """

    def __init__(self, size: int = 3, *, fast_detection: bool = True, timeout: float = 90.0):
        if not 2 <= size <= 5:
            raise ValueError(f"size must be in 2..5, got {size}")
        self._size = size
        self._options = FAST_EVS if fast_detection else ""
        self._timeout = timeout
        self._dir: Path | None = None
        self.nodes: list[GaleraNode] = []
        self.start_seconds: float | None = None

    @property
    def urls(self) -> list[str]:
        """App-user URLs of every node."""
        return [n.url() for n in self.nodes]

    def start(self) -> Self:
        """Bootstrap the first node, join the others, wait until all are Synced."""
        if self.nodes:
            return self
        missing = galera_missing()
        if missing:
            raise ServerError(f"Galera needs {', '.join(missing)}: see ensure_galera_installed()")
        started = time.monotonic()
        self._dir = Path(tempfile.mkdtemp(prefix="aiopool-galera-"))
        _live.add(self)
        try:
            self._create_nodes()
            first, *joiners = self.nodes
            first.launch("--wsrep-new-cluster")
            first.wait_ready()
            first.query(_USERS_SQL)
            for node in joiners:
                node.launch()
            for node in joiners:
                node.wait_ready()
            self.wait_cluster_size(self._size)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        _log.info("galera cluster %s up in %.2f s", self.urls, self.start_seconds)
        return self

    def _create_nodes(self) -> None:
        assert self._dir is not None
        ports = _port_block(4 * self._size)
        self.nodes = [
            GaleraNode(i, ports[4 * i : 4 * i + 4], self._dir, self._timeout)
            for i in range(self._size)
        ]
        peers = ",".join(f"{HOST}:{n.gcomm_port}" for n in self.nodes)
        cluster = f"aiopool_{ports[0]}"
        for node in self.nodes:
            node.write_config(cluster, peers, self._options)

    def stop(self) -> None:
        """Stop every node (SIGTERM, all at once) and remove the temp dir. Idempotent."""
        try:
            for node in self.nodes:
                node.terminate()
            for node in self.nodes:
                node.stop()
        finally:
            self.nodes = []
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
            _live.discard(self)

    def wait_synced(self, node: GaleraNode, timeout: float = 30.0) -> float:
        """Wait until ``node`` is Synced in a Primary component; seconds."""
        return node.wait_ready(timeout)

    def wait_cluster_size(
        self, size: int, timeout: float = 30.0, nodes: Sequence[GaleraNode] | None = None
    ) -> float:
        """Wait until each of ``nodes`` (default: all running) sees ``size`` members."""
        chosen = [n for n in (self.nodes if nodes is None else nodes) if n.running]

        def check() -> bool:
            try:
                return all(n.status().get("wsrep_cluster_size") == str(size) for n in chosen)
            except ServerError:
                return False

        return _wait_for(check, timeout, f"cluster size did not become {size}")

    def isolate(self, node: GaleraNode, on: bool = True, *, timeout: float = 30.0) -> float:
        """Cut ``node`` off the group (``gmcast.isolate``), or reconnect it; seconds.

        ``on``: waits until the node is non-Primary (it still answers ``SELECT 1``;
        table queries get 1047). Off: waits until it is Synced again.
        """
        node.query(f"SET GLOBAL wsrep_provider_options = 'gmcast.isolate={int(on)}'")
        if not on:
            return self.wait_synced(node, timeout)

        def cut_off() -> bool:
            return node.status().get("wsrep_cluster_status") != "Primary"

        return _wait_for(cut_off, timeout, f"{node.name} stayed Primary")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

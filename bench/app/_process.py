"""The app under uvicorn in a child process, and a sampler of its server-side sessions."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._schema import connect, count_sessions, database_of, with_database

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AppServer:
    """``python -m bench.app.server`` for one backend; ready once ``/db`` answers 200."""

    def __init__(self, backend: str, url: str, rows: int, size: int) -> None:
        self.backend = backend
        self.port = free_port()
        self.args = [
            *("--backend", backend, "--url", url, "--port", str(self.port)),
            *("--rows", str(rows), "--size", str(size)),
        ]
        self._proc: asyncio.subprocess.Process | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the server)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60.0) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            # -P as the bench itself was run (make bench: the compiled build,
            # not the working directory's aiopool/).
            *(("-P",) if sys.flags.safe_path else ()),
            *("-m", "bench.app.server", *self.args),
            cwd=ROOT,
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                raise RuntimeError(f"server exited with {self._proc.returncode}: {self.log()}")
            if await self._answers():
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout:g} s: {self.log()}")

    async def _answers(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"GET /db HTTP/1.0\r\nHost: localhost\r\n\r\n")
            status = await asyncio.wait_for(reader.readline(), 10)
            return b" 200 " in status
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def log(self) -> str:
        """The end of the server's output."""
        if self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-3000:].strip()

    def discard_log(self) -> None:
        self._log.close()

    async def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (uvicorn shuts down and the lifespan closes the pool), then SIGKILL."""
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        return proc.returncode


class SessionSampler:
    """Counts the bench database's server-side sessions every ``interval`` seconds.

    The sampler's own session names no database, so it is never counted; the
    bench database is used by nobody but the app under test.
    """

    def __init__(self, url: str, interval: float = 0.1) -> None:
        self.url = url
        self.database = database_of(url)
        self.interval = interval
        self.samples: list[int] = []
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._conn = await connect(with_database(self.url, ""))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.ensure_closed()

    async def count(self) -> int:
        """The bench database's sessions now (not while sampling: one query at a time)."""
        return await count_sessions(self._conn, self.database)

    async def _loop(self, stop: asyncio.Event) -> None:
        # Stopped by the event, never cancelled: a query cut short breaks the connection.
        while not stop.is_set():
            self.samples.append(await count_sessions(self._conn, self.database))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    def start(self) -> None:
        self.samples = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._loop(self._stop))

    async def stop(self) -> list[int]:
        assert self._task is not None
        self._stop.set()
        await self._task
        return self.samples

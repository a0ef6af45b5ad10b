"""The machine, the library versions and the servers' global counters."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
import subprocess
from typing import Any

from ._adapters import MYSQL, PG_DSN

MYSQL_COUNTERS = ("Connections", "Com_commit", "Com_rollback", "Questions")
LIBRARIES = (
    "aiopool-mysql",
    "asyncmy",
    "aiomysql",
    "SQLAlchemy",
    "asyncpg",
    "psycopg",
    "psycopg-pool",
    "uvloop",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def _git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "no commit"


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def aiopool_build() -> str:
    """``compiled`` (mypyc, ``make compiled``) or ``pure``: the numbers differ."""
    try:
        from aiopool._build import implementation
    except ImportError:
        return "unknown"
    return implementation()


async def server_versions() -> dict[str, str]:
    versions = {"mariadb": "unreachable", "postgresql": "unreachable"}
    try:
        mon = MySQLMonitor()
        await mon.open()
        versions["mariadb"] = await mon.scalar("SELECT VERSION()")
        await mon.close()
    except Exception as exc:
        versions["mariadb"] = f"unreachable: {exc}"
    try:
        import asyncpg

        conn = await asyncpg.connect(PG_DSN)
        versions["postgresql"] = await conn.fetchval("SHOW server_version")
        await conn.close()
    except Exception as exc:
        versions["postgresql"] = f"unreachable: {exc}"
    return versions


def machine(servers: dict[str, str]) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": _nproc(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": _git_rev(),
        "libraries": {name: _version(name) for name in LIBRARIES}
        | {"aiopool-mysql": f"{_version('aiopool-mysql')} ({aiopool_build()} build)"},
        "servers": servers,
    }


class MySQLMonitor:
    """A side connection reading global status counters (shared server: others count too)."""

    async def open(self) -> None:
        import asyncmy

        self._conn = await asyncmy.connect(**MYSQL)

    async def close(self) -> None:
        await self._conn.ensure_closed()

    async def scalar(self, sql: str) -> Any:
        async with self._conn.cursor() as cur:
            await cur.execute(sql)
            row = await cur.fetchone()
        return row[0]

    async def counters(self) -> dict[str, int]:
        names = ", ".join(f"'{n}'" for n in MYSQL_COUNTERS)
        async with self._conn.cursor() as cur:
            await cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
            rows = await cur.fetchall()
        return {str(k): int(v) for k, v in rows}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in before}


def per_op(d: dict[str, int], ops: int, reads: int = 1) -> dict[str, Any]:
    """Connections opened, and statements/commits/rollbacks per operation.

    ``reads`` is how many closing ``SHOW GLOBAL STATUS`` statements the deltas
    include (each is itself one statement in ``Questions``).
    """
    n = max(ops, 1)
    return {
        "connections_opened": d["Connections"],
        "statements_per_op": round((d["Questions"] - reads) / n, 3),
        "commits_per_op": round(d["Com_commit"] / n, 3),
        "rollbacks_per_op": round(d["Com_rollback"] / n, 3),
    }

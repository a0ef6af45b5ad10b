"""``wrk``: find (or install) it, run it, read its summary."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("report.lua")
MARK = "WRK-JSON "
HOW = (
    "wrk is missing: install the Debian/Ubuntu package (`sudo apt-get install wrk`), "
    "or build it from https://github.com/wg/wrk and put it on PATH"
)


class WrkMissing(RuntimeError):
    """No ``wrk`` on PATH and it could not be installed."""


def ensure_wrk(install: bool = True) -> str:
    """Path of ``wrk``; as root with apt-get, install the Debian package when missing."""
    found = shutil.which("wrk")
    if found or not install:
        if found:
            return found
        raise WrkMissing(HOW)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise WrkMissing(HOW)
    print("wrk not found: installing it with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, env=env)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise WrkMissing(f"apt-get install wrk failed ({exc}); {HOW}") from None
    found = shutil.which("wrk")
    if not found:
        raise WrkMissing(HOW)
    return found


@dataclass
class WrkResult:
    """One wrk run's summary (latencies in milliseconds)."""

    requests: int
    seconds: float
    req_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    non_2xx: int
    socket_errors: int
    timeouts: int


def parse(stdout: str) -> WrkResult:
    """Read the JSON line ``report.lua`` prints; raise if it is missing."""
    for line in stdout.splitlines():
        if line.startswith(MARK):
            d = json.loads(line[len(MARK) :])
            seconds = d["duration_us"] / 1e6
            return WrkResult(
                requests=d["requests"],
                seconds=round(seconds, 3),
                req_per_s=d["requests"] / seconds if seconds else 0.0,
                p50_ms=d["p50_us"] / 1e3,
                p90_ms=d["p90_us"] / 1e3,
                p99_ms=d["p99_us"] / 1e3,
                max_ms=d["max_us"] / 1e3,
                mean_ms=d["mean_us"] / 1e3,
                non_2xx=d["status"],
                socket_errors=d["connect"] + d["read"] + d["write"],
                timeouts=d["timeout"],
            )
    raise RuntimeError(f"no wrk summary in its output:\n{stdout[-2000:]}")


async def run(
    wrk: str, url: str, seconds: float, connections: int, threads: int, timeout: float
) -> WrkResult:
    """One wrk run against ``url``.

    ``timeout`` is wrk's per-request limit: a request slower than it is counted
    as an error and left out of the latencies, so it is set well above any p99
    we expect to see (wrk's default, 2 s, would hide the slowest requests).
    """
    proc = await asyncio.create_subprocess_exec(
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        f"--timeout={timeout:g}s",
        "-s",
        str(SCRIPT),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode:
        said = (err.decode() + out.decode()).strip()[-2000:]
        raise RuntimeError(f"wrk exited with {proc.returncode}: {said}")
    return parse(out.decode())

"""W6 burst: does a short burst of short loans make the pool open connections nobody needs?

One run, per pool:

1. start a delay proxy (``_delayproxy``, its own process) in front of the
   pool's server: every new connection takes ``connect_delay`` longer to open;
2. open the pool through it with ``min_size`` of ``max_size`` connections and
   wait until it is quiet (the warm connections are counted at the proxy);
3. start ``requests`` tasks at once, each borrowing a connection, holding it
   ``hold`` seconds without a query (``asyncio.sleep``: the same work on MySQL
   and PostgreSQL, and no statement traffic through the proxy, so what is
   measured is the pool's hand-offs and its decisions to grow) and giving it back;
4. wait ``settle`` after the last release, so that connects the burst started
   are counted too, then read the proxy's count again.

Reported: connections opened because of the burst (accepted at the proxy
between 3 and 4), the pool's own count over the same span, and each request's
latency from its start to the end of its release (p50, p99, max).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._adapters import MYSQL_SERVER, PG_SERVER, Adapter, Contender, Endpoint, Unavailable
from ._workloads import _pct

_PROXY_SCRIPT = Path(__file__).with_name("_delayproxy.py")
OPEN_TIMEOUT = 60.0
# Medians over rounds in the bench summary, next to p50_ms and p99_ms.
METRICS = ("warm", "opened", "pool_opened", "max_ms", "burst_ms")


@dataclass(frozen=True)
class BurstConfig:
    """The W6 shape (issue 11): a pool of 4 that may grow to 16, 200 loans of 2 ms."""

    requests: int = 200
    hold: float = 0.002
    connect_delay: float = 0.100
    min_size: int = 4
    max_size: int = 16
    # Bounds the whole burst: a pool that loses a request must not hang the bench.
    burst_timeout: float = 60.0
    # Quiet time before and after the burst; None: two connects' worth plus 50 ms.
    settle_s: float | None = None

    @property
    def settle(self) -> float:
        """Quiet time before and after the burst, so that connects in flight finish."""
        return self.settle_s if self.settle_s is not None else 2 * self.connect_delay + 0.05


def settings(cfg: BurstConfig | None = None) -> dict[str, Any]:
    """The W6 shape for the bench's JSON, settle time included."""
    cfg = cfg or BurstConfig()
    return asdict(cfg) | {"settle": cfg.settle}


@dataclass
class BurstResult:
    requests: int
    warm: int  # connections accepted at the proxy while the pool opened and settled
    opened: int  # accepted from the burst's start to ``settle`` after its end
    pool_opened: int | None  # the pool's own count over the same span
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    burst_ms: float  # first request's start to the last release
    ops_per_s: float  # requests ÷ burst time
    errors: int = 0
    first_error: str = ""
    timed_out: bool = False
    latencies_ms: list[float] = field(default_factory=list)


class DelayProxy:
    """The parent's handle on a ``_delayproxy`` child process."""

    def __init__(self, target: Endpoint, delay: float) -> None:
        self.target = target
        self.delay = delay
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> DelayProxy:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(_PROXY_SCRIPT),
            self.target.host,
            str(self.target.port),
            repr(self.delay),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        line = await asyncio.wait_for(self._readline(), OPEN_TIMEOUT)
        word, _, port = line.partition(" ")
        if word != "listening":
            await self._stop()
            raise RuntimeError(f"delay proxy did not start: {line!r}")
        self.port = int(port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    @property
    def endpoint(self) -> Endpoint:
        """The target's endpoint, reached through this proxy."""
        return self.target.via("127.0.0.1", self.port)

    async def counts(self) -> tuple[int, int]:
        """(connections accepted since start, connections open now)."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(b"count\n")
        await self._proc.stdin.drain()
        accepted, active = (await self._readline()).split()
        return int(accepted), int(active)

    async def accepted(self) -> int:
        return (await self.counts())[0]

    async def _readline(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"delay proxy exited (code {await self._proc.wait()})")
        return line.decode().strip()

    async def _stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def run_burst(
    factory: type[Adapter],
    cfg: BurstConfig | None = None,
    mysql: Endpoint = MYSQL_SERVER,
    pg: Endpoint = PG_SERVER,
) -> BurstResult:
    """One W6 run of one pool; its server is ``pg`` or ``mysql`` by ``factory.backend``."""
    cfg = cfg or BurstConfig()
    server = pg if factory.backend == "pg" else mysql
    async with DelayProxy(server, cfg.connect_delay) as proxy:
        adapter = factory(cfg.max_size, min_size=cfg.min_size, endpoint=proxy.endpoint)
        is_open = False
        try:
            await asyncio.wait_for(adapter.open(), OPEN_TIMEOUT)
            is_open = True
            await asyncio.sleep(cfg.settle)
            warm = await proxy.accepted()
            pool_warm = adapter.opened()
            result = await _burst(adapter, cfg)
            await asyncio.sleep(cfg.settle)
            after = await proxy.accepted()
            pool_after = adapter.opened()
        finally:
            await _close(adapter, is_open)
    result.warm = warm
    result.opened = after - warm
    if pool_warm is not None and pool_after is not None:
        result.pool_opened = pool_after - pool_warm
    return result


async def _close(adapter: Adapter, is_open: bool) -> None:
    """Close the pool; after a failed open, try anyway (its tasks may be running)."""
    try:
        await asyncio.wait_for(adapter.close(), OPEN_TIMEOUT)
    except Exception:
        if is_open:
            raise


async def _burst(adapter: Adapter, cfg: BurstConfig) -> BurstResult:
    latencies: list[float] = []
    clock = time.perf_counter
    acquire = adapter.acquire
    hold = cfg.hold

    async def request() -> None:
        t0 = clock()
        async with acquire():
            await asyncio.sleep(hold)
        latencies.append(clock() - t0)

    start = clock()
    tasks = [asyncio.create_task(request()) for _ in range(cfg.requests)]
    done, pending = await asyncio.wait(tasks, timeout=cfg.burst_timeout)
    burst = clock() - start
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    errors = [t.exception() for t in done if t.exception() is not None]
    lat = sorted(latencies)
    return BurstResult(
        requests=cfg.requests,
        warm=0,
        opened=0,
        pool_opened=None,
        p50_ms=_pct(lat, 0.50),
        p99_ms=_pct(lat, 0.99),
        max_ms=lat[-1] * 1e3 if lat else None,
        burst_ms=burst * 1e3,
        ops_per_s=len(lat) / burst if burst > 0 else 0.0,
        errors=len(errors),
        first_error=f"{type(errors[0]).__name__}: {errors[0]}" if errors else "",
        timed_out=bool(pending),
        latencies_ms=[round(x * 1e3, 3) for x in lat],
    )


async def run_row(contender: Contender, cfg: BurstConfig | None = None) -> dict[str, Any]:
    """One W6 run for the bench's JSON (per-request latencies left out), or why not."""
    try:
        result = await run_burst(contender.factory, cfg)
    except Unavailable as exc:
        return {"skipped": str(exc).split(":")[0]}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    out = asdict(result)
    out.pop("latencies_ms")
    if result.errors or result.timed_out:
        out["error"] = result.first_error or "burst timed out"
    return out

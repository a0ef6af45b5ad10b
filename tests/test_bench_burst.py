"""The W6 burst harness (bench/_burst.py) end to end, at a tiny size.

What is checked is the harness, not any pool's speed: the delay proxy counts
what it accepts, the warm connections are all there before the burst, the
connections counted at the proxy are the ones the pool says it opened, and
every request is measured.  The only time bound is the lower one the proxy's
injected delay implies.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncmy
import pytest

from aiopool._config import parse_url
from bench import _report
from bench._adapters import AiopoolAdapter, AsyncmyPoolAdapter, Endpoint
from bench._burst import BurstConfig, DelayProxy, run_burst

# Tiny: growth is still likely (20 loans of 50 ms on 2 warm connections). A long
# settle lets every connect the burst started finish before the counts are read,
# however slow the shared machine is at that moment.
TINY = BurstConfig(requests=20, hold=0.05, connect_delay=0.02, min_size=2, max_size=6, settle_s=0.3)
TEST_TIMEOUT = 30.0


@pytest.fixture
def server(database_url: str) -> Endpoint:
    kw = parse_url(database_url)
    return Endpoint(
        kw["host"], kw["port"], kw["user"], kw.get("password") or "", kw.get("database") or ""
    )


async def _eventually(predicate: Any) -> None:
    while not await predicate():
        await asyncio.sleep(0.01)


async def test_delay_proxy_counts_and_delays(server: Endpoint) -> None:
    delay = 0.05
    async with asyncio.timeout(TEST_TIMEOUT), DelayProxy(server, delay) as proxy:
        assert await proxy.counts() == (0, 0)
        kwargs = proxy.endpoint.mysql()
        t0 = time.perf_counter()
        conns = [await asyncmy.connect(**kwargs) for _ in range(3)]
        # A lower bound set by the injected delay, not a speed claim.
        assert time.perf_counter() - t0 >= 3 * delay
        assert await proxy.counts() == (3, 3)
        async with conns[0].cursor() as cur:
            await cur.execute("SELECT 1")
            assert await cur.fetchone() == (1,)
        for c in conns:
            await c.ensure_closed()

        async def all_closed() -> bool:
            return await proxy.counts() == (3, 0)

        await _eventually(all_closed)


@pytest.mark.parametrize("factory", [AiopoolAdapter, AsyncmyPoolAdapter], ids=lambda f: f.name)
async def test_burst_counts_what_the_pool_opened(server: Endpoint, factory: Any) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        result = await run_burst(factory, TINY, mysql=server)
    assert result.errors == 0, result.first_error
    assert not result.timed_out
    assert result.warm == TINY.min_size
    assert result.pool_opened == result.opened
    assert 0 <= result.opened <= TINY.max_size - TINY.min_size
    assert len(result.latencies_ms) == TINY.requests
    assert result.p50_ms is not None and result.p99_ms is not None and result.max_ms is not None
    assert result.p50_ms <= result.p99_ms <= result.max_ms <= result.burst_ms
    if factory is AsyncmyPoolAdapter:
        # asyncmy's pool opens a connection whenever none is free and it may grow.
        assert result.opened >= 1


def _w6_row(loop: str, name: str, opened: int, p99: float) -> dict[str, Any]:
    return {
        "loop": loop,
        "workload": "W6",
        "contender": name,
        "ops_per_s": 1.0,
        "opened": opened,
        "p99_ms": p99,
    }


def test_w6_targets_met_and_not_met() -> None:
    summary = [
        _w6_row("asyncio", "aiopool", 2, 100.0),
        _w6_row("asyncio", "asyncmy", 12, 900.0),
        _w6_row("asyncio", "psycopg_pool (PG)", 1, 120.0),
        _w6_row("uvloop", "aiopool", 3, 130.0),
        _w6_row("uvloop", "psycopg_pool (PG)", 1, 120.0),
    ]
    results: dict[str, Any] = {
        "summary": summary,
        "settings": {"loops": ["asyncio", "uvloop"], "workloads": ["W6"]},
        "startup": {},
        "memory": {},
    }
    results["targets"] = _report.targets(results)
    verdicts = {(t["target"], t["loop"]): t["pass"] for t in results["targets"]}
    assert verdicts == {
        ("W6 connections opened by the burst", "asyncio"): True,
        ("W6 burst p99 ÷ best peer's p99", "asyncio"): True,
        ("W6 connections opened by the burst", "uvloop"): False,
        ("W6 burst p99 ÷ best peer's p99", "uvloop"): False,
    }
    table = _report.readme_table(results)
    assert "| W6 connections opened by the burst | 2 " in table
    assert "**not met** (uvloop) |" in table

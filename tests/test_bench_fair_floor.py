"""The fair floor (bench/fair_floor): the yardstick serves in order, and the report uses it.

What is checked is the instrument: ``FifoPool`` hands a returned connection to
the oldest waiter still waiting, passes on a connection handed to a task
cancelled before it ran, and, run by the harness against the server, stays
within the first-come-first-served bound; the report turns its row into the
two context lines of the targets table, and into none when it did not run.
"""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import pytest

from aiopool._config import parse_url
from bench import _report
from bench._adapters import Endpoint, FairFloorAdapter, Unavailable
from bench._workloads import Workload, run_tasks
from bench.fair_floor import load

TEST_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def pools() -> ModuleType:
    return load()


async def test_a_returned_connection_goes_to_the_oldest_waiter(pools: ModuleType) -> None:
    pool = pools.FifoPool(["a"], asyncio.get_running_loop())
    first = await pool.acquire()
    served: list[tuple[str, str]] = []

    async def wait(name: str) -> None:
        served.append((name, await pool.acquire()))

    tasks = [asyncio.create_task(wait(n)) for n in ("w1", "w2")]
    while pool.waiting < 2:
        await asyncio.sleep(0)
    # Asking again at once does not jump the line: the connection is promised.
    pool.release(first)
    again = asyncio.create_task(wait("late"))
    async with asyncio.timeout(TEST_TIMEOUT):
        await tasks[0]
    assert served == [("w1", "a")]
    pool.release("a")
    await tasks[1]
    pool.release("a")
    await again
    assert served == [("w1", "a"), ("w2", "a"), ("late", "a")]
    pool.release("a")
    assert (pool.waiting, pool.idle_count) == (0, 1)


async def test_idle_connections_are_lent_last_in_first_out(pools: ModuleType) -> None:
    pool = pools.FifoPool(["a", "b"], asyncio.get_running_loop())
    assert await pool.acquire() == "b"
    pool.release("b")
    assert await pool.acquire() == "b"


async def test_a_cancelled_waiter_is_passed_over_and_passes_on_what_it_was_handed(
    pools: ModuleType,
) -> None:
    pool = pools.FifoPool(["a"], asyncio.get_running_loop())
    await pool.acquire()
    gone = asyncio.create_task(pool.acquire())
    handed = asyncio.create_task(pool.acquire())
    last = asyncio.create_task(pool.acquire())
    while pool.waiting < 3:
        await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    pool.release("a")  # passes over the cancelled waiter: "handed" gets it
    handed.cancel()  # ...but is cancelled before it runs, so it passes it on
    async with asyncio.timeout(TEST_TIMEOUT):
        assert await last == "a"
    for task in (gone, handed):
        with pytest.raises(asyncio.CancelledError):
            await task
    pool.release("a")
    assert (pool.waiting, pool.idle_count) == (0, 1)


async def test_under_the_harness_it_serves_first_come_first_served(database_url: str) -> None:
    kw = parse_url(database_url)
    server = Endpoint(
        kw["host"], kw["port"], kw["user"], kw.get("password") or "", kw.get("database") or ""
    )
    adapter = FairFloorAdapter(2, endpoint=server)
    await adapter.open()
    tasks = 8
    try:
        async with asyncio.timeout(TEST_TIMEOUT):
            result = await run_tasks(adapter, Workload("W3", "tiny", tasks, "select1"), 0.1, 0.5)
    finally:
        await adapter.close()
    assert result.ops > 0 and not result.timed_out
    # Counted in loans, not time: in order, a waiter sees at most (tasks - 1) loans to others.
    assert result.queue_turns is not None
    assert result.queue_turns <= (tasks - 1) / (tasks - 2)
    assert result.fairness is not None and result.fairness > 0.5


def test_without_a_compiler_the_floor_is_skipped_saying_what_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bench.fair_floor

    def no_compiler() -> ModuleType:
        raise RuntimeError("building pools.pyx failed: gcc: not found")

    monkeypatch.setattr(bench.fair_floor, "load", no_compiler)
    with pytest.raises(Unavailable) as caught:
        FairFloorAdapter(2)
    # What the bench's report shows of it: the text before the first colon.
    assert str(caught.value).split(":")[0] == (
        "bench.fair_floor not built, it needs Cython and a C compiler (pip install -e '.[bench]')"
    )
    assert "gcc: not found" in str(caught.value)


def _row(loop: str, workload: str, name: str, ops: float) -> dict[str, Any]:
    return {
        "loop": loop,
        "workload": workload,
        "contender": name,
        "ops_per_s": ops,
        "fair_cycles": 1.0,
        "queue_turns": 1.0,
        "fairness": 1.0,
        "wait_max_ms": 1.0,
    }


def _targets(summary: list[dict[str, Any]]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "summary": summary,
        "settings": {"loops": ["asyncio"], "workloads": ["W4"], "size": 16},
        "startup": {},
        "memory": {},
    }
    return {t["target"]: t for t in _report.targets(results)}


def test_the_report_prices_order_and_aiopools_own_work_against_the_floor() -> None:
    base = [_row("asyncio", "W4", "aiopool", 900.0), _row("asyncio", "W4", "asyncmy", 1000.0)]
    without = _targets(base)
    assert not [name for name in without if "fair floor" in name]
    with_floor = _targets([*base, _row("asyncio", "W4", "fair-floor", 1200.0)])
    order = with_floor["W4 ops/s: fair floor ÷ asyncmy"]
    ours = with_floor["W4 ops/s: aiopool ÷ fair floor"]
    assert order["measured"] == pytest.approx(1.2)
    assert ours["measured"] == pytest.approx(0.75)
    assert order["threshold"] == ours["threshold"] == "(context)"
    assert with_floor["W4 ops/s ÷ asyncmy"]["pass"] is False  # the target is still aiopool's own

"""``python -m bench.cython_floor [--loop asyncio|uvloop|both] [--pairs N] [--rounds R]``."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .._adapters import MYSQL_SERVER, Endpoint
from .._cython import build_module

HERE = Path(__file__).resolve().parent


def build(into: Path) -> Any:
    """Compile floor.pyx against the installed asyncmy and import it."""
    import asyncmy

    include = str(Path(asyncmy.__file__).resolve().parent.parent)
    return build_module(HERE / "floor.pyx", "floor", into, [include])


class PythonMethods:
    """Interpreted ``acquire``/``release`` over the Cython books, shaped like aiopool's."""

    def __init__(self, books: Any) -> None:
        self._lend = books.lend
        self._give_back = books.give_back
        self._lend_hooks = False
        self._return_hooks = False

    async def acquire(self, timeout: float | None = None) -> Any:
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must not be negative")
        conn = self._lend()
        if conn is not None:
            if self._lend_hooks:
                pass
            return conn
        raise RuntimeError("the floor has no slow path")

    async def release(self, conn: Any) -> None:
        slot = self._give_back(conn)
        if slot is not None:
            if self._return_hooks:
                pass
            return
        raise RuntimeError("the floor has no slow return")


async def pairs(pool: Any, n: int) -> float:
    """Seconds for ``n`` acquire + release pairs (asyncmy's release is awaited as it returns)."""
    start = time.perf_counter()
    for _ in range(n):
        conn = await pool.acquire()
        await pool.release(conn)
    return time.perf_counter() - start


async def measure(
    floor: Any, n: int, rounds: int, endpoint: Endpoint = MYSQL_SERVER
) -> dict[str, list[float]]:
    import asyncmy

    from aiopool import AsyncConnectionPool

    kwargs = endpoint.mysql()
    loop = asyncio.get_running_loop()
    conns = [await asyncmy.connect(**kwargs) for _ in range(2)]
    contenders: dict[str, Any] = {
        "FloorPool (Cython coroutines)": floor.FloorPool(conns[0], loop),
        "PythonMethods (interpreted coroutines)": PythonMethods(floor.Books(conns[1], loop)),
    }
    aiopool = AsyncConnectionPool(endpoint.url("mysql"), min_size=1, max_size=1)
    await aiopool.open(wait=True)
    contenders["aiopool (as installed)"] = aiopool
    reference = await asyncmy.create_pool(minsize=1, maxsize=1, **kwargs)
    ratios: dict[str, list[float]] = {name: [] for name in contenders}
    try:
        for pool in [*contenders.values(), reference]:
            await pairs(pool, 1000)
        for _ in range(rounds):
            base = await pairs(reference, n)
            for name, pool in contenders.items():
                ratios[name].append(base / await pairs(pool, n))
    finally:
        reference.close()
        await reference.wait_closed()
        await aiopool.close()
        for conn in conns:
            conn.close()
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cython_floor", description=__doc__)
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="both")
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cython-floor-") as tmp:
        floor = build(Path(tmp))
        runners: list[tuple[str, Callable[[Awaitable[Any]], Any]]] = []
        if args.loop in ("asyncio", "both"):
            runners.append(("asyncio", asyncio.run))
        if args.loop in ("uvloop", "both"):
            import uvloop

            runners.append(("uvloop", uvloop.run))
        from aiopool import _build

        print(f"aiopool's {_build.implementation()} build; ops/s ÷ asyncmy's pool, same process")
        for loop_name, run in runners:
            for name, values in run(measure(floor, args.pairs, args.rounds)).items():
                shown = " ".join(f"{v:.2f}" for v in values)
                print(f"{loop_name:8} {name:40} median {statistics.median(values):.2f}  ({shown})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""``python -m bench.cython_floor``: the Cython floor builds against the installed asyncmy and runs.

docs/benchmarks.md ("Where the rest of W1 is") and the README quote its
ratios; this keeps the tool that produced them working.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiopool._config import parse_url
from bench._adapters import Endpoint
from bench.cython_floor.__main__ import build, measure


def test_the_floor_builds_and_times_every_contender_against_asyncmys_pool(
    tmp_path: Path, database_url: str
) -> None:
    kw = parse_url(database_url)
    server = Endpoint(
        kw["host"], kw["port"], kw["user"], kw.get("password") or "", kw.get("database") or ""
    )
    floor = build(tmp_path)
    ratios = asyncio.run(measure(floor, 200, 1, server))
    assert set(ratios) == {
        "FloorPool (Cython coroutines)",
        "PythonMethods (interpreted coroutines)",
        "aiopool (as installed)",
    }
    assert all(len(values) == 1 and values[0] > 0 for values in ratios.values())

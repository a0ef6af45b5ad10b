"""Leaving the pool's code leaves no exception behind in the caller's ``sys.exc_info()``.

A mypyc-compiled coroutine keeps the exception it is handling in the thread's
state, not in a frame of its own.  If an ``except`` (or ``finally``) block of
one suspends at an ``await``, that exception stays set once the block is
left: ``sys.exc_info()`` still returns it, every later exception gets it as
``__context__``, and a bare ``raise`` would raise it again.  Measured before
the fix: it stayed set for the whole thread, under asyncio and uvloop, even
after ``asyncio.run()`` had returned.  The compiled modules therefore never
await inside a handler; the first test keeps it so, the others check the
outcome on whichever build runs them (``make test`` runs both).
"""

from __future__ import annotations

import ast
import asyncio
import gc
import sys
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from aiopool import AsyncConnectionPool
from aiopool._build import COMPILED_MODULES
from tests.support.fakes import FakeServer
from tests.support.pooltools import check_invariants, fake_pool, settle


def _source(module: str) -> Path:
    # The compiled build's modules are extension modules: read the sources.
    return Path(__file__).resolve().parents[1] / (module.replace(".", "/") + ".py")


def _awaits_in_handlers(tree: ast.AST) -> list[int]:
    """Lines of every await (or async with/for) inside an except or finally block."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try | ast.TryStar):
            for block in [*node.handlers, *node.finalbody]:
                for found in ast.walk(block):
                    if isinstance(found, ast.Await | ast.AsyncWith | ast.AsyncFor):
                        lines.add(found.lineno)
    return sorted(lines)


def test_no_compiled_module_awaits_inside_an_except_or_finally_block() -> None:
    offenders = {}
    for module in COMPILED_MODULES:
        lines = _awaits_in_handlers(ast.parse(_source(module).read_text()))
        if lines:
            offenders[module] = lines
    assert offenders == {}, f"await inside except/finally (mypyc leaks exc_info): {offenders}"


def test_the_static_check_finds_an_await_in_a_handler() -> None:
    tree = ast.parse(
        "async def f():\n"
        "    try:\n"
        "        await g()\n"
        "    except BaseException:\n"
        "        await h()\n"
        "        raise\n"
        "    try:\n"
        "        pass\n"
        "    finally:\n"
        "        await k()\n"
    )
    assert _awaits_in_handlers(tree) == [5, 10]


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


async def _leave_by_timeout(pool: AsyncConnectionPool, scenario: str) -> None:
    if scenario == "waiting":
        async with pool.connection():
            for enter in (pool.connection().__aenter__, pool.acquire):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.02):
                        await enter()
        return
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            async with pool.connection() as conn:
                await conn.query()
                if scenario == "rolling-back":
                    raise ValueError("rolled back on the way out")


SCENARIOS: dict[str, dict[str, object]] = {
    "waiting": {},
    "checking": {"ping_delay": 1.0},
    "committing": {"commit_delay": 1.0},
    "commit-failing": {"commit_error": ConnectionResetError("commit failed")},
    "rolling-back": {"rollback_delay": 1.0},
}


async def _in_a_fresh_task(body: Callable[[], Awaitable[None]]) -> None:
    # Each scenario in a task of its own: one that leaks must not pass its
    # leftovers to the next or hide them from it.
    async def run() -> None:
        assert sys.exc_info() == (None, None, None)
        await body()
        assert sys.exc_info() == (None, None, None), "exception left behind"
        try:
            raise LookupError("a later, unrelated error")
        except LookupError as later:
            assert later.__context__ is None, f"chained to {later.__context__!r}"

    await asyncio.create_task(run())


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_no_exception_left_behind(server: FakeServer, scenario: str) -> None:
    for name, value in SCENARIOS[scenario].items():
        setattr(server, name, value)
    check_after = 0 if scenario == "checking" else 30.0
    async with fake_pool(server, min_size=1, max_size=1, check_after=check_after) as pool:
        if scenario == "commit-failing":

            async def body() -> None:
                with pytest.raises(ConnectionResetError):
                    async with pool.connection() as conn:
                        await conn.query()

        else:

            async def body() -> None:
                await _leave_by_timeout(pool, scenario)

        await _in_a_fresh_task(body)
        await settle(pool)
        check_invariants(pool, server)


class CommitFailed(ConnectionResetError):
    """A commit error that can be weakly referenced (built-in exceptions cannot)."""


async def test_a_failed_commit_leaves_no_reference_cycle(server: FakeServer) -> None:
    # The error is held in a local while the return runs; ``except ... as``
    # would have dropped it, a plain local keeps frame and traceback in a
    # cycle that only the garbage collector frees.
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        await settle(pool)
        errors = []
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                server.commit_error = CommitFailed("commit failed")
                try:
                    async with pool.connection() as conn:
                        await conn.query()
                except CommitFailed as exc:
                    errors.append(weakref.ref(exc))
            server.commit_error = None
            await settle(pool)
            assert [ref() for ref in errors] == [None, None, None]
        finally:
            gc.enable()
        check_invariants(pool, server)

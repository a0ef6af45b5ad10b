"""The pool's ``acquire`` and ``release`` are the functions in ``_loans``, as documented.

The class declares their signatures for type checkers and the documentation
under ``TYPE_CHECKING`` and binds the functions at run time, so nothing
else would notice the two drifting apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import anyio
import pytest

from aiopool import AsyncConnectionPool, NullConnectionPool, _loans
from tests.support.fakes import FakeServer
from tests.support.pooltools import check_invariants, fake_pool, settle

# The sources, whichever build runs: a compiled module has no AST to read.
SOURCES = Path(__file__).parent.parent / "aiopool"

METHODS = ("acquire", "release")


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


def _functions(tree: ast.AST) -> dict[str, ast.AsyncFunctionDef]:
    return {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.AsyncFunctionDef) and node.name in METHODS
    }


def _shape(node: ast.AsyncFunctionDef) -> tuple[object, ...]:
    args = node.args
    return (
        [(a.arg, ast.unparse(a.annotation) if a.annotation else None) for a in args.args[1:]],
        [ast.unparse(d) for d in args.defaults],
        ast.unparse(node.returns) if node.returns else None,
        ast.get_docstring(node),
    )


def _declared() -> dict[str, ast.AsyncFunctionDef]:
    tree = ast.parse((SOURCES / "_pool.py").read_text())
    pool = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "AsyncConnectionPool"
    )
    stubs = [
        n for n in pool.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    ]
    assert len(stubs) == 1, "the class declares the hot methods in one TYPE_CHECKING block"
    return _functions(stubs[0])


@pytest.mark.parametrize("name", METHODS)
def test_declared_signature_and_docstring_match_the_function(name: str) -> None:
    declared = _declared()[name]
    implemented = _functions(ast.parse((SOURCES / "_loans.py").read_text()))[name]
    assert _shape(declared) == _shape(implemented)
    assert implemented.args.args[0].arg == "self"


@pytest.mark.parametrize("name", METHODS)
def test_the_pool_binds_the_function(name: str) -> None:
    function = getattr(_loans, name)
    assert getattr(AsyncConnectionPool, name) is function
    assert getattr(NullConnectionPool, name) is function


async def test_anyio_task_groups_run_and_cancel_the_methods_themselves(server: FakeServer) -> None:
    """``tg.start_soon(pool.acquire)`` and ``tg.start_soon(pool.release, conn)`` work.

    Compiled, both return mypyc coroutines, which ``inspect.iscoroutine``
    does not recognise: anyio before 4.14 refuses them in ``start_soon``
    (documented in getting-started); from 4.14 it wraps every task's
    coroutine in its own, and this is what users of the compiled build get.
    """
    async with fake_pool(server, min_size=1, max_size=1) as pool:
        held = await pool.acquire()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(pool.acquire)  # waits: the pool is exhausted
                while not pool._ledger.waiters:
                    await anyio.sleep(0)
                tg.cancel_scope.cancel()
        assert not pool._ledger.waiters, "the cancelled request left the line"
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.release, held)
        await settle(pool)
        assert len(pool._ledger.idle) == 1 and not pool._ledger.lent_count
        check_invariants(pool, server)

"""The pool's ``acquire`` and ``release`` are the functions in ``_loans``, as documented.

The class declares their signatures for type checkers and the documentation
under ``TYPE_CHECKING`` and binds the functions at run time, so nothing
else would notice the two drifting apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from aiopool import AsyncConnectionPool, NullConnectionPool, _loans

# The sources, whichever build runs: a compiled module has no AST to read.
SOURCES = Path(__file__).parent.parent / "aiopool"

METHODS = ("acquire", "release")


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

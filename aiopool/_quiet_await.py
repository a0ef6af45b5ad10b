"""Awaiting from compiled code without the deprecated three-argument ``throw()``.

When a task is cancelled, Python throws ``CancelledError`` into its
coroutines, each passing it on to what it awaits.  mypyc's ``await`` passes
it on as ``throw(type, value, traceback)``, a form Python 3.12 deprecates for
futures, coroutines and Cython's coroutines alike (mypyc/mypyc#1214, open).
Every cancellation of a compiled ``await`` then warns, and under
warnings-as-errors the warning replaces the ``CancelledError``:
``asyncio.timeout()`` raises a DeprecationWarning instead of TimeoutError.

The compiled modules therefore await through ``quiet()``: on Python 3.12 and
later, in the compiled build, it wraps the awaitable in an iterator whose
``throw()`` takes the triple and passes on the exception alone.  Elsewhere it
returns the awaitable itself (the interpreter passes a cancellation on
without the warning), so the pure build and Python 3.11 pay nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Generator
from typing import Any, Final, Generic, TypeVar

__all__ = ["QuietAwait", "quiet"]

T = TypeVar("T")

# mypyc-compiled modules are extension modules: their __file__ is not a .py.
WRAP: Final = sys.version_info >= (3, 12) and not __file__.endswith(".py")


class QuietAwait(Generic[T]):
    """Awaits ``awaitable``, passing ``throw()`` on in its one-argument form."""

    __slots__ = ("_it",)

    def __init__(self, awaitable: Awaitable[T]) -> None:
        self._it: Generator[Any, Any, T] = awaitable.__await__()

    def __await__(self) -> Generator[Any, Any, T]:
        return self

    def __iter__(self) -> QuietAwait[T]:
        return self

    def __next__(self) -> Any:
        return self._it.send(None)

    def send(self, value: Any) -> Any:
        """Resume the awaited object with ``value``."""
        return self._it.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Throw the exception in, as one argument: the instance if given, else the type."""
        return self._it.throw(typ if val is None else val)

    def close(self) -> None:
        """Close the awaited object (the awaiting coroutine is being closed)."""
        self._it.close()


def quiet(awaitable: Awaitable[T]) -> Awaitable[T]:
    """``awaitable`` itself, or wrapped in a ``QuietAwait`` where mypyc's await needs it."""
    return QuietAwait(awaitable) if WRAP else awaitable

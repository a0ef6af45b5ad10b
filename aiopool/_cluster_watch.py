"""Errors user code catches still reach the cluster's router.

A ``ClusterPool`` learns that a node stopped being what it was from the
errors its connections get: 1290 (``--read-only``), 1792, 1036, 1047, or a
lost connection.  When the user's block raises, the block's exception says
so at release; when the user's code catches the error and carries on, it
would be lost, and the next requests would go to the wrong node until the
next probe.

asyncmy 0.2.18 keeps no last error on a connection, and its
``query_callback`` runs only after a statement succeeded (cursors.pyx:
"a statement that raised is not reported").  So each connection a node pool
opens gets its statement entry points wrapped on the instance: every cursor
statement (``execute``, ``executemany``, ``callproc``) goes through
``Connection.query``, later result sets through ``next_result``, and the
transaction calls are methods of their own.  Only the instance changes:
``type(conn)`` stays ``asyncmy.Connection`` (asyncmy's fast paths test it),
and ``_execute_command``/``_write_bytes``, which asyncmy's prepared-statement
fast path checks for overrides, are left alone.  Statements run through
server-side prepared statements (``stmt_cache_size`` > 0, ``prepare()``)
do not pass through these methods: their errors count only when they leave
the block.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from ._protocols import Connection, ConnectionFactory

__all__ = ["watch", "watching"]

# The Connection methods every user statement or transaction command passes through.
_WATCHED = ("query", "next_result", "commit", "rollback", "begin", "select_db")

ErrorSink = Callable[[BaseException], None]


def watching(factory: ConnectionFactory, sink: ErrorSink) -> ConnectionFactory:
    """``factory``, with every connection it opens reporting its errors to ``sink``."""

    async def connect(**kwargs: Any) -> Connection:
        conn = await factory(**kwargs)
        watch(conn, sink)
        return conn

    return connect


def watch(conn: Connection, sink: ErrorSink) -> None:
    """Report to ``sink`` every exception raised by ``conn``'s statement methods."""
    cls = type(conn)
    ref = weakref.ref(conn)  # the wrappers live on conn: no reference cycle
    for name in _WATCHED:
        method = getattr(cls, name, None)
        if method is not None:
            setattr(conn, name, _wrap(method, ref, sink))


def _wrap(
    method: Callable[..., Awaitable[Any]], ref: weakref.ref[Connection], sink: ErrorSink
) -> Callable[..., Awaitable[Any]]:
    async def watched(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(ref(), *args, **kwargs)
        except Exception as exc:
            sink(exc)
            raise

    return watched

"""``acquire()`` and ``release()``: the pool's two hot methods, written as functions.

The pool class stays interpreted (subclassable, weakly referenced,
patchable) and takes these as its methods, so that the compiled build can
compile them: a compiled coroutine costs less to create and to run than an
interpreted one, and the gate's fields are native reads from compiled code.
Callgrind, one connection, per ``await pool.acquire()`` + ``await
pool.release(conn)``: 5,846 -> 5,237 instructions under uvloop and 5,989 ->
5,338 under asyncio (asyncmy's own pool: 4,455 and 5,674).  Python builds a
bound-method object for a mypyc function at every ``pool.acquire`` (~480
instructions), where it calls a Python function's method directly; with the
bound methods kept in local names a pair takes 4,271 and 4,485.

Compiled, they lose what mypyc's functions lack: ``help()`` shows no
docstring, ``inspect.signature()`` fails on them, and the coroutines they
return fail ``inspect.iscoroutine()`` (anyio before 4.14 refuses them in
``start_soon``).  The pure-Python build keeps all of it; getting-started
says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._common import check_timeout
from ._handout import acquire_slow
from ._protocols import Connection
from ._quiet_await import quiet

if TYPE_CHECKING:
    from ._pool import AsyncConnectionPool

__all__ = ["acquire", "release"]


async def acquire(self: AsyncConnectionPool, timeout: float | None = None) -> Connection:
    """Borrow a connection; give it back with ``release``.

    Waits up to ``timeout`` seconds (default: the pool's ``timeout``) and
    raises ``PoolTimeout`` after that.  Prefer ``connection()``, which
    always gives the connection back.
    """
    # One lookup on the interpreted pool; the gate's fields are native reads.
    gate = self._gate
    if timeout is not None:
        check_timeout("timeout", timeout)
    conn = gate.lend_here()
    if conn is not None:
        if gate.lend_hooks:
            self._lent_now(conn, 0.0, False)
        return conn
    return await quiet(acquire_slow(self, gate, timeout))


async def release(self: AsyncConnectionPool, conn: Connection) -> None:
    """Give back a connection borrowed with ``acquire``.

    An unfinished transaction is rolled back; a connection in an unknown
    state is closed and replaced.  Releasing a connection twice, or one
    from another pool, raises ``PoolError`` and changes nothing.
    """
    # Fast path (Gate.return_here; connection()'s return has its own copy):
    # open pool, no reset configured, and the connection clean by the
    # server's status flags: no round trip.  A socket that died while lent
    # is caught at the next hand-out or maintenance round; a locally closed
    # one (cancelled) here.  The path does not test the caller's thread and
    # loop: that test costs 6 % of a pair (callgrind), and like asyncio
    # itself (which checks threads only in debug mode), asyncpg and
    # psycopg_pool, the pool trusts the caller here; the slow return, which
    # needs the pool's loop, checks it.
    gate = self._gate
    try:
        slot = gate.return_here(conn)
    except AttributeError:
        if gate.ledger.slot_of(conn) is not None:
            raise
        raise self._not_lent_error(conn) from None  # not a connection at all
    if slot is not None:
        if gate.return_hooks:
            self._report_return(slot)
        return
    self._check_release_loop(conn)
    await quiet(self._return_slow(conn, None, None))

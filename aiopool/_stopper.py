"""Stopping on the server a statement whose borrower was cancelled while it ran.

asyncmy closes a connection whose task is cancelled while it waits for the
server's reply, but the server does not notice: the statement runs on, and
its transaction keeps its locks, until the statement ends (measured: a
cancelled ``SELECT SLEEP(5)`` after an ``UPDATE`` made another session's
update of the row time out).  Only ``KILL QUERY <id>`` sent on another
connection stops it.  asyncpg and libpq do the same for PostgreSQL, and open
a connection for each cancel request; here one side connection at a time
sends every ``KILL QUERY`` waiting, in turn, and is closed when none is left:
a burst of cancellations opens one connection, not one each.  It is not one
of the pool's own, so it never takes a place a borrower waits for (the
connections that wait may be the ones the cancelled statement's locks block).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from ._common import describe, logger
from ._health import close_politely, errno_of
from ._protocols import Connection
from ._tasks import TaskSet

__all__ = ["StatementStopper", "running_statement"]

# asyncmy's close reason for a connection closed because its task was
# cancelled while a command waited for the server's reply (connection.pyx).
CANCELLED_MID_COMMAND = "Cancelled during execution"
# ER_NO_SUCH_THREAD: the statement, and its session, already ended.
UNKNOWN_THREAD = 1094


def running_statement(conn: Connection) -> int | None:
    """The server thread still running a statement its cancelled borrower left, if any.

    Only a connection asyncmy closed because its task was cancelled while a
    command was in flight qualifies; a borrower cancelled between statements
    left nothing running.
    """
    if getattr(conn, "_close_reason", None) != CANCELLED_MID_COMMAND:
        return None
    try:
        thread_id = conn.thread_id()
    except Exception:  # no handshake to read it from: nothing to name
        return None
    return thread_id if isinstance(thread_id, int) and thread_id > 0 else None


class StatementStopper:
    """Sends ``KILL QUERY`` for statements left running, from one side connection at a time."""

    __slots__ = ("_connect", "_name", "_pending", "_task", "_tasks", "_timeout")

    def __init__(
        self,
        connect: Callable[[], Awaitable[Connection]],
        tasks: TaskSet,
        *,
        name: str,
        timeout: float,
    ) -> None:
        self._connect = connect
        self._tasks = tasks
        self._name = name
        self._timeout = timeout
        self._pending: deque[int] = deque()
        # The task sending the pending KILLs, if one runs; a stop() while it
        # runs only queues the id: the task sends it before it ends.
        self._task: asyncio.Task[None] | None = None

    def stop(self, thread_id: int) -> None:
        """Ask the server to stop the statement its thread ``thread_id`` runs (soon, in a task)."""
        if not self._tasks.usable():
            return  # the pool's loop is gone: nothing can be sent
        self._pending.append(thread_id)
        if self._task is None:
            task = self._tasks.spawn(self._send_all(), name="aiopool-kill-query")
            task.add_done_callback(self._stopped)
            self._task = task

    def _stopped(self, task: asyncio.Task[None]) -> None:
        # Cancelled by close() (possibly before its first step): the ids it
        # did not send are dropped, and a later stop() may start another.
        if self._task is task:
            self._task = None
            if self._pending:
                logger.debug(
                    "pool %r: %d KILL QUERY not sent: the pool closed",
                    self._name,
                    len(self._pending),
                )
                self._pending.clear()

    async def _send_all(self) -> None:
        # Ids queued while a round closes its side connection get another
        # round; the last check and the reset of _task happen in the same
        # step, so no stop() falls between them and is left unsent.
        while self._pending:
            await self._round()
        self._task = None

    async def _round(self) -> None:
        conn: Connection | None = None
        current: int | None = None
        try:
            async with asyncio.timeout(self._timeout):
                conn = await self._connect()
            while self._pending:
                current = self._pending.popleft()
                async with asyncio.timeout(self._timeout):
                    await self._kill_query(conn, current)
                current = None
        except Exception as exc:
            left = len(self._pending) + (current is not None)
            self._pending.clear()
            logger.warning(
                "pool %r: could not stop %d statement(s) left running on the server by "
                "cancelled borrowers (KILL QUERY): %s",
                self._name,
                left,
                describe(exc),
            )
        finally:
            if conn is not None:
                await close_politely(conn, self._timeout)

    async def _kill_query(self, conn: Connection, thread_id: int) -> None:
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(f"KILL QUERY {int(thread_id)}")
        except Exception as exc:
            if errno_of(exc) != UNKNOWN_THREAD:
                raise
            return  # it ended on its own meanwhile
        logger.debug("pool %r: stopped the statement of thread %d", self._name, thread_id)

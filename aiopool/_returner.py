"""The slow return: roll back, reset, or close a connection coming back from a borrower.

It runs in a pool task that the borrower awaits shielded: cancelling the
borrower, even again and again as anyio task groups do, cannot leave the
connection half-returned.  A connection in an unknown state (cancelled
mid-query, a connection error, unread results, a failed clean-up) is closed
and replaced, never lent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Literal

from ._common import describe, logger
from ._health import has_pending_result, is_broken, is_connection_error
from ._ledger import OPEN, Ledger
from ._listeners import Listeners
from ._protocols import Connection, ConnectionCallback
from ._reset import reset_session
from ._slot import Slot
from ._stopper import running_statement
from .errors import PoolError
from .events import ReleaseEvent, ReleaseOutcome

__all__ = ["Returner"]


class Returner:
    """Cleans up returned connections and gives them back to the ledger."""

    __slots__ = (
        "_baseline",
        "_configure",
        "_ledger",
        "_listeners",
        "_name",
        "_notify",
        "_reset",
        "_reset_session",
        "_stop_statement",
        "_timeout",
    )

    def __init__(
        self,
        ledger: Ledger,
        listeners: Listeners,
        *,
        name: str,
        timeout: float,
        reset_session: bool,
        baseline: str,
        configure: ConnectionCallback | None,
        reset: ConnectionCallback | None,
        notify: Callable[[], Awaitable[None]],
        stop_statement: Callable[[int], None] | None,
    ) -> None:
        self._ledger = ledger
        self._listeners = listeners
        self._name = name
        self._timeout = timeout
        self._reset_session = reset_session
        self._baseline = baseline
        self._configure = configure
        self._reset = reset
        self._notify = notify
        # Given a server thread id, stops the statement a cancelled borrower
        # left running there (KILL QUERY); None when the pool should not.
        self._stop_statement = stop_statement

    async def finish(self, slot: Slot, held: float, exc: BaseException | None) -> None:
        """Decide what the return does, do the round trips it needs, settle the slot."""
        try:
            outcome = await self._settle(slot, exc)
        except asyncio.CancelledError:
            # Only the pool cancels its own tasks: close() cut this return
            # short (a round trip on a hung link); the task's done-callback
            # closes the slot.  The borrower awaiting it (shielded) was not
            # cancelled, so it must not see CancelledError: it returns.
            return
        if self._listeners.release:
            self._listeners.emit(self._listeners.release, ReleaseEvent(self._name, held, outcome))
        await self._notify()

    async def _settle(self, slot: Slot, exc: BaseException | None) -> ReleaseOutcome:
        conn = slot.conn
        assert conn is not None
        ledger = self._ledger
        unknown = exc is not None and (not isinstance(exc, Exception) or is_connection_error(exc))
        now = monotonic()
        if ledger.state != OPEN:
            ledger.retire(slot, "pool_closed", now)
            return "closed"
        if unknown or is_broken(conn) or has_pending_result(conn):
            if self._stop_statement is not None:
                thread_id = running_statement(conn)
                if thread_id is not None:
                    self._stop_statement(thread_id)
            ledger.counters.returns_bad += 1
            logger.debug(
                "pool %r: closing a connection returned in an unknown state (%s)",
                self._name,
                describe(exc),
            )
            ledger.retire(slot, "returned_bad", now, polite=not is_broken(conn))
            return "closed"
        if now >= slot.expires_at:
            ledger.retire(slot, ledger.expiry_reason(slot), now)
            return "closed"
        cleaned = await self._clean_up(conn)
        now = monotonic()
        if cleaned is None:
            ledger.counters.returns_bad += 1
            ledger.retire(slot, "returned_bad", now, polite=False)
            return "closed"
        ledger.refresh(slot, now)
        ledger.put_back(slot, now)
        return "closed" if slot.closing else cleaned

    async def _clean_up(self, conn: Connection) -> Literal["reused", "reset"] | None:
        """Roll back and reset a returned connection; None if that failed."""
        outcome: Literal["reused", "reset"] = "reused"
        try:
            async with asyncio.timeout(self._timeout):
                if self._reset_session:
                    await reset_session(conn, self._baseline)  # also rolls back
                    if self._configure is not None:
                        await self._configure(conn)
                    outcome = "reset"
                elif conn.get_transaction_status():
                    await conn.rollback()
                    outcome = "reset"
                if self._reset is not None:
                    await self._reset(conn)
                    outcome = "reset"
                if conn.get_transaction_status():
                    raise PoolError("the reset callback left a transaction open")
        except Exception as exc:
            logger.info(
                "pool %r: cleaning up a returned connection failed (%s); closing it",
                self._name,
                describe(exc),
            )
            return None
        return outcome

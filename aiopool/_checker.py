"""Checking connections: before a hand-out, in the background, and on ``pool.check()``.

A connection that fails a check is reported to the ledger as lost, which
closes it and, if it never served anyone, paces the openers that replace it.
Pings use ``reconnect=False``: asyncmy's default would silently reconnect
and change the session under the user.
"""

from __future__ import annotations

import asyncio
from time import monotonic

from ._common import describe, logger
from ._health import is_broken
from ._ledger import Ledger
from ._protocols import Connection, ConnectionCallback
from ._slot import Slot

__all__ = ["CheckFailed", "Checker", "is_fresh"]

# The least time a hand-out check (ping) gets, even past the caller's deadline.
_MIN_CHECK_BUDGET = 0.5


def is_fresh(slot: Slot, now: float) -> bool:
    """Checked recently enough (``check_after``, never past expiry) and no EOF seen."""
    return now < slot.fresh_until and slot.conn is not None and not slot.stream.gone()


class CheckFailed(Exception):
    """The pool's ``check`` callback rejected a connection (the cause is chained)."""

    __module__ = "aiopool"


class Checker:
    """Pings and runs the ``check`` callback; tells the ledger what it found."""

    __slots__ = ("_check", "_ledger", "_name", "_timeout")

    def __init__(
        self, ledger: Ledger, *, name: str, check: ConnectionCallback | None, timeout: float
    ) -> None:
        self._ledger = ledger
        self._name = name
        self._check = check
        self._timeout = timeout

    async def usable(self, slot: Slot, deadline: float) -> bool:
        """Check a slot about to be handed out; False (and closed) if it is bad."""
        conn = slot.conn
        assert conn is not None
        ledger = self._ledger
        now = monotonic()
        if is_fresh(slot, now):
            return True
        if is_broken(conn):
            ledger.lost(slot, ConnectionError("the server closed the connection"), now, "broken")
            return False
        if now >= slot.expires_at:
            ledger.retire(slot, "lifetime", now)
            return False
        # At least a short budget: a ping cut off by the caller's own deadline
        # would close a healthy connection (asyncmy closes on cancel).
        budget = min(max(deadline - now, _MIN_CHECK_BUDGET), self._timeout)
        try:
            await self._probe(conn, budget)
        except asyncio.CancelledError:
            # The ping may be half-way: its reply would reach the next user.
            ledger.retire(slot, "broken", monotonic(), polite=False)
            raise
        except Exception as exc:
            logger.info(
                "pool %r: connection failed its check (%s); replacing it", self._name, describe(exc)
            )
            ledger.lost(slot, exc, monotonic(), "check_failed")
            return False
        slot.rebind(conn)
        ledger.refresh(slot, monotonic())
        return True

    async def recheck_idle(self, slot: Slot, *, run_check: bool = False) -> bool:
        """Ping a slot taken out of the idle stack; put it back or close it. True if healthy."""
        conn = slot.conn
        assert conn is not None
        ledger = self._ledger
        try:
            if is_broken(conn):
                raise ConnectionError("the server closed the connection")
            await self._probe(conn, self._timeout, run_check=run_check)
        except Exception as exc:
            logger.info("pool %r: idle connection lost (%s)", self._name, describe(exc))
            if isinstance(exc, CheckFailed):
                ledger.lost(slot, exc, monotonic(), "check_failed")
            else:
                ledger.lost(slot, exc, monotonic(), "broken")
            return False
        slot.rebind(conn)
        now = monotonic()
        ledger.refresh(slot, now)
        ledger.put_back(slot, now)
        return True

    async def _probe(self, conn: Connection, budget: float, *, run_check: bool = True) -> None:
        async with asyncio.timeout(budget):
            await conn.ping(reconnect=False)
            if run_check and self._check is not None:
                try:
                    await self._check(conn)
                except Exception as exc:
                    raise CheckFailed(f"the check callback failed: {describe(exc)}") from exc

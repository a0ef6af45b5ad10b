"""The pool's background task: a supervised loop of maintenance rounds.

The decisions live in the pool (``_plan_maintenance``); this module only
paces the rounds and makes sure one failing round never ends the loop — a
maintenance task that dies silently leaves a pool that looks open and never
refills (psycopg #1419).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from time import monotonic
from typing import Protocol

from ._base import _OPEN, _describe
from ._health import is_broken
from ._leaks import describe_origin
from ._opening import Opening
from ._slot import Slot

__all__ = ["run_maintenance"]

logger = logging.getLogger("aiopool")


class Maintained(Protocol):
    """What the maintenance loop needs from a pool."""

    name: str

    def _maintenance_interval(self) -> float: ...

    async def _maintain(self) -> None: ...


async def run_maintenance(pool: Maintained) -> None:
    """Run maintenance rounds until cancelled (by ``close()``)."""
    while True:
        await asyncio.sleep(pool._maintenance_interval())
        try:
            await pool._maintain()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("pool %r: maintenance round failed; will retry", pool.name)


class Maintenance(Opening):
    """What one maintenance round does: retire, shrink, keep alive, refill, report leaks."""

    def _maintenance_interval(self) -> float:
        lim = self._limits
        shortest = min(
            lim.max_lifetime,
            lim.max_idle,
            lim.keepalive or math.inf,
            self._leak_threshold or math.inf,
        )
        return min(1.0, max(0.01, shortest / 4))

    async def _maintain(self) -> None:
        """One maintenance round: retire, shrink, keep alive, refill."""
        if self._state != _OPEN:
            return
        now = monotonic()
        retire, ping = self._plan_maintenance(now)
        # Pool tasks, awaited with wait(): close() cancelling this round must
        # not strand the slots taken out of the idle stack.
        jobs = [t for t in map(self._spawn_close, retire) if t is not None]
        jobs.extend(self._spawn(self._keepalive(slot), slot) for slot in ping)
        if jobs:
            await asyncio.wait(jobs)
        self._grow()
        if self._backoff.failing:
            self._maybe_report_outage(now)
        if self._leak_threshold is not None:
            self._report_long_loans(now, self._leak_threshold)

    def _report_long_loans(self, now: float, threshold: float) -> None:
        for slot in self._lent.values():
            if not slot.warned and now - slot.lent_at >= threshold:
                slot.warned = True
                logger.warning(
                    "pool %r: a connection has been checked out for %.1f s "
                    "(leak_threshold=%g s); possible leak%s",
                    self.name,
                    now - slot.lent_at,
                    threshold,
                    describe_origin(slot.origin),
                )

    def _plan_maintenance(self, now: float) -> tuple[list[Slot], list[Slot]]:
        """Take out of the idle stack the slots to retire and the ones to ping."""
        lim = self._limits
        keepalive = lim.keepalive
        retire: list[Slot] = []
        ping: list[Slot] = []
        keep: deque[Slot] = deque()
        surplus = self._size - lim.min_size
        # Oldest-used first (the stack's bottom), so shrinking closes the
        # connections that were least needed.
        for slot in self._idle:
            worn_out = now >= slot.expires_at or slot.generation != self._generation
            unneeded = surplus > 0 and now - slot.idle_since >= lim.max_idle
            if worn_out or unneeded:
                retire.append(slot)
                surplus -= 1
            elif is_broken(slot.conn):  # type: ignore[arg-type]
                ping.append(slot)  # seen dead already: _keepalive drops it, no round trip
            elif keepalive is not None and now - slot.idle_since >= keepalive:
                ping.append(slot)
            else:
                keep.append(slot)
        self._idle = keep
        return retire, ping

    async def _keepalive(self, slot: Slot) -> None:
        conn = slot.conn
        assert conn is not None
        try:
            if is_broken(conn):
                raise ConnectionError("the server closed the connection")
            async with asyncio.timeout(self._options.connect_timeout):
                await conn.ping(reconnect=False)
        except Exception as exc:
            logger.info("pool %r: idle connection lost (%s)", self.name, _describe(exc))
            self._counters.connections_lost += 1
            await self._close_slot(slot, polite=False)
            return
        now = monotonic()
        slot.idle_since = now
        slot.fresh_until = min(now + self._check_after, slot.expires_at)
        if self._state == _OPEN:
            self._put_back(slot)
        else:
            await self._close_slot(slot)

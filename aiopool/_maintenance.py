"""The pool's background task: a supervised loop of maintenance rounds.

The decisions (which idle connections retire, which need a ping, whether to
refill) are the ledger's; this worker paces the rounds, runs the pings in
pool tasks, and makes sure one failing round never ends the loop — a
maintenance task that dies silently leaves a pool that looks open and never
refills (psycopg #1419).
"""

from __future__ import annotations

import asyncio
import functools
import math
from time import monotonic

from ._checker import Checker
from ._closer import Closer
from ._common import logger
from ._leaks import describe_origin
from ._ledger import OPEN, Ledger
from ._opener import Opener
from ._tasks import TaskSet

__all__ = ["Maintenance"]


class Maintenance:
    """Retire, shrink, keep alive, refill and report long loans, every interval."""

    __slots__ = (
        "_checker",
        "_closer",
        "_ledger",
        "_name",
        "_opener",
        "_tasks",
        "busy",
        "leak_threshold",
    )

    def __init__(
        self,
        ledger: Ledger,
        tasks: TaskSet,
        checker: Checker,
        closer: Closer,
        opener: Opener,
        *,
        name: str,
        leak_threshold: float | None,
    ) -> None:
        self._ledger = ledger
        self._tasks = tasks
        self._checker = checker
        self._closer = closer
        self._opener = opener
        self._name = name
        self.leak_threshold = leak_threshold
        # True during a round, which holds slots outside the idle stack.
        self.busy = False

    def interval(self) -> float:
        """Seconds between rounds: a quarter of the shortest limit, within 10 ms .. 1 s."""
        lim = self._ledger.limits
        shortest = min(
            lim.max_lifetime,
            lim.max_idle,
            lim.keepalive or math.inf,
            self.leak_threshold or math.inf,
        )
        return min(1.0, max(0.01, shortest / 4))

    async def run(self) -> None:
        """Run maintenance rounds until cancelled (by ``close()``)."""
        while True:
            await asyncio.sleep(self.interval())
            self.busy = True
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("pool %r: maintenance round failed; will retry", self._name)
            finally:
                self.busy = False

    async def round(self) -> None:
        """One maintenance round."""
        ledger = self._ledger
        if ledger.state != OPEN:
            return
        now = monotonic()
        ping = ledger.plan_maintenance(now)
        # Pool tasks, awaited with wait(): close() cancelling this round must
        # not strand the slots taken out of the idle stack.
        jobs = [
            self._tasks.spawn(
                self._checker.recheck_idle(slot), functools.partial(self._closer.reclaim, slot)
            )
            for slot in ping
        ]
        if jobs:
            await asyncio.wait(jobs)
        self._opener.maybe_report_outage(now)
        if self.leak_threshold is not None:
            self._report_long_loans(now, self.leak_threshold)

    def _report_long_loans(self, now: float, threshold: float) -> None:
        for slot in self._ledger.report_long_loans(now, threshold):
            logger.warning(
                "pool %r: a connection has been checked out for %.1f s "
                "(leak_threshold=%g s); possible leak%s",
                self._name,
                now - slot.lent_at,
                threshold,
                describe_origin(slot.origin),
            )

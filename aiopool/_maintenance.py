"""The pool's background task: a supervised loop of maintenance rounds.

The decisions live in the pool (``_plan_maintenance``); this module only
paces the rounds and makes sure one failing round never ends the loop — a
maintenance task that dies silently leaves a pool that looks open and never
refills (psycopg #1419).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

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

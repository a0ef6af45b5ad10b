"""The maintenance round on the fake server: what it closes, what it keeps."""

from __future__ import annotations

from time import monotonic

from tests.support.fakes import FakeServer
from tests.support.pooltools import check_invariants, fake_pool, settle


async def test_a_round_closing_surplus_idle_counts_the_dead_ones_as_leaving() -> None:
    # min_size=1 and three idle connections: two unused past max_idle, and one
    # used recently that the server has just ended (seen dead). The dead one
    # goes anyway, so only one of the other two is surplus: the round must
    # keep the other, not close both and leave the pool empty until a new
    # connection is open (below min_size, a request then waits for a connect).
    server = FakeServer()
    async with fake_pool(server, min_size=1, max_size=3, max_idle=50.0) as pool:
        conns = [await pool.acquire() for _ in range(3)]
        for conn in conns:
            await pool.release(conn)
        await settle(pool)
        ledger = pool._ledger
        assert len(ledger.idle) == 3
        now = monotonic()
        *unused, recent = list(ledger.idle)  # the stack's top was used last
        for slot in unused:
            slot.idle_since = now - 100.0
        recent.conn.dead = True  # type: ignore[union-attr]
        opened = server.opened

        await pool._maintenance.round()
        left = [s for s in ledger.idle if s in unused]
        await settle(pool)

        assert left, "both healthy idle connections were closed with the dead one"
        assert server.opened == opened, "a connection was opened to replace one closed for nothing"
        check_invariants(pool, server)
        assert len(ledger.idle) == 1

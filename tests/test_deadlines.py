"""The wait queue's shared timer on its own: order, early deadlines, served waiters."""

from __future__ import annotations

import asyncio
from time import monotonic

from aiopool._deadlines import Deadlines
from aiopool._waiters import Waiter


def _timed_out(waiter: Waiter) -> bool:
    return waiter.done() and waiter.result() is None


def _started() -> tuple[asyncio.AbstractEventLoop, Deadlines]:
    """The running loop and a ``Deadlines`` bound to it, as the pool's gate binds it."""
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    deadlines.loop = loop
    return loop, deadlines


async def test_waiters_time_out_in_order_behind_one_timer() -> None:
    loop, deadlines = _started()
    start = monotonic()
    # What is checked is the order and that no deadline comes early, not how
    # soon a loaded machine runs the timer: a sleep that overshoots would
    # otherwise decide (it did in CI, with a 0.05 s sleep against 0.06 s).
    offsets = [0.02, 0.04, 0.06, 0.5, 0.52]
    waiters: list[Waiter] = [loop.create_future() for _ in offsets]
    expired: list[tuple[int, float]] = []
    for i, (waiter, offset) in enumerate(zip(waiters, offsets, strict=True)):
        assert deadlines.add(waiter, start + offset) is None  # the shared timer
        waiter.add_done_callback(lambda _, i=i: expired.append((i, monotonic())))
    await asyncio.wait(waiters, timeout=30.0)
    await asyncio.sleep(0)  # the last done callback
    assert all(_timed_out(w) for w in waiters)
    assert [i for i, _ in expired] == list(range(len(offsets)))
    assert all(at >= start + offsets[i] for i, at in expired)
    assert len(deadlines) == 0


async def test_an_earlier_deadline_gets_its_own_timer_and_is_not_late() -> None:
    loop, deadlines = _started()
    start = monotonic()
    long_wait: Waiter = loop.create_future()
    short_wait: Waiter = loop.create_future()
    assert deadlines.add(long_wait, start + 5.0) is None
    timer = deadlines.add(short_wait, start + 0.02)
    assert timer is not None
    await asyncio.sleep(0.06)
    assert _timed_out(short_wait) and not long_wait.done()
    deadlines.stop()
    assert len(deadlines) == 0


async def test_served_waiters_are_never_timed_out_and_their_entries_are_dropped() -> None:
    loop, deadlines = _started()
    deadline = monotonic() + 0.05
    # A waiter that gave up (cancelled) stays at the front: the served ones
    # behind it must still be dropped, not pile up behind it.
    gone: Waiter = loop.create_future()
    deadlines.add(gone, deadline)
    gone.cancel()
    # Thousands of waits, each served before its deadline (as under load).
    for _ in range(5000):
        waiter: Waiter = loop.create_future()
        deadlines.add(waiter, deadline)
        waiter.set_result(None)  # stands for the slot handed over
        deadlines.served(waiter)
    assert len(deadlines) < 200, len(deadlines)
    assert all(entry is None for entry in deadlines._waiters), "a served future kept alive"
    last: Waiter = loop.create_future()
    deadlines.add(last, deadline)
    await asyncio.sleep(0.1)
    assert _timed_out(last)  # the timer still fires for the one left waiting
    assert len(deadlines) == 0


async def test_a_waiter_served_out_of_turn_leaves_its_elders_timed() -> None:
    loop, deadlines = _started()
    start = monotonic()
    older: Waiter = loop.create_future()
    younger: Waiter = loop.create_future()
    deadlines.add(older, start + 0.03)
    deadlines.add(younger, start + 0.03)
    younger.set_result(None)
    deadlines.served(younger)
    assert len(deadlines) == 2  # the older one still waits in front of it
    await asyncio.sleep(0.08)
    assert _timed_out(older)
    assert len(deadlines) == 0

"""One loop turn's hand-offs wake their tasks from one callback, and nothing is lost."""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Callable
from typing import Any

import pytest

from aiopool._slot import Slot
from aiopool._wakeups import Wakeups
from tests.support.fakes import FakeServer
from tests.support.pooltools import check_invariants, fake_pool


class _Conn:
    """Something a slot can refer to weakly."""


def _slot() -> Slot:
    return Slot(_Conn(), 0.0, math.inf, 0, lambda _s: None)  # type: ignore[arg-type]


class _CountingLoop:
    """Stands in for the loop in ``Wakeups.open``: counts what is scheduled, runs nothing."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def call_soon(self, callback: Callable[..., Any], *args: Any, context: Any = None) -> None:
        self.scheduled.append((callback, args))

    def get_debug(self) -> bool:
        return False


Future = asyncio.Future[Slot | None]


async def _waiting(count: int) -> tuple[list[Future], list[asyncio.Task[Any]], list[int]]:
    """``count`` tasks, each awaiting a future of its own; the order they woke in."""
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[Slot | None]] = [loop.create_future() for _ in range(count)]
    woke: list[int] = []

    async def wait(index: int) -> Slot | None:
        result = await futures[index]
        woke.append(index)
        return result

    tasks = [asyncio.create_task(wait(i)) for i in range(count)]
    await asyncio.sleep(0)  # each task now waits on its future
    return futures, tasks, woke


async def test_waiters_served_in_one_turn_wake_from_one_callback_in_the_order_served() -> None:
    futures, tasks, woke = await _waiting(3)
    wakeups = Wakeups()
    real = asyncio.get_running_loop()
    counting = _CountingLoop()
    wakeups.open(counting)  # type: ignore[arg-type]
    slots = [_slot() for _ in futures]
    for index in (2, 0, 1):
        wakeups.serve(futures[index], slots[index])
    assert len(counting.scheduled) == 1, "one callback for the turn"
    assert wakeups.pending == 3
    assert all(future.done() for future in futures), "resolved at once"
    # The futures no longer wake their tasks themselves.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert woke == []
    callback, args = counting.scheduled[0]
    real.call_soon(callback, *args)
    assert [await task for task in tasks] == slots
    assert woke == [2, 0, 1]
    assert wakeups.pending == 0


async def test_a_task_cancelled_after_it_was_served_still_finds_its_slot() -> None:
    futures, tasks, _ = await _waiting(2)
    wakeups = Wakeups()
    wakeups.open(asyncio.get_running_loop())
    slots = [_slot(), _slot()]
    wakeups.serve(futures[0], slots[0])
    wakeups.serve(futures[1], slots[1])
    tasks[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert futures[0].result() is slots[0], "the slot stays in the future, for give_up()"
    assert await tasks[1] is slots[1]


async def test_a_serve_during_the_batch_waits_for_the_next_turn() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[Slot | None] = loop.create_future()
    second: asyncio.Future[Slot | None] = loop.create_future()
    wakeups = Wakeups()
    wakeups.open(loop)
    seen: list[str] = []

    async def served_first() -> None:
        await first
        # Woken by the batch: a hand-off made now belongs to the next one.
        wakeups.serve(second, _slot())
        seen.append(f"pending {wakeups.pending}")

    async def served_second() -> None:
        await second
        seen.append("second woke")

    tasks = [asyncio.create_task(served_first()), asyncio.create_task(served_second())]
    await asyncio.sleep(0)
    wakeups.serve(first, _slot())
    await asyncio.gather(*tasks)
    assert seen == ["pending 1", "second woke"]


async def test_a_wake_up_that_raises_does_not_lose_the_others() -> None:
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[Slot | None]] = [loop.create_future() for _ in range(3)]
    called: list[int] = []

    def record(index: int) -> Callable[[asyncio.Future[Slot | None]], None]:
        def callback(_future: asyncio.Future[Slot | None]) -> None:
            called.append(index)
            if index == 0:
                raise KeyboardInterrupt

        return callback

    for index, future in enumerate(futures):
        future.add_done_callback(record(index))
    wakeups = Wakeups()
    counting = _CountingLoop()
    wakeups.open(counting)  # type: ignore[arg-type]
    for future in futures:
        wakeups.serve(future, _slot())
    ((run, args),) = counting.scheduled
    with pytest.raises(KeyboardInterrupt):
        run(*args)
    assert called == [0]
    # The other two were handed to the futures' own loop, one call_soon each.
    await asyncio.sleep(0)
    assert called == [0, 1, 2]


async def test_a_waiter_already_done_is_passed_over() -> None:
    futures, tasks, _ = await _waiting(2)
    loop = asyncio.get_running_loop()
    alone: asyncio.Future[Slot | None] = loop.create_future()  # nobody awaits it
    alone.cancel()
    tasks[0].cancel()  # cancels the future its task awaits
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    expired = futures[1]
    expired.set_result(None)  # its time ran out
    wakeups = Wakeups()
    wakeups.open(loop)
    for future in (alone, futures[0], expired):
        assert not wakeups.serve(future, _slot()), future
    assert wakeups.pending == 0
    assert expired.result() is None
    assert await tasks[1] is None
    pending: asyncio.Future[Slot | None] = loop.create_future()
    slot = _slot()
    assert wakeups.serve(pending, slot), "no callback yet: served the usual way"
    assert pending.result() is slot


class _OwnFuture(asyncio.Future[Slot | None]):
    """A loop's own future class: served through its own methods."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.calls: list[str] = []

    def remove_done_callback(self, fn: Callable[[Any], object]) -> int:
        self.calls.append("remove_done_callback")
        return super().remove_done_callback(fn)

    def set_result(self, result: Slot | None) -> None:
        self.calls.append("set_result")
        super().set_result(result)


async def test_a_future_of_another_class_is_batched_through_its_own_methods() -> None:
    loop = asyncio.get_running_loop()
    plain: asyncio.Future[Slot | None] = loop.create_future()
    own = _OwnFuture(loop=loop)
    tasks = [asyncio.create_task(_await(plain)), asyncio.create_task(_await(own))]
    await asyncio.sleep(0)
    wakeups = Wakeups()
    counting = _CountingLoop()
    wakeups.open(counting)  # type: ignore[arg-type]
    slots = [_slot(), _slot()]
    wakeups.serve(plain, slots[0])
    wakeups.serve(own, slots[1])
    assert own.calls == ["remove_done_callback", "set_result"]
    assert wakeups.pending == 2 and len(counting.scheduled) == 1
    callback, args = counting.scheduled[0]
    loop.call_soon(callback, *args)
    assert [await task for task in tasks] == slots


async def _await(future: asyncio.Future[Slot | None]) -> Slot | None:
    return await future


async def test_futures_without_exactly_one_callback_are_served_the_usual_way() -> None:
    loop = asyncio.get_running_loop()
    wakeups = Wakeups()
    counting = _CountingLoop()
    wakeups.open(counting)  # type: ignore[arg-type]
    lonely: asyncio.Future[Slot | None] = loop.create_future()
    shared: asyncio.Future[Slot | None] = loop.create_future()
    seen: list[str] = []
    shared.add_done_callback(lambda _f: seen.append("a"))
    shared.add_done_callback(lambda _f: seen.append("b"))
    wakeups.serve(lonely, _slot())
    wakeups.serve(shared, _slot())
    assert counting.scheduled == [] and wakeups.pending == 0
    await asyncio.sleep(0)
    assert seen == ["a", "b"]


async def test_a_shut_gate_serves_the_usual_way_and_a_fork_drops_the_batch() -> None:
    futures, tasks, _ = await _waiting(2)
    wakeups = Wakeups()
    counting = _CountingLoop()
    wakeups.open(counting)  # type: ignore[arg-type]
    wakeups.serve(futures[0], _slot())
    assert wakeups.pending == 1
    wakeups.shut()
    wakeups.serve(futures[1], _slot())
    assert wakeups.pending == 1, "after shut() the future wakes its task itself"
    await tasks[1]
    # The batched wake-up a fork drops; kept here so the test's own task is not left hanging.
    (dropped,) = wakeups._entries
    wakeups.forget()
    assert wakeups.pending == 0
    callback, context = dropped
    asyncio.get_running_loop().call_soon(callback, futures[0], context=context)
    await tasks[0]


async def test_in_debug_mode_each_task_wakes_from_its_own_callback() -> None:
    # asyncio's slow-callback warning must name the task that ran long, not the pool.
    loop = asyncio.get_running_loop()
    futures, tasks, woke = await _waiting(3)
    wakeups = Wakeups()
    wakeups.open(loop)
    loop.set_debug(True)
    try:
        wakeups.serve(futures[0], _slot())
        wakeups.serve(futures[1], _slot())
        assert wakeups.pending == 0
    finally:
        loop.set_debug(False)
    wakeups.serve(futures[2], _slot())
    assert wakeups.pending == 1, "batched again once debug mode is off"
    await asyncio.gather(*tasks)
    assert woke == [0, 1, 2]


async def test_the_waiting_tasks_context_is_the_one_it_wakes_in() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Slot | None] = loop.create_future()

    async def wait() -> str:
        var.set("waiter's")
        await future
        return var.get()

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)
    var.set("server's")
    wakeups = Wakeups()
    wakeups.open(loop)
    wakeups.serve(future, _slot())
    assert await task == "waiter's"


async def test_a_pool_wakes_several_waiters_from_one_callback() -> None:
    server = FakeServer()
    async with fake_pool(server, min_size=3, max_size=3) as pool:
        held = [await pool.acquire() for _ in range(3)]
        waiting = [asyncio.create_task(pool.acquire()) for _ in range(3)]
        await asyncio.sleep(0)
        for conn in held:
            await pool.release(conn)
        assert pool._ledger.wakeups.pending == 3, "three hand-offs in one turn, one batch"
        got = [await task for task in waiting]
        assert sorted(map(id, got)) == sorted(map(id, held))
        assert pool._ledger.wakeups.pending == 0
        for conn in got:
            await pool.release(conn)
        check_invariants(pool, server)

"""The multi-task harness's fairness measures (bench/_workloads.py), on toy pools.

A first-come-first-served toy pool and a last-come-first-served one run the
same workload: the queue-turn count must tell them apart whatever the machine's
speed, since it counts loans, not time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from bench._adapters import Adapter
from bench._workloads import Workload, run_tasks

SIZE = 2
TASKS = 10  # 8 can be queued ahead of a waiter


async def _toy_select1(conn: object) -> None:
    await asyncio.sleep(0)


class _ToyPool(Adapter):
    """``SIZE`` places handed over directly to a waiter, oldest or newest first."""

    name = "toy"
    ops: ClassVar[Mapping[str, Callable[[Any], Awaitable[None]]]] = {"select1": _toy_select1}

    def __init__(self, newest_first: bool) -> None:
        super().__init__(SIZE)
        self._free = SIZE
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._newest_first = newest_first

    @asynccontextmanager
    async def _borrow(self) -> AsyncIterator[object]:
        if self._free and not self._waiters:
            self._free -= 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        try:
            yield object()
        finally:
            if self._waiters:
                pick = self._waiters.pop if self._newest_first else self._waiters.popleft
                pick().set_result(None)
            else:
                self._free += 1

    def acquire(self) -> Any:
        return self._borrow()


async def _turns(newest_first: bool) -> float:
    workload = Workload("WT", "toy", TASKS, "select1")
    result = await run_tasks(_ToyPool(newest_first), workload, warmup=0.05, seconds=0.3)
    assert result.ops > 100
    assert result.queue_turns is not None
    return result.queue_turns


async def test_first_come_first_served_stays_within_its_bound() -> None:
    # Served in order, every other task gets one loan at most while a task
    # waits (a loan is counted when its task resumes, so one handed over just
    # before the waiter queued may be among them): (tasks - 1) / (tasks - size).
    turns = await _turns(newest_first=False)
    assert 0.5 <= turns <= (TASKS - 1) / (TASKS - SIZE)


async def test_newest_first_starves_some_waiter_for_many_turns() -> None:
    # A waiter pushed to the bottom of the stack is passed over again and
    # again while the other tasks keep coming back.
    assert await _turns(newest_first=True) > 10.0


class _HeldOnly(Adapter):
    """A bare contender: its tasks hold a connection each and never borrow one."""

    name = "held"
    ops: ClassVar[Mapping[str, Callable[[Any], Awaitable[None]]]] = {"select1": _toy_select1}

    def __init__(self) -> None:
        super().__init__(SIZE)

    def acquire(self) -> Any:
        raise AssertionError("a held connection is used with no loan")

    def held(self) -> Any:
        return object()


async def test_a_held_connection_runs_with_no_loan() -> None:
    result = await run_tasks(_HeldOnly(), Workload("WT", "toy", TASKS, "select1"), 0.05, 0.2)
    assert result.ops > 100 and not result.timed_out

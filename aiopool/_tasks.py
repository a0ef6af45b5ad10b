"""The pool's own tasks: started in the pool's loop, tracked, and never lost.

Work that owns a connection (opening, returning, closing, pinging) runs in a
task of the pool's rather than the caller's, so cancelling the caller cannot
cut it short; a done-callback settles what a task owned even when the task is
cancelled before its first step (``close()`` right after ``open()``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["TaskSet", "outcome_of"]


class TaskSet:
    """Tasks the pool started and has not seen finish."""

    __slots__ = ("loop", "tasks")

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    def usable(self) -> bool:
        """Whether new tasks can be started (the pool's loop exists and is not closed)."""
        return self.loop is not None and not self.loop.is_closed()

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        on_done: Callable[[], None] | None = None,
        *,
        name: str | None = None,
    ) -> asyncio.Task[Any]:
        """Start ``coro`` as a pool task; ``on_done`` runs however it ends."""
        loop = self.loop
        assert loop is not None, "the pool has no event loop yet"
        task = loop.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if on_done is not None:
            task.add_done_callback(lambda _task: on_done())
        return task

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the tasks running now (not for those they start)."""
        tasks = set(self.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def cancel_all(self) -> None:
        """Cancel every task; their done-callbacks settle what each owned."""
        for task in list(self.tasks):
            task.cancel()

    def forget(self) -> None:
        """After fork(): the tasks belong to the parent's loop."""
        self.tasks.clear()


def outcome_of(task: asyncio.Task[None]) -> asyncio.Future[None]:
    """What a caller awaits for a pool task doing its work: the task, shielded.

    As ``asyncio.shield(task)``, cancelling the caller leaves the task
    running; unlike it, the task being cancelled ends the wait normally.
    Only the pool cancels its own tasks (``close()`` cutting the work short,
    possibly before the task's first step, where the task cannot catch it),
    and the caller, who was not cancelled, must not see ``CancelledError``.
    """
    outer: asyncio.Future[None] = task.get_loop().create_future()

    def settle(done: asyncio.Task[None]) -> None:
        error = None if done.cancelled() else done.exception()  # retrieved either way
        if outer.done():
            return  # the caller was cancelled meanwhile
        if error is None:
            outer.set_result(None)
        else:
            outer.set_exception(error)

    task.add_done_callback(settle)
    return outer

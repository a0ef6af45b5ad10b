# cython: language_level=3
"""The least a first-come-first-served pool must do, in Cython (see __init__.py)."""
from collections import deque

from asyncio import CancelledError


cdef class FifoPool:
    """A returned connection goes to the oldest waiting task; idle ones stack up last in, first out."""
    cdef object idle, waiters, loop

    def __init__(self, conns, loop):
        self.idle = deque(conns)
        self.waiters = deque()
        self.loop = loop

    async def acquire(self):
        if self.idle and not self.waiters:
            return self.idle.pop()
        waiter = self.loop.create_future()
        self.waiters.append(waiter)
        try:
            return await waiter
        except CancelledError:
            # Handed a connection, then cancelled before it ran: pass the
            # connection on, as a correct pool must.  A cancelled waiter
            # stays in the line: release() passes over waiters already done.
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            else:
                waiter.cancel()
            raise

    cpdef release(self, conn):
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    @property
    def waiting(self):
        return len(self.waiters)

    @property
    def idle_count(self):
        return len(self.idle)


cdef class Loan:
    """``async with Loan(pool) as conn``: one loan, given back however the block ends."""
    cdef FifoPool pool
    cdef object conn

    def __init__(self, FifoPool pool):
        self.pool = pool

    async def __aenter__(self):
        self.conn = await self.pool.acquire()
        return self.conn

    async def __aexit__(self, *exc):
        conn = self.conn
        self.conn = None
        self.pool.release(conn)

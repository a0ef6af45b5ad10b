# cython: language_level=3
"""The books of aiopool's uncontended fast paths, in Cython (see __init__.py)."""
from asyncmy.connection cimport _ConnectionState, MySQLResult, _ProtocolState
from cpython.pythread cimport PyThread_get_thread_ident
from collections import deque

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec* ts)
    int CLOCK_MONOTONIC

cdef inline double now() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef class Slot:
    cdef public object conn, key, stream_proto, ref
    cdef public double lent_at, fresh_until, expires_at, held, idle_since


cdef class FloorPool:
    cdef object idle, waiters, loop
    cdef dict lent
    cdef unsigned long loop_thread
    cdef bint has_thread_id, lend_hooks, return_hooks, fast_return
    cdef public long requests
    cdef public double usage
    cdef double check_after
    cdef object __weakref__

    def __init__(self, conn, loop):
        import weakref
        self.idle = deque()
        self.waiters = deque()
        self.lent = {}
        self.loop = loop
        self.loop_thread = PyThread_get_thread_ident()
        self.has_thread_id = isinstance(getattr(loop, "_thread_id", None), int)
        self.check_after = 30.0
        self.fast_return = True
        s = Slot()
        s.conn = conn
        s.key = id(conn)
        s.stream_proto = conn._proto
        s.ref = weakref.ref(conn)
        t = now()
        s.fresh_until = t + 30
        s.expires_at = t + 3600
        self.idle.append(s)

    cdef object _lend_here(self):
        cdef Slot slot
        cdef double t
        loop = self.loop
        if loop is None or not self.idle:
            return None
        if self.has_thread_id:
            if loop._thread_id != PyThread_get_thread_ident():
                return None
        elif self.loop_thread != PyThread_get_thread_ident() or not loop.is_running():
            return None
        if self.waiters:
            return None
        slot = self.idle[-1]
        t = now()
        if t < slot.fresh_until and not (<_ProtocolState>slot.stream_proto).eof:
            self.idle.pop()
            conn = slot.conn
            slot.conn = None
            self.lent[slot.key] = slot
            slot.lent_at = t
            self.requests += 1
            return conn
        return None

    cdef object _return_here(self, conn):
        cdef Slot slot
        cdef _ConnectionState c
        cdef MySQLResult result
        cdef double t, fresh
        if not self.fast_return or type(conn) is not _conn_type:
            return None
        c = <_ConnectionState>conn
        if not c._connected or c.server_status & 1:
            return None
        result = c._result
        if result is not None and (result.unbuffered_active or result.has_next):
            return None
        obj = self.lent.pop(id(conn), None)
        if obj is None:
            return None
        slot = <Slot>obj
        t = now()
        slot.conn = conn
        slot.held = t - slot.lent_at
        self.usage += slot.held
        slot.idle_since = t
        fresh = t + self.check_after
        slot.fresh_until = fresh if fresh < slot.expires_at else slot.expires_at
        if self.waiters:
            raise RuntimeError("hand-off not in the prototype")
        self.idle.append(slot)
        return slot

    async def acquire(self, timeout=None):
        if timeout is not None and timeout < 0:
            raise ValueError("timeout")
        conn = self._lend_here()
        if conn is not None:
            if self.lend_hooks:
                pass
            return conn
        raise RuntimeError("slow path not in the prototype")

    async def release(self, conn):
        slot = self._return_here(conn)
        if slot is not None:
            if self.return_hooks:
                pass
            return
        raise RuntimeError("slow return not in the prototype")


from asyncmy.connection import Connection as _conn_type


cdef class Books(FloorPool):
    """The same books, called from interpreted coroutines (``PythonMethods``)."""

    def lend(self):
        return self._lend_here()

    def give_back(self, conn):
        return self._return_here(conn)

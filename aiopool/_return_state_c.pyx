# cython: language_level=3
"""``_return_state.return_state`` reading asyncmy's C structs (the compiled build).

asyncmy ships the declarations of its connection's state (connection.pxd);
its own pool reads these fields the same way.  A field read here is a load;
from Python or mypyc-compiled code it is a generic attribute lookup (four of
them, plus a method call, per fast return).

The declarations are the ones of the asyncmy this module was compiled
against.  Importing it checks them against the installed asyncmy: Cython
compares the types' sizes, and ``_same_layout`` writes each field through
asyncmy's own accessors and reads it back here.  A mismatch raises
ImportError, and ``_return_state`` keeps its Python version.  Connections
of any other type (a subclass may override ``connected``) take the Python
version too.
"""

from asyncmy.connection cimport MySQLResult, _ConnectionState

from asyncmy.connection import Connection

from aiopool._return_state import CLEAN, IN_TRANSACTION, UNSETTLED, python_return_state

cdef object _known_type = Connection
# 1 is SERVER_STATUS_IN_TRANS, what get_transaction_status() tests.
cdef int _IN_TRANS = 1


def return_state(conn):
    """``CLEAN``, ``IN_TRANSACTION`` or ``UNSETTLED``, as ``python_return_state``."""
    cdef _ConnectionState state
    cdef MySQLResult result
    if type(conn) is not _known_type:
        return python_return_state(conn)
    state = <_ConnectionState>conn
    if state.server_status & _IN_TRANS:
        return IN_TRANSACTION
    if not state._connected:
        return UNSETTLED
    result = state._result
    if result is not None and (result.unbuffered_active or result.has_next):
        return UNSETTLED
    return CLEAN


def _same_layout():
    """True when fields set through asyncmy's accessors read back the same here."""
    cdef _ConnectionState state
    cdef MySQLResult result
    probe = Connection.__new__(Connection)
    pending = MySQLResult.__new__(MySQLResult)
    probe.server_status = 0x5A5
    probe._connected = True
    probe._result = pending
    pending.unbuffered_active = 7
    pending.has_next = 9
    state = <_ConnectionState>probe
    result = state._result
    return (
        state.server_status == 0x5A5
        and state._connected
        and result is pending
        and result.unbuffered_active == 7
        and result.has_next == 9
    )


if not _same_layout():
    raise ImportError("asyncmy's connection layout differs from the one aiopool was compiled against")

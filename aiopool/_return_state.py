"""What a returned connection's own flags say: clean, in a transaction, or unsettled.

Both fast returns (``release()``'s and ``connection()``'s) ask this on every
loan, with no round trip: the driver keeps the server's status flags from
the last reply.  Unsettled is closed (locally, or cancelled mid-command) or
holding a result not read to its end (an unbuffered cursor's rows, more
result sets): such a connection takes the slow return, which closes it.

The compiled build reads the same flags from asyncmy's C structs
(``_return_state_c.pyx``): from Python or mypyc-compiled code each of the four
reads is a generic attribute lookup, the largest cost of a fast return.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from ._protocols import Connection

__all__ = ["CLEAN", "IN_TRANSACTION", "UNSETTLED", "python_return_state", "return_state"]

CLEAN: Final = 0
IN_TRANSACTION: Final = 1
UNSETTLED: Final = 2


def python_return_state(conn: Connection) -> int:
    """``CLEAN``, ``IN_TRANSACTION`` or ``UNSETTLED``; read in this order.

    The transaction comes first: a block that ends with one open commits it,
    and a commit on a closed connection must fail loudly rather than be
    skipped.
    """
    if conn.get_transaction_status():
        return IN_TRANSACTION
    if not conn.connected:
        return UNSETTLED
    result = conn._result
    if result is not None and (result.unbuffered_active or result.has_next):
        return UNSETTLED
    return CLEAN


return_state = python_return_state
"""What the fast returns call: ``python_return_state`` or the compiled build's equal."""

if not TYPE_CHECKING:
    try:
        # The compiled build's version; absent in the pure build, and refused
        # (ImportError) when the installed asyncmy's layout is not the one it
        # was compiled against.
        from ._return_state_c import return_state
    except ModuleNotFoundError:
        pass  # the pure-Python build
    except ImportError as refused:
        logging.getLogger("aiopool").warning(
            "aiopool's compiled build does not match the installed asyncmy (%s): "
            "reading its flags the slower way",
            refused,
        )

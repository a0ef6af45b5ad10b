"""Deciding, without a round trip, whether a connection can be reused.

asyncmy raises ``OperationalError`` both for SQL errors (unknown column, lock
wait timeout) and for a dead link (2006, 2013), so the verdict comes from the
error number and the connection's own state, never from the class alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
from types import ModuleType

from ._protocols import Connection
from .errors import PoolError

__all__ = [
    "close_hard",
    "close_politely",
    "errno_of",
    "is_broken",
    "is_connection_error",
    "is_encrypted",
    "is_fatal_connect_error",
    "is_idle_clean",
    "is_server_refusal",
    "is_tls_failure",
    "is_unreachable",
]

logger = logging.getLogger("aiopool")

# Errors after which the session's state is unknown or gone:
# 1053 server shutdown, 1927 connection killed, 2006 gone away, 2013 lost,
# 2014 commands out of sync, 2055 lost (system error), 4031 idle timeout (MySQL 8).
DISCONNECT_ERRNOS = frozenset({1053, 1927, 2006, 2013, 2014, 2055, 4031})

# Opening errors that retrying will not fix: access denied (1044, 1045, 1698),
# unknown database (1049), auth plugin problems (1251, 2059), and a connect
# setting the server refuses (init_command= with a syntax error 1064, an
# unknown variable 1193, a bad sql_mode= or other value 1231).
FATAL_CONNECT_ERRNOS = frozenset({1044, 1045, 1049, 1064, 1193, 1231, 1251, 1698, 2059})


@functools.cache
def _mysql_errors() -> ModuleType:
    # Imported on first need: `import aiopool` (and the pytest plugin, loaded
    # in every test session) should not pay for loading the driver.
    from asyncmy import errors

    return errors


def errno_of(exc: BaseException) -> int | None:
    """The MySQL error number carried by an asyncmy exception, if any."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def is_connection_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` means the link or the protocol state can no longer be trusted."""
    if exc is None:
        return False
    mysql_errors = _mysql_errors()
    if isinstance(exc, mysql_errors.InterfaceError | mysql_errors.InternalError):
        return True  # closed, or the packet stream is out of sync
    if isinstance(exc, mysql_errors.MySQLError):
        return errno_of(exc) in DISCONNECT_ERRNOS
    # Not a server error: the socket or the loop itself failed under the driver.
    return isinstance(exc, OSError | EOFError | RuntimeError | AssertionError)


def is_broken(conn: Connection) -> bool:
    """Closed, cancelled mid-command, or EOF/reset already seen on the socket."""
    return not conn.connected or conn._stream_broken


def has_pending_result(conn: Connection) -> bool:
    """Unread rows of an unbuffered cursor, or result sets not yet read.

    Draining them could take seconds (asyncmy reads them all on the next
    command), so such a connection is closed instead.
    """
    result = conn._result
    return result is not None and bool(result.unbuffered_active or result.has_next)


def is_idle_clean(conn: Connection) -> bool:
    """Reusable as it is: open, no transaction, nothing left to read."""
    return not (is_broken(conn) or conn.get_transaction_status() or has_pending_result(conn))


def is_fatal_connect_error(exc: BaseException) -> bool:
    """Whether an error from opening a connection will happen again on retry."""
    if isinstance(exc, _mysql_errors().MySQLError):
        return errno_of(exc) in FATAL_CONNECT_ERRNOS
    # TLS refused or not verifiable, the pool's own refusals (an unencrypted
    # connection where encryption is required), and programming errors such
    # as wrong keyword arguments: retrying changes nothing.
    return isinstance(exc, ssl.SSLError | PoolError | TypeError | ValueError | AttributeError)


# 2003 can't connect (refused, unreachable), 2005 unknown host.
_UNREACHABLE_ERRNOS = frozenset({2003, 2005})


def is_unreachable(exc: BaseException | None) -> bool:
    """Nothing answers at the address: refused, no route, or a name that does not resolve.

    A TLS handshake failure also arrives as 2003 but is fatal on its own, so
    it never gets here.
    """
    if exc is None:
        return False
    if errno_of(exc) in _UNREACHABLE_ERRNOS:
        return True
    return isinstance(exc, ConnectionRefusedError | socket.gaierror)


def is_server_refusal(exc: BaseException) -> bool:
    """An error the server itself sent (access denied, unknown database...)."""
    errno = errno_of(exc)
    return errno is not None and 1000 <= errno < 2000


def is_tls_failure(exc: BaseException) -> bool:
    """Whether opening failed in the TLS handshake (asyncmy reports it as error 2003)."""
    seen: BaseException | None = exc
    for _ in range(5):  # the chain of causes is short; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError) or "[SSL" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_encrypted(conn: Connection) -> bool:
    """Whether the connection's transport runs TLS (no round trip)."""
    transport = getattr(conn, "_transport", None)
    return transport is not None and transport.get_extra_info("ssl_object") is not None


def close_hard(conn: Connection) -> None:
    """Drop the socket now; never raises (the loop may already be closed)."""
    with contextlib.suppress(Exception):
        conn.close()


async def close_politely(conn: Connection, timeout: float) -> None:
    """Send ``COM_QUIT`` so the server logs no aborted connection, within ``timeout``.

    Falls back to dropping the socket when the link is dead, slow or the task
    is cancelled (the cancellation is re-raised).
    """
    if is_broken(conn):
        close_hard(conn)
        return
    try:
        async with asyncio.timeout(timeout):
            await conn.ensure_closed()
    except asyncio.CancelledError:
        close_hard(conn)
        raise
    except Exception as exc:
        logger.debug("closing a connection politely failed (%r); dropping it", exc)
        close_hard(conn)

"""The part of asyncmy's connection that the pool relies on, as a typing Protocol.

asyncmy ships no type information, so this is where the pool's assumptions
about the driver are written down.  The pool hands out real asyncmy
connections; ``__getattr__`` lets type checkers accept the rest of asyncmy's
API on them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["Connection", "ConnectionCallback", "ConnectionFactory"]


class Connection(Protocol):
    """An open asyncmy connection (``asyncmy.Connection``)."""

    @property
    def connected(self) -> bool:
        """False once the connection was closed locally (or cancelled mid-command)."""

    @property
    def _stream_broken(self) -> bool:
        """True once the event loop saw EOF, a reset or an error on the socket."""

    @property
    def _result(self) -> Any:
        """The last result object; unread rows or result sets mean the state is unknown."""

    @property
    def server_status(self) -> int:
        """Status flags from the server's last OK or EOF packet."""

    def get_transaction_status(self) -> bool:
        """Whether the server's last status said a transaction is open (no round trip)."""

    def thread_id(self) -> int:
        """The server's id for this connection's session."""

    async def ping(self, reconnect: bool = ...) -> Any:
        """``COM_PING``; the pool always passes ``reconnect=False``."""

    async def commit(self) -> None:
        """Commit the open transaction."""

    async def rollback(self) -> None:
        """Roll back the open transaction."""

    def close(self) -> None:
        """Drop the socket at once, without telling the server."""

    async def ensure_closed(self) -> None:
        """Send ``COM_QUIT`` and close the socket."""

    def cursor(self, cursor: Any = ...) -> Any:
        """A new cursor on this connection."""

    def __getattr__(self, name: str) -> Any:
        """The rest of asyncmy's connection API."""


ConnectionFactory = Callable[..., Awaitable[Connection]]
"""Opens one connection from keyword arguments (``asyncmy.connect`` by default)."""

ConnectionCallback = Callable[[Connection], Awaitable[None]]
"""An async callback given a connection (``configure``, ``check``, ``reset``)."""

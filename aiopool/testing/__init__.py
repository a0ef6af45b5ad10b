"""Test helpers: find a MySQL/MariaDB server for the tests, or start a private one.

Importing this package stays cheap (standard library only): the driver, the
Docker SDK and testcontainers are imported when they are needed.
"""

from __future__ import annotations

from ._mariadbd import PrivateMariaDB, ServerError
from ._server import DatabaseHandle, DatabaseNotFound, find_database, redact

__all__ = [
    "DatabaseHandle",
    "DatabaseNotFound",
    "PrivateMariaDB",
    "ServerError",
    "find_database",
    "redact",
]

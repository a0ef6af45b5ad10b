"""What the fast returns read off a connection, on real connections in every state.

The compiled build reads asyncmy's C structs (``_return_state_c.pyx``); the
Python version reads the same flags through asyncmy's accessors.  Both must
give the same answer in every state a borrower can leave a connection in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncmy
import pytest
from asyncmy.constants.CLIENT import MULTI_STATEMENTS
from asyncmy.cursors import SSCursor

from aiopool._return_state import (
    CLEAN,
    IN_TRANSACTION,
    UNSETTLED,
    python_return_state,
    return_state,
)
from tests.support.realdb import ScratchDatabase, connect_kwargs

READERS = [python_return_state, return_state]


def state(conn: asyncmy.Connection) -> int:
    answers = {reader(conn) for reader in READERS}
    assert len(answers) == 1, f"the readers disagree: {answers}"
    return answers.pop()


@pytest.fixture
async def conn(scratch: ScratchDatabase) -> AsyncIterator[asyncmy.Connection]:
    kwargs = connect_kwargs(scratch.url)
    kwargs["autocommit"] = False
    kwargs["client_flag"] = MULTI_STATEMENTS
    connection = await asyncmy.connect(**kwargs)
    try:
        yield connection
    finally:
        connection.close()


async def test_a_connection_that_ran_a_statement_is_clean(conn: asyncmy.Connection) -> None:
    assert state(conn) == CLEAN
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        assert await cur.fetchall() == ((1,),)
    assert state(conn) == CLEAN


async def test_an_open_transaction_is_seen_and_a_commit_clears_it(
    conn: asyncmy.Connection,
) -> None:
    async with conn.cursor() as cur:
        await cur.execute("START TRANSACTION")
    assert state(conn) == IN_TRANSACTION
    await conn.commit()
    assert state(conn) == CLEAN


async def test_unread_rows_of_an_unbuffered_cursor_unsettle_it(conn: asyncmy.Connection) -> None:
    cur = conn.cursor(SSCursor)
    await cur.execute("SELECT seq FROM seq_1_to_1000")
    await cur.fetchone()
    assert state(conn) == UNSETTLED
    await cur.close()  # reads the rest
    assert state(conn) == CLEAN


async def test_result_sets_not_yet_read_unsettle_it(conn: asyncmy.Connection) -> None:
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1; SELECT 2")
        assert state(conn) == UNSETTLED
        assert await cur.nextset()
        assert state(conn) == CLEAN


async def test_a_closed_connection_is_unsettled(conn: asyncmy.Connection) -> None:
    conn.close()
    assert state(conn) == UNSETTLED


async def test_a_transaction_is_reported_before_the_connection_is_found_closed(
    conn: asyncmy.Connection,
) -> None:
    # connection() commits an open transaction before anything else: on a
    # closed connection that commit fails loudly instead of being skipped.
    async with conn.cursor() as cur:
        await cur.execute("START TRANSACTION")
    conn.close()
    assert state(conn) == IN_TRANSACTION


async def test_a_subclass_is_read_through_its_own_accessors(scratch: ScratchDatabase) -> None:
    # Only asyncmy's own class has the layout the compiled build reads; a
    # subclass may override what it reports.
    class Flaky(asyncmy.Connection):  # type: ignore[misc]
        @property
        def connected(self) -> bool:
            return False

    kwargs = connect_kwargs(scratch.url)
    conn = Flaky(**kwargs)
    await conn.connect()
    try:
        assert conn._connected
        assert return_state(conn) == UNSETTLED
    finally:
        conn.close()


def test_a_build_refused_by_the_installed_asyncmy_falls_back_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The compiled module raises ImportError when asyncmy's layout is not the
    # one it was compiled against; stand in for it with one that has nothing.
    import importlib.util
    import sys
    import types

    from aiopool import _return_state

    monkeypatch.setitem(sys.modules, "aiopool._return_state_c", types.ModuleType("refused"))
    # A fresh copy of the module, loaded as the package would load it: the
    # real one (which the fast paths hold) stays as it is.
    spec = importlib.util.spec_from_file_location(
        "aiopool._return_state_copy", _return_state.__file__
    )
    assert spec is not None and spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    with caplog.at_level("WARNING", logger="aiopool"):
        spec.loader.exec_module(copy)
    assert copy.return_state is copy.python_return_state
    assert "does not match the installed asyncmy" in caplog.text

"""The pytest plugin (aiopool.testing.plugin), run on small user projects through pytester.

The projects live in tests/plugin_project/; each run gets our session's server
through AIOPOOL_TEST_URL, so no run starts a server of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from aiopool import AsyncConnectionPool

pytest_plugins = ["pytester"]

PROJECTS = Path(__file__).parent / "plugin_project"
INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""
RUN_TIMEOUT = 60
# Plugins the projects don't need; hypothesis alone costs seconds of startup per run.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio")

Run = Callable[..., pytest.RunResult]


@pytest.fixture
def run(pytester: pytest.Pytester, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Copy a project from tests/plugin_project/ and run pytest on it in a subprocess."""
    monkeypatch.setenv("AIOPOOL_TEST_URL", database_url)
    monkeypatch.delenv("AIOPOOL_TEST_SKIP_LOCAL", raising=False)

    def run(project: str | None, *args: str, ini: str = "") -> pytest.RunResult:
        pytester.makeini(INI + ini)
        if project is not None:
            shutil.copytree(PROJECTS / project, pytester.path, dirs_exist_ok=True)
        return pytester.runpytest_subprocess(*QUIET, *args, timeout=RUN_TIMEOUT)

    return run


def closed_port_url() -> str:
    """A URL nothing listens on: using it fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"mysql://root@127.0.0.1:{port}/nothing"


def server_databases(url: str) -> set[str]:
    async def show() -> set[str]:
        async with AsyncConnectionPool(url, min_size=1, max_size=1) as pool:
            async with pool.connection() as conn:
                async with conn.cursor() as cur:
                    await cur.execute("SHOW DATABASES")
                    return {row[0] for row in await cur.fetchall()}

    # A loop of our own, away from pytest-asyncio's.
    with concurrent.futures.ThreadPoolExecutor(1) as worker:
        return worker.submit(asyncio.run, show()).result()


def test_inert_unless_used(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    # Any attempt to find a server would fail: a pass means none was made.
    monkeypatch.setenv("AIOPOOL_TEST_URL", closed_port_url())
    result = run("inert")
    result.assert_outcomes(passed=2)


def test_each_test_gets_its_own_database_dropped_afterwards(run: Run, database_url: str) -> None:
    result = run("isolation", "-s")
    result.assert_outcomes(passed=4)
    names = re.findall(r"AIOPOOL_DB=(aiopool_test_[0-9a-f]{12})", result.stdout.str())
    assert len(names) == len(set(names)) == 3
    left = {db for db in server_databases(database_url) if db.startswith("aiopool_test_")}
    assert not left & set(names)


def test_pool_fixture_and_marker(run: Run) -> None:
    result = run("pool")
    result.assert_outcomes(passed=3)


def test_shared_session_pool_pattern(run: Run) -> None:
    result = run("shared")
    result.assert_outcomes(passed=2)


def test_pool_used_from_another_loop_fails_without_hanging(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # whole error messages in the summary
    result = run("wrong_loop")
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    # No idle connection: the request takes the slow path, which checks the loop.
    assert re.search(
        r"FAILED \S+::test_no_idle_connection - aiopool\.WrongEventLoop: pool '\S+' was "
        r"opened in event loop .* and is used from .*; a pool \(like its connections\) "
        r"belongs to one loop",
        out,
    )
    # An idle connection: the fast path refuses a foreign loop too.
    assert re.search(r"FAILED \S+::test_idle_connection - aiopool\.WrongEventLoop: ", out)


def test_without_pytest_asyncio(run: Run, pytester: pytest.Pytester) -> None:
    # -p plugins load before entry points: make pytest_asyncio unimportable for the plugin.
    pytester.makepyfile(hide_pytest_asyncio="import sys\n\nsys.modules['pytest_asyncio'] = None\n")
    result = run("no_asyncio", "-p", "no:asyncio", "-p", "hide_pytest_asyncio")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*aiopool_pool is an async fixture and needs pytest-asyncio: pip install pytest-asyncio*"]
    )


def test_url_option_and_ini_key_win_over_the_environment(
    run: Run, pytester: pytest.Pytester, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOPOOL_TEST_URL", closed_port_url())
    pytester.makepyfile(
        test_url="""
        def test_url(aiopool_database_url):
            print("URL=" + aiopool_database_url)
        """
    )
    result = run(None, "-s", ini=f"aiopool_url = {database_url}\n")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*URL={database_url}*"])

    bad = closed_port_url()
    result = run(None, f"--aiopool-url={bad}", ini=f"aiopool_url = {database_url}\n")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*--aiopool-url {bad} does not work: *"])


def test_docs_include_the_tested_project_files() -> None:
    """docs/testing.md shows the plugin project's files by including them (snippets)."""
    root = PROJECTS.parent.parent
    text = (root / "docs" / "testing.md").read_text()
    included = re.findall(r'--8<-- "(tests/plugin_project/[^"]+)"', text)
    assert set(included) == {
        "tests/plugin_project/pool/test_pool.py",
        "tests/plugin_project/shared/conftest.py",
        "tests/plugin_project/shared/test_shared.py",
    }
    for path in included:
        assert (root / path).is_file(), path


def test_connection_left_checked_out_is_reported(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A leak errors the test at teardown, saying what happened, at once (not after 5 s)."""
    monkeypatch.setenv("COLUMNS", "1000")
    result = run("leak")
    result.assert_outcomes(passed=2, errors=1)
    assert re.search(
        r"ERROR \S+::test_keeps_a_connection - (Failed: )?aiopool_pool: "
        r"1 connection\(s\) still checked out when the test ended",
        result.stdout.str(),
    )
    assert result.duration < 5, "close() waited for the leaked connection"

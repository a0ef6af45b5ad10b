"""Every ```python block of the README and of docs/, and the examples, run for real.

Each block runs as a script in a database of its own (the usual local URL it
shows is pointed there), must print what it shows, and must leave no table
behind: a user who runs it twice in their `test` database sees the same thing
twice.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.realdb import ScratchDatabase, execute

ROOT = Path(__file__).resolve().parent.parent
README_URL = "mysql://root:@127.0.0.1:3306/test"
DOCS = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/**/*.md"))
DOC_FILES = ["README.md", *DOCS]


def python_blocks(path: str) -> list[str]:
    """The ```python blocks of one Markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```", (ROOT / path).read_text(), flags=re.S | re.M)


BLOCKS = [(path, index) for path in DOC_FILES for index in range(len(python_blocks(path)))]


def run_python(code: str, database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "snippet.py"
    # The docs show the usual local URL; point it at the database the test gives.
    base = database_url.split("?", 1)[0]
    script.write_text(code.replace(README_URL, base).replace(README_URL.replace(":@", "@"), base))
    env = {**os.environ, "AIOPOOL_URL": database_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )


def tables(db: ScratchDatabase) -> list[str]:
    sql = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
    (rows,) = asyncio.run(execute(db.url, sql))
    return sorted(row[0] for row in rows)


def test_docs_have_runnable_blocks() -> None:
    assert len(python_blocks("README.md")) >= 2
    assert len(BLOCKS) >= 15
    assert all("```python-" not in (ROOT / path).read_text() for path in DOC_FILES), (
        "a ```python-something fence is neither run nor highlighted"
    )


@pytest.mark.parametrize(("path", "index"), BLOCKS, ids=[f"{p}:{i}" for p, i in BLOCKS])
def test_doc_block_runs(
    path: str, index: int, scratch_sync: ScratchDatabase, tmp_path: Path
) -> None:
    result = run_python(python_blocks(path)[index], scratch_sync.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "every example in the docs prints what it shows"
    assert tables(scratch_sync) == [], "the example left tables behind"


@pytest.mark.parametrize("name", ["quickstart.py"])
def test_example_runs(name: str, scratch_sync: ScratchDatabase, tmp_path: Path) -> None:
    result = run_python((ROOT / "examples" / name).read_text(), scratch_sync.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(1,)" in result.stdout
    assert tables(scratch_sync) == []


# docs/metrics-histograms.md: test_doc_block_runs runs its blocks (they need the pool's
# listeners); here, that it keeps what it promises.
HISTOGRAM_DOC = ROOT / "docs" / "metrics-histograms.md"


def test_histogram_doc_has_the_promql_and_a_listener() -> None:
    text = HISTOGRAM_DOC.read_text()
    p99 = (
        "histogram_quantile(0.99, sum by (le, pool) "
        "(rate(aiopool_connection_wait_seconds_bucket[5m])))"
    )
    assert p99 in text
    blocks = python_blocks("docs/metrics-histograms.md")
    assert len(blocks) >= 3
    assert any("def on_acquire" in block for block in blocks)

"""The README's code blocks and the files in examples/ run for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aiopool import AsyncConnectionPool

ROOT = Path(__file__).resolve().parent.parent
README_URL = "mysql://root:@127.0.0.1:3306/test"


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def run_python(code: str, database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "snippet.py"
    # The README shows the usual local URL; point it at the database the tests use.
    base = database_url.split("?", 1)[0]
    script.write_text(code.replace(README_URL, base).replace(README_URL.replace(":@", "@"), base))
    env = {**os.environ, "AIOPOOL_URL": database_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )


def test_readme_has_runnable_blocks() -> None:
    assert len(readme_blocks()) >= 3


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_block_runs(index: int, database_url: str, tmp_path: Path) -> None:
    code = readme_blocks()[index]
    result = run_python(code, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "every README example prints what it shows"


@pytest.mark.parametrize("name", ["quickstart.py"])
def test_example_runs(name: str, database_url: str, tmp_path: Path) -> None:
    result = run_python((ROOT / "examples" / name).read_text(), database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(1,)" in result.stdout


# docs/metrics-histograms.md: its examples register listeners, so they run once the
# pool takes them. (A test running every docs/*.md block supersedes this one.)
HISTOGRAM_DOC = ROOT / "docs" / "metrics-histograms.md"
HISTOGRAM_BLOCKS = re.findall(
    r"^```python\n(.*?)^```", HISTOGRAM_DOC.read_text(), flags=re.S | re.M
)


@pytest.mark.skipif(
    not hasattr(AsyncConnectionPool, "add_listener"),
    reason="the pool does not emit events yet (issue 12: the pool's wiring)",
)
@pytest.mark.parametrize("index", range(len(HISTOGRAM_BLOCKS)))
def test_histogram_doc_block_runs(index: int, database_url: str, tmp_path: Path) -> None:
    result = run_python(HISTOGRAM_BLOCKS[index], database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "every example in the docs prints what it shows"


def test_histogram_doc_has_the_promql_and_a_listener() -> None:
    text = HISTOGRAM_DOC.read_text()
    p99 = (
        "histogram_quantile(0.99, sum by (le, pool) "
        "(rate(aiopool_connection_wait_seconds_bucket[5m])))"
    )
    assert p99 in text
    assert len(HISTOGRAM_BLOCKS) >= 3
    assert any("def on_acquire" in block for block in HISTOGRAM_BLOCKS)

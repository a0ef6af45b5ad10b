"""The README's code blocks and the files in examples/ run for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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

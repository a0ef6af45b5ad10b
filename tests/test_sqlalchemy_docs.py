"""Every ```python block in docs/sqlalchemy.md runs as a script and prints something."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_docs_and_examples import run_python

DOC = Path(__file__).resolve().parent.parent / "docs" / "sqlalchemy.md"


def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_doc_has_runnable_blocks() -> None:
    assert len(doc_blocks()) >= 6


@pytest.mark.parametrize("index", range(len(doc_blocks())))
def test_doc_block_runs(index: int, database_url: str, tmp_path: Path) -> None:
    result = run_python(doc_blocks()[index], database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "every example in docs/sqlalchemy.md prints what it shows"

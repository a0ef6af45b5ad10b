"""``python -m bench.turns``: two compiled builds in processes taking turns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.turns import __main__ as turns
from bench.turns._summary import per_process, summarize, summary_markdown


def _results(rates: dict[tuple[str, str, str], float]) -> dict[str, Any]:
    runs: list[dict[str, Any]] = [
        {"loop": loop, "workload": workload, "contender": contender, "ops_per_s": rate}
        for (loop, workload, contender), rate in rates.items()
    ]
    runs.append({"loop": "uvloop", "workload": "W3", "contender": "aiopool", "error": "x"})
    return {"runs": runs}


def test_each_process_is_read_against_its_own_yardstick() -> None:
    results = _results(
        {
            ("asyncio", "W4", "aiopool"): 80.0,
            ("asyncio", "W4", "asyncmy"): 100.0,
            ("uvloop", "W4", "aiopool"): 90.0,  # no yardstick in this process: left out
        }
    )
    assert per_process(results) == {"asyncio W4": 0.8}


def test_pairs_are_compared_old_against_new() -> None:
    old = [{"asyncio W4": 0.8}, {"asyncio W4": 0.5}, {"asyncio W4": 1.0}]
    new = [{"asyncio W4": 0.88}, {"asyncio W4": 0.6}, {"asyncio W4": 0.9}]
    table = summarize(old, new)
    row = table["asyncio W4"]
    assert row["old"] == 0.8 and row["new"] == 0.88
    assert row["pairs"] == [1.1, 1.2, 0.9]
    assert row["new_over_old"] == 1.1
    assert "| asyncio W4 | 0.800 | 0.880 | 1.100 | 1.10, 1.20, 0.90 |" in summary_markdown(
        table, "old", "new"
    )


def test_the_builds_take_turns_old_first_then_new_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def fake_bench(path: Path, _args: object, _out: Path) -> dict[str, Any]:
        calls.append(path.name)
        rate = 90.0 if path.name == "new" else 80.0
        results = _results(
            {("asyncio", "W4", "aiopool"): rate, ("asyncio", "W4", "asyncmy"): 100.0}
        )
        results["machine"] = {"libraries": {"aiopool-mysql": f"0.1.0 ({path.name} build)"}}
        return results

    monkeypatch.setattr(turns, "run_bench", fake_bench)
    args = turns.argparse.Namespace(pairs=3)
    runs, builds = turns.take_turns(tmp_path / "old", tmp_path / "new", args, tmp_path)
    assert calls == ["old", "new", "new", "old", "old", "new"]
    assert runs == {"old": [{"asyncio W4": 0.8}] * 3, "new": [{"asyncio W4": 0.9}] * 3}
    assert builds == {"old": "0.1.0 (old build)", "new": "0.1.0 (new build)"}


def test_bad_arguments_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        turns.main(["--old", str(tmp_path), "--pairs", "0"])
    assert "--pairs must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        turns.main(["--old", str(tmp_path), "--new", str(tmp_path)])
    assert "no aiopool/ in it" in capsys.readouterr().err


def test_an_unknown_revision_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="neither a directory nor a revision"):
        turns.build_revision("no-such-rev", tmp_path)

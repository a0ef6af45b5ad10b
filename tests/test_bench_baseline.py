"""``python -m bench --baseline REV``: an earlier aiopool measured in the same run."""

from __future__ import annotations

import sys

import pytest

from bench import _baseline


def test_ratios_pair_the_same_round_and_loop() -> None:
    runs = [
        {"loop": "asyncio", "workload": "W1", "round": 0, "contender": "aiopool", "ops_per_s": 90},
        {"loop": "asyncio", "workload": "W1", "round": 0, "contender": "old", "ops_per_s": 100},
        {"loop": "asyncio", "workload": "W1", "round": 1, "contender": "aiopool", "ops_per_s": 120},
        {"loop": "asyncio", "workload": "W1", "round": 1, "contender": "old", "ops_per_s": 100},
        {"loop": "asyncio", "workload": "W1", "round": 2, "contender": "aiopool", "ops_per_s": 50},
        {"loop": "asyncio", "workload": "W1", "round": 2, "contender": "old", "ops_per_s": 100},
        {"loop": "uvloop", "workload": "W1", "round": 0, "contender": "aiopool", "ops_per_s": 80},
        {"loop": "uvloop", "workload": "W1", "round": 0, "contender": "asyncmy", "ops_per_s": 1},
        {"loop": "uvloop", "workload": "W3", "round": 0, "contender": "old", "error": "x"},
    ]
    table = _baseline.ratios(runs, "old")
    assert table == {"asyncio W1": {"rounds": [0.9, 1.2, 0.5], "median": 0.9}}
    assert "| asyncio W1 | 0.90 | 0.90, 1.20, 0.50 |" in _baseline.ratios_markdown(table, "old")


def test_a_compiled_aiopool_against_the_pure_baseline_is_said() -> None:
    table = {"asyncio W4": {"rounds": [1.2], "median": 1.2}}
    assert "aiopool (compiled) ÷ old (pure" in _baseline.ratios_markdown(table, "old", "compiled")
    note = _baseline.mixed_builds_note("compiled")
    assert note is not None and "include what compiling gains" in note
    assert _baseline.mixed_builds_note("pure") is None


def test_a_revision_is_loaded_beside_the_installed_package() -> None:
    import aiopool

    contender = _baseline.contender("HEAD")
    assert contender.name.startswith("aiopool@")
    loaded = sys.modules["aiopool_baseline"]
    assert loaded.AsyncConnectionPool is not aiopool.AsyncConnectionPool
    assert loaded.__file__ != aiopool.__file__
    assert loaded._pool.__name__ == "aiopool_baseline._pool"


def test_an_unknown_revision_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="no-such-rev"):
        _baseline.contender("no-such-rev")

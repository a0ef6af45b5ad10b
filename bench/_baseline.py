"""``--baseline REV``: an earlier aiopool from this repository, in the same run.

Ratios between two runs on this noisy machine mean little; the same run,
rounds interleaved, is how a change to the pool is judged ("the hot path stays
as fast").  The revision's ``aiopool/`` is extracted with ``git archive`` and
imported as the package ``aiopool_baseline`` (its imports are relative), so
both versions live in one process.
"""

from __future__ import annotations

import importlib.util
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from ._adapters import AiopoolAdapter, Contender

__all__ = ["contender", "mixed_builds_note", "ratios", "ratios_markdown"]

_REPO = Path(__file__).resolve().parent.parent
_PACKAGE = "aiopool_baseline"


def _load(rev: str) -> ModuleType:
    try:
        tar = subprocess.run(
            ["git", "-C", str(_REPO), "archive", "--format=tar", rev, "aiopool"],
            check=True,
            capture_output=True,
        ).stdout
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode().strip()
        raise SystemExit(f"--baseline {rev}: git archive failed: {detail}") from None
    root = Path(tempfile.mkdtemp(prefix="aiopool-baseline-"))
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(root, filter="data")
    init = root / "aiopool" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        _PACKAGE, init, submodule_search_locations=[str(init.parent)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = module
    spec.loader.exec_module(module)
    return module


def contender(rev: str) -> Contender:
    """The contender ``aiopool@REV``: the same adapter over the revision's pool."""
    pool_class = _load(rev).AsyncConnectionPool
    short = subprocess.run(
        ["git", "-C", str(_REPO), "rev-parse", "--short", rev],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

    class BaselineAdapter(AiopoolAdapter):
        name = f"aiopool@{short}"

        def _pool_class(self) -> Any:
            return pool_class

    return Contender(BaselineAdapter.name, BaselineAdapter)


def ratios(runs: list[dict[str, Any]], baseline: str) -> dict[str, dict[str, Any]]:
    """Per loop and workload: aiopool ÷ baseline ops/s, round by round, and the median."""
    by_key: dict[tuple[str, str, int], dict[str, float]] = {}
    for run in runs:
        if "ops_per_s" in run and run["contender"] in ("aiopool", baseline):
            key = (run["loop"], run["workload"], run["round"])
            by_key.setdefault(key, {})[run["contender"]] = run["ops_per_s"]
    out: dict[str, dict[str, Any]] = {}
    for (loop, workload, _rnd), pair in sorted(by_key.items()):
        if len(pair) == 2 and pair[baseline]:
            row = out.setdefault(f"{loop} {workload}", {"rounds": []})
            row["rounds"].append(round(pair["aiopool"] / pair[baseline], 3))
    for row in out.values():
        row["median"] = round(statistics.median(row["rounds"]), 3)
    return out


def mixed_builds_note(build: str) -> str | None:
    """What to say when the measured aiopool is not pure Python, as the baseline always is."""
    if build == "pure":
        return None
    return (
        f"note: the aiopool measured is the {build} build, the baseline its revision's "
        "pure Python (imported from source): the ratios include what compiling gains. "
        "For a change's own effect, run without build/compiled on the path, or compare "
        "compiled builds with python -m bench.turns --old REV."
    )


def ratios_markdown(table: dict[str, dict[str, Any]], baseline: str, build: str = "pure") -> str:
    """The ratios as a markdown table; ``build`` is the measured aiopool's."""
    lines = [
        f"| loop, workload | aiopool ({build}) ÷ {baseline} (pure, median) | per round |",
        "|---|---|---|",
    ]
    for key, row in table.items():
        rounds = ", ".join(f"{r:.2f}" for r in row["rounds"])
        lines.append(f"| {key} | {row['median']:.2f} | {rounds} |")
    return "\n".join(lines)

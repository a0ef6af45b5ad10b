"""``python -m bench.turns --old REV|DIR [--new DIR] [--pairs N] [--only W3,W4]``.

Two compiled builds cannot share a process (their modules have the same
names), so ``python -m bench --baseline`` can only set the pure Python of a
revision beside the build measured.  This runs ``python -m bench`` once per
build and pair, the two builds taking turns (old, new, then new, old, so that
a drift of the machine hits both alike), each process measuring aiopool and
asyncmy's pool side by side; the yardstick's ratio is compared across
processes.  ``--old`` is a directory to put first on the path (an unpacked
build, as ``build/compiled``) or a git revision, which is built here the way
``make compiled`` builds the working tree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ._summary import per_process, summarize, summary_markdown

REPO = Path(__file__).resolve().parents[2]
# What ``make compiled`` packs into the wheel it builds (see the Makefile).
SOURCES = ("pyproject.toml", "hatch_build.py", "README.md", "LICENSE", "aiopool")


def build_revision(rev: str, into: Path) -> Path:
    """The compiled build of ``rev``, unpacked into ``into/build``."""
    src, wheels, out = into / "src", into / "wheel", into / "build"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, *SOURCES],
        capture_output=True,
    )
    if archive.returncode:
        raise SystemExit(
            f"--old {rev}: neither a directory nor a revision git knows "
            f"({archive.stderr.decode().strip()})"
        )
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    print(f"building {rev} (mypyc, about a minute)", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-w",
            str(wheels),
            str(src),
        ],
        env={**os.environ, "HATCH_BUILD_HOOKS_ENABLE": "1"},
        check=True,
    )
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive_file:
        names = [n for n in archive_file.namelist() if ".dist-info/" not in n]
        archive_file.extractall(out, names)
    return out


def run_bench(path: Path, args: argparse.Namespace, out: Path) -> dict[str, object]:
    """One ``python -m bench`` process with ``path`` first on the path; its results."""
    command = [
        sys.executable,
        "-P",
        "-m",
        "bench",
        "--only",
        args.only,
        "--loop",
        args.loop,
        "--contenders",
        "aiopool,asyncmy",
        "--rounds",
        "1",
        "--seconds",
        str(args.seconds),
        "--no-startup",
        "--no-memory",
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(path)}
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"python -m bench with {path} failed:\n{done.stdout}\n{done.stderr}")
    results: dict[str, object] = json.loads((out / "results.json").read_text())
    return results


def build_of(results: dict[str, object]) -> str:
    """The aiopool version and build a process reported ("0.1.0 (compiled build)")."""
    machine = results.get("machine")
    libraries = machine.get("libraries", {}) if isinstance(machine, dict) else {}
    return str(libraries.get("aiopool-mysql", "unknown"))


def take_turns(
    old: Path, new: Path, args: argparse.Namespace, out: Path
) -> tuple[dict[str, list[dict[str, float]]], dict[str, str]]:
    """Each build's ratios, process by process, and the build each process reported."""
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    builds: dict[str, str] = {}
    for pair in range(args.pairs):
        # Old first, then new first: a drift of the machine hits both alike.
        order = ("old", "new") if pair % 2 == 0 else ("new", "old")
        for side in order:
            results = run_bench(old if side == "old" else new, args, out / f"{side}-{pair}")
            builds[side] = build_of(results)
            runs[side].append(per_process(results))
            ratios = ", ".join(f"{k} {v:.3f}" for k, v in runs[side][-1].items())
            print(f"pair {pair + 1}/{args.pairs} {side}: {ratios}", flush=True)
    return runs, builds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.turns", description=__doc__.split("\n\n")[1])
    p.add_argument("--old", required=True, help="a git revision, or a directory holding a build")
    p.add_argument("--new", default=str(REPO / "build" / "compiled"), help="default build/compiled")
    p.add_argument("--pairs", type=int, default=6, help="processes per build (default 6)")
    p.add_argument("--only", default="W3,W4", help="workloads (default W3,W4)")
    p.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="both")
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per run")
    p.add_argument("--out", type=Path, help="keep each process's results here")
    args = p.parse_args(argv)
    if args.pairs < 1:
        p.error("--pairs must be at least 1")
    new = Path(args.new)
    if not (new / "aiopool").is_dir():
        p.error(f"--new {new}: no aiopool/ in it (run 'make compiled' for build/compiled)")
    with tempfile.TemporaryDirectory(prefix="aiopool-turns-") as tmp:
        work = Path(tmp)
        old = Path(args.old)
        if not (old / "aiopool").is_dir():
            old = build_revision(args.old, work)
        runs, builds = take_turns(old, new, args, args.out or work / "results")
    print(f"old: {args.old} ({builds['old']}); new: {new} ({builds['new']})")
    print(summary_markdown(summarize(runs["old"], runs["new"]), "old", "new"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench.app``: TechEmpower's database tests through FastAPI, per pool backend.

Each round starts the app once per backend (in an order that changes round by
round, ``bench._order.turn_order``, so machine drift hits every backend alike)
under uvicorn with uvloop, and for each test type runs ``wrk`` for a warm-up and
then for the measured window, while a side connection counts the pool's sessions
on the server. Medians over rounds go to ``bench/results/app.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import statistics
import sys
import time
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .._env import machine, server_versions
from .._order import turn_order
from . import _report
from ._backends import BACKENDS, SIZE
from ._process import AppServer, SessionSampler
from ._schema import DATABASE, ROWS, create_world, database_of
from ._wrk import WrkMissing, ensure_wrk, run

DEFAULT_URL = f"mysql://root:@127.0.0.1:3306/{DATABASE}"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.app", description=__doc__.splitlines()[0])
    p.add_argument("--url", default=DEFAULT_URL, help="server and the bench's own database")
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma list")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up seconds per cell")
    p.add_argument("--seconds", type=float, default=6.0, help="measured wrk seconds per cell")
    p.add_argument("--queries", type=int, default=20, help="N of the multiple-queries test")
    p.add_argument("--updates", type=int, default=5, help="N of the updates test")
    p.add_argument("--connections", type=int, default=64, help="wrk connections")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--timeout", type=float, default=30.0, help="wrk per-request timeout, s")
    p.add_argument("--quick", action="store_true", help="1 round, 1 s warm-up, 2 s runs")
    p.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "results")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.seconds = 1, 1.0, 2.0
    args.backend_names = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in args.backend_names if b not in BACKENDS]
    if bad:
        p.error(f"unknown backend(s) {bad}; choose from {list(BACKENDS)}")
    database_of(args.url)  # refuses a URL without its own database
    return args


def tests(args: argparse.Namespace) -> dict[str, str]:
    """Test name -> path, TechEmpower's three database test types."""
    return {
        "single query": "/db",
        f"{args.queries} queries": f"/queries?queries={args.queries}",
        f"{args.updates} updates": f"/updates?queries={args.updates}",
    }


async def _cell(
    server: AppServer, path: str, args: argparse.Namespace, wrk: str, sampler: SessionSampler
) -> dict[str, Any]:
    url = server.base + path
    load = os.getloadavg()[0]
    sampler.start()
    try:
        await run(wrk, url, args.warmup, args.connections, args.threads, args.timeout)
        warm = len(sampler.samples)
        res = await run(wrk, url, args.seconds, args.connections, args.threads, args.timeout)
    finally:
        samples = await sampler.stop()
    return asdict(res) | {
        "sessions_max": max(samples, default=None),
        "sessions_max_measured": max(samples[warm:], default=None),
        "sessions_samples": len(samples),
        # Other work on the machine shows here: the numbers are not adjusted for it.
        "loadavg_1min_before": round(load, 2),
    }


async def _backend_round(
    name: str, rnd: int, args: argparse.Namespace, wrk: str, runs: list[dict[str, Any]]
) -> None:
    backend = BACKENDS[name](args.url, SIZE)
    reason = backend.unavailable()
    if reason:
        for test in tests(args):
            runs.append({"round": rnd, "backend": name, "test": test, "skipped": reason})
        print(f"  [r{rnd + 1}] {name}: skipped ({reason})", flush=True)
        return
    server = AppServer(name, args.url, ROWS, SIZE)
    sampler = SessionSampler(args.url)
    await sampler.open()
    try:
        await server.start()
        for test, path in tests(args).items():
            row: dict[str, Any] = {"round": rnd, "backend": name, "test": test}
            try:
                row |= await _cell(server, path, args, wrk, sampler)
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
            runs.append(row)
            print(f"  [r{rnd + 1}] {name:<18} {test:<13} {_brief(row)}", flush=True)
    except Exception as exc:
        for test in tests(args):
            runs.append({"round": rnd, "backend": name, "test": test, "error": str(exc)})
        print(f"  [r{rnd + 1}] {name}: ERROR {exc}", flush=True)
    finally:
        code = await server.stop()
        await sampler.close()
    # uvicorn re-raises the SIGTERM it handled once the app has shut down.
    if code not in (0, -signal.SIGTERM, None):
        print(f"  [r{rnd + 1}] {name}: server exited with {code}: {server.log()}", flush=True)
    server.discard_log()


def _brief(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"ERROR {row['error']}"
    errors = row["non_2xx"] + row["socket_errors"] + row["timeouts"]
    return (
        f"{row['req_per_s']:>8,.0f} req/s  p50 {row['p50_ms']:7.1f} ms  "
        f"p99 {row['p99_ms']:7.1f} ms  errors {errors}  sessions <= {row['sessions_max']}"
    )


def aggregate(runs: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """Per test x backend: medians over rounds, errors summed, the most sessions seen."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["test"], r["backend"]), []).append(r)
    rows = []
    for (test, name), rs in groups.items():
        ok = [r for r in rs if "req_per_s" in r]
        row: dict[str, Any] = {"test": test, "backend": name, "runs": len(ok)}
        if not ok:
            row["note"] = rs[0].get("skipped") or rs[0].get("error", "no result")
            rows.append(row)
            continue
        for m in ("req_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"):
            row[m] = statistics.median(r[m] for r in ok)
        row["req_per_s_rounds"] = [round(r["req_per_s"]) for r in ok]
        row["p99_ms_rounds"] = [round(r["p99_ms"], 1) for r in ok]
        for m in ("requests", "non_2xx", "socket_errors", "timeouts"):
            row[m] = sum(r[m] for r in ok)
        seen = [r["sessions_max"] for r in ok if r["sessions_max"] is not None]
        row["sessions_max"] = max(seen, default=None)
        row["sessions_ok"] = max(seen) <= size if seen else None
        failed = [r["error"] for r in rs if "error" in r]
        if failed:
            row["note"] = f"{len(failed)} run(s) failed: {failed[0]}"
        rows.append(row)
    return rows


async def _main(args: argparse.Namespace, wrk: str) -> dict[str, Any]:
    started = time.perf_counter()
    load_start = os.getloadavg()
    http = "httptools" if importlib.util.find_spec("httptools") else "h11: install httptools"
    print(f"bench-app: filling {ROWS:,} rows of tfb_world in `{database_of(args.url)}`", flush=True)
    await create_world(args.url, ROWS)
    env = machine(await server_versions())
    names = args.backend_names
    print(
        f"bench-app: {names}; {args.rounds} round(s) x {list(tests(args))}; "
        f"{args.warmup:g} s warm-up + {args.seconds:g} s per cell; wrk -c{args.connections} "
        f"-t{args.threads}; pool size {SIZE}",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for name in turn_order(names, rnd):
            await _backend_round(name, rnd, args, wrk, runs)
    return {
        "machine": env,
        "settings": {
            "size": SIZE,
            "rows": ROWS,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "seconds": args.seconds,
            "connections": args.connections,
            "threads": args.threads,
            "wrk_timeout": args.timeout,
            "tests": tests(args),
            "backends": names,
            "server": f"uvicorn {version('uvicorn')} ({http}), uvloop, one process; "
            f"FastAPI {version('fastapi')}",
            "wall_seconds": round(time.perf_counter() - started, 1),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "idioms": {n: BACKENDS[n].idiom for n in names},
        "summary": aggregate(runs, SIZE),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        wrk = ensure_wrk()
    except WrkMissing as exc:
        print(f"bench-app: {exc}", file=sys.stderr)
        return 2
    results = asyncio.run(_main(args, wrk))
    paths = _report.write(results, args.out)
    print(_report.table(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    print(f"total {results['settings']['wall_seconds']} s")
    over = [r for r in results["summary"] if r.get("sessions_ok") is False]
    for r in over:
        print(
            f"bench-app: {r['backend']} {r['test']}: {r['sessions_max']} server sessions "
            f"seen, pool size {SIZE}",
            file=sys.stderr,
        )
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())

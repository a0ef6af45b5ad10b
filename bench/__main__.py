"""``python -m bench``: aiopool side by side with its peers.

Every round runs each selected event loop in turn; inside a round each workload
runs every contender once, in an order that changes from round to round
(``_order.turn_order``: every contender takes every place and follows every
other one equally often), so machine drift hits every pool alike. Each run
opens a fresh pool, warms up, measures, and closes it. Results go to
``bench/results/`` (JSON, Markdown, PNG).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import _baseline, _burst, _report
from ._adapters import (
    CONTENDER_KEYS,
    CONTENDERS,
    Adapter,
    AiopoolAdapter,
    Contender,
    FairFloorAdapter,
    PooledConnectionBare,
    Unavailable,
)
from ._env import MySQLMonitor, aiopool_build, delta, machine, per_op, server_versions
from ._order import turn_order
from ._startup import STARTERS, memory, startup
from ._workloads import WORKLOADS, RunResult, Workload, run_sliced, run_tasks

SIZE = 16
OPEN_TIMEOUT = 60.0


def _loop_factories(choice: str) -> dict[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {}
    if choice in ("asyncio", "both"):
        loops["asyncio"] = asyncio.new_event_loop
    if choice in ("uvloop", "both"):
        try:
            import uvloop
        except ImportError:
            print("uvloop not installed: skipping the uvloop runs", file=sys.stderr)
        else:
            loops["uvloop"] = uvloop.new_event_loop
    return loops


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="0.5 s runs, 1 round, short warm-up")
    p.add_argument("--only", default=",".join(WORKLOADS), help="workloads, e.g. W1,W3")
    p.add_argument(
        "--contenders",
        default=",".join(CONTENDER_KEYS),
        help=f"comma list of {', '.join(CONTENDER_KEYS)}",
    )
    p.add_argument("--seconds", type=float, help="measured seconds per run (default 2)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per run (default 0.5)")
    p.add_argument(
        "--slice",
        type=float,
        default=0.05,
        help="W1/W2: contenders take turns in slices of this many seconds (default 0.05)",
    )
    p.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="both")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up benchmark")
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc measure")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure aiopool as of this git revision (contender aiopool@REV), "
        "and report aiopool ÷ it round by round",
    )
    args = p.parse_args(argv)
    args.seconds = args.seconds or (0.5 if args.quick else 2.0)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (0.2 if args.quick else 0.5)
    args.workloads = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    bad = [w for w in args.workloads if w not in WORKLOADS]
    if bad:
        p.error(f"unknown workload(s) {bad}; choose from {list(WORKLOADS)}")
    keys = [c.strip().lower() for c in args.contenders.split(",") if c.strip()]
    bad = [k for k in keys if k not in CONTENDER_KEYS]
    if bad:
        p.error(f"unknown contender(s) {bad}; choose from {list(CONTENDER_KEYS)}")
    args.contender_names = [CONTENDER_KEYS[k] for k in keys]
    args.contenders_run = [c for c in CONTENDERS if c.name in args.contender_names]
    args.baseline_name = None
    if args.baseline:
        extra = _baseline.contender(args.baseline)
        args.baseline_name = extra.name
        args.contenders_run.append(extra)
        args.contender_names.append(extra.name)
    return args


async def _run_one(
    contender: Contender, workload: Workload, args: argparse.Namespace, mon: MySQLMonitor | None
) -> dict[str, Any]:
    adapter, failure = await _open(contender)
    if adapter is None:
        return failure
    out: dict[str, Any]
    try:
        use_mon = mon is not None and contender.backend == "mysql"
        before = await mon.counters() if use_mon else None
        result = await run_tasks(adapter, workload, args.warmup, args.seconds)
        if use_mon:
            result.server = per_op(delta(before, await mon.counters()), result.ops_total)
        out = asdict(result)
        if hasattr(adapter, "stats"):
            out["pool_stats"] = _jsonable(adapter.stats())
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        await asyncio.wait_for(adapter.close(), OPEN_TIMEOUT)
    except Exception as exc:
        out.setdefault("close_error", f"{type(exc).__name__}: {exc}")
    return out


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {
        str(k): v if isinstance(v, int | float | str | bool | None) else str(v)
        for k, v in d.items()
    }


async def _open(contender: Contender) -> tuple[Adapter | None, dict[str, Any]]:
    """Create and open one contender's pool; on failure say why instead."""
    try:
        adapter = contender.factory(SIZE)
    except Unavailable as exc:
        return None, {"skipped": str(exc).split(":")[0]}
    try:
        await asyncio.wait_for(adapter.open(), OPEN_TIMEOUT)
    except Exception as exc:
        return None, {"error": f"open: {type(exc).__name__}: {exc}"}
    return adapter, {}


async def _run_sliced(
    order: list[Contender], workload: Workload, args: argparse.Namespace, mon: MySQLMonitor | None
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    adapters: dict[str, Adapter] = {}
    for c in order:
        adapter, failure = await _open(c)
        if adapter is None:
            out[c.name] = failure
        else:
            adapters[c.name] = adapter
    ours = adapters.get(AiopoolAdapter.name)
    if workload.key == "W2" and isinstance(ours, AiopoolAdapter):
        # W2's control: aiopool's own connection used bare (see PooledConnectionBare).
        adapters[PooledConnectionBare.name] = PooledConnectionBare(ours)
    try:
        if adapters:
            mysql = {c.name for c in order if c.backend == "mysql"}
            mysql.add(PooledConnectionBare.name)
            counters = mon.counters if mon is not None else None
            results: dict[str, RunResult] = await run_sliced(
                adapters, workload, args.warmup, args.seconds, args.slice, counters, mysql
            )
            for name, res in results.items():
                reads = res.server.pop("_reads", 0)
                res.server = per_op(res.server, res.ops, reads) if res.server else {}
                out[name] = asdict(res)
    except Exception as exc:
        for name in adapters:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    for name, adapter in adapters.items():
        if hasattr(adapter, "stats"):
            out[name]["pool_stats"] = _jsonable(adapter.stats())
        try:
            await asyncio.wait_for(adapter.close(), OPEN_TIMEOUT)
        except Exception as exc:
            out[name].setdefault("close_error", f"{type(exc).__name__}: {exc}")
    return out


async def _round(
    rnd: int, loop_name: str, args: argparse.Namespace, runs: list[dict[str, Any]]
) -> None:
    contenders = args.contenders_run
    mon: MySQLMonitor | None = MySQLMonitor()
    try:
        await mon.open()
    except Exception as exc:
        print(f"  (no MySQL status counters: {exc})", file=sys.stderr)
        mon = None
    for key in args.workloads:
        workload = WORKLOADS[key]
        eligible = [c for c in contenders if key in c.workloads]
        if not eligible:
            continue
        order = turn_order(eligible, rnd)
        tag = f"  [{loop_name} r{rnd + 1}] {key}"
        if workload.tasks == 1:
            t0 = time.perf_counter()
            by_name = await _run_sliced(order, workload, args, mon)
            took = time.perf_counter() - t0
            for name in [c.name for c in order] + [
                n for n in by_name if n not in {c.name for c in order}
            ]:
                res = by_name[name]
                runs.append(_run_row(rnd, loop_name, key, name, res))
                print(f"{tag} {name:<18} {_brief(res)}", flush=True)
            print(f"{tag} (sliced, all contenders together: {took:.1f} s)", flush=True)
            continue
        for contender in order:
            t0 = time.perf_counter()
            if workload.op == "burst":
                res = await _burst.run_row(contender)
            else:
                res = await _run_one(contender, workload, args, mon)
            runs.append(_run_row(rnd, loop_name, key, contender.name, res))
            print(
                f"{tag} {contender.name:<18} {_brief(res)}  ({time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
    if mon is not None:
        await mon.close()


def _run_row(rnd: int, loop: str, wl: str, name: str, res: dict[str, Any]) -> dict[str, Any]:
    return {"round": rnd, "loop": loop, "workload": wl, "contender": name} | res


def _brief(res: dict[str, Any]) -> str:
    if "skipped" in res:
        return "skipped: " + res["skipped"]
    if "error" in res:
        return "ERROR " + res["error"]
    s = f"{res['ops_per_s']:>10,.0f} ops/s  p99 {res['p99_ms']:.3f} ms"
    if res.get("wait_max_ms") is not None:
        s += f"  max wait {res['wait_max_ms']:.1f} ms"
    if res.get("fairness") is not None:
        s += f"  fair {res['fairness']:.2f}"
    if res.get("opened") is not None:
        s += f"  opened {res['opened']} (pool says {res['pool_opened']})"
    return s


def _median(values: list[Any]) -> Any:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over rounds of every metric, per loop x workload x contender."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["loop"], r["workload"], r["contender"]), []).append(r)
    rows = []
    metrics = (
        "ops_per_s",
        "p50_ms",
        "p99_ms",
        "wait_p99_ms",
        "wait_max_ms",
        "fair_cycles",
        "queue_turns",
        "fairness",
        *_burst.METRICS,
    )
    server = ("connections_opened", "statements_per_op", "commits_per_op", "rollbacks_per_op")
    for (loop, wl, name), rs in groups.items():
        ok = [r for r in rs if "ops_per_s" in r]
        row: dict[str, Any] = {"loop": loop, "workload": wl, "contender": name, "runs": len(ok)}
        if not ok:
            row["note"] = rs[0].get("skipped") or rs[0].get("error", "no result")
            rows.append(row)
            continue
        for m in metrics:
            row[m] = _median([r.get(m) for r in ok])
        for m in server:
            row[m] = _median([r["server"].get(m) for r in ok if r.get("server")])
        row["latency_sampled"] = ok[0].get("latency_sampled", False)
        row["timed_out"] = any(r["timed_out"] for r in ok)
        errs = [r["error"] for r in rs if "error" in r]
        if errs:
            row["note"] = f"{len(errs)} run(s) failed: {errs[0]}"
        rows.append(row)
    return rows


def _build_yardsticks(contenders: list[str], workloads: list[str]) -> None:
    """Compile the fair floor now, not between two measured runs of the first round."""
    if FairFloorAdapter.name in contenders and FairFloorAdapter.workloads & set(workloads):
        from .fair_floor import load

        # If it cannot be built, its adapter says so, with the remedy.
        with contextlib.suppress(Exception):
            load()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    loops = _loop_factories(args.loop)
    started = time.perf_counter()
    with asyncio.Runner() as r:
        env = machine(r.run(server_versions()))
    print(
        f"bench: {args.workloads} x {args.contender_names}; loops {list(loops)}; "
        f"{args.rounds} round(s) of {args.seconds} s (+{args.warmup} s warm-up)",
        flush=True,
    )
    _build_yardsticks(args.contender_names, args.workloads)
    runs: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for loop_name, factory in loops.items():
            with asyncio.Runner(loop_factory=factory) as r:
                r.run(_round(rnd, loop_name, args, runs))

    start_up: dict[str, Any] = {}
    if not args.no_startup:
        names = [n for n in STARTERS if n in args.contender_names or n in ("aiopool", "asyncmy")]
        reps = 3 if args.quick else 9
        for loop_name, factory in loops.items():
            with asyncio.Runner(loop_factory=factory) as r:
                start_up[loop_name] = r.run(startup(names, SIZE, reps))
            print(
                f"  [{loop_name}] start-up medians (ms): "
                + ", ".join(
                    f"{k} {v.get('median_ms', float('nan')):.1f}"
                    for k, v in start_up[loop_name].items()
                ),
                flush=True,
            )

    mem: dict[str, Any] = {}
    if not args.no_memory:
        with asyncio.Runner() as r:
            mem = r.run(memory(4, SIZE, 1 if args.quick else 3, _aiopool_available()))
        print(f"  memory: { ({k: v for k, v in mem.items() if k != 'method'}) }", flush=True)

    results = {
        "machine": env,
        "settings": {
            "size": SIZE,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "slice": args.slice,
            "rounds": args.rounds,
            "loops": list(loops),
            "workloads": args.workloads,
            "burst": _burst.settings(),
            "contenders": args.contender_names,
            "wall_seconds": None,
        },
        "workloads": {k: asdict(WORKLOADS[k]) for k in args.workloads},
        "on_release": {c.name: c.factory.on_release for c in args.contenders_run},
        "summary": aggregate(runs),
        "startup": start_up,
        "memory": mem,
        "runs": runs,
    }
    results["targets"] = _report.targets(results)
    if args.baseline_name:
        results["baseline"] = {
            "contender": args.baseline_name,
            "build": aiopool_build(),
            "ratios": _baseline.ratios(runs, args.baseline_name),
        }
    results["settings"]["wall_seconds"] = round(time.perf_counter() - started, 1)
    paths = _report.write(results, args.out)
    print(_report.targets_markdown(results["targets"]))
    if args.baseline_name:
        build = aiopool_build()
        print(_baseline.ratios_markdown(results["baseline"]["ratios"], args.baseline_name, build))
        note = _baseline.mixed_builds_note(build)
        if note:
            print(note)
    print("wrote " + ", ".join(str(p) for p in paths))
    print(f"total {results['settings']['wall_seconds']} s")
    return 0


def _aiopool_available() -> bool:
    try:
        from aiopool import AsyncConnectionPool  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())

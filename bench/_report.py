"""Targets, and the JSON / Markdown / PNG outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._workloads import WORKLOADS

# workload -> (peer contender, throughput ratio aiopool must reach); issue 13
PEERS = {
    "W1": ("asyncmy", 0.7),
    "W2": ("bare-asyncmy", 0.97),
    "W3": ("asyncmy", 0.95),
    "W4": ("asyncmy", 0.95),
    "W5": ("asyncmy", 1.0),
}
# The yardstick contender (bench/fair_floor): serving in order and nothing else.
FAIR_FLOOR = "fair-floor"
W5_IDEAL = 16 / 0.002  # 16 connections each doing one 2 ms sleep at a time
MAX_CYCLES = 3.0
MIN_FAIRNESS = 0.5
# W6 (issue 11): at most this many connections opened by the burst, and a p99
# no worse than the best peer's.
W6_MAX_OPENED = 2
W6_P99_VS_BEST = 1.0
STARTUP_SPEEDUP = 3.0
MEMORY_LIMIT = 2048


def _row(summary: list[dict[str, Any]], loop: str, wl: str, name: str) -> dict[str, Any] | None:
    for r in summary:
        if (r["loop"], r["workload"], r["contender"]) == (loop, wl, name) and r.get("ops_per_s"):
            return r
    return None


def peer_ratio(summary: list[dict[str, Any]], row: dict[str, Any]) -> float | None:
    """Throughput relative to the workload's named peer."""
    if not row.get("ops_per_s"):
        return None
    if row["workload"] not in PEERS:
        return None
    peer = _row(summary, row["loop"], row["workload"], PEERS[row["workload"]][0])
    return row["ops_per_s"] / peer["ops_per_s"] if peer else None


def _target(
    name: str, loop: str, value: float | None, op: str, limit: float, detail: str = ""
) -> dict[str, Any]:
    if op == "info":
        ok, threshold = None, "(context)"
    else:
        ok = None if value is None else (value >= limit if op == ">=" else value <= limit)
        threshold = f"{op} {limit:g}"
    return {
        "target": name,
        "loop": loop,
        "measured": value,
        "threshold": threshold,
        "pass": ok,
        "detail": detail,
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    summary = results["summary"]
    size = results["settings"].get("size")  # absent in hand-made results (tests)
    out: list[dict[str, Any]] = []
    for loop in results["settings"]["loops"]:
        for wl in results["settings"]["workloads"]:
            ours = _row(summary, loop, wl, "aiopool")
            if wl in PEERS:
                peer, limit = PEERS[wl]
                ratio = peer_ratio(summary, ours) if ours else None
                detail = _vs(ours, _row(summary, loop, wl, peer))
                out.append(_target(f"{wl} ops/s ÷ {peer}", loop, ratio, ">=", limit, detail))
                out += _floor_rows(summary, loop, wl, ours, peer)
            if wl in ("W3", "W4"):
                out.append(
                    _target(
                        f"{wl} longest acquire wait, fair cycles",
                        loop,
                        ours and ours["fair_cycles"],
                        "<=",
                        MAX_CYCLES,
                        (ours and f"{ours['wait_max_ms']:.1f} ms") or "",
                    )
                )
                tasks = WORKLOADS[wl].tasks
                bound = (
                    f"first come, first served: at most {(tasks - 1) / (tasks - size):.2f}"
                    if size
                    else ""
                )
                out.append(
                    _target(
                        f"{wl} longest acquire wait, queue turns (loans to others ÷ tasks queued)",
                        loop,
                        ours and ours.get("queue_turns"),
                        "info",
                        0,
                        bound,
                    )
                )
                out.append(
                    _target(
                        f"{wl} fairness (min ÷ median task ops)",
                        loop,
                        ours and ours["fairness"],
                        ">=",
                        MIN_FAIRNESS,
                    )
                )
            if wl == "W2":
                control = _row(summary, loop, wl, "aiopool-conn-bare")
                if control and ours:
                    out.append(
                        _target(
                            "W2 ops/s ÷ aiopool's own connection used bare (same connection)",
                            loop,
                            ours["ops_per_s"] / control["ops_per_s"],
                            "info",
                            0,
                            f"{ours['ops_per_s']:,.0f} vs {control['ops_per_s']:,.0f} ops/s",
                        )
                    )
            if wl == "W5":
                out.append(
                    _target(
                        "W5 ops/s ÷ ideal 8,000",
                        loop,
                        ours and ours["ops_per_s"] / W5_IDEAL,
                        "info",
                        0,
                        (ours and f"{ours['ops_per_s']:,.0f} ops/s") or "",
                    )
                )
                ceiling = _row(summary, loop, wl, "bare-asyncmy")
                if ceiling:
                    out.append(
                        _target(
                            "W5 ops/s ÷ no-pool ceiling (16 tasks, 16 dedicated connections)",
                            loop,
                            ours and ours["ops_per_s"] / ceiling["ops_per_s"],
                            "info",
                            0,
                            f"ceiling {ceiling['ops_per_s']:,.0f} ops/s = "
                            f"{ceiling['ops_per_s'] / W5_IDEAL:.0%} of ideal",
                        )
                    )
                spread = ours and ours["p50_ms"] and ours["p99_ms"] / ours["p50_ms"]
                out.append(
                    _target(
                        "W5 p99 ÷ p50 latency",
                        loop,
                        spread,
                        "<=",
                        2.0,
                        (ours and f"p50 {ours['p50_ms']:.1f} ms, p99 {ours['p99_ms']:.1f} ms")
                        or "",
                    )
                )
            if wl == "W6":
                out += _w6_targets(summary, loop, ours)
        st = results["startup"].get(loop, {})
        a, b = st.get("aiopool", {}), st.get("asyncmy", {})
        if "median_ms" in a and "median_ms" in b:
            out.append(
                _target(
                    "start-up: asyncmy create_pool ÷ aiopool open(wait=True)",
                    loop,
                    b["median_ms"] / a["median_ms"],
                    ">=",
                    STARTUP_SPEEDUP,
                    f"{a['median_ms']:.1f} ms vs {b['median_ms']:.1f} ms",
                )
            )
        elif st:
            out.append(
                _target(
                    "start-up: asyncmy create_pool ÷ aiopool open(wait=True)",
                    loop,
                    None,
                    ">=",
                    STARTUP_SPEEDUP,
                    a.get("error", ""),
                )
            )
    mem = results["memory"]
    if mem:
        out.append(
            _target(
                "pool bookkeeping bytes per connection",
                "-",
                mem.get("aiopool_overhead_bytes"),
                "<=",
                MEMORY_LIMIT,
                f"asyncmy pool: {mem.get('asyncmy_pool_overhead_bytes')} B" if mem else "",
            )
        )
    return out


def _floor_rows(
    summary: list[dict[str, Any]], loop: str, wl: str, ours: dict[str, Any] | None, peer: str
) -> list[dict[str, Any]]:
    """Context from the fair floor (bench/fair_floor), when it ran: order's price, and ours."""
    floor = _row(summary, loop, wl, FAIR_FLOOR)
    if floor is None:
        return []
    pairs = (
        (f"{wl} ops/s: fair floor ÷ {peer}", floor, _row(summary, loop, wl, peer)),
        (f"{wl} ops/s: aiopool ÷ fair floor", ours, floor),
    )
    return [
        _target(name, loop, top["ops_per_s"] / bottom["ops_per_s"], "info", 0, _vs(top, bottom))
        for name, top, bottom in pairs
        if top is not None and bottom is not None
    ]


def _w6_targets(
    summary: list[dict[str, Any]], loop: str, ours: dict[str, Any] | None
) -> list[dict[str, Any]]:
    peers = [
        r
        for r in summary
        if (r["loop"], r["workload"]) == (loop, "W6")
        and r["contender"] != "aiopool"
        and r.get("p99_ms") is not None
    ]
    opened = ", ".join(f"{r['contender']} {_f(r['opened'], '.0f')}" for r in peers)
    best = min(peers, key=lambda r: r["p99_ms"], default=None)
    ratio = ours["p99_ms"] / best["p99_ms"] if ours and best and ours.get("p99_ms") else None
    detail = ""
    if ours and best:
        detail = f"{ours['p99_ms']:.1f} ms vs best peer {best['contender']} {best['p99_ms']:.1f} ms"
    return [
        _target(
            "W6 connections opened by the burst",
            loop,
            ours and ours.get("opened"),
            "<=",
            W6_MAX_OPENED,
            f"peers: {opened}" if opened else "",
        ),
        _target("W6 burst p99 ÷ best peer's p99", loop, ratio, "<=", W6_P99_VS_BEST, detail),
    ]


def _vs(ours: dict[str, Any] | None, peer: dict[str, Any] | None) -> str:
    if not ours or not peer:
        return ""
    return f"{ours['ops_per_s']:,.0f} vs {peer['ops_per_s']:,.0f} ops/s"


# --------------------------------------------------------------------------- Markdown


def _f(v: Any, fmt: str = ".2f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, fmt)
    return str(v)


def targets_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| target | loop | measured | threshold | result | detail |",
        "|---|---|---:|---|---|---|",
    ]
    for t in rows:
        verdict = {True: "PASS", False: "**FAIL**", None: "n/a"}[t["pass"]]
        if t["threshold"] == "(context)":
            verdict = "info"
        lines.append(
            f"| {t['target']} | {t['loop']} | {_f(t['measured'])} | {t['threshold']} "
            f"| {verdict} | {t['detail'] or ''} |"
        )
    return "\n".join(lines)


def _machine_md(m: dict[str, Any], s: dict[str, Any]) -> list[str]:
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    return [
        "| | |",
        "|---|---|",
        f"| date (UTC) | {m['date']} |",
        f"| nproc | {m['nproc']} |",
        f"| CPU | {m['cpu']} |",
        f"| Python | {m['python']} ({m['platform']}) |",
        f"| MariaDB | {m['servers']['mariadb']} |",
        f"| PostgreSQL | {m['servers']['postgresql']} |",
        f"| libraries | {libs} |",
        f"| git | {m['git']} |",
        f"| settings | {s['size']} connections (min = max) for every pool (W6: min 4, max 16); "
        f"{s['rounds']} "
        f"interleaved round(s) of {s['seconds']} s after {s['warmup']} s warm-up; loops "
        f"{', '.join(s['loops'])}; medians over rounds; whole run {s['wall_seconds']} s |",
    ]


COLUMNS = (
    "| workload | contender | ops/s | vs peer | p50 ms | p99 ms | wait p99 ms | max wait ms "
    "| max wait (fair cycles) | max wait (queue turns) | fairness | conns opened | stmts/op "
    "| commits/op "
    "| rollbacks/op |"
)


def _results_md(results: dict[str, Any], loop: str) -> list[str]:
    summary = results["summary"]
    lines = [COLUMNS, "|---|---|" + "---:|" * 13]
    for r in summary:
        if r["loop"] != loop or r["workload"] == "W6":
            continue
        name = f"**{r['contender']}**" if r["contender"] == "aiopool" else r["contender"]
        if not r.get("ops_per_s"):
            lines.append(f"| {r['workload']} | {name} | {r.get('note', '')} |" + " |" * 12)
            continue
        p50 = _f(r["p50_ms"], ".3f") + ("*" if r["latency_sampled"] else "")
        ratio = peer_ratio(summary, r)
        lines.append(
            f"| {r['workload']} | {name} | {r['ops_per_s']:,.0f} | "
            f"{_f(ratio)}{'x' if ratio is not None else ''} | {p50} | {_f(r['p99_ms'], '.3f')} | "
            f"{_f(r['wait_p99_ms'], '.2f')} | {_f(r['wait_max_ms'], '.1f')} | "
            f"{_f(r['fair_cycles'], '.1f')} | {_f(r.get('queue_turns'), '.1f')} | "
            f"{_f(r['fairness'])} | "
            f"{_f(r['connections_opened'], '.0f')} | {_f(r['statements_per_op'])} | "
            f"{_f(r['commits_per_op'])} | {_f(r['rollbacks_per_op'])} |"
            + (f" {r['note']}" if r.get("note") else "")
        )
    return lines


def _burst_md(results: dict[str, Any]) -> list[str]:
    rows = [r for r in results["summary"] if r["workload"] == "W6"]
    if not rows:
        return []
    b = results["settings"].get("burst", {})
    lines = [
        "## W6 burst: connections opened, and latency",
        "",
        f"Each pool starts with {b.get('min_size')} warm connections (max "
        f"{b.get('max_size')}) behind a proxy that delays every new connection by "
        f"{b.get('connect_delay', 0) * 1e3:.0f} ms; {b.get('requests')} requests start at once, "
        f"each holds a connection {b.get('hold', 0) * 1e3:g} ms (no query) and gives it back. "
        "*Opened* = connections accepted at the proxy from the burst's start until "
        f"{b.get('settle', 0) * 1e3:.0f} ms after its last release; *pool says* = "
        "the pool's own count over the same span (aiopool and psycopg_pool: `connections_num`; "
        "SQLAlchemy: `connect` events; asyncmy, aiomysql: growth of `size`). Latency = request "
        "start to the end of its release. Medians over rounds.",
        "",
        "| loop | contender | opened | pool says | warm | p50 ms | p99 ms | max ms | burst ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"**{r['contender']}**" if r["contender"] == "aiopool" else r["contender"]
        if r.get("p99_ms") is None:
            lines.append(f"| {r['loop']} | {name} | {r.get('note', '')} |" + " |" * 6)
            continue
        lines.append(
            f"| {r['loop']} | {name} | {_f(r['opened'], '.0f')} | {_f(r['pool_opened'], '.0f')} "
            f"| {_f(r['warm'], '.0f')} | {_f(r['p50_ms'], '.1f')} | {_f(r['p99_ms'], '.1f')} "
            f"| {_f(r['max_ms'], '.1f')} | {_f(r['burst_ms'], '.1f')} |"
            + (f" {r['note']}" if r.get("note") else "")
        )
    return [*lines, ""]


def readme_table(results: dict[str, Any]) -> str:
    """Every target, one row each, a column per loop, and whether it is met on all of them."""
    loops = results["settings"]["loops"]
    by_name: dict[str, dict[str, dict[str, Any]]] = {}
    for t in results["targets"]:
        by_name.setdefault(t["target"], {})[t["loop"]] = t
    lines = [
        "| target | " + " | ".join(loops) + " | threshold | met? |",
        "|---|" + "---|" * len(loops) + "---|---|",
    ]
    for name, per_loop in by_name.items():
        cells = []
        for loop in loops:
            t = per_loop.get(loop)
            if t is None and loop == loops[0]:
                t = per_loop.get("-")  # not per loop (memory): first column only
            if t is None:
                cells.append("")
                continue
            cell = _f(t["measured"])
            cells.append(cell + (f" ({t['detail']})" if t["detail"] else ""))
        some = next(iter(per_loop.values()))
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {some['threshold']} | {_met(per_loop)} |"
        )
    return "\n".join(lines)


def _met(per_loop: dict[str, dict[str, Any]]) -> str:
    if any(t["threshold"] == "(context)" for t in per_loop.values()):
        return "info"
    failed = [loop for loop, t in per_loop.items() if t["pass"] is False]
    if failed:
        where = "" if len(failed) == len(per_loop) else f" ({', '.join(failed)})"
        return f"**not met**{where}"
    if any(t["pass"] is None for t in per_loop.values()):
        return "n/a"
    return "met"


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    out = ["# aiopool benchmark", ""]
    out += _machine_md(results["machine"], s)
    out += ["", "## Targets", "", readme_table(results), ""]
    out += ["Per loop, with details:", "", targets_markdown(results["targets"]), ""]
    for loop in s["loops"]:
        out += [f"## Results under {loop}", "", *_results_md(results, loop), ""]
    out += [
        "Peers for *vs peer*: W1, W3, W4, W5 asyncmy's pool; W2 a bare asyncmy connection; "
        "in W5 *bare-asyncmy* is "
        "16 tasks each on its own connection, no pool: the most this machine can do. "
        "*fair-floor* (W3-W5) is a yardstick, not a pool: a Cython stack of idle connections "
        "and a line of futures that hands a returned connection to the oldest waiter and does "
        "nothing else (bench/fair_floor), so *fair floor ÷ asyncmy* prices serving in order "
        "and *aiopool ÷ fair floor* prices aiopool's own work. "
        "W1 and W2 run every contender at once, taking turns in short slices. "
        "Fair service cycle = (tasks - 16) ÷ ops/s. Fairness = fewest ops any task finished "
        "÷ median task's ops. \\* W1 latency is sampled: one pair timed alone per 100. "
        "*conns opened*, *stmts/op*, *commits/op*, *rollbacks/op* are deltas of MariaDB's "
        "global `Connections`, `Questions`, `Com_commit`, `Com_rollback` (W1/W2: around each "
        "measured slice; W3-W5: over warm-up + window; shared server, so other clients' "
        "activity is included); PostgreSQL has no "
        "such cheap churn counter and is left blank.",
        "",
    ]
    out += _burst_md(results)
    out += _startup_md(results["startup"])
    out += _memory_md(results["memory"])
    out += [
        "## What each contender does when a connection goes back",
        "",
        "| contender | on release |",
        "|---|---|",
    ]
    out += [f"| {k} | {v} |" for k, v in results["on_release"].items()]
    out += [
        "",
        "Autocommit is each library's default (off for asyncmy, aiomysql, psycopg; "
        "`SELECT 1` opens no transaction on MariaDB, so a MySQL pool has nothing to end).",
        "",
    ]
    return "\n".join(out)


def _startup_md(st: dict[str, Any]) -> list[str]:
    if not st:
        return []
    lines = [
        "## Start-up: 16 ready connections",
        "",
        "Median wall time from the call until the pool holds 16 open connections "
        "(aiopool `open(wait=True)`, asyncmy/aiomysql `create_pool(minsize=16)`, "
        "asyncpg `create_pool(min_size=16)`, psycopg_pool `open(wait=True)`); "
        "interleaved, order rotated each repetition.",
        "",
        "| pool | " + " | ".join(st) + " |",
        "|---|" + "---:|" * len(st),
    ]
    names = list(next(iter(st.values())))
    for n in names:
        cells = []
        for loop in st:
            v = st[loop].get(n, {})
            cells.append(f"{v['median_ms']:.1f} ms" if "median_ms" in v else v.get("error", ""))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _memory_md(mem: dict[str, Any]) -> list[str]:
    if not mem:
        return []
    lines = [
        "## Memory: the pool's own bookkeeping per connection",
        "",
        "Method: " + mem["method"],
        "",
        "| | per connection | fixed (whole pool) |",
        "|---|---:|---:|",
        f"| asyncmy pool | {mem['asyncmy_pool_overhead_bytes']:,} B "
        f"| {mem['asyncmy_pool_fixed_bytes']:,} B |",
    ]
    if "aiopool_overhead_bytes" in mem:
        lines.append(
            f"| **aiopool** | **{mem['aiopool_overhead_bytes']:,} B** "
            f"(repetitions {mem['aiopool_samples']}) | {mem['aiopool_fixed_bytes']:,} B |"
        )
    else:
        lines.append("| aiopool | not available | |")
    lines.append(f"| (one bare asyncmy connection, for scale) | {mem['bare_conn_bytes']:,} B | |")
    return [*lines, ""]


# --------------------------------------------------------------------------- PNG

COLOURS = {"asyncio": ("#1f77b4", "#9ecae1"), "uvloop": ("#d62728", "#fcae91")}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    summary = results["summary"]
    loops = results["settings"]["loops"]
    # W6 is about connections opened, not throughput: its own table, no chart.
    wls = [
        w
        for w in results["settings"]["workloads"]
        if w != "W6" and any(r["workload"] == w and r.get("ops_per_s") for r in summary)
    ]
    if not wls:
        return
    fig, axes = plt.subplots(
        len(wls),
        2,
        figsize=(14, 2.6 * len(wls) + 1.2),
        squeeze=False,
        gridspec_kw={"width_ratios": (1.25, 1)},
    )
    for i, wl in enumerate(wls):
        names = [
            c
            for c in results["settings"]["contenders"]
            if any(
                r["workload"] == wl and r["contender"] == c and r.get("ops_per_s") for r in summary
            )
        ]
        targets = _target_xs(summary, wl, loops)
        what = results["workloads"][wl]["title"]
        goal = f"  [dashed: {targets[0][1]}]" if targets else ""
        _bars(axes[i][0], summary, wl, names, loops, "ops_per_s", [x for x, _, _ in targets])
        axes[i][0].set_title(f"{wl}  {what}: ops/s{goal}", fontsize=10, loc="left")
        for x, _, loop in targets:
            axes[i][0].axvline(x, color=COLOURS[loop][0], linestyle="--", linewidth=1.2)
        _bars(axes[i][1], summary, wl, names, loops, "p99_ms", [], log=True)
        _wait_marks(axes[i][1], summary, wl, names, loops)
        axes[i][1].set_title(
            f"{wl}  p99 latency, ms (log)" + ("  [\u25c6 longest acquire wait]" if i == 0 else ""),
            fontsize=10,
            loc="left",
        )
    handles: list[Any] = []
    for lp in loops:
        handles.append(Patch(facecolor=COLOURS[lp][0], edgecolor="black", label=f"aiopool, {lp}"))
        handles.append(Patch(facecolor=COLOURS[lp][1], label=f"peers, {lp}"))
    handles.append(Line2D([], [], color="grey", linestyle="--", label="target for aiopool"))
    handles.append(
        Line2D([], [], color="black", marker="D", linestyle="", label="longest acquire wait, ms")
    )
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=len(handles),
        frameon=False,
        fontsize=9,
        bbox_to_anchor=(0.5, 0.975),
    )
    m = results["machine"]
    fig.suptitle(
        f"aiopool vs peers: throughput (left, higher is better) and p99 latency (right, lower "
        f"is better); {results['settings']['size']} connections, {m['cpu']} x{m['nproc']}, "
        f"{m['date'][:10]}",
        y=0.995,
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.955))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bars(
    ax: Any,
    summary: list[dict[str, Any]],
    wl: str,
    names: list[str],
    loops: list[str],
    metric: str,
    extra_x: list[float],
    log: bool = False,
) -> None:
    height = 0.8 / len(loops)
    values = [r.get(metric) or 0 for r in summary if r["workload"] == wl]
    top = max([*values, *extra_x, 1e-9])
    for j, loop in enumerate(loops):
        for k, name in enumerate(names):
            r = _row(summary, loop, wl, name)
            if not r or r.get(metric) is None:
                continue
            v = r[metric]
            y = k + (j - (len(loops) - 1) / 2) * height
            ax.barh(
                y,
                v,
                height=height * 0.92,
                color=COLOURS[loop][0 if name == "aiopool" else 1],
                edgecolor="black" if name == "aiopool" else "none",
            )
            label = _num(v) if metric == "ops_per_s" else _num(v, 3)
            wait = r.get("wait_max_ms") or 0
            if log and wait > 3 * v:
                label += f"  (max wait {_num(wait, 3)})"
            # log plots: right of the bar and of the longest-wait diamond, whichever is further
            x = max(v, r.get("wait_max_ms") or 0) * 1.25 if log else v + top * 0.01
            ax.text(x, y, label, va="center", fontsize=7)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(
        [f"{n}\n(16 tasks: ceiling)" if wl == "W5" and n == "bare-asyncmy" else n for n in names],
        fontsize=9,
    )
    for lbl in ax.get_yticklabels():
        if lbl.get_text() == "aiopool":
            lbl.set_fontweight("bold")
    ax.set_ylim(len(names) - 0.5, -0.5)
    if log:
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ax.set_xlim(lo, hi * 5)
    else:
        ax.set_xlim(0, top * 1.15)
        ax.xaxis.set_major_formatter(_si)
    ax.grid(axis="x", alpha=0.3)


def _num(v: float, sig: int = 0) -> str:
    """Thousands separated; below 100 with ``sig`` significant digits."""
    return f"{v:,.0f}" if not sig or v >= 100 else f"{v:.{sig}g}"


def _si(x: float, _pos: object = None) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:g}{suffix}"
    return f"{x:g}"


def _wait_marks(
    ax: Any, summary: list[dict[str, Any]], wl: str, names: list[str], loops: list[str]
) -> None:
    """Mark each longest acquire wait: starvation shows even where p99 hides it."""
    height = 0.8 / len(loops)
    lo, hi = ax.get_xlim()
    for j, loop in enumerate(loops):
        for k, name in enumerate(names):
            r = _row(summary, loop, wl, name)
            if not r or not r.get("wait_max_ms"):
                continue
            y = k + (j - (len(loops) - 1) / 2) * height
            ax.plot(r["wait_max_ms"], y, marker="D", color="black", markersize=4)
            hi = max(hi, r["wait_max_ms"] * 6)
            lo = min(lo, r["wait_max_ms"] / 2)
    ax.set_xlim(lo, hi)


def _target_xs(
    summary: list[dict[str, Any]], wl: str, loops: list[str]
) -> list[tuple[float, str, str]]:
    """(x, label, loop) of each loop's throughput target line for aiopool."""
    if wl not in PEERS:
        return []
    peer, limit = PEERS[wl]
    out = []
    for loop in loops:
        r = _row(summary, loop, wl, peer)
        if r:
            out.append((limit * r["ops_per_s"], f"{limit:g}x {peer}", loop))
    return out


# --------------------------------------------------------------------------- files


def write(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md", out / "readme_table.md"]
    paths[0].write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(results), encoding="utf-8")
    paths[2].write_text(readme_table(results) + "\n", encoding="utf-8")
    plot(results, out / "results.png")
    return [*paths, out / "results.png"]

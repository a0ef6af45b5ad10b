"""The app bench's JSON, Markdown table and chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._report import _num, _si

PEER = "asyncmy"
OURS = "aiopool"


def _row(summary: list[dict[str, Any]], test: str, backend: str) -> dict[str, Any] | None:
    for r in summary:
        if r["test"] == test and r["backend"] == backend and r.get("req_per_s"):
            return r
    return None


def ratio(summary: list[dict[str, Any]], row: dict[str, Any], peer: str = PEER) -> float | None:
    """req/s relative to ``peer``'s in the same test."""
    other = _row(summary, row["test"], peer)
    if not other or not row.get("req_per_s"):
        return None
    return float(row["req_per_s"]) / float(other["req_per_s"])


def table(results: dict[str, Any]) -> str:
    """The measured table: one line per test and backend."""
    summary = results["summary"]
    lines = [
        "| test | backend | req/s | vs asyncmy | p50 ms | p99 ms | max ms | errors "
        "| server sessions (max) | req/s per round |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for test in results["settings"]["tests"]:
        for name in results["settings"]["backends"]:
            r = next((x for x in summary if x["test"] == test and x["backend"] == name), None)
            if r is None:
                continue
            shown = f"**{name}**" if name == OURS else name
            if not r.get("req_per_s"):
                lines.append(f"| {test} | {shown} | {r.get('note', '')} |" + " |" * 7)
                continue
            k = ratio(summary, r)
            errors = r["non_2xx"] + r["socket_errors"] + r["timeouts"]
            err = f"{errors}" + (
                f" ({r['non_2xx']} non-2xx, {r['socket_errors']} socket, {r['timeouts']} timeouts)"
                if errors
                else ""
            )
            sessions = f"{r['sessions_max']}" + ("" if r["sessions_ok"] is not False else " **!**")
            lines.append(
                f"| {test} | {shown} | {r['req_per_s']:,.0f} | "
                f"{'-' if k is None else f'{k:.2f}x'} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['max_ms']:.0f} | {err} | {sessions} | "
                f"{', '.join(f'{v:,}' for v in r['req_per_s_rounds'])} |"
                + (f" {r['note']}" if r.get("note") else "")
            )
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    out = [
        "# aiopool in a real application: TechEmpower's database tests through FastAPI",
        "",
        "| | |",
        "|---|---|",
        f"| date (UTC) | {m['date']} |",
        f"| machine | {m['cpu']} x{m['nproc']}; Python {m['python']} ({m['platform']}) |",
        f"| MariaDB | {m['servers']['mariadb']} |",
        f"| libraries | {libs} |",
        f"| git | {m['git']} |",
        f"| app | FastAPI under {s['server']}; pool of {s['size']} (min = max); "
        f"`tfb_world` of {s['rows']:,} rows |",
        f"| load | wrk -t{s['threads']} -c{s['connections']} --timeout {s['wrk_timeout']:g}s; "
        f"{s['warmup']:g} s warm-up + {s['seconds']:g} s measured per cell; {s['rounds']} "
        f"interleaved round(s), medians; whole run {s['wall_seconds']} s |",
        f"| load average (1, 5, 15 min) | start {_load(s, 'loadavg_start')}, end "
        f"{_load(s, 'loadavg_end')} (other work on this machine: numbers not adjusted) |",
        "",
        table(results),
        "",
        "*vs asyncmy*: median req/s ÷ asyncmy's pool's. *errors*: non-2xx answers, socket "
        "errors and wrk timeouts, summed over rounds. *server sessions*: most sessions on the "
        "bench database seen in `information_schema.PROCESSLIST` (sampled every 0.1 s during "
        f"warm-up and measurement); **!** marks more than the pool size ({s['size']}).",
        "",
        "| backend | how a request uses the pool |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in results["idioms"].items()),
        "",
    ]
    return "\n".join(out)


def _load(s: dict[str, Any], key: str) -> str:
    return " / ".join(f"{x:.1f}" for x in s.get(key, []))


def plot(results: dict[str, Any], path: Path) -> None:
    """Per test: req/s bars per backend, p99 as diamonds on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    summary, s = results["summary"], results["settings"]
    tests = [t for t in s["tests"] if any(r["test"] == t and r.get("req_per_s") for r in summary)]
    if not tests:
        return
    fig, axes = plt.subplots(1, len(tests), figsize=(4.6 * len(tests), 4.6), squeeze=False)
    for ax, test in zip(axes[0], tests, strict=True):
        rows = [r for n in s["backends"] if (r := _row(summary, test, n))]
        xs = range(len(rows))
        colours = ["#d62728" if r["backend"] == OURS else "#9ecae1" for r in rows]
        ax.bar(xs, [r["req_per_s"] for r in rows], color=colours, edgecolor="black", width=0.5)
        for x, r in zip(xs, rows, strict=True):
            # req/s inside the bar's top, p99 beside the bar: the labels never collide.
            ax.text(
                x, r["req_per_s"] * 0.98, _num(r["req_per_s"]), ha="center", va="top", fontsize=8
            )
        ax.set_xticks(list(xs))
        ax.set_xticklabels([r["backend"] for r in rows], rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{test}  ({s['tests'][test]})", fontsize=10)
        ax.set_ylabel("req/s (bars)")
        ax.yaxis.set_major_formatter(_si)
        ax.set_ylim(0, max(r["req_per_s"] for r in rows) * 1.15)
        ax.set_xlim(-0.5, len(rows) - 0.2)
        twin = ax.twinx()
        p99 = [r["p99_ms"] for r in rows]
        marks = [x + 0.38 for x in xs]
        twin.plot(marks, p99, "D", color="black", markersize=6)
        for x, v in zip(marks, p99, strict=True):
            twin.annotate(
                _num(v, 3),
                (x, v),
                (0, 7),
                textcoords="offset points",
                fontsize=7,
                ha="center",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )
        twin.set_ylim(0, max(p99) * 1.3)
        twin.set_ylabel("p99 latency, ms (diamonds)")
    m = results["machine"]
    fig.legend(
        handles=[
            Patch(facecolor="#d62728", edgecolor="black", label="aiopool req/s"),
            Patch(facecolor="#9ecae1", edgecolor="black", label="peers req/s"),
            Line2D([], [], color="black", marker="D", linestyle="", label="p99 latency, ms"),
        ],
        loc="lower center",
        ncol=3,
        frameon=False,
        fontsize=9,
    )
    fig.suptitle(
        f"FastAPI + uvicorn/uvloop, pool of {s['size']}, wrk -c{s['connections']}: req/s "
        f"(higher is better) and p99 (lower is better); {m['cpu']} x{m['nproc']}, "
        f"{m['date'][:10]}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "app.json", out / "app.md", out / "app.png"]
    paths[0].write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(results), encoding="utf-8")
    plot(results, paths[2])
    return paths

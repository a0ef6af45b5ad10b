"""What the turns add up to: aiopool ÷ asyncmy's pool per process, old against new."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["per_process", "summarize", "summary_markdown"]

YARDSTICK = "asyncmy"


def per_process(results: dict[str, Any]) -> dict[str, float]:
    """One process's ``results.json``: aiopool ÷ asyncmy's pool per "loop workload"."""
    rates: dict[tuple[str, str, str], float] = {}
    for run in results["runs"]:
        if run.get("ops_per_s"):
            rates[(run["loop"], run["workload"], run["contender"])] = run["ops_per_s"]
    out: dict[str, float] = {}
    for (loop, workload, contender), rate in rates.items():
        peer = rates.get((loop, workload, YARDSTICK))
        if contender == "aiopool" and peer:
            out[f"{loop} {workload}"] = rate / peer
    return out


def summarize(
    old: list[dict[str, float]], new: list[dict[str, float]]
) -> dict[str, dict[str, Any]]:
    """Per "loop workload": medians of each build's ratios, and new ÷ old pair by pair."""
    table: dict[str, dict[str, Any]] = {}
    for key in sorted({k for process in old + new for k in process}):
        pairs = [(o[key], n[key]) for o, n in zip(old, new, strict=True) if key in o and key in n]
        if not pairs:
            continue
        table[key] = {
            "old": statistics.median(o for o, _ in pairs),
            "new": statistics.median(n for _, n in pairs),
            "pairs": [round(n / o, 3) for o, n in pairs],
        }
        table[key]["new_over_old"] = statistics.median(table[key]["pairs"])
    return table


def summary_markdown(table: dict[str, dict[str, Any]], old: str, new: str) -> str:
    """The summary as a markdown table."""
    lines = [
        f"| loop, workload | aiopool ÷ asyncmy, {old} | aiopool ÷ asyncmy, {new} "
        "| new ÷ old (median of pairs) | pairs |",
        "|---|---|---|---|---|",
    ]
    for key, row in table.items():
        pairs = ", ".join(f"{r:.2f}" for r in row["pairs"])
        lines.append(
            f"| {key} | {row['old']:.3f} | {row['new']:.3f} | {row['new_over_old']:.3f} | {pairs} |"
        )
    return "\n".join(lines)

"""Pivot the rows of a ``comllm sweep --json`` file into a policies × settings Markdown table.

    python scripts/pivot_results.py docs/results/fresh-view.json [--metric avg_latency] [--by decisions]

Each cell is ``latency ± CI / drops`` of one policy in one setting (scenario, load and,
unless ``--by`` splits on it, protocol); with ``--by decisions`` one table per protocol.
The rows keep the sweep's order of policies.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def setting(row: dict) -> dict[str, str]:
    """The axes of a row: scenario name, load and protocol (from its overrides)."""
    out = {"scenario": re.sub(r" \(.*\)$", "", row["scenario"]), "p": "", "decisions": "simultaneous"}
    for o in row.get("overrides", []):
        key, _, value = o.partition("=")
        if key == "arrival_prob":
            out["p"] = value
        elif key == "decisions":
            out["decisions"] = value
    return out


def cell(row: dict) -> str:
    lat, ci, drop = row["avg_latency"], row.get("avg_latency_ci") or 0.0, row["drop_rate"]
    return f"{lat:.3f} ± {ci:.3f} / {100 * drop:.2f} %"


def pivot(rows: list[dict], by: str | None) -> str:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(setting(r)[by] if by else "", []).append(r)
    out = []
    for name, rs in groups.items():
        cols: list[str] = []
        table: dict[str, dict[str, str]] = {}
        for r in rs:
            s = setting(r)
            col = s["scenario"] + (f" p {s['p']}" if s["p"] else "") + ("" if by else f" {s['decisions']}")
            if col not in cols:
                cols.append(col)
            table.setdefault(r["policy"], {})[col] = cell(r)
        if name:
            out.append(f"**{name}** (latency in slots ± 95 % CI / drops)\n")
        out.append("| policy | " + " | ".join(cols) + " |")
        out.append("|---|" + "---|" * len(cols))
        for pol, cells in table.items():
            out.append(f"| {pol} | " + " | ".join(cells.get(c, "–") for c in cols) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path)
    ap.add_argument("--by", choices=["decisions", "scenario", "p"], default=None)
    args = ap.parse_args()
    print(pivot(json.loads(args.json.read_text()), args.by))


if __name__ == "__main__":
    main()

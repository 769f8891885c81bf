"""Result tables in Markdown, CSV and JSON (one row per policy × scenario)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

#: (column title, row key, kind) — kind: "num" (3 decimals, ± CI), "pct" (percent, ± CI), "raw"
COLUMNS: list[tuple[str, str, str]] = [
    ("policy", "policy", "raw"),
    ("scenario", "scenario", "raw"),
    ("latency (slots)", "avg_latency", "num"),
    ("drops", "drop_rate", "pct"),
    ("Jain (offloads)", "jain_index", "num"),
    ("Jain (util.)", "jain_utilization", "num"),
    ("p95 latency", "latency_p95", "num"),
    ("offloaded", "offload_share", "pct"),
]


def _cell(row: dict[str, Any], key: str, kind: str, ci: bool = True) -> str:
    v = row.get(key)
    if kind == "raw":
        return "" if v is None else str(v)
    if v is None:
        return "–"
    c = row.get(f"{key}_ci") if ci else None
    if kind == "pct":
        return f"{100 * v:.2f} %" + (f" ± {100 * c:.2f}" if c else "")
    return f"{v:.3f}" + (f" ± {c:.3f}" if c else "")


def markdown(rows: Sequence[dict[str, Any]], columns: list[tuple[str, str, str]] | None = None) -> str:
    """A Markdown table; numbers are mean ± 95 % CI half-width where a CI is present."""
    cols = columns or COLUMNS
    lines = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r, key, kind) for _, key, kind in cols) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Every scalar field of every row (lists and dicts are JSON-encoded)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in rows:
        w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
    return buf.getvalue()


def write_tables(rows: Sequence[dict[str, Any]], out: Path, stem: str, title: str = "") -> list[Path]:
    """Write ``stem.md``, ``stem.csv`` and ``stem.json`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    md = (f"### {title}\n\n" if title else "") + markdown(rows)
    paths = [out / f"{stem}.md", out / f"{stem}.csv", out / f"{stem}.json"]
    paths[0].write_text(md)
    paths[1].write_text(to_csv(rows))
    paths[2].write_text(json.dumps(list(rows), indent=2, allow_nan=False) + "\n")
    return paths

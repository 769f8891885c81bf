"""Result tables: one column spec rendered to the terminal (rich), Markdown, CSV and JSON.

:data:`COLUMNS` is the closed-loop table of every command and report (``simulate``,
``sweep``, ``benchmark``, ``comllm report``): one row per policy × scenario, the
rows of :func:`comllm.evaluate.metrics.aggregate_seeds`. The terminal and Markdown
show the spec's columns, formatted by :func:`cell` (mean ± 95 % CI half-width
where the row has a non-zero ``<key>_ci``); CSV and JSON hold every field of every
row, the spec's keys (each followed by its CI) first.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

if TYPE_CHECKING:
    from rich.table import Table


class Column(NamedTuple):
    """One column: its title, the row key it shows, and how.

    ``kind``: ``raw`` (the value as text), ``num`` (``digits`` decimals) or ``pct``
    (a fraction shown in percent, 2 decimals); ``ci``: append ``± <key>_ci``.
    """

    title: str
    key: str
    kind: str = "num"
    ci: bool = True
    digits: int = 3


#: the closed-loop results table
COLUMNS: list[Column] = [
    Column("policy", "policy", "raw"),
    Column("scenario", "scenario", "raw"),
    Column("latency (slots)", "avg_latency"),
    Column("drops", "drop_rate", "pct"),
    Column("Jain (offloads)", "jain_index"),
    Column("Jain (util.)", "jain_utilization"),
    Column("p95 latency", "latency_p95"),
    Column("offloaded", "offload_share", "pct"),
]

#: open-loop metrics per server count (the zero-shot table of the report)
ZERO_SHOT_COLUMNS: list[Column] = [
    Column("policy", "policy", "raw"),
    Column("servers", "n_servers", "raw"),
    Column("perf ratio", "perf_ratio"),
    Column("accuracy", "accuracy"),
    Column("invalid", "invalid_rate", "pct"),
    Column("drops", "drop_rate", "pct"),
]

#: open-loop metrics on the test sets (the reference's protocol)
OPEN_LOOP_COLUMNS: list[Column] = [
    Column("policy", "policy", "raw"),
    Column("servers", "n_servers", "raw"),
    Column("n", "n", "raw"),
    Column("accuracy", "accuracy"),
    Column("perf ratio", "perf_ratio"),
    Column("avg cost", "avg_cost"),
    Column("drops", "drop_rate", "pct"),
    Column("invalid", "invalid_rate", "pct"),
    Column("Jain", "jain_index"),
]

#: open-loop metrics under each prompt perturbation
ROBUSTNESS_COLUMNS: list[Column] = [
    Column("policy", "policy", "raw"),
    Column("perturbation", "perturbation", "raw"),
    Column("accuracy", "accuracy"),
    Column("perf ratio", "perf_ratio"),
    Column("invalid", "invalid_rate", "pct"),
]

#: the pipeline's stages (the report's Run table)
STAGE_COLUMNS: list[Column] = [
    Column("stage", "stage", "raw"),
    Column("status", "status", "raw"),
    Column("wall time (s)", "wall_s", digits=1),
]


def _columns(columns: Sequence[Column | tuple] | None) -> list[Column]:
    return [c if isinstance(c, Column) else Column(*c) for c in (columns or COLUMNS)]


def cell(row: dict[str, Any], col: Column) -> str:
    """The text of one cell: ``–`` for an undefined number, ``""`` for a missing raw value."""
    v = row.get(col.key)
    if col.kind == "raw":
        return "" if v is None else str(v)
    if v is None:
        return "–"
    c = row.get(f"{col.key}_ci") if col.ci else None
    if col.kind == "pct":
        return f"{100 * v:.2f} %" + (f" ± {100 * c:.2f}" if c else "")
    return f"{v:.{col.digits}f}" + (f" ± {c:.{col.digits}f}" if c else "")


def markdown(rows: Sequence[dict[str, Any]], columns: Sequence[Column | tuple] | None = None) -> str:
    """A Markdown table; numbers are mean ± 95 % CI half-width where a CI is present."""
    cols = _columns(columns)
    lines = ["| " + " | ".join(c.title for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(cell(r, c) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def rich_table(rows: Sequence[dict[str, Any]], title: str, columns: Sequence[Column | tuple] | None = None) -> "Table":
    """The same table for the terminal: the cells of :func:`markdown`, numbers right-aligned."""
    from rich.table import Table

    cols = _columns(columns)
    table = Table(title=title)
    for c in cols:
        table.add_column(c.title, justify="left" if c.kind == "raw" else "right")
    for r in rows:
        table.add_row(*(cell(r, c) for c in cols))
    return table


def field_order(rows: Sequence[dict[str, Any]], columns: Sequence[Column | tuple] | None = None) -> list[str]:
    """Every key of ``rows``: the spec's keys (each followed by ``<key>_ci``) first, then the rest in row order."""
    present: dict[str, None] = {}
    for r in rows:
        present.update(dict.fromkeys(r))
    keys = [k for c in _columns(columns) for k in (c.key, f"{c.key}_ci") if k in present]
    return keys + [k for k in present if k not in keys]


def json_rows(rows: Sequence[dict[str, Any]], columns: Sequence[Column | tuple] | None = None) -> list[dict[str, Any]]:
    """The rows with their keys in :func:`field_order` (what ``--json`` and ``stem.json`` hold)."""
    order = field_order(rows, columns)
    return [{k: r[k] for k in order if k in r} for r in rows]


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[Column | tuple] | None = None) -> str:
    """Every field of every row in :func:`field_order` (lists and dicts are JSON-encoded)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=field_order(rows, columns))
    w.writeheader()
    for r in rows:
        w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
    return buf.getvalue()


def write_tables(
    rows: Sequence[dict[str, Any]],
    out: Path,
    stem: str,
    title: str = "",
    columns: Sequence[Column | tuple] | None = None,
) -> list[Path]:
    """Write ``stem.md``, ``stem.csv`` and ``stem.json`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    md = (f"### {title}\n\n" if title else "") + markdown(rows, columns)
    paths = [out / f"{stem}.md", out / f"{stem}.csv", out / f"{stem}.json"]
    paths[0].write_text(md)
    paths[1].write_text(to_csv(rows, columns))
    paths[2].write_text(json.dumps(json_rows(rows, columns), indent=2, allow_nan=False) + "\n")
    return paths

"""Dataset throughput: records/s generated and written, size on disk per record, records/s read back.

    python benchmarks/data_speed.py [--n 3000]

Scenario paper-6 (30 devices, 6 servers), split sft, seed 0. Each row generates
``n`` records (simulator trajectories, oracle labels, prompt, snapshot), writes
them to a temporary file, then reads the file back (parsing and validating
every record; official-format records are parsed from text and relabelled).
Numba compilation and imports happen before timing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from comllm.data import generate_records, read_records, write_records
from comllm.scenario import load_scenario

CASES = [
    # (template, format, file suffix)
    ("paper", "jsonl", ".jsonl"),
    ("paper", "jsonl", ".jsonl.gz"),
    ("paper-zh", "jsonl", ".jsonl"),
    ("annotated", "jsonl", ".jsonl"),
    ("estimates", "jsonl", ".jsonl"),
    ("paper-zh", "reference", ".json"),
]


def measure(template: str, fmt: str, suffix: str, n: int, folder: Path) -> tuple[float, float, float]:
    sc = load_scenario("paper-6")
    path = folder / f"{template}-{fmt}{suffix}"
    t0 = time.perf_counter()
    written = write_records(
        path, generate_records(sc, n, "sft", template, seed=0), format=fmt, template=template if fmt == "reference" else None
    )
    gen = written / (time.perf_counter() - t0)
    size = path.stat().st_size / written
    t0 = time.perf_counter()
    read = sum(1 for _ in read_records(path))
    rd = read / (time.perf_counter() - t0)
    return gen, size, rd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        list(generate_records(load_scenario("paper-6"), 50, "sft", seed=1))  # compile + warm
        table = Table(title=f"dataset throughput, paper-6 (6 servers), {args.n} records")
        for col in ("template", "format", "file", "generate+write rec/s", "bytes/record", "read rec/s"):
            table.add_column(col, justify="right")
        for template, fmt, suffix in CASES:
            gen, size, rd = measure(template, fmt, suffix, args.n, Path(tmp))
            table.add_row(template, fmt, suffix, f"{gen:,.0f}", f"{size:,.0f}", f"{rd:,.0f}")
        Console().print(table)


if __name__ == "__main__":
    main()

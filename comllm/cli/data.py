"""``comllm data`` (oracle datasets) and ``comllm eval-data`` (open-loop evaluation on a data file)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from comllm.cli.app import app, console, scenario_files, write_json
from comllm.data import SPLITS, DataError, GenerationConfig, generate_records, read_records, write_records
from comllm.evaluate.open_loop import evaluate_open_loop
from comllm.limits import MAX_RECORDS, MAX_SERVERS, MAX_SLOTS, check_limit
from comllm.outputs import check_input, check_paths
from comllm.policies import make_policy
from comllm.scenario import load_scenario
from comllm.text import TEMPLATES, get_template


def resolve_template(lang: str | None, template: str | None, format: str = "jsonl") -> str:
    """The template a ``--lang`` / ``--template`` / ``--format`` combination asks for."""
    if lang not in (None, "en", "zh"):
        raise DataError(f"--lang '{lang}' is not en or zh")
    name = template or ("paper-zh" if lang == "zh" else "paper")
    t = get_template(name)
    if lang is not None and t.lang != lang:
        raise DataError(f"--template '{name}' is {t.lang}, not --lang {lang}")
    if format == "reference" and name not in ("paper", "paper-zh", "paper-v2", "paper-zh-v2"):
        raise DataError(
            f"--format reference writes the official fields: use --template paper-zh or paper (or their -v2), not '{name}'"
        )
    return name


def _progress(total: int) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=total < 1000,
    )  # fmt: skip


@app.command("data")
def data_cmd(
    scenario: str = typer.Option("paper-6", help="preset name or YAML file"),
    n: int = typer.Option(1000, "--n", min=0, help="number of records"),
    split: str = typer.Option("sft", help=f"dataset split ({'|'.join(SPLITS)}); seeds its own stream"),
    lang: Optional[str] = typer.Option(None, help="en | zh (default: the template's; en without --template)"),
    template: Optional[str] = typer.Option(None, help=f"prompt template ({', '.join(TEMPLATES)})"),
    format: str = typer.Option("jsonl", "--format", help="jsonl (our records) | reference (official COMLLM format)"),
    seed: int = typer.Option(0, help="random seed (the file depends only on the options)"),
    servers: Optional[str] = typer.Option(None, help="server count per episode: 6, a range 3-7 or a list 2,4,8"),
    reasoning: bool = typer.Option(False, help="put a cost-model reasoning trace before each answer"),
    episode_slots: int = typer.Option(100, min=1, help="slots per simulated episode"),
    keep_prob: float = typer.Option(0.25, help="probability that a slot with arrivals yields a record"),
    labels: str = typer.Option(
        "greedy", help="policy whose choice is each record's label (any --policy name, e.g. greedy:incoming, lacs-planner)"
    ),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="scenario override key=value (repeatable)"),
    out: Path = typer.Option(..., help="output file (.jsonl, .json for a reference array; .gz compresses)"),
) -> None:
    """Generate an oracle-labelled dataset from closed-loop simulator trajectories."""
    check_limit("--n", n, MAX_RECORDS)
    check_limit("--episode-slots", episode_slots, MAX_SLOTS)
    if servers is not None:  # every number of the spec (a count, a range's ends, a list)
        for num in re.findall(r"\d+", servers):
            check_limit("--servers", int(num), MAX_SERVERS)
    check_paths({"--out": out}, {"--scenario": scenario_files(scenario)})
    if split not in SPLITS:
        raise DataError(f"--split '{split}' is not one of {', '.join(SPLITS)}")
    if format not in ("jsonl", "reference"):
        raise DataError(f"--format '{format}' is not jsonl or reference")
    if reasoning and format == "reference":
        raise DataError("--reasoning does not fit --format reference (its output is an action name only)")
    name = resolve_template(lang, template, format)
    sc = load_scenario(scenario, set_ or [])
    make_policy(labels, sc)  # an unknown or unfit labelling policy is refused before any work
    cfg = GenerationConfig(episode_slots=episode_slots, keep_prob=keep_prob)
    t0 = time.perf_counter()
    label_counts: dict[int, int] = {}
    with _progress(n) as progress:
        task = progress.add_task(f"{split} → {out.name}", total=n)

        def stream():
            for r in generate_records(
                sc, n, split, name, seed, servers=servers, reasoning=reasoning, config=cfg, labels=labels
            ):
                label_counts[r.oracle_action] = label_counts.get(r.oracle_action, 0) + 1
                progress.advance(task)
                yield r

        written = write_records(out, stream(), format=format, template=name if format == "reference" else None)
    dt = time.perf_counter() - t0
    size = out.stat().st_size
    table = Table(title=f"dataset {out}")
    for col in ("records", "template", "format", "bytes/record", "seconds", "records/s", "local share"):
        table.add_column(col, justify="right")
    table.add_row(
        str(written), name, format,
        f"{size / max(written, 1):,.0f}", f"{dt:.1f}", f"{written / dt:,.0f}" if dt > 0 else "–",
        f"{label_counts.get(0, 0) / max(written, 1):.3f}",
    )  # fmt: skip
    console.print(table)


@app.command("eval-data")
def eval_data(
    data: Path = typer.Option(..., help="JSONL records or an official-format JSON/JSONL file"),
    policy: list[str] = typer.Option(["greedy"], help="policy NAME[:ARG] (repeatable)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the results as JSON"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="skip malformed records (and count them)"),
    limit: Optional[int] = typer.Option(None, min=1, help="evaluate only the first LIMIT records"),
    oracle: str = typer.Option("paper", help="scored against: paper (the cost model) | incoming (the fresh view's) | sharing (greedy:sharing's)"),
) -> None:
    """Open-loop evaluation: a policy decides every state of a data file, scored by the cost model."""
    check_input("--data", data)
    check_paths({"--json": json_out}, {"--data": data})
    pols = [make_policy(spec) for spec in policy]  # every policy is checked before any is run
    rows = []
    for spec, pol in zip(policy, pols):
        reader = read_records(data, skip_bad=skip_bad)
        records = (r for i, r in zip(range(limit), reader)) if limit else reader
        summary = evaluate_open_loop(records, pol, oracle=oracle)
        summary["policy"] = spec
        summary["data"] = str(data)
        summary["skipped"] = reader.n_bad
        rows.append(summary)
        if reader.n_bad:
            console.print(f"[yellow]skipped {reader.n_bad} malformed record(s)[/yellow]; first: {reader.errors[0]}")
    table = Table(title=f"open loop: {data}")
    cols = ("policy", "n", "accuracy", "perf ratio", "avg cost", "oracle cost", "drops", "invalid", "Jain")
    for col in cols:
        table.add_column(col, justify="left" if col == "policy" else "right")
    for r in rows:
        table.add_row(
            r["policy"], str(r["n"]), f"{r['accuracy']:.3f}",
            f"{r['perf_ratio']:.3f}" if r["perf_ratio"] is not None else "–",
            f"{r['avg_cost']:.3f}", f"{r['oracle_avg_cost']:.3f}", f"{100 * r['drop_rate']:.2f} %",
            f"{100 * r['invalid_rate']:.2f} %", f"{r['jain_index']:.3f}" if r["jain_index"] is not None else "–",
        )  # fmt: skip
    console.print(table)
    write_json(json_out, rows[0] if len(rows) == 1 else rows)

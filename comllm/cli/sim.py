"""``comllm scenarios`` and ``comllm simulate``: the simulator from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from comllm.cli.app import app, console, scenario_files, write_json, write_text
from comllm.evaluate.closed_loop import evaluate_closed_loop
from comllm.limits import MAX_SEEDS, MAX_SLOTS, check_limit
from comllm.outputs import check_paths
from comllm.policies import make_policy
from comllm.scenario import PRESETS, load_scenario

SetOpt = typer.Option(None, "--set", help="scenario override key=value (repeatable), e.g. arrival_prob=0.5")


@app.command()
def scenarios() -> None:
    """List the scenario presets with their offered load and capacities (Mbit/slot).

    load = offered / (local + edge capacity); the uplink column is the devices' total
    nominal uplink, the path every offloaded bit takes.
    """
    table = Table(title="scenario presets")
    for col in ("name", "devices", "servers", "p", "channel", "offered", "local cap.", "uplink cap.", "edge cap.", "load"):
        table.add_column(col, justify="right" if col not in ("name", "servers", "channel") else "left")
    for name in PRESETS:
        sc = load_scenario(name)
        f = sc.figures()
        kinds = {}
        for s in sc.servers:
            kinds[s.type] = kinds.get(s.type, 0) + 1
        servers = ", ".join(f"{v}×{k}" for k, v in kinds.items())
        table.add_row(
            name,
            str(sc.n_devices),
            servers,
            f"{sc.arrival_prob:g}",
            sc.channel.model,
            f"{f['offered_mbit_per_slot']:.1f}",
            f"{f['local_capacity']:.1f}",
            f"{f['uplink_capacity']:.1f}",
            f"{f['edge_capacity']:.1f}",
            f"{f['load_factor']:.2f}",
        )
    console.print(table)


def _fmt(x: float | None, ci: float | None = None, pct: bool = False) -> str:
    if x is None:
        return "–"
    if pct:
        return f"{100 * x:.2f} %" + (f" ± {100 * ci:.2f}" if ci else "")
    return f"{x:.3f}" + (f" ± {ci:.3f}" if ci else "")


def results_table(rows: list[dict], title: str) -> Table:
    """The closed-loop table printed by ``simulate`` (and reused by reports)."""
    table = Table(title=title)
    for col in ("policy", "scenario", "latency (slots)", "drops", "Jain (offloads)", "Jain (util.)", "offloaded", "p95"):
        table.add_column(col, justify="left" if col in ("policy", "scenario") else "right")
    for r in rows:
        table.add_row(
            r["policy"],
            r["scenario"],
            _fmt(r["avg_latency"], r.get("avg_latency_ci")),
            _fmt(r["drop_rate"], r.get("drop_rate_ci"), pct=True),
            _fmt(r["jain_index"]),
            _fmt(r["jain_utilization"]),
            _fmt(r["offload_share"], pct=True),
            _fmt(r["latency_p95"]),
        )
    return table


def markdown_table(rows: list[dict]) -> str:
    """The same results as a Markdown table (mean ± 95 % CI over seeds)."""
    head = "| policy | scenario | latency (slots) | drops | Jain (offloads) | Jain (util.) | offloaded | p95 latency |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['policy']} | {r['scenario']} | {_fmt(r['avg_latency'], r.get('avg_latency_ci'))} "
            f"| {_fmt(r['drop_rate'], r.get('drop_rate_ci'), pct=True)} | {_fmt(r['jain_index'])} "
            f"| {_fmt(r['jain_utilization'])} | {_fmt(r['offload_share'], pct=True)} | {_fmt(r['latency_p95'])} |"
        )
    return "\n".join(lines) + "\n"


@app.command()
def simulate(
    scenario: str = typer.Option("paper-6", help="preset name or YAML file"),
    policy: list[str] = typer.Option(["greedy"], help="policy NAME[:ARG] (repeatable)"),
    slots: int = typer.Option(2000, min=1, help="scored slots per seed"),
    seeds: int = typer.Option(3, min=1, help="number of seeds (0..seeds-1)"),
    warmup: int = typer.Option(200, min=0, help="unscored slots before scoring"),
    set_: Optional[list[str]] = SetOpt,
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the results as JSON"),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="write the table as Markdown"),
) -> None:
    """Closed-loop evaluation of policies on a scenario: latency, drops, fairness."""
    check_limit("--slots", slots, MAX_SLOTS)
    check_limit("--seeds", seeds, MAX_SEEDS)
    check_limit("--warmup", warmup, MAX_SLOTS)
    check_paths({"--json": json_out, "--markdown": markdown}, {"--scenario": scenario_files(scenario)})
    sc = load_scenario(scenario, set_ or [])
    pols = [make_policy(p, sc) for p in policy]
    total = len(pols) * seeds * (warmup + slots + sc.deadline)
    rows = []
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=total < 20_000,
    ) as progress:  # fmt: skip
        task = progress.add_task("simulating", total=total)
        for spec, pol in zip(policy, pols):
            progress.update(task, description=spec)
            summary, _ = evaluate_closed_loop(
                sc, pol, slots=slots, seeds=seeds, warmup=warmup, on_slot=lambda: progress.advance(task)
            )
            summary["policy"] = spec
            summary["slots"] = slots
            summary["warmup"] = warmup
            rows.append(summary)
    console.print(results_table(rows, f"closed loop: {sc.name}, {slots} slots × {seeds} seeds"))
    write_json(json_out, rows[0] if len(rows) == 1 else rows)
    write_text(markdown, markdown_table(rows), "--markdown")

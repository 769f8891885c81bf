"""``comllm scenarios`` and ``comllm simulate``: the simulator from the command line."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from comllm.cli.app import app, console, scenario_files, write_json, write_text
from comllm.cli.from_config import config_command
from comllm.evaluate.config import SimulateConfig, make_simulate_config
from comllm.experiments.grid import job_grid
from comllm.experiments.sweep import aggregate, run_job
from comllm.limits import MAX_SEEDS, MAX_SLOTS, check_limit
from comllm.outputs import check_paths
from comllm.policies import make_policy
from comllm.report.tables import json_rows, markdown as md_table, rich_table
from comllm.scenario import PRESETS, load_scenario


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


def _make_simulate(**options: Any) -> SimulateConfig:
    cfg = make_simulate_config(**options)
    check_limit("--slots", cfg.slots, MAX_SLOTS)
    check_limit("--seeds", cfg.seeds, MAX_SEEDS)
    check_limit("--warmup", cfg.warmup, MAX_SLOTS)
    return cfg


def simulate(cfg: SimulateConfig) -> None:
    """Closed-loop evaluation of policies on a scenario: latency, drops, fairness.

    The rows are those of ``comllm sweep`` (the same jobs and aggregation); each
    policy is built once and runs every seed. ``{n}`` in a policy is the scenario's
    server count. Its options are the fields of :class:`comllm.evaluate.config.SimulateConfig`.
    """
    scenario, policy, slots, seeds, warmup, set_ = cfg.scenario, cfg.policy, cfg.slots, cfg.seeds, cfg.warmup, cfg.overrides
    json_out = Path(cfg.json_out) if cfg.json_out else None
    markdown = Path(cfg.markdown) if cfg.markdown else None
    check_paths({"--json": json_out, "--markdown": markdown}, {"--scenario": scenario_files(scenario)})
    sc = load_scenario(scenario, set_ or [])
    seed_list = range(cfg.first_seed, cfg.first_seed + seeds)
    jobs = job_grid(policy, [scenario], seed_list, slots=slots, warmup=warmup, overrides=set_ or [])
    pols = {spec: make_policy(spec, sc) for spec in dict.fromkeys(j.policy for j in jobs)}
    total = len(jobs) * (warmup + slots + sc.deadline)
    results = []
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=total < 20_000,
    ) as progress:  # fmt: skip
        task = progress.add_task("simulating", total=total)
        for job in jobs:
            progress.update(task, description=job.label)
            results.append(run_job(job, pols[job.policy], sc, on_slot=lambda: progress.advance(task)))
    rows = aggregate(results)
    seed_note = f" (seeds {cfg.first_seed}–{cfg.first_seed + seeds - 1})" if cfg.first_seed else ""
    console.print(rich_table(rows, f"closed loop: {sc.name}, {slots} slots × {seeds} seeds{seed_note}"))
    write_json(json_out, json_rows(rows)[0] if len(rows) == 1 else json_rows(rows))
    write_text(markdown, md_table(rows), "--markdown")


config_command(
    app, "simulate", SimulateConfig, simulate, inspect.cleandoc(simulate.__doc__ or "").split(" Its options")[0],
    make=_make_simulate,
)  # fmt: skip

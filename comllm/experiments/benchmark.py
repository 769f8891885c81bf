"""``comllm benchmark``: the shipped checkpoints against every baseline on paper-6 and paper-11.

The README's main job: short closed-loop runs (minutes on 2 cores) of the
heuristics, the look-ahead planner, the shipped DRL agents (each on the server
count it was trained for) and the shipped language models (SFT default, GRPO,
COMLLM), with a table printed and tables and plots written to a folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Callable

from comllm.experiments.grid import job_grid
from comllm.experiments.labels import BASELINES, SHIPPED_DRL, SHIPPED_LMS, label
from comllm.experiments.sweep import Job, JobResult, aggregate, run_sweep
from comllm.report import plots
from comllm.report.tables import write_tables

def checkpoints_dir() -> Path:
    return Path(str(resources.files("comllm") / "checkpoints"))


def shipped_policies(scenario_servers: int) -> dict[str, str]:
    """Label -> spec of every shipped checkpoint usable on a scenario with this many servers."""
    root = checkpoints_dir()
    out: dict[str, str] = {}
    for folder, stage in SHIPPED_LMS.items():
        if (root / folder / "config.json").is_file():
            out[label(stage)] = f"llm:{root / folder}"
    for prefix, algo in SHIPPED_DRL.items():
        folder = root / f"{prefix}-{scenario_servers}"
        if folder.is_dir():
            out[label(algo)] = f"dqn:{folder}"
    return out


def benchmark_jobs(scenarios: list[str], slots: int, seeds: int, warmup: int, baselines: list[str]) -> list[Job]:
    """The baselines and the shipped checkpoints on each scenario; seed 0 keeps its latencies (the CDF)."""
    return job_grid(
        lambda _, sc: {**{b: b for b in baselines}, **shipped_policies(sc.n_servers)},
        scenarios, seeds, slots=slots, warmup=warmup, keep_latencies=lambda _, s: s == 0,
    )  # fmt: skip


def run_benchmark(
    out: Path,
    scenarios: list[str],
    slots: int = 500,
    seeds: int = 2,
    warmup: int = 100,
    workers: int = 2,
    baselines: list[str] | None = None,
    on_done: Callable[[JobResult], None] | None = None,
) -> list[dict]:
    """Run the comparison; write tables and plots under ``out``; return the table rows."""
    jobs = benchmark_jobs(scenarios, slots, seeds, warmup, baselines or list(BASELINES))
    results = run_sweep(jobs, workers=workers, on_done=on_done)
    rows = aggregate(results)
    write_tables(rows, out, "benchmark", title=f"closed loop, {slots} slots × {seeds} seeds")
    for sc in scenarios:
        sub = [r for r in rows if r["scenario"] == sc]
        plots.server_share(sub, out / f"server_share_{sc}.png", f"per-server share, {sc}")
        lat = {r.job.label: r.metrics["latencies"] for r in results if r.job.scenario == sc and r.metrics.get("latencies")}
        plots.latency_cdf(lat, out / f"latency_cdf_{sc}.png", f"latency CDF, {sc} (seed 0)")
    return rows

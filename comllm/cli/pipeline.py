"""``comllm pipeline``, ``comllm report`` and ``comllm benchmark``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from comllm.cli.app import app, console, scenario_files
from comllm.cli.from_config import config_command
from comllm.experiments.config import PipelineOptions
from comllm.limits import MAX_SEEDS, MAX_SLOTS, MAX_WORKERS, check_limit
from comllm.outputs import check_input, check_paths


def _log(msg: str) -> None:
    console.print(msg, markup=False, highlight=False)


def _pipeline(opts: PipelineOptions) -> None:
    """Data → SFT → GRPO → COMLLM (GRPO+LACS) → DQN → evaluation → report, resumable, under one run folder."""
    from comllm.experiments.config import load_config
    from comllm.experiments.pipeline import Pipeline

    config, run_dir, stage = Path(opts.config), opts.run_dir, opts.stage
    check_input("--config", config)
    cfg = load_config(config, {"run_dir": run_dir} if run_dir else None, set_items=list(opts.overrides))
    where = "--run-dir" if run_dir else "config key 'run_dir'"
    check_paths({where: Path(cfg.run_dir)}, {"--config": config}, folders=[where])
    if stage:
        from comllm.experiments.config import STAGES, ConfigError

        bad = [s for s in stage if s not in STAGES]
        if bad:
            raise ConfigError(f"--stage '{bad[0]}' is not a stage (known: {', '.join(STAGES)})")
    manifest = Pipeline(cfg, log=_log).run(stage or None, force=opts.force)
    console.print(f"run folder {cfg.run_dir}: {manifest.get('total_wall_s', 0):.0f} s of stages in all")


config_command(app, "pipeline", PipelineOptions, _pipeline, _pipeline.__doc__ or "")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a pipeline run folder")) -> None:
    """Tables (Markdown, CSV, JSON) and plots (PNG) of a pipeline run, in RUN_DIR/report."""
    from comllm.report.build import build_report

    check_input("RUN_DIR", run_dir, folder=True)
    check_paths({"RUN_DIR/report": run_dir / "report"}, folders=["RUN_DIR/report"])
    build_report(run_dir, log=_log)


@app.command()
def benchmark(
    out: Path = typer.Option(Path("benchmark-results"), help="folder for the tables and plots"),
    scenario: list[str] = typer.Option(["paper-6", "paper-11"], help="scenarios (repeatable)"),
    slots: int = typer.Option(500, min=1, help="scored slots per seed"),
    seeds: int = typer.Option(2, min=1),
    warmup: int = typer.Option(100, min=0),
    workers: int = typer.Option(2, min=1, help="parallel worker processes"),
    baseline: Optional[list[str]] = typer.Option(None, help="baseline policies (default: heuristics + lacs-planner)"),
) -> None:
    """The shipped checkpoints (SFT, GRPO, COMLLM, DQN) against every baseline on paper-6 and paper-11."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from comllm.experiments.benchmark import benchmark_jobs, run_benchmark
    from comllm.experiments.labels import BASELINES
    from comllm.policies import make_policy
    from comllm.report.tables import rich_table
    from comllm.scenario import load_scenario

    check_limit("--slots", slots, MAX_SLOTS)
    check_limit("--seeds", seeds, MAX_SEEDS)
    check_limit("--warmup", warmup, MAX_SLOTS)
    check_limit("--workers", workers, MAX_WORKERS)
    check_paths({"--out": out}, {"--scenario": scenario_files(scenario)}, folders=["--out"])
    baselines = baseline or list(BASELINES)
    for sc in scenario:  # fail fast, before any episode runs, on a bad scenario or baseline
        s = load_scenario(sc)
        for b in baselines:
            make_policy(b, s)
    total = len(benchmark_jobs(scenario, slots, seeds, warmup, baselines))
    columns = (TextColumn("[bold]benchmark"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("episodes", total=total)
        rows = run_benchmark(
            out, scenario, slots, seeds, warmup, workers, baselines, on_done=lambda r: progress.advance(task)
        )
    console.print(rich_table(rows, f"closed loop, {slots} slots × {seeds} seeds (mean ± 95 % CI)"))
    console.print(f"tables and plots in {out}/")


@app.command()
def sweep(
    policy: list[str] = typer.Option(["greedy"], help="policy NAME[:ARG] (repeatable)"),
    scenario: list[str] = typer.Option(["paper-6"], help="scenario preset or YAML (repeatable)"),
    load: Optional[list[float]] = typer.Option(None, help="arrival probability (repeatable; default: the scenario's)"),
    decisions: Optional[list[str]] = typer.Option(
        None, help="decision protocol, simultaneous | sequential (repeatable; default: the scenario's)"
    ),
    seeds: int = typer.Option(3, min=1),
    slots: int = typer.Option(1000, min=1, help="scored slots per episode"),
    warmup: int = typer.Option(200, min=0),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="scenario override key=value (repeatable)"),
    workers: int = typer.Option(2, min=1, help="parallel worker processes on this machine"),
    ray: Optional[str] = typer.Option(None, "--ray", help="run on an existing Ray cluster at this address"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the aggregated rows as JSON"),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="write the table as Markdown"),
    cache: Optional[Path] = typer.Option(
        None, help="folder of finished episodes: each one is saved there and reused by a rerun (same job, same code)"
    ),
) -> None:
    """Policies × scenarios × loads × protocols × seeds in parallel (worker processes, or Ray with --ray).

    A policy may name the scenario's server count as ``{n}``: ``--policy dqn:{n}`` runs the
    shipped agent of each scenario's size (``dqn:6`` on paper-6, ``dqn:11`` on paper-11).
    With ``--cache``, an interrupted or extended sweep reruns only the episodes it lacks.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from comllm.cli.app import write_json, write_text
    from comllm.experiments.grid import axis_label, check_jobs, job_grid
    from comllm.experiments.sweep import aggregate, run_sweep
    from comllm.report.tables import json_rows, rich_table
    from comllm.report.tables import markdown as md_table

    check_limit("--slots", slots, MAX_SLOTS)
    check_limit("--seeds", seeds, MAX_SEEDS)
    check_limit("--warmup", warmup, MAX_SLOTS)
    check_limit("--workers", workers, MAX_WORKERS)
    check_paths({"--json": json_out, "--markdown": markdown}, {"--scenario": scenario_files(scenario)})
    if ray is not None:
        from comllm.experiments.sweep import check_ray_address

        check_ray_address(ray)
    jobs = job_grid(
        policy, scenario, seeds, slots=slots, warmup=warmup, loads=load or [None], decisions=decisions or [None],
        overrides=set_ or [],
    )  # fmt: skip
    check_jobs(jobs)  # fail fast, before any worker starts, on a bad scenario, load, protocol or policy
    from comllm.experiments.sweep import EpisodeCache

    store = EpisodeCache(cache) if cache is not None else None
    done = {i: r for i, job in enumerate(jobs) if store is not None and (r := store.get(job)) is not None}
    todo = [job for i, job in enumerate(jobs) if i not in done]
    if done:
        console.print(f"{len(done)} of {len(jobs)} episodes from --cache {cache}")

    def finished(r) -> None:  # type: ignore[no-untyped-def]
        if store is not None:
            store.put(r)
        progress.advance(task)

    columns = (TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("episodes", total=len(jobs), completed=len(done))
        fresh = iter(run_sweep(todo, workers=workers, ray_address=ray, on_done=finished))
    results = [done[i] if i in done else next(fresh) for i in range(len(jobs))]
    rows = aggregate(results)
    for r in rows:  # the axes' values in the scenario column: "paper-6 (p=0.3, sequential)"
        r["scenario"] = axis_label(r["scenario"], r["overrides"], load=bool(load), decisions=bool(decisions))
    console.print(rich_table(rows, f"sweep: {len(jobs)} episodes, {slots} slots each"))
    write_json(json_out, json_rows(rows))
    write_text(markdown, md_table(rows), "--markdown")

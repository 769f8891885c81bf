"""``comllm pipeline``, ``comllm report`` and ``comllm benchmark``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from comllm.cli.app import app, console


def _log(msg: str) -> None:
    console.print(msg, markup=False, highlight=False)


@app.command()
def pipeline(
    config: Path = typer.Option(..., "--config", help="pipeline YAML (configs/paper.yaml, configs/tiny.yaml)"),
    stage: Optional[list[str]] = typer.Option(None, "--stage", help="run only these stages (repeatable)"),
    force: bool = typer.Option(False, help="rerun stages that are done already"),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help="override the config's run_dir"),
) -> None:
    """Data → SFT → GRPO → COMLLM (GRPO+LACS) → DQN → evaluation → report, resumable, under one run folder."""
    from comllm.experiments.config import load_config
    from comllm.experiments.pipeline import Pipeline

    cfg = load_config(config, {"run_dir": run_dir} if run_dir else None)
    if stage:
        from comllm.experiments.config import STAGES, ConfigError

        bad = [s for s in stage if s not in STAGES]
        if bad:
            raise ConfigError(f"--stage '{bad[0]}' is not a stage (known: {', '.join(STAGES)})")
    manifest = Pipeline(cfg, log=_log).run(stage or None, force=force)
    console.print(f"run folder {cfg.run_dir}: {manifest.get('total_wall_s', 0):.0f} s of stages in all")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a pipeline run folder")) -> None:
    """Tables (Markdown, CSV, JSON) and plots (PNG) of a pipeline run, in RUN_DIR/report."""
    from comllm.report.build import build_report

    build_report(run_dir, log=_log)

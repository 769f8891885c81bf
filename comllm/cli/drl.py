"""``comllm dqn ...``: train the DRL baselines, inspect checkpoints, plot training curves."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from comllm.cli.app import app, console, scenario_files
from comllm.drl.config import ALGOS, CheckpointMeta, DRLError, TrainConfig
from comllm.limits import MAX_SLOTS, MAX_STEPS, check_limit
from comllm.outputs import check_paths
from comllm.scenario import load_scenario, parse_overrides

dqn_app = typer.Typer(
    help="DRL baselines on comllm/MEC-v0: SB3 DQN and Tang & Wong's D3QN-LSTM.",
    no_args_is_help=True,
)
app.add_typer(dqn_app, name="dqn")


@dqn_app.command("train")
def train_cmd(
    scenario: str = typer.Option("paper-6", help="preset name or YAML file"),
    steps: Optional[int] = typer.Option(
        None, min=1, help="environment steps (task decisions) in all; default 200000, or the run's own on --resume"
    ),
    out: Optional[Path] = typer.Option(None, help="run folder; default runs/ALGO-SCENARIO"),
    algo: str = typer.Option("dqn", help=f"algorithm: {' | '.join(ALGOS)}"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
    seed: int = typer.Option(0, help="random seed"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="scenario override key=value (repeatable)"),
    hp: Optional[list[str]] = typer.Option(
        None, "--hp", help="hyper-parameter key=value (repeatable), e.g. gamma=0.95 (see comllm.drl.config)"
    ),
    episode_slots: int = typer.Option(200, min=1, help="slots per training episode"),
    eval_every: int = typer.Option(20_000, min=1, help="steps between closed-loop evaluations"),
    eval_slots: int = typer.Option(500, min=1, help="scored slots per evaluation seed"),
    checkpoint_every: int = typer.Option(50_000, min=1, help="steps between checkpoints"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show the progress bar"),
) -> None:
    """Train a DRL agent; writes checkpoints, CSV logs and TensorBoard logs to --out."""
    from comllm.locking import lock_folder

    if algo not in ALGOS:
        raise DRLError(f"unknown --algo '{algo}' (known: {', '.join(ALGOS)})")
    check_limit("--steps", steps, MAX_STEPS)
    for opt, value in (("--episode-slots", episode_slots), ("--eval-slots", eval_slots)):
        check_limit(opt, value, MAX_SLOTS)
    sc = load_scenario(scenario, set_ or [])
    out = out or Path("runs") / f"{algo}-{sc.name}"
    check_paths({"--out": out}, {"--scenario": scenario_files(scenario)}, folders=["--out"])
    cfg = TrainConfig(
        algo=algo,  # type: ignore[arg-type]
        scenario=sc.model_dump(mode="json"),
        steps=steps or 200_000,
        seed=seed,
        episode_slots=episode_slots,
        eval_every=eval_every,
        eval_slots=eval_slots,
        checkpoint_every=checkpoint_every,
        hyper=parse_overrides(hp or []),
    )
    if resume and steps is None:
        cfg = cfg.model_copy(update={"steps": CheckpointMeta.read(out).train.steps})
    command = "comllm " + shlex.join(sys.argv[1:]) if sys.argv and "comllm" in Path(sys.argv[0]).name else ""
    with lock_folder(out, "dqn train", log=console.print):  # before the slow imports: a folder in use is refused at once
        from comllm.drl.train import train

        meta = train(cfg, out, resume=resume, command=command, console=console, progress=progress)
    _print_meta(out, meta)


@dqn_app.command("info")
def info_cmd(path: str = typer.Argument(..., help="run folder or shipped agent name")) -> None:
    """Show what a checkpoint was trained on and how far."""
    from comllm.drl.checkpoint import resolve_checkpoint

    folder = resolve_checkpoint(path)
    _print_meta(folder, CheckpointMeta.read(folder))


@dqn_app.command("plot")
def plot_cmd(
    runs: list[Path] = typer.Argument(..., help="run folders (or shipped agent names)"),
    out: Path = typer.Option(Path("docs/drl_training.png"), help="PNG to write"),
    greedy: bool = typer.Option(True, "--greedy/--no-greedy", help="draw the greedy oracle on the evaluation seeds"),
) -> None:
    """Plot training curves: closed-loop evaluation latency and training-episode latency vs steps."""
    from comllm.drl.checkpoint import resolve_checkpoint
    from comllm.drl.plot import plot_training

    folders = [resolve_checkpoint(str(r)) for r in runs]
    check_paths({"--out": out}, {"RUNS": folders})
    plot_training(folders, out, greedy=greedy)
    console.print(f"wrote {out}")


def _print_meta(folder: Path, meta: CheckpointMeta) -> None:
    table = Table(title=f"DRL checkpoint {folder}", show_header=False)
    best = "–" if meta.best_eval_latency is None else f"{meta.best_eval_latency:.3f} slots at step {meta.best_step}"
    sc = meta.scenario
    rows = [
        ("algorithm", meta.algo),
        ("scenario", f"{sc.get('name')} ({meta.n_servers} servers, {sc.get('n_devices')} devices)"),
        ("observation", f"{meta.obs_dim} values, history {meta.history_len} slots"),
        ("steps", f"{meta.steps_done} of {meta.train.steps} ({meta.episodes} episodes)"),
        ("wall time", f"{meta.wall_s / 60:.1f} min"),
        ("best evaluation", best),
        ("hyper-parameters", ", ".join(f"{k}={v}" for k, v in meta.train.hyper.items()) or "defaults"),
        ("command", meta.command or "–"),
    ]
    for k, v in rows:
        table.add_row(k, str(v))
    console.print(table)

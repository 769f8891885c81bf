"""``comllm improve``: all-action look-ahead policy improvement of a language model (the COMLLM stage).

Its options are the fields of :class:`comllm.lacs.improve.ImproveConfig`.
"""

from __future__ import annotations

from comllm.cli.app import app, console
from comllm.cli.from_config import config_command
from comllm.lacs.improve import ImproveConfig


def _run(cfg: ImproveConfig) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from comllm.lacs.improve import improve

    columns = (TextColumn("[bold]improve"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("iterations", total=cfg.iterations)
        final = improve(cfg, log=bar.console.print, progress=lambda it: bar.update(task, completed=it))
    console.print(f"final model in {final}/ (log: {cfg.out}/train_log.csv)")


config_command(
    app, "improve", ImproveConfig, _run,
    "All-action LACS policy improvement of a language model: collect in closed loop, score every action, update.",
)  # fmt: skip

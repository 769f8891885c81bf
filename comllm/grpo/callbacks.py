"""Trainer callbacks of a GRPO run: CSV log and rich progress bar.

* :class:`CsvLogCallback` appends one row per TRL log event to ``train_log.csv``
  (fixed columns, :func:`log_columns`): every reward term's mean and std as TRL
  logs them (``rewards/<name>/mean``), the total reward, the decision metrics of
  :mod:`comllm.grpo.metrics`, KL, entropy, loss, learning rate and wall time;
* :class:`RichProgressCallback`: a progress bar with the latest mean reward.

(Each ``checkpoint-<step>`` gets its ``comllm.json`` before it is renamed into
place, in :mod:`comllm.grpo.train`, so every checkpoint is a model ``llm:PATH`` loads.)
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

from comllm.checkpointing import truncate_csv

LOG_FILE = "train_log.csv"
DECISION_COLUMNS = ("decisions/valid", "decisions/greedy_agree", "decisions/local", "decisions/cost_ratio")


def log_columns(reward_names: list[str]) -> list[str]:
    """CSV columns of a run whose reward functions are ``reward_names``."""
    terms = [f"rewards/{n}/{s}" for n in reward_names for s in ("mean", "std")]
    return [
        "step", "epoch", "elapsed_s", "reward", "reward_std", *terms, *DECISION_COLUMNS, "frac_reward_zero_std",
        "kl", "entropy", "loss", "grad_norm", "learning_rate", "completions/mean_length",
        "completions/clipped_ratio", "step_time",
    ]  # fmt: skip


class CsvLogCallback(TrainerCallback):
    """One CSV row per training log event; a resumed run appends to the same file."""

    def __init__(self, path: str | Path, columns: list[str], resume: bool) -> None:
        self.path = Path(path)
        self.columns = columns
        self.resume = resume and self.path.is_file()
        self._t0 = time.time()
        self.elapsed_before = 0.0
        if self.resume:
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
            if rows and rows[-1].get("elapsed_s"):
                self.elapsed_before = float(rows[-1]["elapsed_s"])
        else:
            with open(self.path, "w", newline="") as f:
                csv.DictWriter(f, fieldnames=self.columns).writeheader()

    def truncate_after(self, step: int) -> None:
        """Drop rows past ``step``, atomically (a resumed run restarts from its last checkpoint, not its last log row)."""
        rows = truncate_csv(self.path, step)
        self.elapsed_before = float(rows[-1]["elapsed_s"]) if rows and rows[-1].get("elapsed_s") else 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._t0 = time.time()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or "loss" not in logs or not state.is_world_process_zero:
            return
        row = {k: logs.get(k) for k in self.columns}
        row["step"] = state.global_step
        row["epoch"] = round(float(state.epoch or 0.0), 4)
        row["elapsed_s"] = round(self.elapsed_before + time.time() - self._t0, 1)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(row)


class RichProgressCallback(TrainerCallback):
    """A rich progress bar (steps, mean reward, valid answers); disabled, one short line per log event instead."""

    def __init__(
        self, label: str = "grpo", enabled: bool = True, log: Callable[[str], None] = print, console: Any = None
    ) -> None:
        self.console = console  # a rich Console (None: a new one on stdout)
        self.label = label
        self.enabled = enabled
        self.log = log
        self.progress: Any = None
        self.task: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.enabled or not state.is_world_process_zero:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from rich.console import Console

        console = self.console if self.console is not None else Console()
        self.progress = Progress(
            TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("reward {task.fields[reward]}"), TextColumn("valid {task.fields[valid]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        )  # fmt: skip
        self.progress.start()
        self.task = self.progress.add_task(self.label, total=state.max_steps, completed=state.global_step,
                                           reward="–", valid="–")  # fmt: skip

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or "reward" not in logs or not state.is_world_process_zero:
            return
        valid = logs.get("decisions/valid")
        if self.progress is not None:
            self.progress.update(self.task, reward=f"{logs['reward']:.3f}",
                                 valid="–" if valid is None else f"{valid:.2f}")  # fmt: skip
        elif not self.enabled:
            terms = " ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in logs.items()
                             if k.startswith("rewards/") and k.endswith("/mean") and v is not None)  # fmt: skip
            extra = " ".join(f"{k.split('/')[-1]} {logs[k]:.3f}" for k in DECISION_COLUMNS if logs.get(k) is not None)
            self.log(f"{self.label} step {state.global_step}/{state.max_steps}: reward {logs['reward']:.3f} "
                     f"({terms}) {extra} kl {logs.get('kl') or 0:.2e}")  # fmt: skip

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

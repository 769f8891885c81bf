"""What every DRL training shows and writes: progress bar, TensorBoard, CSV, evaluations.

Files in the run folder (appended to on ``--resume``):

* ``episodes.csv``: one row per training episode: ``step`` (env steps done),
  ``episode``, ``tasks``, ``avg_latency`` (slots, drops at the deadline),
  ``drop_rate``, ``epsilon``, ``loss``, ``wall_s``; these are the behaviour
  policy's (exploring) figures;
* ``eval.csv``: every ``eval_every`` steps, the greedy (argmax) policy in
  closed loop (:func:`comllm.evaluate.closed_loop.evaluate_closed_loop`) on
  ``eval_seeds``, which are not the seeds 0.. that ``comllm simulate`` reports:
  ``step``, ``avg_latency``, ``drop_rate``, ``jain_index``, ``wall_s``;
* ``tb/``: the same as TensorBoard scalars.

On ``--resume`` both CSV files are first cut back (atomically) to the rows of
the checkpoint's step, so a resumed run never repeats a row, and TensorBoard
purges the events after that step.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from comllm.checkpointing import truncate_csv
from comllm.drl.config import TrainConfig
from comllm.evaluate.closed_loop import evaluate_closed_loop
from comllm.policies.base import Policy
from comllm.scenario import Scenario

EPISODE_FIELDS = ("step", "episode", "tasks", "avg_latency", "drop_rate", "epsilon", "loss", "wall_s")
EVAL_FIELDS = ("step", "avg_latency", "drop_rate", "jain_index", "wall_s")


class TrainingMonitor:
    """Call :meth:`on_step` after every environment step of a training loop.

    ``make_policy()`` returns the current greedy policy (for evaluations);
    ``save(kind)`` writes a checkpoint, ``kind`` being ``"last"`` or ``"best"``.
    Counters (``steps_done``, ``wall_s``, ``episodes``, ``best_eval_latency``,
    ``best_step``) continue from the values given, so resumed runs add up.

    A ``"last"`` checkpoint is due every ``checkpoint_every`` steps; with
    ``checkpoint_at_episode_end`` it is written at the first episode end from
    then on (the step that ends the episode passes ``episode_end=True``), where
    a resumed run continues exactly as an uninterrupted one would.
    """

    def __init__(
        self,
        out: Path,
        cfg: TrainConfig,
        scenario: Scenario,
        make_policy: Callable[[], Policy],
        save: Callable[[str], None],
        steps_done: int = 0,
        wall_s: float = 0.0,
        episodes: int = 0,
        best_eval_latency: float | None = None,
        best_step: int | None = None,
        console: Console | None = None,
        progress: bool = True,
        checkpoint_at_episode_end: bool = False,
    ) -> None:
        self.out = out
        self.checkpoint_at_episode_end = checkpoint_at_episode_end
        self.checkpoint_due = False
        self.cfg = cfg
        self.scenario = scenario
        self.make_policy = make_policy
        self.save = save
        self.steps_done = steps_done
        self._wall0 = wall_s
        self._t0 = time.perf_counter()
        self.episodes = episodes
        self.best_eval_latency = best_eval_latency
        self.best_step = best_step
        self.last_eval: dict[str, Any] | None = None
        self.last_episode: dict[str, Any] | None = None
        self.console = console or Console()
        self._show = progress
        out.mkdir(parents=True, exist_ok=True)
        self._ep_file, self._ep_csv = _open_csv(out / "episodes.csv", EPISODE_FIELDS, steps_done)
        self._ev_file, self._ev_csv = _open_csv(out / "eval.csv", EVAL_FIELDS, steps_done)
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(out / "tb"), purge_step=steps_done if steps_done else None)
        self._progress: Progress | None = None

    @property
    def wall_s(self) -> float:
        """Training wall time in seconds, over all resumed runs."""
        return self._wall0 + time.perf_counter() - self._t0

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> "TrainingMonitor":
        if self._show:
            self._progress = Progress(
                TextColumn(f"[bold]{self.cfg.algo}[/] {self.scenario.name}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "train", total=self.cfg.steps, completed=self.steps_done, status=""
            )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
        self.tb.close()
        self._ep_file.close()
        self._ev_file.close()

    # ----------------------------------------------------------------- hooks
    def on_step(self, info: dict[str, Any], epsilon: float, loss: float | None, episode_end: bool = False) -> None:
        """One environment step was taken (``info`` is the environment's; ``episode_end``: it ended the episode)."""
        self.steps_done += 1
        step = self.steps_done
        stats = info.get("episode_stats")
        if stats is not None:
            self._log_episode(step, stats, epsilon, loss)
        if step % self.cfg.eval_every == 0 or step == self.cfg.steps:
            self.evaluate(step)
        if step % self.cfg.checkpoint_every == 0 and step != self.cfg.steps:
            self.checkpoint_due = True
        if self.checkpoint_due and (episode_end or not self.checkpoint_at_episode_end) and step != self.cfg.steps:
            self.checkpoint_due = False
            self.save("last")
        if self._progress is not None and (step % 256 == 0 or step == self.cfg.steps):
            self._progress.update(self._task, completed=step, status=self._status(epsilon))

    def evaluate(self, step: int) -> dict[str, Any]:
        """Closed-loop evaluation of the current greedy policy; keeps the best checkpoint."""
        summary, _ = evaluate_closed_loop(
            self.scenario, self.make_policy(), slots=self.cfg.eval_slots, seeds=self.cfg.eval_seeds, warmup=100
        )
        row = {
            "step": step,
            "avg_latency": summary["avg_latency"],
            "drop_rate": summary["drop_rate"],
            "jain_index": summary["jain_index"],
            "wall_s": round(self.wall_s, 2),
        }
        self._ev_csv.writerow(row)
        self._ev_file.flush()
        for key in ("avg_latency", "drop_rate", "jain_index"):
            if row[key] is not None:
                self.tb.add_scalar(f"eval/{key}", row[key], step)
        self.last_eval = row
        if self.best_eval_latency is None or row["avg_latency"] < self.best_eval_latency:
            self.best_eval_latency = row["avg_latency"]
            self.best_step = step
            self.save("best")
        return row

    # -------------------------------------------------------------- helpers
    def _log_episode(self, step: int, stats: dict[str, Any], epsilon: float, loss: float | None) -> None:
        self.episodes += 1
        row = {
            "step": step,
            "episode": self.episodes,
            "tasks": stats["tasks"],
            "avg_latency": round(stats["avg_latency"], 5),
            "drop_rate": round(stats["drop_rate"], 5),
            "epsilon": round(epsilon, 5),
            "loss": None if loss is None else round(loss, 6),
            "wall_s": round(self.wall_s, 2),
        }
        self._ep_csv.writerow(row)
        self._ep_file.flush()
        self.tb.add_scalar("train/avg_latency", stats["avg_latency"], step)
        self.tb.add_scalar("train/drop_rate", stats["drop_rate"], step)
        self.tb.add_scalar("train/epsilon", epsilon, step)
        if loss is not None:
            self.tb.add_scalar("train/loss", loss, step)
        self.last_episode = row

    def _status(self, epsilon: float) -> str:
        parts = [f"ε {epsilon:.2f}"]
        if self.last_episode:
            parts.append(f"train lat {self.last_episode['avg_latency']:.2f}")
        if self.last_eval:
            parts.append(f"eval lat {self.last_eval['avg_latency']:.3f} drops {100 * self.last_eval['drop_rate']:.1f}%")
        return " · ".join(parts)


def _open_csv(path: Path, fields: tuple[str, ...], steps_done: int):
    """Open a log for appending, keeping only the rows up to ``steps_done`` (the checkpoint)."""
    if steps_done > 0 and path.exists():
        truncate_csv(path, steps_done)
        f = path.open("a", newline="")
        return f, csv.DictWriter(f, fieldnames=fields)
    f = path.open("w", newline="")
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    f.flush()
    return f, w

"""Training curves of DRL runs (``comllm dqn plot``), from their ``eval.csv`` and ``episodes.csv``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from comllm.drl.config import CheckpointMeta


def read_csv(path: Path) -> dict[str, np.ndarray]:
    """Columns of a run log as float arrays (empty cells become NaN)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows]) for k in rows[0]}


def _smooth(y: np.ndarray, k: int) -> np.ndarray:
    if len(y) < k or k <= 1:
        return y
    return np.convolve(y, np.ones(k) / k, mode="valid")


def greedy_reference(meta: CheckpointMeta) -> float:
    """Latency of the greedy oracle under the run's own evaluation protocol (slots)."""
    from comllm.evaluate.closed_loop import evaluate_closed_loop
    from comllm.policies import make_policy
    from comllm.scenario import make_scenario

    sc = make_scenario(meta.scenario)
    summary, _ = evaluate_closed_loop(
        sc, make_policy("greedy", sc), slots=meta.train.eval_slots, seeds=meta.train.eval_seeds, warmup=100
    )
    return float(summary["avg_latency"])


def plot_training(folders: list[Path], out: Path, greedy: bool = True) -> None:
    """Left: the greedy (argmax) policy's closed-loop latency at each evaluation;
    right: the exploring policy's latency per training episode (moving average of 5).
    Dashed lines: the greedy oracle on the same evaluation seeds, one per scenario.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_eval, ax_train) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    refs: dict[str, float] = {}
    for i, folder in enumerate(folders):
        meta = CheckpointMeta.read(folder)
        label = f"{meta.algo} · {meta.scenario.get('name')} ({meta.wall_s / 60:.0f} min)"
        c = colors[i % len(colors)]
        ev = read_csv(folder / "eval.csv") if (folder / "eval.csv").exists() else {}
        if ev:
            ax_eval.plot(ev["step"] / 1e3, ev["avg_latency"], "o-", ms=3, color=c, label=label)
        ep = read_csv(folder / "episodes.csv") if (folder / "episodes.csv").exists() else {}
        if ep:
            y = _smooth(ep["avg_latency"], 5)
            x = ep["step"][len(ep["step"]) - len(y) :]
            ax_train.plot(x / 1e3, y, color=c, label=label)
        name = str(meta.scenario.get("name"))
        if greedy and name not in refs:
            refs[name] = greedy_reference(meta)
    for j, (name, value) in enumerate(refs.items()):
        for ax in (ax_eval, ax_train):
            ax.axhline(value, ls="--", lw=1, color="0.3" if j == 0 else "0.6", label=f"greedy oracle · {name}")
    ax_eval.set_title("closed-loop evaluation (argmax policy)")
    ax_train.set_title("training episodes (ε-greedy, moving avg of 5)")
    for ax in (ax_eval, ax_train):
        ax.set_xlabel("environment steps (thousand task decisions)")
        ax.set_ylabel("average latency (slots, drops at deadline)")
        ax.grid(alpha=0.3)
    ax_eval.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)

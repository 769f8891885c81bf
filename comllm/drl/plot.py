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
    """One row per scenario. Left: the argmax policy's closed-loop latency at each
    evaluation; right: the exploring policy's latency per training episode (moving
    average of 5). Dashed: the greedy oracle under the same evaluation protocol.
    Lines are labelled with the run folder's name, algorithm and wall time.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metas = [CheckpointMeta.read(f) for f in folders]
    scenarios = list(dict.fromkeys(str(m.scenario.get("name")) for m in metas))
    fig, axes = plt.subplots(len(scenarios), 2, figsize=(12, 4 * len(scenarios)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (folder, meta) in enumerate(zip(folders, metas)):
        name = str(meta.scenario.get("name"))
        ax_eval, ax_train = axes[scenarios.index(name)]
        label = f"{folder.name}: {meta.algo}, {meta.steps_done // 1000}k steps, {meta.wall_s / 60:.0f} min"
        c = colors[i % len(colors)]
        ev = read_csv(folder / "eval.csv") if (folder / "eval.csv").exists() else {}
        if ev:
            ax_eval.plot(ev["step"] / 1e3, ev["avg_latency"], "o-", ms=3, color=c, label=label)
        ep = read_csv(folder / "episodes.csv") if (folder / "episodes.csv").exists() else {}
        if ep:
            y = _smooth(ep["avg_latency"], 5)
            ax_train.plot(ep["step"][len(ep["step"]) - len(y) :] / 1e3, y, color=c, label=label)
    for row, name in enumerate(scenarios):
        ax_eval, ax_train = axes[row]
        if greedy:
            ref = greedy_reference(next(m for m in metas if m.scenario.get("name") == name))
            for ax in (ax_eval, ax_train):
                ax.axhline(ref, ls="--", lw=1, color="0.3", label=f"greedy oracle ({ref:.2f})")
        ax_eval.set_title(f"{name}: closed-loop evaluation of the argmax policy")
        ax_train.set_title(f"{name}: training episodes (ε-greedy, moving average of 5)")
        for ax in (ax_eval, ax_train):
            ax.set_xlabel("environment steps (thousand task decisions)")
            ax.set_ylabel("avg latency (slots, drop = deadline)")
            ax.set_ylim(top=min(ax.get_ylim()[1], 10.5))
            ax.grid(alpha=0.3)
        ax_eval.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)

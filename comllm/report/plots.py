"""Plots for papers: PNG files made with matplotlib (Agg backend, no display needed).

Every function takes plain rows (dicts as written by the evaluation stage) and a
path, and returns the path it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_STYLE = {"figure.dpi": 150, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9, "legend.fontsize": 8}


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _prob(row: Mapping[str, Any]) -> float | None:
    for item in row.get("overrides", []):
        if item.startswith("arrival_prob="):
            return float(item.split("=", 1)[1])
    return row.get("arrival_prob")


def load_sweep(rows: Sequence[Mapping[str, Any]], path: Path, scenario: str) -> Path:
    """Latency and drop rate against the arrival probability, one line per policy."""
    with plt.rc_context(_STYLE):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
        for policy in dict.fromkeys(r["policy"] for r in rows if r["scenario"] == scenario):
            pts = sorted(
                (_prob(r), r["avg_latency"], r.get("avg_latency_ci") or 0, r["drop_rate"], r.get("drop_rate_ci") or 0)
                for r in rows
                if r["policy"] == policy and r["scenario"] == scenario and _prob(r) is not None
            )
            if not pts:
                continue
            p, lat, lat_ci, drop, drop_ci = map(np.array, zip(*pts))
            ax1.errorbar(p, lat, yerr=lat_ci, marker="o", ms=3, capsize=2, label=policy)
            ax2.errorbar(p, 100 * drop, yerr=100 * drop_ci, marker="o", ms=3, capsize=2, label=policy)
        ax1.set(xlabel="arrival probability per device per slot", ylabel="average latency (slots)", title=scenario)
        ax2.set(xlabel="arrival probability per device per slot", ylabel="drop rate (%)", title=scenario)
        ax2.legend(loc="upper left")
        return _save(fig, path)


def latency_cdf(latencies: Mapping[str, Sequence[float]], path: Path, title: str, deadline: float = 10) -> Path:
    """Empirical CDF of task latency per policy (drops sit at the deadline)."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        for policy, lat in latencies.items():
            x = np.sort(np.asarray(lat, dtype=np.float64))
            if len(x):
                ax.step(x, np.arange(1, len(x) + 1) / len(x), where="post", label=policy)
        ax.set(xlabel="latency (slots)", ylabel="fraction of tasks", title=title, xlim=(0, deadline * 1.02), ylim=(0, 1))
        ax.legend(loc="lower right")
        return _save(fig, path)


def server_share(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path:
    """Share of offloaded tasks per server, grouped bars per policy."""
    rows = [r for r in rows if r.get("per_server_share") and sum(r["per_server_share"]) > 0]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6, 3.2))
        if rows:
            n = max(len(r["per_server_share"]) for r in rows)
            width = 0.8 / len(rows)
            for i, r in enumerate(rows):
                share = np.asarray(r["per_server_share"])
                ax.bar(np.arange(1, len(share) + 1) + (i - (len(rows) - 1) / 2) * width, 100 * share, width,
                       label=r["policy"])  # fmt: skip
            ax.set_xticks(np.arange(1, n + 1))
            ax.legend(ncol=2)
        ax.set(xlabel="server", ylabel="share of offloaded tasks (%)", title=title)
        return _save(fig, path)


def training_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], path: Path) -> Path:
    """One panel per training run: each metric against its step (``{"run": {"step": [...], "loss": [...]}}``)."""
    runs = [(name, c) for name, c in curves.items() if c.get("step")]
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, max(1, len(runs)), figsize=(3.6 * max(1, len(runs)), 3.0), squeeze=False)
        for ax, (name, c) in zip(axes[0], runs):
            step = np.asarray(c["step"], dtype=np.float64)
            for key, values in c.items():
                if key == "step" or len(values) != len(step):
                    continue
                ax.plot(step, np.asarray(values, dtype=np.float64), label=key)
            ax.set(xlabel="step", title=name)
            ax.legend()
        return _save(fig, path)


def zero_shot(rows: Sequence[Mapping[str, Any]], path: Path, metric: str = "perf_ratio") -> Path:
    """A metric against the number of servers, one line per policy (trained once, run on every N)."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        for policy in dict.fromkeys(r["policy"] for r in rows):
            pts = sorted((r["n_servers"], r[metric]) for r in rows if r["policy"] == policy and r.get(metric) is not None)
            if pts:
                n, v = zip(*pts)
                ax.plot(n, v, marker="o", ms=3, label=policy)
        ax.set(xlabel="number of edge servers", ylabel=metric.replace("_", " "), title="zero-shot over server counts")
        ax.legend()
        return _save(fig, path)


def robustness(rows: Sequence[Mapping[str, Any]], path: Path, metrics: Sequence[str] = ("accuracy", "perf_ratio", "invalid_rate")) -> Path:
    """Each metric under each prompt perturbation (grouped bars per policy)."""
    perts = list(dict.fromkeys(r["perturbation"] for r in rows))
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
        width = 0.8 / max(1, len(policies))
        for ax, metric in zip(axes[0], metrics):
            for i, pol in enumerate(policies):
                vals = [next((r.get(metric) for r in rows if r["policy"] == pol and r["perturbation"] == p), None) for p in perts]
                ax.bar(np.arange(len(perts)) + (i - (len(policies) - 1) / 2) * width,
                       [np.nan if v is None else v for v in vals], width, label=pol)  # fmt: skip
            ax.set_xticks(np.arange(len(perts)), perts, rotation=30, ha="right")
            ax.set(title=metric.replace("_", " "))
        axes[0][0].legend()
        return _save(fig, path)

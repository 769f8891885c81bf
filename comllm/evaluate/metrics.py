"""Closed-loop metrics and their aggregation across seeds into one result row per policy and scenario."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

# two-sided 95 % Student-t quantiles for 1..30 degrees of freedom
_T95 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip


def jain_index(x: Sequence[float] | np.ndarray) -> float:
    """Jain's fairness index ``(Σx)² / (N·Σx²)``; NaN when every x is 0."""
    x = np.asarray(x, dtype=np.float64)
    sq = float(np.sum(x * x))
    if len(x) == 0 or sq == 0.0:
        return float("nan")
    return float(np.sum(x) ** 2 / (len(x) * sq))


def mean_ci(values: Iterable[float]) -> tuple[float, float]:
    """Mean and half-width of a 95 % confidence interval (Student t; 0 for one value)."""
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return float(v[0]), 0.0
    dof = len(v) - 1
    t = _T95[dof - 1] if dof <= len(_T95) else 1.96
    return float(v.mean()), float(t * v.std(ddof=1) / math.sqrt(len(v)))


def nan_to_none(x: float) -> float | None:
    """JSON has no NaN: undefined metrics are written as null."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


#: per-episode scalar metrics that are averaged (with a CI) across seeds
SCALAR_METRICS = (
    "avg_latency",
    "avg_latency_completed",
    "drop_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "offload_share",
    "jain_index",
    "jain_utilization",
)

#: the keys of every row that :func:`aggregate_seeds` returns, in order
ROW_KEYS = (
    "policy", "scenario", "overrides", "n_servers", "seeds", "slots", "warmup", "n_tasks",
    *(k for key in SCALAR_METRICS for k in (key, f"{key}_ci")),
    "per_server_share", "utilization", "drops_by_stage", "policy_stats", "wall_s",
)  # fmt: skip


def _field(episode: Mapping[str, Any] | Any, key: str) -> Any:
    return episode[key] if isinstance(episode, Mapping) else getattr(episode, key)


def sum_policy_stats(stats: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Numeric policy counters summed over episodes; ``invalid_rate`` recomputed from the sums."""
    out: dict[str, float] = {}
    for s in stats:
        for k, v in s.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
    if "invalid" in out and out.get("decisions"):
        out["invalid_rate"] = out["invalid"] / out["decisions"]
    return out


def aggregate_seeds(
    episodes: Sequence[Mapping[str, Any] | Any],
    *,
    policy: str,
    scenario: str,
    overrides: Sequence[str] = (),
    slots: int | None = None,
    warmup: int | None = None,
    policy_stats: Iterable[Mapping[str, Any]] = (),
    wall_s: float | None = None,
) -> dict[str, Any]:
    """One result row: the episodes of one policy on one scenario, over seeds.

    This is the one aggregation of closed-loop results (``simulate``, ``sweep``, the
    pipeline's evaluation, ``benchmark``). ``episodes`` are
    :class:`~comllm.evaluate.closed_loop.EpisodeMetrics` or their ``asdict`` form.
    Each metric of :data:`SCALAR_METRICS` gets its mean and ``<metric>_ci``, the
    95 % half-width over seeds (undefined ones are ``None``); the per-server lists
    are averaged, drops by stage and the policy's counters summed. The keys are
    :data:`ROW_KEYS`, in that order, whatever ran the episodes.
    """
    if not episodes:
        raise ValueError("aggregate_seeds needs at least one episode")
    row: dict[str, Any] = {
        "policy": policy,
        "scenario": scenario,
        "overrides": list(overrides),
        "n_servers": len(_field(episodes[0], "per_server_share")),
        "seeds": [int(_field(e, "seed")) for e in episodes],
        "slots": slots,
        "warmup": warmup,
        "n_tasks": int(sum(_field(e, "n_tasks") for e in episodes)),
    }
    for key in SCALAR_METRICS:
        m, ci = mean_ci(float("nan") if _field(e, key) is None else _field(e, key) for e in episodes)
        row[key], row[f"{key}_ci"] = nan_to_none(m), nan_to_none(ci)
    row["per_server_share"] = np.mean([_field(e, "per_server_share") for e in episodes], axis=0).tolist()
    row["utilization"] = np.mean([_field(e, "utilization") for e in episodes], axis=0).tolist()
    drops: dict[str, int] = {}
    for e in episodes:
        for k, v in _field(e, "drops_by_stage").items():
            drops[k] = drops.get(k, 0) + int(v)
    row["drops_by_stage"] = drops
    row["policy_stats"] = sum_policy_stats(policy_stats)
    row["wall_s"] = wall_s
    return row

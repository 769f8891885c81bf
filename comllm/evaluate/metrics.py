"""Metrics of DESIGN §5 and their aggregation across seeds."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

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

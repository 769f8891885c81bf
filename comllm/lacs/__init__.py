"""LACS: look-ahead scoring of offloading decisions (simulated rollouts, the reference estimator, rewards)."""

from comllm.lacs.lookahead import (
    LacsError,
    LacsResult,
    LacsSettings,
    as_snapshot,
    lacs_evaluate,
    lacs_evaluate_batch,
    lacs_scores,
    lacs_scores_batch,
)

__all__ = [
    "LacsError",
    "LacsResult",
    "LacsSettings",
    "as_snapshot",
    "lacs_evaluate",
    "lacs_evaluate_batch",
    "lacs_scores",
    "lacs_scores_batch",
]

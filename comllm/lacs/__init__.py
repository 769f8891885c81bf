"""LACS: look-ahead scoring of offloading decisions.

* :mod:`comllm.lacs.lookahead`: rollouts on the simulator's own dynamics (``lacs_scores``);
* :mod:`comllm.lacs.reference`: the reference's cheap estimator (``reference_scores``);
* :mod:`comllm.lacs.rewards`: TRL reward callables (format, task, LACS term);
* :mod:`comllm.lacs.planner`: the ``lacs-planner[:H,K]`` policy.
"""

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
from comllm.lacs.planner import LacsPlanner, live_snapshot
from comllm.lacs.reference import future_sizes, reference_scores, reference_scores_batch, reference_terms
from comllm.lacs.rewards import LacsRewards, RewardConfig, make_reward_funcs

__all__ = [
    "LacsError",
    "LacsPlanner",
    "LacsResult",
    "LacsRewards",
    "LacsSettings",
    "RewardConfig",
    "as_snapshot",
    "future_sizes",
    "lacs_evaluate",
    "lacs_evaluate_batch",
    "lacs_scores",
    "lacs_scores_batch",
    "live_snapshot",
    "make_reward_funcs",
    "reference_scores",
    "reference_scores_batch",
    "reference_terms",
]

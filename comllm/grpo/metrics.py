"""Decision metrics of each GRPO batch, logged beside the reward terms.

TRL hands every reward function a ``log_metric(name, value)`` callback;
:func:`with_decision_metrics` wraps one reward callable so that, besides its
reward, it logs what the sampled completions decided:

* ``decisions/valid``: fraction of completions that name a valid action;
* ``decisions/greedy_agree``: fraction of valid ones equal to the one-step oracle;
* ``decisions/local``: fraction of valid ones that run locally;
* ``decisions/cost_ratio``: oracle one-step cost / chosen one-step cost, summed
  over the valid ones (1.0 = the greedy oracle; LACS may push it below 1).

The one-step costs come from the record's ``costs`` column (slots), the answers
are parsed with :func:`comllm.text.parse_answer`.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import numpy as np

from comllm.lacs.rewards import completion_text
from comllm.text import parse_answer


def decision_metrics(completions: Sequence[Any], n_servers: Sequence[int], costs: Sequence[Any]) -> dict[str, float]:
    """The ``decisions/*`` metrics of a batch (see the module docstring)."""
    valid = agree = local = 0
    chosen = best = 0.0
    for comp, n, c in zip(completions, n_servers, costs):
        a = parse_answer(completion_text(comp), int(n))
        if a is None or not 0 <= a <= int(n):
            continue
        cost = np.asarray(json.loads(c) if isinstance(c, str) else c, dtype=np.float64)
        valid += 1
        agree += int(a == int(np.argmin(cost)))
        local += int(a == 0)
        chosen += float(cost[a])
        best += float(cost.min())
    total = max(len(completions), 1)
    out = {"decisions/valid": valid / total}
    if valid:
        out.update({
            "decisions/greedy_agree": agree / valid,
            "decisions/local": local / valid,
            "decisions/cost_ratio": best / chosen if chosen > 0 else 1.0,
        })  # fmt: skip
    return out


def with_decision_metrics(func: Callable[..., list[float]]) -> Callable[..., list[float]]:
    """``func`` (a TRL reward callable) that also logs :func:`decision_metrics`; same name, same rewards."""

    def reward(prompts: Any = None, completions: Sequence[Any] = (), **kwargs: Any) -> list[float]:
        out = func(prompts=prompts, completions=completions, **kwargs)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None and "n_servers" in kwargs and "costs" in kwargs:
            for name, value in decision_metrics(completions, kwargs["n_servers"], kwargs["costs"]).items():
                log_metric(name, value)
        return out

    reward.__name__ = getattr(func, "__name__", "reward")
    reward.__qualname__ = getattr(func, "__qualname__", reward.__name__)
    reward.__doc__ = func.__doc__
    return reward

"""How result tables name the policies they compare: one table for the pipeline, the benchmark and the report.

A baseline (a heuristic or the look-ahead planner) is labelled by its spec
(``greedy``, ``lacs-planner``). A trained policy is labelled by what trained it:
the pipeline's language-model stage (``sft``, ``grpo``, ``comllm``) or the DRL
algorithm (``dqn``, ``d3qn-lstm``, as in ``comllm dqn train --algo``), whether the
pipeline trained it or it is shipped in ``comllm/checkpoints/``.
"""

from __future__ import annotations

#: the label of each trained policy, keyed by what trained it
LABELS: dict[str, str] = {
    "sft": "SFT",
    "grpo": "GRPO",
    "comllm": "COMLLM",
    "dqn": "DQN",
    "d3qn-lstm": "D3QN-LSTM",
}

#: the pipeline's language-model stages, in training order (each writes ``RUN/<stage>/``)
LM_STAGES: tuple[str, ...] = ("sft", "grpo", "comllm")

#: the baselines of ``comllm benchmark`` (heuristics and the look-ahead planner)
BASELINES: tuple[str, ...] = ("greedy", "random", "local", "round-robin", "least-loaded", "lacs-planner")

#: shipped language models: folder under ``comllm/checkpoints/`` -> the stage that trained it
SHIPPED_LMS: dict[str, str] = {"lm-paper6-sharing": "sft", "lm-grpo-sharing": "grpo", "lm-comllm-sharing": "comllm"}

#: shipped DRL agents: folder prefix (``<prefix>-<servers>`` under ``comllm/checkpoints/``) -> algorithm
SHIPPED_DRL: dict[str, str] = {"dqn": "dqn", "d3qn": "d3qn-lstm"}


def label(kind: str) -> str:
    """The table label of a trained policy's kind (a stage or algorithm); other names unchanged."""
    return LABELS.get(kind, kind)

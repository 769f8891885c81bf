"""GRPO training of offloading language models with the LACS reward (TRL's GRPOTrainer).

* :mod:`comllm.grpo.config`: :class:`GRPORunConfig`, every option of a run (defaults: docs/model.md §9);
* :mod:`comllm.grpo.dataset`: records -> prompts in the model's template + snapshot/device columns;
* :mod:`comllm.grpo.metrics`: decision metrics logged beside the reward terms;
* :mod:`comllm.grpo.callbacks`: CSV log, rich progress, loadable checkpoints;
* :mod:`comllm.grpo.train`: :func:`train_grpo` (run or resume), :func:`export_model`.

The reward callables themselves live in :mod:`comllm.lacs.rewards`.
"""

from comllm.grpo.config import EMBEDDED_LR, HF_LR, GRPOError, GRPORunConfig, make_config
from comllm.grpo.dataset import build_dataset, record_rows
from comllm.grpo.metrics import decision_metrics, with_decision_metrics

_TRAIN = ("checkpoints", "export_model", "train_grpo")


def __getattr__(name: str) -> object:
    """The training functions, imported on first use: transformers, TRL and peft load only then
    (``comllm grpo --help`` and the options it reads from :mod:`comllm.grpo.config` need none)."""
    if name in _TRAIN:
        from comllm.grpo import train

        return getattr(train, name)
    raise AttributeError(f"module 'comllm.grpo' has no attribute '{name}'")

__all__ = [
    "EMBEDDED_LR",
    "HF_LR",
    "GRPOError",
    "GRPORunConfig",
    "build_dataset",
    "checkpoints",
    "decision_metrics",
    "export_model",
    "make_config",
    "record_rows",
    "train_grpo",
    "with_decision_metrics",
]

"""Options of a GRPO run (``comllm grpo``): one validated pydantic model, saved with the run.

Defaults follow the reference's (docs/model.md §9) where they fit a small model:
G = 4 completions per prompt, KL beta 0.005, sampling temperature 1.3 and top-p
0.95, completions of at most 15 tokens, reward 0.8 task + 0.2 format,
unparseable -10, LACS weight lambda = 0.3 with rollouts of H = 5 slots, K = 16
times. The learning rate defaults to the reference's 5e-6 (:data:`HF_LR`) for
Hugging Face models and to :data:`EMBEDDED_LR` for the embedded value-token
model, which was trained from scratch at 1e-3 and barely moves at the
reference's rate (measurements: docs/notes/grpo-experiments.md).

The reward shaping defaults to the reference's, ``reference``; at heavy load
prefer ``normalised``: when every action of a state is predicted to miss its
deadline, the reference reward of every valid answer falls below the flat
``unparseable`` reward, and GRPO learns to write invalid answers
(docs/model.md §8; measured in docs/notes/grpo-experiments.md).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from comllm.errors import ComllmError, format_validation_error
from comllm.lacs.lookahead import LACS_DEFAULTS

#: learning rate of the embedded model when ``lr`` is not given (docs/notes/grpo-experiments.md)
EMBEDDED_LR = 1e-4
#: the reference's learning rate (Hugging Face models; docs/model.md §9)
HF_LR = 5e-6


class GRPOError(ComllmError, ValueError):
    """A bad GRPO option or an unusable data set (the message names the option and the value)."""


class GRPORunConfig(BaseModel):
    """Every option of a GRPO run; saved as ``grpo_config.json`` in the output folder."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field("default", description="checkpoint folder (e.g. runs/sft), 'default' (shipped SFT) or a HF name")
    template: str | None = Field(None, description="prompt template (default: the checkpoint's)")
    data: list[str] = Field(..., min_length=1, description="record files with simulator snapshots (comllm data --split grpo)")
    out: str
    resume: bool = False
    # reward (comllm.lacs.rewards.RewardConfig)
    lacs: Literal["sim", "reference", "off"] = "sim"
    lacs_weight: float = Field(LACS_DEFAULTS.lam, ge=0, description="lambda: weight of the look-ahead term")
    horizon: int = Field(LACS_DEFAULTS.horizon, ge=0, description="LACS sim: slots after the decision whose arrivals are scored")
    rollouts: int = Field(LACS_DEFAULTS.rollouts, ge=1, description="LACS sim: rollouts per candidate action")
    other_policy: Literal["greedy", "local", "random"] = "greedy"
    drop_cost: float | Literal["deadline"] | None = Field(None, description="LACS sim: slots a drop costs (None: the drop penalty)")
    n_future: int = Field(3, ge=1, description="LACS reference: future tasks drawn")
    shaping: Literal["reference", "normalised"] = "reference"
    task_weight: float = Field(0.8, ge=0)
    format_weight: float = Field(0.2, ge=0)
    unparseable: float = Field(-10.0, le=0, description="reward of an answer that names no valid action")
    # GRPO
    steps: int | None = Field(None, ge=1, description="optimizer steps (default: from epochs)")
    epochs: float = Field(1.0, gt=0)
    num_generations: int = Field(4, ge=2, description="G: completions per prompt")
    prompts_per_step: int = Field(8, ge=1, description="prompts per optimizer step (each with G completions)")
    lr: float | None = Field(None, gt=0, description=f"learning rate (default {EMBEDDED_LR:g} embedded, {HF_LR:g} HF)")
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup: float = Field(0.0, ge=0, lt=1, description="fraction of steps of linear warm-up")
    beta: float = Field(0.005, ge=0, description="KL coefficient against the initial model")
    entropy_coef: float = Field(0.0, ge=0, description="weight of TRL's per-token entropy bonus (0: none)")
    temperature: float = Field(1.3, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_completion_length: int = Field(15, ge=1, description="tokens")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 0
    max_records: int | None = Field(None, ge=1)
    # Hugging Face models
    lora: bool = False
    lora_r: int = Field(64, ge=1)
    lora_alpha: int = Field(128, ge=1)
    four_bit: bool = False
    dtype: str = Field("auto", description="weights: auto (bf16 on a GPU that has it, else fp32) | fp32 | bf16 | fp16")
    bf16: bool | None = Field(None, description="bf16 mixed precision (default: on a GPU that supports it)")
    device: str = "auto"
    # generation through vLLM (TRL's switch, passed through; GPU machines with vllm installed)
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_server_base_url: str | None = None
    # bookkeeping
    save_every: int = Field(100, ge=1, description="steps between checkpoints")
    keep: int = Field(2, ge=1, description="checkpoints kept")
    log_every: int = Field(5, ge=1, description="steps between log rows")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: 1 while the load is above 1, else 2)")
    progress: bool = True

    @field_validator("data")
    @classmethod
    def _no_empty_paths(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p:
                raise ValueError("a data path is empty")
        return v

    def reward_config(self) -> Any:
        """The :class:`comllm.lacs.rewards.RewardConfig` of this run (its seed is the run's seed)."""
        from comllm.lacs.rewards import RewardConfig

        return RewardConfig(
            lacs=self.lacs, lam=self.lacs_weight, task_weight=self.task_weight, format_weight=self.format_weight,
            unparseable=self.unparseable, shaping=self.shaping, horizon=self.horizon, rollouts=self.rollouts,
            other_policy=self.other_policy, drop_cost=self.drop_cost, n_future=self.n_future, seed=self.seed,
        )  # fmt: skip


def make_config(**kwargs: Any) -> GRPORunConfig:
    """Validate options into a :class:`GRPORunConfig`; errors name the option and the value."""
    try:
        return GRPORunConfig(**kwargs)
    except ValidationError as err:
        raise GRPOError(format_validation_error(err, "grpo", "option", unknown_noun="option")) from None

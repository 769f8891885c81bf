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

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from comllm.errors import ComllmError, format_validation_error
from comllm.lacs.rewards import TASK_COSTS, RewardConfig
from comllm.sim.batch import RULES as ROLLOUT_RULES

#: learning rate of the embedded model when ``lr`` is not given (docs/notes/grpo-experiments.md)
EMBEDDED_LR = 1e-4
#: the reference's learning rate (Hugging Face models; docs/model.md §9)
HF_LR = 5e-6


#: the reward defaults (and through them the LACS defaults, ``LacsSettings``): the reward options' defaults
_REWARD = RewardConfig()
#: RewardConfig fields under another name here
REWARD_NAMES = {"lam": "lacs_weight"}
#: RewardConfig fields that are not run options (the dataset's column names)
REWARD_FIXED = ("snapshot_column", "device_column", "decisions_column")


def _flag(*names: str) -> dict[str, Any]:
    """A field's option names on the command line (read by :mod:`comllm.cli.from_config`)."""
    return {"flag": list(names) if len(names) > 1 else names[0]}


class GRPOError(ComllmError, ValueError):
    """A bad GRPO option or an unusable data set (the message names the option and the value)."""


class GRPORunConfig(BaseModel):
    """Every option of a GRPO run; saved as ``grpo_config.json`` in the output folder."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field("default", description="start model: an SFT checkpoint folder, 'default' (shipped SFT) or a HF name")
    template: str | None = Field(None, description="prompt template (default: the checkpoint's)")
    data: list[str] = Field(
        ..., min_length=1, description="record files with snapshots (`comllm data --split grpo`)", json_schema_extra=_flag("--data")
    )
    out: str = Field(..., description="output folder: checkpoints, logs, the final model (loadable as llm:OUT)")
    resume: bool = Field(False, description="continue from the last checkpoint in --out", json_schema_extra=_flag("--resume"))
    # reward: the fields of comllm.lacs.rewards.RewardConfig (lam is lacs_weight here), defaults from it
    lacs: Literal["sim", "reference", "off"] = Field(
        _REWARD.lacs, description="look-ahead term: sim (rollouts on the simulator) | reference | off (plain GRPO)"
    )
    lacs_weight: float = Field(_REWARD.lam, ge=0, description="lambda: weight of the look-ahead term")
    horizon: int = Field(_REWARD.horizon, ge=0, description="LACS sim: slots after the decision whose arrivals are scored")
    rollouts: int = Field(_REWARD.rollouts, ge=1, description="LACS sim: rollouts per candidate action")
    other_policy: Literal[tuple(ROLLOUT_RULES)] = Field(  # type: ignore[valid-type]
        _REWARD.other_policy, description=f"LACS sim: how the other tasks are decided ({' | '.join(ROLLOUT_RULES)})"
    )
    drop_cost: float | Literal["deadline"] | None = Field(
        _REWARD.drop_cost, description="LACS sim: slots a dropped task costs (a number or 'deadline'; default: the drop penalty)"
    )
    n_future: int = Field(_REWARD.n_future, ge=1, description="LACS reference: future tasks drawn")
    shaping: Literal["reference", "normalised"] = Field(
        _REWARD.shaping, description="reward shaping: reference (docs/model.md §8) | normalised"
    )
    task_cost: Literal[tuple(TASK_COSTS)] = Field(  # type: ignore[valid-type]
        _REWARD.task_cost,
        description="the task term's one-step cost: incoming (with the traffic in flight, the fresh view's) | sharing"
        " (greedy:sharing's, the server shared among its queues: a lean-sharing model's) | greedy (the paper's formula)",
    )
    task_weight: float = Field(_REWARD.task_weight, ge=0, description="weight of the task (one-step cost) term")
    format_weight: float = Field(_REWARD.format_weight, ge=0, description="weight of the format term")
    unparseable: float = Field(_REWARD.unparseable, le=0, description="reward of an answer that names no valid action")
    over_deadline_penalty: float = Field(
        _REWARD.over_deadline_penalty, ge=0, description="reference shaping: penalty of an answer whose cost passes the deadline"
    )
    # GRPO
    steps: int | None = Field(None, ge=1, description="optimizer steps (default: from --epochs); with --resume, a new total")
    epochs: float = Field(1.0, gt=0, description="passes over the prompts when --steps is not given")
    num_generations: int = Field(
        4, ge=2, description="G: completions per prompt", json_schema_extra=_flag("--num-generations", "-G")
    )
    prompts_per_step: int = Field(8, ge=1, description="prompts per optimizer step (each with G completions)")
    lr: float | None = Field(
        None, gt=0, description=f"learning rate (default {EMBEDDED_LR:g} embedded model, {HF_LR:g} HF models)"
    )
    schedule: Literal["constant", "linear", "cosine"] = Field("constant", description="constant | linear | cosine (after warm-up)")
    warmup: float = Field(0.0, ge=0, lt=1, description="fraction of steps of linear warm-up")
    beta: float = Field(0.005, ge=0, description="KL coefficient against the start model")
    entropy_coef: float = Field(0.0, ge=0, description="weight of TRL's per-token entropy bonus (0: none)")
    temperature: float = Field(1.3, gt=0, description="sampling temperature of the completions")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling of the completions")
    max_completion_length: int = Field(15, ge=1, description="tokens per completion")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = Field("dapo", description="TRL loss: dapo | grpo | dr_grpo | bnpo")
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="TRL reward scaling: group | batch | none")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    seed: int = Field(0, description="seed of sampling, shuffling and the LACS rollouts")
    max_records: int | None = Field(None, ge=1, description="use only the first N records")
    # Hugging Face models
    lora: bool = Field(False, description="HF model: train a LoRA adapter (r 64, alpha 128)", json_schema_extra=_flag("--lora"))
    lora_r: int = Field(64, ge=1, description="LoRA rank")
    lora_alpha: int = Field(128, ge=1, description="LoRA alpha")
    four_bit: bool = Field(False, description="HF model: 4-bit weights (bitsandbytes, GPU)", json_schema_extra=_flag("--4bit"))
    dtype: str = Field("auto", description="weights: auto (bf16 on a GPU that has it, else fp32) | fp32 | bf16 | fp16")
    bf16: bool | None = Field(
        None, description="bf16 mixed precision (default: on a GPU that has it)", json_schema_extra=_flag("--bf16/--no-bf16")
    )
    device: str = Field("auto", description="auto | cpu | cuda[:k]")
    # generation through vLLM (TRL's switch, passed through; GPU machines with vllm installed)
    use_vllm: bool = Field(
        False, description="generate completions with vLLM (TRL's switch; GPU, vllm installed)", json_schema_extra=_flag("--use-vllm")
    )
    vllm_mode: Literal["colocate", "server"] = Field(
        "colocate", description="vLLM: colocate (in the training processes) | server (trl vllm-serve)"
    )
    vllm_server_base_url: str | None = Field(None, description="vLLM server mode: its base URL")
    # bookkeeping
    save_every: int = Field(100, ge=1, description="steps between checkpoints")
    keep: int = Field(2, ge=1, description="checkpoints kept")
    log_every: int = Field(5, ge=1, description="steps between log rows")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: 1 while the load is above 1, else 2)")
    progress: bool = Field(True, description="progress bar", json_schema_extra=_flag("--progress/--no-progress"))

    @field_validator("data")
    @classmethod
    def _no_empty_paths(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p:
                raise ValueError("a data path is empty")
        return v

    def reward_config(self) -> RewardConfig:
        """The :class:`comllm.lacs.rewards.RewardConfig` of this run (its seed is the run's seed)."""
        names = [f.name for f in dataclasses.fields(RewardConfig) if f.name not in REWARD_FIXED]
        return RewardConfig(**{n: getattr(self, REWARD_NAMES.get(n, n)) for n in names})


def make_config(**kwargs: Any) -> GRPORunConfig:
    """Validate options into a :class:`GRPORunConfig`; errors name the option and the value."""
    try:
        return GRPORunConfig(**kwargs)
    except ValidationError as err:
        raise GRPOError(format_validation_error(err, "grpo", "option", unknown_noun="option")) from None

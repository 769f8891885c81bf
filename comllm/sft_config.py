"""Options of an SFT run (``comllm sft``) and the embedded model's shape: one validated pydantic
model, saved in the checkpoint's ``comllm.json``, from which the command's options come
(:func:`comllm.cli.from_config.config_command`).

It lives outside :mod:`comllm.lm` so that reading the options (``comllm sft --help``, the
pipeline's config) loads neither torch nor transformers; :mod:`comllm.lm.sft` and
:mod:`comllm.lm.model` re-export what they use.

Robust training (``--perturb FAMILY``, repeatable, ``--perturb-prob``, ``--perturb-seed``):
each training prompt is, with probability ``perturb_prob``, rendered by
``perturbed_template(family, seed, base=<the model's template>)``
(:mod:`comllm.text.perturb`), the family drawn uniformly from ``perturb`` and the
perturbation seed from :data:`TRAIN_PERTURB_SEEDS` (1_000_000 and up), so the seeds
0..999 that the robustness evaluation uses are never seen in training. The draws come
from a generator seeded by ``perturb_seed`` alone (:func:`comllm.lm.sft.perturbation_draws`):
the same config encodes the same examples, on a resume too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from comllm.errors import ComllmError, FieldError, format_validation_error


class ShapeError(ComllmError, FieldError):
    """A model shape that cannot be built; names the field and the value."""

    def __str__(self) -> str:
        return f"model shape {self.field}={self.value} {self.message}"


@dataclass(frozen=True)
class ModelShape:
    """Size of an embedded model. Defaults: ≈ 2 M parameters (192 wide, 4 layers)."""

    hidden: int = 192
    layers: int = 4
    heads: int = 6
    intermediate: int = 512
    value_hidden: int = 128
    max_positions: int = 2048

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "heads", "intermediate", "value_hidden", "max_positions"):
            if getattr(self, name) < 1:
                raise ShapeError(name, getattr(self, name), "must be >= 1")
        if self.hidden % self.heads:
            raise ShapeError("heads", self.heads, f"does not divide hidden={self.hidden}")


_SHAPE = ModelShape()

#: the families of :data:`comllm.text.perturb.PERTURBATIONS` (written here so that reading the
#: options loads no template; a test keeps the two equal)
PERTURB_FAMILIES = ("shuffle-fields", "paraphrase", "units", "numbers", "shuffle-servers", "all")
#: which line ends a line end sees under ``--line-positions lines`` (:func:`comllm.lm.model.line_attention`):
#: the earlier ones, all, or none
LINE_COMPARE = ("earlier", "all", "none")
#: how the ``llm`` policy decides with a model (:mod:`comllm.lm.policy`): score, sample or by the cost head
DECISION_MODES = ("score", "sample", "cost")

#: perturbation seeds of the robustness evaluation: 0 .. EVAL_PERTURB_SEEDS - 1 (never drawn for training)
EVAL_PERTURB_SEEDS = 1000
#: perturbation seeds drawn for training prompts: [start, stop)
TRAIN_PERTURB_SEEDS = (1_000_000, 1_000_000 + 2**31)


#: what an unknown ``--perturb`` / ``perturb=`` value is told
PERTURB_KNOWN = f"known: {', '.join(PERTURB_FAMILIES)}, or families joined by '+'"


def is_perturb_family(name: str) -> bool:
    """A family of :data:`PERTURB_FAMILIES`, or several joined by ``+`` (applied in turn:
    :func:`comllm.text.perturb.get_perturbation`)."""
    return bool(name) and all(part in PERTURB_FAMILIES for part in name.split("+"))


def _flag(*names: str) -> dict[str, Any]:
    """A field's option names on the command line (read by :mod:`comllm.cli.from_config`)."""
    return {"flag": list(names) if len(names) > 1 else names[0]}


class SFTError(ComllmError, ValueError):
    """A bad SFT option or an unusable data set."""


class SFTConfig(BaseModel):
    """Every option of an SFT run (saved in the checkpoint's ``comllm.json``)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field("default", description="'default' (new embedded model), a checkpoint folder or a HF model name")
    template: str | None = Field(None, description="prompt template (default: the checkpoint's; needed for 'default')")
    data: list[str] = Field(..., min_length=1, description="record file(s) from `comllm data`", json_schema_extra=_flag("--data"))
    out: str = Field(..., description="output folder: checkpoints, logs, the final model")
    resume: bool = Field(False, description="continue from the last checkpoint in --out", json_schema_extra=_flag("--resume"))
    steps: int | None = Field(None, ge=1, description="optimizer steps (default: from --epochs)")
    epochs: float = Field(1.0, gt=0, description="passes over the data when --steps is not given")
    batch_size: int = Field(32, ge=1, description="examples per step")
    lr: float | None = Field(None, gt=0, description="peak learning rate (default 1e-3 embedded, 1e-5 HF)")
    schedule: Literal["cosine", "constant", "linear"] = Field("cosine", description="cosine | constant | linear (after warm-up)")
    warmup: float = Field(0.05, ge=0, lt=1, description="fraction of steps of linear warm-up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    seed: int = Field(0, description="seed of the model's initialisation, the batches and sampling")
    max_records: int | None = Field(None, ge=1, description="use only the first N records")
    # embedded model shape (model == 'default'); defaults and checks: ModelShape
    hidden: int = Field(_SHAPE.hidden, ge=8, description="embedded model: hidden size")
    layers: int = Field(_SHAPE.layers, ge=1, description="embedded model: decoder layers")
    heads: int = Field(_SHAPE.heads, ge=1, description="embedded model: attention heads")
    intermediate: int = Field(_SHAPE.intermediate, ge=8, description="embedded model: MLP width")
    value_range: Literal["wide", "narrow"] = Field(
        "wide", description="embedded model: range of its value tokens, wide (0.001 .. 1e7) | narrow (0.01 .. 2000)"
    )
    # Hugging Face models
    lora: bool = Field(False, description="HF model: train a LoRA adapter (r 64, alpha 128)", json_schema_extra=_flag("--lora"))
    lora_r: int = Field(64, ge=1, description="LoRA rank")
    lora_alpha: int = Field(128, ge=1, description="LoRA alpha")
    four_bit: bool = Field(False, description="HF model: 4-bit weights (bitsandbytes, GPU)", json_schema_extra=_flag("--4bit"))
    dtype: str = Field("auto", description="auto (bf16 on a GPU that has it, else fp32) | fp32 | bf16 | fp16")
    device: str = Field("auto", description="auto | cpu | cuda[:k]")
    # bookkeeping
    save_every: int = Field(1000, ge=1, description="steps between checkpoints")
    keep: int = Field(2, ge=1, description="checkpoints kept")
    log_every: int = Field(20, ge=1, description="steps between log rows")
    eval_data: str | None = Field(None, description="record file scored (score mode) during and after training")
    eval_every: int = Field(0, ge=0, description="steps between evaluations (0: only at the end)")
    eval_size: int = Field(1000, ge=1, description="eval records used")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: 1 if the load is above 1, else 2)")
    reasoning: bool = Field(
        False, description="answers carry the template's reasoning trace", json_schema_extra=_flag("--reasoning")
    )
    cost_head: float = Field(0.0, ge=0, description="weight of the auxiliary per-action cost regression (embedded model)")
    listwise: float = Field(0.0, ge=0, description="weight of a listwise loss over every valid answer (soft oracle)")
    listwise_tau: float = Field(0.5, gt=0, description="temperature (slots) of the listwise soft-oracle target")
    progress: bool = Field(True, description="progress bar", json_schema_extra=_flag("--progress/--no-progress"))
    # robust training: perturbed training prompts (comllm.text.perturb; comllm.lm.sft.perturbation_draws)
    perturb: list[str] = Field(
        default_factory=list,
        description="robust training: perturb training prompts with this family of comllm.text.perturb"
        f" ({' | '.join(PERTURB_FAMILIES)}); one drawn per sample when several are given",
        json_schema_extra=_flag("--perturb"),
    )
    perturb_prob: float = Field(0.5, ge=0, le=1, description="with --perturb: probability that a training prompt is perturbed")
    perturb_seed: int = Field(
        0,
        ge=0,
        description="with --perturb: seed of the draws (which prompts, which family, which perturbation seed); the"
        f" perturbation seeds are drawn from {TRAIN_PERTURB_SEEDS[0]}..{TRAIN_PERTURB_SEEDS[1] - 1}, so the"
        f" robustness evaluation's seeds 0..{EVAL_PERTURB_SEEDS - 1} are never trained on",
    )

    # zero-shot server counts: server ids beyond those of the training scenario (comllm.lm.sft.renumber_draws)
    renumber: float = Field(
        0.0,
        ge=0,
        le=1,
        description="probability that a training prompt's servers are named by random increasing ids from"
        " 1..--renumber-max (the answer names the new id), so that every id's token is trained",
    )
    renumber_max: int = Field(24, ge=1, le=128, description="with --renumber: the largest id drawn")
    line_gaps: int = Field(
        0,
        ge=0,
        le=64,
        description="position jitter: after each prompt line, skip 0..G position ids (drawn per line and step), so"
        " that where a line sits is not the cue (deciding uses contiguous positions)",
    )

    line_positions: Literal["absolute", "lines"] | None = Field(
        None,
        description="embedded model: 'lines' gives every action line the same position ids (the lines read as a set,"
        " so where a line sits is no cue), 'absolute' the ordinary ones (default: the model's own; new: absolute)",
    )

    line_compare: Literal[LINE_COMPARE] | None = Field(
        None,
        description="with --line-positions lines: the newline ending an action line sees the ends of the 'earlier'"
        " lines (default), of 'all' of them (exactly order-invariant, cannot break ties) or 'none' (each line's cost"
        " reads the task and its own line only, the same on any server count)",
    )

    mode: Literal[DECISION_MODES] | None = Field(  # type: ignore[valid-type]
        None,
        description="how the `llm` policy decides with the saved model unless told: score | sample | cost (by the"
        " cost head: needs --cost-head > 0 or a starting model with one); default: the starting model's",
    )

    @model_validator(mode="after")
    def _check(self) -> "SFTConfig":
        if self.mode == "cost" and self.model == "default" and self.cost_head <= 0:
            raise FieldError("mode", self.mode, "a new default model decides by its cost head only if trained with --cost-head > 0")
        if self.model == "default" and not self.template:
            raise FieldError("template", self.template, "a new default model needs --template (e.g. annotated-compact)")
        if self.line_gaps > 0 and self.listwise > 0:
            raise FieldError("line_gaps", self.line_gaps, "does not combine with --listwise (its tree pass sets the positions)")
        if self.line_gaps > 0 and self.line_positions == "lines":
            raise FieldError("line_gaps", self.line_gaps, "does not combine with --line-positions lines (it sets the positions)")
        if self.listwise > 0 and (self.reasoning or self.cost_head > 0):
            raise FieldError("listwise", self.listwise, "combines with neither reasoning answers nor the cost head")
        ModelShape(hidden=self.hidden, layers=self.layers, heads=self.heads, intermediate=self.intermediate)
        self._check_perturb()
        return self

    def _check_perturb(self) -> None:
        """Known families (those of :data:`comllm.text.perturb.PERTURBATIONS`, alone or joined by ``+``)."""
        for family in self.perturb:
            if not is_perturb_family(family):
                raise FieldError("perturb", family, f"unknown --perturb family ({PERTURB_KNOWN})")


def make_config(**kwargs: Any) -> SFTConfig:
    """Validate options into an :class:`SFTConfig`; errors name the field and the value."""
    try:
        return SFTConfig(**kwargs)
    except ValidationError as err:
        raise SFTError(format_validation_error(err, "sft", "option", unknown_noun="option")) from None

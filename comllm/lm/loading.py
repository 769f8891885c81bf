"""Load and save language models for offloading decisions: the embedded default or any Hugging Face causal LM.

A checkpoint is a ``save_pretrained`` folder (config.json, model.safetensors,
tokenizer files) plus ``comllm.json``, which names the prompt template and the
separator written between prompt and answer. A LoRA checkpoint holds the PEFT
adapter (adapter_config.json, adapter_model.safetensors) instead of the full
weights; its base model is named in the adapter config and loaded first.

``spec`` forms accepted by :func:`load_lm`:

* ``"default"``: the shipped default checkpoint (``comllm/checkpoints/lm-default``);
* a shipped name (:data:`SHIPPED`): the roles ``sft`` (= ``paper6-sharing``: the SFT model of the
  COMLLM recipe, trained on paper-6 states only, robust to rewritten prompts, its prompts in
  ``lean-sharing``), ``comllm`` (= ``comllm-sharing``: the all-action LACS stage from it, its
  rollouts deciding as ``greedy:sharing``) and ``grpo`` (= ``grpo-sharing``: the same stage without
  the look-ahead); ``paper6`` (= ``paper6-robust``), ``comllm-robust`` and ``grpo-robust`` (the same
  recipe on ``lean-v2``, the roles until 2026-12-07 night), ``paper6-fast`` and ``comllm-fast`` (the
  same shape and stages on the narrow value codec, without ``units`` in training) ->
  ``comllm/checkpoints/lm-<folder>``;
  a name of :data:`RETIRED` is refused with the revision that still holds it;
* a local folder written by ``comllm sft`` or ``save_pretrained``;
* a Hugging Face model name (``Qwen/Qwen2.5-0.5B``), loaded through the Auto classes.

Loading reads data only (README, "What is safe"): weights from safetensors
files (``use_safetensors=True``: a folder that has only pickled
``pytorch_model.bin`` / ``adapter_model.bin`` weights is refused) and no code
from the model's folder or repository (``trust_remote_code=False``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from comllm.errors import ComllmError, short
from comllm.lm import model as _model  # noqa: F401  (registers comllm_lm with the Auto classes)
from comllm.limits import MAX_TEMPERATURE
from comllm.sft_config import DECISION_MODES

META_FILE = "comllm.json"
FORMAT_VERSION = 1
#: reference LoRA settings (docs/model.md §9): all attention and MLP projections
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LMError(ComllmError, ValueError):
    """A model that cannot be loaded, or a bad model option."""


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapter settings (the reference's, docs/model.md §9: r=64, alpha=128, dropout 0.05, all projections)."""

    r: int = 64
    alpha: int = 128
    dropout: float = 0.05
    targets: tuple[str, ...] = LORA_TARGETS

    def __post_init__(self) -> None:
        if self.r < 1:
            raise LMError(f"lora r={self.r} must be >= 1")
        if self.alpha <= 0:
            raise LMError(f"lora alpha={self.alpha} must be > 0")
        if not 0 <= self.dropout < 1:
            raise LMError(f"lora dropout={self.dropout} must be in [0, 1)")


@dataclass
class LMMeta:
    """What ``comllm.json`` holds: how prompts and answers are written for this model."""

    template: str
    prompt_suffix: str = ""  # appended to the template's prompt (an answer marker if it has none)
    answer_prefix: str = " "  # written between the prompt and the answer
    format_version: int = FORMAT_VERSION
    base_model: str | None = None  # for adapters: the model they apply to
    training: dict[str, Any] = field(default_factory=dict)
    mode: str = "score"  # how ``llm`` decides with this model unless told (comllm.lm.policy: score | sample | cost)
    cost_temperature: float = 0.0  # cost mode: 0 the least, T > 0 a draw from softmax(-cost / T) (comllm.lm.policy)

    def save(self, directory: str | Path) -> None:
        Path(directory, META_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def for_template(cls, template: str) -> "LMMeta":
        """Meta data for a new model on ``template``: an answer marker after prompts that lack one."""
        from comllm.text import get_template

        t = get_template(template)
        probe = t.render_prompt(_probe_state())
        if probe.rstrip().endswith(("answer:", "决策：", "决策:")):
            return cls(template=template, prompt_suffix="", answer_prefix=" ")
        if t.lang == "zh":
            return cls(template=template, prompt_suffix="\n决策：", answer_prefix="")
        return cls(template=template, prompt_suffix="\nanswer:", answer_prefix=" ")

    @classmethod
    def load(cls, directory: str | Path) -> "LMMeta | None":
        path = Path(directory, META_FILE)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (ValueError, OSError) as err:  # not JSON, not UTF-8, unreadable
            raise LMError(f"{path} is not a valid {META_FILE}: {str(err).splitlines()[0][:160]}") from None
        if not isinstance(data, dict):
            raise LMError(f"{path} is not a JSON object")
        for key in ("template", "prompt_suffix", "answer_prefix", "mode"):
            if key in data and not isinstance(data[key], str):
                raise LMError(f"{path}: field '{key}' = {short(data[key])} is not a string")
        keys = ("template", "prompt_suffix", "answer_prefix", "format_version", "base_model", "training", "mode",
                "cost_temperature")  # fmt: skip
        known = {k: data[k] for k in keys if k in data}
        if "template" not in known:
            raise LMError(f"{path} has no 'template' field")
        if known.get("mode", "score") not in DECISION_MODES:
            raise LMError(f"{path}: field 'mode' = {short(known['mode'])} is not one of {', '.join(DECISION_MODES)}")
        t = known.get("cost_temperature", 0.0)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= MAX_TEMPERATURE:  # refuses nan
            raise LMError(f"{path}: field 'cost_temperature' = {short(t)} is not a number in [0, {MAX_TEMPERATURE:g}]")
        return cls(**known)


@dataclass
class LoadedLM:
    """A model, its tokenizer and its meta data, ready to decide or to train."""

    model: torch.nn.Module
    tokenizer: Any
    meta: LMMeta
    source: str

    @property
    def is_embedded(self) -> bool:
        """True for the value-token model (fast tokenizer path, fixed-length prompts per server count)."""
        from comllm.lm.tokenizer import ComllmTokenizer

        return isinstance(self.tokenizer, ComllmTokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompt_text(self, state: Any) -> str:
        """The prompt of a :class:`~comllm.state.TaskState` as this model reads it."""
        from comllm.text import get_template

        return get_template(self.meta.template).render_prompt(state) + self.meta.prompt_suffix

    def encode_prompts(self, texts: list[str]) -> list[list[int]]:
        """Token ids of prompts (with the model's own leading special tokens, e.g. BOS)."""
        if self.is_embedded:
            return self.tokenizer.encode_batch(texts)
        return self.tokenizer(texts, add_special_tokens=True)["input_ids"]

    def encode_answer(self, answer: str) -> list[int]:
        """Token ids of one answer as the model writes it: prefix + answer + EOS."""
        text = self.meta.answer_prefix + answer
        if self.is_embedded:
            ids = self.tokenizer.encode_text(text)
        else:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return list(ids) + [self.tokenizer.eos_token_id]

    def save(self, directory: str | Path) -> None:
        """``save_pretrained`` of model (or adapter) and tokenizer, plus ``comllm.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        self.meta.save(directory)


def _probe_state() -> Any:
    from comllm.state import ServerView, TaskState

    server = ServerView(type="standard", cpu_ghz=30.0, cycles_per_bit=297.0, active=1, queued_mbit=2.0, history=(1.0,) * 10)
    return TaskState(task_size=3.0, max_delay=10, local_wait=1.0, tx_wait=0.0, upload_rate=1.4, slot_s=0.1,
                     drop_penalty=100.0, device_ghz=2.5, device_cycles_per_bit=297.0, device_mbps=14.0,
                     servers=(server,))  # fmt: skip


def default_checkpoint() -> Path:
    """The shipped default checkpoint folder (inside the installed package)."""
    return Path(str(resources.files("comllm") / "checkpoints" / "lm-default"))


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto``: bf16 on a GPU that supports it, else float32 (bf16 on CPU is slow)."""
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}  # fmt: skip
    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in table:
        raise LMError(f"dtype '{dtype}' is not one of auto, {', '.join(table)}")
    return table[dtype]


def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LMError(f"device '{device}' requested but no CUDA GPU is available")
    return device


def _quantization_config(four_bit: bool, device: str) -> Any:
    if not four_bit:
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise LMError("4-bit loading needs the bitsandbytes package (pip install bitsandbytes)") from None
    if not device.startswith("cuda"):
        raise LMError("4-bit loading needs a CUDA GPU")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True
    )


#: the shipped checkpoints by name (``llm:NAME``): folder names under ``comllm/checkpoints``
SHIPPED: dict[str, str] = {
    "default": "lm-default",
    "sft": "lm-paper6-sharing", "paper6-sharing": "lm-paper6-sharing",
    "comllm": "lm-comllm-sharing", "comllm-sharing": "lm-comllm-sharing",
    "grpo": "lm-grpo-sharing", "grpo-sharing": "lm-grpo-sharing",
    "paper6": "lm-paper6-robust", "paper6-robust": "lm-paper6-robust",
    "comllm-robust": "lm-comllm-robust", "grpo-robust": "lm-grpo-robust",
    "paper6-fast": "lm-paper6-fast", "comllm-fast": "lm-comllm-fast",
}  # fmt: skip

#: the revision whose ``comllm/checkpoints/`` last held the retired checkpoints (README, "Retired checkpoints")
RETIRED_AT = "d4ca221"

#: checkpoints no longer shipped (each below the speed goals of README "Decisions per second"):
#: name -> (folder at :data:`RETIRED_AT`, what it was)
RETIRED: dict[str, tuple[str, str]] = {
    "estimates": ("lm-estimates", "the 2.07 M estimates-compact model, stage A of the previous default"),
    "paper6-set": ("lm-paper6-set", "the 0.89 M paper-6 model reading the action lines as a set"),
    "paper6-cost": ("lm-paper6-cost", "the 0.89 M paper-6 model deciding by its cost head"),
    "comllm-cost": ("lm-comllm-cost", "the 0.89 M all-action stage from paper6-cost"),
}  # fmt: skip


def resolve_spec(spec: str | Path | None) -> str:
    """``None``/``"default"``/a :data:`SHIPPED` name -> the shipped checkpoint; anything else unchanged.

    A local folder of the same name as a shipped one wins only when written as a path (``./comllm``)."""
    if str(spec) in RETIRED:
        folder, what = RETIRED[str(spec)]
        raise LMError(
            f"llm:{spec}: the shipped checkpoint '{spec}' ({what}) was retired; restore it with "
            f"`mkdir -p old && git archive {RETIRED_AT} comllm/checkpoints/{folder} | tar -x -C old` "
            f"and load it by its path: llm:old/comllm/checkpoints/{folder}"
        )
    if spec is None or str(spec) in SHIPPED:
        path = default_checkpoint().parent / SHIPPED[str(spec or "default")]
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            name = str(spec or "default")
            raise LMError(f"the shipped checkpoint '{name}' is missing ({path}); reinstall comllm or train one")
        return str(path)
    return str(spec)


_WEIGHTS = ("model.safetensors", "adapter_model.safetensors", "config.json", "adapter_config.json")
_TOKENIZER = ("word_tokenizer.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")


def _files(folder: Path, names: tuple[str, ...]) -> str:
    """`` (file a, file b)``: the files of this kind in a local checkpoint folder, for an error message."""
    present = [str(folder / n) for n in names if folder.is_dir() and (folder / n).exists()]
    return f" ({', '.join(present)})" if present else ""


def _first_line(err: BaseException) -> str:
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if len(text) <= 200 else text[:197] + "..."


def _checkpoint_meta(source: str, local: Path, template: str | None) -> tuple[LMMeta, bool]:
    """The checkpoint's :class:`LMMeta` (``template`` overriding its template) and whether it is a LoRA adapter.

    Raises :class:`LMError` for a file instead of a folder, a missing local folder, a model with no
    ``comllm.json`` and no ``template``, and an adapter folder without safetensors weights.
    """
    meta = LMMeta.load(local) if local.is_dir() else None
    adapter = local.is_dir() and (local / "adapter_config.json").is_file()
    if local.exists() and not local.is_dir():
        raise LMError(f"model path '{source}' is a file; give the checkpoint folder")
    if not local.exists() and (source.startswith(("/", ".", "~")) or source.count("/") > 1):
        raise LMError(f"cannot load model '{source}': no such folder")
    if template is not None and (meta is None or meta.template != template):
        fresh = LMMeta.for_template(template)
        meta = fresh if meta is None else LMMeta(**{**asdict(meta), "template": template,
                                                     "prompt_suffix": fresh.prompt_suffix,
                                                     "answer_prefix": fresh.answer_prefix})  # fmt: skip
    if meta is None:
        raise LMError(f"model '{source}' has no {META_FILE}; pass a template (e.g. --template paper)")
    if adapter and not (local / "adapter_model.safetensors").is_file():
        raise LMError(f"adapter folder '{source}' has no adapter_model.safetensors (pickled adapter weights are not loaded)")
    return meta, adapter


def _load_weights(source: str, local: Path, adapter: bool, meta: LMMeta, kwargs: dict[str, Any], trainable: bool) -> Any:
    """The model of ``source`` (an adapter on its base model, whose name goes into ``meta.base_model``).

    Any failure other than a :class:`ComllmError` becomes an :class:`LMError` naming the weight files.
    """
    from transformers import AutoModelForCausalLM

    try:
        if adapter:
            from peft import PeftConfig, PeftModel

            base_name = PeftConfig.from_pretrained(source).base_model_name_or_path
            base = AutoModelForCausalLM.from_pretrained(base_name, **kwargs)
            model = PeftModel.from_pretrained(base, source, is_trainable=trainable)
            meta.base_model = base_name
        else:
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except ComllmError:
        raise
    except Exception as err:  # noqa: BLE001  (a corrupt or truncated weights file raises many kinds)
        raise LMError(f"cannot load the weights of model '{source}'{_files(local, _WEIGHTS)}: {_first_line(err)}") from None
    return model


def _load_tokenizer(source: str, local: Path) -> Any:
    """The tokenizer of ``source``, its pad token defaulting to EOS; :class:`LMError` if it fails to load or has no EOS."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except ComllmError:
        raise
    except Exception as err:  # noqa: BLE001  (the tokenizers library raises a bare Exception)
        raise LMError(f"cannot load the tokenizer of model '{source}'{_files(local, _TOKENIZER)}: {_first_line(err)}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise LMError(f"model '{source}' has no EOS token; answers need one")
    return tokenizer


def _add_lora(model: Any, lora: LoraSpec, source: str, adapter: bool, quantized: bool, meta: LMMeta) -> Any:
    """``model`` wrapped in a fresh LoRA adapter on the targets it has; ``meta.base_model`` becomes ``source``.

    Raises :class:`LMError` when ``source`` already holds an adapter or has none of ``lora.targets``.
    """
    if adapter:
        raise LMError(f"'{source}' already holds a LoRA adapter; train it further without --lora")
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in lora.targets if t in present]
    if not targets:
        raise LMError(f"none of the LoRA targets {list(lora.targets)} exist in '{source}'")
    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    cfg = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                     task_type="CAUSAL_LM")  # fmt: skip
    model = get_peft_model(model, cfg)
    meta.base_model = source
    return model


def load_lm(
    spec: str | Path | None = "default",
    *,
    template: str | None = None,
    lora: LoraSpec | None = None,
    four_bit: bool = False,
    dtype: str = "auto",
    device: str = "auto",
    trainable: bool = False,
) -> LoadedLM:
    """Load a model by spec (see module docstring).

    ``template`` overrides the checkpoint's template (required for a model that
    has no ``comllm.json``, e.g. a hub model before SFT). ``lora`` wraps the
    model in a fresh LoRA adapter for training. ``four_bit`` quantizes with
    bitsandbytes (GPU only). ``trainable`` keeps a loaded adapter trainable.
    """
    source = resolve_spec(spec)
    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    local = Path(source)
    meta, adapter = _checkpoint_meta(source, local, template)
    quant = _quantization_config(four_bit, device)
    # data only: safetensors weights, never code shipped with a model (README, "What is safe")
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "use_safetensors": True, "trust_remote_code": False}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device}
    model = _load_weights(source, local, adapter, meta, kwargs, trainable)
    tokenizer = _load_tokenizer(source, local)
    if quant is None:
        model = model.to(device)
    if lora is not None:
        model = _add_lora(model, lora, source, adapter, quant is not None, meta)
    model.train(trainable or lora is not None)
    return LoadedLM(model=model, tokenizer=tokenizer, meta=meta, source=source)

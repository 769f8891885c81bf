"""The embedded default model: a small Llama-style decoder with value-aware number embeddings.

Ids below ``config.vocab_size`` are words with an ordinary embedding table; ids
in the value block (``config.value_codec``, see :mod:`comllm.lm.values`) are
numbers whose embedding is a learned 2-layer projection of deterministic
features of the value. The output head covers only the words: the model reads
numbers and writes words (answers are ``local`` / ``server K``).

Line positions (``config.line_positions = "lines"``, ``comllm sft --line-positions lines``):
the action lines are read as a set. The first ``header_lines`` lines (the task) keep their
positions; every later line but the last (the ``local`` and ``server K`` lines) starts at the
position where the first of them starts, and attends to the header and to itself only, not to
the other action lines, except that the newline ending each action line also attends to the
newlines ending the action lines before it: there the lines are compared (a running minimum,
which also breaks ties between equal lines the way the oracle does, first line first; under
``line_compare = "all"`` every line end sees every other, under ``"none"`` none: each line end then
reads the task and its own line only, so a line's cost-head value is exactly the same whatever
the other lines are and however many there are); the last line (``answer:`` and the answer) starts ``line_span``
positions after that and attends to everything before it. So each action line is encoded alike
wherever it sits, and the answer is at the same distance from every line whatever the number of
servers: the model must find a line by what it says (its name, its numbers), which is what
carries over to server counts it never saw. The model applies the rule itself
(:meth:`ComllmLMForCausalLM.line_inputs`) to the position ids and the mask it is given (the
scoring tree's, generation's), so every path decides alike; ``"absolute"`` (the default) is the
ordinary causal decoder.

The classes are registered with transformers' Auto classes under the model
type ``comllm_lm`` when this module is imported, so ``AutoConfig``,
``AutoModelForCausalLM.from_pretrained``, ``generate`` and TRL work unchanged;
checkpoints are plain ``save_pretrained`` folders (config.json + safetensors).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from comllm.lm.tokenizer import ComllmTokenizer
from comllm.lm.values import ValueCodec, value_features
from comllm.sft_config import LINE_COMPARE, ModelShape, ShapeError  # noqa: F401 (re-exported: one definition each)

MODEL_TYPE = "comllm_lm"


class ComllmLMConfig(LlamaConfig):
    """A :class:`~transformers.LlamaConfig` plus the value block.

    ``vocab_size`` is the word vocabulary (the output head); ``value_codec`` is
    a :class:`ValueCodec` as a dict whose ``base`` equals ``vocab_size``;
    ``value_hidden`` is the width of the value projection's hidden layer;
    ``cost_head`` adds a linear head regressing an action's cost from a hidden
    state (an auxiliary training signal; unused when deciding).
    """

    model_type = MODEL_TYPE
    value_codec: dict | None = None
    value_hidden: int = 128
    cost_head: bool = False
    line_positions: str = "absolute"
    newline_token_id: int | None = None
    header_lines: int = 1
    line_span: int = 24
    line_compare: str = "earlier"


#: the position schemes of :class:`ComllmLMConfig` (``line_positions``)
LINE_POSITIONS = ("absolute", "lines")


def _lines(ids: torch.Tensor, newline: int, pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per token: its line (newlines before it), the row's last line, and whether it is real (not pad)."""
    real = ids != pad
    nl = (ids == newline) & real
    line = torch.cumsum(nl.long(), dim=1) - nl.long()
    return line, nl.long().sum(dim=1, keepdim=True), real


def line_position_ids(
    ids: torch.Tensor, positions: torch.Tensor | None, *, newline: int, pad: int, header_lines: int, line_span: int
) -> torch.Tensor:
    """Position ids ``(B, T)`` under the ``"lines"`` scheme (module docstring), from ``positions``.

    ``positions`` (``(B, T)`` or ``(1, T)``; ``None``: ``0 .. T-1``) are the ordinary ones, which
    may restart or branch (a scoring tree's candidates share positions): only where each line
    starts and the offset inside it are read, so applying the rule twice changes nothing. Pad
    tokens (``pad``) keep their positions; a row without an action line is left as it is.
    """
    b, t = ids.shape
    col = torch.arange(t, device=ids.device).expand(b, t)
    pos = col if positions is None else positions.expand(b, t)
    line, last, real = _lines(ids, newline, pad)
    before = torch.zeros_like(real)
    before[:, 1:] = real[:, :-1]
    after_nl = torch.zeros_like(real)
    after_nl[:, 1:] = (ids[:, :-1] == newline) & real[:, :-1]
    start = real & (after_nl | ~before)
    start_col = torch.cummax(torch.where(start, col, -1), dim=1).values.clamp(min=0)
    offset = pos - pos.gather(1, start_col)
    first = torch.where(start & (line == header_lines), col, t).min(dim=1, keepdim=True).values
    has_lines = first < t
    base = pos.gather(1, first.clamp(max=t - 1))
    out = torch.where(line == last, base + line_span + offset, base + offset)
    out = torch.where(line < header_lines, pos, out)
    return torch.where(real & has_lines, out, pos)


def line_attention(
    ids: torch.Tensor, *, newline: int, pad: int, header_lines: int, compare: str = "earlier"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keep, add)``, each ``(B, T, T)`` bool: the line rule on top of a causal / padding / tree mask.

    The mask used is ``(mask & keep) | add``. ``keep`` is False where query and key sit in two
    different action lines; ``add`` is True where both are the newline ending an action line and
    the key's line comes first (or is the query's): each line end sees the ends before it, where
    the model compares the lines (module docstring). No position is involved, so the rule is the
    same for any number of lines. ``compare="all"``: every line end sees every other (the answer's
    scores are then exactly independent of the line order, but tied lines cannot be told apart:
    ``docs/notes/fresh-models.md``, third round). ``compare="none"``: no line end sees another, so
    the value at a line's end depends on the header and that line alone (the cost mode's reading
    of a line is then the same on any server count: ``docs/notes/fresh-models.md``, seventh round).
    """
    line, last, _ = _lines(ids, newline, pad)
    action = (line >= header_lines) & (line < last)
    end = action & (ids == newline)
    add = end[:, :, None] & end[:, None, :]
    if compare == "none":
        add &= line[:, :, None] == line[:, None, :]
    elif compare != "all":
        add &= line[:, :, None] >= line[:, None, :]
    keep = ~(action[:, :, None] & action[:, None, :] & (line[:, :, None] != line[:, None, :])) | add
    return keep, add


class ValueEmbedding(nn.Module):
    """Input embedding: a table for word ids, ``MLP(features(value))`` for value ids."""

    def __init__(self, config: ComllmLMConfig) -> None:
        super().__init__()
        if not config.value_codec:
            raise ValueError("ComllmLMConfig.value_codec is required (a ValueCodec as a dict)")
        self.codec = ValueCodec.from_dict(config.value_codec)
        if self.codec.base != config.vocab_size:
            raise ValueError(
                f"value_codec base={self.codec.base} must equal vocab_size={config.vocab_size} "
                "(the value block follows the words)"
            )
        self.words = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.value_in = nn.Linear(self.codec.n_features, config.value_hidden)
        self.value_out = nn.Linear(config.value_hidden, config.hidden_size)
        self.act = nn.SiLU()

    @property
    def weight(self) -> torch.Tensor:
        """The word table (what libraries that inspect input embeddings expect)."""
        return self.words.weight

    def embed_values(self, ids: torch.Tensor) -> torch.Tensor:
        """Embeddings of value ids (any shape)."""
        feats = value_features(ids, self.codec).to(self.value_in.weight.dtype)
        return self.value_out(self.act(self.value_in(feats)))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        is_value = input_ids >= self.codec.base
        if not bool(is_value.any()):
            return self.words(input_ids)
        out = self.words(input_ids.masked_fill(is_value, 0)).clone()
        out[is_value] = self.embed_values(input_ids[is_value]).to(out.dtype)
        return out


class ComllmLMForCausalLM(LlamaForCausalLM):
    """Llama decoder whose input embedding is a :class:`ValueEmbedding`."""

    config_class = ComllmLMConfig
    config: ComllmLMConfig
    _tied_weights_keys: dict[str, str] = {}

    def __init__(self, config: ComllmLMConfig) -> None:
        if config.tie_word_embeddings:
            raise ValueError("ComllmLMConfig.tie_word_embeddings must be False (inputs include value ids)")
        super().__init__(config)
        self.model.embed_tokens = ValueEmbedding(config)
        self.cost_head = nn.Linear(config.hidden_size, 1) if config.cost_head else None
        self.post_init()

    def get_input_embeddings(self) -> ValueEmbedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.embed_tokens = value

    def resize_token_embeddings(self, *args: Any, **kwargs: Any) -> nn.Module:
        raise NotImplementedError("the embedded model's vocabulary is fixed by its tokenizer; build a new model")

    def line_inputs(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        boolean: bool = False,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The position ids and attention mask the model uses for ``input_ids`` (whole sequences).

        Unchanged under ``"absolute"``. Under ``"lines"``: :func:`line_position_ids` of
        ``position_ids``, and a ``(B, 1, T, T)`` mask that is ``attention_mask`` (a 4-D additive
        or boolean mask, a 2-D padding mask, or ``None``: causal, pads from the pad id) with
        :func:`line_attention` applied (module docstring); additive, or boolean (True: may
        attend) when ``boolean``.
        """
        cfg = self.config
        if cfg.line_positions == "absolute":
            return position_ids, attention_mask
        if cfg.line_positions != "lines" or cfg.newline_token_id is None:
            raise ValueError(
                f"config.line_positions={cfg.line_positions!r} needs one of {LINE_POSITIONS} and a newline_token_id"
            )
        dev = input_ids.device
        kw = dict(newline=cfg.newline_token_id, pad=cfg.pad_token_id)
        pos = line_position_ids(input_ids, None if position_ids is None else position_ids.to(dev), **kw,
                                header_lines=cfg.header_lines, line_span=cfg.line_span)  # fmt: skip
        rule = line_attention(input_ids, **kw, header_lines=cfg.header_lines, compare=cfg.line_compare)
        keep, add = (m[:, None] for m in rule)  # (B, 1, T, T)
        b, t = input_ids.shape
        if attention_mask is not None and attention_mask.ndim == 4:
            given = attention_mask.to(dev)
            ok = (given if given.dtype == torch.bool else given == 0) & keep | add
        else:
            keys = (input_ids != cfg.pad_token_id) if attention_mask is None else attention_mask.to(dev).bool()
            ok = torch.tril(torch.ones(t, t, dtype=torch.bool, device=dev))[None, None] & keys[:, None, None, :] & keep | add
            ok |= torch.eye(t, dtype=torch.bool, device=dev)[None, None]  # a pad row sees itself (no NaN)
        if boolean:
            return pos, ok
        dtype = self.model.embed_tokens.words.weight.dtype
        return pos, torch.zeros(ok.shape, dtype=dtype, device=dev).masked_fill(~ok, torch.finfo(dtype).min)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> Any:
        past = cache if cache is not None else kwargs.get("past_key_values")
        if self.config.line_positions != "absolute" and input_ids is not None:
            if past is None or past.get_seq_length() == 0:  # a whole sequence: the rule can see its lines
                position_ids, attention_mask = self.line_inputs(input_ids, position_ids, attention_mask)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               cache=cache, inputs_embeds=inputs_embeds, labels=labels, use_cache=use_cache,
                               logits_to_keep=logits_to_keep, **kwargs)  # fmt: skip

    def prepare_inputs_for_generation(self, input_ids: torch.Tensor, *args: Any, **kwargs: Any) -> dict[str, Any]:
        inputs = super().prepare_inputs_for_generation(input_ids, *args, **kwargs)
        mask = kwargs.get("attention_mask")
        if self.config.line_positions != "absolute" and inputs.get("input_ids") is not None:
            # the new tokens' positions under the rule need the whole sequence so far (the mask of a
            # cached step is the ordinary one: new tokens are in the last line, which sees everything)
            std = (mask.long().cumsum(-1) - 1).clamp(min=0) if mask is not None and mask.ndim == 2 else None
            full, _ = self.line_inputs(input_ids, std)
            inputs["position_ids"] = full[:, -inputs["input_ids"].shape[1] :]
        return inputs


def build_model(tokenizer: ComllmTokenizer, shape: ModelShape = ModelShape(), cost_head: bool = False, seed: int = 0) -> ComllmLMForCausalLM:
    """A freshly initialised embedded model for ``tokenizer``."""
    config = ComllmLMConfig(
        vocab_size=tokenizer.n_words,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=shape.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        value_codec=tokenizer.codec.to_dict(),
        value_hidden=shape.value_hidden,
        cost_head=cost_head,
    )
    torch.manual_seed(seed)
    return ComllmLMForCausalLM(config)


def set_line_positions(config: ComllmLMConfig, scheme: str, newline_token_id: int, compare: str | None = None) -> None:
    """Switch ``config`` to the position ``scheme`` (``"absolute"`` | ``"lines"``) and, if given, the
    line ends' ``compare`` rule (``"earlier"`` | ``"all"`` | ``"none"``)."""
    if scheme not in LINE_POSITIONS:
        raise ShapeError("line_positions", scheme, f"is not one of {', '.join(LINE_POSITIONS)}")
    if compare is not None and compare not in LINE_COMPARE:
        raise ShapeError("line_compare", compare, f"is not one of {', '.join(LINE_COMPARE)}")
    config.line_positions = scheme
    config.newline_token_id = newline_token_id
    if compare is not None:
        config.line_compare = compare


AutoConfig.register(MODEL_TYPE, ComllmLMConfig, exist_ok=True)
AutoModelForCausalLM.register(ComllmLMConfig, ComllmLMForCausalLM, exist_ok=True)
AutoTokenizer.register(ComllmLMConfig, tokenizer_class=ComllmTokenizer, exist_ok=True)

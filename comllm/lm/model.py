"""The embedded default model: a small Llama-style decoder with value-aware number embeddings.

Ids below ``config.vocab_size`` are words with an ordinary embedding table; ids
in the value block (``config.value_codec``, see :mod:`comllm.lm.values`) are
numbers whose embedding is a learned 2-layer projection of deterministic
features of the value. The output head covers only the words: the model reads
numbers and writes words (answers are ``local`` / ``server K``).

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
from comllm.sft_config import ModelShape, ShapeError  # noqa: F401 (re-exported: the shape's one definition)

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


AutoConfig.register(MODEL_TYPE, ComllmLMConfig, exist_ok=True)
AutoModelForCausalLM.register(ComllmLMConfig, ComllmLMForCausalLM, exist_ok=True)
AutoTokenizer.register(ComllmLMConfig, tokenizer_class=ComllmTokenizer, exist_ok=True)

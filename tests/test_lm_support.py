"""Shared builders for the language-model tests: record files, tiny embedded models, tiny HF models on disk.

No test lives here; the builders make everything locally (no download).
"""

from __future__ import annotations

from pathlib import Path

import torch

from comllm.data import generate_records, write_records
from comllm.lm.loading import LMMeta, LoadedLM
from comllm.lm.model import ModelShape
from comllm.lm.sft import new_embedded_lm
from comllm.scenario import load_scenario
from comllm.state import TaskState

TINY = ModelShape(hidden=32, layers=1, heads=2, intermediate=64, value_hidden=16)


def make_records(path: Path, n: int, servers: str = "2-3", seed: int = 0, split: str = "sft") -> Path:
    """``n`` oracle-labelled records of the ``small`` scenario with ``servers`` servers, as JSONL."""
    write_records(path, generate_records(load_scenario("small"), n, split=split, template="paper", seed=seed, servers=servers))
    return path


def record_states(path: Path) -> list[TaskState]:
    from comllm.data import read_records

    return [r.task_state() for r in read_records(path)]


def tiny_embedded(template: str, states: list[TaskState], shape: ModelShape = TINY, seed: int = 0) -> LoadedLM:
    """A fresh embedded model (value tokens) on ``template``, vocabulary built from ``states``."""
    return new_embedded_lm(template, states, shape, seed)


def tiny_cost_lm(template: str, states: list[TaskState], shape: ModelShape = TINY, seed: int = 0,
                 head_seed: int = 0) -> LoadedLM:  # fmt: skip
    """:func:`tiny_embedded` under the line scheme (``comllm.lm.model``) with a fresh cost head
    (initialised from ``head_seed``): a model that can decide in cost mode."""
    from comllm.lm.model import set_line_positions

    lm = tiny_embedded(template, states, shape, seed)
    set_line_positions(lm.model.config, "lines", lm.tokenizer.convert_tokens_to_ids("\n"))
    torch.manual_seed(head_seed)
    lm.model.config.cost_head = True
    lm.model.cost_head = torch.nn.Linear(shape.hidden, 1)
    return lm


def tiny_hf_dir(directory: Path, states: list[TaskState], arch: str = "llama") -> Path:
    """A tiny Llama or Qwen2 causal LM with a BPE tokenizer trained here, saved with ``save_pretrained``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from comllm.text import get_template

    corpus = [get_template("estimates").render_prompt(s) + "\nanswer: local" for s in states]
    corpus += [f"answer: server {k}" for k in range(1, 33)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)  # fmt: skip
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    common = dict(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                  pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id, bos_token_id=None,
                  tie_word_embeddings=False)  # fmt: skip
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    else:
        raise ValueError(arch)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


def meta_for(template: str) -> LMMeta:
    return LMMeta.for_template(template)

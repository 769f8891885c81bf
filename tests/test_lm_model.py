"""The embedded model class: value-aware embeddings, Auto-class save/load, generate, tree scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from comllm.lm.model import ComllmLMConfig, ComllmLMForCausalLM, ModelShape, ValueEmbedding
from comllm.lm.scoring import CandidateTree, score_candidates
from comllm.text import get_template
from tests.fixtures.text_states import random_state
from tests.test_lm_support import tiny_embedded

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def states():
    rng = np.random.default_rng(0)
    return [random_state(rng, int(rng.integers(1, 5)), history_len=10) for _ in range(40)]


@pytest.fixture(scope="module")
def lm(states):
    return tiny_embedded("annotated-compact", states)


def test_value_ids_are_embedded_from_their_value(lm) -> None:
    emb: ValueEmbedding = lm.model.get_input_embeddings()
    codec = lm.tokenizer.codec
    a, b, c = (codec.encode(v)[0] for v in (4.19, 4.20, 297.0))
    out = emb(torch.tensor([[a, b, c, 5]]))[0]
    assert out.shape == (4, lm.model.config.hidden_size)
    # nearby values are nearer than far ones; the word id uses the table
    assert torch.dist(out[0], out[1]) < torch.dist(out[0], out[2])
    assert torch.equal(out[3], emb.words.weight[5])
    # a value id far beyond anything in the corpus still embeds (no table row needed)
    assert torch.isfinite(emb(torch.tensor([[codec.end - 1]]))).all()


def test_output_head_covers_words_only(lm, states) -> None:
    ids = torch.tensor([lm.encode_prompts([lm.prompt_text(states[0])])[0]])
    logits = lm.model(ids).logits
    assert logits.shape[-1] == lm.tokenizer.n_words
    assert int(ids.max()) >= lm.tokenizer.n_words  # the prompt did contain value tokens


def test_save_and_reload_with_auto_classes(lm, states, tmp_path: Path) -> None:
    lm.save(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "comllm.json").is_file()
    cfg = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(cfg, ComllmLMConfig) and cfg.value_codec == lm.tokenizer.codec.to_dict()
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(model, ComllmLMForCausalLM)
    text = lm.prompt_text(states[1])
    ids = torch.tensor([tok.encode_text(text)])
    assert ids.tolist()[0] == lm.tokenizer.encode_text(text)
    lm.model.eval()
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, lm.model(ids).logits, atol=1e-6)


def test_generate_runs_unchanged(lm, states) -> None:
    ids = torch.tensor([lm.encode_prompts([lm.prompt_text(states[2])])[0]])
    out = lm.model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    assert out.shape[1] <= ids.shape[1] + 3
    assert int(out[0, ids.shape[1] :].max()) < lm.tokenizer.n_words


def test_tree_scoring_equals_one_sequence_at_a_time(lm, states) -> None:
    lm.model.eval()
    template = get_template(lm.meta.template)
    group = [s for s in states if s.n_servers == 3][:4]
    group.append(group[0].__class__(**{**group[0].__dict__, "task_size": 123.456}))  # another prompt
    prompts = lm.encode_prompts([lm.prompt_text(s) for s in group])
    cands = [lm.encode_answer(a) for a in template.answers(3)]
    fast = score_candidates(lm.model, prompts, cands, lm.tokenizer.pad_token_id)
    with torch.no_grad():
        for i, p in enumerate(prompts):
            for c, cand in enumerate(cands):
                logp = torch.log_softmax(lm.model(torch.tensor([p + cand])).logits[0].float(), -1)
                slow = sum(float(logp[len(p) - 1 + j, t]) for j, t in enumerate(cand))
                assert abs(float(fast[i, c]) - slow) < 1e-4
    mean = score_candidates(lm.model, prompts, cands, lm.tokenizer.pad_token_id, norm="mean")
    lengths = torch.tensor([len(c) for c in cands], dtype=torch.float32)
    assert torch.allclose(mean, fast / lengths, atol=1e-6)


def test_candidate_tree_shares_prefixes() -> None:
    tree = CandidateTree.build([[7, 2], [8, 1, 2], [8, 3, 2]])
    assert tree.tokens == [7, 2, 8, 1, 2, 3, 2]  # the shared " server" token appears once
    assert tree.depth == [1, 2, 1, 2, 3, 2, 3]
    mask = tree.ancestor_mask()
    assert mask[4].tolist() == [False, False, True, True, True, False, False]
    with pytest.raises(ValueError):
        CandidateTree.build([[1], []])


def test_bad_configs_are_refused(lm) -> None:
    cfg = lm.model.config.to_dict()
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        ComllmLMForCausalLM(ComllmLMConfig(**{**cfg, "tie_word_embeddings": True}))
    with pytest.raises(ValueError, match="vocab_size"):
        ComllmLMForCausalLM(ComllmLMConfig(**{**cfg, "vocab_size": cfg["vocab_size"] + 1}))
    with pytest.raises(ValueError, match="heads"):
        ModelShape(hidden=30, heads=4)

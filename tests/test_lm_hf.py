"""Any Hugging Face causal LM: a tiny Llama / Qwen2 saved locally, loaded by path, with and without LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from comllm.lm.loading import LMError, LoraSpec, load_lm
from comllm.lm.policy import DecodeOptions, LMPolicy
from comllm.lm.scoring import score_candidates
from comllm.state import StateBatch
from tests.fixtures.text_states import random_state
from tests.test_lm_support import tiny_hf_dir

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def states():
    rng = np.random.default_rng(3)
    return [random_state(rng, 3, history_len=10) for _ in range(12)]


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def hf_dir(request, states, tmp_path_factory) -> Path:
    return tiny_hf_dir(tmp_path_factory.mktemp(request.param), states, arch=request.param)


def test_load_by_path_needs_a_template(hf_dir: Path) -> None:
    with pytest.raises(LMError, match="template"):
        load_lm(hf_dir)
    lm = load_lm(hf_dir, template="estimates")
    assert lm.meta.template == "estimates" and lm.meta.prompt_suffix == "\nanswer:"
    assert not lm.is_embedded
    assert next(lm.model.parameters()).dtype == torch.float32  # bf16 only where a GPU supports it


def test_policy_on_a_plain_hf_model_both_modes(hf_dir: Path, states) -> None:
    lm = load_lm(hf_dir, template="estimates")
    batch = StateBatch.from_states(states)
    score = LMPolicy(lm, DecodeOptions(mode="score", batch=5)).act(batch)
    assert ((score >= 0) & (score <= 3)).all()
    sample = LMPolicy(lm, DecodeOptions(mode="sample", max_new_tokens=4))
    acts = sample.act(batch)
    assert ((acts >= 0) & (acts <= 3)).all()
    assert sample.stats["decisions"] == len(states)
    assert 0 <= sample.stats["invalid"] <= len(states)


def test_tree_scoring_on_hf_model_with_padding(hf_dir: Path, states) -> None:
    lm = load_lm(hf_dir, template="estimates")
    lm.model.eval()
    texts = [lm.prompt_text(s) for s in states[:3]]
    prompts = lm.encode_prompts(texts)
    assert len({len(p) for p in prompts}) > 1  # digit tokens: prompts differ in length (left padding used)
    cands = [lm.encode_answer(a) for a in ("local", "server 1", "server 2", "server 3")]
    fast = score_candidates(lm.model, prompts, cands, lm.tokenizer.pad_token_id)
    with torch.no_grad():
        for i, p in enumerate(prompts):
            for c, cand in enumerate(cands):
                logp = torch.log_softmax(lm.model(torch.tensor([p + cand])).logits[0].float(), -1)
                slow = sum(float(logp[len(p) - 1 + j, t]) for j, t in enumerate(cand))
                assert abs(float(fast[i, c]) - slow) < 1e-4


def test_lora_adapter_trains_saves_and_reloads(hf_dir: Path, states, tmp_path: Path) -> None:
    lm = load_lm(hf_dir, template="estimates", lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    trainable = [n for n, p in lm.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # one optimizer step changes only the adapter
    frozen = {n: p.detach().clone() for n, p in lm.model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in lm.model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.tensor([lm.encode_prompts([lm.prompt_text(states[0])])[0] + lm.encode_answer("server 2")])
    loss = lm.model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in lm.model.named_parameters() if n in frozen)
    lm.save(tmp_path)
    assert (tmp_path / "adapter_config.json").is_file() and not (tmp_path / "model.safetensors").exists()
    assert json.loads((tmp_path / "comllm.json").read_text())["base_model"] == str(hf_dir)
    again = load_lm(tmp_path)
    assert again.meta.template == "estimates"
    lm.model.eval()
    again.model.eval()
    with torch.no_grad():
        assert torch.allclose(again.model(ids).logits, lm.model(ids).logits, atol=1e-5)
    with pytest.raises(LMError, match="already holds a LoRA adapter"):
        load_lm(tmp_path, lora=LoraSpec(r=4, alpha=8))


def test_bad_model_options(hf_dir: Path) -> None:
    with pytest.raises(LMError, match="4-bit"):
        load_lm(hf_dir, template="estimates", four_bit=True, device="cpu")
    with pytest.raises(LMError, match="dtype"):
        load_lm(hf_dir, template="estimates", dtype="int3")
    with pytest.raises(LMError, match="r=0"):
        LoraSpec(r=0)
    with pytest.raises(LMError, match="cannot load"):
        load_lm(hf_dir / "missing", template="estimates")

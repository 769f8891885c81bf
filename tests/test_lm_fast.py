"""The fast decision path (comllm.lm.fast) against the reference path, and the lean template it is made for."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from comllm.lm.fast import FastScorer, supports_fast
from comllm.lm.policy import DecodeOptions, LMPolicy, make_lm_policy
from comllm.lm.scoring import candidate_logprobs
from comllm.policies.base import PolicyError
from comllm.sft_config import ModelShape
from comllm.text import get_template
from comllm.text.perturb import PERTURBATIONS, perturbed_template
from tests.fixtures.text_states import random_state
from tests.test_lm_support import tiny_embedded

SHAPE = ModelShape(hidden=32, layers=2, heads=2, intermediate=64, value_hidden=16)


@pytest.fixture(scope="module")
def states():
    rng = np.random.default_rng(11)
    return [random_state(rng, int(rng.integers(2, 8)), history_len=10) for _ in range(200)]


@pytest.fixture(scope="module")
def lm(states):
    return tiny_embedded("lean-v2", states, SHAPE, seed=3)


def test_fast_path_gives_the_reference_actions_and_scores_on_200_states(lm, states):
    ref = LMPolicy(lm, DecodeOptions(fast=False, batch=16))
    fast = LMPolicy(lm, DecodeOptions(batch=16))
    assert fast.fast_scorer is not None and ref.fast_scorer is None
    np.testing.assert_array_equal(fast.decide(states), ref.decide(states))
    six = [s for s in states if s.n_servers == 6][:20]
    np.testing.assert_allclose(fast.scores(six).numpy(), ref.scores(six).numpy(), atol=1e-4)


def test_fast_path_handles_left_padding_like_the_reference(lm, states):
    pol = LMPolicy(lm, DecodeOptions())
    same_n = [s for s in states if s.n_servers == 4][:4]
    prompts = pol.prompt_ids(same_n)
    prompts[1] = prompts[1][3:]  # a shorter prompt: the batch is left-padded
    answers = pol.answer_ids(4)
    with torch.no_grad():
        ref = candidate_logprobs(lm.model, prompts, answers, lm.tokenizer.pad_token_id)
    got = FastScorer(lm.model).logprobs(prompts, answers, lm.tokenizer.pad_token_id)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-4)


def test_fast_path_follows_in_place_weight_updates(lm, states):
    fs = FastScorer(lm.model)
    pol = LMPolicy(lm, DecodeOptions())
    prompts, answers = pol.prompt_ids(states[:3]), pol.answer_ids(states[0].n_servers)
    prompts = [p for p, s in zip(prompts, states[:3]) if s.n_servers == states[0].n_servers]
    before = fs.logprobs(prompts, answers, 0)
    head = lm.model.lm_head.weight
    saved = head.detach().clone()
    with torch.no_grad():
        head.add_(torch.randn_like(head))
    try:
        after = fs.logprobs(prompts, answers, 0)
        with torch.no_grad():
            ref = candidate_logprobs(lm.model, prompts, answers, 0)
        assert not torch.allclose(before, after)
        np.testing.assert_allclose(after.numpy(), ref.numpy(), atol=1e-4)
    finally:
        with torch.no_grad():
            head.copy_(saved)


def test_fast_option_is_parsed_and_checked():
    with pytest.raises(PolicyError, match="llm option fast='maybe' is not true or false"):
        make_lm_policy("fast=maybe")
    assert not supports_fast(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="embedded model only"):
        FastScorer(torch.nn.Linear(2, 2))


def test_lean_template_is_short_and_every_perturbation_applies(states):
    lean = get_template("lean-v2")
    six = next(s for s in states if s.n_servers == 6)
    text = lean.render_prompt(six)
    lines = text.splitlines()
    assert len(lines) == 1 + 7 + 1 and lines[-1] == "answer:"
    assert lines[lean.action_line_start].startswith("local: est ")
    assert lines[lean.action_line_start + 3].startswith("server 3: est ")
    assert "|" not in text and "Mbit" not in text and "GHz" not in text
    assert lean.fresh_view and "arrivals" in lines[0] and "incoming" in lines[2]
    for name in PERTURBATIONS:
        assert perturbed_template(name, 4, base=lean).render_prompt(six).endswith("answer:")


def test_lean_prompts_tokenize_to_few_tokens(lm, states):
    six = [s for s in states if s.n_servers == 6][:5]
    lengths = {len(p) for p in LMPolicy(lm, DecodeOptions()).prompt_ids(six)}
    assert lengths == {88}  # every number is one value token: the length depends on N only


def test_bf16_matrix_products_stay_close_to_float32(lm, states):
    """``matmul=bf16``: the decoder's products in bfloat16, the rest in float32; scores within bf16 rounding."""
    fp32 = LMPolicy(lm, DecodeOptions(batch=16))
    bf16 = LMPolicy(lm, DecodeOptions(batch=16, matmul="bf16"))
    assert bf16.fast_scorer.matmul_dtype is torch.bfloat16 and bf16.fast_scorer.layers[0][1].dtype is torch.bfloat16
    six = [s for s in states if s.n_servers == 6][:20]
    a, b = fp32.scores(six).numpy(), bf16.scores(six).numpy()
    assert b.dtype == np.float32 and np.isfinite(b).all()
    np.testing.assert_allclose(b, a, atol=0.05 * max(1.0, float(np.abs(a).max())))
    assert (fp32.decide(states) == bf16.decide(states)).mean() >= 0.9
    with pytest.raises(PolicyError, match="matmul='fp16'"):
        DecodeOptions(matmul="fp16")
    with pytest.raises(ValueError, match="matmul_dtype"):
        FastScorer(lm.model, matmul_dtype=torch.float16)

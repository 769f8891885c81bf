"""Zero-shot topology (a model trained on few servers scoring more) and the open-loop oracle choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from comllm.data import generate_records
from comllm.errors import ComllmError
from comllm.evaluate.open_loop import evaluate_open_loop
from comllm.lm.policy import DecodeOptions, LMPolicy
from comllm.lm.values import value_features
from comllm.policies import make_policy
from comllm.scenario import load_scenario
from comllm.sft_config import ModelShape
from tests.fixtures.text_states import random_state
from tests.test_lm_support import tiny_embedded


def test_a_model_built_on_three_servers_scores_five_and_unseen_magnitudes_stay_finite():
    rng = np.random.default_rng(8)
    lm = tiny_embedded("lean-v2", [random_state(rng, 3, history_len=10) for _ in range(20)],
                       ModelShape(hidden=32, layers=1, heads=2, intermediate=64, value_hidden=16))  # fmt: skip
    five = [random_state(rng, 5, history_len=10) for _ in range(16)]
    pol = LMPolicy(lm, DecodeOptions())
    actions = pol.decide(five)
    assert actions.shape == (16,) and ((actions >= 0) & (actions <= 5)).all()
    assert torch.isfinite(pol.scores(five)).all()
    codec = lm.tokenizer.codec
    ids = torch.tensor([codec.encode(v)[0] for v in (0.0, 3.5, 150.0, 1999.99, 1e9)])
    feats = value_features(ids, codec)
    assert torch.isfinite(feats).all() and feats.abs().max() < 10


def test_open_loop_scores_against_the_fresh_views_oracle_on_request():
    states = [r.task_state() for r in generate_records(load_scenario("paper-6"), 300, "test", "lean-v2", 4)]
    gi = evaluate_open_loop(states, make_policy("greedy:incoming"), oracle="incoming")
    assert gi["accuracy"] == 1.0 and gi["perf_ratio"] == pytest.approx(1.0) and gi["oracle"] == "incoming"
    paper = evaluate_open_loop(states, make_policy("greedy"), oracle="paper")
    assert paper["accuracy"] == 1.0
    assert evaluate_open_loop(states, make_policy("greedy"), oracle="incoming")["perf_ratio"] < 1.0
    gs = evaluate_open_loop(states, make_policy("greedy:sharing"), oracle="sharing")
    assert gs["accuracy"] == 1.0 and gs["oracle"] == "sharing"
    assert evaluate_open_loop(states, make_policy("greedy:incoming"), oracle="sharing")["perf_ratio"] < 1.0
    with pytest.raises(ComllmError, match="oracle 'best' must be one of paper, incoming, sharing"):
        evaluate_open_loop(states, make_policy("greedy"), oracle="best")

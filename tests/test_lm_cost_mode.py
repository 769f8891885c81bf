"""``llm:...,mode=cost``: decisions read from the cost head at each action line's end (comllm.lm.policy)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from comllm.cli import app
from comllm.lm.loading import load_lm
from comllm.lm.policy import DecodeOptions, LMPolicy
from comllm.lm.scoring import line_costs
from comllm.policies.base import PolicyError
from comllm.sft_config import ModelShape
from comllm.text import get_template
from tests.fixtures.text_states import random_state
from tests.test_lm_support import make_records, record_states, tiny_cost_lm, tiny_embedded

SHAPE = ModelShape(hidden=32, layers=2, heads=2, intermediate=64, value_hidden=16)


@pytest.fixture(scope="module")
def states() -> list:
    rng = np.random.default_rng(9)
    return [random_state(rng, int(rng.integers(2, 7)), history_len=10) for _ in range(200)]


@pytest.fixture(scope="module")
def lm(states):
    return tiny_cost_lm("lean-v2", states, SHAPE, seed=3, head_seed=0)


def test_the_fast_path_gives_the_reference_actions_and_costs_on_200_states(lm, states) -> None:
    ref = LMPolicy(lm, DecodeOptions(mode="cost", fast=False, batch=16))
    fast = LMPolicy(lm, DecodeOptions(mode="cost", batch=16))
    assert fast.fast_scorer is not None and ref.fast_scorer is None
    actions = fast.decide(states)
    np.testing.assert_array_equal(actions, ref.decide(states))
    assert len(set(actions.tolist())) > 1  # a random head still spreads its choices: the test compares something
    four = [s for s in states if s.n_servers == 4]
    np.testing.assert_allclose(fast.line_costs(four).numpy(), ref.line_costs(four).numpy(), atol=1e-4)
    assert fast.stateless and fast.stats["invalid"] == 0


def test_the_action_is_the_least_cost_of_its_own_line(lm, states) -> None:
    pol = LMPolicy(lm, DecodeOptions(mode="cost"))
    five = [s for s in states if s.n_servers == 5][:8]
    prompts = pol.prompt_ids(five)
    ends = torch.from_numpy(np.stack([pol.action_ends(p, 5) for p in prompts]))
    newline = lm.tokenizer.convert_tokens_to_ids("\n")
    for p, e in zip(prompts, ends.tolist()):
        assert all(p[k] == newline for k in e) and e == sorted(e)  # canonical order: local, server 1, ..., 5
    with torch.no_grad():
        want = line_costs(lm.model, prompts, ends, 0)
    np.testing.assert_array_equal(pol.decide(five), want.argmin(dim=1).numpy())


def test_shuffled_server_lines_are_read_by_their_names(lm, states) -> None:
    lm.model.config.line_compare = "all"  # the lines are then a set: each action's cost must not move
    try:
        pol = LMPolicy(lm, DecodeOptions(mode="cost"))
        five = [s for s in states if s.n_servers == 5][:4]
        want = pol.line_costs(five)
        base = get_template("lean-v2")
        pol.template = base.with_style(dataclasses.replace(base.style, server_order=(3, 0, 4, 2, 1)))
        prompts = pol.prompt_ids(five)
        e = pol.action_ends(prompts[0], 5)
        tokens = lm.tokenizer.convert_ids_to_tokens
        for a in range(1, 6):  # the line that action a's end closes starts "server a"
            start = max(k for k in e if k < e[a]) + 1
            assert [tokens(t) for t in prompts[0][start : start + 2]] == ["server", f" {a}"]
        np.testing.assert_allclose(pol.line_costs(five).numpy(), want.numpy(), atol=1e-4)
    finally:
        lm.model.config.line_compare = "earlier"


def test_under_line_compare_none_a_lines_cost_does_not_depend_on_the_other_lines(lm, states) -> None:
    """The zero-shot property by construction: a server line removed, every other line's cost is unchanged."""
    lm.model.config.line_compare = "none"
    try:
        pol = LMPolicy(lm, DecodeOptions(mode="cost", fast=False))
        five = [s for s in states if s.n_servers == 5][:4]
        prompts = pol.prompt_ids(five)
        ends = [pol.action_ends(p, 5).tolist() for p in prompts]
        pad = lm.tokenizer.pad_token_id
        with torch.no_grad():
            full = line_costs(lm.model, prompts, torch.tensor(ends), pad)
            cut, cut_ends = [], []  # server 3's line (after the end of server 2's, up to its own end) removed
            for p, e in zip(prompts, ends):
                width = e[3] - e[2]
                cut.append(p[: e[2] + 1] + p[e[3] + 1 :])
                cut_ends.append(e[:3] + [k - width for k in e[4:]])
            fewer = line_costs(lm.model, cut, torch.tensor(cut_ends), pad)
        keep = [0, 1, 2, 4, 5]
        np.testing.assert_allclose(fewer.numpy(), full[:, keep].numpy(), atol=1e-5)
        lm.model.config.line_compare = "earlier"  # the default rule: a line end reads the ends before it
        with torch.no_grad():
            moved = line_costs(lm.model, cut, torch.tensor(cut_ends), pad) - line_costs(lm.model, prompts, torch.tensor(ends), pad)[:, keep]
        assert moved[:, 3:].abs().max() > 1e-4  # so the check above tests something
    finally:
        lm.model.config.line_compare = "earlier"


def test_cost_mode_names_what_it_needs(lm, states) -> None:
    plain = tiny_embedded("lean-v2", states[:20], SHAPE, seed=1)
    with pytest.raises(PolicyError, match="cost head"):
        LMPolicy(plain, DecodeOptions(mode="cost"))
    paper = tiny_embedded("paper-v2", states[:20], SHAPE, seed=1)
    paper.model.cost_head = torch.nn.Linear(SHAPE.hidden, 1)
    with pytest.raises(PolicyError, match="one line per action"):
        LMPolicy(paper, DecodeOptions(mode="cost")).decide(states[:2])
    with pytest.raises(PolicyError, match="mode='guess'"):
        DecodeOptions(mode="guess")


def test_a_model_trained_on_3_servers_decides_5_by_its_cost_head(tmp_path: Path) -> None:
    data = make_records(tmp_path / "train.jsonl", 80, servers="3", seed=2)
    out = tmp_path / "m"
    res = CliRunner().invoke(app, ["sft", "--data", str(data), "--template", "lean-v2", "--steps", "4", "--batch-size", "8",
                                   "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "64", "--no-progress",
                                   "--threads", "1", "--out", str(out), "--line-positions", "lines", "--cost-head", "1.0"])  # fmt: skip
    assert res.exit_code == 0, res.output
    five = record_states(make_records(tmp_path / "five.jsonl", 20, servers="5", seed=3))
    pol = LMPolicy(load_lm(out), DecodeOptions(mode="cost"))
    costs = pol.line_costs(five)
    assert costs.shape == (20, 6) and torch.isfinite(costs).all()
    actions = pol.decide(five)
    assert ((0 <= actions) & (actions <= 5)).all()


def test_a_checkpoint_names_its_decision_mode_and_a_spec_overrides_it(lm, tmp_path: Path) -> None:
    import json

    from comllm.lm.loading import LMError
    from comllm.policies import make_policy

    lm.meta.mode = "cost"
    try:
        lm.save(tmp_path / "m")
    finally:
        lm.meta.mode = "score"
    assert make_policy(f"llm:{tmp_path / 'm'}").options.mode == "cost"
    assert make_policy(f"llm:{tmp_path / 'm'},mode=score").options.mode == "score"
    meta = json.loads((tmp_path / "m" / "comllm.json").read_text())
    (tmp_path / "m" / "comllm.json").write_text(json.dumps({**meta, "mode": "guess"}))
    with pytest.raises((LMError, PolicyError), match="field 'mode' = 'guess'"):
        load_lm(tmp_path / "m")


def test_cost_temperature_draws_from_the_softmax_of_the_costs_and_zero_is_the_least(lm) -> None:
    costs = torch.tensor([[0.30, 0.10, 0.10, 0.50], [1.0, 0.0, 2.0, 0.0]])
    least = LMPolicy(lm, DecodeOptions(mode="cost"))
    np.testing.assert_array_equal(least._least_cost(costs), [1, 1])  # the lowest action on a tie
    assert least.stateless
    pol = LMPolicy(lm, DecodeOptions(mode="cost", cost_temperature=0.1), seed=5)
    assert not pol.stateless  # draws: the seeds' episodes cannot share one forward pass
    draws = np.stack([pol._least_cost(costs) for _ in range(20_000)])
    want = torch.softmax(-costs / 0.1, dim=1).numpy()
    for row in range(2):
        freq = np.bincount(draws[:, row], minlength=4) / len(draws)
        np.testing.assert_allclose(freq, want[row], atol=0.012)
    again = LMPolicy(lm, DecodeOptions(mode="cost", cost_temperature=0.1), seed=5)
    np.testing.assert_array_equal(again._least_cost(costs), draws[0])  # the policy's seed draws them


def test_cost_temperature_is_checked_and_read_from_the_spec(lm, tmp_path: Path) -> None:
    from comllm.policies import make_policy

    for bad in (-0.1, float("nan"), 1e9):
        with pytest.raises(PolicyError, match="llm option cost_temperature="):
            DecodeOptions(mode="cost", cost_temperature=bad)
    lm.save(tmp_path / "m")
    pol = make_policy(f"llm:{tmp_path / 'm'},mode=cost,cost_temperature=0.02")
    assert pol.options.cost_temperature == 0.02
    with pytest.raises(PolicyError, match="cost_temperature='warm' is not a valid float"):
        make_policy(f"llm:{tmp_path / 'm'},cost_temperature=warm")


def test_a_checkpoint_names_its_cost_temperature_and_a_spec_overrides_it(lm, tmp_path: Path) -> None:
    import json

    from comllm.lm.loading import LMError
    from comllm.policies import make_policy

    lm.meta.mode, lm.meta.cost_temperature = "cost", 0.03
    try:
        lm.save(tmp_path / "m")
    finally:
        lm.meta.mode, lm.meta.cost_temperature = "score", 0.0
    assert make_policy(f"llm:{tmp_path / 'm'}").options.cost_temperature == 0.0  # no scenario: open loop
    from comllm.scenario import load_scenario

    seq, sim = (load_scenario("paper-6", {"decisions": d}) for d in ("sequential", "simultaneous"))
    assert make_policy(f"llm:{tmp_path / 'm'}", sim).options.cost_temperature == 0.03
    assert make_policy(f"llm:{tmp_path / 'm'},cost_temperature=0", sim).options.cost_temperature == 0.0
    assert make_policy(f"llm:{tmp_path / 'm'}", seq).options.cost_temperature == 0.0  # each task sees the earlier ones
    assert make_policy(f"llm:{tmp_path / 'm'},cost_temperature=0.5", seq).options.cost_temperature == 0.5
    meta = json.loads((tmp_path / "m" / "comllm.json").read_text())
    for bad in ("hot", -1, True):
        (tmp_path / "m" / "comllm.json").write_text(json.dumps({**meta, "cost_temperature": bad}))
        with pytest.raises((LMError, PolicyError), match="field 'cost_temperature' = "):
            load_lm(tmp_path / "m")

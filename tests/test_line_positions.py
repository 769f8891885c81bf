"""The embedded model's ``"lines"`` position scheme (comllm.lm.model): the rule, and every path that uses it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from comllm.cli import app
from comllm.lm.fast import FastScorer
from comllm.lm.loading import load_lm
from comllm.lm.model import line_attention, line_position_ids, set_line_positions
from comllm.lm.policy import DecodeOptions, LMPolicy
from comllm.lm.scoring import candidate_logprobs
from comllm.lm.sft import make_config
from comllm.sft_config import ModelShape, SFTError
from tests.fixtures.text_states import random_state
from tests.test_lm_support import make_records, tiny_embedded

SHAPE = ModelShape(hidden=32, layers=2, heads=2, intermediate=64, value_hidden=16)
NL, PAD = 6, 0


def _rule(ids: list[list[int]], positions: torch.Tensor | None = None, span: int = 10) -> torch.Tensor:
    return line_position_ids(torch.tensor(ids), positions, newline=NL, pad=PAD, header_lines=1, line_span=span)


def test_every_action_line_starts_where_the_first_does_and_the_last_line_after_the_span() -> None:
    # header "9 9 \n" | line "5 5 5 \n" | line "7 \n" | last "8 8"
    ids = [[9, 9, NL, 5, 5, 5, NL, 7, NL, 8, 8]]
    assert _rule(ids).tolist() == [[0, 1, 2, 3, 4, 5, 6, 3, 4, 13, 14]]
    # the same answer sits at the same distance from each action line whatever their number
    more = [[9, 9, NL, 5, 5, 5, NL, 7, NL, 7, NL, 7, 7, NL, 8, 8]]
    assert _rule(more)[0, -2:].tolist() == [13, 14]


def test_left_pads_keep_their_positions_and_the_rule_is_idempotent() -> None:
    ids = [[PAD, PAD, 9, NL, 5, NL, 5, 5, NL, 8], [9, 9, 9, NL, 5, NL, 5, 5, NL, 8]]
    std = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5, 6, 7], list(range(10))])
    once = line_position_ids(torch.tensor(ids), std, newline=NL, pad=PAD, header_lines=1, line_span=10)
    assert once.tolist() == [[0, 0, 0, 1, 2, 3, 2, 3, 4, 12], [0, 1, 2, 3, 4, 5, 4, 5, 6, 14]]
    twice = line_position_ids(torch.tensor(ids), once, newline=NL, pad=PAD, header_lines=1, line_span=10)
    assert torch.equal(once, twice)


def test_branching_positions_of_a_scoring_tree_keep_their_offsets() -> None:
    # prompt "9 \n 5 \n 8" then two tree tokens that both sit at depth 1 (position 5 in the ordinary scheme)
    ids = [[9, NL, 5, NL, 8, 11, 12]]
    std = torch.tensor([[0, 1, 2, 3, 4, 5, 5]])
    assert _rule(ids, std).tolist() == [[0, 1, 2, 3, 12, 13, 13]]


def test_a_text_without_action_lines_keeps_the_ordinary_positions() -> None:
    assert _rule([[9, 9, 8]]).tolist() == [[0, 1, 2]]


@pytest.fixture(scope="module")
def states() -> list:
    rng = np.random.default_rng(5)
    return [random_state(rng, int(rng.integers(2, 7)), history_len=10) for _ in range(200)]


@pytest.fixture(scope="module")
def lm(states):
    lm = tiny_embedded("lean-v2", states, SHAPE, seed=4)
    set_line_positions(lm.model.config, "lines", lm.tokenizer.convert_tokens_to_ids("\n"))
    return lm


def test_the_fast_path_gives_the_reference_actions_and_scores_under_line_positions(lm, states) -> None:
    ref = LMPolicy(lm, DecodeOptions(fast=False, batch=16))
    fast = LMPolicy(lm, DecodeOptions(batch=16))
    assert fast.fast_scorer is not None
    np.testing.assert_array_equal(fast.decide(states), ref.decide(states))
    four = [s for s in states if s.n_servers == 4][:6]
    np.testing.assert_allclose(fast.scores(four).numpy(), ref.scores(four).numpy(), atol=1e-4)
    prompts = fast.prompt_ids(four)
    prompts[1] = prompts[1][3:]  # left padding
    answers = fast.answer_ids(4)
    with torch.no_grad():
        want = candidate_logprobs(lm.model, prompts, answers, 0)
    np.testing.assert_allclose(FastScorer(lm.model).logprobs(prompts, answers, 0).numpy(), want.numpy(), atol=1e-4)


def test_the_scheme_changes_the_scores_and_absolute_gives_the_old_ones_back(lm, states) -> None:
    four = [s for s in states if s.n_servers == 4][:4]
    lines = LMPolicy(lm, DecodeOptions()).scores(four)
    lm.model.config.line_positions = "absolute"
    try:
        plain = LMPolicy(lm, DecodeOptions()).scores(four)
        ref = LMPolicy(lm, DecodeOptions(fast=False)).scores(four)
    finally:
        lm.model.config.line_positions = "lines"
    np.testing.assert_allclose(plain.numpy(), ref.numpy(), atol=1e-4)
    assert float((lines - plain).abs().max()) > 1e-5  # an untrained model barely reads positions, but it does


def test_generation_with_a_cache_uses_the_positions_of_a_whole_sequence_pass(lm, states) -> None:
    pol = LMPolicy(lm, DecodeOptions())
    prompts = pol.prompt_ids([s for s in states if s.n_servers == 3][:2])
    prompts[0] = prompts[0][2:]  # left padding in the batch
    t = max(len(p) for p in prompts)
    ids = torch.zeros((2, t), dtype=torch.long)
    mask = torch.zeros((2, t), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, t - len(p) :], mask[i, t - len(p) :] = torch.tensor(p), 1
    with torch.no_grad():
        out = lm.model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=4,
                                min_new_tokens=4, output_scores=True, return_dict_in_generate=True,
                                pad_token_id=0, eos_token_id=None)  # fmt: skip
        seq = out.sequences
        full_mask = torch.cat([mask, torch.ones((2, seq.shape[1] - t), dtype=torch.long)], dim=1)
        std = (full_mask.cumsum(-1) - 1).clamp(min=0)
        logits = lm.model(input_ids=seq, attention_mask=full_mask, position_ids=std, use_cache=False).logits
    for k, step in enumerate(out.scores):  # the cached step k scored what the whole pass scores at t - 1 + k
        np.testing.assert_allclose(step.numpy(), logits[:, t - 1 + k].numpy(), atol=1e-4)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    return make_records(tmp_path_factory.mktemp("lines") / "train.jsonl", 120, servers="2-4", seed=8)


def test_sft_switches_a_checkpoint_to_line_positions_and_the_model_keeps_it(records: Path, tmp_path: Path) -> None:
    out = tmp_path / "lines"
    args = ["sft", "--data", str(records), "--template", "lean-v2", "--steps", "3", "--batch-size", "8",
            "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "64", "--no-progress", "--threads", "1"]  # fmt: skip
    res = CliRunner().invoke(app, [*args, "--out", str(out), "--line-positions", "lines", "--cost-head", "1.0"])
    assert res.exit_code == 0, res.output
    config = json.loads((out / "config.json").read_text())
    assert config["line_positions"] == "lines" and config["newline_token_id"] == 6
    assert load_lm(out).model.config.line_positions == "lines"
    res = CliRunner().invoke(app, ["sft", "--model", str(out), "--data", str(records), "--steps", "1",
                                   "--batch-size", "8", "--no-progress", "--threads", "1", "--out", str(tmp_path / "abs"),
                                   "--line-positions", "absolute"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "abs" / "config.json").read_text())["line_positions"] == "absolute"


def test_line_positions_refuse_line_gaps(records: Path, tmp_path: Path) -> None:
    with pytest.raises(SFTError, match="line_gaps"):
        make_config(template="lean-v2", data=[str(records)], out=str(tmp_path / "o"), line_gaps=4, line_positions="lines")


def test_action_lines_attend_to_the_header_and_themselves_only() -> None:
    ids = torch.tensor([[9, NL, 5, 5, NL, 7, NL, 8]])
    keep, add = (m[0] for m in line_attention(ids, newline=NL, pad=PAD, header_lines=1))
    assert not keep[5, 2] and not keep[2, 5] and not keep[5, 3]  # two action lines do not see each other ...
    assert add[6, 4] and add[4, 4] and add[6, 6] and add.sum() == 3  # ... but a line end sees the ends before it
    assert not add[4, 6]
    assert keep[5, 0] and keep[5, 1] and keep[3, 2] and keep[5, 5]  # the header and the own line
    assert keep[7].all() and not add[7].any()  # the last line sees everything (the causal mask does the rest)


def test_line_compare_all_lets_every_line_end_see_every_other() -> None:
    ids = torch.tensor([[9, NL, 5, 5, NL, 7, NL, 8]])
    _, add = line_attention(ids, newline=NL, pad=PAD, header_lines=1, compare="all")
    assert add[0, 4, 6] and add[0, 6, 4] and add[0].sum() == 4


def test_line_compare_none_lets_no_line_end_see_another() -> None:
    ids = torch.tensor([[9, NL, 5, 5, NL, 7, NL, 8]])
    keep, add = (m[0] for m in line_attention(ids, newline=NL, pad=PAD, header_lines=1, compare="none"))
    assert not keep[6, 4] and not add[6, 4] and add.sum() == 2  # each end sees its own line (and itself) only
    assert keep[6, 0] and keep[6, 5] and keep[7].all()


def test_under_line_compare_all_the_answer_scores_do_not_depend_on_the_server_order(lm, states) -> None:
    from comllm.text import get_template

    lm.model.config.line_compare = "all"
    try:
        pol = LMPolicy(lm, DecodeOptions())
        five = [s for s in states if s.n_servers == 5][:3]
        base = get_template("lean-v2")
        moved = base.with_style(dataclasses.replace(base.style, server_order=(3, 0, 4, 2, 1)))
        prompts = lm.encode_prompts([moved.render_prompt(s) + lm.meta.prompt_suffix for s in five])
        assert prompts != pol.prompt_ids(five)
        answers = pol.answer_ids(5)
        with torch.no_grad():
            got = FastScorer(lm.model).logprobs(prompts, answers, 0)
            ref = candidate_logprobs(lm.model, prompts, answers, 0)
        want = pol.scores(five).numpy()
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4)
        np.testing.assert_allclose(ref.numpy(), want, atol=1e-4)
    finally:
        lm.model.config.line_compare = "earlier"


def test_sft_sets_line_compare(records: Path, tmp_path: Path) -> None:
    out = tmp_path / "all"
    res = CliRunner().invoke(app, ["sft", "--data", str(records), "--template", "lean-v2", "--steps", "1", "--batch-size", "8",
                                   "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "64", "--no-progress",
                                   "--threads", "1", "--out", str(out), "--line-positions", "lines", "--line-compare", "all"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((out / "config.json").read_text())["line_compare"] == "all"


def test_the_options_name_the_model_schemes() -> None:
    from comllm.lm.model import LINE_COMPARE, LINE_POSITIONS
    from comllm.sft_config import SFTConfig

    def literal(field: str) -> set[str]:
        return {a for a in SFTConfig.model_fields[field].annotation.__args__[0].__args__}

    assert literal("line_positions") == set(LINE_POSITIONS) and literal("line_compare") == set(LINE_COMPARE)

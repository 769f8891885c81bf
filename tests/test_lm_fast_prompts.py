"""Prompt ids from the states' numbers (comllm.lm.fast_prompts) against rendering and tokenizing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comllm.lm.fast_prompts import FastPrompts, encode_values
from comllm.lm.policy import DecodeOptions, LMPolicy
from comllm.sft_config import ModelShape
from comllm.state import StateBatch
from comllm.text import get_template
from comllm.text.compact import COMPACT_TEMPLATES, COMPACT_TEMPLATES_V2
from comllm.text.perturb import perturbed_template
from comllm.text.units import fixed, printed_decimals
from tests.fixtures.text_states import random_fresh_state
from tests.test_lm_support import tiny_cost_lm

SHAPE = ModelShape(hidden=32, layers=2, heads=2, intermediate=64, value_hidden=16)
#: the compact templates whose canonical prompts differ only in their numbers
NUMBERED = [t.name for t in (*COMPACT_TEMPLATES, *COMPACT_TEMPLATES_V2) if t.prompt_numbers([_s]) is not None] if (
    _s := random_fresh_state(np.random.default_rng(0), 3)
) else []


@pytest.fixture(scope="module")
def states() -> list:
    rng = np.random.default_rng(21)
    return [random_fresh_state(rng, n, history_len=10) for n in (1, 2, 3, 6, 11, 16) for _ in range(40)]


@pytest.fixture(scope="module")
def lm(states):
    return tiny_cost_lm("lean-v2", states, SHAPE, seed=4, head_seed=1)


def reference_ids(lm, template, states) -> list[list[int]]:
    return lm.encode_prompts([template.render_prompt(s) + lm.meta.prompt_suffix for s in states])


def test_the_lean_and_estimates_templates_have_the_numbered_form() -> None:
    assert {"lean-v2", "estimates-compact", "estimates-compact-v2"} <= set(NUMBERED)


@pytest.mark.parametrize("name", NUMBERED)
def test_ids_equal_the_rendered_and_tokenized_prompts(lm, states, name) -> None:
    template = get_template(name)
    fast = FastPrompts(template, lm.tokenizer, lm.meta.prompt_suffix)
    for n in sorted({s.n_servers for s in states}):
        group = [s for s in states if s.n_servers == n]
        before = dict(lm.tokenizer.stats)
        ids, sk = fast.encode(group)
        counted = {k: lm.tokenizer.stats[k] - before[k] for k in ("values", "clipped")}
        ref = reference_ids(lm, template, group)
        after = dict(lm.tokenizer.stats)
        assert ids.tolist() == ref, (name, n)
        assert counted == {k: after[k] - before[k] - counted[k] for k in ("values", "clipped")}  # same stats
        assert len(sk.value_at) == template.prompt_numbers(group).shape[1]


@settings(max_examples=60, deadline=None)
@given(
    size=st.one_of(st.sampled_from([0.0, 0.005, 0.125, 1.005, 2.675, 4.195, 1999.995, 2000.0, 2500.5, 1e7]),
                   st.floats(0, 5000, allow_nan=False)),  # fmt: skip
    queue=st.one_of(st.sampled_from([0.0, 0.015, 0.245, 10.125]), st.floats(0, 500, allow_nan=False)),
    n=st.integers(1, 8),
    seed=st.integers(0, 10_000),
)
def test_ids_equal_the_reference_on_half_cents_and_values_beyond_the_range(lm, size, queue, n, seed) -> None:
    s = random_fresh_state(np.random.default_rng(seed), n, history_len=10)
    s = dataclasses.replace(s, task_size=size, servers=tuple(dataclasses.replace(v, queued_mbit=queue) for v in s.servers))
    template = get_template("lean-v2")
    out = FastPrompts(template, lm.tokenizer).encode([s])
    assert out is not None
    assert out[0].tolist() == reference_ids(lm, template, [s])


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=20), st.integers(0, 4))
def test_printed_decimals_is_the_value_of_the_formatted_text(xs, d) -> None:
    got = printed_decimals(np.array(xs), d)
    assert got.tolist() == [float(fixed(x, d)) for x in xs]


def test_encode_values_matches_the_codec_one_by_one(lm) -> None:
    codec = lm.tokenizer.codec
    top, res = codec.max_value, codec.resolution  # the range's end: the last value kept, then two clipped
    values = np.array([0.0, 0.01, 3.17, top - res, top, top + res, 1e12])
    spaced = np.array([0, 1, 1, 0, 1, 1, 0])
    ids, clipped = encode_values(codec, values, spaced)
    ref = [codec.encode(float(v), bool(s)) for v, s in zip(values, spaced, strict=True)]
    assert ids.tolist() == [i for i, _ in ref] and clipped == sum(c for _, c in ref) == 2


def test_perturbed_templates_and_other_styles_take_the_reference_path(lm, states) -> None:
    six = [s for s in states if s.n_servers == 6]
    lean = get_template("lean-v2")
    for template in (perturbed_template("paraphrase", seed=2, base=lean), get_template("annotated-compact-v2"),
                     lean.with_style(dataclasses.replace(lean.style, data_unit="kbit"))):  # fmt: skip
        assert FastPrompts(template, lm.tokenizer).encode(six) is None
    bad = [dataclasses.replace(six[0], task_size=float("inf"))]
    assert lean.prompt_numbers(bad) is None  # 'inf' is a word, not a number: the words would change
    short = dataclasses.replace(six[1], servers=tuple(dataclasses.replace(v, history=(1.0,)) for v in six[1].servers))
    assert lean.prompt_numbers([six[0], short]) is None  # histories of two lengths do not stack


def test_the_policy_decides_the_same_from_numbers_as_from_text(lm, states) -> None:
    fast = LMPolicy(lm, DecodeOptions(mode="cost", batch=32))
    ref = LMPolicy(lm, DecodeOptions(mode="cost", fast=False, batch=32))
    np.testing.assert_array_equal(fast.decide(states), ref.decide(states))
    group = [s for s in states if s.n_servers == 6]
    assert fast.prompt_array(group) is not None and ref.prompt_array(group) is None
    np.testing.assert_allclose(fast.line_costs(group).numpy(), ref.line_costs(group).numpy(), atol=1e-4)
    batch = StateBatch.from_states(group)  # a simulator's batch decides without building its states
    before = fast.stats["decisions"]
    np.testing.assert_array_equal(fast.act(batch), ref.decide(group))
    assert fast.stats["decisions"] - before == len(group)
    score_fast = LMPolicy(lm, DecodeOptions(mode="score", batch=32))
    score_ref = LMPolicy(lm, DecodeOptions(mode="score", fast=False, batch=32))
    np.testing.assert_array_equal(score_fast.decide(states), score_ref.decide(states))
    fast.template = perturbed_template("paraphrase", seed=1, base=fast.template)  # a swapped template is followed
    assert fast.prompt_array(group) is None

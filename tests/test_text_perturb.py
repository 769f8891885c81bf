"""Prompt perturbations: seedable, they change the text, never the state it reads back to."""

from __future__ import annotations

import numpy as np
import pytest

from comllm.text import get_template, parse_prompt
from comllm.text.perturb import PERTURBATIONS, get_perturbation, perturbed_template
from comllm.text.template import TextError
from tests.fixtures.text_states import random_state


@pytest.mark.parametrize("name", list(PERTURBATIONS))
@pytest.mark.parametrize("base", ["paper", "annotated"])
def test_perturbed_prompts_read_back_to_the_same_state(name: str, base: str) -> None:
    t = get_template(base)
    rng = np.random.default_rng(7)
    changed = 0
    for n in (1, 2, 5, 11, 16):
        for seed in range(4):
            q = t.quantize(random_state(rng, n))
            text = t.render_prompt(q)
            pt = perturbed_template(name, seed=seed, base=base)
            ptext = pt.render_prompt(q)
            changed += ptext != text
            assert pt.parse_prompt(ptext) == q
            assert parse_prompt(ptext) == q
            assert pt.render_prompt(q) == ptext  # deterministic for a seed
    assert changed >= 16  # it does change the text (a 1-server shuffle can be the identity)


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_text_level_perturbation_of_a_paper_prompt(name: str) -> None:
    t = get_template("paper")
    q = t.quantize(random_state(np.random.default_rng(8), 6))
    text = t.render_prompt(q)
    out = PERTURBATIONS[name](text, seed=3)
    assert out == PERTURBATIONS[name](text, seed=3)
    assert out.splitlines()[0] == text.splitlines()[0]  # the header stays
    assert parse_prompt(out) == q
    others = {PERTURBATIONS[name](text, seed=s) for s in range(6)}
    assert len(others) > 1  # the seed matters


def test_what_each_perturbation_changes() -> None:
    t = get_template("paper")
    q = t.quantize(random_state(np.random.default_rng(9), 6, history_len=10))
    text = t.render_prompt(q)
    lines = text.splitlines()
    fields = perturbed_template("shuffle-fields", 1).render_prompt(q).splitlines()
    assert sorted(fields) != sorted(lines) and fields != lines  # order and attribute order move
    assert [x for x in fields if x.startswith("server")][0].startswith("server 1:")
    servers = perturbed_template("shuffle-servers", 1).render_prompt(q).splitlines()
    assert sorted(servers) == sorted(lines) and servers != lines
    units = perturbed_template("units", 1).render_prompt(q)
    assert "kbit" in units and "MHz" in units and "Gcycles/Mbit" in units and " Mbit," not in units
    para = perturbed_template("paraphrase", 1).render_prompt(q)
    assert "task size:" not in para and "max delay:" not in para
    nums = perturbed_template("numbers", 1).render_prompt(q)
    assert nums != text and parse_prompt(nums) == q


def test_chinese_template_shuffles_but_keeps_its_wording() -> None:
    zh = get_template("paper-zh")
    q = zh.quantize(random_state(np.random.default_rng(10), 5))
    for name in ("shuffle-fields", "shuffle-servers"):
        out = perturbed_template(name, 2, base="paper-zh").render_prompt(q)
        assert out != zh.render_prompt(q)
        assert sorted(out.splitlines()) == sorted(zh.render_prompt(q).splitlines())
        assert parse_prompt(out) == q
        assert PERTURBATIONS[name](zh.render_prompt(q), seed=2) == out
    with pytest.raises(TextError, match="not defined for the Chinese"):
        perturbed_template("units", 0, base="paper-zh")


def test_unknown_perturbation_and_template() -> None:
    with pytest.raises(TextError, match="unknown perturbation 'loud'"):
        get_perturbation("loud")
    with pytest.raises(TextError, match="estimates"):
        perturbed_template("units", 0, base="estimates")

"""Prompt perturbations: seedable, they change the text, never the state it reads back to."""

from __future__ import annotations

import re

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


# ------------------------------------------------------------ compact templates
COMPACT = ["estimates-compact", "annotated-compact", "raw-compact"]


def _example_state():
    from comllm.state import ServerView, TaskState

    return TaskState(
        task_size=4.1934, max_delay=10, local_wait=3.0, tx_wait=0.0, upload_rate=1.4, slot_s=0.1,
        drop_penalty=100.0, device_ghz=2.5, device_cycles_per_bit=297.0, device_mbps=14.0,
        servers=(
            ServerView("high-performance", 41.8, 297.0, 0, 0.0, (2.0, 0.0, 1.0, 1.0, 0.0)),
            ServerView("standard", 30.0, 297.0, 2, 7.2731, (3.0, 3.0, 0.0, 3.0, 4.0)),
            ServerView("energy-saving", 22.0, 1200.5, 5, 31.5, (5.0, 6.0, 4.5, 5.0, 7.0)),
        ),
    )


#: the prompts of :func:`_example_state` as the compact templates wrote them before they had styles
_EXPECTED = {
    "estimates-compact": "local: est 7.98\nserver 1: est 3.29\nserver 2: est 6.4\nserver 3: est 119.86\nanswer:",
    "annotated-compact": (
        "task 4.19 Mbit deadline 10 rate 1.4 Mbit/slot txwait 0 slot 0.1 s penalty 100\n"
        "local: est 7.98 | wait 3 cpu 2.5 GHz density 297\n"
        "server 1: est 3.29 | high cpu 41.8 GHz active 0 queue 0 Mbit load 2 0 1 1 0\n"
        "server 2: est 6.4 | std cpu 30 GHz active 2 queue 7.27 Mbit load 3 3 0 3 4\n"
        "server 3: est 119.86 | eco cpu 22 GHz density 1200.5 active 5 queue 31.5 Mbit load 5 6 4.5 5 7\n"
        "answer:"
    ),
    "raw-compact": (
        "task 4.19 Mbit deadline 10 rate 1.4 Mbit/slot txwait 0 slot 0.1 s penalty 100\n"
        "local: wait 3 cpu 2.5 GHz density 297\n"
        "server 1: high cpu 41.8 GHz active 0 queue 0 Mbit load 2 0 1 1 0\n"
        "server 2: std cpu 30 GHz active 2 queue 7.27 Mbit load 3 3 0 3 4\n"
        "server 3: eco cpu 22 GHz density 1200.5 active 5 queue 31.5 Mbit load 5 6 4.5 5 7\n"
        "answer:"
    ),
}


def _is_number(tok: str) -> bool:
    from comllm.text.units import parse_number

    try:
        parse_number(tok)
    except ValueError:
        return False
    return True


def _numbers(line: str) -> list[float]:
    return [float(t) for t in line.split() if _is_number(t)]


def _compact_cases(base: str):
    """(quantized state, canonical text) for states with 3 to 16 servers."""
    t = get_template(base)
    rng = np.random.default_rng(11)
    for n in (3, 5, 16):
        for _ in range(3):
            q = t.quantize(random_state(rng, n))
            yield q, t.render_prompt(q)


@pytest.mark.parametrize("base", COMPACT)
def test_compact_default_style_writes_the_text_of_before(base: str) -> None:
    t = get_template(base)
    assert t.render_prompt(_example_state()) == _EXPECTED[base]
    assert t.with_style(type(t).default_style()).render_prompt(_example_state()) == _EXPECTED[base]


@pytest.mark.parametrize("name", list(PERTURBATIONS))
@pytest.mark.parametrize("base", COMPACT)
def test_compact_perturbations_change_the_text_deterministically(name: str, base: str) -> None:
    t = get_template(base)
    for seed in range(3):
        pt = perturbed_template(name, seed=seed, base=base)
        assert pt.carries_state is False and pt.name == f"{base}+{name}"
        for q, text in _compact_cases(base):
            out = pt.render_prompt(q)
            if base == "estimates-compact" and name == "shuffle-fields":
                assert out == text  # one attribute per line: nothing to shuffle
            else:
                assert out != text
            assert out == pt.render_prompt(q) == perturbed_template(name, seed=seed, base=t).render_prompt(q)
            lines, base_lines = out.splitlines(), text.splitlines()
            assert len(lines) == len(base_lines) and lines[-1] == "answer:"
            k = t.action_line_start
            assert lines[k].startswith("local:")  # local first, then one line per server
            heads = sorted(line.split(":")[0] for line in lines[k + 1 : -1])
            assert heads == sorted(f"server {j}" for j in range(1, q.n_servers + 1))
            assert pt.answers(q.n_servers) == t.answers(q.n_servers)
            assert pt.render_answer(2) == t.render_answer(2) == "server 2"
    outs = {perturbed_template(name, seed=s, base=base).render_prompt(q) for s in range(8)}
    if not (base == "estimates-compact" and name == "shuffle-fields"):
        assert len(outs) > 1  # the seed matters


@pytest.mark.parametrize("base", COMPACT)
def test_compact_shuffles_keep_every_line(base: str) -> None:
    for seed in range(3):
        for q, text in _compact_cases(base):
            lines = text.splitlines()
            servers = perturbed_template("shuffle-servers", seed, base=base).render_prompt(q).splitlines()
            assert sorted(servers) == sorted(lines) and servers != lines
            k = get_template(base).action_line_start
            assert servers[: k + 1] == lines[: k + 1]  # the task and local lines stay first
            fields = perturbed_template("shuffle-fields", seed, base=base).render_prompt(q).splitlines()
            for a, b in zip(fields, lines):  # same line, same words and numbers (the bar may move)
                assert a.split(":")[0] == b.split(":")[0] or b.startswith("task")
                assert sorted(w for w in a.split() if w != "|") == sorted(w for w in b.split() if w != "|")


@pytest.mark.parametrize("base", COMPACT)
def test_compact_paraphrase_changes_words_not_numbers(base: str) -> None:
    from dataclasses import replace

    from comllm.text.compact import WORDS

    for seed in range(3):
        pt = perturbed_template("paraphrase", seed, base=base)
        for q, text in _compact_cases(base):
            out = pt.render_prompt(q)
            style = pt._template_for(q).style
            assert set(style.labels) == set(WORDS)
            assert all(style.labels[k] in words[1:] for k, words in WORDS.items())  # never the canonical word
            assert get_template(base).with_style(replace(style, labels={})).render_prompt(q) == text  # only words
            for a, b in zip(out.splitlines(), text.splitlines()):
                assert _numbers(a) == _numbers(b)
                assert a == b or a.split(":")[0] == b.split(":")[0] or b.startswith("task")  # local / server K kept
            assert not set(out.split()) & {words[0] for words in WORDS.values()}  # no canonical word left


@pytest.mark.parametrize("base", COMPACT)
def test_compact_units_convert_every_number(base: str) -> None:
    for seed in range(4):
        pt = perturbed_template("units", seed, base=base)
        for q, text in _compact_cases(base):
            out = pt.render_prompt(q)
            assert not {"Mbit", "GHz"} & set(out.split())
            slot = q.slot_s
            factors = {
                ("Mbit", "kbit"): 1e3, ("GHz", "MHz"): 1e3, ("s", "ms"): 1e3,
                ("Mbit/slot", "kbit/slot"): 1e3, ("Mbit/slot", "Mbit/s"): 1 / slot,
                ("", "ms"): slot * 1e3, ("", "s"): slot, ("", "Gcycles/Mbit"): 1e-3, ("", ""): 1.0,
            }
            for a, b in zip(out.splitlines(), text.splitlines()):
                ta, tb = a.split(), b.split()

                def pairs(toks: list[str]) -> list[tuple[float, str]]:
                    out = []
                    for i, w in enumerate(toks):
                        if _is_number(w):
                            nxt = toks[i + 1] if i + 1 < len(toks) else ""
                            out.append((float(w), nxt if "bit" in nxt or nxt in ("s", "ms", "GHz", "MHz") else ""))
                    return out

                pa, pb = pairs(ta), pairs(tb)
                assert len(pa) == len(pb)
                for (x, ua), (y, ub) in zip(pa, pb):
                    f = factors[(ub, ua)]
                    # the canonical text rounds estimates to 0.01; the converted one keeps 2 decimals of its unit
                    assert abs(x - y * f) <= 0.0051 * max(f, 1.0) + 1e-9, (a, b)


@pytest.mark.parametrize("base", COMPACT)
def test_compact_numbers_rewrite_each_value(base: str) -> None:
    for seed in range(4):
        pt = perturbed_template("numbers", seed, base=base)
        for q, text in _compact_cases(base):
            out = pt.render_prompt(q)
            for a, b in zip(out.splitlines(), text.splitlines()):
                assert [w for w in a.split() if not _is_number(w)] == [w for w in b.split() if not _is_number(w)]
                na, nb = _numbers(a), _numbers(b)
                assert len(na) == len(nb)
                for x, y in zip(na, nb):  # same value (the canonical text rounds to 0.01)
                    assert abs(x - y) <= 0.0051 + 1e-6 * abs(y), (a, b)


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_perturbed_annotated_compact_no_longer_raises(name: str) -> None:
    pt = perturbed_template(name, 0, base="annotated-compact")
    q = pt.quantize(random_state(np.random.default_rng(12), 4))
    assert q == get_template("annotated-compact").quantize(q)
    assert pt.render_prompt(q).endswith("answer:")
    all_ = perturbed_template("all", 5, base="raw-compact").render_prompt(q)
    assert "kbit" in all_ and "MHz" in all_ and all_.splitlines()[1].startswith("local:")


# ------------------------------------------------------------ the fresh view (-v2 templates)
COMPACT_V2 = ["estimates-compact-v2", "annotated-compact-v2", "raw-compact-v2"]


def _fresh_cases(base: str, seed: int = 21):
    from tests.fixtures.text_states import random_fresh_state

    t = get_template(base)
    rng = np.random.default_rng(seed)
    for n in (1, 3, 6, 16):
        for _ in range(2):
            q = t.quantize(random_fresh_state(rng, n))
            yield q, t.render_prompt(q)


@pytest.mark.parametrize("name", list(PERTURBATIONS))
@pytest.mark.parametrize("base", ["paper-v2", "annotated-v2"])
def test_v2_perturbed_prompts_read_back_with_the_fresh_view(name: str, base: str) -> None:
    changed = 0
    for seed in range(3):
        pt = perturbed_template(name, seed=seed, base=base)
        for q, text in _fresh_cases(base):
            out = pt.render_prompt(q)
            changed += out != text
            assert pt.parse_prompt(out) == q == parse_prompt(out)
            assert q.slot_arrivals > 0 and pt.quantize(q) == q
            assert out == pt.render_prompt(q)
    assert changed >= 16


def test_v2_paraphrase_and_units_reach_the_fresh_view() -> None:
    from comllm.text import vocab as V

    q, text = next(_fresh_cases("paper-v2"))
    assert "tasks arriving this slot: " in text and ", incoming tasks " in text and ", incoming " in text
    para = perturbed_template("paraphrase", 1, base="paper-v2").render_prompt(q)
    assert "tasks arriving this slot:" not in para and "undecided tasks this slot:" not in para
    assert ", incoming " not in para  # neither 'incoming' nor 'incoming tasks'
    assert sum(f"\n{lbl}: " in para for labels, _ in V.FRESH_FIELDS.values() for lbl in labels[1:]) == 2
    assert sum(f", {lbl} " in para for labels, _ in V.FRESH_ATTRS.values() for lbl in labels[1:]) == 2 * q.n_servers
    units = perturbed_template("units", 1, base="paper-v2").render_prompt(q)
    for v, line in zip(q.servers, [x for x in units.splitlines() if x.startswith("server ")]):
        assert ", incoming tasks " in line and " kbit, incoming tasks" in line
        got = float(line.split(", incoming ")[1].split()[0])
        assert abs(got - v.incoming_mbit * 1e3) < 1e-6


def test_text_level_perturbation_of_v2_prompts_keeps_the_fresh_view() -> None:
    for base in ("paper-v2", "paper-zh-v2"):
        q, text = next(_fresh_cases(base))
        for name in ("shuffle-fields", "shuffle-servers") if base.startswith("paper-zh") else PERTURBATIONS:
            out = PERTURBATIONS[name](text, seed=3)
            assert parse_prompt(out) == q and out.splitlines()[0] == text.splitlines()[0]
            assert out == perturbed_template(name, 3, base=base).render_prompt(q)
    # a prompt of before stays a prompt of before
    q, text = next(_fresh_cases("paper"))
    assert "tasks arriving" not in PERTURBATIONS["all"](text, seed=3)


def test_paper_zh_v2_shuffles_but_keeps_its_wording() -> None:
    zh = get_template("paper-zh-v2")
    for q, text in list(_fresh_cases("paper-zh-v2"))[2:5]:
        for name in ("shuffle-fields", "shuffle-servers"):
            out = perturbed_template(name, 2, base="paper-zh-v2").render_prompt(q)
            assert out != text and sorted(out.splitlines()) == sorted(zh.render_prompt(q).splitlines())
            assert parse_prompt(out) == q
    with pytest.raises(TextError, match="not defined for the Chinese"):
        perturbed_template("paraphrase", 0, base="paper-zh-v2")


@pytest.mark.parametrize("name", list(PERTURBATIONS))
@pytest.mark.parametrize("base", COMPACT_V2)
def test_compact_v2_perturbations_keep_the_lines(name: str, base: str) -> None:
    t = get_template(base)
    k = t.action_line_start
    outs = set()
    for seed in range(3):
        pt = perturbed_template(name, seed=seed, base=base)
        for q, text in _fresh_cases(base):
            out = pt.render_prompt(q)
            outs.add(out)
            assert (out != text or name == "shuffle-servers" and q.n_servers == 1) and out == pt.render_prompt(q)
            lines, base_lines = out.splitlines(), text.splitlines()
            assert len(lines) == len(base_lines) and lines[-1] == "answer:" and lines[k].startswith("local:")
            heads = sorted(x.split(":")[0] for x in lines[k + 1 : -1])
            assert heads == sorted(f"server {j}" for j in range(1, q.n_servers + 1))
            assert len(_numbers(lines[k - 1])) == len(_numbers(base_lines[k - 1]))  # the slot counts stay
            if t.with_estimates:
                style = pt._template_for(q).style
                assert lines[0] == f"{style.label('est')} = one-step latency, {style.label('incoming')} counted in " \
                    f"{style.label('queue')}"  # fmt: skip
    assert len(outs) > 1


@pytest.mark.parametrize("base", COMPACT_V2)
def test_compact_v2_paraphrase_and_units_reach_the_fresh_view(base: str) -> None:
    from comllm.text.compact import ALL_WORDS, FRESH_WORDS

    for seed in range(3):
        pt = perturbed_template("paraphrase", seed, base=base)
        for q, text in _fresh_cases(base):
            style = pt._template_for(q).style
            assert set(style.labels) == set(ALL_WORDS)
            assert all(style.labels[k] in words[1:] for k, words in ALL_WORDS.items())
            out = pt.render_prompt(q)
            assert not set(out.split()) & {w[0] for w in FRESH_WORDS.values()}
            for a, b in zip(out.splitlines(), text.splitlines()):
                assert _numbers(a) == _numbers(b)
        pt = perturbed_template("units", seed, base=base)
        for q, text in _fresh_cases(base):
            out = pt.render_prompt(q).splitlines()
            k = get_template(base).action_line_start
            for v, line in zip(q.servers, out[k + 1 : -1]):
                got = float(line.split(" incoming ")[1].split()[0])
                assert abs(got - v.incoming_mbit * 1e3) <= 0.0051 * 1e3
                assert line.split(" incoming ")[1].split()[1] == "kbit"


def test_old_compact_paraphrase_draws_are_unchanged_by_the_fresh_words() -> None:
    from comllm.text.compact import WORDS

    for base in COMPACT:
        style = perturbed_template("paraphrase", 0, base=base)._template_for(_example_state()).style
        assert set(style.labels) == set(WORDS)


def test_families_joined_by_plus_apply_in_turn() -> None:
    """``a+b``: the restyles of ``a`` then ``b`` (as ``all`` chains every family); reads back to the state."""
    combo = get_perturbation("shuffle-fields+units+numbers")
    assert combo.changes == {"orders", "units", "numbers"}
    everything = "shuffle-fields+paraphrase+units+numbers+shuffle-servers"
    t = get_template("paper")
    rng = np.random.default_rng(3)
    for seed in range(6):
        q = t.quantize(random_state(rng, 5))
        # the same draws as the family that chains all five in the same order
        assert perturbed_template(everything, seed, base="paper").render_prompt(q) == perturbed_template(
            "all", seed, base="paper"
        ).render_prompt(q)
        text = perturbed_template("shuffle-fields+units+numbers", seed, base="paper").render_prompt(q)
        assert parse_prompt(text) == q
    for bad in ("units+loud", "units+", "+units"):
        with pytest.raises(TextError, match=re.escape(f"unknown perturbation '{bad}'")):
            get_perturbation(bad)

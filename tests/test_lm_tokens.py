"""Value tokens and the embedded model's tokenizer: round trips, clipping, ids as words, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

import comllm.lm  # noqa: F401  (registers the Auto classes)
from comllm.lm.tokenizer import ComllmTokenizer
from comllm.lm.values import VALUE_RANGES, ValueCodec, value_features

CORPUS = [
    "task 4.19 Mbit deadline 10\nlocal: est 7.98 | wait 3 cpu 2.5 GHz density 297\n"
    "server 1: est 4.34 | high cpu 41.8 GHz active 0 queue 0 Mbit load 2 0 1\nanswer:",
    "边缘服务器1: 类型 高性能型, CPU频率 41.8 GHz",
]


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> ComllmTokenizer:
    return ComllmTokenizer.build(CORPUS, tmp_path_factory.mktemp("tok"))


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0.0, max_value=2000.0, allow_nan=False), st.booleans())
def test_codec_round_trip_within_resolution(value: float, spaced: bool) -> None:
    codec = ValueCodec(base=500)
    tid, clipped = codec.encode(value, spaced)
    back, sp = codec.decode(tid)
    assert not clipped
    assert abs(back - value) <= 0.005 + 1e-9
    assert sp == spaced
    assert codec.base <= tid < codec.end


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1999.99, allow_nan=False), min_size=1, max_size=12))
def test_text_to_ids_to_values(tok: ComllmTokenizer, values: list[float]) -> None:
    text = "queue " + " ".join(f"{v:.4f}" for v in values) + " Mbit"
    ids = tok.encode_text(text)
    got = tok.values_of(ids)
    assert len(got) == len(values)  # one token per number
    assert all(abs(g - v) <= 0.01 for g, v in zip(got, values))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1999.99, allow_nan=False), min_size=1, max_size=8))
def test_a_number_in_scientific_notation_is_one_token_of_its_value(tok: ComllmTokenizer, values: list[float]) -> None:
    sci = tok.encode_text("queue " + " ".join(f"{v:.6e}" for v in values) + " Mbit")
    plain = tok.encode_text("queue " + " ".join(f"{v:.6f}" for v in values) + " Mbit")
    assert len(sci) == len(plain) and tok.values_of(sci) == pytest.approx(tok.values_of(plain), abs=0.0101)
    assert tok.values_of(tok.encode_text("incoming 2.146671e+01")) == [21.47]  # not 2.15 then 'e', '+', '01'
    assert tok.encode_text("est 0e+00 x 3e") == tok.encode_text("est 0 x 3e")  # 'e' without digits stays a word


def test_out_of_range_values_are_clipped_and_counted(tok: ComllmTokenizer) -> None:
    before = dict(tok.stats)
    ids = tok.encode_text("queue 12345.678 Mbit, wait 2000.004 slots, rate 99999999999999999999")
    vals = tok.values_of(ids)
    assert vals == [2000.0, 2000.0, 2000.0]
    assert tok.stats["clipped"] - before["clipped"] == 2  # 2000.004 rounds to 2000.00: in range
    codec = tok.codec
    assert codec.encode(-3.0)[1] and codec.decode(codec.encode(-3.0)[0])[0] == 0.0
    assert codec.encode(float("inf"))[1] and codec.encode(float("nan"))[1]


def test_server_ids_stay_words_and_values_do_not(tok: ComllmTokenizer) -> None:
    ids = tok.encode_text("server 12: est 4.34\n服务器3 load 7")
    tokens = tok.convert_ids_to_tokens(ids)
    assert " 12" in tokens and "3" in tokens
    assert tok.values_of(ids) == [4.34, 7.0]
    # the answer vocabulary covers many servers, both with and without a leading space
    assert all(tok.encode_text(f" server {k}")[-1] < tok.n_words for k in range(1, 65))


def test_decode_gives_the_text_back(tok: ComllmTokenizer) -> None:
    text = "local: est 7.98 | wait 3 cpu 2.5 GHz\nserver 1: est 4.34 | high"
    assert tok.decode(tok.encode_text(text)) == text
    assert tok.decode(tok.encode_text(" server 3</s>"), skip_special_tokens=True) == " server 3"


def test_hf_call_matches_fast_path_and_special_tokens(tok: ComllmTokenizer) -> None:
    text = CORPUS[0] + " server 1</s>"
    assert tok(text)["input_ids"] == tok.encode_text(text)
    assert tok.encode_text("x</s>")[-1] == tok.eos_token_id
    with pytest.raises(ValueError, match="value block"):
        tok.add_tokens(["brand-new-word"])


def test_unknown_words_are_counted(tok: ComllmTokenizer) -> None:
    before = tok.stats["unknown"]
    tok.encode_text("zzz qqq 4.2")
    assert tok.stats["unknown"] - before == 2


def test_save_and_reload_with_auto_tokenizer(tok: ComllmTokenizer, tmp_path) -> None:
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert type(again) is ComllmTokenizer
    assert again.codec == tok.codec
    assert again.encode_text(CORPUS[0]) == tok.encode_text(CORPUS[0])


def test_value_features_are_deterministic_and_distinguish_values() -> None:
    codec = ValueCodec(base=10)
    ids = torch.tensor([codec.encode(v)[0] for v in (0.0, 0.01, 4.19, 41.8, 297.0, 2000.0)])
    f1, f2 = value_features(ids, codec), value_features(ids, codec)
    assert f1.shape == (6, codec.n_features)
    assert torch.equal(f1, f2)
    d = torch.cdist(f1, f1)
    assert (d + torch.eye(6) * 10).min() > 1e-3  # all distinct
    assert float(f1.abs().max()) <= 4.0  # every feature stays O(1)
    assert (f1[1:, :8] >= f1[:-1, :8]).all() and float(f1[0, 0]) == 0.0  # the monotone ones rise with the value


def test_codec_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="resolution"):
        ValueCodec(base=1, resolution=0)
    with pytest.raises(ValueError, match="base"):
        ValueCodec(base=-1)
    with pytest.raises(ValueError, match="not a value token"):
        ValueCodec(base=5).decode(2)


def test_codec_formats_shortest() -> None:
    c = ValueCodec(base=0)
    assert [c.format(x) for x in (297.0, 41.8, 4.19, 0.0)] == ["297", "41.8", "4.19", "0"]
    assert np.allclose([c.decode(c.encode(x)[0])[0] for x in (297.0, 41.8)], [297.0, 41.8])


def test_a_codec_saved_without_scales_is_the_narrow_one() -> None:
    old = {k: v for k, v in ValueCodec(base=7).to_dict().items() if k != "scales"}  # a checkpoint of before
    assert ValueCodec.from_dict(old) == ValueCodec(base=7)
    wide = ValueCodec(base=7, **VALUE_RANGES["wide"])
    assert ValueCodec.from_dict(wide.to_dict()) == wide
    with pytest.raises(ValueError, match="scales"):
        ValueCodec(base=1, scales=(1.0, -3.0))


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.0, max_value=1e7, allow_nan=False))
def test_wide_codec_keeps_values_written_in_other_units(value: float) -> None:
    codec = ValueCodec(base=500, **VALUE_RANGES["wide"])
    tid, clipped = codec.encode(value)
    assert not clipped and abs(codec.decode(tid)[0] - value) <= 0.0005 + 1e-9
    feats = value_features(torch.tensor([tid]), codec)
    assert feats.shape == (1, codec.n_features) and bool(torch.isfinite(feats).all())
    assert float(feats.abs().max()) <= 9.0  # log1p(1e7) / 2 ≈ 8.06; the rest within [-1, 1]


def test_wide_codec_reads_a_units_prompt_unclipped(tmp_path) -> None:
    """States in kbit and s / ms: clipped by the narrow range (sizes, queues of over 2,000 kbit), not by the wide one."""
    from comllm.text.perturb import perturbed_template
    from tests.fixtures.text_states import random_fresh_state

    rng = np.random.default_rng(5)
    states = [random_fresh_state(rng, 6, history_len=10) for _ in range(40)]
    texts = [perturbed_template("units", seed=i, base="lean-v2").render_prompt(s) for i, s in enumerate(states)]
    narrow = ComllmTokenizer.build(texts, tmp_path / "narrow")
    wide = ComllmTokenizer.build(texts, tmp_path / "wide", codec=VALUE_RANGES["wide"])
    for t in texts:
        narrow.encode_text(t)
        wide.encode_text(t)
    assert narrow.stats["clipped"] > 0
    assert wide.stats["values"] == narrow.stats["values"] and wide.stats["clipped"] == 0


def test_a_new_embedded_model_has_the_wide_range_unless_asked() -> None:
    from comllm.lm.sft import new_embedded_lm
    from comllm.sft_config import ModelShape
    from tests.fixtures.text_states import random_fresh_state

    states = [random_fresh_state(np.random.default_rng(1), 3) for _ in range(4)]
    shape = ModelShape(hidden=16, layers=1, heads=2, intermediate=32, value_hidden=8)
    wide = new_embedded_lm("lean-v2", states, shape, seed=0)
    narrow = new_embedded_lm("lean-v2", states, shape, seed=0, value_range="narrow")
    assert wide.tokenizer.codec == ValueCodec(base=wide.tokenizer.n_words, **VALUE_RANGES["wide"])
    assert narrow.tokenizer.codec == ValueCodec(base=narrow.tokenizer.n_words)
    assert ValueCodec.from_dict(wide.model.config.value_codec) == wide.tokenizer.codec


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0.01, max_value=9000.0, allow_nan=False), st.sampled_from([-1, 1, 2]))
def test_wide_features_move_with_a_change_of_unit(value: float, decades: int) -> None:
    """× 10^k (kbit for Mbit, ms or s for slots): the monotone features shift by 2k scales, the
    periodic ones of log10 v stay; what a model learnt of a value's fine detail carries over."""
    codec = ValueCodec(base=0, **VALUE_RANGES["wide"])
    value = round(value, 2)  # printed as the canonical prompts do, so × 0.1 stays on the 0.001 grid
    ids = torch.tensor([codec.encode(value)[0], codec.encode(value * 10.0**decades)[0]])
    f = value_features(ids, codec).double()
    n = len(codec.scales)
    k = 2 * decades  # the scales go 1, 3, 10, 30, ...: × 10 is two scales on
    a, b = (f[0, : n - k], f[1, k:n]) if k > 0 else (f[0, -k:n], f[1, : n + k])
    assert torch.allclose(a, b, atol=1e-4)
    assert torch.allclose(f[0, n + 2 :], f[1, n + 2 :], atol=2e-3)
    assert float(f[1, n + 2 :].abs().max()) > 0.0  # a positive value has phases

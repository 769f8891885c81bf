"""Robust SFT (``comllm sft --perturb``): perturbed training prompts, their draws, their words, a run.

Each training prompt is, with probability ``--perturb-prob``, written by
``perturbed_template(family, seed, base=<the model's template>)`` with a family drawn from
the ``--perturb`` list and a perturbation seed from 1_000_000 up (never the evaluation's 0..999).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from comllm.cli import app
from comllm.lm.loading import LMMeta, load_lm
from comllm.lm.sft import (
    DATASET_FILE,
    SFTError,
    _read_examples,
    encode_examples,
    make_config,
    new_embedded_lm,
    perturbation_draws,
    read_record_states,
    train_sft,
    training_prompts,
)
from comllm.lm.tokenizer import UNK
from comllm.sft_config import EVAL_PERTURB_SEEDS, PERTURB_FAMILIES, TRAIN_PERTURB_SEEDS, SFTConfig
from comllm.text import get_template
from comllm.text.perturb import PERTURBATIONS
from tests.test_lm_support import TINY as TINY_SHAPE
from tests.test_lm_support import make_records, record_states

FAMILIES = list(PERTURBATIONS)
TINY = dict(hidden=32, layers=1, heads=2, intermediate=64, batch_size=8, progress=False, threads=1)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    return make_records(tmp_path_factory.mktemp("perturb") / "train.jsonl", 240, servers="2-4", seed=3)


@pytest.fixture(scope="module")
def states(records: Path) -> list:
    return record_states(records)


@pytest.fixture(scope="module")
def lean(states: list):
    """A freshly built embedded model on ``lean-v2`` for robust training (as ``comllm sft --perturb`` builds it)."""
    return new_embedded_lm("lean-v2", states[:20], TINY_SHAPE, 0, perturbation_words=True)


def _on(lm, template: str):  # type: ignore[no-untyped-def]
    """The same model and tokenizer reading ``template``'s prompts."""
    return dataclasses.replace(lm, meta=LMMeta.for_template(template))


def test_the_families_are_those_of_the_perturbations() -> None:
    assert PERTURB_FAMILIES == tuple(PERTURBATIONS)
    help_ = SFTConfig.model_fields["perturb"].description
    assert all(f in help_ for f in PERTURBATIONS)
    assert str(EVAL_PERTURB_SEEDS - 1) in SFTConfig.model_fields["perturb_seed"].description


def test_perturbed_paper_v2_prompts_read_back_to_the_state(lean, states: list) -> None:
    t = get_template("paper-v2")
    lm = _on(lean, "paper-v2")
    qs = [t.quantize(s) for s in states[:120]]
    draws = perturbation_draws(len(qs), FAMILIES, 1.0, seed=7)
    texts = training_prompts(lm, qs, draws)
    canonical = [lm.prompt_text(q) for q in qs]
    suffix = lm.meta.prompt_suffix
    assert suffix and all(x.endswith(suffix) for x in texts)
    changed = 0
    for q, text, plain in zip(qs, texts, canonical):
        assert t.parse_prompt(text[: len(text) - len(suffix)]) == q
        changed += text != plain
    assert changed >= 0.9 * len(qs)
    assert {d[0] for d in draws} == set(FAMILIES)  # every family was drawn


@pytest.mark.parametrize("template", ["lean-v2", "annotated-compact-v2"])
def test_perturbed_compact_prompts_have_no_unknown_word(lean, states: list, template: str) -> None:
    lm = _on(lean, template)
    unk = lm.tokenizer.convert_tokens_to_ids(UNK)
    ex = encode_examples(lm, states, np.zeros(len(states), dtype=np.int64), [np.zeros(s.n_servers + 1) for s in states],
                         perturb=FAMILIES, perturb_prob=1.0, perturb_seed=11)  # fmt: skip
    plain = lm.encode_prompts([lm.prompt_text(s) for s in states])
    # `numbers` may give the plain ids back: a value token is the number, however it is written
    words = [i for i, d in enumerate(perturbation_draws(len(states), FAMILIES, 1.0, 11)) if d[0] != "numbers"]
    assert sum(not np.array_equal(ex.prompt[i], plain[i]) for i in words) >= 0.9 * len(words)
    bad = [i for i, p in enumerate(ex.prompt) if unk in p.tolist()]
    assert not bad, lm.tokenizer.decode(ex.prompt[bad[0]].tolist())


def test_only_a_model_built_for_robust_training_has_the_perturbation_words(lean, states: list) -> None:
    plain = new_embedded_lm("lean-v2", states[:20], TINY_SHAPE, 0)
    words, robust = set(plain.tokenizer.get_vocab()), set(lean.tokenizer.get_vocab())
    assert words < robust and {" enroute", " Gcycles", " MHz"} <= robust - words
    ex = encode_examples(plain, states[:60], np.zeros(60, dtype=np.int64), [np.zeros(s.n_servers + 1) for s in states[:60]],
                         perturb=["paraphrase"], perturb_prob=1.0)  # fmt: skip
    unk = plain.tokenizer.convert_tokens_to_ids(UNK)
    assert any(unk in p.tolist() for p in ex.prompt)  # what the warning of a run from such a checkpoint is about


def test_the_fraction_perturbed_is_about_p_and_the_seeds_are_for_training() -> None:
    for p in (0.2, 0.5, 0.8):
        draws = perturbation_draws(600, FAMILIES, p, seed=1)
        hit = [d for d in draws if d is not None]
        assert abs(len(hit) / 600 - p) < 0.06, p
        seeds = np.array([d[1] for d in hit])
        assert (seeds >= TRAIN_PERTURB_SEEDS[0]).all() and (seeds < TRAIN_PERTURB_SEEDS[1]).all()
        assert (seeds >= EVAL_PERTURB_SEEDS).all() and len(set(seeds.tolist())) == len(seeds)
        counts = np.array([sum(d[0] == f for d in hit) for f in FAMILIES])
        assert counts.min() > 0.5 * len(hit) / len(FAMILIES)  # about uniform
    assert perturbation_draws(50, FAMILIES, 0.0, seed=1) == [None] * 50
    assert perturbation_draws(50, [], 1.0, seed=1) == [None] * 50
    assert None not in perturbation_draws(50, ["units"], 1.0, seed=1)


def test_the_same_config_encodes_the_same_examples(lean, states: list) -> None:
    labels = np.arange(len(states)) % 2
    costs = [np.zeros(s.n_servers + 1) for s in states]
    kw = dict(perturb=["units", "paraphrase", "shuffle-servers"], perturb_prob=0.5, perturb_seed=4)
    a = encode_examples(lean, states, labels, costs, **kw)
    b = encode_examples(lean, states, labels, costs, **kw)
    assert all(np.array_equal(x, y) for x, y in zip(a.prompt, b.prompt))
    assert all(np.array_equal(x, y) for x, y in zip(a.completion, b.completion))
    c = encode_examples(lean, states, labels, costs, **{**kw, "perturb_seed": 5})
    assert not all(np.array_equal(x, y) for x, y in zip(a.prompt, c.prompt))
    plain = encode_examples(lean, states, labels, costs)
    assert all(np.array_equal(x, y) for x, y in zip(a.completion, plain.completion))  # answers are never perturbed


def test_a_bad_family_names_the_option_and_the_value(records: Path, tmp_path: Path) -> None:
    with pytest.raises(SFTError, match=r"perturb.*'nope'.*--perturb") as err:
        make_config(template="lean-v2", data=[str(records)], out=str(tmp_path / "o"), perturb=["units", "nope"])
    assert "\n" not in str(err.value) and "shuffle-fields" in str(err.value)
    with pytest.raises(SFTError, match="perturb_prob"):
        make_config(template="lean-v2", data=[str(records)], out=str(tmp_path / "o"), perturb=["units"], perturb_prob=1.5)
    res = CliRunner().invoke(app, ["sft", "--data", str(records), "--out", str(tmp_path / "cli"), "--template", "lean-v2",
                                   "--perturb", "nope"])  # fmt: skip
    assert res.exit_code != 0 and isinstance(res.exception, SFTError)
    assert "--perturb" in str(res.exception) and "'nope'" in str(res.exception)


@pytest.mark.parametrize("template,blamed,message", [
    ("estimates", "shuffle-servers", "perturbations apply to the templates with a style"),  # no style: any family
    ("paper-zh", "paraphrase", "perturbation 'paraphrase' is not defined for the"),  # its shuffles are fine
])  # fmt: skip
def test_a_template_the_family_does_not_fit_stops_the_run_at_its_start(tmp_path: Path, template: str, blamed: str,
                                                                        message: str) -> None:  # fmt: skip
    # the data file does not exist: the refusal comes before the data are read
    cfg = make_config(template=template, data=[str(tmp_path / "none.jsonl")], out=str(tmp_path / "run"),
                      perturb=["shuffle-servers", "paraphrase"], **TINY)  # fmt: skip
    with pytest.raises(SFTError, match=message) as err:
        train_sft(cfg, log=lambda s: None)
    assert str(err.value).startswith(f"--perturb {blamed}: ")
    assert not (tmp_path / "run" / DATASET_FILE).exists()


def test_a_tiny_robust_sft_run_end_to_end(records: Path, tmp_path: Path) -> None:
    out = tmp_path / "robust"
    res = CliRunner().invoke(app, ["sft", "--data", str(records), "--out", str(out), "--template", "lean-v2",
                                   "--perturb", "units", "--perturb", "paraphrase", "--perturb", "all",
                                   "--perturb-prob", "0.7", "--perturb-seed", "3", "--steps", "4", "--batch-size", "8",
                                   "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "64",
                                   "--no-progress", "--threads", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "perturbed" in res.output
    summary = json.loads((out / "train_summary.json").read_text())
    want = {"perturb": ["units", "paraphrase", "all"], "perturb_prob": 0.7, "perturb_seed": 3}
    assert summary["steps"] == 4 and {k: summary["config"][k] for k in want} == want
    meta = json.loads((out / "comllm.json").read_text())
    assert {k: meta["training"]["config"][k] for k in want} == want
    # what a resume would tokenize again is what the run trained on, with no unknown word
    lm = load_lm(out)
    states, labels, costs = read_record_states([str(records)])
    again = encode_examples(lm, states, labels, costs, **want)
    saved = _read_examples(out / DATASET_FILE, log=lambda s: None)
    assert saved is not None and len(saved) == len(again) == len(states)
    assert all(np.array_equal(x, y) for x, y in zip(saved.prompt, again.prompt))
    unk = lm.tokenizer.convert_tokens_to_ids(UNK)
    assert not any(unk in p.tolist() for p in saved.prompt)
    plain = lm.encode_prompts([lm.prompt_text(s) for s in states])
    frac = np.mean([not np.array_equal(p, q) for p, q in zip(saved.prompt, plain)])
    assert 0.55 < frac < 0.85


def test_a_checkpoint_without_the_words_gets_a_warning(records: Path, states: list, tmp_path: Path) -> None:
    new_embedded_lm("lean-v2", states[:20], TINY_SHAPE, 0).save(tmp_path / "plain")
    logs: list[str] = []
    cfg = make_config(model=str(tmp_path / "plain"), data=[str(records)], out=str(tmp_path / "run"), steps=1,
                      perturb=["paraphrase"], **TINY)  # fmt: skip
    train_sft(cfg, log=logs.append)
    assert any(m.startswith("perturbed ") for m in logs)
    assert any(m.startswith("warning: ") and "outside the vocabulary" in m for m in logs), logs


def test_the_cost_head_trains_on_the_canonical_prompts_of_a_robust_run(lean, states: list) -> None:
    import torch

    from comllm.cost import action_costs
    from comllm.lm.sft import _add_cost_head, cost_head_loss
    from comllm.state import StateBatch

    labels = np.zeros(len(states), dtype=np.int64)
    stale = [np.full(s.n_servers + 1, 7.0) for s in states]
    draws = perturbation_draws(len(states), ["shuffle-servers", "paraphrase"], 0.5, 2)
    ex = encode_examples(lean, states, labels, stale, with_line_ends=True, perturb=["shuffle-servers", "paraphrase"],
                         perturb_prob=0.5, perturb_seed=2)  # fmt: skip
    assert ex.line_ends is not None
    # every prompt has one line end per action; a perturbed one's server lines are found by their names
    assert [len(e) for e in ex.line_ends] == [s.n_servers + 1 for s in states]
    newline = lean.tokenizer.convert_tokens_to_ids("\n")
    moved = 0
    for p, e, s, d in zip(ex.prompt, ex.line_ends, states, draws):
        assert all(p[k] == newline for k in e)
        starts = [max(k for k in np.flatnonzero(p == newline) if k < end) + 1 for end in e[1:]]
        assert [lean.tokenizer.convert_ids_to_tokens(int(p[k + 1])) for k in starts] == [f" {a}" for a in range(1, s.n_servers + 1)]
        moved += bool(d) and list(e) != sorted(e)
    assert moved > 0  # shuffled server lines: their ends are not in line order
    # a fresh-view template's targets are the estimates its prompt prints, not the records' stale costs
    assert len({s.n_servers for s in states}) > 1
    for c, s in zip(ex.costs, states):
        assert np.allclose(c, action_costs(StateBatch.from_states([s]), incoming=True)[0])
    lm = dataclasses.replace(lean)
    _add_cost_head(lm)
    idx = np.arange(16)
    from comllm.lm.sft import collate

    ids, _, lab = collate(ex, idx, lm.tokenizer.pad_token_id, lm.tokenizer.n_words)
    ce, aux = cost_head_loss(lm.model, ids, lab, ex, idx, lambda n: [1] * (n + 1))
    assert torch.isfinite(ce) and torch.isfinite(aux) and aux > 0
    only = np.array([i for i in range(len(states)) if draws[i]][:4])  # a batch of perturbed prompts only
    ids, _, lab = collate(ex, only, lm.tokenizer.pad_token_id, lm.tokenizer.n_words)
    _, aux = cost_head_loss(lm.model, ids, lab, ex, only, lambda n: [1] * (n + 1))
    assert torch.isfinite(aux)


def test_renumbered_prompts_name_other_ids_and_their_answers_follow(lean, states: list) -> None:
    from comllm.lm.sft import renumber_draws

    n = np.array([s.n_servers for s in states])
    ids = renumber_draws(n, 0.5, 24, 3)
    assert ids == renumber_draws(n, 0.5, 24, 3) and ids != renumber_draws(n, 0.5, 24, 4)
    hit = [i for i in ids if i is not None]
    assert 0.35 < len(hit) / len(ids) < 0.65
    for i, k in zip(ids, n):
        if i is not None:
            assert len(i) == k and list(i) == sorted(set(i)) and 1 <= i[0] and i[-1] <= 24
    assert max(x for i in hit for x in i) > 6  # ids no 2-4-server state has
    labels = np.array([s.n_servers for s in states])  # the last server: its id is renamed
    costs = [np.zeros(s.n_servers + 1) for s in states]
    ex = encode_examples(lean, states, labels, costs, with_line_ends=True, renumber=0.5, renumber_max=24,
                         renumber_seed=3)  # fmt: skip
    plain = encode_examples(lean, states, labels, costs, with_line_ends=True)
    tok = lean.tokenizer
    for k, (s, i) in enumerate(zip(states, ids)):
        text = tok.decode(ex.prompt[k].tolist())
        answer = tok.decode(ex.completion[k].tolist())
        if i is None:
            assert np.array_equal(ex.prompt[k], plain.prompt[k]) and np.array_equal(ex.completion[k], plain.completion[k])
        else:
            assert f"server {i[-1]}:" in text and answer.strip().startswith(f"server {i[-1]}")
            # the line names of the cost head are the new ids' tokens
            assert ex.line_names is not None
            assert ex.line_names[k].tolist()[1:] == [tok.convert_tokens_to_ids(f" {x}") for x in i]
    # a perturbed prompt keeps its ids
    mixed = encode_examples(lean, states, labels, costs, perturb=["paraphrase"], perturb_prob=1.0, renumber=1.0)
    assert all(np.array_equal(a, b) for a, b in zip(mixed.completion, plain.completion))


def test_renumbering_needs_a_compact_template(states: list) -> None:
    lm = new_embedded_lm("paper-v2", states[:20], TINY_SHAPE, 0)
    labels = np.zeros(len(states), dtype=np.int64)
    with pytest.raises(SFTError, match="--renumber needs a compact template"):
        encode_examples(lm, states, labels, [np.zeros(s.n_servers + 1) for s in states], renumber=1.0)


def test_the_quick_eval_of_a_fresh_view_model_is_against_the_printed_estimates(lean, states: list) -> None:
    from comllm.lm.policy import LMPolicy
    from comllm.lm.sft import printed_estimates, quick_eval

    some = states[:40]
    stale = [np.arange(s.n_servers + 1, dtype=float)[::-1] + 1 for s in some]  # argmin: the last server
    res = quick_eval(lean, some, stale)
    actions = LMPolicy(lean).decide(some)
    best = [int(np.argmin(e)) for e in printed_estimates(some, get_template("lean-v2"))]
    assert res["acc"] == pytest.approx(float(np.mean(actions == np.array(best))))


def test_a_lean_sharing_model_regresses_and_is_scored_against_the_sharing_estimate(states: list) -> None:
    """``lean-sharing`` prints greedy:sharing's estimate: its cost head's targets and its quick eval's oracle are that."""
    from comllm.cost import action_costs
    from comllm.lm.policy import DecodeOptions, LMPolicy
    from comllm.lm.sft import _add_cost_head, quick_eval
    from comllm.state import StateBatch

    lm = new_embedded_lm("lean-sharing", states[:20], TINY_SHAPE, 0)
    _add_cost_head(lm)
    some = states[:40]
    sharing = [action_costs(StateBatch.from_states([s]), incoming=True, incoming_active=True, sharing=True)[0] for s in some]
    incoming = [action_costs(StateBatch.from_states([s]), incoming=True)[0] for s in some]
    assert any(not np.allclose(a, b) for a, b in zip(sharing, incoming))  # the two estimates differ on these states
    ex = encode_examples(lm, some, np.zeros(len(some), dtype=np.int64), [np.zeros(s.n_servers + 1) for s in some],
                         with_line_ends=True)  # fmt: skip
    assert all(np.array_equal(c, e) for c, e in zip(ex.costs, sharing))
    actions = LMPolicy(lm, DecodeOptions(mode="cost")).decide(some)
    best = np.array([int(np.argmin(e)) for e in sharing])
    assert quick_eval(lm, some, [], mode="cost")["acc"] == pytest.approx(float(np.mean(actions == best)))


def test_the_quick_eval_decides_in_the_runs_mode(states: list) -> None:
    """A run trained to decide by its cost head (``--mode cost``) is evaluated by it, as its checkpoint decides."""
    from comllm.lm.policy import DecodeOptions, LMPolicy
    from comllm.lm.sft import _add_cost_head, printed_estimates, quick_eval

    lm = new_embedded_lm("lean-v2", states[:20], TINY_SHAPE, 0)
    _add_cost_head(lm)
    some = states[:40]
    best = np.array([int(np.argmin(e)) for e in printed_estimates(some, get_template("lean-v2"))])
    for mode in ("score", "cost"):
        actions = LMPolicy(lm, DecodeOptions(mode=mode)).decide(some)
        assert quick_eval(lm, some, [], mode=mode)["acc"] == pytest.approx(float(np.mean(actions == best)))
    assert not np.array_equal(LMPolicy(lm, DecodeOptions(mode="cost")).decide(some), LMPolicy(lm).decide(some))


def test_line_gaps_move_the_lines_and_nothing_else() -> None:
    import torch

    from comllm.lm.sft import gapped_positions

    nl = 9
    ids = torch.tensor([[1, 2, nl, 3, 4, nl, 5, 6], [1, nl, 2, nl, 3, nl, 4, 0]])
    assert gapped_positions(ids, nl, 0, [[0], [1]]) is None
    pos = gapped_positions(ids, nl, 5, [[0, 3, 1], [0, 3, 2]])
    again = gapped_positions(ids, nl, 5, [[0, 3, 1], [0, 3, 2]])
    assert torch.equal(pos, again) and pos.shape == ids.shape
    step = pos[:, 1:] - pos[:, :-1]
    after_newline = (ids[:, :-1] == nl)
    assert (step[~after_newline] == 1).all()  # inside a line, positions are contiguous
    assert ((step[after_newline] >= 1) & (step[after_newline] <= 6)).all()
    assert (pos[:, 0] == 0).all()
    many = [gapped_positions(ids, nl, 5, [[0, s, 1], [0, s, 2]]) for s in range(20)]
    assert len({tuple(p[0].tolist()) for p in many}) > 1  # the steps draw other gaps


def test_a_tiny_sft_run_with_line_gaps_trains_and_resumes_exactly(records: Path, tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file

    out = tmp_path / "gaps"
    res = CliRunner().invoke(app, ["sft", "--data", str(records), "--out", str(out), "--template", "lean-v2",
                                   "--line-gaps", "6", "--cost-head", "1.0", "--steps", "4", "--save-every", "2",
                                   "--batch-size", "8", "--hidden", "32", "--layers", "1", "--heads", "2",
                                   "--intermediate", "64", "--no-progress", "--threads", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((out / "comllm.json").read_text())["training"]["config"]["line_gaps"] == 6
    cut = tmp_path / "cut"  # the finished run cut back to its mid checkpoint, resumed
    shutil.copytree(out, cut)
    for p in cut.glob("checkpoint-*"):
        if p.name != "checkpoint-2":
            shutil.rmtree(p)
    (cut / "model.safetensors").unlink()
    res = CliRunner().invoke(app, ["sft", "--data", str(records), "--out", str(cut), "--template", "lean-v2", "--resume",
                                   "--no-progress", "--threads", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    a, b = load_file(out / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    with pytest.raises(SFTError, match="line_gaps.*listwise"):
        make_config(template="lean-v2", data=[str(records)], out=str(tmp_path / "o"), line_gaps=4, listwise=1.0)


def test_sft_mode_names_how_the_saved_model_decides(tmp_path: Path) -> None:
    """``--mode cost`` needs a cost head on a new model; the error names the field and the value."""
    with pytest.raises(SFTError, match="option 'mode' = 'cost'"):
        make_config(template="lean-v2", data=["x.jsonl"], out=str(tmp_path / "o"), mode="cost")
    assert make_config(template="lean-v2", data=["x.jsonl"], out=str(tmp_path / "o"), mode="cost", cost_head=1.0).mode == "cost"
    (tmp_path / "x.jsonl").write_text("")
    res = CliRunner().invoke(app, ["sft", "--data", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "o"),
                                   "--template", "lean-v2", "--mode", "fast"])  # fmt: skip
    assert isinstance(res.exception, SFTError) and "option 'mode' = 'fast'" in str(res.exception)

"""All-action look-ahead policy improvement (comllm.lacs.improve): the loss, the coordinated
rollouts, and a tiny model's run, resumed."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from comllm.lacs.improve import (
    Collected, ImproveConfig, ImproveError, advantages, all_action_loss, collect, improve, regress_loss, score,
    soft_best_loss, soft_targets, value_targets,
)  # fmt: skip
from comllm.lacs.lookahead import lacs_evaluate
from comllm.policies import make_policy
from comllm.scenario import load_scenario
from comllm.sim import MECSimulator
from tests.fixtures.text_states import random_state
from tests.test_lm_support import tiny_cost_lm, tiny_embedded

torch.set_num_threads(1)


def test_all_action_loss_is_the_exact_expectation_and_its_gradient_moves_to_the_best_action():
    logits = torch.tensor([[0.3, -1.0, 0.5, 0.0]], requires_grad=True)
    scores = np.array([[4.0, 2.0, 6.0, 5.0]])  # action 1 has the lowest LACS score
    adv = torch.as_tensor(advantages(scores), dtype=torch.float32)
    ref = torch.log_softmax(logits.detach(), dim=-1)
    loss, m = all_action_loss(logits, adv, ref, beta=0.0)
    p = torch.softmax(logits.detach(), dim=-1)
    assert torch.isclose(loss, -(p * adv).sum()).item()  # -Σ π(a)·A(a), exactly
    assert m["kl"] == pytest.approx(0.0, abs=1e-7)
    loss.backward()
    step = logits.detach() - 0.5 * logits.grad
    assert torch.softmax(step, -1)[0, 1] > p[0, 1]  # more probability on the best action
    assert torch.softmax(step, -1)[0, 2] < p[0, 2]  # less on the worst
    # the KL term pulls back toward the reference
    shifted = torch.tensor([[0.3, 2.0, 0.5, 0.0]], requires_grad=True)
    _, m2 = all_action_loss(shifted, adv, ref, beta=1.0)
    assert m2["kl"] > 0


def test_advantages_are_group_relative_and_lower_score_is_better():
    a = advantages(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    assert a[0, 0] > 0 > a[0, 2] and abs(a[0].sum()) < 1e-9
    assert np.allclose(a[1], 0.0)  # every action alike: no signal, no blow-up


def test_coordinated_rollouts_fix_what_the_policy_did_with_the_slot():
    """Hand-built slot: three tasks where greedy would herd onto server 1; the policy spreads them.
    With others=policy the rollouts fix the policy's actions for the other two tasks, so the
    score of each action differs from the greedy-coordinated one, and equals a LACS evaluation
    with those actions fixed."""
    sc = load_scenario("small", {"arrival_prob": 0.0})
    sim = MECSimulator(sc, seed=0)
    sim.set_arrivals([0, 1, 2], [4.5, 4.5, 4.5])
    greedy = make_policy("greedy").act(sim.observe())
    assert len(set(greedy.tolist())) == 1  # greedy herds
    spread = np.array([1, 2, 3])

    cfg = ImproveConfig(warmup=0, collect_slots=1, states_per_slot=3, rollouts=4, horizon=2, others="policy")
    data = Collected()  # what collect() records for this slot under a policy that spreads the tasks
    snap = sim.snapshot()
    for dev in (0, 1, 2):
        data.snapshots.append(snap)
        data.devices.append(dev)
        data.fixed.append({m: int(spread[m]) for m in (0, 1, 2) if m != dev})
        data.states.append(sim.observe().state(dev))
    coordinated = score(data, cfg, 1)
    cfg_g = ImproveConfig(warmup=0, collect_slots=1, states_per_slot=3, rollouts=4, horizon=2, others="greedy")
    data_g = Collected(data.snapshots, data.devices, [{}, {}, {}], data.states)
    herded = score(data_g, cfg_g, 1)
    assert not np.allclose(coordinated, herded)
    direct = lacs_evaluate(snap, 0, cfg.lacs(1), first_actions={1: 2, 2: 3}).score
    np.testing.assert_allclose(coordinated[0], direct)


@pytest.mark.parametrize("decisions", ["simultaneous", "sequential"])
def test_collect_records_the_policys_other_decisions(decisions):
    sc = load_scenario("small", {"arrival_prob": 0.8, "decisions": decisions})
    policy = make_policy("round-robin")
    cfg = ImproveConfig(warmup=2, collect_slots=5, states_per_slot=2)
    data = collect(policy, sc, cfg, 1)
    assert len(data) > 0 and len(data.snapshots) == len(data.devices) == len(data.fixed) == len(data.states)
    for dev, fixed, state in zip(data.devices, data.fixed, data.states):
        assert dev not in fixed
        if decisions == "sequential":
            assert state.slot_pending == state.slot_arrivals - 1 - len(fixed)
        else:
            assert len(fixed) == state.slot_arrivals - 1


def test_bad_settings_are_one_line_naming_the_option():
    with pytest.raises(ImproveError, match="--others = 'nobody'"):
        ImproveConfig(others="nobody")
    with pytest.raises(ImproveError, match="--lr"):
        ImproveConfig(lr=float("inf"))
    with pytest.raises(ImproveError, match="--perturb = 'upside-down'"):
        ImproveConfig(objective="regress", perturb=("upside-down",))
    with pytest.raises(ImproveError, match="--objective = 'advantage'.*--renumber"):
        ImproveConfig(renumber=0.5)
    with pytest.raises(ImproveError, match="--renumber = 1.5"):
        ImproveConfig(objective="regress", renumber=1.5)
    with pytest.raises(ImproveError, match="--other-policy = 'smart': must be one of greedy, local, random, greedy-incoming, greedy-sharing"):
        ImproveConfig(other_policy="smart")
    assert ImproveConfig(other_policy="greedy-incoming").lacs(3).other_policy == "greedy-incoming"
    assert ImproveConfig(other_policy="greedy-sharing").lacs(3).other_policy == "greedy-sharing"


def _lines(enc, k):
    """Prompt ``k`` of ``enc``: its action lines as token tuples, in action order (from its line ends)."""
    p, ends = np.asarray(enc.prompts[k]), enc.ends[k]
    newlines = np.flatnonzero(p == p[int(ends[0])])
    return [tuple(p[newlines[newlines < e].max() + 1 : e].tolist()) for e in ends.tolist()]


def test_renumbered_and_perturbed_training_prompts_keep_each_actions_line():
    from comllm.lacs.improve import _Scorer

    rng = np.random.default_rng(9)
    states = [random_state(rng, 3, history_len=10) for _ in range(12)]
    lm = tiny_cost_lm("lean-v2", states)
    scorer = _Scorer(lm, "regress")
    plain = scorer.encode(states)
    renamed = scorer.encode(states, ImproveConfig(objective="regress", renumber=1.0, renumber_max=24), seed=3)
    shuffled = scorer.encode(states, ImproveConfig(objective="regress", renumber=1.0, renumber_order="any"), seed=3)
    moved = scorer.encode(states, ImproveConfig(objective="regress", perturb=("shuffle-servers",), perturb_prob=1.0), seed=3)
    assert sum(r != p for r, p in zip(renamed.prompts, plain.prompts)) >= 10
    assert sum(m != p for m, p in zip(moved.prompts, plain.prompts)) >= 6
    for k in range(len(states)):
        # the same lines in action order; renaming changes one token (the id) of each server line, moving none
        assert _lines(moved, k) == _lines(plain, k)
        for enc in (renamed, shuffled):
            for a, (r, p) in enumerate(zip(_lines(enc, k), _lines(plain, k))):
                assert len(r) == len(p) and sum(x != y for x, y in zip(r, p)) <= (0 if a == 0 else 1)
    assert scorer.logits(lm.model, renamed).shape == (len(states), 4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    rng = np.random.default_rng(5)
    states = [random_state(rng, 3, history_len=10) for _ in range(30)]
    path = tmp_path_factory.mktemp("lm") / "tiny"
    tiny_embedded("estimates-compact", states).save(path)
    return path


def _cfg(tiny, out, **kw):
    base = dict(model=str(tiny), out=str(out), scenario="small", iterations=2, warmup=5, collect_slots=10,
                states_per_slot=2, rollouts=2, horizon=2, epochs=1, batch_size=8, lr=1e-3, eval_slots=20,
                eval_seeds=1, workers=1)  # fmt: skip
    base.update(kw)
    return ImproveConfig(**base)


def _log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_model_runs_two_iterations_and_resume_continues_exactly(tiny, tmp_path):
    full = improve(_cfg(tiny, tmp_path / "full"), log=lambda s: None)
    rows = _log(tmp_path / "full" / "train_log.csv")
    assert [r["iteration"] for r in rows] == ["1", "2"]
    assert all(np.isfinite(float(r["eval_latency"])) for r in rows)
    # a run stopped after iteration 1, then resumed, ends on the same weights and log
    improve(_cfg(tiny, tmp_path / "part", iterations=1), log=lambda s: None)
    with pytest.raises(ImproveError, match="--resume"):
        improve(_cfg(tiny, tmp_path / "part"), log=lambda s: None)
    resumed = improve(_cfg(tiny, tmp_path / "part", resume=True), log=lambda s: None)
    from safetensors.torch import load_file

    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["eval_latency"] for r in _log(tmp_path / "part" / "train_log.csv")] == [r["eval_latency"] for r in rows]


def test_every_config_field_is_a_cli_option_with_its_default():
    import dataclasses

    from typer.testing import CliRunner

    from comllm.cli import app

    res = CliRunner().invoke(app, ["improve", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for f in dataclasses.fields(ImproveConfig):
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        assert flag in res.output, flag


def test_a_tiny_models_closed_loop_latency_does_not_get_worse_over_two_iterations(tmp_path):
    """On ``small`` (where the planner beats greedy) a fresh tiny model decides poorly; two
    all-action iterations must not make its closed-loop latency worse (same evaluation seeds)."""
    from comllm.evaluate.closed_loop import evaluate_closed_loop
    from comllm.lacs.improve import evaluate
    from comllm.lm.loading import load_lm
    from comllm.lm.policy import LMPolicy

    sc = load_scenario("small")
    slots = dict(slots=300, seeds=[0, 1], warmup=20)
    planner = evaluate_closed_loop(sc, make_policy("lacs-planner:3,4", sc), **slots)[0]["avg_latency"]
    greedy = evaluate_closed_loop(sc, make_policy("greedy", sc), **slots)[0]["avg_latency"]
    assert planner < greedy  # the setting the stage is for
    rng = np.random.default_rng(21)
    path = tmp_path / "start"
    tiny_embedded("lean-v2", [random_state(rng, 3, history_len=10) for _ in range(30)], seed=4).save(path)
    cfg = _cfg(path, tmp_path / "run", iterations=2, collect_slots=60, states_per_slot=3, rollouts=4, horizon=3,
               epochs=2, lr=1e-3, beta=0.0, eval_slots=150, eval_seeds=2)  # fmt: skip
    before = evaluate(LMPolicy(load_lm(str(path))), sc, cfg)["eval_latency"]
    improve(cfg, log=lambda s: None)
    after = [float(r["eval_latency"]) for r in _log(tmp_path / "run" / "train_log.csv")]
    assert max(after) <= before and after[-1] < before, (before, after)  # measured: 8.64 -> 8.64, 5.58


def test_soft_best_targets_rank_every_action_and_the_loss_moves_toward_the_lowest_score():
    scores = np.array([[4.0, 3.0, 9.0], [2.0, 2.0, 2.5]])
    q = soft_targets(scores, tau=0.5)
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    assert q[0].argmax() == 1 and q[1, 0] == pytest.approx(q[1, 1])
    np.testing.assert_allclose(soft_targets(scores, 1e-3)[0], [0, 1, 0], atol=1e-9)
    logits = torch.zeros(2, 3, requires_grad=True)
    ref = torch.log_softmax(torch.zeros(2, 3), dim=-1)
    loss, m = soft_best_loss(logits, torch.as_tensor(q, dtype=torch.float32), ref, beta=0.0)
    assert float(loss) == pytest.approx(float(-(torch.as_tensor(q) * torch.log(torch.full((2, 3), 1 / 3))).sum(1).mean()))
    loss.backward()
    assert int(torch.argmin(logits.grad[0])) == 1  # gradient descent raises the best action's logit


def test_regress_fits_every_actions_look_ahead_value_and_the_least_is_the_choice():
    scores = np.array([[4.0, 3.0, 900.0], [2.0, 2.0, 2.5]])
    y = value_targets(scores)
    assert y[0, 2] == pytest.approx(np.log1p(100.0)) and y[0].argmin() == 1  # clipped, order kept
    costs = torch.zeros(2, 3, requires_grad=True)
    target = torch.as_tensor(y, dtype=torch.float32)
    loss, m = regress_loss(costs, target, torch.zeros(2, 3), beta=0.0)
    assert float(loss.detach()) == pytest.approx(float(target.pow(2).mean()))
    assert m["expected_advantage"] == pytest.approx(-float(loss.detach()))
    loss.backward()
    assert (torch.sign(-costs.grad) == torch.sign(target)).all()  # descent moves every estimate to its target
    anchored, _ = regress_loss(target.clone(), target, torch.zeros(2, 3), beta=0.5)
    assert float(anchored) == pytest.approx(0.5 * float(target.pow(2).mean()))  # beta: the pull back to the reference


def test_regress_trains_the_cost_head_and_decides_by_it(tmp_path):
    from comllm.lm.loading import load_lm
    from comllm.lm.model import set_line_positions

    rng = np.random.default_rng(8)
    lm = tiny_embedded("lean-v2", [random_state(rng, 3, history_len=10) for _ in range(30)], seed=2)
    lm.save(tmp_path / "plain")
    with pytest.raises(ImproveError, match="cost head"):
        improve(_cfg(tmp_path / "plain", tmp_path / "bad", objective="regress"), log=lambda s: None)
    with pytest.raises(ImproveError, match="--line-compare = 'none'.*--line-positions lines"):
        improve(_cfg(tmp_path / "plain", tmp_path / "bad2", objective="regress", line_compare="none"), log=lambda s: None)
    set_line_positions(lm.model.config, "lines", lm.tokenizer.convert_tokens_to_ids("\n"))
    lm.model.config.cost_head = True
    lm.model.cost_head = torch.nn.Linear(lm.model.config.hidden_size, 1)
    lm.save(tmp_path / "start")
    before = load_lm(str(tmp_path / "start")).model.cost_head.weight.clone()
    final = improve(_cfg(tmp_path / "start", tmp_path / "run", objective="regress", beta=0.0, epochs=3, lr=3e-3,
                         line_compare="none"), log=lambda s: None)  # fmt: skip
    rows = _log(tmp_path / "run" / "train_log.csv")
    mse = [-float(r["expected_advantage"]) for r in rows]
    assert mse[-1] < mse[0] and all(np.isfinite(float(r["eval_latency"])) for r in rows), mse
    assert not torch.equal(load_lm(str(final)).model.cost_head.weight, before)
    assert load_lm(str(final)).meta.mode == "cost"
    assert lm.model.config.line_compare == "earlier"  # the start's rule, replaced in the run, reference included
    assert {load_lm(str(p)).model.config.line_compare for p in (final, tmp_path / "run" / "reference")} == {"none"}
    # --cost-temperature: the run's policy draws, and its checkpoints say so
    drawn = improve(_cfg(tmp_path / "start", tmp_path / "drawn", objective="regress", iterations=1,
                         cost_temperature=0.05), log=lambda s: None)  # fmt: skip
    assert load_lm(str(drawn)).meta.cost_temperature == 0.05 and load_lm(str(final)).meta.cost_temperature == 0.0
    from comllm.policies import make_policy

    from comllm.scenario import load_scenario

    assert make_policy(f"llm:{drawn}", load_scenario("small")).options.cost_temperature == 0.05
    # --anchor start+lookahead: the run trains the head too, and says so in its config
    held = improve(_cfg(tmp_path / "start", tmp_path / "held", objective="regress", iterations=1, lr=3e-3,
                        anchor="start+lookahead"), log=lambda s: None)  # fmt: skip
    assert not torch.equal(load_lm(str(held)).model.cost_head.weight, before)
    assert json.loads((tmp_path / "held" / "config.json").read_text())["anchor"] == "start+lookahead"


def test_the_lookahead_anchor_holds_the_own_latency_and_adds_the_whole_increment():
    """anchor="start+lookahead": the regress loss's minimiser is the fit of the own latency pulled
    towards the start (what the stage without the look-ahead converges to) plus the whole increment."""
    rng = np.random.default_rng(3)
    current = rng.uniform(1, 8, (4, 5))
    future = rng.uniform(1, 8, (4, 5))
    from comllm.lacs.improve import lookahead_increment

    scores, inc = lookahead_increment(np.stack([current + 0.3 * future, current], axis=1))
    y, y_own = (torch.as_tensor(value_targets(v), dtype=torch.float32) for v in (scores, current))
    ref, beta = torch.as_tensor(rng.uniform(0, 2, (4, 5)), dtype=torch.float32), 1.0

    def minimiser(target, anchor):
        c = torch.zeros(4, 5, requires_grad=True)
        opt = torch.optim.LBFGS([c], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss, _ = regress_loss(c, target, anchor, beta)
            loss.backward()
            return loss

        opt.step(closure)
        return c.detach()

    without = minimiser(y_own, ref)  # the stage without the look-ahead (lam 0)
    inc_t = torch.as_tensor(inc, dtype=torch.float32)
    assert torch.allclose(minimiser(y, ref + inc_t), without + inc_t, atol=1e-4)
    assert torch.allclose(minimiser(y, ref), without + inc_t / (1 + beta), atol=1e-4)  # the plain anchor halves it
    with pytest.raises(ImproveError, match="--anchor = 'end'"):
        ImproveConfig(objective="regress", anchor="end")
    with pytest.raises(ImproveError, match="--anchor = 'start\\+lookahead': is for --objective regress"):
        ImproveConfig(anchor="start+lookahead")


def test_relative_value_targets_keep_the_differences_and_the_references_level():
    from comllm.lacs.improve import relative_targets

    target = torch.tensor([[1.0, 2.0, 4.0], [0.5, 0.5, 2.0]])
    ref = torch.tensor([[3.0, 3.0, 3.0], [0.0, 1.0, 2.0]])
    out = relative_targets(target, ref)
    assert torch.allclose(out.mean(dim=-1), ref.mean(dim=-1))
    assert torch.allclose(out - out[:, :1], target - target[:, :1])
    with pytest.raises(ImproveError, match="--value-target = 'median'"):
        ImproveConfig(objective="regress", value_target="median")


def test_renumber_draws_in_any_order_are_the_same_ids_shuffled():
    from comllm.lm.sft import renumber_draws

    n = np.array([6] * 50)
    inc, anyo = renumber_draws(n, 1.0, 24, 4), renumber_draws(n, 1.0, 24, 4, increasing=False)
    assert all(sorted(b) == list(a) for a, b in zip(inc, anyo))
    assert any(list(b) != sorted(b) for b in anyo)

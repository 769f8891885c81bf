"""LACS scores: what the look-ahead sees that the one-step cost does not, determinism, common
random numbers, and the reference's cheap estimator."""

import json

import numpy as np
import pytest

from comllm.cost import action_costs
from comllm.lacs import (
    LacsError,
    LacsSettings,
    future_sizes,
    lacs_evaluate,
    lacs_evaluate_batch,
    lacs_scores,
    lacs_scores_batch,
    reference_scores,
    reference_scores_batch,
    reference_terms,
)
from comllm.policies.heuristics import GreedyPolicy
from comllm.scenario import load_scenario, make_scenario
from comllm.sim import MECSimulator
from comllm.state import StateBatch, TaskState
from tests.fixtures.cost_states import cost_state, written_out_costs

RATE_30 = 30.0 * 0.1 / 0.297  # Mbit/slot of a 30 GHz server
LOCAL_RATE = 2.5 * 0.1 / 0.297  # Mbit/slot of a 2.5 GHz device


def two_twin_servers(arrival_prob=0.0, n_devices=5):
    return make_scenario(
        {
            "n_devices": n_devices,
            "servers": [{"type": "standard", "ghz": 30.0}] * 2,
            "arrival_prob": arrival_prob,
            "channel": {"model": "static"},
        }
    )


def about_to_receive(arrival_prob=0.0):
    """Slot 1: devices 1-4 are sending 4 Mbit each to server 1 (they join it in slot 3);
    device 0's 3 Mbit task arrives. Both servers are idle now, so their one-step costs are equal."""
    sim = MECSimulator(two_twin_servers(arrival_prob), seed=0)
    sim.set_arrivals([1, 2, 3, 4], [4.0] * 4)
    sim.step([1, 1, 1, 1])
    sim.set_arrivals([0], [3.0])
    return sim


def paper6_moments(n=6, seed=0):
    """Snapshots of paper-6 under the greedy oracle after a warm-up, with a deciding device each."""
    sim = MECSimulator(load_scenario("paper-6"), seed=seed)
    greedy = GreedyPolicy()
    out = []
    for t in range(200 + 3 * n):
        batch = sim.observe()
        if t >= 200 and len(batch) >= 2 and len(out) < n:
            out.append((sim.snapshot(), int(batch.device[1])))
        sim.step(greedy.act(batch))
    return out


def test_lacs_avoids_the_server_that_is_about_to_fill_up():
    sim = about_to_receive()
    cost = action_costs(sim.observe())[0]
    assert cost[1] == cost[2]  # the one-step model cannot tell them apart ...
    assert GreedyPolicy().act(sim.observe())[0] == 1  # ... and the oracle takes the first
    res = lacs_evaluate(sim.snapshot(), 0)
    # hand-computed realised latencies (no other arrivals, so no future term):
    # server 2: sent in slots 1-3, alone in slot 4: 3 + 3/R
    # server 1: joins the four others in slot 4 (5 active), finishes alone in slot 5
    assert res.current[2] == pytest.approx(3 + 3 / RATE_30)
    assert res.current[1] == pytest.approx(4 + (3 - RATE_30 / 5) / RATE_30)
    assert res.current[0] == pytest.approx(3 / LOCAL_RATE)  # the device CPU is idle
    np.testing.assert_array_equal(res.future, 0.0)
    np.testing.assert_array_equal(res.completed, 1.0)
    assert np.argmin(res.score) == 2


def test_lacs_still_prefers_the_quiet_server_with_random_traffic():
    sim = about_to_receive(arrival_prob=0.3)
    scores = lacs_scores(sim.snapshot(), 0, horizon=5, rollouts=32, seed=1)
    assert scores[2] < scores[1]


def test_scores_are_current_plus_lambda_future():
    snap, dev = paper6_moments(1)[0]
    a = lacs_evaluate(snap, dev, LacsSettings(lam=0.0))
    b = lacs_evaluate(snap, dev, LacsSettings(lam=0.7))
    np.testing.assert_array_equal(a.score, a.current)
    np.testing.assert_array_equal(b.current, a.current)
    np.testing.assert_allclose(b.score, b.current + 0.7 * b.future)
    assert (a.future > 0).all() and (a.current > 0).all()
    assert 1 <= a.slots <= 5 + 10


def test_scores_are_deterministic_given_a_seed():
    moments = paper6_moments(3)
    snap, dev = moments[0]
    s1 = lacs_scores(snap, dev, seed=7)
    s2 = lacs_scores(snap, dev, seed=7)
    np.testing.assert_array_equal(s1, s2)
    assert not np.array_equal(s1, lacs_scores(snap, dev, seed=8))
    # a state's scores do not depend on the batch it is scored in
    batch = lacs_scores_batch([m[0] for m in moments], [m[1] for m in moments], seed=7)
    np.testing.assert_array_equal(batch[0], s1)
    for (sn, d), got in zip(moments, batch):
        np.testing.assert_array_equal(got, lacs_scores(sn, d, seed=7))
    # the JSON form of a snapshot scores the same every time, as a dict or a string
    d = snap.to_dict()
    np.testing.assert_array_equal(lacs_scores(d, dev), lacs_scores(json.dumps(d), dev))


def test_identical_candidates_score_exactly_the_same():
    snap, dev = paper6_moments(1)[0]
    full = lacs_evaluate(snap, dev)
    dup = lacs_evaluate(snap, dev, candidates=[2, 2, 5, 5, 0])
    assert dup.score[0] == dup.score[1] and dup.score[2] == dup.score[3]
    # common random numbers: a candidate scores the same whichever others are scored with it
    np.testing.assert_array_equal(dup.score, full.score[[2, 2, 5, 5, 0]])


def test_two_identical_idle_servers_differ_by_exactly_zero():
    sc = make_scenario(
        {
            "n_devices": 6,
            "servers": [{"type": "standard", "ghz": 30.0}] * 3,
            "arrival_prob": 0.4,
            "channel": {"model": "gauss-markov"},
        }
    )
    sim = MECSimulator(sc, seed=4)
    sim.set_arrivals([0, 3], [4.0, 2.5])
    res = lacs_evaluate(sim.snapshot(), 3, LacsSettings(other_policy="local", rollouts=8))
    assert res.score[1] - res.score[2] == 0.0
    assert res.score[2] - res.score[3] == 0.0
    assert res.future[1] > 0  # the rollouts did simulate other tasks


def test_other_policies_and_drop_cost_change_the_outcome():
    snap, dev = paper6_moments(1)[0]
    greedy = lacs_evaluate(snap, dev)
    local = lacs_evaluate(snap, dev, LacsSettings(other_policy="local"))
    rand = lacs_evaluate(snap, dev, LacsSettings(other_policy="random"))
    assert not np.array_equal(greedy.future, local.future)
    assert not np.array_equal(greedy.future, rand.future)
    # everyone computing locally on 0.84 Mbit/slot CPUs drops tasks: the drop cost shows
    cheap = lacs_evaluate(snap, dev, LacsSettings(other_policy="local", drop_cost=10.0))
    assert (cheap.future < local.future).all()
    deadline = lacs_evaluate(snap, dev, LacsSettings(other_policy="local", drop_cost="deadline"))
    np.testing.assert_array_equal(deadline.score, cheap.score)  # paper-6's deadline is 10 slots


def test_bad_inputs_name_the_argument():
    sim = about_to_receive()
    snap = sim.snapshot()
    with pytest.raises(LacsError, match="device=3 has no task arriving"):
        lacs_scores(snap, 3)
    with pytest.raises(LacsError, match="device=9"):
        lacs_scores(snap, 9)
    with pytest.raises(LacsError, match="horizon=-1"):
        lacs_scores(snap, 0, horizon=-1)
    with pytest.raises(LacsError, match="rollouts=0"):
        lacs_scores(snap, 0, rollouts=0)
    with pytest.raises(LacsError, match="other_policy='smart'"):
        lacs_scores(snap, 0, other_policy="smart")
    with pytest.raises(LacsError, match="seed=-1"):
        lacs_scores(snap, 0, seed=-1)
    with pytest.raises(LacsError, match="drop_cost='often'"):
        lacs_scores(snap, 0, drop_cost="often")
    with pytest.raises(LacsError, match=r"candidates\[0\]"):
        lacs_evaluate(snap, 0, candidates=[0, 3])
    with pytest.raises(LacsError, match="not valid JSON"):
        lacs_scores("{not json", 0)
    with pytest.raises(LacsError, match="2 snapshots but 1 devices"):
        lacs_evaluate_batch([snap, snap], [0])


# ----------------------------------------------------------------- the reference estimator


def test_reference_estimator_matches_a_hand_computation():
    st = cost_state(device=4, slot=17)
    batch = StateBatch.from_states([st])
    sizes = future_sizes(batch, 3, seed=5)[0]
    assert ((sizes >= 1.5) & (sizes < 4.5)).all() and len(set(sizes)) == 3
    servers = [(41.8, 0, 0.0), (22.0, 2, 5.0)]
    cost = written_out_costs(3.0, 1.0, 0.5, 1.4, servers)
    after = {
        0: dict(local_wait=cost[0], servers=servers),
        1: dict(local_wait=1.0, servers=[(41.8, 1, 3.0), (22.0, 2, 5.0)]),
        2: dict(local_wait=1.0, servers=[(41.8, 0, 0.0), (22.0, 3, 8.0)]),
    }
    future = [
        np.mean([written_out_costs(s, after[a]["local_wait"], 0.5, 1.4, after[a]["servers"]).min() for s in sizes])
        for a in range(3)
    ]
    got_cost, got_future = reference_terms(batch, 3, seed=5)
    np.testing.assert_allclose(got_cost[0], cost, rtol=1e-12)
    np.testing.assert_allclose(got_future[0], future, rtol=1e-12)
    np.testing.assert_allclose(reference_scores(st, lam=0.3, seed=5), cost + 0.3 * np.array(future), rtol=1e-12)


def test_reference_estimator_is_deterministic_and_batch_independent():
    states = [cost_state(size=2.0 + i, local_wait=i, slot=17) for i in range(5)]
    states = [TaskState(**{**s.__dict__, "device": i}) for i, s in enumerate(states)]
    batch = reference_scores_batch(StateBatch.from_states(states), seed=3)
    for i, s in enumerate(states):
        np.testing.assert_array_equal(batch[i], reference_scores(s, seed=3))
    np.testing.assert_array_equal(batch, reference_scores_batch(StateBatch.from_states(states), seed=3))
    assert not np.array_equal(batch, reference_scores_batch(StateBatch.from_states(states), seed=4))
    with pytest.raises(ValueError, match="n_future=0"):
        reference_terms(StateBatch.from_states(states), n_future=0)


def test_large_batches_are_split_without_changing_scores():
    sim = MECSimulator(load_scenario("small", {"arrival_prob": 0.9}), seed=0)
    greedy = GreedyPolicy()
    snaps, devs = [], []
    while len(snaps) < 70:  # more than one compiled call's worth of states
        batch = sim.observe()
        if len(batch):
            snaps.append(sim.snapshot())
            devs.append(int(batch.device[-1]))
        sim.step(greedy.act(batch))
    scores = lacs_scores_batch(snaps, devs, rollouts=4)
    assert len(scores) == 70
    for i in (0, 63, 64, 69):
        np.testing.assert_array_equal(scores[i], lacs_scores(snaps[i], devs[i], rollouts=4))

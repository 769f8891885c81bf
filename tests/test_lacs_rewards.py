"""TRL reward callables: the reference shaping, the normalised variant, the three LACS modes,
records given as JSON strings or dicts, determinism."""

import json

import numpy as np
import pytest

from comllm.cost import action_costs
from comllm.lacs import (
    LacsError,
    LacsRewards,
    LacsSettings,
    RewardConfig,
    lacs_evaluate,
    make_reward_funcs,
    reference_terms,
)
from comllm.policies.heuristics import GreedyPolicy
from comllm.scenario import load_scenario
from comllm.sim import MECSimulator

COMPLETIONS = ["server 1", "local", "I think so", "answer: server 3", "server 9", " Server 2 \n", "本地执行"]


@pytest.fixture(scope="module")
def record():
    """A paper-6 record: its snapshot (JSON string), the deciding device and its one-step costs."""
    sim = MECSimulator(load_scenario("paper-6"), seed=2)
    greedy = GreedyPolicy()
    for _ in range(150):
        sim.step(greedy.act(sim.observe()))
    while len(sim.arrivals) == 0:
        sim.step([])
    batch = sim.observe()
    snap = json.dumps(sim.snapshot().to_dict())
    # the reward sees the JSON snapshot: take the one-step costs from the same JSON state
    jsim = MECSimulator.from_snapshot(load_json_snapshot(snap))
    jb = jsim.observe()
    return snap, int(batch.device[0]), action_costs(jb.subset([0]))[0], jb.subset([0])


def load_json_snapshot(s):
    from comllm.sim import Snapshot

    return Snapshot.from_dict(json.loads(s))


def rewards(config, record, completions=COMPLETIONS, as_dict=False):
    snap, dev, _, _ = record
    col = json.loads(snap) if as_dict else snap
    funcs = make_reward_funcs(config)
    n = len(completions)
    kw = {"snapshot": [col] * n, "device": [dev] * n, "trainer_state": None}
    return {f.__name__: f(prompts=["p"] * n, completions=completions, **kw) for f in funcs}


def test_reference_shaping_without_lacs(record):
    _, _, cost, batch = record
    r = rewards(RewardConfig(task_cost="greedy", lacs="off"), record)
    assert list(r) == ["format", "task", "lacs"]
    # server 1, local, unparseable, marked answer, out-of-range server, padded plain answer, Chinese local
    assert r["format"] == [0.2, 0.2, 0.0, 0.0, 0.0, 0.2, 0.2]
    assert r["lacs"] == [0.0] * 7
    for i, a in [(0, 1), (1, 0), (3, 3), (5, 2), (6, 0)]:
        over = 10.0 * (cost[a] > batch.max_delay[0])
        assert r["task"][i] == pytest.approx(0.8 * (1 - cost[a] - over))
    total = np.sum([r["format"], r["task"], r["lacs"]], axis=0)
    assert total[2] == total[4] == -10.0


def test_task_cost_incoming_counts_the_traffic_in_flight(record):
    _, _, cost, batch = record
    fresh = action_costs(batch, incoming=True)[0]
    assert (fresh > cost).any() and fresh[0] == cost[0]  # traffic in flight to a server of this state
    r = rewards(RewardConfig(lacs="off", task_cost="incoming"), record)
    for i, a in [(0, 1), (1, 0), (3, 3), (5, 2)]:
        over = 10.0 * (fresh[a] > batch.max_delay[0])
        assert r["task"][i] == pytest.approx(0.8 * (1 - fresh[a] - over))
    with pytest.raises(LacsError, match="task_cost='stale'"):
        RewardConfig(task_cost="stale")


def test_task_cost_sharing_prices_the_server_as_its_queues_share_it(record):
    _, _, cost, batch = record
    shared = action_costs(batch, incoming=True, incoming_active=True, sharing=True)[0]
    assert not np.allclose(shared, action_costs(batch, incoming=True)[0])
    r = rewards(RewardConfig(lacs="off", task_cost="sharing"), record)
    for i, a in [(0, 1), (1, 0), (3, 3), (5, 2)]:
        over = 10.0 * (shared[a] > batch.max_delay[0])
        assert r["task"][i] == pytest.approx(0.8 * (1 - shared[a] - over))


def test_a_sequential_record_is_priced_with_the_slots_earlier_decisions_in_flight():
    """task_cost incoming on a record with slot_decisions: the task sees the traffic the earlier tasks sent."""
    sim = MECSimulator(load_scenario("paper-6", {"decisions": "sequential", "arrival_prob": 0.6}), seed=5)
    for _ in range(30):
        sim.step(sim.decide(GreedyPolicy().act))
    while len(sim.arrivals) < 3:
        sim.step(sim.decide(GreedyPolicy().act))
    dev, others = int(sim.arrivals[-1]), [int(d) for d in sim.arrivals[:2]]
    decided = [[others[0], 1], [others[1], 1]]  # two tasks sent to server 1 before this one
    snap = json.dumps(sim.snapshot().to_dict())
    funcs = make_reward_funcs(RewardConfig(lacs="off"))
    kw = {"snapshot": [snap] * 2, "device": [dev] * 2, "trainer_state": None}
    plain = {f.__name__: f(prompts=["p"] * 2, completions=["server 1", "server 2"], **kw) for f in funcs}["task"]
    seen = {f.__name__: f(prompts=["p"] * 2, completions=["server 1", "server 2"], slot_decisions=[json.dumps(decided)] * 2,
                          **kw) for f in funcs}["task"]  # fmt: skip
    turn = sim.observe_after(dev, dict(decided))
    want = action_costs(turn, incoming=True)[0]
    assert want[1] > action_costs(sim.observe().subset([len(sim.arrivals) - 1]), incoming=True)[0][1]
    assert seen[0] < plain[0] and seen[1] == pytest.approx(plain[1])  # only server 1 got the earlier traffic
    over = 10.0 * (want[1] > turn.max_delay[0])
    assert seen[0] == pytest.approx(0.8 * (1 - want[1] - over))


def test_sim_lacs_term_is_the_rollout_future(record):
    snap, dev, cost, batch = record
    r = rewards(RewardConfig(task_cost="greedy", lacs="sim", seed=3), record)
    res = lacs_evaluate(snap, dev, LacsSettings(seed=3))
    for i, a in [(0, 1), (1, 0), (3, 3), (5, 2)]:
        assert r["lacs"][i] == pytest.approx(-0.8 * 0.3 * res.future[a])
        over = 10.0 * (cost[a] + 0.3 * res.future[a] > batch.max_delay[0])
        assert r["task"][i] == pytest.approx(0.8 * (1 - cost[a] - over))
    assert r["lacs"][2] == r["lacs"][4] == 0.0


def test_reference_lacs_term_is_the_reference_future(record):
    _, _, _, batch = record
    r = rewards(RewardConfig(lacs="reference", lam=0.5, seed=1), record)
    _, fut = reference_terms(batch, 3, seed=1)
    for i, a in [(0, 1), (1, 0), (3, 3)]:
        assert r["lacs"][i] == pytest.approx(-0.8 * 0.5 * fut[0, a])


def test_normalised_shaping_gives_ratios(record):
    _, _, cost, _ = record
    answers = ["local"] + [f"server {k}" for k in range(1, 7)]
    r = rewards(RewardConfig(task_cost="greedy", lacs="sim", shaping="normalised"), record, completions=answers)
    task = np.array(r["task"])
    np.testing.assert_allclose(task, 0.8 * cost.min() / cost)
    total = task + np.array(r["lacs"])
    assert total.max() == pytest.approx(0.8)  # the best action under cost + lam * future
    assert (total > 0).all() and (total <= 0.8 + 1e-12).all()


def test_rewards_are_deterministic_and_accept_dicts(record):
    cfg = RewardConfig(lacs="sim", seed=11)
    a = rewards(cfg, record)
    b = rewards(cfg, record)
    c = rewards(cfg, record, as_dict=True)
    assert a == b == c
    assert a != rewards(RewardConfig(lacs="sim", seed=12), record)


def test_conversational_completions_and_shared_computation(record):
    snap, dev, _, _ = record
    r = LacsRewards(RewardConfig(lacs="sim"))
    fmt, task, lacs = r.funcs()
    comps = [[{"role": "assistant", "content": "server 2"}], [{"role": "assistant", "content": "local"}]]
    kw = {"snapshot": [snap] * 2, "device": [dev] * 2}
    t = task(prompts=None, completions=comps, **kw)
    first = r._last
    lacs(prompts=None, completions=comps, **kw)
    assert r._last is first  # the look-ahead ran once for the three terms
    assert fmt(prompts=None, completions=comps, **kw) == [0.2, 0.2]
    assert t == rewards(RewardConfig(lacs="sim"), record, completions=["server 2", "local"])["task"]


def test_reward_inputs_are_checked(record):
    snap, dev, _, _ = record
    funcs = make_reward_funcs(lacs="off")
    with pytest.raises(LacsError, match="'snapshot' and 'device'"):
        funcs[1](prompts=["p"], completions=["local"])
    with pytest.raises(LacsError, match="1 completions, 2 snapshots"):
        funcs[1](prompts=["p"], completions=["local"], snapshot=[snap, snap], device=[dev, dev])
    with pytest.raises(LacsError, match="lacs='maybe'"):
        RewardConfig(lacs="maybe")
    with pytest.raises(LacsError, match="shaping='log'"):
        RewardConfig(shaping="log")
    with pytest.raises(LacsError, match="horizon=-2"):
        RewardConfig(horizon=-2)

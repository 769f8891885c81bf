"""The lacs-planner policy: construction from its spec, valid actions from the live simulator,
closed-loop runs, and the decision the one-step oracle gets wrong."""

import numpy as np
import pytest

from comllm.evaluate.closed_loop import evaluate_closed_loop
from comllm.lacs import LacsPlanner, live_snapshot
from comllm.policies import PolicyError, make_policy
from comllm.policies.heuristics import GreedyPolicy
from comllm.scenario import load_scenario, make_scenario
from comllm.sim import MECSimulator


def test_spec_builds_the_planner_and_rejects_bad_arguments():
    p = make_policy("lacs-planner:3,8", load_scenario("small"))
    assert isinstance(p, LacsPlanner)
    assert (p.settings.horizon, p.settings.rollouts) == (3, 8)
    assert p.name == "lacs-planner:3,8"
    assert make_policy("lacs-planner").settings.rollouts == 16
    inc = make_policy("lacs-planner:3,8,greedy-incoming")
    assert inc.settings.other_policy == "greedy-incoming" and inc.name == "lacs-planner:3,8,greedy-incoming"
    lam = make_policy("lacs-planner:3,8,greedy,1.5")
    assert lam.settings.lam == 1.5 and lam.name == "lacs-planner:3,8,greedy,1.5"
    assert make_policy(lam.name).settings == lam.settings  # the name is a spec that rebuilds it
    for bad in ("lacs-planner:3", "lacs-planner:a,b", "lacs-planner:-1,4", "lacs-planner:2,0", "lacs-planner:3,8,x,y",
                "lacs-planner:3,8,greedy,1,2"):
        with pytest.raises(PolicyError, match="lacs-planner"):
            make_policy(bad)
    with pytest.raises(PolicyError, match="rule 'smart' is not one of"):
        make_policy("lacs-planner:3,8,smart")
    for bad_lam in ("x", "-1", "nan", "inf"):
        with pytest.raises(PolicyError, match=f"LAM '{bad_lam}' is not a number >= 0"):
            make_policy(f"lacs-planner:3,8,greedy,{bad_lam}")


def test_planner_needs_the_bound_simulator():
    sim = MECSimulator(load_scenario("small", {"arrival_prob": 1.0}), seed=0)
    p = make_policy("lacs-planner:2,4")
    with pytest.raises(PolicyError, match="bind"):
        p.act(sim.observe())
    other = MECSimulator(load_scenario("small", {"arrival_prob": 1.0}), seed=0)
    other.step(np.zeros(len(other.arrivals), dtype=np.int64))
    p.bind(other)
    with pytest.raises(PolicyError, match="not the bound simulator"):
        p.act(sim.observe())


def test_planner_returns_valid_actions_on_the_live_state():
    sc = load_scenario("paper-6", {"arrival_prob": 0.5})
    sim = MECSimulator(sc, seed=1)
    p = make_policy("lacs-planner:2,4", sc)
    p.bind(sim)
    p.reset(1)
    for _ in range(15):
        batch = sim.observe()
        acts = p.act(batch)
        assert acts.shape == (len(batch),) and acts.dtype == np.int64
        assert ((acts >= 0) & (acts <= sc.n_servers)).all()
        sim.step(acts)
    assert p.stats["decisions"] == sim.log.n
    snap = live_snapshot(sim)
    assert snap.t == sim.t and snap.arrays["arr"] is sim.arr  # views, no copies


def test_planner_picks_the_server_the_oracle_misjudges():
    sc = make_scenario(
        {"n_devices": 5, "servers": [{"type": "standard", "ghz": 30.0}] * 2, "arrival_prob": 0.0,
         "channel": {"model": "static"}}
    )  # fmt: skip
    sim = MECSimulator(sc, seed=0)
    sim.set_arrivals([1, 2, 3, 4], [4.0] * 4)
    sim.step([1, 1, 1, 1])  # four tasks on their way to server 1
    sim.set_arrivals([0], [3.0])
    p = make_policy("lacs-planner:3,4")
    p.bind(sim)
    assert GreedyPolicy().act(sim.observe()).tolist() == [1]
    assert p.act(sim.observe()).tolist() == [2]


def test_planner_runs_in_closed_loop_evaluation():
    sc = load_scenario("small", {"arrival_prob": 0.5})
    summary, episodes = evaluate_closed_loop(sc, make_policy("lacs-planner:2,4", sc), slots=40, seeds=[0], warmup=10)
    assert summary["policy"] == "lacs-planner:2,4"
    assert summary["n_tasks"] > 0 and 0.0 <= summary["drop_rate"] <= 1.0
    assert summary["policy_stats"]["decisions"] > summary["n_tasks"]  # warm-up and drain tasks too


def test_planner_beats_greedy_under_heavy_load():
    sc = load_scenario("small", {"arrival_prob": 0.6})
    greedy, _ = evaluate_closed_loop(sc, make_policy("greedy"), slots=300, seeds=[0, 1], warmup=50)
    plan, _ = evaluate_closed_loop(sc, make_policy("lacs-planner:3,8", sc), slots=300, seeds=[0, 1], warmup=50)
    assert plan["avg_latency"] < greedy["avg_latency"]
    assert plan["drop_rate"] < greedy["drop_rate"]

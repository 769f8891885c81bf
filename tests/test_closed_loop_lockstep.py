"""Seeds in lockstep (comllm.evaluate.closed_loop.run_episodes): one policy call for every seed's
batch gives exactly the results of the seeds run one after the other, in both protocols."""

from __future__ import annotations

import numpy as np
import pytest

from comllm.evaluate.closed_loop import decide_together, run_episodes
from comllm.lm.policy import DecodeOptions, LMPolicy
from comllm.policies import make_policy
from comllm.scenario import load_scenario
from comllm.sim import MECSimulator
from comllm.sft_config import ModelShape
from tests.fixtures.text_states import random_state
from tests.test_lm_support import tiny_embedded


def _same(a, b):
    for x, y in zip(a, b, strict=True):
        assert (x.seed, x.n_tasks, x.avg_latency, x.drop_rate, x.per_server_share) == (
            y.seed, y.n_tasks, y.avg_latency, y.drop_rate, y.per_server_share
        )  # fmt: skip


@pytest.mark.parametrize("decisions", ["simultaneous", "sequential"])
def test_lockstep_equals_one_seed_after_the_other_for_greedy_incoming(decisions):
    sc = load_scenario("small", {"decisions": decisions})
    pol = make_policy("greedy:incoming", sc)
    assert pol.stateless
    _same(run_episodes(sc, pol, 40, [0, 1, 2], warmup=10), run_episodes(sc, pol, 40, [0, 1, 2], warmup=10, lockstep=False))


@pytest.mark.parametrize("decisions", ["simultaneous", "sequential"])
def test_lockstep_equals_one_seed_after_the_other_for_a_language_model(decisions):
    rng = np.random.default_rng(2)
    lm = tiny_embedded("lean-v2", [random_state(rng, 3, history_len=10) for _ in range(20)],
                       ModelShape(hidden=32, layers=1, heads=2, intermediate=64, value_hidden=16))  # fmt: skip
    sc = load_scenario("small", {"decisions": decisions})
    pol = LMPolicy(lm, DecodeOptions())
    assert pol.stateless and not LMPolicy(lm, DecodeOptions(mode="sample")).stateless
    _same(run_episodes(sc, pol, 15, [3, 4], warmup=5), run_episodes(sc, pol, 15, [3, 4], warmup=5, lockstep=False))


def test_decide_together_asks_once_per_turn_for_all_simulators():
    sc = load_scenario("small", {"decisions": "sequential"})
    sims = [MECSimulator(sc, seed=s) for s in (0, 1)]
    for sim in sims:
        sim.step(np.zeros(len(sim.observe()), dtype=np.int64))
    calls = []

    def act(batch):
        calls.append(len(batch))
        return np.zeros(len(batch), dtype=np.int64)

    out = decide_together(sims, act)
    n = [len(sim.observe()) for sim in sims]
    assert [len(a) for a in out] == n
    assert len(calls) == max(n) and sum(calls) == sum(n) and max(calls) <= 2


def test_a_policy_that_plans_on_its_simulator_runs_one_seed_at_a_time():
    sc = load_scenario("small")
    pol = make_policy("lacs-planner:2,2", sc)
    assert not pol.stateless
    with pytest.raises(ValueError, match="cannot run seeds in lockstep"):
        run_episodes(sc, pol, 2, [0, 1], warmup=1, lockstep=True)

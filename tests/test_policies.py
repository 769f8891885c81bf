import numpy as np
import pytest

from comllm.cost import action_costs
from comllm.policies import PolicyError, available_policies, make_policy
from comllm.scenario import load_scenario
from comllm.sim import MECSimulator

HEURISTICS = ["random", "local", "greedy", "round-robin", "least-loaded"]


def batches(n=30):
    sim = MECSimulator(load_scenario("paper-6"), seed=3)
    greedy = make_policy("greedy")
    out = []
    for _ in range(n):
        b = sim.observe()
        out.append(b)
        sim.step(greedy.act(b))
    return [b for b in out if len(b)]


@pytest.mark.parametrize("name", HEURISTICS)
def test_heuristics_return_valid_actions(name):
    pol = make_policy(name)
    for b in batches():
        a = pol.act(b)
        assert a.shape == (len(b),) and a.min() >= 0 and a.max() <= b.n_servers


def test_specific_behaviours():
    bs = batches()
    b = bs[-1]
    assert (make_policy("local").act(b) == 0).all()
    assert (make_policy("greedy").act(b) == np.argmin(action_costs(b), axis=1)).all()
    rr = make_policy("round-robin").act(b.subset(np.zeros(8, dtype=int)))
    assert rr.tolist() == [1, 2, 3, 4, 5, 6, 1, 2]
    ll = make_policy("least-loaded").act(b)
    backlog = b.queued / b.server_ghz
    assert (backlog[np.arange(len(b)), ll - 1] <= backlog.min(axis=1) + 1e-9).all()


def test_random_policy_is_seeded():
    b = batches()[-1]
    p = make_policy("random")
    p.reset(7)
    first = p.act(b)
    p.reset(7)
    assert (p.act(b) == first).all()


def test_registry_errors_and_listing():
    assert set(HEURISTICS) <= set(available_policies())
    with pytest.raises(PolicyError, match="unknown policy 'nope'"):
        make_policy("nope")
    with pytest.raises(PolicyError, match="takes no argument"):
        make_policy("greedy:3")

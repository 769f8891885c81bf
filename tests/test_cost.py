import numpy as np
import pytest

from comllm.cost import action_costs, chosen_costs, oracle_actions
from comllm.state import StateBatch
from tests.fixtures.cost_states import cost_state


def test_costs_match_the_formulas_of_the_model():  # docs/model.md §6
    b = StateBatch.from_states([cost_state()])
    c = action_costs(b)[0]
    d = 0.297
    assert c[0] == pytest.approx(1.0 + 3.0 * d / (2.5 * 0.1))
    assert c[1] == pytest.approx(0.5 + 3.0 / 1.4 + (0 + 3.0) * d * 1 / (41.8 * 0.1))
    assert c[2] == pytest.approx(0.5 + 3.0 / 1.4 + (5.0 + 3.0) * d * 3 / (22.0 * 0.1))
    assert oracle_actions(b)[0] == 1
    assert chosen_costs(b, np.array([2]))[0] == pytest.approx(c[2])


def test_oracle_prefers_local_when_the_edge_is_congested():
    s = cost_state(local_wait=0.0, servers=((41.8, 20, 60.0),))
    assert oracle_actions(StateBatch.from_states([s]))[0] == 0


def test_batch_round_trip_through_task_states():
    states = [cost_state(size=2.0 + i) for i in range(4)]
    b = StateBatch.from_states(states)
    assert b.states() == states
    assert len(b.subset([1, 3])) == 2
    with pytest.raises(ValueError, match="same number of servers"):
        StateBatch.from_states([cost_state(), cost_state(servers=((30.0, 0, 0.0),))])

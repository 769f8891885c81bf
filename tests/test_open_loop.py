"""Open-loop evaluation: hand-checked costs, the oracle scores 1, invalid answers, mixed server counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from comllm.data import generate_records, read_records
from comllm.errors import ComllmError
from comllm.evaluate.metrics import jain_index
from comllm.evaluate.open_loop import evaluate_open_loop
from comllm.policies import Policy, make_policy
from comllm.scenario import load_scenario
from comllm.state import StateBatch

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "reference_records.json"


class Fixed(Policy):
    """Returns a fixed list of actions in order; counts 'invalid' like a language model would."""

    name = "fixed"

    def __init__(self, actions: list[int], report_invalid: bool = False) -> None:
        self.actions = list(actions)
        self.report = report_invalid
        self.invalid = 0

    def reset(self, seed=None) -> None:
        self.i = 0

    def act(self, batch: StateBatch) -> np.ndarray:
        out = np.array(self.actions[self.i : self.i + len(batch)])
        self.i += len(batch)
        if self.report:
            self.invalid += int((out < 0).sum())
        return out

    @property
    def stats(self) -> dict[str, float]:
        return {"invalid": self.invalid} if self.report else {}


@pytest.fixture(scope="module")
def records():
    return list(generate_records(load_scenario("paper-6"), 300, "test", "paper", seed=9, servers="3-5"))


def test_greedy_is_the_oracle(records) -> None:
    out = evaluate_open_loop(records, make_policy("greedy"))
    assert out["n"] == 300
    assert out["accuracy"] == 1.0 and out["perf_ratio"] == 1.0 and out["cost_match"] == 1.0
    assert out["invalid_rate"] == 0.0 and out["avg_cost"] == out["oracle_avg_cost"]
    assert set(out["by_servers"]) == {str(n) for n in {r.n_servers for r in records}} and len(out["by_servers"]) > 1
    assert sum(g["n"] for g in out["by_servers"].values()) == 300


def test_local_policy_matches_a_hand_computation(records) -> None:
    out = evaluate_open_loop(records, make_policy("local"))
    local = np.array([r.costs[0] for r in records])
    best = np.array([min(r.costs) for r in records])
    deadline = np.array([r.state["max_delay"] for r in records], dtype=float)
    assert out["accuracy"] == pytest.approx(np.mean([r.oracle_action == 0 for r in records]))
    assert out["avg_cost"] == pytest.approx(np.minimum(local, deadline).mean())
    assert out["oracle_avg_cost"] == pytest.approx(np.minimum(best, deadline).mean())
    assert out["perf_ratio"] == pytest.approx(np.minimum(best, deadline).mean() / np.minimum(local, deadline).mean())
    assert out["avg_cost_raw"] == pytest.approx(local.mean())
    assert out["drop_rate"] == pytest.approx(np.mean(local > deadline))
    assert out["jain_index"] is None and out["offload_share"] == 0.0  # nothing offloaded


def test_fixture_by_hand() -> None:
    recs = list(read_records(FIXTURE))  # oracle actions 0, 3, 1 on 2, 4, 1 servers
    costs = [r.costs for r in recs]
    # server 1 on the 2-server record, the oracle on the 4-server one, an invalid answer on the last
    out = evaluate_open_loop(recs, Fixed([1, 3, 7]))
    assert out["n"] == 3
    assert out["accuracy"] == pytest.approx(1 / 3)
    assert out["invalid_rate"] == pytest.approx(1 / 3)
    chosen = [min(costs[0][1], 10), costs[1][3], 10.0]  # the invalid one counts as a drop at the deadline
    assert out["avg_cost"] == pytest.approx(np.mean(chosen))
    assert out["oracle_avg_cost"] == pytest.approx(np.mean([costs[0][0], costs[1][3], costs[2][1]]))
    assert out["drop_rate"] == pytest.approx(((costs[0][1] > 10) + 1) / 3)
    assert out["by_servers"]["1"]["accuracy"] == 0.0 and out["by_servers"]["4"]["accuracy"] == 1.0


def test_invalid_rate_from_policy_stats() -> None:
    recs = list(read_records(FIXTURE))
    out = evaluate_open_loop(recs, Fixed([-1, -1, 1], report_invalid=True))
    assert out["invalid_rate"] == pytest.approx(2 / 3)
    assert out["policy_stats"] == {"invalid": 2}


def test_jain_on_offload_counts(records) -> None:
    recs4 = [r for r in records if r.n_servers == 4]
    actions = [1 + i % 3 for i in range(len(recs4))]  # round robin over servers 1..3 of 4
    out = evaluate_open_loop(recs4, Fixed(actions))
    counts = np.bincount(actions, minlength=5)[1:]
    assert counts[3] == 0
    assert out["jain_index"] == pytest.approx(jain_index(counts))
    assert out["offload_share"] == 1.0


def test_states_work_too_and_empty_input_is_an_error(records) -> None:
    out = evaluate_open_loop([r.task_state() for r in records[:50]], make_policy("greedy"), chunk=7)
    assert out["n"] == 50 and out["accuracy"] == 1.0
    with pytest.raises(ComllmError, match="no records"):
        evaluate_open_loop([], make_policy("greedy"))
    with pytest.raises(ComllmError, match="returned 1 actions for 3"):
        evaluate_open_loop(list(read_records(FIXTURE))[1:2] * 3, Fixed([1]), chunk=3)

import json

import pytest

from comllm.evaluate.closed_loop import evaluate_closed_loop
from comllm.evaluate.metrics import jain_index, mean_ci
from comllm.policies import make_policy
from comllm.scenario import load_scenario


def test_jain_and_ci():
    assert jain_index([1, 1, 1, 1]) == pytest.approx(1.0)
    assert jain_index([4, 0, 0, 0]) == pytest.approx(0.25)
    assert jain_index([0, 0]) != jain_index([0, 0])  # NaN: undefined
    m, ci = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and ci == pytest.approx(4.303 * 1.0 / 3**0.5)


def test_greedy_beats_local_and_metrics_are_consistent():
    sc = load_scenario("paper-6")
    g, eps = evaluate_closed_loop(sc, make_policy("greedy"), slots=300, seeds=2, warmup=50)
    loc, _ = evaluate_closed_loop(sc, make_policy("local"), slots=300, seeds=2, warmup=50)
    assert g["avg_latency"] < loc["avg_latency"] and g["drop_rate"] < loc["drop_rate"]
    assert loc["offload_share"] == 0 and loc["jain_index"] is None
    assert sum(g["per_server_share"]) == pytest.approx(1.0)
    assert g["latency_p50"] <= g["latency_p95"] <= g["latency_p99"] <= sc.deadline
    assert g["n_tasks"] == sum(e.n_tasks for e in eps)
    json.dumps(g, allow_nan=False)


def test_same_arrivals_for_every_policy():
    sc = load_scenario("small")
    a, _ = evaluate_closed_loop(sc, make_policy("greedy"), slots=200, seeds=[5])
    b, _ = evaluate_closed_loop(sc, make_policy("random"), slots=200, seeds=[5])
    assert a["n_tasks"] == b["n_tasks"]

import json

import numpy as np
import pytest

from comllm.evaluate import closed_loop
from comllm.evaluate.closed_loop import evaluate_closed_loop
from comllm.evaluate.metrics import ROW_KEYS, jain_index, mean_ci
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


def _task_log(monkeypatch, scenario, policy, seed=5):
    """The summary and the task log (arrival slot, device, size, action) of one closed-loop seed."""
    made = []

    class Recording(closed_loop.MECSimulator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(closed_loop, "MECSimulator", Recording)
    summary, _ = evaluate_closed_loop(scenario, make_policy(policy, scenario), slots=200, seeds=[seed], warmup=20)
    (sim,) = made
    log = sim.log
    return summary, {k: getattr(log, k).copy() for k in ("arrival", "device", "size", "action")}


def test_same_arrivals_for_every_policy_and_protocol(monkeypatch):
    """Common random numbers: every task arrives in the same slot, at the same device, with the same size."""
    sc = load_scenario("small")
    runs = {
        (p, d): _task_log(monkeypatch, sc if d == "simultaneous" else load_scenario("small", ["decisions=sequential"]), p)
        for p in ("greedy", "random", "local")
        for d in ("simultaneous", "sequential")
    }
    ref_summary, ref = runs[("greedy", "simultaneous")]
    assert len(ref["arrival"]) > 100 and len(np.unique(ref["device"])) == sc.n_devices
    for (p, d), (summary, log) in runs.items():
        assert summary["n_tasks"] == ref_summary["n_tasks"], (p, d)
        for key in ("arrival", "device", "size"):
            np.testing.assert_array_equal(log[key], ref[key], err_msg=f"{key} of {p}/{d}")
    # the policies did act differently on those tasks
    assert (runs[("local", "simultaneous")][1]["action"] == 0).all()
    assert (runs[("greedy", "simultaneous")][1]["action"] != runs[("random", "simultaneous")][1]["action"]).any()
    # another seed is another stream
    _, other = _task_log(monkeypatch, sc, "greedy", seed=6)
    n = min(len(other["size"]), len(ref["size"]))
    assert not np.array_equal(other["size"][:n], ref["size"][:n])


def test_summary_is_the_shared_row():
    sc = load_scenario("small")
    g, eps = evaluate_closed_loop(sc, make_policy("greedy"), slots=50, seeds=[0, 1], warmup=10)
    assert tuple(g) == ROW_KEYS
    assert g["policy"] == "greedy" and g["scenario"] == "small" and g["n_servers"] == sc.n_servers
    assert g["seeds"] == [0, 1] and g["n_tasks"] == sum(e.n_tasks for e in eps)
    assert g["avg_latency"] == pytest.approx(np.mean([e.avg_latency for e in eps]))
    drops = {}
    for e in eps:
        for k, v in e.drops_by_stage.items():
            drops[k] = drops.get(k, 0) + v
    assert g["drops_by_stage"] == drops

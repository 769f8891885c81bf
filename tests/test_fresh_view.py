"""The fresh view and the decision protocols (docs/model.md §4, §5): traffic in flight,
the slot's arrivals, and ``decisions: simultaneous | sequential``."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from comllm.data.records import state_from_dict, state_to_dict
from comllm.policies import make_policy
from comllm.scenario import ScenarioError, load_scenario, make_scenario
from comllm.sim import MECSimulator
from tests.oracles.reference_simulator import ReferenceSimulator
from tests.strategies import scenarios

TWO_FAST = {
    "n_devices": 2,
    "servers": [{"type": "high-performance", "ghz": 41.8}] * 2,
    "channel": {"model": "static"},
    "arrival_prob": 0.0,
}


def _two_tasks(decisions: str) -> np.ndarray:
    sim = MECSimulator(make_scenario({**TWO_FAST, "decisions": decisions}), seed=0)
    sim.set_arrivals([0, 1], [4.0, 4.0])
    return sim.decide(make_policy("greedy:incoming").act), sim


def test_sequential_second_task_sees_the_first_and_avoids_its_server():
    # From empty queues each 4 Mbit task costs local 4 * 0.297 / 0.25 = 4.75 slots, either server
    # 4 / 1.4 + 4 * 0.297 / 4.18 = 3.14 slots: both pick server 1 (ties go to the lowest id).
    simultaneous, _ = _two_tasks("simultaneous")
    assert simultaneous.tolist() == [1, 1]
    # In turn, the second sees 4 Mbit incoming at server 1: 4 / 1.4 + 8 * 0.297 / 4.18 = 3.43 > 3.14.
    sequential, sim = _two_tasks("sequential")
    first = sim.arrivals[sim.decision_order()[0]]
    assert sequential[first] == 1 and sequential[1 - first] == 2
    # the plain greedy formula does not read the incoming traffic: it herds in both protocols
    sim2 = MECSimulator(make_scenario({**TWO_FAST, "decisions": "sequential"}), seed=0)
    sim2.set_arrivals([0, 1], [4.0, 4.0])
    assert sim2.decide(make_policy("greedy").act).tolist() == [1, 1]


def test_observe_turn_adds_the_earlier_decisions_to_the_incoming_traffic():
    sc = load_scenario("paper-6", {"decisions": "sequential", "arrival_prob": 0.6})
    sim = MECSimulator(sc, seed=3)
    for _ in range(20):
        sim.step(sim.decide(make_policy("random").act))
    n = len(sim.arrivals)
    assert n > 3
    order = sim.decision_order()
    assert sorted(order.tolist()) == list(range(n))
    base = sim.observe()
    actions = np.array([(i % 7) for i in range(n)])
    for i in range(n):
        one = sim.observe_turn(i, actions)
        expect = base.incoming[0].copy()
        count = base.incoming_n[0].copy()
        for pos in order[:i]:
            if actions[pos] > 0:
                expect[actions[pos] - 1] += sim.new_size[sim.arrivals[pos]]
                count[actions[pos] - 1] += 1
        np.testing.assert_allclose(one.incoming[0], expect)
        np.testing.assert_array_equal(one.incoming_n[0], count)
        assert one.slot_pending[0] == n - 1 - i and one.slot_arrivals[0] == n
        assert one.device[0] == sim.arrivals[order[i]]
    assert (base.slot_pending == n - 1).all()  # simultaneous: every other task is unseen
    # observe_after: the same view from the earlier decisions as device -> action (a record's slot_decisions)
    for i in range(n):
        decided = {int(sim.arrivals[p]): int(actions[p]) for p in order[:i]}
        after, turn = sim.observe_after(int(sim.arrivals[order[i]]), decided), sim.observe_turn(i, actions)
        for field in ("incoming", "incoming_n", "slot_pending", "device", "queued", "task_size"):
            np.testing.assert_array_equal(getattr(after, field), getattr(turn, field))
    with pytest.raises(ValueError, match="decided device"):
        sim.observe_after(int(sim.arrivals[0]), {int(sim.arrivals[0]): 1})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios(), seed=st.integers(0, 2**31), slots=st.integers(1, 40), pol=st.sampled_from(
    ["random", "greedy", "greedy:incoming", "round-robin", "least-loaded"]))
def test_incoming_is_the_bits_of_live_offloaded_tasks_not_yet_at_their_server(sc, seed, slots, pol):
    """Differential: the compiled observation against the plain-Python reference's uplink queues."""
    sim = MECSimulator(sc, seed=seed)
    ref = ReferenceSimulator(sc.n_devices, sim.local_rate, list(sim.server_rate), sc.deadline)
    policy = make_policy(pol, sc)
    policy.reset(seed)
    for t in range(slots):
        batch = sim.observe()
        mbit, count = ref.incoming(sc.n_servers)
        inc, inc_n = sim.incoming_view()
        np.testing.assert_allclose(inc, mbit, atol=1e-9)
        np.testing.assert_array_equal(inc_n, count)
        if len(batch):
            np.testing.assert_allclose(batch.incoming, np.tile(mbit, (len(batch), 1)), atol=1e-9)
            assert (batch.slot_arrivals == len(batch)).all()
        actions = np.asarray(policy.act(batch)) if len(batch) else np.zeros(0, dtype=np.int64)
        ref.step(t, [(int(d), float(s), int(a)) for d, s, a in zip(batch.device, batch.task_size, actions)],
                 sim.rate.tolist())  # fmt: skip
        sim.step(actions)
    log = sim.log
    for tid in np.flatnonzero(log.code > 0):
        assert log.code[tid] == ref.outcomes[int(tid)][0]


def _run(decisions: str, seed: int, policy: str = "greedy:incoming", slots: int = 150):
    sc = load_scenario("paper-6", {"decisions": decisions, "arrival_prob": 0.5})
    sim = MECSimulator(sc, seed=seed)
    sim.run(make_policy(policy, sc), slots)
    return sim


@pytest.mark.parametrize("decisions", ["simultaneous", "sequential"])
def test_same_seed_same_run(decisions):
    a, b = _run(decisions, 7), _run(decisions, 7)
    for k in ("arrival", "device", "size", "action", "code", "latency"):
        np.testing.assert_array_equal(getattr(a.log, k), getattr(b.log, k))


def test_both_protocols_see_the_same_arrivals():
    a, b = _run("simultaneous", 7), _run("sequential", 7)
    for k in ("arrival", "device", "size"):
        np.testing.assert_array_equal(getattr(a.log, k), getattr(b.log, k))
    assert not np.array_equal(a.log.action, b.log.action)  # greedy:incoming decides differently in turn


def test_snapshot_run_restore_run_is_identical_in_sequential_mode():
    sim = _run("sequential", 11, slots=60)
    snap = sim.snapshot()
    policy = make_policy("greedy:incoming")
    sim.run(policy, 40)
    first = (sim.log.action.copy(), sim.log.latency.copy(), sim.log.code.copy())
    sim.restore(snap)
    sim.run(policy, 40)
    for x, y in zip(first, (sim.log.action, sim.log.latency, sim.log.code)):
        np.testing.assert_array_equal(x, y)
    # and through the JSON form (records' snapshots): the decision order survives
    other = MECSimulator.from_snapshot(type(snap).from_dict(snap.to_dict()))
    sim.restore(snap)
    assert np.array_equal(other.decision_order(), sim.decision_order())


def test_records_without_the_fresh_view_fields_still_read():
    sc = load_scenario("paper-6")
    sim = MECSimulator(sc, seed=0)
    sim.run(make_policy("random"), 30)
    state = sim.observe().state(0)
    d = state_to_dict(state)
    assert state_from_dict(d) == state
    for key in ("slot_arrivals", "slot_pending"):
        del d[key]
    for s in d["servers"]:
        del s["incoming_mbit"], s["incoming_tasks"]
    old = state_from_dict(d)
    assert old.slot_arrivals == 0 and all(s.incoming_mbit == 0.0 and s.incoming_tasks == 0 for s in old.servers)
    d["servers"][0]["incoming_mbit"] = -1.0
    with pytest.raises(ValueError, match=r"state.servers\[0\].incoming_mbit' = -1.0 must be >= 0"):
        state_from_dict(d)


def test_bad_protocol_is_one_line_naming_field_and_value():
    with pytest.raises(ScenarioError, match="decisions"):
        load_scenario("paper-6", ["decisions=foo"])
    res = subprocess.run(
        [sys.executable, "-m", "comllm", "simulate", "--scenario", "paper-6", "--set", "decisions=foo", "--slots", "5"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 2
    err = res.stderr.strip()
    assert "'decisions'" in err and "foo" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_planner_follows_the_protocol():
    """Sequential: the planner's rollouts fix the slot's earlier decisions (sim.decided)."""
    sc = load_scenario("small", {"decisions": "sequential", "arrival_prob": 0.9})
    sim = MECSimulator(sc, seed=0)
    planner = make_policy("lacs-planner:2,2", sc)
    planner.bind(sim)
    seen = []
    inner = planner.act

    def spy(batch):
        seen.append((len(batch), dict(sim.decided)))
        return inner(batch)

    for _ in range(3):
        sim.step(sim.decide(spy))
    assert all(n == 1 for n, _ in seen)
    assert any(len(d) > 0 for _, d in seen)


def test_sweep_has_a_protocol_axis_and_a_server_count_placeholder(tmp_path):
    from typer.testing import CliRunner

    from comllm.cli import app

    out = tmp_path / "rows.json"
    res = CliRunner().invoke(app, [
        "sweep", "--policy", "greedy", "--policy", "random:{n}", "--scenario", "small", "--decisions", "simultaneous",
        "--decisions", "sequential", "--seeds", "1", "--slots", "20", "--warmup", "5", "--workers", "1", "--json", str(out),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    import json

    rows = json.loads(out.read_text())
    assert sorted((r["policy"], r["scenario"]) for r in rows) == [
        ("greedy", "small (sequential)"), ("greedy", "small (simultaneous)"),
        ("random:{n}", "small (sequential)"), ("random:{n}", "small (simultaneous)"),
    ]  # fmt: skip


def test_sweep_cache_reuses_finished_episodes(tmp_path):
    import json

    from typer.testing import CliRunner

    from comllm.cli import app

    args = ["sweep", "--policy", "greedy", "--scenario", "small", "--seeds", "2", "--slots", "20", "--warmup", "5",
            "--workers", "1", "--cache", str(tmp_path / "cache")]  # fmt: skip
    first = CliRunner().invoke(app, [*args, "--json", str(tmp_path / "a.json")])
    assert first.exit_code == 0, first.output
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2
    again = CliRunner().invoke(app, [*args, "--policy", "local", "--json", str(tmp_path / "b.json")])
    assert again.exit_code == 0 and "2 of 4 episodes from --cache" in again.output
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a[0] == next(r for r in b if r["policy"] == "greedy")


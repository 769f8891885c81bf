"""slot_rules=tang-wong: the compiled kernel against a plain-Python restatement of Tang & Wong's step.

The restatement (tests/oracles/tang_wong_rules.py) follows their environment's
queue-and-processor structure; three switches turn its three rules into ours,
and the same restatement is then checked against the fluid kernel, so the two
simulators differ in exactly those three rules. Every task's outcome code and
latency, and every slot's active counts, must be equal.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comllm.scenario import load_scenario, make_scenario
from comllm.sim import MECSimulator
from comllm.sim import kernels as K
from comllm.sim import tang_wong as TW
from tests.oracles.tang_wong_rules import TangWongRules
from tests.strategies import scenarios


def with_rules(sc, rules):
    return make_scenario({**sc.model_dump(), "slot_rules": rules})


def oracle_for(sim, rules):
    theirs = rules == "tang-wong"
    return TangWongRules(
        sim.M, sim.local_rate, list(sim.server_rate), sim.D,
        whole_slots=theirs, start_at_boundary=theirs, late_upload_to_server=theirs,
    )  # fmt: skip


def run_both(sc, rules, slots, seed, assign):
    """Drive the simulator and the restatement on the same arrivals and actions; compare everything.

    ``assign(t, devices, n_before, rng)`` gives the slot's actions. After ``slots`` slots with
    random arrivals, ``D + 1`` empty slots let every task end in both.
    """
    sc = with_rules(sc, rules)
    sim = MECSimulator(sc, seed=seed)
    ref = oracle_for(sim, rules)
    rng = np.random.default_rng(seed)
    n_tasks = 0
    for t in range(slots + sc.deadline + 1):
        if t < slots:
            devices = np.flatnonzero(rng.random(sc.n_devices) < sc.arrival_prob)
            sizes = rng.uniform(sc.size_min, sc.size_max, len(devices))
        else:
            devices, sizes = np.zeros(0, dtype=np.int64), np.zeros(0)
        sim.set_arrivals(devices, sizes)
        actions = np.asarray(assign(t, devices, n_tasks, rng), dtype=np.int64)
        n_tasks += len(devices)
        ref.step(t, [(int(d), float(s), int(a)) for d, s, a in zip(devices, sizes, actions)], sim.rate.tolist())
        sim.step(actions)
        np.testing.assert_array_equal(sim.history[:, -1], ref.active_log[t], err_msg=f"active counts, slot {t}")
    log = sim.log
    assert len(log) == ref.next_tid == n_tasks
    assert (log.code > 0).all(), "every task has ended"
    assert sorted(ref.outcomes) == list(range(n_tasks))
    codes = np.array([ref.outcomes[i][0] for i in range(n_tasks)])
    lats = np.array([ref.outcomes[i][1] for i in range(n_tasks)])
    bad = np.flatnonzero((codes != log.code) | (np.abs(lats - log.latency) > 1e-9))
    assert len(bad) == 0, (
        f"{len(bad)} tasks differ, first {int(bad[0])}: simulator {int(log.code[bad[0]])}/{log.latency[bad[0]]}, "
        f"restatement {int(codes[bad[0]])}/{lats[bad[0]]}"
    )
    np.testing.assert_allclose(sim.served, ref.served, rtol=1e-12, atol=1e-9)
    return log


def all_local(t, devices, n_before, rng):
    return np.zeros(len(devices))


def all_to_server_1(t, devices, n_before, rng):
    return np.ones(len(devices))


def round_robin(n_servers):
    return lambda t, devices, n_before, rng: 1 + (n_before + np.arange(len(devices))) % n_servers


def uniform(n_servers):
    return lambda t, devices, n_before, rng: rng.integers(0, n_servers + 1, len(devices))


# ---------------------------------------------------------------- 50 devices x 5 servers x 1,000 slots
ASSIGNMENTS = {
    "all-local": lambda n: all_local,
    "all-to-one-server": lambda n: all_to_server_1,
    "random": uniform,
    "round-robin": round_robin,
}


@pytest.mark.parametrize("rules", ["tang-wong", "fluid"])
@pytest.mark.parametrize("assignment", list(ASSIGNMENTS))
def test_50_devices_5_servers_1000_slots(rules, assignment):
    sc = load_scenario("tang-wong")  # 50 devices, 5 x 41.8 GHz, p 0.3, static channel
    assert (sc.n_devices, sc.n_servers) == (50, 5)
    log = run_both(sc, rules, 1000, seed=7, assign=ASSIGNMENTS[assignment](sc.n_servers))
    assert len(log) > 14_000
    if assignment != "random":  # (random: both outcomes happen too, but are not needed)
        assert (log.code == K.OUT_DONE).any() and (log.code > K.OUT_DONE).any()


def test_tang_wong_differs_from_fluid_on_the_same_run():
    """On identical arrivals and actions, the rules change outcomes (so the comparison above has teeth)."""
    sc = load_scenario("tang-wong")
    logs = {r: run_both(sc, r, 300, seed=3, assign=uniform(sc.n_servers)) for r in ("fluid", "tang-wong")}
    assert (logs["fluid"].code != logs["tang-wong"].code).any()
    assert logs["tang-wong"].latency.mean() > logs["fluid"].latency.mean()
    assert (logs["tang-wong"].code > K.OUT_DONE).sum() > (logs["fluid"].code > K.OUT_DONE).sum()
    assert np.allclose(logs["tang-wong"].latency, np.round(logs["tang-wong"].latency))  # rule a: whole slots


# ---------------------------------------------------------------- small random scenarios
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios(), seed=st.integers(0, 2**31), slots=st.integers(1, 60), rules=st.sampled_from(["tang-wong", "fluid"]))
def test_small_random_scenarios(sc, seed, slots, rules):
    """1-8 devices, 1-5 heterogeneous servers, deadlines 1-12, all channel models, random actions."""
    run_both(sc, rules, slots, seed, uniform(sc.n_servers))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), deadline=st.sampled_from([62, 63, 70]))
def test_long_deadlines(seed, deadline):
    """Deadlines over 62 slots take the other walk of a device's ring (no bit mask)."""
    sc = make_scenario({"n_devices": 8, "servers": ["energy-saving", "standard"], "arrival_prob": 0.6,
                        "deadline": deadline, "device_ghz": 0.5})  # fmt: skip
    log = run_both(sc, "tang-wong", deadline + 40, seed, uniform(sc.n_servers))
    assert (log.code == K.OUT_DONE).any() and (log.code > K.OUT_DONE).any()


# ---------------------------------------------------------------- the three rules, one task at a time
def unit_scenario(rules, deadline=10, uplink_mbps=10.0):
    """Round numbers: local CPU 1 Mbit/slot, uplink ``uplink_mbps / 10`` Mbit/slot, one server of 2 Mbit/slot."""
    return make_scenario({
        "n_devices": 2, "servers": [{"type": "standard", "ghz": 2.0}], "cycles_per_bit": 100.0,
        "device_ghz": 1.0, "uplink_mbps": uplink_mbps, "deadline": deadline, "arrival_prob": 0.0,
        "channel": {"model": "static"}, "slot_rules": rules,
    })  # fmt: skip


def play(sc, script, slots):
    """``script[t] = [(device, Mbit, action)]``; returns the simulator and each slot's StepResult."""
    sim = MECSimulator(sc, seed=0)
    assert (sim.local_rate, float(sim.server_rate[0])) == (1.0, 2.0)
    results = []
    for t in range(slots):
        tasks = script.get(t, [])
        sim.set_arrivals([d for d, _, _ in tasks], [s for _, s, _ in tasks])
        results.append(sim.step([a for _, _, a in tasks]))
    return sim, results


def test_rule_a_whole_slot_delay():
    # One 2.5 Mbit task computed locally at 1 Mbit/slot, arriving in slot 0.
    # fluid: 1 + 1 Mbit in slots 0 and 1, the last 0.5 Mbit in the first half of slot 2:
    #        it completes at time 2.5, latency 2.5 - 0 = 2.5 slots.
    # tang-wong: it completes during slot 2, delay = 2 - 0 + 1 = 3 slots.
    for rules, latency in (("fluid", 2.5), ("tang-wong", 3.0)):
        sim, _ = play(unit_scenario(rules), {0: [(0, 2.5, 0)]}, 4)
        assert sim.log.code.tolist() == [K.OUT_DONE]
        assert sim.log.latency[0] == pytest.approx(latency)


def test_rule_b_a_task_starts_only_at_a_slot_boundary():
    # Device 0 computes locally (1 Mbit/slot): A = 1.5 Mbit arrives in slot 0, B = 1.5 Mbit in slot 1.
    # fluid: A gets 1 Mbit in slot 0 and 0.5 in slot 1, done at 1.5 (latency 1.5); B gets the other
    #        half of slot 1 (0.5 Mbit) and all of slot 2: done at 3.0, latency 3.0 - 1 = 2.0.
    # tang-wong: A is done in slot 1 (delay 1 - 0 + 1 = 2); the half slot it leaves is lost, so B
    #        starts in slot 2 (1 Mbit) and is done in slot 3: delay 3 - 1 + 1 = 3. Whole-slot
    #        delay alone (rule a) would give B 2 (fluid completion at 3.0 = end of slot 2).
    script = {0: [(0, 1.5, 0)], 1: [(0, 1.5, 0)]}
    for rules, latencies in (("fluid", [1.5, 2.0]), ("tang-wong", [2.0, 3.0])):
        sim, _ = play(unit_scenario(rules), script, 6)
        assert sim.log.code.tolist() == [K.OUT_DONE, K.OUT_DONE]
        assert sim.log.latency.tolist() == pytest.approx(latencies)
    # With a deadline of 2 slots the lost half slot turns B's completion into a drop: B's
    # deadline slot is 2; fluid: done at 3.0, the very end of slot 2 (latency 2.0); tang-wong:
    # 1 Mbit in slot 2 leaves 0.5 Mbit, dropped computing (OUT_DROP_LOCAL_RUN, latency 2).
    # (A is done in both: fluid latency 1.5, tang-wong 2.)
    for rules, codes, latencies in (
        ("fluid", [K.OUT_DONE, K.OUT_DONE], [1.5, 2.0]),
        ("tang-wong", [K.OUT_DONE, K.OUT_DROP_LOCAL_RUN], [2.0, 2.0]),
    ):
        sim, _ = play(unit_scenario(rules, deadline=2), script, 4)
        assert sim.log.code.tolist() == codes
        assert sim.log.latency.tolist() == pytest.approx(latencies)
    # The same in the uplink and at a server queue (deadline 4). Device 0 offloads A = 2.5 Mbit
    # in slot 0 and B = 1.0 Mbit in slot 1; the uplink sends 2 Mbit/slot (uplink_mbps 20), the
    # server computes 2 Mbit/slot (one active queue).
    # fluid: uplink: A 2 Mbit in slot 0, 0.5 in slot 1, then B (1.0) in the same slot: both at
    #        the server from slot 2. Server: A 2 Mbit in slot 2, 0.5 in slot 3 (done at 3.25,
    #        latency 3.25); B gets the rest of slot 3: done at 3 + 1.5 / 2 = 3.75, latency 2.75.
    # tang-wong: uplink: A's upload ends in slot 1, B waits and is sent in slot 2. Server: A
    #        2 Mbit in slot 2 and 0.5 in slot 3 (done, delay 3 - 0 + 1 = 4); B waits for slot 4:
    #        done, delay 4 - 1 + 1 = 4 (whole slots alone would give B 3 - 1 + 1 = 3).
    script = {0: [(0, 2.5, 1)], 1: [(0, 1.0, 1)]}
    for rules, latencies in (("fluid", [3.25, 2.75]), ("tang-wong", [4.0, 4.0])):
        sim, _ = play(unit_scenario(rules, deadline=4, uplink_mbps=20.0), script, 8)
        assert sim.log.code.tolist() == [K.OUT_DONE, K.OUT_DONE]
        assert sim.log.latency.tolist() == pytest.approx(latencies)


def test_rule_c_an_upload_ending_in_the_deadline_slot_reaches_the_server():
    # Deadline 2 slots, uplink 2 Mbit/slot, server 2 Mbit/slot.
    # Device 0: X = 4 Mbit to the server in slot 0; its upload takes slots 0 and 1 (2 + 2), so
    #           its last bit leaves in slot 1 = its deadline slot (0 + 2 - 1).
    # Device 1: Y = 1.5 Mbit to the server in slot 1; uploaded in slot 1, at the server in slot 2.
    # fluid: X is dropped at the uplink at the end of slot 1 (OUT_DROP_TX_RUN, latency 2); in
    #        slot 2 the server has one active queue (Y's): Y gets 2 Mbit/slot and is done at
    #        2 + 1.5 / 2 = 2.75, latency 1.75.
    # tang-wong: X joins the server queue; in slot 2 the server counts two active queues (X's
    #        and Y's), X is dropped when pulled (OUT_DROP_SERVER_WAIT, latency 2), and Y gets
    #        2 / 2 = 1 Mbit: 0.5 Mbit short at the end of slot 2, its deadline slot: dropped
    #        computing (OUT_DROP_SERVER_RUN).
    script = {0: [(0, 4.0, 1)], 1: [(1, 1.5, 1)]}
    sim, res = play(unit_scenario("fluid", deadline=2, uplink_mbps=20.0), script, 4)
    assert sim.log.code.tolist() == [K.OUT_DROP_TX_RUN, K.OUT_DONE]
    assert sim.log.latency.tolist() == pytest.approx([2.0, 1.75])
    assert res[1].task_id.tolist() == [0]  # X ends with slot 1
    assert sim.history[0, -4:].tolist() == [0, 0, 1, 0]  # active queues at the server, slots 0-3
    sim, res = play(unit_scenario("tang-wong", deadline=2, uplink_mbps=20.0), script, 4)
    assert sim.log.code.tolist() == [K.OUT_DROP_SERVER_WAIT, K.OUT_DROP_SERVER_RUN]
    assert sim.log.latency.tolist() == [2.0, 2.0]
    assert res[1].task_id.tolist() == [0]  # X's fate is known and reported with slot 1 ...
    assert sim.history[0, -4:].tolist() == [0, 0, 2, 0]  # ... but its queue counts in slot 2
    assert sim.served[0] == pytest.approx(1.0)


def test_observation_in_whole_slots():
    # Device 0 computes a 2.5 Mbit task locally from slot 0 (1 Mbit/slot); device 1 uploads a
    # 4 Mbit one (2 Mbit/slot) from slot 1. At the start of slot 2 device 0's CPU has 0.5 Mbit
    # to go: fluid wait 0.5 slots, tang-wong 1 whole slot; device 1's uplink has 2 Mbit: 1 slot.
    sc = unit_scenario("tang-wong", deadline=4, uplink_mbps=20.0)
    sim, _ = play(sc, {0: [(0, 2.5, 0)], 1: [(1, 4.0, 1)]}, 2)
    M, N = sim.M, sim.N
    out = [np.empty(M), np.empty(M), np.empty(N), np.empty(N, dtype=np.int64)]
    TW.observe_system_tw(sim.t, sim.arr, sim.rem, sim.act, sim.stage, sim.rate, sim.local_rate, *out)
    assert out[0].tolist() == [1.0, 0.0] and out[1].tolist() == [0.0, 1.0]
    fluid = [np.empty(M), np.empty(M), np.empty(N), np.empty(N, dtype=np.int64)]
    K.observe_system(sim.t, sim.arr, sim.rem, sim.act, sim.stage, sim.rate, sim.local_rate, *fluid)
    assert fluid[0].tolist() == [0.5, 0.0]


def test_observation_counts_a_late_uploads_queue_as_active_not_its_bits():
    # Rule c's X (4 Mbit, deadline 2) at the start of slot 2: one active queue, no Mbit queued.
    sim, _ = play(unit_scenario("tang-wong", deadline=2, uplink_mbps=20.0), {0: [(0, 4.0, 1)]}, 2)
    M, N = sim.M, sim.N
    out = [np.empty(M), np.empty(M), np.empty(N), np.empty(N, dtype=np.int64)]
    TW.observe_system_tw(sim.t, sim.arr, sim.rem, sim.act, sim.stage, sim.rate, sim.local_rate, *out)
    assert out[3].tolist() == [1] and out[2].tolist() == [0.0]
    sim.set_arrivals([], [])
    sim.step([])
    assert sim.history[0, -1] == 1 and (sim.arr < 0).all()  # the trace counted in slot 2, then left


def test_bad_action_changes_nothing():
    sim = MECSimulator(unit_scenario("tang-wong"), seed=0)
    sim.set_arrivals([0, 1], [1.0, 1.0])
    with pytest.raises(ValueError, match="not in 0..1"):
        sim.step([0, 2])
    assert (sim.arr < 0).all() and len(sim.log) == 0

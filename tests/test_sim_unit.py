"""Hand-computed cases of the simulator's slot semantics (comllm/sim/kernels.py docstring).

Numbers are chosen so every rate is round: a server of 29.7 GHz computes
29.7·0.1/0.297 = 10 Mbit/slot, a device of 2.97 GHz computes 1 Mbit/slot, and
the static uplink of 14 Mbps sends 1.4 Mbit/slot.
"""

import numpy as np
import pytest

from comllm.scenario import make_scenario
from comllm.sim import MECSimulator
from comllm.sim import kernels as K


def quiet(n_devices=1, servers=(29.7,), deadline=10, device_ghz=2.97):
    """A scenario with no random arrivals and a static channel: tasks come from set_arrivals."""
    return make_scenario(
        {
            "n_devices": n_devices,
            "servers": [{"type": "standard", "ghz": g} for g in servers],
            "arrival_prob": 0.0,
            "deadline": deadline,
            "device_ghz": device_ghz,
            "channel": {"model": "static"},
        }
    )


def run(sim, plan, slots):
    """plan: {slot: [(device, size, action), ...]}; returns the task log."""
    for t in range(slots):
        tasks = plan.get(t, [])
        sim.set_arrivals([d for d, _, _ in tasks], [s for _, s, _ in tasks])
        order = np.argsort([d for d, _, _ in tasks])
        sim.step(np.array([tasks[i][2] for i in order], dtype=np.int64))
    return sim.log


def test_rates_are_what_the_test_assumes():
    sim = MECSimulator(quiet(), seed=0)
    assert sim.local_rate == pytest.approx(1.0)
    assert sim.server_rate[0] == pytest.approx(10.0)
    assert sim.rate[0] == pytest.approx(1.4)


def test_one_device_one_server_transmission_then_computation():
    # 2.1 Mbit: 1.4 sent in slot 0, 0.7 in slot 1 (done at t = 1.5); joins the server at
    # the start of slot 2; computes 2.1 Mbit at 10 Mbit/slot -> done at t = 2.21.
    log = run(MECSimulator(quiet(), seed=0), {0: [(0, 2.1, 1)]}, 4)
    assert log.code.tolist() == [K.OUT_DONE]
    assert log.latency[0] == pytest.approx(2.21)


def test_two_devices_share_a_server_cpu():
    # both send 1.4 Mbit in slot 0, both queues are active in slot 1: 5 Mbit/slot each.
    log = run(MECSimulator(quiet(n_devices=2), seed=0), {0: [(0, 1.4, 1), (1, 1.4, 1)]}, 3)
    assert log.latency.tolist() == pytest.approx([1.28, 1.28])
    alone = run(MECSimulator(quiet(n_devices=2), seed=0), {0: [(0, 1.4, 1)]}, 3)
    assert alone.latency[0] == pytest.approx(1.14)


def test_server_share_follows_active_queues_not_tasks():
    # device 0 has two tasks at the server, device 1 one: two active queues, 5 Mbit/slot each;
    # device 0's queue is FIFO: its second task starts when the first ends within the slot.
    sim = MECSimulator(quiet(n_devices=2), seed=0)
    log = run(sim, {0: [(0, 1.4, 1), (1, 1.4, 1)], 1: [(0, 1.4, 1)]}, 4)
    # slot 1: queues of dev 0 (task A) and dev 1 (task B) active -> A and B done at 1.28.
    # task C (dev 0, arrived slot 1) sent in slot 1, joins at slot 2 alone: 10 Mbit/slot -> 2.14.
    assert log.latency.tolist() == pytest.approx([1.28, 1.28, 2.14 - 1])


def test_fifo_wait_in_the_local_queue():
    # A: 2.5 Mbit at slot 0 -> done at 2.5. B: 1 Mbit at slot 1 waits until 2.5 -> done at 3.5.
    sim = MECSimulator(quiet(), seed=0)
    sim.set_arrivals([0], [2.5])
    sim.step([0])
    sim.set_arrivals([0], [1.0])
    state = sim.observe()
    assert state.local_wait[0] == pytest.approx(1.5)  # what B is told: 1.5 slots of A left
    sim.step([0])
    for _ in range(4):
        sim.set_arrivals([], [])
        sim.step([])
    assert sim.log.latency.tolist() == pytest.approx([2.5, 2.5])


def test_drop_while_computing_locally():
    # 5 Mbit at 1 Mbit/slot with a 3-slot deadline: 2 Mbit left at the end of slot 2.
    log = run(MECSimulator(quiet(deadline=3), seed=0), {0: [(0, 5.0, 0)]}, 4)
    assert log.code.tolist() == [K.OUT_DROP_LOCAL_RUN]
    assert log.latency[0] == 3


def test_drop_while_transmitting():
    # 5 Mbit at 1.4 Mbit/slot needs 3.57 slots of uplink; deadline 3.
    log = run(MECSimulator(quiet(deadline=3), seed=0), {0: [(0, 5.0, 1)]}, 4)
    assert log.code.tolist() == [K.OUT_DROP_TX_RUN]
    assert log.latency[0] == 3


def test_drop_while_computing_at_the_server():
    # a 0.297 GHz server computes 0.1 Mbit/slot: 1.4 Mbit sent in slot 0, then 0.1 per slot.
    log = run(MECSimulator(quiet(servers=(0.297,), deadline=4), seed=0), {0: [(0, 1.4, 1)]}, 5)
    assert log.code.tolist() == [K.OUT_DROP_SERVER_RUN]
    assert log.latency[0] == 4


def test_drop_while_waiting_behind_a_doomed_task():
    # The waiting variant: B waits behind A in the uplink; A holds the uplink until A's
    # deadline, B gets one slot, too little for 5 Mbit, and is dropped transmitting. Under
    # FIFO with one deadline for all, a predecessor always leaves by its own (earlier)
    # deadline, so a task is never dropped before it starts: the drop of a waiting task is
    # the drop of a task that waited, and what it waited for is visible in its latency.
    sim = MECSimulator(quiet(deadline=3), seed=0)
    log = run(sim, {0: [(0, 10.0, 1)], 1: [(0, 5.0, 1)]}, 5)
    assert log.code.tolist() == [K.OUT_DROP_TX_RUN, K.OUT_DROP_TX_RUN]
    assert log.latency.tolist() == [3, 3]


def test_completion_exactly_at_the_deadline_counts_as_completed():
    # 3 Mbit locally at 1 Mbit/slot with a 3-slot deadline finishes at t = 3.0 exactly.
    log = run(MECSimulator(quiet(deadline=3), seed=0), {0: [(0, 3.0, 0)]}, 4)
    assert log.code.tolist() == [K.OUT_DONE]
    assert log.latency[0] == pytest.approx(3.0)


def test_state_shows_server_queue_and_active_count():
    sim = MECSimulator(quiet(n_devices=3), seed=0)
    run(sim, {0: [(0, 1.4, 1), (1, 1.4, 1)]}, 1)  # both join the server at slot 1
    sim.set_arrivals([2], [3.0])
    batch = sim.observe()
    assert batch.active[0, 0] == 2
    assert batch.queued[0, 0] == pytest.approx(2.8)
    assert batch.history[0, 0, -1] == 0  # slot 0 had no active queue yet


def test_invalid_actions_are_rejected_without_side_effects():
    sim = MECSimulator(quiet(), seed=0)
    sim.set_arrivals([0], [2.0])
    with pytest.raises(ValueError, match="action 5 is not in 0..1"):
        sim.step([5])
    with pytest.raises(ValueError, match="1 arriving tasks"):
        sim.step([0, 1])
    assert sim.t == 0 and len(sim.log) == 0
    sim.step([1])
    assert len(sim.log) == 1


@pytest.mark.parametrize("model", ["gauss-markov", "rayleigh"])
def test_fading_channels_vary_per_device_and_slot_around_the_nominal_rate(model):
    sc = make_scenario({"n_devices": 50, "arrival_prob": 0.0, "channel": {"model": model}})
    sim = MECSimulator(sc, seed=0)
    rates = []
    for _ in range(400):
        rates.append(sim.rate.copy())
        sim.step([])
    r = np.array(rates)
    assert r.std(axis=0).min() > 0.05  # every device's rate changes over time
    assert r.std(axis=1).min() > 0.05  # devices differ within a slot
    assert 0.7 * 1.4 < r.mean() < 1.3 * 1.4
    assert r.min() >= 0.2 * 1.4 - 1e-12 and r.max() <= 2.0 * 1.4 + 1e-12
    lag1 = np.corrcoef(r[:-1].ravel(), r[1:].ravel())[0, 1]
    assert lag1 > 0.5  # correlated slot to slot (rho = 0.9)


def test_bursty_arrivals_raise_the_offered_load():
    base = {"n_devices": 50, "channel": {"model": "static"}, "arrival_prob": 0.2}
    calm = MECSimulator(make_scenario(base), seed=0)
    bursty = MECSimulator(make_scenario({**base, "bursty": {"burst_prob": 0.9, "p_enter": 0.1, "p_leave": 0.1}}), seed=0)
    local = np.zeros(0, dtype=np.int64)
    for sim in (calm, bursty):
        for _ in range(300):
            sim.step(np.zeros(len(sim.arrivals), dtype=np.int64) if len(sim.arrivals) else local)
    rate_calm = len(calm.log) / (300 * 50)
    rate_bursty = len(bursty.log) / (300 * 50)
    assert abs(rate_calm - 0.2) < 0.02
    assert abs(rate_bursty - 0.55) < 0.05  # half the time in bursts at 0.9

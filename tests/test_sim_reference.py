"""Differential test: the compiled simulator and the plain-Python reference agree task by task."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comllm.sim import MECSimulator
from tests.oracles.reference_simulator import ReferenceSimulator
from tests.strategies import scenarios


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios(), seed=st.integers(0, 2**31), slots=st.integers(1, 60))
def test_compiled_and_reference_agree(sc, seed, slots):
    sim = MECSimulator(sc, seed=seed)
    ref = ReferenceSimulator(sc.n_devices, sim.local_rate, list(sim.server_rate), sc.deadline)
    rng = np.random.default_rng(seed)
    for t in range(slots):
        batch = sim.observe()
        actions = rng.integers(0, sc.n_servers + 1, len(batch))
        arrivals = [(int(d), float(s), int(a)) for d, s, a in zip(batch.device, batch.task_size, actions)]
        ref.step(t, arrivals, sim.rate.tolist())
        sim.step(actions)
    log = sim.log
    assert ref.next_tid == len(log)
    ended = np.flatnonzero(log.code > 0)
    assert set(ended.tolist()) == set(ref.outcomes)
    for tid in ended:
        code, lat = ref.outcomes[int(tid)]
        assert log.code[tid] == code
        assert abs(log.latency[tid] - lat) < 1e-9


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), deadline=st.sampled_from([62, 63, 70]))
def test_compiled_and_reference_agree_on_long_deadlines(seed, deadline):
    """Deadlines over 62 slots take the kernels' other walk of a device's ring (no bit mask)."""
    from comllm.scenario import make_scenario

    sc = make_scenario({"n_devices": 8, "servers": ["energy-saving"], "arrival_prob": 0.6, "deadline": deadline,
                        "device_ghz": 0.5})  # fmt: skip
    sim = MECSimulator(sc, seed=seed)
    ref = ReferenceSimulator(sc.n_devices, sim.local_rate, list(sim.server_rate), sc.deadline)
    rng = np.random.default_rng(seed)
    for t in range(deadline + 40):
        batch = sim.observe()
        actions = rng.integers(0, sc.n_servers + 1, len(batch))
        ref.step(t, [(int(d), float(s), int(a)) for d, s, a in zip(batch.device, batch.task_size, actions)], sim.rate.tolist())
        sim.step(actions)
    log = sim.log
    ended = np.flatnonzero(log.code > 0)
    assert (log.code == 1).any() and (log.code > 1).any()  # both completions and drops happened
    assert set(ended.tolist()) == set(ref.outcomes)
    for tid in ended:
        code, lat = ref.outcomes[int(tid)]
        assert log.code[tid] == code
        assert abs(log.latency[tid] - lat) < 1e-9

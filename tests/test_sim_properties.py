"""Property tests of the simulator over random scenarios and random policies."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comllm.sim import MECSimulator, Snapshot
from comllm.sim import kernels as K
from tests.strategies import scenarios


def random_run(sim, slots, seed, local_only=False):
    """Run a random policy; returns the outcome task ids reported by step()."""
    rng = np.random.default_rng(seed)
    ended = []
    for _ in range(slots):
        batch = sim.observe()
        assert (batch.local_wait >= 0).all() and (batch.tx_wait >= 0).all()
        assert (batch.queued >= -1e-9).all() and (batch.active >= 0).all()
        if local_only:
            actions = np.zeros(len(batch), dtype=np.int64)
        else:
            actions = rng.integers(0, sim.N + 1, len(batch))
        ended.extend(sim.step(actions).task_id.tolist())
        assert (sim.rem[sim.arr >= 0] >= -1e-9).all()
    return ended


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(sc=scenarios(), seed=st.integers(0, 2**31), slots=st.integers(1, 80))
def test_every_task_ends_exactly_once_and_latencies_are_bounded(sc, seed, slots):
    sim = MECSimulator(sc, seed=seed)
    ended = random_run(sim, slots, seed)
    log = sim.log
    # exactly once: no task id reported twice, and reported == logged as ended
    assert len(ended) == len(set(ended))
    assert set(ended) == set(np.flatnonzero(log.code > 0).tolist())
    # a task still in the system is live in the queues and arrived within the last D slots
    live = set(sim.tid[sim.arr >= 0].tolist())
    assert live == set(np.flatnonzero(log.code == 0).tolist())
    assert (log.arrival[log.code == 0] > sim.t - 1 - sc.deadline).all()
    done = log.code == K.OUT_DONE
    assert (log.latency[done] > 0).all() and (log.latency[done] <= sc.deadline + 1e-9).all()
    # offloaded tasks join the server at a slot boundary after transmitting: more than 1 slot
    assert (log.latency[done & (log.action > 0)] > 1).all()
    dropped = log.code > K.OUT_DONE
    assert (log.latency[dropped] == sc.deadline).all()


@PROPS
@given(sc=scenarios(), seed=st.integers(0, 2**31))
def test_all_tasks_end_once_arrivals_stop(sc, seed):
    sim = MECSimulator(sc, seed=seed)
    random_run(sim, 30, seed)
    for _ in range(sc.deadline + 1):
        sim.set_arrivals([], [])
        sim.step([])
    assert (sim.log.code > 0).all()
    assert (sim.arr < 0).all()


@PROPS
@given(sc=scenarios(), seed=st.integers(0, 2**31))
def test_same_seed_same_results(sc, seed):
    a, b = MECSimulator(sc, seed=seed), MECSimulator(sc, seed=seed)
    random_run(a, 40, seed)
    random_run(b, 40, seed)
    for key in ("arrival", "device", "size", "action", "code", "latency"):
        np.testing.assert_array_equal(getattr(a.log, key), getattr(b.log, key))


@PROPS
@given(sc=scenarios(), seed=st.integers(0, 2**31))
def test_local_only_policy_puts_no_load_on_servers(sc, seed):
    sim = MECSimulator(sc, seed=seed)
    random_run(sim, 40, seed, local_only=True)
    assert (sim.served == 0).all() and (sim.busy_slots == 0).all() and (sim.history == 0).all()
    assert (sim.log.action == 0).all()


@PROPS
@given(sc=scenarios(), seed=st.integers(0, 2**31), before=st.integers(0, 40), json_form=st.booleans())
def test_snapshot_run_restore_run_is_identical(sc, seed, before, json_form):
    sim = MECSimulator(sc, seed=seed)
    random_run(sim, before, seed)
    snap = sim.snapshot()
    n0 = len(sim.log)
    random_run(sim, 30, seed + 1)
    first = {k: getattr(sim.log, k)[n0:].copy() for k in ("arrival", "device", "size", "action", "code", "latency")}
    if json_form:
        import json

        other = MECSimulator.from_snapshot(Snapshot.from_dict(json.loads(json.dumps(snap.to_dict()))))
        # the JSON form carries the live tasks, not the log: compare the tasks arriving after it
        assert len(other.log) == 0
        random_run(other, 30, seed + 1)
        got = {k: getattr(other.log, k) for k in first}
        np.testing.assert_array_equal(got["arrival"], first["arrival"])
        np.testing.assert_array_equal(got["action"], first["action"])
        np.testing.assert_allclose(got["size"], first["size"], rtol=0, atol=1e-8)
        finished = got["code"] > 0
        np.testing.assert_array_equal(got["code"][finished], first["code"][finished])
        np.testing.assert_allclose(got["latency"][finished], first["latency"][finished], atol=1e-6)
    else:
        sim.restore(snap)
        random_run(sim, 30, seed + 1)
        for k, v in first.items():
            np.testing.assert_array_equal(getattr(sim.log, k)[n0:], v)

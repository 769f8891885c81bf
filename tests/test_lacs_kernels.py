"""The compiled pieces of LACS agree with their sources of truth.

* ``comllm.cost.greedy_action_scaled`` (numba) == ``oracle_actions``, near-ties included;
* a batched rollout (``comllm.sim.batch``) == ``MECSimulator`` run from the same snapshot
  with the same actions (greedy oracle for the other tasks, or ``greedy:incoming`` /
  ``greedy:sharing`` deciding each slot's tasks in turn under the ``greedy-incoming`` /
  ``greedy-sharing`` rule) and the same random draws.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comllm.cost import oracle_actions
from comllm.policies.heuristics import GreedyPolicy, RandomPolicy
from comllm.scenario import load_scenario
from comllm.sim import MECSimulator, Snapshot
from comllm.sim import batch as B
from comllm.sim import kernels as K
from comllm.state import StateBatch
from tests.strategies import scenarios


def random_batch(rng, n=200, n_servers=5):
    """States with wide-ranging values, some servers idle, some rates tiny."""
    return StateBatch(
        task_size=rng.uniform(0.1, 8, n),
        max_delay=np.full(n, 10),
        local_wait=rng.uniform(0, 12, n) * (rng.random(n) < 0.7),
        tx_wait=rng.uniform(0, 12, n) * (rng.random(n) < 0.7),
        upload_rate=np.where(rng.random(n) < 0.05, 0.0, rng.uniform(0.1, 3, n)),
        slot_s=rng.choice([0.1, 0.05, 1.0], n),
        drop_penalty=np.full(n, 100.0),
        device_ghz=rng.uniform(0.5, 5, n),
        device_cycles_per_bit=rng.uniform(100, 1000, n),
        device_mbps=np.full(n, 14.0),
        server_type=np.zeros((n, n_servers), dtype=np.int64),
        server_ghz=rng.uniform(5, 60, (n, n_servers)),
        server_cycles_per_bit=rng.uniform(100, 1000, (n, n_servers)),
        active=rng.integers(0, 30, (n, n_servers)),
        queued=rng.uniform(0, 80, (n, n_servers)) * (rng.random((n, n_servers)) < 0.7),
        history=np.zeros((n, n_servers, 10)),
    )


@pytest.mark.parametrize("n_servers", [1, 6, 11])
@pytest.mark.parametrize("sharing", [False, True])
def test_the_compiled_greedy_rules_are_their_oracles(n_servers, sharing):
    """The rollouts' forms (constant factors computed once) of ``greedy`` (``greedy_action_scaled``) and
    ``greedy:sharing`` (``greedy_action_sharing``) take the numpy oracle's action, near-ties included."""
    from comllm.cost import greedy_action_scaled, greedy_action_sharing

    rule = greedy_action_sharing if sharing else greedy_action_scaled
    b = random_batch(np.random.default_rng(n_servers + 100 + 100 * sharing), n=2000, n_servers=n_servers)
    b.server_ghz[:, 1:] = b.server_ghz[:, :1]  # twin servers: exact ties
    b.server_cycles_per_bit[:, 1:] = b.server_cycles_per_bit[:, :1]
    got = [
        rule(
            b.task_size[i], b.local_wait[i], b.tx_wait[i], b.upload_rate[i], b.device_cycles_per_bit[i] / 1000.0,
            b.device_ghz[i] * b.slot_s[i], b.server_cycles_per_bit[i] / 1000.0, b.server_ghz[i] * b.slot_s[i],
            b.queued[i], b.active[i],
        )  # fmt: skip
        for i in range(len(b))
    ]
    want = oracle_actions(b, sharing=sharing)
    np.testing.assert_array_equal(got, want)
    if sharing:
        assert (want != oracle_actions(b)).mean() > 0.05  # not the paper's formula


def test_greedy_action_breaks_ties_like_argmin():
    # two identical idle servers: the oracle and the compiled rule both take the lower index
    from comllm.cost import greedy_action_scaled

    ghz, cpb = np.array([30.0, 30.0]), np.array([297.0, 297.0])
    q, a = np.zeros(2), np.zeros(2, dtype=np.int64)
    assert greedy_action_scaled(3.0, 50.0, 0.0, 1.4, 0.297, 0.25, cpb / 1000.0, ghz * 0.1, q, a) == 1


def _in_turn_incoming(batch, given, sharing=False):
    """``greedy:incoming`` (``sharing``: ``greedy:sharing``) deciding a slot's tasks one at a time in
    device order, each task seeing the traffic in flight and the decisions before it (``given``:
    positions with a decision already, counted first), from the simulator's own view and the numpy
    oracle."""
    acts = np.full(len(batch), -1, dtype=np.int64)
    if not len(batch):
        return acts
    inc, inc_n = batch.incoming[0].copy(), batch.incoming_n[0].copy()
    for pos, a in given.items():
        acts[pos] = a
        if a > 0:
            inc[a - 1] += batch.task_size[pos]
            inc_n[a - 1] += 1
    for pos in range(len(batch)):
        if acts[pos] >= 0:
            continue
        one = batch.subset([pos])
        one.incoming, one.incoming_n = inc[None].copy(), inc_n[None].copy()
        acts[pos] = oracle_actions(one, incoming=True, incoming_active=sharing, sharing=sharing)[0]
        if acts[pos] > 0:
            inc[acts[pos] - 1] += batch.task_size[pos]
            inc_n[acts[pos] - 1] += 1
    return acts


def _simulator_rollout(snap, device, action, n_slots, horizon, drop_cost, rule="greedy"):
    """What MECSimulator does from ``snap``: ``device`` takes ``action``, the rule decides the rest."""
    sim = MECSimulator.from_snapshot(snap)
    first_id = sim.log.n
    cur_id = first_id + int(np.flatnonzero(sim.arrivals == device)[0])
    greedy = GreedyPolicy()
    for i in range(n_slots):
        batch = sim.observe()
        cur = {int(np.flatnonzero(batch.device == device)[0]): action} if i == 0 else {}
        if rule in ("greedy-incoming", "greedy-sharing"):
            acts = _in_turn_incoming(batch, cur, sharing=rule == "greedy-sharing")
        else:
            acts = greedy.act(batch) if len(batch) else np.zeros(0, dtype=np.int64)
            for pos, a in cur.items():
                acts[pos] = a
        sim.step(acts)
    log = sim.log
    ids = np.arange(first_id, log.n)
    scored = ids[(log.arrival[ids] <= snap.t + horizon) & (ids != cur_id)]
    cost = np.where(log.code == K.OUT_DONE, log.latency, drop_cost)
    ended = scored[log.code[scored] > 0]
    return sim, {
        "cur": cost[cur_id] if log.code[cur_id] > 0 else np.nan,
        "cur_done": float(log.code[cur_id] == K.OUT_DONE),
        "h_sum": cost[ended].sum(),
        "h_n": len(scored),
        "h_all_ended": len(ended) == len(scored),
    }


def _simulator_draws(snap, n):
    """The random draws a simulator restored from ``snap`` uses for its next ``n`` slots."""
    src = MECSimulator.from_snapshot(snap)
    pairs = [tuple(x.copy() for x in src._next_randoms()) for _ in range(max(n, 1))]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _check_rollout_matches_simulator(scenario, seed, warmup, horizon, action_pick, via_json=False, rule="greedy"):
    sim = MECSimulator(scenario, seed=seed)
    pol = RandomPolicy(seed)
    for _ in range(warmup):
        sim.step(pol.act(sim.observe()))
    if not len(sim.arrivals):  # a decision needs a task: script one
        sim.set_arrivals([scenario.n_devices - 1], [scenario.size_max])
    snap = sim.snapshot()
    if via_json:
        snap = Snapshot.from_dict(snap.to_dict())
    device = int(sim.arrivals[action_pick % len(sim.arrivals)])
    action = action_pick % (scenario.n_servers + 1)
    n_slots = horizon + scenario.deadline
    drop_cost = 77.0
    ref_sim, ref = _simulator_rollout(snap, device, action, n_slots, horizon, drop_cost, rule)
    u, z = _simulator_draws(snap, n_slots - 1)

    # one system, run for exactly n_slots: the whole state must match
    params = B.rollout_params(scenario, horizon, rule, drop_cost, max_slots=n_slots, stop_early=False)
    a = {k: v.copy() for k, v in snap.arrays.items()}
    tid = np.empty_like(a["arr"])
    out = np.empty(B.N_OUT)
    first = np.full(scenario.n_devices, -1, dtype=np.int64)
    B.rollout_system(
        snap.t, a["arr"], a["size"], a["rem"], a["act"], a["stage"], tid, a["chan"], a["chan_im"], a["rate"],
        a["phase"], a["new_mask"], a["new_size"], first, device, action, u, z, np.zeros((1, scenario.n_devices)),
        params.fp, params.ip, params.server_rate, params.server_ghz, params.server_cpb, out,
    )  # fmt: skip
    # the queues match exactly (the simulator has also drawn the inputs of one more slot, the rollout not)
    for key in ("arr", "size", "rem", "act", "stage"):
        np.testing.assert_array_equal(a[key], getattr(ref_sim, key), err_msg=key)
    assert ref["h_all_ended"]
    np.testing.assert_equal(out[B.OUT_CUR_COST], ref["cur"])
    assert out[B.OUT_CUR_DONE] == ref["cur_done"]
    assert out[B.OUT_HOR_N] == ref["h_n"]
    assert out[B.OUT_HOR_SUM] == pytest.approx(ref["h_sum"], rel=1e-12, abs=1e-9)
    assert out[B.OUT_SLOTS] == n_slots

    # the batched kernel with early stopping scores the same
    params = B.rollout_params(scenario, horizon, rule, drop_cost)
    s = snap.arrays
    bout = np.empty((1, 2, 1, B.N_OUT))
    B.rollout_batch(
        np.array([snap.t]), *(s[k][None].copy() for k in ("arr", "size", "rem", "act", "stage", "chan", "chan_im",
        "rate", "phase", "new_mask", "new_size")), first[None], np.array([device]), np.array([[action, action]]),
        u[None, None], z[None, None], np.zeros((1, 1, 1, scenario.n_devices)),
        params.fp, params.ip, params.server_rate, params.server_ghz, params.server_cpb, bout,
    )  # fmt: skip
    for c in range(2):
        np.testing.assert_array_equal(bout[0, c, 0, :4], out[:4])
    assert bout[0, 0, 0, B.OUT_SLOTS] <= n_slots


@pytest.mark.parametrize("name", ["paper-6", "small", "tang-wong"])
@pytest.mark.parametrize("action_pick", [0, 1, 5])
@pytest.mark.parametrize("rule", ["greedy", "greedy-incoming", "greedy-sharing"])
def test_rollout_reproduces_the_simulator_on_presets(name, action_pick, rule):
    _check_rollout_matches_simulator(
        load_scenario(name), seed=action_pick, warmup=60, horizon=5, action_pick=action_pick, rule=rule
    )


def test_the_incoming_rule_decides_other_than_greedy():
    """The differential test above is not vacuous: on paper-6 slots with several arrivals the
    in-turn incoming rule and greedy disagree (greedy sends a slot's tasks to one server)."""
    sim = MECSimulator(load_scenario("paper-6"), seed=4)
    greedy, differ, differ_sharing = GreedyPolicy(), 0, 0
    for _ in range(300):
        b = sim.observe()
        acts = greedy.act(b) if len(b) else np.zeros(0, dtype=np.int64)
        differ += int((_in_turn_incoming(b, {}) != acts).sum())
        differ_sharing += int((_in_turn_incoming(b, {}, sharing=True) != _in_turn_incoming(b, {})).sum())
        sim.step(acts)
    assert differ > 20 and differ_sharing > 20


def test_rollout_reproduces_the_simulator_from_a_json_snapshot():
    sc = load_scenario("paper-11", {"bursty": {"burst_prob": 0.8}, "channel.model": "rayleigh"})
    _check_rollout_matches_simulator(sc, seed=3, warmup=80, horizon=3, action_pick=4, via_json=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenario=scenarios(),
    seed=st.integers(0, 10_000),
    warmup=st.integers(0, 40),
    horizon=st.integers(0, 6),
    action_pick=st.integers(0, 50),
)
def test_rollout_reproduces_the_simulator_on_random_scenarios(scenario, seed, warmup, horizon, action_pick):
    _check_rollout_matches_simulator(scenario, seed, warmup, horizon, action_pick)
    _check_rollout_matches_simulator(scenario, seed, warmup, horizon, action_pick, rule="greedy-incoming")
    _check_rollout_matches_simulator(scenario, seed, warmup, horizon, action_pick, rule="greedy-sharing")


def test_rollout_params_reject_bad_settings():
    sc = load_scenario("small")
    with pytest.raises(ValueError, match="rule 'smart'"):
        B.rollout_params(sc, 5, "smart")
    with pytest.raises(ValueError, match="horizon=-1"):
        B.rollout_params(sc, -1)
    p = B.rollout_params(sc, 4)
    assert p.max_slots == 4 + sc.deadline


@pytest.mark.parametrize("rule", ["greedy", "local", "random", "greedy-incoming", "greedy-sharing"])
@pytest.mark.parametrize("horizon", [0, 3])
def test_batched_rollouts_equal_one_rollout_at_a_time(rule, horizon):
    """rollout_batch (many rollouts per candidate, slot t0 run once per candidate where no
    draw enters it) == rollout_system on fresh copies, rollout by rollout."""
    from comllm.lacs.lookahead import rollout_draws

    sc = load_scenario("paper-6")
    sim = MECSimulator(sc, seed=11)
    pol = GreedyPolicy()
    snaps, devs = [], []
    while len(snaps) < 3:
        b = sim.observe()
        if sim.t >= 40 and len(b) >= 2:
            snaps.append(sim.snapshot())
            devs.append(int(b.device[1]))
        sim.step(pol.act(b))
    params = B.rollout_params(sc, horizon, rule)
    n_k, cands = 4, np.array([[0, 2, 5]] * len(snaps))
    first = np.full((len(snaps), sc.n_devices), -1, dtype=np.int64)
    first[0, devs[0] ^ 1] = 1  # a fixed action for another arrival (if it has one)
    u, z, ua = rollout_draws(sc, [(0, s.t, d) for s, d in zip(snaps, devs)], n_k, params.max_slots, rule)
    keys = ("arr", "size", "rem", "act", "stage", "chan", "chan_im", "rate", "phase", "new_mask", "new_size")
    stacked = [np.stack([s.arrays[k] for s in snaps]) for k in keys]
    out = np.empty((len(snaps), cands.shape[1], n_k, B.N_OUT))
    B.rollout_batch(
        np.array([s.t for s in snaps]), *stacked, first, np.array(devs), cands, u, z, ua,
        params.fp, params.ip, params.server_rate, params.server_ghz, params.server_cpb, out,
    )  # fmt: skip
    for s, snap in enumerate(snaps):
        for c in range(cands.shape[1]):
            for k in range(n_k):
                a = {key: v.copy() for key, v in snap.arrays.items()}
                one = np.empty(B.N_OUT)
                B.rollout_system(
                    snap.t, a["arr"], a["size"], a["rem"], a["act"], a["stage"], np.empty_like(a["arr"]),
                    a["chan"], a["chan_im"], a["rate"], a["phase"], a["new_mask"], a["new_size"], first[s],
                    devs[s], cands[s, c], u[s, k], z[s, k], ua[s, k],
                    params.fp, params.ip, params.server_rate, params.server_ghz, params.server_cpb, one,
                )  # fmt: skip
                np.testing.assert_array_equal(out[s, c, k], one)


@pytest.mark.parametrize("normals, random_rule", [(True, False), (False, True), (True, True)])
def test_compiled_draws_are_numpys_draws(normals, random_rule):
    """comllm.lacs.draws fills exactly what default_rng(key).random / standard_normal would
    (many keys: the ziggurat's rare tail and wedge paths are taken too)."""
    from comllm.lacs import draws

    if not draws.AVAILABLE:
        pytest.skip("numba's ziggurat tables are not importable: rollout_draws uses numpy")
    keys = [(seed, t, d) for seed in (0, 7) for t in range(0, 400, 3) for d in (0, 29)]
    u = np.empty((len(keys), 4, 9, 3, 30))
    z = np.zeros((len(keys), 4, 9, 2, 30))
    ua = np.zeros((len(keys), 4, 10 if random_rule else 1, 30))
    draws.fill_draws(keys, u, z, ua, normals, random_rule)
    for s, key in enumerate(keys):
        rng = np.random.default_rng(list(key))
        np.testing.assert_array_equal(u[s], rng.random(u[s].shape))
        if normals:
            np.testing.assert_array_equal(z[s], rng.standard_normal(z[s].shape))
        else:
            assert not z[s].any()
        if random_rule:
            np.testing.assert_array_equal(ua[s], rng.random(ua[s].shape))


@pytest.mark.parametrize("overdue", [False, True])
def test_run_slot_observes_the_next_slot_as_observe_system(overdue):
    """run_slot_into(observe_next=True) leaves what observe_system shows at the next slot's
    start, with or without occupancy masks; also when a task outlived its deadline (a state
    the simulator never makes)."""
    sc = load_scenario("paper-6")
    sim = MECSimulator(sc, seed=5)
    pol = GreedyPolicy()
    rng = np.random.default_rng(0)
    for step in range(120):
        b = sim.observe()
        if step >= 60:
            a = {k: getattr(sim, k).copy() for k in ("arr", "size", "rem", "act", "stage")}
            t, D, M, N = sim.t, sc.deadline, sc.n_devices, sc.n_servers
            if overdue:  # a task at the place read first, older than the deadline allows
                m = int(rng.integers(M))
                k0 = (t + 1) % D
                a["arr"][m, k0], a["size"][m, k0], a["rem"][m, k0] = t + 1 - 2 * D, 3.0, 3.0
                a["act"][m, k0], a["stage"][m, k0] = 1 + (step % N), [K.STAGE_LOCAL, K.STAGE_TX, K.STAGE_SERVER][step % 3]
            ref = {k: v.copy() for k, v in a.items()}
            rate_next = sim.rate * rng.uniform(0.5, 1.5, M)
            active = np.empty(N, dtype=np.int64)
            lw, tw, q = np.empty(M), np.empty(M), np.empty(N)
            out = [np.empty(M * D, dtype=np.int64), np.empty(M * D), np.empty(M * D, dtype=np.int64), np.empty(M * D, dtype=np.int64)]
            tid = np.full((M, D), -1)
            def masks(arr):
                return ((arr >= 0) * (1 << np.arange(D))).sum(axis=1).astype(np.int64)

            occupied = masks(a["arr"])
            K.run_slot_into(
                t, a["arr"], a["size"], a["rem"], a["act"], a["stage"], tid, sim.rate, sim.local_rate, sim.server_rate,
                active, np.zeros(N), *out, np.zeros(N), np.empty(N), np.empty(N, dtype=np.int64), np.empty(D, dtype=np.int64),
                False, True, rate_next, lw, tw, q, active, occupied, bool(step % 2),
            )  # fmt: skip
            if step % 2:  # the occupancy masks follow the departures
                np.testing.assert_array_equal(occupied, masks(a["arr"]))
            K.run_slot(
                t, ref["arr"], ref["size"], ref["rem"], ref["act"], ref["stage"], tid.copy(), sim.rate, sim.local_rate,
                sim.server_rate, np.empty(N, dtype=np.int64), np.zeros(N), *(o.copy() for o in out),
            )  # fmt: skip
            for k in ref:
                np.testing.assert_array_equal(a[k], ref[k], err_msg=k)
            r_lw, r_tw, r_q, r_a = np.empty(M), np.empty(M), np.empty(N), np.empty(N, dtype=np.int64)
            K.observe_system(t + 1, ref["arr"], ref["rem"], ref["act"], ref["stage"], rate_next, sim.local_rate, r_lw, r_tw, r_q, r_a)
            np.testing.assert_array_equal(lw, r_lw)
            np.testing.assert_array_equal(tw, r_tw)
            np.testing.assert_array_equal(q, r_q)
            np.testing.assert_array_equal(active, r_a)
        sim.step(pol.act(b))


def test_rollout_reproduces_the_simulator_with_a_long_deadline():
    from comllm.scenario import make_scenario

    sc = make_scenario({"n_devices": 8, "servers": ["energy-saving", "standard"], "arrival_prob": 0.5, "deadline": 70,
                        "device_ghz": 0.5})  # fmt: skip
    _check_rollout_matches_simulator(sc, seed=2, warmup=90, horizon=4, action_pick=3)

"""The Gymnasium environment comllm/MEC-v0: API, observation, delayed credit, episodes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from comllm.envs import ENV_ID, EnvError, MECEnv, ObsLayout, ScaleObservation, feature_scale, observation_from_batch
from comllm.scenario import ScenarioError, load_scenario
from comllm.sim import MECSimulator
from comllm.sim import kernels as K


def _rollout(env: MECEnv, choose, seed: int):
    """Run one episode; returns per-step (info, action) and all credits."""
    obs, info = env.reset(seed=seed)
    steps, credits, rewards = [], {}, 0.0
    while True:
        assert info == env.current_task()
        a = choose(obs, info)
        steps.append((info, a))
        obs, r, term, trunc, info_next = env.step(a)
        assert info_next["task_id"] == info["task_id"]  # a step's info describes the decided task
        assert not term
        assert env.observation_space.contains(obs)
        rewards += r
        for tid, cr in zip(info_next["credit_ids"], info_next["credit_rewards"]):
            assert int(tid) not in credits, "a task was credited twice"
            credits[int(tid)] = float(cr)
        if trunc:
            return steps, credits, rewards, info_next
        info = env.current_task()


def test_check_env_passes():
    env = gym.make(ENV_ID, scenario="paper-6", episode_slots=30)
    check_env(env.unwrapped, skip_render_check=True)
    check_env(MECEnv("paper-6", episode_slots=30, decisions="sequential"), skip_render_check=True)
    wrapped = ScaleObservation(MECEnv("small", episode_slots=20))
    obs, _ = wrapped.reset(seed=0)
    assert wrapped.observation_space.contains(obs)


def test_make_with_scenario_and_overrides():
    env = gym.make(ENV_ID, scenario="small", episode_slots=20, arrival_prob=0.5, overrides=["deadline=12"])
    sc = env.unwrapped.scenario
    assert (sc.arrival_prob, sc.deadline, sc.n_servers) == (0.5, 12, 3)
    assert env.action_space.n == 4
    lay = ObsLayout.of(sc)
    assert env.observation_space.shape == (6 + 5 * 3 + 3 * sc.history_len,) == (lay.size,)
    with pytest.raises(ScenarioError, match="no_such_field"):
        MECEnv("small", no_such_field=1)


def test_bad_arguments_are_named():
    with pytest.raises(EnvError, match="episode_slots"):
        MECEnv("small", episode_slots=0)
    with pytest.raises(EnvError, match="arrival_prob=0"):
        MECEnv("small", arrival_prob=0.0)
    env = MECEnv("small", episode_slots=5)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(EnvError, match="action 9"):
        env.step(9)


def test_observation_is_the_simulator_state():
    env = MECEnv("paper-6", episode_slots=50)
    obs, info = env.reset(seed=3)
    sim = MECSimulator(env.scenario, seed=env.sim_seed)
    while len(sim.arrivals) == 0:
        sim.step(np.zeros(0, dtype=np.int64))
    batch = sim.observe()
    lay = env.layout
    assert info["device"] == batch.device[0] and info["slot"] == sim.t
    np.testing.assert_allclose(obs, observation_from_batch(batch)[0], rtol=1e-6)
    assert obs[0] == pytest.approx(batch.task_size[0], rel=1e-6)
    np.testing.assert_allclose(obs[lay.queued], batch.queued[0], rtol=1e-6)
    np.testing.assert_allclose(obs[lay.active], batch.active[0])
    np.testing.assert_allclose(obs[lay.ghz], [s.ghz for s in env.scenario.servers], rtol=1e-6)
    np.testing.assert_allclose(obs[lay.history].reshape(6, -1), batch.history[0])


@pytest.mark.parametrize("decisions", ["simultaneous", "sequential"])
def test_env_decisions_drive_the_simulator_exactly(decisions):
    """Deciding task by task in the env equals a simulator run with the same per-device rule."""
    sc = load_scenario("paper-6", [f"decisions={decisions}"])
    env = MECEnv(sc, episode_slots=60)

    def rule(devices: np.ndarray, slots: np.ndarray) -> np.ndarray:
        return (devices + slots) % (sc.n_servers + 1)

    steps, credits, ret, last = _rollout(env, lambda o, i: int(rule(np.array(i["device"]), np.array(i["slot"]))), 11)
    ref = MECSimulator(sc, seed=env.sim_seed)
    order = []
    for _ in range(60):
        first = ref.log.n
        order += (first + ref.decision_order()).tolist()
        ref.step(ref.decide(lambda b: rule(b.device, b.slot)))
    n = ref.log.n
    assert len(steps) == n  # one step per arriving task
    assert [s[0]["task_id"] for s in steps] == order  # in the protocol's decision order
    if decisions == "simultaneous":
        assert order == list(range(n))
    else:
        assert order != list(range(n)) and sorted(order) == list(range(n))
    np.testing.assert_array_equal(env.sim.log.action[:n], ref.log.action)
    np.testing.assert_array_equal(env.sim.log.device[:n], ref.log.device)
    # every decided task is credited once, with -latency or -drop_penalty from the simulator log
    assert sorted(credits) == list(range(n))
    log = env.sim.log
    want = np.where(log.code[:n] == K.OUT_DONE, -log.latency[:n], -sc.drop_penalty)
    np.testing.assert_allclose([credits[i] for i in range(n)], want)
    assert ret == pytest.approx(want.sum())
    stats = last["episode_stats"]
    assert stats["tasks"] == n
    assert stats["avg_latency"] == pytest.approx(log.latency[:n].mean())
    assert stats["drop_rate"] == pytest.approx((log.code[:n] != K.OUT_DONE).mean())


def test_observation_has_the_fresh_view_block():
    """Indices 4+3N .. 6+5N: incoming Mbit and tasks per server (the simulator's incoming_view),
    the slot's arrivals and the tasks not seen (simultaneous: all the slot's others)."""
    env = MECEnv("paper-6", episode_slots=40)
    lay = env.layout
    n = env.scenario.n_servers
    assert (lay.incoming, lay.incoming_n) == (slice(4 + 3 * n, 4 + 4 * n), slice(4 + 4 * n, 4 + 5 * n))
    assert (lay.slot_arrivals, lay.slot_pending, lay.history.start) == (4 + 5 * n, 5 + 5 * n, 6 + 5 * n)
    assert lay.size == 6 + 5 * n + n * env.scenario.history_len
    obs, info = env.reset(seed=2)
    seen_incoming = 0
    while True:
        inc, inc_n = env.sim.incoming_view()  # the slot has not run: the slot-start traffic
        arrivals = len(env.sim.arrivals)
        np.testing.assert_allclose(obs[lay.incoming], inc, rtol=1e-6)
        np.testing.assert_array_equal(obs[lay.incoming_n], inc_n)
        assert (obs[lay.slot_arrivals], obs[lay.slot_pending]) == (arrivals, arrivals - 1)
        seen_incoming += int(inc_n.sum() > 0)
        obs, _, _, trunc, _ = env.step(1 + info["device"] % n)  # offload everything
        if trunc:
            break
        info = env.current_task()
    assert seen_incoming > 10  # traffic was in flight, and the observation showed it
    # the policies' view of a batch is the same vector
    batch = env.sim.observe()
    if len(batch):
        row = observation_from_batch(batch)[0]
        np.testing.assert_array_equal(row[lay.incoming], batch.incoming[0].astype(np.float32))
        np.testing.assert_array_equal(row[lay.incoming_n], batch.incoming_n[0])


def test_sequential_observation_sees_the_slot_s_earlier_decisions():
    """Under sequential, the second task of a slot sees the first one's task in its server's
    incoming traffic (whole size, one task), and one pending task fewer."""
    env = MECEnv("small", episode_slots=5, n_devices=3, arrival_prob=1.0, decisions="sequential")
    lay = env.layout
    obs, info = env.reset(seed=0)
    sim = env.sim
    assert len(sim.arrivals) == 3
    base = sim.observe()  # the slot-start view (simultaneous)
    order = sim.decision_order()
    first = int(order[0])
    assert info["device"] == sim.arrivals[first]
    np.testing.assert_allclose(obs[lay.incoming], base.incoming[0], rtol=1e-6)
    assert (obs[lay.slot_arrivals], obs[lay.slot_pending]) == (3, 2)
    obs2, *_ = env.step(2)  # the first task goes to server 2
    info2 = env.current_task()
    assert info2["device"] == sim.arrivals[order[1]] and info2["slot"] == info["slot"]
    want = base.incoming[0].copy()
    want[1] += sim.new_size[sim.arrivals[first]]
    np.testing.assert_allclose(obs2[lay.incoming], want, rtol=1e-6)
    np.testing.assert_array_equal(obs2[lay.incoming_n], base.incoming_n[0] + np.array([0, 1, 0]))
    assert (obs2[lay.slot_arrivals], obs2[lay.slot_pending]) == (3, 1)
    actions = np.zeros(3, dtype=np.int64)
    actions[first] = 2
    np.testing.assert_array_equal(obs2, observation_from_batch(sim.observe_turn(1, actions))[0])
    # the rest of the server part is the slot-start state
    np.testing.assert_array_equal(obs2[lay.queued], obs[lay.queued])
    np.testing.assert_array_equal(obs2[lay.history], obs[lay.history])
    obs3, *_ = env.step(1)  # the second task goes to server 1
    want[0] += sim.new_size[sim.arrivals[order[1]]]
    np.testing.assert_allclose(obs3[lay.incoming], want, rtol=1e-6)
    assert obs3[lay.slot_pending] == 0
    t = sim.t
    env.step(0)  # the slot's last decision: the slot runs with the actions in device order
    assert sim.t > t
    acts = env.sim.log.action[:3]
    assert acts[first] == 2 and acts[order[1]] == 1 and acts[order[2]] == 0


def test_latency_is_credited_when_the_task_ends_not_before():
    env = MECEnv("paper-6", episode_slots=40)
    env.reset(seed=1)
    decided_at: dict[int, int] = {}
    while True:
        decided_at[env.current_task()["task_id"]] = env.sim.t
        obs, r, _, trunc, info_new = env.step(1)
        for tid in info_new["credit_ids"]:
            if not trunc:  # tasks credited before the end-of-episode drain
                end = env.sim.log.arrival[tid] + env.sim.log.latency[tid]
                assert end <= env.sim.t + 1e-9
                assert env.sim.t > decided_at[int(tid)]
        if trunc:
            break


def test_episodes_truncate_and_seed_reproducibly():
    env = MECEnv("small", episode_slots=25)
    a = _rollout(env, lambda o, i: 0, 5)
    b = _rollout(env, lambda o, i: 0, 5)
    c = _rollout(env, lambda o, i: 0, 6)
    assert a[2] == b[2] and len(a[0]) == len(b[0])
    assert (a[2], len(a[0])) != (c[2], len(c[0]))
    # every decision is in the first 25 slots; then `deadline` drain slots ran
    assert max(info["slot"] for info, _ in c[0]) <= 24
    assert env.sim.t >= 25 + env.scenario.deadline


def test_local_only_never_drops_on_an_idle_system():
    # small tasks, long deadline: local execution always finishes, latency = size / local rate
    env = MECEnv("small", episode_slots=30, size_min=0.5, size_max=0.5, arrival_prob=0.1, deadline=50)
    steps, credits, ret, last = _rollout(env, lambda o, i: 0, 0)
    lat = -np.array(list(credits.values()))
    assert last["episode_stats"]["drop_rate"] == 0
    assert lat.min() >= 0.5 / env.scenario.local_rate - 1e-9


def test_scaled_observation():
    base = MECEnv("paper-6", episode_slots=10)
    env = ScaleObservation(base)
    obs, _ = env.reset(seed=0)
    raw = observation_from_batch(base.sim.observe())[0]
    np.testing.assert_allclose(obs, raw / feature_scale(base.scenario), rtol=1e-6)
    assert env.observation_space.contains(obs)
    assert obs.max() < 10
    scale = feature_scale(base.scenario)
    lay = base.layout
    np.testing.assert_allclose(scale[lay.incoming], scale[lay.queued])  # what a server computes in a deadline
    assert scale[lay.slot_arrivals] == scale[lay.slot_pending] == pytest.approx(30 * 0.3)  # mean arrivals per slot

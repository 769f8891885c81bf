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
    wrapped = ScaleObservation(MECEnv("small", episode_slots=20))
    obs, _ = wrapped.reset(seed=0)
    assert wrapped.observation_space.contains(obs)


def test_make_with_scenario_and_overrides():
    env = gym.make(ENV_ID, scenario="small", episode_slots=20, arrival_prob=0.5, overrides=["deadline=12"])
    sc = env.unwrapped.scenario
    assert (sc.arrival_prob, sc.deadline, sc.n_servers) == (0.5, 12, 3)
    assert env.action_space.n == 4
    lay = ObsLayout.of(sc)
    assert env.observation_space.shape == (4 + 3 * 3 + 3 * sc.history_len,) == (lay.size,)
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


def test_env_decisions_drive_the_simulator_exactly():
    """Deciding task by task in the env equals a simulator run with the same per-device rule."""
    sc = load_scenario("paper-6")
    env = MECEnv(sc, episode_slots=60)

    def rule(devices: np.ndarray, slots: np.ndarray) -> np.ndarray:
        return (devices + slots) % (sc.n_servers + 1)

    steps, credits, ret, last = _rollout(env, lambda o, i: int(rule(np.array(i["device"]), np.array(i["slot"]))), 11)
    ref = MECSimulator(sc, seed=env.sim_seed)
    for _ in range(60):
        b = ref.observe()
        ref.step(rule(b.device, b.slot))
    n = ref.log.n
    assert len(steps) == n  # one step per arriving task
    assert [s[0]["task_id"] for s in steps] == list(range(n))
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

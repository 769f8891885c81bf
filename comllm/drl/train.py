"""Training of the DRL baselines on ``comllm/MEC-v0``: :func:`train` runs either algorithm.

A run folder holds ``config.json`` (:class:`~comllm.drl.config.CheckpointMeta`),
the last weights (``model.zip`` for DQN, ``model.safetensors`` for D3QN-LSTM),
the weights of the best closed-loop evaluation (``best_model.*``), what a
resume needs (``replay_buffer.pkl`` or ``train_state.pt``), ``episodes.csv``,
``eval.csv`` and a TensorBoard log ``tb/`` (see :mod:`comllm.drl.monitor`).

Resuming restores the weights, optimizer, replay buffer, exploration schedule
and counters of the last checkpoint; the environment starts a new episode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from comllm.drl.config import META_FILE, CheckpointMeta, D3QNConfig, DQNConfig, DRLError, TrainConfig
from comllm.drl.monitor import TrainingMonitor
from comllm.drl.policy import QPolicy
from comllm.envs.mec import MECEnv
from comllm.envs.observation import ObsLayout, ScaleObservation, feature_scale
from comllm.scenario import Scenario, make_scenario


def new_meta(cfg: TrainConfig, command: str = "") -> CheckpointMeta:
    """The metadata of a fresh run of ``cfg``."""
    sc = make_scenario(cfg.scenario)
    cfg = cfg.model_copy(update={"hyper": cfg.hyper_model().model_dump()})  # every value, validated
    lay = ObsLayout.of(sc)
    return CheckpointMeta(
        algo=cfg.algo,
        scenario=sc.model_dump(mode="json"),
        n_servers=sc.n_servers,
        history_len=sc.history_len,
        obs_dim=lay.size,
        feature_scale=feature_scale(sc).tolist(),
        train=cfg,
        command=command,
    )


def train(
    cfg: TrainConfig,
    out: Path,
    resume: bool = False,
    command: str = "",
    console: Console | None = None,
    progress: bool = True,
) -> CheckpointMeta:
    """Train (or, with ``resume``, continue up to ``cfg.steps``) and return the final metadata.

    With ``resume`` the run's saved configuration is used, except ``cfg.steps``.
    """
    torch.set_num_threads(1)
    console = console or Console()
    if resume:
        meta = CheckpointMeta.read(out)
        if meta.algo != cfg.algo:
            raise DRLError(f"'{out}' holds a {meta.algo} run, not {cfg.algo}")
        if make_scenario(meta.scenario) != make_scenario(cfg.scenario):
            trained, asked = meta.scenario.get("name"), cfg.scenario.get("name")
            raise DRLError(f"'{out}' was trained on scenario '{trained}', not '{asked}'")
        meta.train = meta.train.model_copy(update={"steps": cfg.steps})
    else:
        if (out / META_FILE).exists():
            raise DRLError(f"'{out}' already holds a checkpoint: pass --resume to continue it, or choose another --out")
        meta = new_meta(cfg, command)
    if meta.steps_done >= meta.train.steps:
        console.print(f"{out}: already trained for {meta.steps_done} steps (asked {meta.train.steps})")
        return meta
    meta.write(out)
    runner = _train_dqn if meta.algo == "dqn" else _train_d3qn
    runner(meta, out, resume, console, progress)
    return meta


def _monitor(meta: CheckpointMeta, out: Path, sc: Scenario, make_policy, save, console, progress) -> TrainingMonitor:
    return TrainingMonitor(
        out, meta.train, sc, make_policy, save, steps_done=meta.steps_done, wall_s=meta.wall_s,
        episodes=meta.episodes, best_eval_latency=meta.best_eval_latency, best_step=meta.best_step,
        console=console, progress=progress,
    )  # fmt: skip


def _record(meta: CheckpointMeta, mon: TrainingMonitor, kind: str) -> None:
    if kind == "last":
        meta.steps_done, meta.wall_s, meta.episodes = mon.steps_done, round(mon.wall_s, 2), mon.episodes
    meta.best_eval_latency, meta.best_step = mon.best_eval_latency, mon.best_step


def _train_dqn(meta: CheckpointMeta, out: Path, resume: bool, console: Console, progress: bool) -> None:
    from stable_baselines3 import DQN
    from stable_baselines3.common.vec_env import DummyVecEnv

    from comllm.drl import sb3

    cfg = meta.train
    hp: DQNConfig = cfg.hyper_model()  # type: ignore[assignment]
    sc = make_scenario(meta.scenario)
    scale = np.asarray(meta.feature_scale, dtype=np.float32)
    env = DummyVecEnv([lambda: ScaleObservation(MECEnv(sc, episode_slots=cfg.episode_slots), scale)])
    if resume:
        model = DQN.load(str(out / sb3.MODEL_FILE), env=env, device="cpu")
        model.load_replay_buffer(str(out / sb3.REPLAY_FILE))
        model.replay_buffer.ledger.end_episode()
    else:
        model = DQN(
            "MlpPolicy", env, learning_rate=hp.learning_rate, buffer_size=hp.buffer_size,
            learning_starts=hp.learning_starts, batch_size=hp.batch_size, gamma=hp.gamma,
            train_freq=hp.train_freq, gradient_steps=hp.gradient_steps,
            target_update_interval=hp.target_update_interval, exploration_fraction=hp.exploration_fraction,
            exploration_initial_eps=hp.exploration_initial_eps, exploration_final_eps=hp.exploration_final_eps,
            max_grad_norm=hp.max_grad_norm, replay_buffer_class=sb3.CreditReplayBuffer,
            replay_buffer_kwargs={"reward_scale": hp.reward_scale}, policy_kwargs={"net_arch": list(hp.net_arch)},
            seed=cfg.seed, device="cpu", verbose=0,
        )  # fmt: skip

    def save(kind: str) -> None:
        _record(meta, mon, kind)
        if kind == "best":
            model.save(str(out / sb3.BEST_FILE))
        else:
            model.save(str(out / sb3.MODEL_FILE))
            model.save_replay_buffer(str(out / sb3.REPLAY_FILE))
        meta.write(out)

    def make_policy() -> QPolicy:
        return QPolicy(model.q_net, scale, sc.n_servers, sc.history_len, "dqn", sc.name)

    mon = _monitor(meta, out, sc, make_policy, save, console, progress)
    with mon:
        model.learn(
            total_timesteps=cfg.steps - meta.steps_done, callback=sb3.MonitorCallback(mon),
            reset_num_timesteps=not resume, log_interval=None,
        )  # fmt: skip
        save("last")


def _train_d3qn(meta: CheckpointMeta, out: Path, resume: bool, console: Console, progress: bool) -> None:
    from comllm.drl import d3qn

    cfg = meta.train
    hp: D3QNConfig = cfg.hyper_model()  # type: ignore[assignment]
    sc = make_scenario(meta.scenario)
    scale = np.asarray(meta.feature_scale, dtype=np.float32)
    env = MECEnv(sc, episode_slots=cfg.episode_slots)
    agent = d3qn.D3QNAgent(sc.n_servers, sc.history_len, hp, seed=cfg.seed)
    episode = 0
    if resume:
        episode = int(agent.load_state(out / d3qn.STATE_FILE)["episode"])
        agent.replay.ledger.end_episode()

    def save(kind: str) -> None:
        _record(meta, mon, kind)
        if kind == "best":
            agent.save_weights(out / d3qn.BEST_FILE)
        else:
            agent.save_weights(out / d3qn.MODEL_FILE)
            agent.save_state(out / d3qn.STATE_FILE, {"episode": episode})
        meta.write(out)

    def make_policy() -> QPolicy:
        return QPolicy(agent.net, scale, sc.n_servers, sc.history_len, "d3qn-lstm", sc.name)

    def reset() -> np.ndarray:
        obs, _ = env.reset(seed=cfg.seed * 1_000_003 + episode)
        return obs / scale

    n_actions = sc.n_servers + 1
    mon = _monitor(meta, out, sc, make_policy, save, console, progress)
    with mon:
        obs = reset()
        loss: float | None = None
        while mon.steps_done < cfg.steps:
            eps = agent.epsilon(mon.steps_done, cfg.steps)
            action = agent.act(obs, eps, n_actions)
            next_obs, _, terminated, truncated, info = env.step(action)
            next_obs = next_obs / scale
            agent.replay.add(obs, action, next_obs, terminated, info)
            if terminated or truncated:
                agent.replay.ledger.end_episode()
                episode += 1
                obs = reset()
            else:
                obs = next_obs
            n = mon.steps_done + 1
            if n > hp.learning_starts and n % hp.train_freq == 0:
                loss = agent.update()
            mon.on_step(info, eps, loss)
        save("last")

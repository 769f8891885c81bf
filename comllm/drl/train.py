"""Training of the DRL baselines on ``comllm/MEC-v0``: :func:`train` runs either algorithm.

A run folder holds ``config.json`` (:class:`~comllm.drl.config.CheckpointMeta`),
the last weights (``model.safetensors``), the weights of the best closed-loop
evaluation (``best_model.safetensors``), what a resume needs
(``train_state.safetensors``: tensors and JSON, see :mod:`comllm.checkpointing`),
``episodes.csv``, ``eval.csv`` and a TensorBoard log ``tb/`` (see
:mod:`comllm.drl.monitor`). Every file is written atomically, and the run holds
the folder's lock (:mod:`comllm.locking`) while it trains.

A checkpoint is ``train_state.safetensors``; it is written first, then the
weights and ``config.json``, so the state is the truth about how far the run
got. Resuming restores the weights, optimizer, replay buffer, exploration
schedule, random streams and counters of the last checkpoint. D3QN-LSTM
checkpoints are taken at an episode end, so a resumed run continues exactly as
the uninterrupted run would (the same final weights); the SB3 DQN starts a new
episode on resume. A run killed before its first checkpoint restarts from step 0
(with ``--resume`` or without). Folders of older versions (``model.zip`` with
``replay_buffer.pkl``, ``train_state.pt``: pickle) still load as policies
but are not resumed: their resume state is never unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from comllm.checkpointing import CheckpointError, clean_staging, load_state, save_state
from comllm.drl.checkpoint import check_layout
from comllm.drl.config import META_FILE, CheckpointMeta, D3QNConfig, DQNConfig, DRLError, TrainConfig
from comllm.drl.monitor import TrainingMonitor
from comllm.drl.policy import QPolicy
from comllm.envs.mec import MECEnv
from comllm.envs.observation import ObsLayout, ScaleObservation, feature_scale
from comllm.locking import lock_folder
from comllm.scenario import Scenario, make_scenario

STATE_FILE = "train_state.safetensors"
#: what a run leaves that makes its folder worth keeping (a plain rerun refuses such a folder)
_WEIGHTS = ("model.safetensors", "best_model.safetensors", "model.zip", "best_model.zip", STATE_FILE,
            "train_state.pt", "replay_buffer.pkl")  # fmt: skip
_LEGACY = ("replay_buffer.pkl", "train_state.pt", "model.zip")
_PROGRESS = ("steps_done", "wall_s", "episodes", "best_eval_latency", "best_step")


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
        obs_layout=lay.version,
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
    The folder is locked for the whole run: a second run into it stops with a
    :class:`~comllm.locking.LockError` naming this one's pid.
    """
    torch.set_num_threads(1)
    console = console or Console()
    out = Path(out)
    if resume and not (out / META_FILE).is_file() and not _only_traces(out):
        CheckpointMeta.read(out)  # raises: "not a DRL checkpoint"
    with lock_folder(out, "dqn train", log=console.print):
        clean_staging(out)
        if resume and not (out / META_FILE).is_file():  # killed before it wrote anything
            console.print(f"[yellow]warning:[/] '{out}' has no checkpoint yet: training starts from step 0")
            resume = False
        return _train_locked(cfg, out, resume, command, console, progress)


def _only_traces(out: Path) -> bool:
    """``out`` exists and holds nothing but a lock and temporary files (a run killed as it started)."""
    from comllm.checkpointing import is_temporary
    from comllm.locking import LOCK_FILE

    return out.is_dir() and all(p.name == LOCK_FILE or is_temporary(p) for p in out.iterdir())


def read_train_state(out: Path) -> dict[str, Any] | None:
    """The resume state of ``out``, or None if the run never reached a checkpoint.

    A state file that exists but is not readable raises :class:`DRLError`
    (it was not cut by an interruption: those never leave a partial file).
    """
    path = out / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = load_state(path)
    except CheckpointError as err:
        raise DRLError(f"{err}; delete it to train from step 0, or choose another --out") from None
    if not isinstance(state.get("progress"), dict) or "steps_done" not in state["progress"]:
        raise DRLError(f"state file '{path}' has no progress counters; delete it to train from step 0")
    return state


def _train_locked(
    cfg: TrainConfig, out: Path, resume: bool, command: str, console: Console, progress: bool
) -> CheckpointMeta:
    has_meta = (out / META_FILE).is_file()
    kept = [name for name in _WEIGHTS if (out / name).is_file()]
    state: dict[str, Any] | None = None
    if resume:
        meta = CheckpointMeta.read(out)
        check_layout(out, meta)
        if meta.algo != cfg.algo:
            raise DRLError(f"'{out}' holds a {meta.algo} run, not {cfg.algo}")
        if make_scenario(meta.scenario) != make_scenario(cfg.scenario):
            trained, asked = meta.scenario.get("name"), cfg.scenario.get("name")
            raise DRLError(f"'{out}' was trained on scenario '{trained}', not '{asked}'")
        state = read_train_state(out)
        if state is None:
            legacy = [name for name in _LEGACY if (out / name).is_file()]
            if legacy:
                raise DRLError(
                    f"'{out}' was written by an older comllm: its resume state ({', '.join(legacy)}) is pickle, which "
                    f"is never loaded (it could run code); it still loads as a policy: train a new run with another --out"
                )
            console.print(f"[yellow]warning:[/] '{out}' has no checkpoint yet (interrupted before the first one): "
                          "training starts from step 0")  # fmt: skip
            meta = new_meta(meta.train, meta.command or command)
        else:
            meta = meta.model_copy(update={k: state["progress"][k] for k in _PROGRESS if k in state["progress"]})
        meta.train = meta.train.model_copy(update={"steps": cfg.steps})
    else:
        if has_meta and kept:
            raise DRLError(f"'{out}' already holds a checkpoint: pass --resume to continue it, or choose another --out")
        if has_meta:
            console.print(f"[yellow]warning:[/] '{out}' holds a run interrupted before its first checkpoint: "
                          "it is started again")  # fmt: skip
        meta = new_meta(cfg, command)
    if meta.steps_done >= meta.train.steps:
        console.print(f"{out}: already trained for {meta.steps_done} steps (asked {meta.train.steps})")
        return meta
    meta.write(out)
    runner = _train_dqn if meta.algo == "dqn" else _train_d3qn
    runner(meta, out, state, console, progress)
    return meta


def _monitor(
    meta: CheckpointMeta, out: Path, sc: Scenario, make_policy, save, console, progress, at_episode_end: bool = False
) -> TrainingMonitor:
    return TrainingMonitor(
        out, meta.train, sc, make_policy, save, steps_done=meta.steps_done, wall_s=meta.wall_s,
        episodes=meta.episodes, best_eval_latency=meta.best_eval_latency, best_step=meta.best_step,
        console=console, progress=progress, checkpoint_at_episode_end=at_episode_end,
    )  # fmt: skip


def _record(meta: CheckpointMeta, mon: TrainingMonitor, kind: str) -> None:
    if kind == "last":
        meta.steps_done, meta.wall_s, meta.episodes = mon.steps_done, round(mon.wall_s, 2), mon.episodes
    meta.best_eval_latency, meta.best_step = mon.best_eval_latency, mon.best_step


def _progress(meta: CheckpointMeta) -> dict[str, Any]:
    return {k: getattr(meta, k) for k in _PROGRESS}


def _fresh_logs(out: Path, state: dict[str, Any] | None) -> None:
    """A run that starts from step 0 in a used folder drops the TensorBoard events of the interrupted one."""
    import shutil

    if state is None and (out / "tb").is_dir():
        shutil.rmtree(out / "tb", ignore_errors=True)


def _train_dqn(meta: CheckpointMeta, out: Path, state: dict[str, Any] | None, console: Console, progress: bool) -> None:
    from stable_baselines3 import DQN
    from stable_baselines3.common.vec_env import DummyVecEnv

    from comllm.drl import sb3

    cfg = meta.train
    hp: DQNConfig = cfg.hyper_model()  # type: ignore[assignment]
    sc = make_scenario(meta.scenario)
    scale = np.asarray(meta.feature_scale, dtype=np.float32)
    env = DummyVecEnv([lambda: ScaleObservation(MECEnv(sc, episode_slots=cfg.episode_slots), scale)])
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
    _fresh_logs(out, state)
    if state is not None:
        try:
            sb3.restore_train_state(model, state["model"], out / STATE_FILE)
        except (CheckpointError, KeyError) as err:
            raise DRLError(f"{err}; delete it to train from step 0, or choose another --out") from None
        model.replay_buffer.ledger.end_episode()
        env.seed(cfg.seed * 1_000_003 + meta.episodes)  # the new episode differs from the run's first one

    def save(kind: str) -> None:
        _record(meta, mon, kind)
        if kind == "best":
            sb3.save_weights(model, out / sb3.BEST_FILE)
        else:
            save_state(out / STATE_FILE, {"progress": _progress(meta), "model": sb3.train_state(model)})
            sb3.save_weights(model, out / sb3.MODEL_FILE)
        meta.write(out)

    def make_policy() -> QPolicy:
        return QPolicy(model.q_net, scale, sc.n_servers, sc.history_len, "dqn", sc.name)

    mon = _monitor(meta, out, sc, make_policy, save, console, progress)
    with mon:
        model.learn(
            total_timesteps=cfg.steps - meta.steps_done, callback=sb3.MonitorCallback(mon),
            reset_num_timesteps=state is None, log_interval=None,
        )  # fmt: skip
        save("last")


def _train_d3qn(meta: CheckpointMeta, out: Path, state: dict[str, Any] | None, console: Console, progress: bool) -> None:
    from comllm.drl import d3qn

    cfg = meta.train
    hp: D3QNConfig = cfg.hyper_model()  # type: ignore[assignment]
    sc = make_scenario(meta.scenario)
    scale = np.asarray(meta.feature_scale, dtype=np.float32)
    env = MECEnv(sc, episode_slots=cfg.episode_slots)
    agent = d3qn.D3QNAgent(sc.n_servers, sc.history_len, hp, seed=cfg.seed)
    episode = 0
    loss: float | None = None
    _fresh_logs(out, state)
    if state is not None:
        try:
            saved = agent.load_state(out / STATE_FILE)
            episode, loss = int(saved["episode"]), saved.get("loss")
        except (CheckpointError, KeyError) as err:
            raise DRLError(f"{err}; delete it to train from step 0, or choose another --out") from None
        agent.replay.ledger.end_episode()

    def save(kind: str) -> None:
        _record(meta, mon, kind)
        if kind == "best":
            agent.save_weights(out / d3qn.BEST_FILE)
        else:
            agent.save_state(out / STATE_FILE, {"progress": _progress(meta), "episode": episode, "loss": loss})
            agent.save_weights(out / d3qn.MODEL_FILE)
        meta.write(out)

    def make_policy() -> QPolicy:
        return QPolicy(agent.net, scale, sc.n_servers, sc.history_len, "d3qn-lstm", sc.name)

    def reset() -> np.ndarray:
        obs, _ = env.reset(seed=cfg.seed * 1_000_003 + episode)
        return obs / scale

    n_actions = sc.n_servers + 1
    # checkpoints at episode ends: a resumed run then starts the very episode the uninterrupted one would
    mon = _monitor(meta, out, sc, make_policy, save, console, progress, at_episode_end=True)
    with mon:
        obs = reset()
        while mon.steps_done < cfg.steps:
            eps = agent.epsilon(mon.steps_done, cfg.steps)
            action = agent.act(obs, eps, n_actions)
            next_obs, _, terminated, truncated, info = env.step(action)
            next_obs = next_obs / scale
            agent.replay.add(obs, action, next_obs, terminated, info)
            ended = bool(terminated or truncated)
            if ended:
                agent.replay.ledger.end_episode()
                episode += 1
                obs = reset()
            else:
                obs = next_obs
            n = mon.steps_done + 1
            if n > hp.learning_starts and n % hp.train_freq == 0:
                loss = agent.update()
            mon.on_step(info, eps, loss, episode_end=ended)
        save("last")

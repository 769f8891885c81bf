"""Stable-Baselines3 glue: DQN on ``comllm/MEC-v0`` with per-transition delayed credit.

SB3 stores the reward returned by ``step`` with each transition; ours arrives
when the task ends, so :class:`CreditReplayBuffer` stores the transition with
its reward unknown, fills it in from the environment's ``info`` when the task
ends and samples only transitions whose reward is known.

Checkpoints are data, not SB3 zips (whose ``data`` entry holds cloudpickled
objects that ``DQN.load`` would run): the policy's weights (online and target
Q-networks) are a safetensors file, and what a resume needs (optimizer, replay
buffer, counters, random streams) is a :func:`comllm.checkpointing.save_state`
file. The model is always rebuilt from the hyper-parameters recorded in the
run's ``config.json``. A ``model.zip`` / ``best_model.zip`` of an older comllm
still loads as a policy: only its ``policy.pth`` member is read, as tensors
(``torch.load(weights_only=True)``); its ``data`` member is never read.
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

from comllm.checkpointing import CheckpointError, atomic_write_bytes, require
from comllm.drl.config import DQNConfig, DRLError
from comllm.drl.credit import CreditLedger

MODEL_FILE = "model.safetensors"
BEST_FILE = "best_model.safetensors"
#: SB3 zips written by older comllm versions (loaded as policies, never as SB3 objects)
LEGACY_FILES = ("best_model.zip", "model.zip")
#: the pickled replay buffer of older versions: never loaded
LEGACY_REPLAY_FILE = "replay_buffer.pkl"


class CreditReplayBuffer(ReplayBuffer):
    """An SB3 replay buffer whose rewards are credited when each task ends (one env only)."""

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        reward_scale: float = 1.0,
    ) -> None:
        if n_envs != 1:
            raise ValueError(f"CreditReplayBuffer supports one environment, got n_envs={n_envs}")
        super().__init__(
            buffer_size, observation_space, action_space, device, n_envs, optimize_memory_usage,
            handle_timeout_termination,
        )  # fmt: skip
        self.ledger = CreditLedger(self.buffer_size, reward_scale)

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        pos = self.pos
        super().add(obs, next_obs, action, np.zeros_like(reward), done, infos)
        info = infos[0]
        self.ledger.register(pos, int(info["task_id"]))
        self.ledger.credit_info(info, self.rewards[:, 0])
        if bool(np.asarray(done).reshape(-1)[0]):
            self.ledger.end_episode()

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        upper = self.buffer_size if self.full else self.pos
        return self._get_samples(self.ledger.sample(batch_size, upper), env=env)


class MonitorCallback(BaseCallback):
    """Feeds every SB3 step to a :class:`~comllm.drl.monitor.TrainingMonitor`; stops the run at ``cfg.steps``."""

    def __init__(self, monitor) -> None:
        super().__init__()
        self.monitor = monitor

    def _on_step(self) -> bool:
        loss = self.model.logger.name_to_value.get("train/loss")
        self.monitor.on_step(self.locals["infos"][0], float(self.model.exploration_rate), loss)
        return self.monitor.steps_done < self.monitor.cfg.steps  # SB3 collects train_freq steps at a time: stop exactly


class QNetwork(nn.Module):
    """SB3's DQN Q-network (an MLP with ReLU), ``(B, obs_dim)`` scaled observations -> ``(B, n_actions)``.

    Parameter names are those of SB3's ``QNetwork`` (``q_net.0.weight``, ...),
    so the ``q_net.*`` part of an SB3 policy's state dict loads into it.
    """

    def __init__(self, obs_dim: int, n_actions: int, net_arch: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = obs_dim
        for width in net_arch:
            layers += [nn.Linear(last, width), nn.ReLU()]
            last = width
        layers.append(nn.Linear(last, n_actions))
        self.q_net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q_net(x.float())


def save_weights(model: Any, path: Path) -> None:
    """The SB3 policy's state dict (online and target Q-networks) as safetensors, atomically."""
    from safetensors.torch import save

    sd = {k: v.detach().cpu().contiguous() for k, v in model.policy.state_dict().items()}
    atomic_write_bytes(path, save(sd, metadata={"format": "comllm-dqn-policy/1"}))


def read_policy_weights(path: Path) -> dict[str, torch.Tensor]:
    """The SB3 policy state dict in ``path``: a safetensors file, or the ``policy.pth`` of an SB3 zip read as tensors."""
    path = Path(path)
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                if "policy.pth" not in archive.namelist():
                    raise DRLError(f"'{path}' has no policy.pth: not a DQN checkpoint")
                blob = archive.read("policy.pth")  # the 'data' member (cloudpickle) is never read
            sd = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        else:
            from safetensors.torch import load_file

            sd = load_file(str(path))
    except DRLError:
        raise
    except Exception as err:  # bad zip, a pickle that is not plain tensors, a damaged safetensors file
        msg = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise DRLError(f"'{path}' is not plain tensor data and is not loaded ({type(err).__name__}: {msg})") from None
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise DRLError(f"'{path}' does not hold a state dict of tensors")
    return sd


def load_q_function(path: Path, obs_dim: int, n_actions: int, hyper: dict[str, Any]) -> QNetwork:
    """The online Q-network of a DQN checkpoint, rebuilt from the recorded hyper-parameters, in eval mode."""
    hp = DQNConfig.model_validate(hyper)
    net = QNetwork(obs_dim, n_actions, list(hp.net_arch))
    sd = read_policy_weights(path)
    q = {k[len("q_net.") :]: v for k, v in sd.items() if k.startswith("q_net.q_net.")}
    try:
        net.load_state_dict(q)
    except RuntimeError as err:
        first = str(err).splitlines()[0][:200]
        raise DRLError(f"'{path}' does not match net_arch {list(hp.net_arch)} and obs_dim {obs_dim}: {first}") from None
    return net.eval()


# ------------------------------------------------------------------ resume state
def _buffer_state(buf: CreditReplayBuffer) -> dict[str, Any]:
    n = buf.buffer_size if buf.full else buf.pos
    state: dict[str, Any] = {"pos": int(buf.pos), "full": bool(buf.full), "ledger": buf.ledger.state_dict()}
    names = ["observations", "actions", "rewards", "dones", "timeouts"]
    if not buf.optimize_memory_usage:
        names.append("next_observations")
    for name in names:
        state[name] = getattr(buf, name)[:n]
    return state


def _load_buffer(buf: CreditReplayBuffer, state: dict[str, Any], path: Path) -> None:
    require(state, path, "pos", "full", "ledger", "observations")
    for name in ("observations", "actions", "rewards", "dones", "timeouts", "next_observations"):
        if name not in state:
            continue
        arr, dest = np.asarray(state[name]), getattr(buf, name)
        if arr.ndim != dest.ndim or arr.shape[1:] != dest.shape[1:] or len(arr) > len(dest):
            raise CheckpointError(f"state file '{path}': replay '{name}' has shape {arr.shape}, the buffer {dest.shape}")
        dest[: len(arr)] = arr
    buf.pos, buf.full = int(state["pos"]), bool(state["full"])
    buf.ledger.load_state_dict(state["ledger"])


def train_state(model: Any) -> dict[str, Any]:
    """What resuming a DQN needs: target and online networks, optimizer, replay, counters, random streams."""
    return {
        "policy": model.policy.state_dict(),
        "optimizer": model.policy.optimizer.state_dict(),
        "replay": _buffer_state(model.replay_buffer),
        "num_timesteps": int(model.num_timesteps),
        "n_calls": int(model._n_calls),
        "n_updates": int(model._n_updates),
        "episode_num": int(model._episode_num),
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                "action_space": model.action_space.np_random.bit_generator.state},  # fmt: skip
    }


def restore_train_state(model: Any, state: dict[str, Any], path: Path) -> None:
    """Load :func:`train_state` into a DQN built from the same configuration."""
    require(state, path, "policy", "optimizer", "replay", "num_timesteps", "n_calls", "n_updates", "episode_num", "rng")
    try:
        model.policy.load_state_dict(state["policy"])
        model.policy.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(f"state file '{path}' does not fit this model: {str(err).splitlines()[0][:200]}") from None
    _load_buffer(model.replay_buffer, state["replay"], path)
    model.num_timesteps = int(state["num_timesteps"])
    model._n_calls = int(state["n_calls"])
    model._n_updates = int(state["n_updates"])
    model._episode_num = int(state["episode_num"])
    rng = state["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    model.action_space.np_random.bit_generator.state = rng["action_space"]

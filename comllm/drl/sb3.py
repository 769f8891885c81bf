"""Stable-Baselines3 glue: DQN on ``comllm/MEC-v0`` with per-transition delayed credit.

SB3 stores the reward returned by ``step`` with each transition; ours arrives
when the task ends, so :class:`CreditReplayBuffer` stores the transition with
its reward unknown, fills it in from the environment's ``info`` when the task
ends and samples only transitions whose reward is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from comllm.drl.credit import CreditLedger

MODEL_FILE = "model.zip"
BEST_FILE = "best_model.zip"
REPLAY_FILE = "replay_buffer.pkl"


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
    """Feeds every SB3 step to a :class:`~comllm.drl.monitor.TrainingMonitor`."""

    def __init__(self, monitor) -> None:
        super().__init__()
        self.monitor = monitor

    def _on_step(self) -> bool:
        loss = self.model.logger.name_to_value.get("train/loss")
        self.monitor.on_step(self.locals["infos"][0], float(self.model.exploration_rate), loss)
        return True


def load_q_function(path: Path):
    """The Q-network of a saved SB3 DQN, as ``scaled obs -> Q-values``."""
    model = DQN.load(str(path), device="cpu")
    q_net = model.q_net
    q_net.eval()
    return q_net

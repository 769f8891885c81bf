"""Tang & Wong's agent: a dueling double DQN with an LSTM over the servers' load history.

Network (after :func:`~comllm.envs.observation.feature_scale`): an LSTM reads the
``H``-slot history of the ``N`` servers' active counts (one ``N``-vector per slot,
oldest first); its last output joins the task/device/server features; two
ReLU layers; a dueling head ``Q = V + A - mean(A)``. Learning is double DQN
(the online network picks the next action, the target network values it) with
an MSE loss, as in the authors' code, with gradient-norm clipping added.

Tang & Wong train one network per device; here one network serves all devices
(each decision sees the deciding device's own observation), see
:class:`comllm.envs.MECEnv`. Rewards are credited per transition when the task
ends (:mod:`comllm.drl.credit`).

Files: the online network's weights are safetensors; the resume state
(networks, optimizer, replay, random streams, counters) is one
:func:`comllm.checkpointing.save_state` file, ``train_state.safetensors``:
tensors and JSON, nothing that runs code when read.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import nn

from comllm.checkpointing import CheckpointError, atomic_write_bytes, load_state, require, save_state
from comllm.drl.config import CheckpointMeta, D3QNConfig, DRLError
from comllm.drl.credit import CreditLedger
from comllm.envs.observation import ObsLayout

MODEL_FILE = "model.safetensors"
BEST_FILE = "best_model.safetensors"
STATE_FILE = "train_state.safetensors"
#: the pickled resume state of older versions: never loaded
LEGACY_STATE_FILE = "train_state.pt"


class D3QNLSTM(nn.Module):
    """Q-network ``(B, 6 + 5N + N·H)`` scaled observations -> ``(B, N + 1)`` Q-values."""

    def __init__(self, n_servers: int, history_len: int, hidden: int = 20, lstm_hidden: int = 20) -> None:
        super().__init__()
        self.layout = ObsLayout(n_servers, history_len)
        self.lstm = nn.LSTM(n_servers, lstm_hidden, batch_first=True)
        self.l1 = nn.Linear(self.layout.n_static + lstm_hidden, hidden)
        self.l2 = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, 1)
        self.advantage = nn.Linear(hidden, n_servers + 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer, ``(B, hidden)``."""
        lay = self.layout
        static = x[:, : lay.n_static]
        hist = x[:, lay.n_static :].reshape(-1, lay.n_servers, lay.history_len).transpose(1, 2)
        seq, _ = self.lstm(hist)
        z = torch.relu(self.l1(torch.cat([seq[:, -1], static], dim=1)))
        return torch.relu(self.l2(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)
        adv = self.advantage(z)
        return self.value(z) + adv - adv.mean(dim=1, keepdim=True)


class CreditReplay:
    """A ring of transitions whose rewards arrive when their tasks end."""

    def __init__(self, capacity: int, obs_dim: int, reward_scale: float) -> None:
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.ledger = CreditLedger(capacity, reward_scale)
        self.capacity = capacity
        self.pos = 0
        self.full = False

    def add(self, obs: np.ndarray, action: int, next_obs: np.ndarray, terminated: bool, info: dict[str, Any]) -> None:
        p = self.pos
        self.obs[p] = obs
        self.next_obs[p] = next_obs
        self.action[p] = action
        self.terminated[p] = float(terminated)
        self.ledger.register(p, int(info["task_id"]))
        self.pos = (p + 1) % self.capacity
        self.full = self.full or self.pos == 0
        self.ledger.credit_info(info, self.reward)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        upper = self.capacity if self.full else self.pos
        i = self.ledger.sample(batch_size, upper, rng)
        return (
            torch.from_numpy(self.obs[i]),
            torch.from_numpy(self.action[i]),
            torch.from_numpy(self.reward[i]),
            torch.from_numpy(self.next_obs[i]),
            torch.from_numpy(self.terminated[i]),
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "obs": self.obs, "next_obs": self.next_obs, "action": self.action, "reward": self.reward,
            "terminated": self.terminated, "pos": self.pos, "full": self.full, "ledger": self.ledger.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("obs", "next_obs", "action", "reward", "terminated"):
            arr = np.asarray(state[key])
            if arr.shape != getattr(self, key).shape:
                raise ValueError(f"replay '{key}' has shape {arr.shape}, the buffer {getattr(self, key).shape}")
            getattr(self, key)[:] = arr
        self.pos, self.full = int(state["pos"]), bool(state["full"])
        self.ledger.load_state_dict(state["ledger"])


class D3QNAgent:
    """Online and target networks, optimizer and replay of one D3QN-LSTM training."""

    def __init__(self, n_servers: int, history_len: int, hp: D3QNConfig, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.hp = hp
        self.net = D3QNLSTM(n_servers, history_len, hp.hidden, hp.lstm_hidden)
        self.target = copy.deepcopy(self.net)
        self.target.requires_grad_(False)
        opt = torch.optim.RMSprop if hp.optimizer == "rmsprop" else torch.optim.Adam
        self.opt = opt(self.net.parameters(), lr=hp.learning_rate)
        self.replay = CreditReplay(hp.buffer_size, self.net.layout.size, hp.reward_scale)
        self.rng = np.random.default_rng(seed)
        self.updates = 0

    def epsilon(self, step: int, total: int) -> float:
        """Linear decay from ``eps_start`` to ``eps_end`` over ``exploration_fraction`` of ``total``."""
        frac = min(1.0, step / max(1.0, self.hp.exploration_fraction * total))
        return self.hp.eps_start + frac * (self.hp.eps_end - self.hp.eps_start)

    def act(self, obs: np.ndarray, epsilon: float, n_actions: int) -> int:
        if self.rng.random() < epsilon:
            return int(self.rng.integers(n_actions))
        with torch.no_grad():
            return int(self.net(torch.from_numpy(obs[None])).argmax(1).item())

    def update(self) -> float:
        """One double-DQN gradient step on a batch of credited transitions; returns the loss."""
        hp = self.hp
        obs, action, reward, next_obs, term = self.replay.sample(hp.batch_size, self.rng)
        with torch.no_grad():
            best = self.net(next_obs).argmax(1, keepdim=True)
            target = reward + hp.gamma * (1.0 - term) * self.target(next_obs).gather(1, best).squeeze(1)
        q = self.net(obs).gather(1, action[:, None]).squeeze(1)
        loss = nn.functional.mse_loss(q, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), hp.max_grad_norm)
        self.opt.step()
        self.updates += 1
        if self.updates % hp.target_update == 0:
            self.target.load_state_dict(self.net.state_dict())
        return float(loss.item())

    # ---------------------------------------------------------- persistence
    def save_weights(self, path: Path) -> None:
        """The online network's weights as safetensors, atomically."""
        sd = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        atomic_write_bytes(path, save(sd, metadata={"format": "comllm-d3qn-lstm/1"}))

    def save_state(self, path: Path, extra: dict[str, Any]) -> None:
        """Everything needed to resume: networks, optimizer, replay, random streams, counters (atomically)."""
        save_state(
            path,
            {
                "net": self.net.state_dict(),
                "target": self.target.state_dict(),
                "opt": self.opt.state_dict(),
                "replay": self.replay.state_dict(),
                "rng": self.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "updates": self.updates,
                **extra,
            },
        )

    def load_state(self, path: Path) -> dict[str, Any]:
        """Restore :meth:`save_state`; returns the whole state (with its ``extra`` fields)."""
        state = load_state(path)
        require(state, path, "net", "target", "opt", "replay", "rng", "torch_rng", "updates")
        try:
            self.net.load_state_dict(state["net"])
            self.target.load_state_dict(state["target"])
            self.opt.load_state_dict(state["opt"])
            self.replay.load_state_dict(state["replay"])
            self.rng.bit_generator.state = state["rng"]
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"state file '{path}' does not fit this agent: {str(err).splitlines()[0][:200]}") from None
        torch.set_rng_state(state["torch_rng"])
        self.updates = int(state["updates"])
        return state


def load_d3qn(folder: Path, meta: CheckpointMeta, file: str) -> D3QNLSTM:
    """The online network of a D3QN-LSTM checkpoint, in eval mode."""
    hp = D3QNConfig.model_validate(meta.train.hyper)
    net = D3QNLSTM(meta.n_servers, meta.history_len, hp.hidden, hp.lstm_hidden)
    path = folder / file
    try:
        net.load_state_dict(load_file(str(path)))
    except Exception as err:  # a damaged file or weights of another shape
        msg = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise DRLError(f"'{path}' does not hold this D3QN-LSTM's weights ({type(err).__name__}: {msg})") from None
    return net.eval()

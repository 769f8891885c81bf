"""Delayed credit: a transition's reward is filled in when its task ends.

The environment (:class:`comllm.envs.MECEnv`) reports, with every step, the id
of the task just decided (``info["task_id"]``) and the tasks that ended during
the step with their rewards (``info["credit_ids"]``, ``info["credit_rewards"]``).
A replay buffer stores each transition at once, registers its position here,
and only samples positions whose reward is known. Both agents use it: the
Stable-Baselines3 DQN through :class:`comllm.drl.sb3.CreditReplayBuffer`, the
D3QN-LSTM through its own buffer.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class CreditLedger:
    """Which replay positions wait for their task's reward, and which are known.

    ``capacity`` is the replay buffer's size; rewards are multiplied by
    ``reward_scale`` when written.
    """

    def __init__(self, capacity: int, reward_scale: float = 1.0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.reward_scale = float(reward_scale)
        self.resolved = np.zeros(capacity, dtype=bool)
        self.task_at = np.full(capacity, -1, dtype=np.int64)
        self.pending: dict[int, int] = {}  # task id -> position
        self.n_lost = 0  # transitions overwritten before their task ended

    def register(self, pos: int, task_id: int) -> None:
        """A new transition for ``task_id`` was written at ``pos`` (its reward unknown yet)."""
        old = int(self.task_at[pos])
        if old >= 0 and self.pending.get(old) == pos:
            del self.pending[old]
            self.n_lost += 1
        self.resolved[pos] = False
        self.task_at[pos] = task_id
        self.pending[int(task_id)] = pos

    def credit(self, task_ids: np.ndarray, rewards: np.ndarray, out: np.ndarray) -> int:
        """Write the rewards of the tasks that ended into ``out[pos]``; returns how many matched."""
        n = 0
        for tid, r in zip(np.asarray(task_ids).tolist(), np.asarray(rewards).tolist()):
            pos = self.pending.pop(int(tid), None)
            if pos is None:
                continue
            out[pos] = r * self.reward_scale
            self.resolved[pos] = True
            n += 1
        return n

    def credit_info(self, info: dict[str, Any], out: np.ndarray) -> int:
        """:meth:`credit` from an environment ``info`` dict."""
        return self.credit(info.get("credit_ids", ()), info.get("credit_rewards", ()), out)

    def end_episode(self) -> None:
        """Task ids restart with each episode: forget the ones never credited."""
        self.n_lost += len(self.pending)
        self.pending.clear()

    def n_resolved(self, upper: int) -> int:
        return int(self.resolved[:upper].sum())

    def sample(self, batch_size: int, upper: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``batch_size`` positions below ``upper`` whose reward is known (with replacement)."""
        known = np.flatnonzero(self.resolved[:upper])
        if len(known) == 0:
            raise RuntimeError("no transition has its reward yet: raise learning_starts")
        if rng is None:
            return known[np.random.randint(0, len(known), size=batch_size)]
        return known[rng.integers(0, len(known), size=batch_size)]

    def state_dict(self) -> dict[str, Any]:
        return {
            "resolved": self.resolved.copy(),
            "task_at": self.task_at.copy(),
            "pending": dict(self.pending),
            "n_lost": self.n_lost,
            "reward_scale": self.reward_scale,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.resolved = np.asarray(state["resolved"], dtype=bool).copy()
        self.task_at = np.asarray(state["task_at"], dtype=np.int64).copy()
        self.pending = {int(k): int(v) for k, v in state["pending"].items()}
        self.n_lost = int(state["n_lost"])
        self.reward_scale = float(state["reward_scale"])
        self.capacity = len(self.resolved)

"""A trained Q-network as a :class:`~comllm.policies.Policy` (argmax of the Q-values)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from comllm.envs.observation import observation_from_batch
from comllm.policies.base import Policy, PolicyError
from comllm.scenario import Scenario
from comllm.state import StateBatch

QFunction = Callable[[torch.Tensor], torch.Tensor]


class QPolicy(Policy):
    """Greedy policy of a Q-network over the observation of :mod:`comllm.envs.observation`.

    ``q_fn`` maps scaled observations ``(B, obs_dim)`` to Q-values ``(B, N + 1)``;
    ``scale`` is the feature scale the network was trained with. The input has a
    fixed size, so the policy serves only scenarios with ``n_servers`` servers
    and a history of ``history_len`` slots.
    """

    def __init__(
        self,
        q_fn: QFunction,
        scale: np.ndarray,
        n_servers: int,
        history_len: int,
        name: str = "dqn",
        trained_on: str = "?",
    ) -> None:
        self.q_fn = q_fn
        self.scale = np.asarray(scale, dtype=np.float32)
        self.n_servers = n_servers
        self.history_len = history_len
        self.name = name
        self.trained_on = trained_on

    def _refuse(self, what: str) -> PolicyError:
        return PolicyError(
            f"{self.name}: the network was trained for {self.n_servers} servers and a "
            f"{self.history_len}-slot history (scenario '{self.trained_on}'); {what}: "
            f"a fixed-size DRL network must be retrained (comllm dqn train --scenario ...)"
        )

    def check_scenario(self, scenario: Scenario) -> None:
        if scenario.n_servers != self.n_servers or scenario.history_len != self.history_len:
            raise self._refuse(
                f"scenario '{scenario.name}' has {scenario.n_servers} servers and a {scenario.history_len}-slot history"
            )

    def q_values(self, batch: StateBatch) -> np.ndarray:
        """Q-values of every action for every task, shape ``(B, N + 1)`` (in scaled reward units)."""
        if batch.n_servers != self.n_servers or batch.history.shape[2] != self.history_len:
            raise self._refuse(f"this state has {batch.n_servers} servers")
        obs = observation_from_batch(batch) / self.scale
        with torch.no_grad():
            return self.q_fn(torch.from_numpy(obs)).numpy()

    def act(self, batch: StateBatch) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros(0, dtype=np.int64)
        return self.q_values(batch).argmax(axis=1).astype(np.int64)

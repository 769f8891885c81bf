"""The reference's cheap look-ahead estimator (docs/model.md §7), for the ablation ``--lacs reference``.

For each action ``a`` of a task: apply ``a`` to a copy of the state (local: the local
wait grows to the task's local finish time, i.e. its one-step cost; server ``j``:
``Q_j += S`` and ``a_j += 1``), draw ``n_future`` future tasks of size ``U(0.5 S,
1.5 S)`` seen by the same device, and average the least one-step cost each would get:

    future(a) = mean_f min_b cost(state after a, task f, action b)
    score(a)  = cost(a) + lam * future(a)        (slots; lower is better)

It ignores time passing, queue drain, other devices' arrivals and the channel; that
is what :mod:`comllm.lacs.lookahead` adds. Costs come from :func:`comllm.cost.action_costs`.
The future sizes of a state are the same for all its actions (common random numbers)
and depend only on ``(seed, slot, device)`` of the state, not on the batch it is in.
"""

from __future__ import annotations

import numpy as np

from comllm.cost import action_costs
from comllm.lacs.lookahead import LACS_DEFAULTS
from comllm.state import StateBatch, TaskState


def _uniforms(seed: int, slot: np.ndarray, device: np.ndarray, n: int) -> np.ndarray:
    """``(B, n)`` uniforms in [0, 1) hashed from ``(seed, slot, device, i)`` (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        x = (
            np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
            + slot.astype(np.uint64)[:, None] * np.uint64(0xBF58476D1CE4E5B9)
            + device.astype(np.uint64)[:, None] * np.uint64(0x94D049BB133111EB)
            + np.arange(1, n + 1, dtype=np.uint64)[None, :] * np.uint64(0xD6E8FEB86659FD93)
        )
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def future_sizes(batch: StateBatch, n_future: int = 3, seed: int = 0) -> np.ndarray:
    """The ``n_future`` future task sizes of each state, ``U(0.5 S, 1.5 S)`` Mbit, shape ``(B, n_future)``."""
    return batch.task_size[:, None] * (0.5 + _uniforms(seed, batch.slot, batch.device, n_future))


def reference_terms(batch: StateBatch, n_future: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One-step ``cost`` and reference ``future`` term of every action, each ``(B, N + 1)``, slots."""
    if n_future < 1:
        raise ValueError(f"n_future={n_future} must be >= 1")
    cost = action_costs(batch)
    B, A = cost.shape
    F = n_future
    # the copies: row (b, a, f) is state b after action a, seen by future task f
    idx = np.repeat(np.arange(B), A * F)
    after = batch.subset(idx)
    act = np.tile(np.repeat(np.arange(A), F), B)
    local = act == 0
    after.local_wait = np.where(local, cost[idx, 0], after.local_wait)
    srv = np.flatnonzero(~local)
    j = act[srv] - 1
    after.queued[srv, j] += after.task_size[srv]
    after.active[srv, j] += 1
    after.task_size = np.repeat(future_sizes(batch, F, seed)[:, None, :], A, axis=1).reshape(-1)
    future = action_costs(after).min(axis=1).reshape(B, A, F).mean(axis=2)
    return cost, future


def reference_scores_batch(batch: StateBatch, lam: float = LACS_DEFAULTS.lam, n_future: int = 3, seed: int = 0) -> np.ndarray:
    """Reference LACS score ``cost + lam * future`` of every action, ``(B, N + 1)``, slots."""
    cost, future = reference_terms(batch, n_future, seed)
    return cost + lam * future


def reference_scores(state: TaskState | StateBatch, lam: float = LACS_DEFAULTS.lam, n_future: int = 3, seed: int = 0) -> np.ndarray:
    """Reference LACS score of every action of one task, ``(N + 1,)``, slots."""
    batch = state if isinstance(state, StateBatch) else StateBatch.from_states([state])
    if len(batch) != 1:
        raise ValueError(f"reference_scores takes one state, got a batch of {len(batch)}")
    return reference_scores_batch(batch, lam, n_future, seed)[0]

"""The one-step cost model (DESIGN §3): the reference semantics of a decision.

All costs are estimated latencies in slots. With ``d`` in Gcycles/Mbit, ``f`` in
GHz, ``Δ`` in s, ``S`` the task size (Mbit) and ``R`` the upload rate (Mbit/slot):

* local:    ``local_wait + S·d / (f_local·Δ)``
* server j: ``tx_wait + S/R + (Q_j + S)·d·(a_j + 1) / (f_j·Δ)``

where ``Q_j`` is the Mbit queued at server ``j`` and ``a_j`` its active count
(the new task makes ``a_j + 1``). A cost above ``max_delay`` means the task
would be dropped. The greedy oracle takes the argmin (ties to the lowest
action index, i.e. local first).
"""

from __future__ import annotations

import numpy as np

from comllm.state import StateBatch


def action_costs(batch: StateBatch) -> np.ndarray:
    """Estimated latency (slots) of every action, shape ``(B, N + 1)``; column 0 is local."""
    slot = batch.slot_s
    local = batch.local_wait + batch.task_size * (batch.device_cycles_per_bit / 1000.0) / (
        batch.device_ghz * slot
    )
    size = batch.task_size[:, None]
    rate = np.maximum(batch.upload_rate, 1e-9)[:, None]
    server = (
        batch.tx_wait[:, None]
        + size / rate
        + (batch.queued + size)
        * (batch.server_cycles_per_bit / 1000.0)
        * (batch.active + 1)
        / (batch.server_ghz * slot[:, None])
    )
    return np.concatenate([local[:, None], server], axis=1)


def oracle_actions(batch: StateBatch) -> np.ndarray:
    """The greedy oracle: the action of least one-step cost, shape ``(B,)``."""
    return np.argmin(action_costs(batch), axis=1)


def chosen_costs(batch: StateBatch, actions: np.ndarray) -> np.ndarray:
    """One-step cost of the given actions, shape ``(B,)``."""
    costs = action_costs(batch)
    return costs[np.arange(len(batch)), np.asarray(actions, dtype=np.int64)]

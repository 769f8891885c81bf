"""The one-step cost model (docs/model.md §6): the reference semantics of a decision.

All costs are estimated latencies in slots. With ``d`` in Gcycles/Mbit, ``f`` in
GHz, ``Δ`` in s, ``S`` the task size (Mbit) and ``R`` the upload rate (Mbit/slot):

* local:    ``local_wait + S·d / (f_local·Δ)``
* server j: ``tx_wait + S/R + (Q_j + S)·d·(a_j + 1) / (f_j·Δ)``

where ``Q_j`` is the Mbit queued at server ``j`` and ``a_j`` its active count
(the new task makes ``a_j + 1``). A cost above ``max_delay`` means the task
would be dropped. The greedy oracle takes the argmin (ties to the lowest
action index, i.e. local first).

The *incoming* variant (policy ``greedy:incoming``) also counts the traffic already
headed to each server: ``Q_j`` becomes ``Q_j + I_j`` with ``I_j`` the Mbit still to send
by tasks bound for ``j`` (``StateBatch.incoming``; under ``decisions=sequential`` it also
holds the slot's earlier decisions). With ``incoming_active`` the incoming tasks also
join the active count, ``a_j + n_j + 1`` (``n_j`` = ``StateBatch.incoming_n``); that
over-counts at heavy load (docs/notes/fresh-view.md), so it is an option.

The *sharing* variant (policy ``greedy:sharing``) prices the server's compute as the simulator
serves it (``comllm/sim/kernels.py``, slot rule 3: each non-empty device queue gets an equal share
of the server): a new queue is finished once the server has computed its ``S`` Mbit and, of each
other queue, at most as much (``min(w_i, S)``); with the backlog spread evenly over the ``a``
queues that is ``min(Q, a·S) + S`` Mbit, so server j costs
``tx_wait + S/R + (min(Q_j, a_j·S) + S)·d / (f_j·Δ)``, where the paper's formula counts every
queued bit ``a_j + 1`` times. ``greedy:sharing`` applies it to the fresh view (``Q_j + I_j`` and
``a_j + n_j``); README, "What a policy sees", has its closed loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from comllm.state import StateBatch


def action_costs(
    batch: StateBatch, incoming: bool = False, incoming_active: bool = False, sharing: bool = False
) -> np.ndarray:
    """Estimated latency (slots) of every action, shape ``(B, N + 1)``; column 0 is local.

    ``incoming``: add the Mbit in flight to each server to its backlog; ``incoming_active``:
    also count the tasks in flight among its active queues; ``sharing``: the server's compute
    as its queues share it, ``min(Q, a·S) + S`` Mbit instead of ``(Q + S)·(a + 1)`` (see the
    module docstring).
    """
    slot = batch.slot_s
    queued = batch.queued + batch.incoming if incoming else batch.queued
    active = batch.active + batch.incoming_n if incoming_active else batch.active
    local = batch.local_wait + batch.task_size * (batch.device_cycles_per_bit / 1000.0) / (
        batch.device_ghz * slot
    )
    size = batch.task_size[:, None]
    rate = np.maximum(batch.upload_rate, 1e-9)[:, None]
    density, speed = batch.server_cycles_per_bit / 1000.0, batch.server_ghz * slot[:, None]
    if sharing:
        compute = (np.minimum(queued, active * size) + size) * density / speed
    else:  # this order of operations, as greedy_action_scaled's, keeps the two bit-identical
        compute = (queued + size) * density * (active + 1) / speed
    server = batch.tx_wait[:, None] + size / rate + compute
    return np.concatenate([local[:, None], server], axis=1)


#: The named one-step estimates, each the flags of :func:`action_costs` it takes: the estimate a
#: template prints (``Template.printed_estimate``), an open-loop score's oracle and the GRPO reward's task
#: cost are chosen by these names, and each is the cost of a greedy policy of the same name
#: (``greedy``, ``greedy:incoming``, ``greedy:sharing``).
ESTIMATES: dict[str, dict[str, bool]] = {
    "paper": {},
    "incoming": {"incoming": True},
    "sharing": {"incoming": True, "incoming_active": True, "sharing": True},
}


def estimate_costs(batch: StateBatch, estimate: str) -> np.ndarray:
    """The named one-step estimate (:data:`ESTIMATES`) of every action, slots, shape ``(B, N + 1)``."""
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate '{estimate}' is not one of {', '.join(ESTIMATES)}")
    return action_costs(batch, **ESTIMATES[estimate])


def oracle_from_costs(costs: np.ndarray) -> np.ndarray:
    """The oracle's rule on given costs ``(..., N + 1)``: the least, ties to the lowest action (local first)."""
    return np.argmin(costs, axis=-1)


def oracle_actions(
    batch: StateBatch, incoming: bool = False, incoming_active: bool = False, sharing: bool = False
) -> np.ndarray:
    """The greedy oracle: the action of least one-step cost, shape ``(B,)`` (ties: lowest action)."""
    return oracle_from_costs(action_costs(batch, incoming, incoming_active, sharing))


def chosen_costs(batch: StateBatch, actions: np.ndarray) -> np.ndarray:
    """One-step cost of the given actions, shape ``(B,)``."""
    costs = action_costs(batch)
    return costs[np.arange(len(batch)), np.asarray(actions, dtype=np.int64)]


# --------------------------------------------------------------------------- compiled form
# The same formula, one task at a time, for compiled code (the LACS rollouts decide other
# devices' tasks inside numba). Its costs equal `action_costs`'s bit for bit and its action
# `oracle_actions`'s, near-ties included (tests check both).


@njit(cache=True, nogil=True)
def greedy_action_scaled(task_size, local_wait, tx_wait, upload_rate, local_cpb, local_speed,
                         server_cpb, server_speed, queued, active):  # fmt: skip
    """The greedy oracle's action for one task, the per-model constants computed once by the caller; compiled.

    ``local_cpb = device_cpb / 1000.0``, ``local_speed = device_ghz * slot_s``, and per
    server ``server_cpb[j] / 1000.0``, ``server_ghz[j] * slot_s`` (N,): the same factors the
    formulas of :func:`action_costs` compute, so the costs, and the action, are bit-identical
    to :func:`oracle_actions` (the LACS rollouts call this for every arrival of every slot).
    """
    rate = max(upload_rate, 1e-9)
    best = local_wait + task_size * local_cpb / local_speed
    best_a = 0
    for j in range(server_cpb.shape[0]):
        c = tx_wait + task_size / rate + (queued[j] + task_size) * server_cpb[j] * (active[j] + 1) / server_speed[j]
        if c < best:
            best = c
            best_a = j + 1
    return best_a


@njit(cache=True, nogil=True)
def greedy_action_sharing(task_size, local_wait, tx_wait, upload_rate, local_cpb, local_speed,
                          server_cpb, server_speed, queued, active):  # fmt: skip
    """:func:`greedy_action_scaled` under the *sharing* formula (``greedy:sharing``); compiled.

    ``queued`` and ``active`` (N,) are the view the policy prices, the traffic in flight included
    (``Q + I`` and ``a + n``); the costs are bit-identical to ``action_costs(..., sharing=True)``
    on that view, and so is the action (the LACS rollout rule ``greedy-sharing`` calls this).
    """
    rate = max(upload_rate, 1e-9)
    best = local_wait + task_size * local_cpb / local_speed
    best_a = 0
    for j in range(server_cpb.shape[0]):
        c = tx_wait + task_size / rate + (min(queued[j], active[j] * task_size) + task_size) * server_cpb[j] / server_speed[j]
        if c < best:
            best = c
            best_a = j + 1
    return best_a

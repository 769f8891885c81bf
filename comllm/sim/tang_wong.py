"""Compiled slot dynamics under Tang & Wong's slot rules (numba): ``slot_rules: tang-wong``.

Same arrays and layout as :mod:`comllm.sim.kernels` (a ring of ``D`` places per
device indexed by ``arrival_slot % D``, ``arr``/``size``/``rem``/``act``/``stage``/
``tid``, ``STAGE_*`` and ``OUT_*`` codes), and the same slot as its docstring
(the ``fluid`` rules) except for three rules, those of the environment of Tang
& Wong's task-offloading paper (IEEE TMC 2020; see the README's slot-rules
section):

(a) **Whole-slot delay.** A task that completes during slot ``t`` has latency
    ``t - arrival + 1`` slots (fluid: ``t + phi - arrival``, ``phi`` the fraction
    of slot ``t`` used up when it completes). A drop still counts ``D``.

(b) **A task starts only at a slot boundary.** In each queue (a device's local
    CPU, its uplink, its queue at server ``j``) only the head task is served in a
    slot: it gets ``min(rem, capacity)`` where the capacity is ``local_rate``,
    ``rate[m]`` or ``server_rate[j] / active_j``. Capacity it leaves when it
    finishes mid-slot is lost; the next task of the queue starts in the next slot
    (fluid: the leftover passes to the next task at once). So a local task
    holds the CPU for ``ceil(S / local_rate)`` whole slots, an upload the uplink
    for ``ceil(S / rate)`` (at a constant rate).

(c) **An upload that ends in the task's deadline slot still reaches the
    server.** A task whose last bit leaves in slot ``arrival + D - 1`` joins its
    server queue (fluid: it is dropped at the uplink, ``OUT_DROP_TX_RUN``), where it
    can no longer be served: it is dropped when its queue next pulls a task, at
    the start of slot ``arrival + D``, as ``OUT_DROP_SERVER_WAIT`` (latency ``D``).
    But in slot ``arrival + D`` its device's queue at that server counts among
    the slot's active queues: it dilutes the server's share, and shows in
    ``history`` and ``busy``. Such a task is called a *late upload* below; it is
    the only task that outlives its deadline slot (no other server task can be
    waiting at the end of its deadline slot: every task ahead of it in its queue
    arrived earlier, so has already left, and it is served in that slot).

    In the arrays, a late upload's outcome is reported by the step of its
    deadline slot (where the fluid rule reports ``OUT_DROP_TX_RUN``), and its place
    keeps an untracked *trace* (``stage`` ``STAGE_SERVER``, ``tid`` -1, ``rem`` its
    size) that counts in slot ``arrival + D``'s active queues and is removed at that
    slot's start, before the arrival that takes its place. (So a step never
    reports more than ``M * D`` outcomes, the size of its outcome buffers.)

Everything else is as in the fluid rules: arrivals enter their first queue in
their slot and may be served at once; each server's share is split equally
among its device queues that hold a task at the slot's start; an uploaded task
is served at its server from the next slot on; a task unfinished at the end of
slot ``arrival + D - 1`` is dropped (codes ``*_RUN`` if it was served, ``*_WAIT``
if not); every task ends exactly once. (Their code drops a waiting task whose
deadline has passed only when its queue next pulls one: in a local or uplink
queue that changes only when the drop is noticed, not its outcome or latency
nor anyone else's; in a server queue it is rule c.)

Slot ``t`` here, step by step (:func:`step_simulator`):

1. count each server's active device queues over the tasks in the arrays, the
   traces of late uploads (``arr == t - D``, at place ``t % D``) included;
2. remove the traces (they leave place ``t % D`` free for the slot's arrival);
3. place the slot's arrivals (:func:`comllm.sim.kernels.place_arrivals`);
4. serve each device's tasks in FIFO order, at most one task per queue
   (:func:`run_slot_tw`), and apply the deadline: a late upload is reported and
   leaves its trace;
5. log the outcomes and roll the active-count history as the fluid kernel does.

:func:`observe_system_tw` is the whole-slot counterpart of
:func:`comllm.sim.kernels.observe_system` (waits as whole slots; a late upload
trace counts as active but not as queued Mbit).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from comllm.sim.kernels import (
    OUT_DONE,
    OUT_DROP_LOCAL_RUN,
    OUT_DROP_LOCAL_WAIT,
    OUT_DROP_SERVER_RUN,
    OUT_DROP_SERVER_WAIT,
    OUT_DROP_TX_RUN,
    OUT_DROP_TX_WAIT,
    STAGE_EMPTY,
    STAGE_LOCAL,
    STAGE_SERVER,
    STAGE_TX,
    _cttz,
    log_and_roll,
    place_arrivals,
)

_EPS = 1e-9  # the fluid kernels' tolerance: a task with at most this many Mbit left is finished


@njit(cache=True, nogil=True, inline="always")
def _fifo_places(arr, m, k0, order):
    """Device ``m``'s occupied places into ``order[:n]`` in FIFO order (the ring read from ``k0``); return ``n``."""
    D = arr.shape[1]
    n = 0
    if D <= 62:
        occ = 0
        for k in range(D):
            occ |= np.int64(arr[m, k] >= 0) << k
        x = (occ >> k0) | ((occ << (D - k0)) & ((np.int64(1) << D) - 1))  # bit i: place (k0 + i) % D
        while x != 0:
            k = k0 + _cttz(x)
            order[n] = k - D if k >= D else k
            n += 1
            x &= x - 1
    else:
        k = k0
        for i in range(D):
            order[n] = k
            n += arr[m, k] >= 0
            k = k + 1 if k + 1 < D else 0
    return n


@njit(cache=True, nogil=True)
def _whole_slots(bits, rate):
    """Whole slots a queue's head needs for ``bits`` Mbit at ``rate`` Mbit/slot (rule b)."""
    return np.ceil((bits - _EPS) / rate)


@njit(cache=True, nogil=True)
def observe_system_tw(t, arr, rem, act, stage, rate, local_rate, local_wait, tx_wait, queued, active):
    """What a task arriving now at each device would see, under the tang-wong rules.

    As :func:`comllm.sim.kernels.observe_system` (same arguments and outputs), but
    ``local_wait`` / ``tx_wait`` are whole slots: each task ahead holds the CPU /
    uplink for ``ceil(rem / rate)`` slots (rule b), at most until its deadline, so
    the new task starts ``local_wait`` / ``tx_wait`` slots from now. The trace of a
    late upload (rule c) counts in ``active`` (it dilutes this slot's share) but not in
    ``queued`` (its bits are never computed).
    """
    M, D = arr.shape
    N = queued.shape[0]
    seen = np.empty(N, dtype=np.int64)
    order = np.empty(D, dtype=np.int64)
    for j in range(N):
        queued[j] = 0.0
        active[j] = 0
        seen[j] = -1
    k0 = (t + 1) % D
    for m in range(M):
        n = _fifo_places(arr, m, k0, order)
        lw = 0.0
        tw = 0.0
        for i in range(n):
            k = order[i]
            s = stage[m, k]
            left = arr[m, k] + D - t  # slots from now until its deadline (0: a late upload's trace)
            if s == STAGE_LOCAL:
                lw = max(lw, min(lw + _whole_slots(rem[m, k], local_rate), left))
            elif s == STAGE_TX:
                tw = max(tw, min(tw + _whole_slots(rem[m, k], rate[m]), left))
            elif s == STAGE_SERVER:
                j = act[m, k] - 1
                if left > 0:
                    queued[j] += rem[m, k]
                if seen[j] != m:
                    seen[j] = m
                    active[j] += 1
        local_wait[m] = lw
        tx_wait[m] = tw


@njit(cache=True, nogil=True)
def count_active(arr, act, stage, active_now, seen):
    """Each server's number of device queues holding a task (traces of late uploads included) into ``active_now``."""
    M, D = arr.shape
    for j in range(active_now.shape[0]):
        active_now[j] = 0
        seen[j] = -1  # the last device counted as active at server j
    for m in range(M):
        for k in range(D):
            if (arr[m, k] >= 0) & (stage[m, k] == STAGE_SERVER):
                j = act[m, k] - 1
                if seen[j] != m:
                    seen[j] = m
                    active_now[j] += 1


@njit(cache=True, nogil=True)
def clear_traces(t, arr, stage):
    """Remove the traces of the late uploads of slot ``t - 1`` (``arr == t - D``, place ``t % D``; rule c)."""
    M, D = arr.shape
    g = t - D
    if g < 0:
        return
    c = t % D
    for m in range(M):
        if arr[m, c] == g:
            arr[m, c] = -1
            stage[m, c] = STAGE_EMPTY


@njit(cache=True, nogil=True)
def run_slot_tw(
    t, arr, size, rem, act, stage, tid, rate, local_rate, server_rate, active_now, served,
    out_code, out_lat, out_tid, out_act, n_out, share, seen, order,
):  # fmt: skip
    """Serve slot ``t`` under the tang-wong rules (arrivals placed, traces removed).

    ``active_now`` (N,) holds the slot's active counts (:func:`count_active` before
    :func:`clear_traces`); ``served`` (N,) accumulates the Mbit each server
    computes. Outcomes are written from index ``n_out`` on; returns the new count.
    Scratch: ``share`` (N,), ``seen`` (N,) and ``order`` (D,) int64 (overwritten).

    Why one long function: it is the inner loop of the simulator under these rules,
    and each task's work is a few arithmetic operations, so helper functions taking arrays,
    called per task, cost several times the work itself (benchmarks/sim_speed.py
    measures it); the per-task steps are written out in one pass.
    """
    M, D = arr.shape
    N = server_rate.shape[0]
    for j in range(N):
        share[j] = server_rate[j] / active_now[j] if active_now[j] > 0 else 0.0
        seen[j] = -1  # the last device whose queue at server j has had its head served
    last = t - D + 1  # arrival slot of the tasks whose deadline slot is t
    k0 = (t + 1) % D
    for m in range(M):
        n = _fifo_places(arr, m, k0, order)
        local_free = True  # no local task served yet this slot (rule b: only the head is)
        tx_free = True
        r = rate[m]
        for i in range(n):
            k = order[i]
            s = stage[m, k]
            joined = False
            if s == STAGE_LOCAL:
                if local_free:
                    local_free = False
                    rem[m, k] -= min(rem[m, k], local_rate)
                    if rem[m, k] <= _EPS:
                        out_code[n_out] = OUT_DONE
                        out_lat[n_out] = t - arr[m, k] + 1  # rule a
                        out_tid[n_out] = tid[m, k]
                        out_act[n_out] = act[m, k]
                        n_out += 1
                        arr[m, k] = -1
                        stage[m, k] = STAGE_EMPTY
                        continue
            elif s == STAGE_TX:
                if tx_free:
                    tx_free = False
                    rem[m, k] -= min(rem[m, k], r)
                    if rem[m, k] <= _EPS:  # at its server from slot t + 1 (visited once: not served there now)
                        stage[m, k] = STAGE_SERVER
                        rem[m, k] = size[m, k]
                        joined = True
            elif s == STAGE_SERVER:
                j = act[m, k] - 1
                if seen[j] != m:
                    seen[j] = m
                    serve = min(rem[m, k], share[j])
                    rem[m, k] -= serve
                    served[j] += serve
                    if rem[m, k] <= _EPS:
                        out_code[n_out] = OUT_DONE
                        out_lat[n_out] = t - arr[m, k] + 1  # rule a
                        out_tid[n_out] = tid[m, k]
                        out_act[n_out] = act[m, k]
                        n_out += 1
                        arr[m, k] = -1
                        stage[m, k] = STAGE_EMPTY
                        continue
            if arr[m, k] == last:  # end of its last slot
                if joined:  # rule c: a late upload, reported now; its trace counts in slot t + 1
                    out_code[n_out] = OUT_DROP_SERVER_WAIT
                    out_lat[n_out] = D
                    out_tid[n_out] = tid[m, k]
                    out_act[n_out] = act[m, k]
                    n_out += 1
                    tid[m, k] = -1
                    continue
                started = rem[m, k] < size[m, k] - _EPS
                if s == STAGE_LOCAL:
                    code = OUT_DROP_LOCAL_RUN if started else OUT_DROP_LOCAL_WAIT
                elif s == STAGE_TX:
                    code = OUT_DROP_TX_RUN if started else OUT_DROP_TX_WAIT
                else:
                    code = OUT_DROP_SERVER_RUN if started else OUT_DROP_SERVER_WAIT
                out_code[n_out] = code
                out_lat[n_out] = D
                out_tid[n_out] = tid[m, k]
                out_act[n_out] = act[m, k]
                n_out += 1
                arr[m, k] = -1
                stage[m, k] = STAGE_EMPTY
    return n_out


@njit(cache=True, nogil=True)
def step_simulator(
    t,
    arr,
    size,
    rem,
    act,
    stage,
    tid,
    dev,
    new_size,
    actions,
    first_tid,
    rate,
    local_rate,
    server_rate,
    history,
    busy,
    served,
    log_code,
    log_lat,
    out_code,
    out_lat,
    out_tid,
    out_act,
):
    """One slot of the tracked simulator under the tang-wong rules; the contract of
    :func:`comllm.sim.kernels.step_simulator` (returns the number of outcomes, or
    ``-1 - i`` when action ``i`` is out of range, then nothing has changed)."""
    N = history.shape[0]
    D = arr.shape[1]
    for i in range(actions.shape[0]):
        if actions[i] < 0 or actions[i] > N:
            return -1 - i
    active_now = np.zeros(N, dtype=np.int64)
    seen = np.empty(N, dtype=np.int64)
    count_active(arr, act, stage, active_now, seen)  # arrivals never start at a server: count before placing
    clear_traces(t, arr, stage)
    place_arrivals(t, arr, size, rem, act, stage, tid, dev, new_size, actions, first_tid)
    n = run_slot_tw(
        t, arr, size, rem, act, stage, tid, rate, local_rate, server_rate, active_now, served,
        out_code, out_lat, out_tid, out_act, 0, np.empty(N), seen, np.empty(D, dtype=np.int64),
    )  # fmt: skip
    log_and_roll(n, out_tid, out_code, out_lat, log_code, log_lat, active_now, history, busy)
    return n

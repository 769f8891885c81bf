"""Compiled slot dynamics of the MEC queues (numba).

Layout of one system: a device receives at most one task per slot and a task
lives at most ``D`` (deadline) slots, so each device's live tasks fit a ring of
``D`` places indexed by ``arrival_slot % D``; FIFO order is arrival order,
i.e. the ring read from ``(t + 1) % D`` round to ``t % D``. Arrays of shape
``(M, D)`` per task place: ``arr`` arrival slot (-1 = empty place), ``size`` and
``rem`` (Mbit; ``rem`` = what is left of the current stage), ``act`` (0 local,
j server j), ``stage`` (``STAGE_*``), ``tid`` (task id, -1 when untracked).
Batched kernels take the same arrays with a leading axis ``B`` of independent
systems (LACS rolls many copies of one moment forward at once).

Semantics of one slot ``t`` (the ``fluid`` slot rules; docs/model.md §2 summarises this list):

1. the slot's new tasks enter the local queue (action 0) or the uplink queue;
2. each server's active count is the number of its non-empty device queues;
3. service, fluid within the slot and FIFO within a queue: a device computes
   ``local_rate`` Mbit and transmits ``rate[m]`` Mbit, and each active queue at
   server ``j`` gets ``server_rate[j] / active_j`` Mbit. A task that finishes
   at fraction ``phi`` of the slot completes at time ``t + phi`` (latency
   ``t + phi - arrival``); the capacity it leaves passes to the next task of the
   same queue. Capacity an empty queue cannot use is lost;
4. a transmitted task joins its server queue at the start of slot ``t + 1``;
5. a task still unfinished at the end of slot ``arrival + D - 1`` is dropped
   wherever it is, its leftover bits leave, and its latency counts as ``D``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

STAGE_EMPTY = 0
STAGE_LOCAL = 1
STAGE_TX = 2
STAGE_SERVER = 3

#: outcome codes
OUT_NONE = 0
OUT_DONE = 1
OUT_DROP_LOCAL_WAIT = 2
OUT_DROP_LOCAL_RUN = 3
OUT_DROP_TX_WAIT = 4
OUT_DROP_TX_RUN = 5
OUT_DROP_SERVER_WAIT = 6
OUT_DROP_SERVER_RUN = 7

OUTCOME_NAMES = {
    OUT_NONE: "in the system",
    OUT_DONE: "completed",
    OUT_DROP_LOCAL_WAIT: "dropped waiting in the local queue",
    OUT_DROP_LOCAL_RUN: "dropped computing locally",
    OUT_DROP_TX_WAIT: "dropped waiting in the uplink queue",
    OUT_DROP_TX_RUN: "dropped transmitting",
    OUT_DROP_SERVER_WAIT: "dropped waiting at the server",
    OUT_DROP_SERVER_RUN: "dropped computing at the server",
}

_EPS = 1e-9


@intrinsic
def _cttz(typingctx, x):
    """Count of trailing zero bits of a nonzero int64 (one instruction)."""
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


@njit(cache=True, nogil=True)
def observe_system(t, arr, rem, act, stage, rate, local_rate, local_wait, tx_wait, queued, active):
    """What a task arriving now at each device of one system would see.

    ``local_wait`` / ``tx_wait`` (M,): slots until the local CPU / uplink is
    free, counting that queued tasks are dropped at their deadlines (the uplink
    at the current rate). ``queued`` (N,): Mbit at each server; ``active`` (N,):
    its non-empty device queues.
    """
    observe_system_into(
        t, arr, rem, act, stage, rate, local_rate, local_wait, tx_wait, queued, active,
        np.empty(queued.shape[0], dtype=np.int64), np.empty(arr.shape[1], dtype=np.int64),
    )  # fmt: skip


@njit(cache=True, nogil=True)
def observe_system_into(t, arr, rem, act, stage, rate, local_rate, local_wait, tx_wait, queued, active, seen, order):
    """:func:`observe_system` with a caller's scratch arrays ``seen`` (N,) and ``order`` (D,) int64 (overwritten)."""
    M, D = arr.shape
    N = queued.shape[0]
    for j in range(N):
        queued[j] = 0.0
        active[j] = 0
        seen[j] = -1  # the last device counted as active at server j
    k0 = (t + 1) % D  # the ring is walked by increment and wrap: no division per place
    for m in range(M):
        # device m's occupied places into order[:n], in FIFO order (the ring read from k0). Most
        # places are empty: rather than a hard-to-predict test per place, their occupancy is
        # gathered into a bit mask whose set bits are visited (D <= 62), or compacted branch-free.
        # (Written out here and in run_slot_into: a helper taking arrays costs more than the work.)
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
        lw = 0.0
        tw = 0.0
        for i in range(n):
            k = order[i]
            # (the same lines observe each task in run_slot_into: helpers taking arrays, called
            # per task, cost several times the work itself)
            s = stage[m, k]
            left = arr[m, k] + D - t  # slots from now until its deadline
            if s == STAGE_LOCAL:
                lw = max(lw, min(lw + rem[m, k] / local_rate, left))
            elif s == STAGE_TX:
                tw = max(tw, min(tw + rem[m, k] / rate[m], left))
            elif s == STAGE_SERVER:
                j = act[m, k] - 1
                queued[j] += rem[m, k]
                if seen[j] != m:
                    seen[j] = m
                    active[j] += 1
        local_wait[m] = lw
        tx_wait[m] = tw


@njit(cache=True, nogil=True)
def observe_fresh(t, arr, rem, act, stage, rate, local_rate, local_wait, tx_wait, queued, active, incoming, incoming_n):
    """:func:`observe_system` and :func:`observe_incoming` in one call (the simulator's view)."""
    observe_system(t, arr, rem, act, stage, rate, local_rate, local_wait, tx_wait, queued, active)
    observe_incoming(arr, rem, act, stage, incoming, incoming_n)


@njit(cache=True, nogil=True)
def observe_incoming(arr, rem, act, stage, incoming, incoming_n):
    """Traffic in flight: per server, the Mbit still to send (``incoming``, (N,)) and the number
    (``incoming_n``, (N,) int64) of the tasks bound for it that are in devices' uplinks (stage
    ``STAGE_TX``: waiting or transmitting). A task that finished sending this slot is already at
    its server (``STAGE_SERVER``) and counts in ``queued`` instead."""
    M, D = arr.shape
    for j in range(incoming.shape[0]):
        incoming[j] = 0.0
        incoming_n[j] = 0
    for m in range(M):
        for k in range(D):
            if (arr[m, k] >= 0) & (stage[m, k] == STAGE_TX):
                j = act[m, k] - 1
                incoming[j] += rem[m, k]
                incoming_n[j] += 1


@njit(cache=True, nogil=True)
def _observe_device_rotated(t, arr, rem, act, stage, m, r, local_rate, order, n, queued, active, seen):
    """Device ``m``'s part of :func:`observe_system` at slot ``t`` (uplink rate ``r``), its tasks
    being the occupied places among ``order[:n]`` in FIFO order from ``order[1]`` round to
    ``order[0]``: return its local and uplink wait, add its server tasks to ``queued`` / ``active``."""
    D = arr.shape[1]
    lw = 0.0
    tw = 0.0
    for ii in range(1, n + 1):
        k = order[ii if ii < n else 0]
        if arr[m, k] < 0:
            continue
        s = stage[m, k]
        left = arr[m, k] + D - t
        if s == STAGE_LOCAL:
            lw = max(lw, min(lw + rem[m, k] / local_rate, left))
        elif s == STAGE_TX:
            tw = max(tw, min(tw + rem[m, k] / r, left))
        elif s == STAGE_SERVER:
            j = act[m, k] - 1
            queued[j] += rem[m, k]
            if seen[j] != m:
                seen[j] = m
                active[j] += 1
    return lw, tw


@njit(cache=True, nogil=True)
def run_slot(
    t,
    arr,
    size,
    rem,
    act,
    stage,
    tid,
    rate,
    local_rate,
    server_rate,
    active_now,
    served,
    out_code,
    out_lat,
    out_tid,
    out_act,
):
    """Run slot ``t`` of one system whose arrivals are already placed; return the outcome count.

    ``active_now`` (N,) receives each server's active count in this slot;
    ``served`` (N,) accumulates the Mbit each server computes. Outcomes go to
    the first places of ``out_code``, ``out_lat``, ``out_tid``, ``out_act``
    (each at least M*D long): ``OUT_*`` code, latency (slots), task id, action.
    """
    N = server_rate.shape[0]
    return run_slot_into(
        t, arr, size, rem, act, stage, tid, rate, local_rate, server_rate, active_now, served,
        out_code, out_lat, out_tid, out_act, np.zeros(N), np.empty(N), np.empty(N, dtype=np.int64),
        np.empty(arr.shape[1], dtype=np.int64), False, False, rate, rate, rate, served, active_now, active_now, False,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def run_slot_into(
    t, arr, size, rem, act, stage, tid, rate, local_rate, server_rate, active_now, served,
    out_code, out_lat, out_tid, out_act, used, share, seen, order, active_known,
    observe_next, rate_next, local_wait, tx_wait, queued, active_next, occupied, occupied_known,
):  # fmt: skip
    """:func:`run_slot` with a caller's scratch arrays: ``used`` (N,) all zero on entry (and
    left so on return), ``share`` (N,), ``seen`` (N,) and ``order`` (D,) int64 (overwritten). With
    ``active_known``, ``active_now`` already holds the slot's active counts (e.g. the
    ``active`` of :func:`observe_system` at the slot's start: arrivals never join a
    server queue in their own slot) and is not recounted.

    With ``observe_next``, also fills ``local_wait``, ``tx_wait``, ``queued`` and
    ``active_next`` as :func:`observe_system` would at the start of slot ``t + 1`` with
    the uplink rates ``rate_next`` (each task observed right after its service, in the
    same pass; ``active_next`` may be ``active_now``, which is only read before).

    With ``occupied_known`` (only for D <= 62), ``occupied`` (M,) int64 holds each device's
    occupied places as a bit mask (bit k: place k), kept up to date here as tasks leave
    (the caller sets the bits of the tasks it places), so that no place need be read to
    find the tasks.

    Why one long function: it is the innermost loop of the simulator and of every LACS rollout,
    and each task's work is a few arithmetic operations, so helper functions taking arrays,
    called per task, cost several times the work itself (benchmarks/sim_speed.py,
    benchmarks/lacs_speed.py measure it); the per-task steps are written out in one pass.
    """
    M, D = arr.shape
    N = server_rate.shape[0]
    if not active_known:
        for j in range(N):
            active_now[j] = 0
            seen[j] = -1  # the last device counted as active at server j
        for m in range(M):
            for k in range(D):
                if (arr[m, k] >= 0) & (stage[m, k] == STAGE_SERVER):
                    j = act[m, k] - 1
                    if seen[j] != m:
                        seen[j] = m
                        active_now[j] += 1
    for j in range(N):
        share[j] = server_rate[j] / active_now[j] if active_now[j] > 0 else 0.0
    if observe_next:
        for j in range(N):
            queued[j] = 0.0
            active_next[j] = 0
            seen[j] = -1
    n_out = 0
    k0 = (t + 1) % D  # the ring is walked by increment and wrap: no division per place
    for m in range(M):
        used_local = 0.0
        used_tx = 0.0
        r = rate[m]
        at_server = False  # some task of this device is at a server (used[] to flush)
        lw = 0.0  # with observe_next: the device's waits in slot t + 1, task by task
        tw = 0.0
        # device m's occupied places into order[:n], in FIFO order (as in observe_system_into)
        n = 0
        occ = 0
        gone = 0  # with occupied_known: bits of the places its tasks leave
        if D <= 62:
            if occupied_known:
                occ = occupied[m]
            else:
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
        # slot t + 1 reads the ring from k0 + 1: a task still at place k0 (order[0]) would be
        # observed last. It has always left by then (its deadline ends with this slot) unless it
        # had outlived its deadline: then the device is observed apart, after the pass.
        inline_obs = observe_next and not (n > 0 and order[0] == k0 and arr[m, k0] != t - D + 1)
        r_next = rate_next[m]
        for i in range(n):
            k = order[i]
            s = stage[m, k]
            joined = False
            if s == STAGE_LOCAL:
                cap = local_rate - used_local
                if cap > _EPS:
                    serve = min(rem[m, k], cap)
                    used_local += serve
                    rem[m, k] -= serve
                    if rem[m, k] <= _EPS:
                        out_code[n_out] = OUT_DONE
                        out_lat[n_out] = t + used_local / local_rate - arr[m, k]
                        out_tid[n_out] = tid[m, k]
                        out_act[n_out] = act[m, k]
                        n_out += 1
                        arr[m, k] = -1
                        stage[m, k] = STAGE_EMPTY
                        if occupied_known:
                            gone |= np.int64(1) << k
                        continue
            elif s == STAGE_TX:
                cap = r - used_tx
                if cap > _EPS:
                    serve = min(rem[m, k], cap)
                    used_tx += serve
                    rem[m, k] -= serve
                    if rem[m, k] <= _EPS:
                        # joins the server queue at the start of the next slot (each task is
                        # visited once per slot: it is not served there in this one)
                        stage[m, k] = STAGE_SERVER
                        rem[m, k] = size[m, k]
                        joined = True
            elif s == STAGE_SERVER:
                at_server = True
                j = act[m, k] - 1
                cap = share[j] - used[j]
                if cap > _EPS:
                    serve = min(rem[m, k], cap)
                    used[j] += serve
                    rem[m, k] -= serve
                    if rem[m, k] <= _EPS:
                        out_code[n_out] = OUT_DONE
                        out_lat[n_out] = t + used[j] / share[j] - arr[m, k]
                        out_tid[n_out] = tid[m, k]
                        out_act[n_out] = act[m, k]
                        n_out += 1
                        arr[m, k] = -1
                        stage[m, k] = STAGE_EMPTY
                        if occupied_known:
                            gone |= np.int64(1) << k
                        continue
            if arr[m, k] == t - D + 1:  # end of its last slot: drop
                started = rem[m, k] < size[m, k] - _EPS
                if joined:
                    code = OUT_DROP_TX_RUN  # its last bit left in its very last slot
                elif s == STAGE_LOCAL:
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
                if occupied_known:
                    gone |= np.int64(1) << k
                continue
            if inline_obs:  # the task as slot t + 1 starts (as observe_system_into)
                s = stage[m, k]
                left = arr[m, k] + D - (t + 1)
                if s == STAGE_LOCAL:
                    lw = max(lw, min(lw + rem[m, k] / local_rate, left))
                elif s == STAGE_TX:
                    tw = max(tw, min(tw + rem[m, k] / r_next, left))
                elif s == STAGE_SERVER:
                    j = act[m, k] - 1
                    queued[j] += rem[m, k]
                    if seen[j] != m:
                        seen[j] = m
                        active_next[j] += 1
        if occupied_known:
            occupied[m] = occ & ~gone
        if at_server:  # (a device without server tasks used nothing: adding its zeros changes nothing)
            for j in range(N):
                served[j] += used[j]
                used[j] = 0.0
        if observe_next:
            if not inline_obs:
                lw, tw = _observe_device_rotated(
                    t + 1, arr, rem, act, stage, m, r_next, local_rate, order, n, queued, active_next, seen
                )
            local_wait[m] = lw
            tx_wait[m] = tw
    return n_out


@njit(cache=True, nogil=True)
def place_arrivals(t, arr, size, rem, act, stage, tid, dev, new_size, actions, first_tid):
    """Put the slot's arriving tasks (devices ``dev``) in their first queue."""
    D = arr.shape[1]
    c = t % D
    for i in range(dev.shape[0]):
        m = dev[i]
        a = actions[i]
        arr[m, c] = t
        size[m, c] = new_size[m]
        rem[m, c] = new_size[m]
        act[m, c] = a
        stage[m, c] = STAGE_LOCAL if a == 0 else STAGE_TX
        tid[m, c] = first_tid + i if first_tid >= 0 else -1


@njit(cache=True, nogil=True)
def log_and_roll(n, out_tid, out_code, out_lat, log_code, log_lat, active_now, history, busy):
    """After a slot: write its ``n`` outcomes into the task log (tracked tasks only), shift each
    server's active-count ``history`` (N, H) by one slot with ``active_now`` as the newest, and
    count the slot in ``busy`` for every server that had an active queue (both slot rules use it)."""
    N, H = history.shape
    for i in range(n):
        if out_tid[i] >= 0:  # tasks restored from a JSON snapshot carry no log id
            log_code[out_tid[i]] = out_code[i]
            log_lat[out_tid[i]] = out_lat[i]
    for j in range(N):
        for h in range(H - 1):
            history[j, h] = history[j, h + 1]
        history[j, H - 1] = active_now[j]
        if active_now[j] > 0:
            busy[j] += 1


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
    """One slot of the tracked simulator: place arrivals, run, log outcomes, roll the history.

    Returns the number of outcomes, or ``-1 - i`` when action ``i`` is out of range
    (then nothing has changed).
    """
    N = history.shape[0]
    for i in range(actions.shape[0]):
        if actions[i] < 0 or actions[i] > N:
            return -1 - i
    place_arrivals(t, arr, size, rem, act, stage, tid, dev, new_size, actions, first_tid)
    active_now = np.zeros(N, dtype=np.int64)
    n = run_slot(
        t, arr, size, rem, act, stage, tid, rate, local_rate, server_rate, active_now, served,
        out_code, out_lat, out_tid, out_act,
    )
    log_and_roll(n, out_tid, out_code, out_lat, log_code, log_lat, active_now, history, busy)
    return n


CHANNEL_STATIC = 0
CHANNEL_GAUSS_MARKOV = 1
CHANNEL_RAYLEIGH = 2


@njit(cache=True, nogil=True)
def channel_rates(model, chan, chan_im, snr, lo, hi, base, rate):
    """Uplink rate (Mbit/slot) of each device from its channel state."""
    M = chan.shape[0]
    if model == CHANNEL_STATIC:
        for m in range(M):
            rate[m] = base * min(max(1.0, lo), hi)
    elif model == CHANNEL_GAUSS_MARKOV:
        for m in range(M):
            rate[m] = base * min(max(chan[m], lo), hi)
    else:
        for m in range(M):
            f = np.log2(1.0 + snr * (chan[m] ** 2 + chan_im[m] ** 2)) / np.log2(1.0 + snr)
            rate[m] = base * min(max(f, lo), hi)


@njit(cache=True, nogil=True)
def next_slot_inputs(
    u, z, model, rho, sigma, snr, lo, hi, base, chan, chan_im, rate,
    bursty, p_calm, p_burst, p_enter, p_leave, size_min, size_max, phase, new_mask, new_size,
):  # fmt: skip
    """Advance channels and burst phases one slot and draw the slot's arrivals.

    ``u`` (3, M) uniforms: arrival, size, phase switch; ``z`` (2, M) standard normals.
    Gauss-Markov: ``g' = 1 + rho (g - 1) + sqrt(1 - rho^2) sigma z``; Rayleigh:
    ``h' = rho h + sqrt(1 - rho^2) e`` with ``e ~ CN(0, 1)``.
    """
    M = chan.shape[0]
    innov = np.sqrt(max(0.0, 1.0 - rho * rho))
    # one loop per quantity, the model and burst tests out of the loops
    if model == CHANNEL_GAUSS_MARKOV:
        for m in range(M):
            chan[m] = 1.0 + rho * (chan[m] - 1.0) + innov * sigma * z[0, m]
    elif model == CHANNEL_RAYLEIGH:
        for m in range(M):
            chan[m] = rho * chan[m] + innov * np.sqrt(0.5) * z[0, m]
            chan_im[m] = rho * chan_im[m] + innov * np.sqrt(0.5) * z[1, m]
    if bursty:
        for m in range(M):
            if phase[m]:
                phase[m] = u[2, m] >= p_leave
            else:
                phase[m] = u[2, m] < p_enter
            new_mask[m] = u[0, m] < (p_burst if phase[m] else p_calm)
    else:
        for m in range(M):
            new_mask[m] = u[0, m] < p_calm
    for m in range(M):
        new_size[m] = size_min + (size_max - size_min) * u[1, m]
    channel_rates(model, chan, chan_im, snr, lo, hi, base, rate)

"""Batched look-ahead rollouts: many copies of one simulator moment rolled forward at once (numba).

LACS (docs/model.md §7) scores a decision by simulating what follows it. A *system* here is one
copy of a :class:`~comllm.sim.Snapshot` in which the deciding device's task takes one
candidate action; each system is rolled forward on the simulator's own per-system
kernels (:func:`~comllm.sim.kernels.observe_system`, :func:`~comllm.sim.kernels.place_arrivals`,
:func:`~comllm.sim.kernels.run_slot`, :func:`~comllm.sim.kernels.next_slot_inputs`), so a
rollout follows exactly the slot semantics documented in :mod:`comllm.sim.kernels`.

One rollout from decision slot ``t0`` (the snapshot's slot):

* slot ``t0``: the snapshot's arrivals (known) enter; the current task takes the
  candidate action, the others take ``first_actions`` (>= 0) or the ``rule``;
* every later slot ``t0 + i`` draws its channel and arrivals from ``u[i - 1]``, ``z[i - 1]``
  (the layout :func:`~comllm.sim.kernels.next_slot_inputs` reads, i.e. what
  :class:`~comllm.sim.MECSimulator` draws) and decides every arrival by the ``rule``
  (greedy: the one-step oracle of :mod:`comllm.cost` in its compiled form
  :func:`comllm.cost.greedy_action_scaled`, on the state at
  the slot's start, as ``MECSimulator.observe`` would show it; greedy-incoming: the
  policy ``greedy:incoming`` deciding the slot's tasks in turn, each counting the traffic
  in flight to every server and the decisions made before it in the slot, as
  ``decisions=sequential`` shows them, in device order; in slot ``t0`` the current task's
  and the ``first_actions`` come first; greedy-sharing: the same in turn with the policy
  ``greedy:sharing``, whose view also counts the tasks in flight among a server's active
  queues, :func:`comllm.cost.greedy_action_sharing`);
* *horizon tasks* are the tasks other than the current one that arrive in slots
  ``t0 .. t0 + horizon``; the rollout stops once the current task and every
  horizon task have ended (at most ``horizon + D`` slots), or after ``n_slots``.

Outputs per system (``OUT_*`` columns): the current task's cost (its latency in slots,
or ``drop_cost`` if dropped), whether it completed, the summed cost of the horizon tasks
(drops cost ``drop_cost``), their count, and the number of slots run.

Common random numbers: every candidate of a state reads the same draws ``u``, ``z``,
``ua`` of rollout ``k``, so two identical candidates give bit-identical outputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numba import njit, prange

from comllm import cost as _cost
from comllm.cost import greedy_action_scaled, greedy_action_sharing
from comllm.errors import ComllmError
from comllm.scenario import Scenario
from comllm.sim import kernels as K

#: how rollouts decide the tasks of other devices (and of later slots)
RULE_GREEDY = 0
RULE_LOCAL = 1
RULE_RANDOM = 2
RULE_GREEDY_INCOMING = 3
RULE_GREEDY_SHARING = 4
RULES = {
    "greedy": RULE_GREEDY, "local": RULE_LOCAL, "random": RULE_RANDOM, "greedy-incoming": RULE_GREEDY_INCOMING,
    "greedy-sharing": RULE_GREEDY_SHARING,
}  # fmt: skip

#: columns of a rollout's output row
OUT_CUR_COST = 0  # current task: latency (slots) or drop_cost
OUT_CUR_DONE = 1  # 1.0 if the current task completed, 0.0 if dropped (or unfinished)
OUT_HOR_SUM = 2  # summed cost of the horizon tasks that ended
OUT_HOR_N = 3  # number of horizon tasks
OUT_SLOTS = 4  # slots simulated
N_OUT = 5

# indices into the packed parameter arrays
_F_LOCAL_RATE, _F_SLOT_S, _F_DEV_GHZ, _F_DEV_CPB = 0, 1, 2, 3
_F_RHO, _F_SIGMA, _F_SNR, _F_LO, _F_HI, _F_BASE = 4, 5, 6, 7, 8, 9
_F_P_CALM, _F_P_BURST, _F_P_ENTER, _F_P_LEAVE, _F_SIZE_MIN, _F_SIZE_MAX = 10, 11, 12, 13, 14, 15
_F_DROP_COST = 16
_I_CHAN_MODEL, _I_BURSTY, _I_RULE, _I_HORIZON, _I_MAX_SLOTS, _I_STOP_EARLY = 0, 1, 2, 3, 4, 5
# a rollout's tallies between calls of rollout_system_into
_C_CUR_TID, _C_NEXT_TID, _C_CUR_COST, _C_CUR_DONE, _C_CUR_ENDED = 0, 1, 2, 3, 4
_C_H_SUM, _C_H_N, _C_H_ENDED, _C_SLOTS, _C_STOPPED = 5, 6, 7, 8, 9
N_CARRY = 10


class RolloutError(ComllmError, ValueError):
    """Settings the batched rollouts cannot run (one line naming the field and the value)."""


@dataclass(frozen=True)
class RolloutParams:
    """A scenario's physics and a rollout's settings, packed for the compiled kernels.

    ``fp`` / ``ip``: float and int scalars (see the ``_F_*`` / ``_I_*`` indices);
    ``server_rate`` (Mbit/slot), ``server_ghz``, ``server_cpb`` (cycles/bit): (N,).
    """

    fp: np.ndarray
    ip: np.ndarray
    server_rate: np.ndarray
    server_ghz: np.ndarray
    server_cpb: np.ndarray

    @property
    def max_slots(self) -> int:
        return int(self.ip[_I_MAX_SLOTS])


def _drop_cost(scenario: Scenario, drop_cost: float | str | None) -> float:
    if drop_cost is None:
        return float(scenario.drop_penalty)
    if drop_cost == "deadline":
        return float(scenario.deadline)
    if isinstance(drop_cost, str) or not float(drop_cost) >= 0:
        raise ValueError(f"drop_cost={drop_cost!r} must be a number >= 0, 'deadline' or None")
    return float(drop_cost)


@lru_cache(maxsize=64)
def _scenario_arrays(scenario: Scenario) -> tuple[tuple, np.ndarray, np.ndarray, np.ndarray]:
    from comllm.sim.simulator import MECSimulator

    sim = MECSimulator(scenario, seed=0)  # owns the scenario -> kernel-argument mapping
    ghz = np.array([s.ghz for s in scenario.servers], dtype=np.float64)
    cpb = np.full(scenario.n_servers, scenario.cycles_per_bit)
    return sim._args_channel, sim.server_rate.copy(), ghz, cpb


def rollout_params(
    scenario: Scenario,
    horizon: int,
    rule: str = "greedy",
    drop_cost: float | str | None = None,
    max_slots: int | None = None,
    stop_early: bool = True,
) -> RolloutParams:
    """Pack ``scenario`` and the rollout settings.

    ``horizon`` (slots after the decision slot whose arrivals are scored), ``rule``
    (one of :data:`RULES`), ``drop_cost`` (cost of a dropped task in slots: a number,
    ``"deadline"``, or None for the scenario's drop penalty), ``max_slots`` (default
    ``horizon + deadline``, enough for every scored task to end; fewer leave the
    current task's cost NaN if it has not ended), ``stop_early`` (stop once every
    scored task has ended).
    """
    if rule not in RULES:
        raise ValueError(f"rollout rule '{rule}' is not one of {', '.join(RULES)}")
    if scenario.slot_rules != "fluid":
        raise RolloutError(
            f"slot_rules='{scenario.slot_rules}': the batched look-ahead rollouts implement the fluid slot rules only"
        )
    if horizon < 0:
        raise ValueError(f"horizon={horizon} must be >= 0 slots")
    chan, server_rate, ghz, cpb = _scenario_arrays(scenario)
    model, rho, sigma, snr, lo, hi, base = chan
    b = scenario.bursty
    fp = np.array(
        [
            scenario.local_rate, scenario.slot_s, scenario.device_ghz, scenario.cycles_per_bit,
            rho, sigma, snr, lo, hi, base,
            scenario.arrival_prob, b.burst_prob if b else 0.0, b.p_enter if b else 0.0, b.p_leave if b else 0.0,
            scenario.size_min, scenario.size_max,
            _drop_cost(scenario, drop_cost),
        ],
        dtype=np.float64,
    )  # fmt: skip
    n_slots = horizon + scenario.deadline if max_slots is None else int(max_slots)
    if n_slots < 1:
        raise ValueError(f"max_slots={max_slots} must be >= 1")
    ip = np.array([model, int(b is not None), RULES[rule], horizon, n_slots, int(stop_early)], dtype=np.int64)
    return RolloutParams(fp, ip, server_rate, ghz, cpb)


@njit(cache=True, nogil=True)
def rollout_scratch(M, D, N):
    """Scratch arrays of one rollout (reusable by any number of rollouts in turn)."""
    return (
        np.empty(M, dtype=np.int64), np.empty(M, dtype=np.int64), np.empty(M), np.empty(M),
        np.empty(N), np.empty(N, dtype=np.int64), np.zeros(N), np.zeros(N), np.empty(N), np.empty(N, dtype=np.int64),
        np.empty(M * D, dtype=np.int64), np.empty(M * D), np.empty(M * D, dtype=np.int64), np.empty(M * D, dtype=np.int64),
        np.empty(D, dtype=np.int64), np.empty(M), np.empty(M, dtype=np.int64), np.empty(N), np.empty(N),
        np.empty(N), np.empty(N, dtype=np.int64), np.empty(N), np.empty(N, dtype=np.int64),
    )  # fmt: skip


@njit(cache=True, nogil=True)
def rollout_system(
    t0, arr, size, rem, act, stage, tid, chan, chan_im, rate, phase, new_mask, new_size,
    first_actions, cur_dev, cur_action, u, z, ua, fp, ip, server_rate, server_ghz, server_cpb, out,
):  # fmt: skip
    """Roll one system forward from slot ``t0``; its arrays are modified in place.

    ``arr`` .. ``tid``: (M, D) task places (``tid`` is overwritten for scored tasks);
    ``chan``, ``chan_im``, ``rate`` (Mbit/slot), ``phase``, ``new_mask``, ``new_size``
    (Mbit): (M,) channel, burst phase and the slot's arrivals. ``first_actions`` (M,):
    actions of slot ``t0``'s arrivals (< 0: decide by the rule); ``cur_dev`` gets
    ``cur_action``. ``u`` (T, 3, M), ``z`` (T, 2, M): draws for slots ``t0 + 1 ..``;
    ``ua`` (T', M) uniforms of the random rule. Writes the ``OUT_*`` row into ``out``.
    """
    M, D = arr.shape
    rollout_system_into(
        t0, arr, size, rem, act, stage, tid, chan, chan_im, rate, phase, new_mask, new_size,
        first_actions, cur_dev, cur_action, u, z, ua, fp, ip, server_rate, server_ghz, server_cpb, out,
        rollout_scratch(M, D, server_rate.shape[0]), np.empty(N_CARRY), 0, ip[_I_MAX_SLOTS],
    )  # fmt: skip


@njit(cache=True, nogil=True)
def rollout_system_into(
    t0, arr, size, rem, act, stage, tid, chan, chan_im, rate, phase, new_mask, new_size,
    first_actions, cur_dev, cur_action, u, z, ua, fp, ip, server_rate, server_ghz, server_cpb, out, scratch,
    carry, i_begin, i_end,
):  # fmt: skip
    """:func:`rollout_system` with the scratch arrays of :func:`rollout_scratch` (no allocation),
    run for slots ``t0 + i_begin .. t0 + i_end - 1`` only (``i_end <= max_slots``).

    ``carry`` (N_CARRY,) holds the rollout's tallies between calls: a call with
    ``i_begin = 0`` starts them (and clears ``tid``), a later call continues the rollout
    from arrays and ``carry`` as the previous call left them (or copies of them). Slot
    ``t0`` reads no draws but ``ua[0]`` (random rule), so one run of it can serve every
    rollout of a candidate. ``out`` gets the ``OUT_*`` row of the slots run so far.

    Why one long function: it is the loop of every LACS rollout, run for every slot of every
    (state, action, rollout), and each task's work is a few arithmetic operations, so helper functions taking arrays,
    called per task, cost several times the work itself (benchmarks/sim_speed.py,
    benchmarks/lacs_speed.py measure it); the per-task steps are written out in one pass.
    """
    M, D = arr.shape
    N = server_rate.shape[0]
    local_rate = fp[_F_LOCAL_RATE]
    drop_cost = fp[_F_DROP_COST]
    rule = ip[_I_RULE]
    horizon = ip[_I_HORIZON]
    n_slots = ip[_I_MAX_SLOTS]
    stop_early = ip[_I_STOP_EARLY] != 0
    (dev, acts, lw, tw, queued, active, served, used, share, seen, o_code, o_lat, o_tid, o_act, order, rate_b, occ,
     s_cpb, s_speed, inc, inc_n, q_inc, a_inc) = scratch
    # the greedy rule's constant factors (greedy_action_scaled)
    for j in range(N):
        s_cpb[j] = server_cpb[j] / 1000.0
        s_speed[j] = server_ghz[j] * fp[_F_SLOT_S]
    l_cpb = fp[_F_DEV_CPB] / 1000.0
    l_speed = fp[_F_DEV_GHZ] * fp[_F_SLOT_S]
    # each device's occupied places as a bit mask, kept by run_slot (departures) and here (arrivals)
    track = D <= 62
    if track:
        for m in range(M):
            bits = 0
            for k in range(D):
                bits |= np.int64(arr[m, k] >= 0) << k
            occ[m] = bits
    # Under the greedy rule, slot i + 1's inputs are drawn before slot i runs (into a second
    # rate array: slot i still transmits at its own rates) so that run_slot can observe each
    # device for slot i + 1 right after serving it, in the same pass.
    with_sharing = rule == RULE_GREEDY_SHARING
    with_incoming = rule == RULE_GREEDY_INCOMING or with_sharing
    prepare = rule == RULE_GREEDY or with_incoming
    rate_cur = rate
    rate_nxt = rate_b
    swapped = False
    prepared = False  # this slot's inputs are drawn and lw, tw, queued, active observe it
    if i_begin == 0:
        tid[:, :] = -1
        cur_tid = -1
        next_tid = 0
        cur_cost = 0.0
        cur_done = 0.0
        cur_ended = False
        h_sum = 0.0
        h_n = 0
        h_ended = 0
        slots = 0
        stopped = False
    else:
        cur_tid = int(carry[_C_CUR_TID])
        next_tid = int(carry[_C_NEXT_TID])
        cur_cost = carry[_C_CUR_COST]
        cur_done = carry[_C_CUR_DONE]
        cur_ended = carry[_C_CUR_ENDED] != 0.0
        h_sum = carry[_C_H_SUM]
        h_n = int(carry[_C_H_N])
        h_ended = int(carry[_C_H_ENDED])
        slots = int(carry[_C_SLOTS])
        stopped = carry[_C_STOPPED] != 0.0
    for i in range(i_begin, i_end):
        if stopped:
            break
        t = t0 + i
        if prepared:
            rate_cur, rate_nxt = rate_nxt, rate_cur
            swapped = not swapped
        elif i > 0:  # this slot's channel and arrivals
            K.next_slot_inputs(
                u[i - 1], z[i - 1], ip[_I_CHAN_MODEL], fp[_F_RHO], fp[_F_SIGMA], fp[_F_SNR], fp[_F_LO], fp[_F_HI],
                fp[_F_BASE], chan, chan_im, rate_cur, ip[_I_BURSTY] != 0, fp[_F_P_CALM], fp[_F_P_BURST],
                fp[_F_P_ENTER], fp[_F_P_LEAVE], fp[_F_SIZE_MIN], fp[_F_SIZE_MAX], phase, new_mask, new_size,
            )  # fmt: skip
        n_new = 0
        for m in range(M):  # branch-free: arrivals are random
            dev[n_new] = m
            n_new += new_mask[m]
        observed = prepared
        if n_new > 0:
            if with_incoming:
                # greedy:incoming (greedy:sharing) in turn: the traffic in flight plus the slot's decisions so far
                if not observed:
                    K.observe_system_into(
                        t, arr, rem, act, stage, rate_cur, local_rate, lw, tw, queued, active, seen, order
                    )
                    observed = True
                K.observe_incoming(arr, rem, act, stage, inc, inc_n)
                for j in range(n_new):  # slot t0's given actions are decided first
                    m = dev[j]
                    acts[j] = -1
                    if i == 0 and m == cur_dev:
                        acts[j] = cur_action
                    elif i == 0 and first_actions[m] >= 0:
                        acts[j] = first_actions[m]
                    if acts[j] > 0:
                        inc[acts[j] - 1] += new_size[m]
                        inc_n[acts[j] - 1] += 1
                for j in range(n_new):
                    if acts[j] >= 0:
                        continue
                    m = dev[j]
                    for k in range(N):  # the sums the policy's view forms, queued + incoming (active + in flight)
                        q_inc[k] = queued[k] + inc[k]
                    if with_sharing:
                        for k in range(N):
                            a_inc[k] = active[k] + inc_n[k]
                        acts[j] = greedy_action_sharing(
                            new_size[m], lw[m], tw[m], rate_cur[m], l_cpb, l_speed, s_cpb, s_speed, q_inc, a_inc
                        )
                    else:
                        acts[j] = greedy_action_scaled(
                            new_size[m], lw[m], tw[m], rate_cur[m], l_cpb, l_speed, s_cpb, s_speed, q_inc, active
                        )
                    if acts[j] > 0:
                        inc[acts[j] - 1] += new_size[m]
                        inc_n[acts[j] - 1] += 1
            else:
                for j in range(n_new):
                    m = dev[j]
                    if i == 0 and m == cur_dev:
                        acts[j] = cur_action
                    elif i == 0 and first_actions[m] >= 0:
                        acts[j] = first_actions[m]
                    elif rule == RULE_GREEDY:
                        if not observed:
                            K.observe_system_into(
                                t, arr, rem, act, stage, rate_cur, local_rate, lw, tw, queued, active, seen, order
                            )
                            observed = True
                        acts[j] = greedy_action_scaled(
                            new_size[m], lw[m], tw[m], rate_cur[m], l_cpb, l_speed, s_cpb, s_speed, queued, active
                        )
                    elif rule == RULE_LOCAL:
                        acts[j] = 0
                    else:
                        acts[j] = min(int(ua[i, m] * (N + 1)), N)
            first = -1
            if i <= horizon:
                first = next_tid
                if i == 0:
                    for j in range(n_new):
                        if dev[j] == cur_dev:
                            cur_tid = first + j
                    h_n += n_new - 1
                else:
                    h_n += n_new
                next_tid += n_new
            K.place_arrivals(t, arr, size, rem, act, stage, tid, dev[:n_new], new_size, acts[:n_new], first)
            if track:
                for j in range(n_new):
                    occ[dev[j]] |= np.int64(1) << (t % D)
        prepared = prepare and i + 1 < i_end
        if prepared:  # slot i + 1's inputs (slot i has read its arrivals)
            K.next_slot_inputs(
                u[i], z[i], ip[_I_CHAN_MODEL], fp[_F_RHO], fp[_F_SIGMA], fp[_F_SNR], fp[_F_LO], fp[_F_HI],
                fp[_F_BASE], chan, chan_im, rate_nxt, ip[_I_BURSTY] != 0, fp[_F_P_CALM], fp[_F_P_BURST],
                fp[_F_P_ENTER], fp[_F_P_LEAVE], fp[_F_SIZE_MIN], fp[_F_SIZE_MAX], phase, new_mask, new_size,
            )  # fmt: skip
        # the slot's active counts are those observe saw at its start (arrivals join no server queue yet)
        n_out = K.run_slot_into(
            t, arr, size, rem, act, stage, tid, rate_cur, local_rate, server_rate, active, served,
            o_code, o_lat, o_tid, o_act, used, share, seen, order, observed,
            prepared, rate_nxt, lw, tw, queued, active, occ, track,
        )  # fmt: skip
        slots = i + 1
        for o in range(n_out):
            if o_tid[o] < 0:
                continue
            c = o_lat[o] if o_code[o] == K.OUT_DONE else drop_cost
            if o_tid[o] == cur_tid:
                cur_cost = c
                cur_done = 1.0 if o_code[o] == K.OUT_DONE else 0.0
                cur_ended = True
            else:
                h_sum += c
                h_ended += 1
        if stop_early and cur_ended and i >= horizon and h_ended == h_n:
            stopped = True
    if swapped:  # leave the current rates in the caller's array
        rate_nxt[:] = rate_cur
    carry[_C_CUR_TID] = cur_tid
    carry[_C_NEXT_TID] = next_tid
    carry[_C_CUR_COST] = cur_cost
    carry[_C_CUR_DONE] = cur_done
    carry[_C_CUR_ENDED] = cur_ended
    carry[_C_H_SUM] = h_sum
    carry[_C_H_N] = h_n
    carry[_C_H_ENDED] = h_ended
    carry[_C_SLOTS] = slots
    carry[_C_STOPPED] = stopped
    if not cur_ended:  # only when max_slots cuts the rollout short
        cur_cost = np.nan
    out[OUT_CUR_COST] = cur_cost
    out[OUT_CUR_DONE] = cur_done
    out[OUT_HOR_SUM] = h_sum
    out[OUT_HOR_N] = h_n
    out[OUT_SLOTS] = slots


@njit(cache=True, nogil=True)
def _copy_into(dst, src):
    """``dst[...] = src`` for C-contiguous arrays of one shape, as a plain loop."""
    d = dst.ravel()
    s = src.ravel()
    for i in range(d.shape[0]):
        d[i] = s[i]


@njit(cache=True, parallel=True)
def rollout_batch(
    t0, arr, size, rem, act, stage, chan, chan_im, rate, phase, new_mask, new_size,
    first_actions, cur_dev, candidates, u, z, ua, fp, ip, server_rate, server_ghz, server_cpb, out,
):  # fmt: skip
    """Roll ``S x C x K`` systems: S states, C candidate actions each, K rollouts.

    State arrays carry a leading axis S: ``arr`` .. ``stage`` (S, M, D), ``chan`` ..
    ``new_size`` and ``first_actions`` (S, M), ``t0`` and ``cur_dev`` (S,).
    ``candidates`` (S, C) actions of the current task. Draws: ``u`` (S, K, T, 3, M),
    ``z`` (S, K, T, 2, M), ``ua`` (S, K, T', M) (T' = 1 unless the rule is random);
    rollout ``k`` of every candidate of state ``s`` reads the same draws.
    ``out`` (S, C, K, N_OUT) receives each rollout's row. Each (state, candidate) pair
    is one parallel task that runs its K rollouts in turn on one set of work arrays.
    """
    S, C = candidates.shape
    Kr = u.shape[1]
    M, D = arr.shape[1], arr.shape[2]
    N = server_rate.shape[0]
    n_slots = ip[_I_MAX_SLOTS]
    shared_first = ip[_I_RULE] != RULE_RANDOM  # slot t0 reads no draws: run it once per candidate
    for idx in prange(S * C):
        s = idx // C
        c = idx % C
        scratch = rollout_scratch(M, D, N)
        # the candidate's system after slot t0 (or before it, under the random rule)
        b_arr = arr[s].copy()
        b_size = size[s].copy()
        b_rem = rem[s].copy()
        b_act = act[s].copy()
        b_stage = stage[s].copy()
        b_tid = np.empty((M, D), dtype=arr.dtype)
        b_carry = np.empty(N_CARRY)
        i_begin = 0
        if shared_first:
            rollout_system_into(
                t0[s], b_arr, b_size, b_rem, b_act, b_stage, b_tid, chan[s], chan_im[s], rate[s], phase[s],
                new_mask[s], new_size[s], first_actions[s], cur_dev[s], candidates[s, c],
                u[s, 0], z[s, 0], ua[s, 0], fp, ip, server_rate, server_ghz, server_cpb, out[s, c, 0], scratch,
                b_carry, 0, min(1, n_slots),
            )  # fmt: skip
            i_begin = 1
        # work copies, rolled on by each rollout in turn
        w_arr = np.empty((M, D), dtype=arr.dtype)
        w_size = np.empty((M, D), dtype=size.dtype)
        w_rem = np.empty((M, D), dtype=rem.dtype)
        w_act = np.empty((M, D), dtype=act.dtype)
        w_stage = np.empty((M, D), dtype=stage.dtype)
        w_tid = np.empty((M, D), dtype=arr.dtype)
        w_chan = np.empty(M, dtype=chan.dtype)
        w_chan_im = np.empty(M, dtype=chan_im.dtype)
        w_rate = np.empty(M, dtype=rate.dtype)
        w_phase = np.empty(M, dtype=phase.dtype)
        w_new_mask = np.empty(M, dtype=new_mask.dtype)
        w_new_size = np.empty(M, dtype=new_size.dtype)
        w_carry = np.empty(N_CARRY)
        for k in range(Kr):
            _copy_into(w_arr, b_arr)
            _copy_into(w_size, b_size)
            _copy_into(w_rem, b_rem)
            _copy_into(w_act, b_act)
            _copy_into(w_stage, b_stage)
            _copy_into(w_tid, b_tid)
            _copy_into(w_chan, chan[s])
            _copy_into(w_chan_im, chan_im[s])
            _copy_into(w_rate, rate[s])
            _copy_into(w_phase, phase[s])
            _copy_into(w_new_mask, new_mask[s])
            _copy_into(w_new_size, new_size[s])
            _copy_into(w_carry, b_carry)
            rollout_system_into(
                t0[s], w_arr, w_size, w_rem, w_act, w_stage, w_tid, w_chan, w_chan_im, w_rate, w_phase,
                w_new_mask, w_new_size, first_actions[s], cur_dev[s], candidates[s, c],
                u[s, k], z[s, k], ua[s, k], fp, ip, server_rate, server_ghz, server_cpb, out[s, c, k], scratch,
                w_carry, i_begin, n_slots,
            )  # fmt: skip


def _drop_stale_cache() -> None:
    """Drop this module's compiled cache when a kernel it calls has changed.

    numba's on-disk cache only watches the file of the cached function, so the rollouts
    would keep old copies of :mod:`comllm.sim.kernels` and :mod:`comllm.cost` after an
    edit there; a digest of those files, kept beside the cache, notices the edit.
    """
    try:
        digest = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (K, _cost))).hexdigest()[:16]
        cache_dir = Path(rollout_batch._cache._cache_path)
        stamp = cache_dir / f"{__name__.rpartition('.')[2]}.deps"
        if stamp.is_file() and stamp.read_text() == digest:
            return
        for f in cache_dir.glob(f"{__name__.rpartition('.')[2]}.*.nb[ic]"):
            f.unlink(missing_ok=True)
        cache_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest)
    except (OSError, AttributeError):  # no cache directory to manage: numba compiles in memory
        pass


_drop_stale_cache()

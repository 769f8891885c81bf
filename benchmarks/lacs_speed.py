"""LACS reward throughput, and what one iteration of ``comllm improve`` costs on this machine.

    python benchmarks/lacs_speed.py [--states 256] [--horizon 5] [--rollouts 16]
        [--no-improve] [--model default|PATH] [--update-states 32] [--collect-slots 5] [--torch-threads 0]

One reward = the score of one candidate action of one state. The states are the same
for every row: ``--states`` decision moments of ``paper-6`` (30 devices, 6 servers, so
7 candidates each) taken under the greedy oracle after a 200-slot warm-up. Rows:

* ``sim``: :func:`comllm.lacs.lacs_evaluate_batch` (rollouts on the simulator's
  kernels, every candidate, H slots, K rollouts), with 1 thread and with all of numba's
  threads; the time includes drawing the random numbers;
* ``reference``: :func:`comllm.lacs.reference_scores_batch` on the states' StateBatch
  (vectorised over the batch), and one state per call.

Rows of the all-action stage (:mod:`comllm.lacs.improve`, what ``comllm improve`` runs;
``--no-improve`` leaves them out). Its states come from :func:`~comllm.lacs.improve.collect`
run with the greedy oracle (``make_policy("greedy")``) on ``paper-6``: seed 0 (the
trajectory of the states above), 200 slots of warm-up, then one recorded decision per slot
for ``--states`` slots, ``others=policy`` (each state's ``fixed`` holds what the greedy oracle
did with the slot's other tasks). Settings are ``ImproveConfig``'s defaults: ``horizon``,
``rollouts`` and ``lam`` of ``LACS_DEFAULTS`` (``--horizon``/``--rollouts`` are the sim rows'
only), drops cost the deadline, ``epochs`` 2, ``batch_size`` 32, ``workers`` 0.

* ``improve: score``: :func:`comllm.lacs.improve.score` on those states. ``states/s``:
  recorded states whose every action (7 on paper-6) got its LACS score; ``rewards/s`` =
  states/s x actions (vs the ``sim`` rows: those let the greedy oracle decide the slot's other
  tasks and charge a drop the scenario's penalty). In this process (``workers=1``) with 1
  numba thread and all of them, and, where ``ImproveConfig`` has ``workers``, as ``improve``
  runs it by default (``workers=0``: a pool of one process per core, 1 numba thread each; the
  row names the pool's start-up, once a run, not in its rate);
* ``improve: update``: :func:`comllm.lacs.improve.update` (``epochs`` passes in minibatches of
  ``batch_size``: each state a forward and a backward pass over every one of its actions, then
  Adam) on the first ``--update-states`` of those states and the advantages of their scores.
  ``states/s`` = states x epochs / the call's seconds, which also hold the one no-grad pass of
  the frozen reference model over the states. With 1 torch thread and torch's default
  (``--torch-threads``); on a tiny embedded model built here (hidden 32, 1 layer, the shape
  of the tests' tiny model, on ``--model``'s template; nothing downloaded) and on ``--model``
  (the shipped ``default``);
* ``improve: collect``: :func:`comllm.lacs.improve.collect` with that model as the policy
  (``LMPolicy``, score mode), ``--collect-slots`` slots of closed loop on ``paper-6`` from an
  empty system, 4 states a slot: ``states/s`` = recorded states / seconds; the settings cell
  gives the slots/s (the evaluation stage runs the same closed loop).

A second table puts those rates together: the seconds of one iteration at ``ImproveConfig``'s
defaults (``warmup`` 50 + ``collect_slots`` 100 slots, 4 states a slot, ``eval_slots`` 200 +
the warm-up, 1 seed) per stage, per model and torch threads: collect and evaluate from the
collect row's slots/s, score from ``workers=0``'s states/s (states = 100 slots x the collect
row's states per slot), update from the update row's states/s. An estimate, not a timed
iteration: the pass after the update that counts agreement with LACS's best (one more no-grad
pass) and the checkpoint are not in it.

Compilation (and a warm-up call) happens before timing; each row is the best of
``--repeats``, except the update and collect rows (one timed call each). The last line gives
the load average: above the core count, other processes share the cores and every row is
slower (torch's multi-threaded rows by far the most: its threads wait on each other).
Target: ``sim`` >= 15,000 rewards/s on the 2-core machine (not met yet: README, LACS
section).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from dataclasses import fields, replace

import numba
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from comllm.lacs import LacsSettings, lacs_evaluate_batch, reference_scores_batch
from comllm.lacs.improve import Collected, ImproveConfig, advantages, collect, score, update
from comllm.lacs.lookahead import rollout_draws
from comllm.policies import make_policy
from comllm.policies.heuristics import GreedyPolicy
from comllm.scenario import Scenario, load_scenario
from comllm.sim import MECSimulator
from comllm.state import StateBatch


def moments(n: int, seed: int = 0):
    """``n`` (snapshot, device, state row) decision moments of paper-6 under the greedy oracle."""
    sim = MECSimulator(load_scenario("paper-6"), seed=seed)
    greedy = GreedyPolicy()
    out = []
    t = 0
    while len(out) < n:
        batch = sim.observe()
        if t >= 200 and len(batch):
            i = t % len(batch)
            out.append((sim.snapshot(), int(batch.device[i]), batch.subset([i])))
        sim.step(greedy.act(batch))
        t += 1
    return out


def load_avg() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def head(data: Collected, n: int) -> Collected:
    """The first ``n`` recorded states of ``data``."""
    return Collected(data.snapshots[:n], data.devices[:n], data.fixed[:n], data.states[:n])


def improve_states(n_slots: int) -> tuple[Scenario, ImproveConfig, Collected]:
    """The all-action stage's states: ``collect`` under the greedy oracle, 200-slot warm-up, one a slot."""
    cfg = ImproveConfig(scenario="paper-6", warmup=200, collect_slots=n_slots, states_per_slot=1, others="policy")
    scenario = load_scenario(cfg.scenario)
    return scenario, cfg, collect(make_policy("greedy"), scenario, cfg, 0)


def tiny_lm(template: str, states: list):
    """A fresh embedded model (hidden 32, 1 layer) on ``template``, vocabulary from ``states``; nothing downloaded."""
    from comllm.lm.sft import new_embedded_lm
    from comllm.sft_config import ModelShape

    return new_embedded_lm(template, states, ModelShape(hidden=32, layers=1, heads=2, intermediate=64, value_hidden=16), 0)


def n_params(lm) -> str:
    return f"{sum(p.numel() for p in lm.model.parameters()) / 1e6:.2f} M params"


def update_seconds(lm, data: Collected, adv: np.ndarray, cfg: ImproveConfig) -> float:
    """Seconds of one :func:`update` call on ``data`` (after a warm-up one on a minibatch), as ``improve`` sets it up."""
    from comllm.lacs.improve import _Scorer  # the answers' log-likelihoods; improve exposes no public one

    ref = copy.deepcopy(lm.model)
    for p in ref.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam([p for p in lm.model.parameters() if p.requires_grad], lr=cfg.lr)
    scorer = _Scorer(lm)
    rng = np.random.default_rng([cfg.seed, 11])
    update(lm.model, ref, scorer, opt, head(data, 4), adv[:4], replace(cfg, epochs=1), rng)  # warm-up
    t0 = time.perf_counter()
    update(lm.model, ref, scorer, opt, data, adv, cfg, rng)
    return time.perf_counter() - t0


def collect_rate(lm, scenario: Scenario, slots: int) -> tuple[float, float]:
    """(recorded states/s, slots/s) of :func:`collect` with ``lm`` as the policy, ``slots`` slots from an empty system."""
    from comllm.lm.policy import LMPolicy

    policy = LMPolicy(lm)
    cfg = ImproveConfig(scenario=scenario.name, warmup=0, collect_slots=slots)
    collect(policy, scenario, replace(cfg, collect_slots=1), 1)  # warm-up
    t0 = time.perf_counter()
    data = collect(policy, scenario, cfg, 1)
    dt = time.perf_counter() - t0
    return len(data) / dt, slots / dt


def score_rows(table: Table, cfg: ImproveConfig, data: Collected, repeats: int) -> tuple[np.ndarray, float, float]:
    """The ``improve: score`` rows; returns the scores, the states/s of improve's default scoring and its start-up (s)."""
    n_act = data.states[0].n_servers + 1  # actions per state: local or a server
    lacs = cfg.lacs(0)
    settings = f"H={lacs.horizon}, K={lacs.rollouts}, others={cfg.others}"
    parallel = "workers" in {f.name for f in fields(ImproveConfig)}  # improve.score runs in worker processes
    runs: list[tuple[str, ImproveConfig, int]] = []  # (settings, config, numba threads)
    n_threads = numba.config.NUMBA_NUM_THREADS
    one = replace(cfg, workers=1) if parallel else cfg
    for threads in sorted({1, n_threads}):
        runs.append((settings + (", workers=1" if parallel else ""), one, threads))
    if parallel:
        from comllm.lacs.parallel import cpu_cores

        n_workers = cfg.workers or cpu_cores()
        runs.append((settings + f", workers={cfg.workers} ({n_workers} processes, 1 thread each)", cfg, 1))
    score(head(data, 2), one, 0)  # compile the fixed-actions path here
    scores, rate, start = np.zeros(0), 0.0, 0.0
    for label, c, threads in runs:
        numba.set_num_threads(threads)
        if c is not one:  # the pool: started (and its workers compiled) by a first call, once a run
            t0 = time.perf_counter()
            score(head(data, 4 * n_workers), c, 0)
            start = time.perf_counter() - t0
            label += f", start-up {start:.1f} s once"
        out: list = [None]
        dt = best_of(repeats, lambda: out.__setitem__(0, score(data, c, 0)))
        scores, rate = out[0], len(data) / dt
        shown = f"{threads}" if c is one else f"{n_workers} x 1"
        table.add_row("improve: score", label, shown, f"{len(data) * n_act / dt:,.0f}",
                      f"{rate:,.1f}", f"{dt / len(data) * 1e6:,.0f}", "–")  # fmt: skip
    numba.set_num_threads(n_threads)
    return scores, rate, start


def improve_rows(table: Table, args: argparse.Namespace) -> Table:
    """The all-action stage's rows of ``table``; returns the per-iteration estimate table."""
    from comllm.lm.loading import load_lm

    scenario, cfg, data = improve_states(args.states)
    scores, score_rate, start = score_rows(table, cfg, data, args.repeats)
    adv = advantages(scores)

    all_threads = args.torch_threads or torch.get_num_threads()
    thread_counts = sorted({1, all_threads})
    model = load_lm(args.model, trainable=True)
    lms = [("tiny embedded", tiny_lm(model.meta.template, data.states)), (args.model, model)]
    n_up = min(args.update_states, len(data))
    up, coll = {}, {}  # (model, torch threads) -> states/s of update; (states/s, slots/s) of collect
    for name, lm in lms:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            dt = update_seconds(lm, head(data, n_up), adv[:n_up], cfg)
            up[name, threads] = rate = n_up * cfg.epochs / dt
            what = f"{name} ({n_params(lm)}), {n_up} states x {cfg.epochs} epochs, batch {cfg.batch_size}"
            table.add_row("improve: update", what, f"{threads} torch", "–", f"{rate:,.1f}", f"{1e6 / rate:,.0f}", "–")
    for name, lm in lms:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            coll[name, threads] = per_state, per_slot = collect_rate(lm, scenario, args.collect_slots)
            table.add_row("improve: collect", f"{name}, {args.collect_slots} slots, {per_slot:,.2f} slots/s",
                          f"{threads} torch", "–", f"{per_state:,.1f}", f"{1e6 / per_state:,.0f}", "–")  # fmt: skip
    torch.set_num_threads(all_threads)

    d = ImproveConfig()
    est = Table(title=f"one `comllm improve` iteration at its defaults, seconds, estimated from the rates above "
                      f"({d.warmup}+{d.collect_slots} slots collected, {d.states_per_slot} states/slot, "
                      f"{d.epochs} epochs, eval {d.warmup}+{d.eval_slots} slots x {d.eval_seeds} seed)")  # fmt: skip
    est.add_column("stage")
    for key in up:
        est.add_column(f"{key[0]}, {key[1]} torch thread{'s' * (key[1] > 1)}", justify="right")
    rows: dict[str, list[float]] = {"collect": [], "score": [], "update": [], "evaluate": [], "total": []}
    for key in up:
        per_state, per_slot = coll[key]
        states = d.collect_slots * per_state / per_slot  # recorded states per iteration, at the measured states/slot
        parts = [(d.warmup + d.collect_slots) / per_slot, states / score_rate, states * d.epochs / up[key],
                 (d.warmup + d.eval_slots) * d.eval_seeds / per_slot]  # fmt: skip
        for k, v in zip(rows, [*parts, sum(parts)]):
            rows[k].append(v)
    for k, vs in rows.items():
        est.add_row(k, *[f"{v:,.1f}" for v in vs])
    if start:
        est.caption = f"+ {start:.1f} s once a run: starting the scoring worker processes"
    return est


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=256)
    ap.add_argument("--horizon", type=int, default=5)
    ap.add_argument("--rollouts", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--improve", action=argparse.BooleanOptionalAction, default=True,
                    help="also the all-action stage's rows (score, update, collect) and the per-iteration estimate")
    ap.add_argument("--model", default="default", help="model of the update and collect rows (besides a tiny one)")
    ap.add_argument("--update-states", type=int, default=32, help="states of the timed update call")
    ap.add_argument("--collect-slots", type=int, default=5, help="closed-loop slots of the timed collect call")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="torch threads of the update and collect rows besides 1 (0: torch's default)")
    args = ap.parse_args()
    load0 = load_avg()

    ms = moments(args.states)
    snaps = [m[0] for m in ms]
    devs = [m[1] for m in ms]
    rows = [m[2] for m in ms]
    batch = StateBatch(**{k: np.concatenate([getattr(r, k) for r in rows]) for k in rows[0].__dict__})
    n_rewards = len(ms) * batch.n_actions
    settings = LacsSettings(horizon=args.horizon, rollouts=args.rollouts)
    lacs_evaluate_batch(snaps[:2], devs[:2], settings)  # compile
    reference_scores_batch(batch.subset([0]))

    title = f"LACS rewards/s on {len(ms)} paper-6 states x {batch.n_actions} candidates (best of {args.repeats})"
    if args.improve:
        title += "; improve: rows on the all-action stage's own states (docstring)"
    table = Table(title=title)
    for col in ("estimator", "settings", "threads", "rewards/s", "states/s", "µs per state", "slots per rollout"):
        table.add_column(col, justify="left" if col in ("estimator", "settings") else "right")

    n_threads = numba.config.NUMBA_NUM_THREADS
    for threads in sorted({1, n_threads}):
        numba.set_num_threads(threads)
        res: list = []
        dt = best_of(args.repeats, lambda: res.__setitem__(slice(None), lacs_evaluate_batch(snaps, devs, settings)))
        slots = np.mean([r.slots for r in res])
        table.add_row(
            "sim", f"H={args.horizon}, K={args.rollouts}", str(threads), f"{n_rewards / dt:,.0f}",
            f"{len(ms) / dt:,.1f}", f"{dt / len(ms) * 1e6:,.0f}", f"{slots:.1f}",
        )  # fmt: skip
    numba.set_num_threads(n_threads)
    dt = best_of(args.repeats, lambda: reference_scores_batch(batch))
    table.add_row("reference", "3 futures, batched", "1", f"{n_rewards / dt:,.0f}", f"{len(ms) / dt:,.0f}",
                  f"{dt / len(ms) * 1e6:,.1f}", "–")  # fmt: skip
    dt = best_of(args.repeats, lambda: [reference_scores_batch(r) for r in rows])
    table.add_row("reference", "3 futures, 1 state/call", "1", f"{n_rewards / dt:,.0f}", f"{len(ms) / dt:,.0f}",
                  f"{dt / len(ms) * 1e6:,.1f}", "–")  # fmt: skip
    est = improve_rows(table, args) if args.improve else None
    console = Console(width=max(Console().width, 150))
    console.print(table)
    # what part of the sim rows is spent drawing the random numbers (numpy) rather than simulating
    keys = [(settings.seed, s.t, d) for s, d in zip(snaps, devs)]
    n_slots = args.horizon + snaps[0].scenario.deadline
    dt = best_of(args.repeats, lambda: rollout_draws(snaps[0].scenario, keys, args.rollouts, n_slots, "greedy"))
    console.print(f"of the sim rows, random draws: {dt / len(ms) * 1e6:,.0f} µs per state")
    if est is not None:
        console.print(est)
    console.print(f"load average (1 min): {load0:.1f} at the start, {load_avg():.1f} at the end, on {os.cpu_count()} cores "
                  "(more than the cores: other processes share them and every row is slower)")


if __name__ == "__main__":
    main()
